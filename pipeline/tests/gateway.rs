//! The gateway responder stage in memory: ARP replies originated into fresh
//! frames, ICMP echo replies rewritten in place with valid checksums (checked
//! by etherparse), and everything not addressed to the gateway left alone.

mod common;

use common::*;
use etherparse::{Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use switchyard_pipeline::checksum::{fold, sum_be_words};
use switchyard_pipeline::gateway::{ARP_FRAME_LEN, REPLY_TTL};
use switchyard_pipeline::{
    Batch, Chain, DropReason, FrameStore, Gateway, GatewayStage, L2Config, L2Switch, MacAddr,
    PacketMeta, Stage, Timestamp, Verdict,
};

const GW_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const GW_IP: [u8; 4] = [172, 30, 0, 1];
const DOMAIN: u16 = 4;

fn gateway() -> Gateway {
    Gateway {
        ip: Ipv4Addr::from(GW_IP),
        mac: MacAddr(GW_MAC),
    }
}

/// A chain that knows the gateway MAC, and a responder for the gateway address:
/// ports 1 and 2 in DOMAIN.
fn setup() -> (Chain, GatewayStage) {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(1, Some(DOMAIN));
    l2.set_port_domain(2, Some(DOMAIN));
    l2.set_domain_gateway(DOMAIN, Some(MacAddr(GW_MAC)));
    let mut gw = GatewayStage::new();
    gw.set_gateway(DOMAIN, Some(gateway()));
    (Chain::new(l2), gw)
}

fn arp_request(sender: [u8; 6], sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut f = BROADCAST.to_vec();
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f
}

fn echo_request(src: [u8; 6], dst_mac: [u8; 6], dst_ip: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst_mac)
        .ipv4(V4_SRC, dst_ip, 3)
        .icmpv4_echo_request(0x4242, 9);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Runs parse, L2 and the responder over `frames`, all received on port 1,
/// with room for `spare` originated frames.
fn run(
    chain: &mut Chain,
    gw: &mut GatewayStage,
    frames: &mut Vec<Vec<u8>>,
    spare: usize,
) -> Vec<PacketMeta> {
    let mut metas = vec![PacketMeta::new(1); frames.len() + spare];
    let mut batch = Batch::new(frames, &mut metas, Timestamp::from_secs(1));
    chain.run(&mut batch);
    gw.process(&mut batch);
    batch.metas().to_vec()
}

#[test]
fn arp_for_the_gateway_gets_an_originated_reply() {
    let (mut chain, mut gw) = setup();
    let mut frames = vec![arp_request(mac(7), V4_SRC, GW_IP)];
    let metas = run(&mut chain, &mut gw, &mut frames, 1);
    assert_eq!(metas.len(), 2);
    assert_eq!(metas[0].verdict, Verdict::Local, "the request is consumed");
    assert_eq!(
        metas[1].verdict,
        Verdict::Forward(1),
        "back where it came from"
    );
    assert_eq!(metas[1].domain, DOMAIN);
    let reply = frames.frame(1);
    assert_eq!(reply.len(), ARP_FRAME_LEN);
    assert_eq!(&reply[..6], &mac(7));
    assert_eq!(&reply[6..12], &GW_MAC);
    assert_eq!(&reply[12..14], &[0x08, 0x06]);
    assert_eq!(&reply[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 2], "an ARP reply");
    assert_eq!(&reply[22..28], &GW_MAC, "sender: the gateway MAC");
    assert_eq!(&reply[28..32], &GW_IP, "for the gateway address");
    assert_eq!(&reply[32..38], &mac(7));
    assert_eq!(&reply[38..42], &V4_SRC);
    assert!(reply[42..].iter().all(|b| *b == 0), "zero padding");
    assert_eq!(gw.stats().arp_replies, 1);
    let c = gw.counters();
    assert_eq!(
        (c.frames_in, c.local, c.originated, c.forwarded),
        (1, 1, 1, 1)
    );
}

#[test]
fn arp_for_anyone_else_is_flooded_as_before() {
    let (mut chain, mut gw) = setup();
    let mut frames = vec![
        arp_request(mac(7), V4_SRC, V4_DST),
        // Gratuitous ARP claiming the gateway address: not answered.
        arp_request(mac(7), GW_IP, GW_IP),
    ];
    let metas = run(&mut chain, &mut gw, &mut frames, 2);
    assert_eq!(metas.len(), 2, "nothing originated");
    assert!(metas.iter().all(|m| m.verdict == Verdict::Flood));
    assert_eq!(gw.counters().frames_in, 0);
}

#[test]
fn without_a_spare_frame_the_request_is_dropped_and_counted() {
    let (mut chain, mut gw) = setup();
    let mut frames = vec![arp_request(mac(7), V4_SRC, GW_IP)];
    let metas = run(&mut chain, &mut gw, &mut frames, 0);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::NoFreeFrame));
    assert_eq!(gw.counters().drops.get(DropReason::NoFreeFrame), 1);
}

#[test]
fn echo_to_the_gateway_is_answered_in_place_with_valid_checksums() {
    let (mut chain, mut gw) = setup();
    let payload: Vec<u8> = (0..100u8).collect();
    let mut frames = vec![echo_request(mac(7), GW_MAC, GW_IP, &payload)];
    let request = frames[0].clone();
    let metas = run(&mut chain, &mut gw, &mut frames, 1);
    assert_eq!(metas.len(), 1, "answered in place, nothing originated");
    assert_eq!(metas[0].verdict, Verdict::Forward(1));
    let reply = &frames[0];
    assert_eq!(reply.len(), request.len());
    assert_eq!(&reply[..6], &mac(7));
    assert_eq!(&reply[6..12], &GW_MAC);

    let p = SlicedPacket::from_ethernet(reply).expect("the reply parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4");
    };
    let h = ip.header();
    assert_eq!(h.source(), GW_IP);
    assert_eq!(h.destination(), V4_SRC);
    assert_eq!(h.ttl(), REPLY_TTL);
    assert_eq!(
        h.header_checksum(),
        h.to_header().calc_header_checksum(),
        "IPv4 header checksum"
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP");
    };
    match icmp.icmp_type() {
        Icmpv4Type::EchoReply(e) => assert_eq!((e.id, e.seq), (0x4242, 9)),
        other => panic!("not an echo reply: {other:?}"),
    }
    assert_eq!(icmp.payload(), &payload[..]);
    assert_eq!(fold(sum_be_words(icmp.slice(), 0)), 0xffff, "ICMP checksum");
    assert_eq!(gw.stats().echo_replies, 1);
}

#[test]
fn traffic_through_the_gateway_is_left_for_routing() {
    let (mut chain, mut gw) = setup();
    let mut frames = vec![
        // To the gateway MAC but another address: to be routed.
        echo_request(mac(7), GW_MAC, [8, 8, 8, 8], b"x"),
        udp4(mac(7), GW_MAC, b"dns"),
        // Echo to a neighbour: switched, not answered.
        echo_request(mac(7), mac(8), V4_DST, b"y"),
    ];
    // An echo "from" the broadcast address is not answered either.
    let spoofed = {
        let b = PacketBuilder::ethernet2(mac(7), GW_MAC)
            .ipv4([255, 255, 255, 255], GW_IP, 3)
            .icmpv4_echo_request(1, 1);
        let mut out = Vec::new();
        b.write(&mut out, b"z").unwrap();
        out
    };
    frames.push(spoofed);
    let before = frames.clone();
    let metas = run(&mut chain, &mut gw, &mut frames, 4);
    assert_eq!(metas.len(), 4);
    assert_eq!(metas[0].verdict, Verdict::ToGateway);
    assert_eq!(metas[1].verdict, Verdict::ToGateway);
    assert_eq!(metas[2].verdict, Verdict::Flood);
    assert_eq!(metas[3].verdict, Verdict::ToGateway);
    assert_eq!(frames, before, "no frame touched");
    assert_eq!(gw.counters().to_gateway, 3);
}

#[test]
fn a_network_without_gateway_gets_no_answers() {
    let (mut chain, mut gw) = setup();
    gw.set_gateway(DOMAIN, None);
    let mut frames = vec![arp_request(mac(7), V4_SRC, GW_IP)];
    let metas = run(&mut chain, &mut gw, &mut frames, 1);
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].verdict, Verdict::Flood);
}

proptest::proptest! {
    /// Any echo request (odd and even payloads, any id and sequence) gets a
    /// reply whose IPv4 and ICMP checksums verify.
    #[test]
    fn echo_replies_always_carry_valid_checksums(
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        id in proptest::prelude::any::<u16>(),
        seq in proptest::prelude::any::<u16>(),
        ttl in 1u8..,
    ) {
        let (mut chain, mut gw) = setup();
        let b = PacketBuilder::ethernet2(mac(7), GW_MAC)
            .ipv4(V4_SRC, GW_IP, ttl)
            .icmpv4_echo_request(id, seq);
        let mut frame = Vec::new();
        b.write(&mut frame, &payload).unwrap();
        let mut frames = vec![frame];
        let metas = run(&mut chain, &mut gw, &mut frames, 0);
        proptest::prop_assert_eq!(metas[0].verdict, Verdict::Forward(1));
        let p = SlicedPacket::from_ethernet(&frames[0]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
        let h = ip.header();
        proptest::prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else { panic!("not ICMP") };
        proptest::prop_assert_eq!(fold(sum_be_words(icmp.slice(), 0)), 0xffff);
        proptest::prop_assert!(matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == id && e.seq == seq));
    }

    /// The incremental update equals summing the data again.
    #[test]
    fn incremental_update_matches_a_full_recomputation(
        words in proptest::collection::vec(proptest::prelude::any::<u16>(), 1..40),
        at in proptest::prelude::any::<proptest::sample::Index>(),
        new in proptest::prelude::any::<u16>(),
    ) {
        use switchyard_pipeline::checksum::incremental_update;
        let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let full = |w: &[u16]| !fold(sum_be_words(&bytes(w), 0));
        let mut w = words.clone();
        let i = at.index(w.len());
        let before = full(&w);
        let old = w[i];
        w[i] = new;
        let updated = incremental_update(before, old, new);
        // Equal as ones'-complement values (0x0000 and 0xffff are both zero).
        let norm = |x: u16| if x == 0xffff { 0 } else { x };
        proptest::prop_assert_eq!(norm(updated), norm(full(&w)));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// ARP and echo requests with bytes flipped or cut: never a panic, replies
    /// only back to the ingress port, one 60-byte ARP reply per consumed request,
    /// and an echo reply as long as its request.
    #[test]
    fn mutated_requests_never_break_the_responder(
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            0..4,
        ),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        which in 0..2u8,
    ) {
        let (mut chain, mut gw) = setup();
        let mut frame = if which == 0 {
            arp_request(mac(7), V4_SRC, GW_IP)
        } else {
            echo_request(mac(7), GW_MAC, GW_IP, b"0123456789")
        };
        for (at, v) in flips {
            let i = at.index(frame.len());
            frame[i] = v;
        }
        frame.truncate(cut.index(frame.len() + 1).max(frame.len() / 2));
        let len = frame.len();
        let mut frames = vec![frame];
        let metas = run(&mut chain, &mut gw, &mut frames, 1);
        proptest::prop_assert!(metas.iter().all(|m| !m.verdict.is_pending()));
        if metas.len() == 2 {
            proptest::prop_assert_eq!(metas[0].verdict, Verdict::Local);
            proptest::prop_assert_eq!(metas[1].verdict, Verdict::Forward(1));
            proptest::prop_assert_eq!(frames[1].len(), ARP_FRAME_LEN);
        } else if metas[0].verdict == Verdict::Forward(1) {
            proptest::prop_assert_eq!(frames[0].len(), len);
            proptest::prop_assert_eq!(gw.stats().echo_replies, 1);
        }
    }
}
