//! Neighbours shared between workers' routers, in memory: a router that did
//! not ask accepts an ARP reply to its gateway and emits an event for the
//! other workers; an event applied to another router releases the frames
//! parked there for that neighbour, with the right L2 header, into an empty
//! batch; static entries and newer local answers win over events.

mod common;

use common::mac;
use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use switchyard_pipeline::checksum::ipv4_header_checksum;
use switchyard_pipeline::neighbour::NeighbourState;
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, DropReason, FrameStore, Gateway, L2Config, L2Switch, MacAddr, NeighbourEvent,
    PacketMeta, Timestamp, Verdict,
};

/// The inside network (domain 1, port 1).
const INSIDE: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
/// The uplink (domain 2, port 2), the default route through NEXT_HOP.
const UPLINK: Gateway = Gateway {
    ip: Ipv4Addr::new(192, 0, 2, 10),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 2]),
};
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CONTAINER: [u8; 4] = [10, 1, 0, 5];

/// One worker's chain: an inside network and an open uplink with a default
/// route through NEXT_HOP (not a static neighbour); sharing on if `share`.
fn worker(share: bool) -> Chain {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(1, Some(1));
    l2.set_port_domain(2, Some(2));
    let mut chain = Chain::new(l2);
    chain.set_network(
        1,
        Some(RoutedNetwork::bridge(
            1,
            Ipv4Addr::new(10, 1, 0, 0),
            24,
            INSIDE,
            true,
        )),
    );
    chain.set_network(
        2,
        Some(RoutedNetwork {
            open: true,
            ..RoutedNetwork::bridge(2, Ipv4Addr::new(192, 0, 2, 0), 24, UPLINK, false)
        }),
    );
    chain.router.set_default_route(Some((2, NEXT_HOP)));
    chain
        .router
        .set_static_neighbour(Ipv4Addr::from(CONTAINER), Some(MacAddr(mac(1))));
    chain.router.share_neighbours(share);
    chain
}

/// A UDP datagram from the container to `dst`, through its gateway.
fn udp_out(dst: [u8; 4], seq: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(1), INSIDE.mac.0)
        .ipv4(CONTAINER, dst, 64)
        .udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, &[seq; 32]).unwrap();
    out
}

/// An ARP frame (`op` 1 request, 2 reply) from `sender` at `sender_mac` to
/// `target_ip` at `target_mac`, sent to `dst`.
fn arp(
    op: u8,
    dst: [u8; 6],
    sender_mac: [u8; 6],
    sender: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target_ip.octets());
    f.resize(60, 0);
    f
}

/// The next hop's answer to the uplink gateway's request.
fn reply_to_gateway() -> Vec<u8> {
    arp(2, UPLINK.mac.0, mac(7), NEXT_HOP, UPLINK.mac.0, UPLINK.ip)
}

/// Runs the chain over `frames` received on `port`, with room for 8 more.
fn run(chain: &mut Chain, frames: &mut Vec<Vec<u8>>, port: u16, secs: u64) -> Vec<PacketMeta> {
    let mut metas = vec![PacketMeta::new(port); frames.len() + 8];
    let mut batch = Batch::new(frames, &mut metas, Timestamp::from_secs(secs));
    chain.run(&mut batch);
    batch.metas().to_vec()
}

/// Applies `event` on an empty batch with room for `room` frames, as a
/// worker without traffic does; returns what was originated.
fn apply(
    chain: &mut Chain,
    event: &NeighbourEvent,
    room: usize,
) -> (Vec<Vec<u8>>, Vec<PacketMeta>) {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut metas = vec![PacketMeta::new(0); room];
    let mut batch = Batch::new(&mut frames, &mut metas, Timestamp::from_secs(2));
    assert_eq!(batch.room(), room);
    chain.apply_neighbour_event(&mut batch, event);
    let metas = batch.metas().to_vec();
    (frames, metas)
}

fn header_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    u16::from_be_bytes([ip[10], ip[11]]) == ipv4_header_checksum(ip)
}

#[test]
fn a_router_that_did_not_ask_learns_a_reply_to_its_gateway_and_shares_it() {
    // The uplink's owner: it never asked for the next hop (another worker did).
    let mut owner = worker(true);
    assert_eq!(owner.router.neighbours().state(NEXT_HOP), None);
    let mut frames = vec![reply_to_gateway()];
    let metas = run(&mut owner, &mut frames, 2, 1);
    assert_eq!(metas[0].verdict, Verdict::Local, "the reply is consumed");
    assert_eq!(
        owner.router.neighbours().lookup(NEXT_HOP),
        Some(MacAddr(mac(7))),
        "learned although this router did not ask"
    );
    assert_eq!(
        owner.router.neighbour_events(),
        [NeighbourEvent {
            domain: 2,
            ip: NEXT_HOP,
            mac: MacAddr(mac(7)),
            at: Timestamp::from_secs(1),
        }]
    );
    owner.router.clear_neighbour_events();

    // A request for a gateway address is shared too; repeats in one batch
    // once; a static neighbour (every worker has it) never.
    let asker = Ipv4Addr::new(192, 0, 2, 33);
    let request = arp(1, [0xff; 6], mac(8), asker, [0; 6], UPLINK.ip);
    let mut frames = vec![request.clone(), request];
    run(&mut owner, &mut frames, 2, 1);
    let events = owner.router.neighbour_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].ip, events[0].mac), (asker, MacAddr(mac(8))));
    owner.router.clear_neighbour_events();
    let mut frames = vec![arp(
        1,
        [0xff; 6],
        mac(1),
        Ipv4Addr::from(CONTAINER),
        [0; 6],
        INSIDE.ip,
    )];
    run(&mut owner, &mut frames, 1, 1);
    assert!(
        owner.router.neighbour_events().is_empty(),
        "static: not shared"
    );

    // A reply to the gateway's address but another MAC, which nobody asked
    // for, is not learned (Linux's arp_accept = 0), nor shared.
    let stranger = Ipv4Addr::new(192, 0, 2, 44);
    let mut frames = vec![arp(2, UPLINK.mac.0, mac(9), stranger, mac(5), UPLINK.ip)];
    run(&mut owner, &mut frames, 2, 1);
    assert_eq!(owner.router.neighbours().state(stranger), None);
    assert!(owner.router.neighbour_events().is_empty());

    // Without sharing (one worker) nothing is collected, but it still learns.
    let mut alone = worker(false);
    let mut frames = vec![reply_to_gateway()];
    run(&mut alone, &mut frames, 2, 1);
    assert_eq!(
        alone.router.neighbours().lookup(NEXT_HOP),
        Some(MacAddr(mac(7)))
    );
    assert!(alone.router.neighbour_events().is_empty());
}

#[test]
fn an_event_releases_another_routers_parked_frames_with_the_right_l2_header() {
    // The asking worker: its frames to the outside wait for the next hop.
    let mut asker = worker(true);
    let free = asker.router.free_parking();
    let mut frames: Vec<Vec<u8>> = (0..4).map(|k| udp_out([203, 0, 113, 7], k)).collect();
    let sent: Vec<Vec<u8>> = frames.clone();
    let metas = run(&mut asker, &mut frames, 1, 1);
    assert!(
        metas[..4].iter().all(|m| m.verdict == Verdict::Local),
        "{metas:?}"
    );
    assert_eq!(
        metas[4].verdict,
        Verdict::Flood,
        "an ARP request: {metas:?}"
    );
    assert_eq!(asker.router.free_parking(), free - 4);
    assert_eq!(
        asker.router.neighbours().state(NEXT_HOP),
        Some(NeighbourState::Incomplete)
    );

    // The owner of the uplink gets the reply and shares it.
    let mut owner = worker(true);
    let mut reply = vec![reply_to_gateway()];
    run(&mut owner, &mut reply, 2, 1);
    let event = owner.router.neighbour_events()[0];

    // The asker applies it with no traffic of its own: an empty batch, into
    // which the four waiting frames are originated, in order.
    let (out, metas) = apply(&mut asker, &event, 8);
    assert_eq!(metas.len(), 4, "four released frames: {metas:?}");
    for (k, m) in metas.iter().enumerate() {
        let f = out.frame(k);
        assert_eq!(m.verdict, Verdict::Flood, "mac(7)'s port not known yet");
        assert_eq!(m.domain, 2, "flooded in the uplink");
        assert_eq!(m.in_port, 1, "from the container's port");
        assert_eq!(&f[0..6], &mac(7), "to the next hop");
        assert_eq!(&f[6..12], &UPLINK.mac.0, "from the uplink's gateway MAC");
        assert_eq!(f[14 + 8], 63, "TTL decremented once");
        assert!(header_checksum_ok(f));
        assert_eq!(
            &f[12..22],
            &sent[k][12..22],
            "EtherType, IPv4 header up to TTL"
        );
        assert_eq!(&f[26..34], &sent[k][26..34], "untranslated addresses");
        assert_eq!(&f[34..], &sent[k][34..], "payload {k} intact, in order");
    }
    assert_eq!(asker.router.free_parking(), free, "every buffer given back");
    assert_eq!(
        asker.router.neighbours().lookup(NEXT_HOP),
        Some(MacAddr(mac(7)))
    );
    assert!(
        asker.router.neighbour_events().is_empty(),
        "events never cause events"
    );

    // Once its L2 table knows mac(7) on port 2, the next frame goes straight there.
    let mut learn = vec![common::udp4(mac(7), mac(9), b"hello")];
    run(&mut asker, &mut learn, 2, 2);
    let mut frames = vec![udp_out([203, 0, 113, 7], 9)];
    let metas = run(&mut asker, &mut frames, 1, 2);
    assert_eq!(metas[0].verdict, Verdict::Forward(2));
    assert_eq!(&frames.frame(0)[0..6], &mac(7));
}

#[test]
fn a_batch_without_room_drops_and_counts_the_released_frames() {
    let mut asker = worker(true);
    let free = asker.router.free_parking();
    let mut frames: Vec<Vec<u8>> = (0..2).map(|k| udp_out([203, 0, 113, 7], k)).collect();
    run(&mut asker, &mut frames, 1, 1);
    let event = NeighbourEvent {
        domain: 2,
        ip: NEXT_HOP,
        mac: MacAddr(mac(7)),
        at: Timestamp::from_secs(1),
    };
    let (_, metas) = apply(&mut asker, &event, 1);
    assert_eq!(metas.len(), 1, "one fitted");
    let counters = asker.router.counters();
    assert_eq!(
        counters.drops.get(DropReason::NoFreeFrame),
        1,
        "one counted"
    );
    assert_eq!(asker.router.free_parking(), free, "no buffer leaked");
}

#[test]
fn static_entries_and_newer_local_answers_win_over_events() {
    let mut chain = worker(true);
    let event = |ip: Ipv4Addr, m: u8, secs: u64| NeighbourEvent {
        domain: 2,
        ip,
        mac: MacAddr(mac(m)),
        at: Timestamp::from_secs(secs),
    };
    // Unknown: created from the event.
    let n = Ipv4Addr::new(192, 0, 2, 50);
    apply(&mut chain, &event(n, 3, 5), 8);
    assert_eq!(chain.router.neighbours().lookup(n), Some(MacAddr(mac(3))));
    // An older event (another worker saw the old MAC before) changes nothing.
    apply(&mut chain, &event(n, 4, 4), 8);
    assert_eq!(chain.router.neighbours().lookup(n), Some(MacAddr(mac(3))));
    // A newer one does.
    apply(&mut chain, &event(n, 4, 6), 8);
    assert_eq!(chain.router.neighbours().lookup(n), Some(MacAddr(mac(4))));
    // A static entry never changes.
    let c = Ipv4Addr::from(CONTAINER);
    apply(&mut chain, &event(c, 9, 9), 8);
    assert_eq!(chain.router.neighbours().lookup(c), Some(MacAddr(mac(1))));
    assert_eq!(
        chain.router.neighbours().state(c),
        Some(NeighbourState::Static)
    );
    // An event for a network this router does not have is ignored.
    let mut other = event(Ipv4Addr::new(172, 16, 0, 9), 3, 9);
    other.domain = 7;
    apply(&mut chain, &other, 8);
    assert_eq!(chain.router.neighbours().state(other.ip), None);
}
