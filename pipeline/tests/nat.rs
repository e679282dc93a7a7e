//! NAT through the router, in memory: a masquerading network's UDP flow
//! leaves by the uplink from the uplink address (its own port kept), its reply
//! comes back to the container; a second flow with the same source port to
//! the same destination gets another port; a TCP SYN to a published port is
//! forwarded to the container and the reply leaves from the node's address;
//! from a container, the published port is reached with both addresses
//! translated (hairpin); a non-SYN TCP segment of no flow does not leave
//! untranslated.

mod common;

use common::mac;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use std::sync::Arc;
use switchyard_pipeline::conntrack::{ConntrackConfig, Direction};
use switchyard_pipeline::nat::engine::{Masquerade, Nat};
use switchyard_pipeline::nat::owner::FlowOwners;
use switchyard_pipeline::nat::published::{Protocol, PublishRule, PublishedPorts};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, DropReason, FrameStore, Gateway, L2Config, L2Switch, MacAddr, PacketMeta,
    Timestamp, Verdict,
};

const GW1: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
const UP: Gateway = Gateway {
    ip: Ipv4Addr::new(192, 0, 2, 10),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 3]),
};
const C1: [u8; 4] = [10, 1, 0, 5];
const C2: [u8; 4] = [10, 1, 0, 6];
const FAR: [u8; 4] = [203, 0, 113, 9];

fn chain() -> Chain {
    chain_of(FlowOwners::single(), 0)
}

/// Worker `worker`'s chain, its NAT engine one of those `owners` spreads
/// flows over.
fn chain_of(owners: FlowOwners, worker: u16) -> Chain {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(1, Some(1));
    l2.set_port_domain(3, Some(3));
    let mut chain = Chain::new(l2);
    chain.set_network(
        1,
        Some(RoutedNetwork {
            masquerade: true,
            ..RoutedNetwork::bridge(1, Ipv4Addr::new(10, 1, 0, 0), 24, GW1, true)
        }),
    );
    chain.set_network(
        3,
        Some(RoutedNetwork {
            open: true,
            ..RoutedNetwork::bridge(3, Ipv4Addr::new(192, 0, 2, 0), 24, UP, false)
        }),
    );
    chain
        .router
        .set_default_route(Some((3, Ipv4Addr::new(192, 0, 2, 1))));
    for (ip, host) in [([192, 0, 2, 1], 4u8), (C1, 5), (C2, 6)] {
        chain
            .router
            .set_static_neighbour(Ipv4Addr::from(ip), Some(MacAddr(mac(host))));
    }
    let mut nat = Nat::new(ConntrackConfig {
        max_entries: 1024,
        ..ConntrackConfig::default()
    });
    nat.set_owners(owners, worker);
    nat.set_masquerade(Some(Masquerade {
        address: UP.ip,
        first_port: 1024,
        last_port: 65535,
    }));
    let mut published = PublishedPorts::new();
    published
        .add(PublishRule {
            protocol: Protocol::Tcp,
            host_first: 8080,
            host_last: 8080,
            host_address: None,
            address: Ipv4Addr::from(C1),
            port: 80,
        })
        .unwrap();
    nat.set_published(Arc::new(published), &[UP.ip]);
    chain.router.set_nat(Some(Box::new(nat)), Some(3));
    chain
}

fn run(chain: &mut Chain, frame: Vec<u8>, port: u16) -> (PacketMeta, Vec<u8>) {
    run_at(chain, frame, port, Timestamp::from_secs(1))
}

fn run_at(chain: &mut Chain, frame: Vec<u8>, port: u16, now: Timestamp) -> (PacketMeta, Vec<u8>) {
    let mut frames = vec![frame];
    let mut metas = vec![PacketMeta::new(port); 4];
    let mut batch = Batch::new(&mut frames, &mut metas, now);
    chain.run(&mut batch);
    let meta = batch.metas()[0];
    (meta, frames.frame(0).to_vec())
}

/// Runs `frame` on worker `on` of `chains` as the daemon does: a frame
/// handed to another worker is run there, marked handed in. Returns the
/// worker that processed it with its meta and bytes.
fn deliver(
    chains: &mut [Chain],
    on: usize,
    frame: Vec<u8>,
    port: u16,
) -> (usize, PacketMeta, Vec<u8>) {
    let (meta, out) = run(&mut chains[on], frame.clone(), port);
    let Verdict::HandOff(owner) = meta.verdict else {
        return (on, meta, out);
    };
    let owner = usize::from(owner);
    assert_ne!(owner, on, "never handed to itself");
    assert_eq!(out, frame, "handed over untouched");
    let mut frames = vec![frame];
    let mut metas = vec![PacketMeta::new(port); 4];
    let mut batch = Batch::new(&mut frames, &mut metas, Timestamp::from_secs(1)).handed_in();
    chains[owner].run(&mut batch);
    let meta = batch.metas()[0];
    assert!(
        !matches!(meta.verdict, Verdict::HandOff(_)),
        "never handed on"
    );
    (owner, meta, frames.frame(0).to_vec())
}

fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, b"payload")
        .unwrap();
    out
}

fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    syn: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64_000);
    if syn {
        b.syn().write(&mut out, &[]).unwrap();
    } else {
        b.ack(5).write(&mut out, b"data").unwrap();
    }
    out
}

/// Addresses and ports of a frame, checksums verified by etherparse's view.
fn endpoints(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("IPv4")
    };
    let (s, d) = match &p.transport {
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        other => panic!("{other:?}"),
    };
    (
        ip.header().source_addr(),
        s,
        ip.header().destination_addr(),
        d,
    )
}

#[test]
fn masquerade_translates_out_and_back() {
    let mut chain = chain();
    let (meta, out) = run(&mut chain, udp(mac(5), GW1.mac.0, C1, 4000, FAR, 53), 1);
    assert!(
        matches!(meta.verdict, Verdict::Flood | Verdict::Forward(3)),
        "{meta:?}"
    );
    assert_eq!(
        endpoints(&out),
        (UP.ip, 4000, Ipv4Addr::from(FAR), 53),
        "own port kept"
    );
    // Another container, same source port, same destination: another port.
    let (_, out2) = run(&mut chain, udp(mac(6), GW1.mac.0, C2, 4000, FAR, 53), 1);
    let (src, port, _, _) = endpoints(&out2);
    assert_eq!(src, UP.ip);
    assert_ne!(port, 4000, "no two flows share a translation");
    // The reply to the first comes back to C1.
    let (meta, back) = run(
        &mut chain,
        udp(mac(4), UP.mac.0, FAR, 53, [192, 0, 2, 10], 4000),
        3,
    );
    assert!(
        matches!(meta.verdict, Verdict::Flood | Verdict::Forward(1)),
        "{meta:?}"
    );
    assert_eq!(
        endpoints(&back),
        (Ipv4Addr::from(FAR), 53, Ipv4Addr::from(C1), 4000)
    );
    assert_eq!(&back[0..6], &mac(5));
    let stats = chain.router.nat().unwrap().stats();
    assert_eq!((stats.masqueraded, stats.conntrack.entries), (2, 2));
    // The first flow counted its packet each way, IP length (20 + 8 + 7
    // bytes of payload) each, whichever side of the translation it was on.
    let nat = chain.router.nat().unwrap();
    let first = nat
        .table()
        .entries(Timestamp::from_secs(1))
        .find(|e| e.original.src == Ipv4Addr::from(C1))
        .expect("C1's flow");
    for dir in [Direction::Original, Direction::Reply] {
        let c = first.counters.get(dir);
        assert_eq!((c.packets, c.bytes), (1, 35), "{dir:?}: {first:?}");
    }
}

#[test]
fn a_published_port_reaches_its_container_and_replies_leave_from_the_node() {
    let mut chain = chain();
    let (meta, inbound) = run(
        &mut chain,
        tcp(mac(4), UP.mac.0, FAR, 5555, [192, 0, 2, 10], 8080, true),
        3,
    );
    assert!(
        matches!(meta.verdict, Verdict::Flood | Verdict::Forward(1)),
        "{meta:?}"
    );
    assert_eq!(
        endpoints(&inbound),
        (Ipv4Addr::from(FAR), 5555, Ipv4Addr::from(C1), 80)
    );
    // The container's SYN-ACK goes out from the node's address and port 8080.
    let mut synack = Vec::new();
    PacketBuilder::ethernet2(mac(5), GW1.mac.0)
        .ipv4(C1, FAR, 64)
        .tcp(80, 5555, 7000, 64_000)
        .syn()
        .ack(1001)
        .write(&mut synack, &[])
        .unwrap();
    let (meta, out) = run(&mut chain, synack, 1);
    assert!(
        matches!(meta.verdict, Verdict::Flood | Verdict::Forward(3)),
        "{meta:?}"
    );
    assert_eq!(endpoints(&out), (UP.ip, 8080, Ipv4Addr::from(FAR), 5555));
}

#[test]
fn a_container_reaches_a_published_port_through_the_node_address() {
    let mut chain = chain();
    let (meta, hair) = run(
        &mut chain,
        tcp(mac(6), GW1.mac.0, C2, 40_000, [192, 0, 2, 10], 8080, true),
        1,
    );
    assert!(
        matches!(meta.verdict, Verdict::Flood | Verdict::Forward(1)),
        "{meta:?}"
    );
    let (src, _, dst, dport) = endpoints(&hair);
    assert_eq!(
        (src, dst, dport),
        (UP.ip, Ipv4Addr::from(C1), 80),
        "both sides translated"
    );
    assert_eq!(chain.router.nat().unwrap().stats().hairpin, 1);
}

#[test]
fn a_segment_of_no_flow_never_leaves_untranslated() {
    let mut chain = chain();
    let (meta, _) = run(
        &mut chain,
        tcp(mac(5), GW1.mac.0, C1, 4000, FAR, 80, false),
        1,
    );
    assert_eq!(meta.verdict, Verdict::Drop(DropReason::CtInvalid));
}

#[test]
fn a_one_port_range_serves_one_flow_per_destination_and_counts_the_rest() {
    let mut chain = chain();
    if let Some(nat) = chain.router.nat_mut() {
        nat.set_masquerade(Some(Masquerade {
            address: UP.ip,
            first_port: 40_000,
            last_port: 40_000,
        }));
    }
    let (_, out) = run(&mut chain, udp(mac(5), GW1.mac.0, C1, 4000, FAR, 53), 1);
    assert_eq!(endpoints(&out).1, 40_000);
    let (meta, _) = run(&mut chain, udp(mac(6), GW1.mac.0, C2, 4000, FAR, 53), 1);
    assert_eq!(meta.verdict, Verdict::Drop(DropReason::NatPortsExhausted));
    // Another destination: the same port serves it (endpoint-dependent).
    let (_, out) = run(&mut chain, udp(mac(6), GW1.mac.0, C2, 4000, FAR, 54), 1);
    assert_eq!(endpoints(&out).1, 40_000);
    assert_eq!(chain.router.nat().unwrap().stats().ports_exhausted, 1);
}

/// Two workers, each with its own engine, packets landing on either one:
/// every masqueraded flow leaves translated and its reply comes back to its
/// container, every connection to the published port reaches the container
/// and its replies leave from the node's port, and both workers own flows.
#[test]
fn two_workers_see_both_directions_of_every_flow_wherever_packets_land() {
    let owners = FlowOwners::with_seed(2, 42);
    let mut chains = [chain_of(owners, 0), chain_of(owners, 1)];
    let mut owned = [0usize; 2];
    for flow in 0..64u16 {
        let sport = 4000 + flow;
        let out_on = usize::from(flow % 2);
        let (owner, meta, out) = deliver(
            &mut chains,
            out_on,
            udp(mac(5), GW1.mac.0, C1, sport, FAR, 53),
            1,
        );
        assert!(
            matches!(meta.verdict, Verdict::Flood | Verdict::Forward(3)),
            "{meta:?}"
        );
        owned[owner] += 1;
        let (src, port, dst, _) = endpoints(&out);
        assert_eq!((src, dst), (UP.ip, Ipv4Addr::from(FAR)), "flow {flow}");
        // The reply lands on either worker and finds its flow.
        let reply = udp(mac(4), UP.mac.0, FAR, 53, [192, 0, 2, 10], port);
        let (back_owner, meta, back) = deliver(&mut chains, usize::from(flow % 3 == 0), reply, 3);
        assert_eq!(back_owner, owner, "flow {flow}: the reply met its flow");
        assert!(
            matches!(meta.verdict, Verdict::Flood | Verdict::Forward(1)),
            "{meta:?}"
        );
        assert_eq!(
            endpoints(&back),
            (Ipv4Addr::from(FAR), 53, Ipv4Addr::from(C1), sport)
        );

        // A connection to the published port, and the container's answer
        // on the other worker.
        let cport = 30_000 + flow;
        let syn = tcp(mac(4), UP.mac.0, FAR, cport, [192, 0, 2, 10], 8080, true);
        let (owner, meta, inbound) = deliver(&mut chains, out_on, syn, 3);
        assert!(
            matches!(meta.verdict, Verdict::Flood | Verdict::Forward(1)),
            "{meta:?}"
        );
        assert_eq!(
            endpoints(&inbound),
            (Ipv4Addr::from(FAR), cport, Ipv4Addr::from(C1), 80)
        );
        let mut synack = Vec::new();
        PacketBuilder::ethernet2(mac(5), GW1.mac.0)
            .ipv4(C1, FAR, 64)
            .tcp(80, cport, 7000, 64_000)
            .syn()
            .ack(1001)
            .write(&mut synack, &[])
            .unwrap();
        let (answer_owner, meta, out) = deliver(&mut chains, 1 - out_on, synack, 1);
        assert_eq!(answer_owner, owner, "flow {flow}: the answer met its flow");
        assert!(
            matches!(meta.verdict, Verdict::Flood | Verdict::Forward(3)),
            "{meta:?}"
        );
        assert_eq!(endpoints(&out), (UP.ip, 8080, Ipv4Addr::from(FAR), cport));
    }
    assert!(
        owned.iter().all(|&n| n > 8),
        "flows spread over both: {owned:?}"
    );
    let total: usize = chains
        .iter()
        .map(|c| c.router.nat().unwrap().stats().conntrack.entries)
        .sum();
    assert_eq!(total, 128, "one entry per flow, on its owner only");
}

/// A container that is gone takes its flows with it: after its port is
/// unbound, the reply to its masqueraded flow is no longer translated to it,
/// and a client's next datagram to the published port is a new connection
/// (here to the rule's new container) even before the walk of the table is
/// done; the walk then removes every such entry, and only those.
#[test]
fn an_unbound_container_takes_its_flows_with_it() {
    use switchyard_pipeline::PortBinding;
    let mut chain = chain();
    // C2's flow first: port 1 is then bound to C1 alone.
    let (_, _) = run(&mut chain, udp(mac(6), GW1.mac.0, C2, 4001, FAR, 53), 1);
    chain.bind_port(
        1,
        Some(PortBinding {
            mac: MacAddr(mac(5)),
            ip: Some(Ipv4Addr::from(C1)),
        }),
    );
    let (_, out) = run(&mut chain, udp(mac(5), GW1.mac.0, C1, 4000, FAR, 53), 1);
    let (_, port, _, _) = endpoints(&out);
    let syn = || tcp(mac(4), UP.mac.0, FAR, 5555, [192, 0, 2, 10], 8080, true);
    let (_, inbound) = run(&mut chain, syn(), 3);
    assert_eq!(endpoints(&inbound).2, Ipv4Addr::from(C1));
    assert_eq!(chain.router.nat().unwrap().stats().conntrack.entries, 3);

    // C1 goes; the published port now leads to C2.
    let later = Timestamp::from_secs(2);
    chain.bind_port(1, None);
    assert!(chain.router.nat().unwrap().forgetting(), "the walk begins");
    let mut published = PublishedPorts::new();
    published
        .add(PublishRule {
            protocol: Protocol::Tcp,
            host_first: 8080,
            host_last: 8080,
            host_address: None,
            address: Ipv4Addr::from(C2),
            port: 80,
        })
        .unwrap();
    chain
        .router
        .nat_mut()
        .unwrap()
        .set_published(Arc::new(published), &[UP.ip]);
    // The same client connection again: to C2 at once.
    let (_, inbound) = run_at(&mut chain, syn(), 3, later);
    assert_eq!(
        endpoints(&inbound),
        (Ipv4Addr::from(FAR), 5555, Ipv4Addr::from(C2), 80),
        "a new connection, not the dead container's"
    );
    // The reply to C1's old flow is not translated to C1 any more.
    let (meta, _) = run_at(
        &mut chain,
        udp(mac(4), UP.mac.0, FAR, 53, [192, 0, 2, 10], port),
        3,
        later,
    );
    assert!(matches!(meta.verdict, Verdict::Drop(_)), "{meta:?}");
    // A new container on C1's address, while the walk is under way: its
    // new flow lives on (made after the address was forgotten).
    let (_, out) = run_at(
        &mut chain,
        udp(mac(7), GW1.mac.0, C1, 4100, FAR, 53),
        1,
        later,
    );
    let (_, port, _, _) = endpoints(&out);
    let reply = udp(mac(4), UP.mac.0, FAR, 53, [192, 0, 2, 10], port);
    let (_, back) = run_at(&mut chain, reply, 3, later);
    assert_eq!(
        endpoints(&back),
        (Ipv4Addr::from(FAR), 53, Ipv4Addr::from(C1), 4100),
        "the new container's flow is kept"
    );
    // Routed batches walk the rest of the table (1,024 slots, 256 per
    // batch).
    for _ in 0..8 {
        let (_, _) = run_at(
            &mut chain,
            udp(mac(6), GW1.mac.0, C2, 4001, FAR, 53),
            1,
            later,
        );
    }
    let nat = chain.router.nat().unwrap();
    assert!(!nat.forgetting(), "walked");
    let left: Vec<_> = nat.table().entries(later).collect();
    assert!(
        !left
            .iter()
            .any(|e| e.original.src == Ipv4Addr::from(C1) && e.original.src_port == 4000),
        "the old C1's flow is gone: {left:?}"
    );
    assert_eq!(
        left.len(),
        3,
        "C2's flow, the new connection and the new C1's flow stay: {left:?}"
    );
}

/// Many containers gone at once share one walk of the table: every one's
/// flows are removed after a single turn of it, and the others' stay.
#[test]
fn many_forgotten_addresses_share_one_walk() {
    let mut chain = chain();
    let gone: Vec<[u8; 4]> = (10..40).map(|h| [10, 1, 0, h]).collect();
    for (k, c) in gone.iter().enumerate() {
        let _ = run(
            &mut chain,
            udp(mac(9), GW1.mac.0, *c, 5000 + k as u16, FAR, 53),
            1,
        );
    }
    let _ = run(&mut chain, udp(mac(6), GW1.mac.0, C2, 4001, FAR, 53), 1);
    let nat = chain.router.nat_mut().unwrap();
    assert_eq!(nat.stats().conntrack.entries, gone.len() + 1);
    for c in &gone {
        nat.forget_address(Ipv4Addr::from(*c));
    }
    let later = Timestamp::from_secs(2);
    // 1,024 slots, 256 per routed batch: four batches walk them all.
    for _ in 0..4 {
        let _ = run_at(
            &mut chain,
            udp(mac(6), GW1.mac.0, C2, 4001, FAR, 53),
            1,
            later,
        );
    }
    let nat = chain.router.nat().unwrap();
    assert!(!nat.forgetting(), "one turn of the walk retired them all");
    let left: Vec<_> = nat.table().entries(later).collect();
    assert_eq!(left.len(), 1, "only C2's flow stays: {left:?}");
    assert_eq!(left[0].original.src, Ipv4Addr::from(C2));
    assert_eq!(nat.stats().forgets_cut_short, 0);
}
