//! The router in memory: a routed frame leaves with the egress network's
//! gateway MAC as source, the next hop's MAC as destination and its TTL one
//! lower with a header checksum that is still right; an expiring TTL is
//! answered with a valid ICMP time exceeded; isolated networks are refused; an
//! unknown next hop is asked for with ARP, and its reply makes the next frame
//! go through.

mod common;

use common::mac;
use etherparse::{Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use switchyard_pipeline::checksum::{fold, ipv4_header_checksum, sum_be_words};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, DropReason, FrameStore, Gateway, L2Config, L2Switch, MacAddr, PacketMeta,
    Timestamp, Verdict,
};

const GW1: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
const GW2: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 2, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 2]),
};
const SRC_IP: [u8; 4] = [10, 1, 0, 5];
const DST_IP: [u8; 4] = [10, 2, 0, 7];

/// Port 1 in domain 1 (10.1.0.0/24), port 2 in domain 2 (10.2.0.0/24); both
/// open unless `isolated`; 10.2.0.7 is a static neighbour at mac(2).
fn chain(isolated: bool) -> Chain {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(1, Some(1));
    l2.set_port_domain(2, Some(2));
    let mut chain = Chain::new(l2);
    for (domain, gw) in [(1, GW1), (2, GW2)] {
        chain.set_gateway(domain, Some(gw));
        let o = gw.ip.octets();
        chain.router.set_network(RoutedNetwork {
            domain,
            subnet: Ipv4Addr::new(o[0], o[1], o[2], 0),
            prefix_len: 24,
            gateway: gw,
            isolated: isolated && domain == 2,
            open: false,
            mtu: switchyard_pipeline::router::DEFAULT_MTU,
            masquerade: false,
        });
    }
    chain
        .router
        .set_static_neighbour(Ipv4Addr::from(DST_IP), Some(MacAddr(mac(2))));
    chain
}

fn udp(dst_ip: [u8; 4], ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(1), GW1.mac.0)
        .ipv4(SRC_IP, dst_ip, ttl)
        .udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, b"routed payload").unwrap();
    out
}

/// Runs the chain over `frames` received on `port`, with room for 4 originated.
fn run(chain: &mut Chain, frames: &mut Vec<Vec<u8>>, port: u16, secs: u64) -> Vec<PacketMeta> {
    let mut metas = vec![PacketMeta::new(port); frames.len() + 4];
    let mut batch = Batch::new(frames, &mut metas, Timestamp::from_secs(secs));
    chain.run(&mut batch);
    batch.metas().to_vec()
}

fn header_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    u16::from_be_bytes([ip[10], ip[11]]) == ipv4_header_checksum(ip)
}

#[test]
fn a_routed_frame_gets_a_new_l2_header_and_one_less_ttl() {
    let mut chain = chain(false);
    let mut frames = vec![udp(DST_IP, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas.len(), 1, "nothing originated");
    // The egress port is not known yet: flooded in the egress network.
    assert_eq!(metas[0].verdict, Verdict::Flood);
    assert_eq!(metas[0].domain, 2);
    let f = frames.frame(0);
    assert_eq!(&f[0..6], &mac(2), "to the next hop");
    assert_eq!(&f[6..12], &GW2.mac.0, "from the egress gateway");
    assert_eq!(f[14 + 8], 63);
    assert!(header_checksum_ok(f), "incremental checksum update");
    let p = SlicedPacket::from_ethernet(f).unwrap();
    assert!(matches!(p.transport, Some(TransportSlice::Udp(_))));

    // Once the L2 table knows mac(2) on port 2 (a frame from it there), the
    // next one goes there only.
    let mut learn = vec![common::udp4(mac(2), mac(9), b"hello")];
    run(&mut chain, &mut learn, 2, 1);
    let mut frames = vec![udp(DST_IP, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Forward(2));
}

#[test]
fn an_expiring_ttl_is_answered_with_time_exceeded() {
    let mut chain = chain(false);
    let mut frames = vec![udp(DST_IP, 1)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::TtlExpired));
    assert_eq!(metas[1].verdict, Verdict::Forward(1), "back to the sender");
    let reply = frames.frame(1).to_vec();
    assert_eq!(&reply[0..6], &mac(1));
    assert_eq!(&reply[6..12], &GW1.mac.0);
    assert!(header_checksum_ok(&reply));
    let p = SlicedPacket::from_ethernet(&reply).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("IPv4 expected")
    };
    assert_eq!(ip.header().source_addr(), GW1.ip);
    assert_eq!(ip.header().destination_addr(), Ipv4Addr::from(SRC_IP));
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("ICMP expected")
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
    let body = &reply[34..];
    assert_eq!(!fold(sum_be_words(body, 0)), 0, "ICMP checksum");
    // It quotes the original header and 8 bytes of its payload.
    assert_eq!(&body[8..28], &frames.frame(0)[14..34]);
    assert_eq!(body.len(), 8 + 20 + 8);
}

#[test]
fn isolated_networks_are_refused() {
    let mut chain = chain(true);
    let mut frames = vec![udp(DST_IP, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::Isolated));
    let mut frames = vec![udp([192, 0, 2, 9], 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::NoRoute));
}

/// An ARP reply from `from_mac` for `ip`, to GW2.
fn arp_reply(from_mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut reply = from_mac.to_vec();
    reply.splice(0..0, GW2.mac.0);
    reply.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&from_mac);
    reply.extend_from_slice(&ip);
    reply.extend_from_slice(&GW2.mac.0);
    reply.extend_from_slice(&GW2.ip.octets());
    reply
}

#[test]
fn an_unknown_next_hop_is_asked_for_and_waiting_frames_follow_its_answer() {
    let mut chain = chain(false);
    let target = [10, 2, 0, 9];
    let free = chain.router.free_parking();
    let mut frames = vec![udp(target, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Local, "held (a copy waits)");
    assert_eq!(metas[1].verdict, Verdict::Flood, "an ARP request");
    assert_eq!(metas[1].domain, 2);
    let req = frames.frame(1).to_vec();
    assert_eq!(&req[0..6], &[0xff; 6]);
    assert_eq!(&req[12..14], &[0x08, 0x06]);
    assert_eq!(&req[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
    assert_eq!(&req[28..32], &GW2.ip.octets());
    assert_eq!(&req[38..42], &target);
    // More frames within the retry time ask nothing more; up to the
    // neighbour's queue they wait, the rest are dropped.
    let mut frames: Vec<Vec<u8>> = (0..5).map(|_| udp(target, 64)).collect();
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas.len(), 5, "no second request");
    let verdicts: Vec<_> = metas.iter().map(|m| m.verdict).collect();
    let held = Verdict::Local;
    let dropped = Verdict::Drop(DropReason::UnresolvedNextHop);
    assert_eq!(verdicts, [held, held, held, dropped, dropped]);
    assert_eq!(chain.router.free_parking(), free - 4);

    // The answer, to the gateway MAC, from mac(3) on port 2: consumed, learned,
    // and the four waiting frames leave with it, rewritten, in order.
    let mut frames = vec![arp_reply(mac(3), target)];
    let metas = run(&mut chain, &mut frames, 2, 1);
    assert_eq!(metas[0].verdict, Verdict::Local);
    assert_eq!(metas.len(), 5, "four released frames: {metas:?}");
    for (k, m) in metas[1..].iter().enumerate() {
        let f = frames.frame(k + 1);
        assert_eq!(m.verdict, Verdict::Forward(2), "mac(3) is on port 2");
        assert_eq!(&f[0..6], &mac(3));
        assert_eq!(&f[6..12], &GW2.mac.0);
        assert_eq!(f[14 + 8], 63, "TTL decremented once");
        assert!(header_checksum_ok(f));
    }
    assert_eq!(chain.router.free_parking(), free, "every buffer given back");
    assert_eq!(
        chain.router.neighbours().lookup(Ipv4Addr::from(target)),
        Some(MacAddr(mac(3)))
    );
    let mut frames = vec![udp(target, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Forward(2));
    assert_eq!(&frames.frame(0)[0..6], &mac(3));
}

#[test]
fn frames_for_a_neighbour_that_never_answers_are_dropped_and_their_buffers_freed() {
    let mut chain = chain(false);
    let free = chain.router.free_parking();
    let mut frames = vec![udp([10, 2, 0, 9], 64)];
    run(&mut chain, &mut frames, 1, 1);
    assert_eq!(chain.router.free_parking(), free - 1);
    // Retried every second (each batch looks at the waiting entries), three
    // requests in all, then the entry fails.
    let mut requests = 1;
    for secs in 2..6 {
        let mut frames = vec![udp(DST_IP, 64)];
        let metas = run(&mut chain, &mut frames, 1, secs);
        requests += metas
            .iter()
            .filter(|m| m.verdict == Verdict::Flood && m.ethertype == 0x0806)
            .count();
    }
    assert_eq!(requests, 3, "the first request and two retries");
    assert_eq!(chain.router.free_parking(), free);
    assert!(
        chain
            .router
            .counters()
            .drops
            .get(DropReason::UnresolvedNextHop)
            >= 1
    );
    // Counted for the port it came in on, too.
    let mut late = Vec::new();
    chain
        .router
        .drain_late_drops(|port, reason| late.push((port, reason)));
    assert_eq!(late, [(1, DropReason::UnresolvedNextHop)]);
}

/// Domain 3: an open "uplink" 192.0.2.0/24 (MTU 1400) with the default route
/// through 192.0.2.1, a static neighbour at mac(4) on port 3.
fn with_uplink(mut chain: Chain) -> Chain {
    const UP: Gateway = Gateway {
        ip: Ipv4Addr::new(192, 0, 2, 10),
        mac: MacAddr([0x02, 0xaa, 0, 0, 0, 3]),
    };
    chain.l2.set_port_domain(3, Some(3));
    chain.set_network(
        3,
        Some(RoutedNetwork {
            domain: 3,
            subnet: Ipv4Addr::new(192, 0, 2, 0),
            prefix_len: 24,
            gateway: UP,
            isolated: false,
            open: true,
            mtu: 1400,
            masquerade: false,
        }),
    );
    chain
        .router
        .set_default_route(Some((3, Ipv4Addr::new(192, 0, 2, 1))));
    chain
        .router
        .set_static_neighbour(Ipv4Addr::new(192, 0, 2, 1), Some(MacAddr(mac(4))));
    chain
}

#[test]
fn the_default_route_goes_to_its_next_hop_and_open_networks_reach_isolated_ones() {
    // Domain 2 is isolated: it reaches the open uplink and back, not domain 1.
    let mut chain = with_uplink(chain(true));
    let mut frames = vec![udp([203, 0, 113, 7], 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Flood);
    assert_eq!(metas[0].domain, 3, "out of the uplink");
    assert_eq!(
        &frames.frame(0)[0..6],
        &mac(4),
        "to the default route's next hop"
    );
    assert_eq!(&frames.frame(0)[6..12], &[0x02, 0xaa, 0, 0, 0, 3]);
    // From the uplink into isolated domain 2.
    let b = PacketBuilder::ethernet2(mac(4), [0x02, 0xaa, 0, 0, 0, 3])
        .ipv4([203, 0, 113, 7], DST_IP, 64)
        .udp(53, 4000);
    let mut inbound = Vec::new();
    b.write(&mut inbound, b"reply").unwrap();
    let mut frames = vec![inbound];
    let metas = run(&mut chain, &mut frames, 3, 1);
    assert_eq!(metas[0].domain, 2);
    assert_eq!(&frames.frame(0)[0..6], &mac(2));
    assert!(matches!(
        metas[0].verdict,
        Verdict::Flood | Verdict::Forward(2)
    ));
}

#[test]
fn a_df_datagram_over_the_egress_mtu_is_answered_with_fragmentation_needed() {
    let mut chain = with_uplink(chain(false));
    let big = |df: bool| {
        let b = PacketBuilder::ethernet2(mac(1), GW1.mac.0)
            .ipv4(SRC_IP, [192, 0, 2, 1], 64)
            .udp(4000, 53);
        let mut out = Vec::new();
        b.write(&mut out, &[7u8; 1400]).unwrap();
        if df {
            out[14 + 6] |= 0x40;
        } else {
            out[14 + 6] &= !0x40;
        }
        out[24..26].copy_from_slice(&[0, 0]);
        let sum = ipv4_header_checksum(&out[14..34]);
        out[24..26].copy_from_slice(&sum.to_be_bytes());
        out
    };
    let mut frames = vec![big(true)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::MtuExceeded));
    assert_eq!(metas[1].verdict, Verdict::Forward(1), "back to the sender");
    let reply = frames.frame(1).to_vec();
    assert!(header_checksum_ok(&reply));
    let p = SlicedPacket::from_ethernet(&reply).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("IPv4 expected")
    };
    assert_eq!(ip.header().source_addr(), GW1.ip);
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("ICMP expected")
    };
    match icmp.icmp_type() {
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
        ) => {
            assert_eq!(next_hop_mtu, 1400)
        }
        other => panic!("fragmentation-needed expected, got {other:?}"),
    }
    let icmp_bytes = &reply[34..];
    assert_eq!(fold(sum_be_words(icmp_bytes, 0)), 0xffff, "ICMP checksum");
    // Without DF: dropped, not answered (the switch does not fragment).
    let mut frames = vec![big(false)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::MtuExceeded));
}

#[test]
fn icmp_errors_are_not_answered_with_errors_and_are_paced() {
    let mut chain = chain(false);
    // An ICMP error (destination unreachable) with TTL 1: dropped, unanswered.
    let b = PacketBuilder::ethernet2(mac(1), GW1.mac.0)
        .ipv4(SRC_IP, DST_IP, 1)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut error = Vec::new();
    b.write(&mut error, &[0u8; 28]).unwrap();
    let mut frames = vec![error];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(metas.len(), 1, "no error about an error");
    assert_eq!(metas[0].verdict, Verdict::Drop(DropReason::TtlExpired));
    // A flood of expiring frames gets at most the pacer's burst of answers.
    let mut answered = 0;
    for _ in 0..10 {
        let mut frames: Vec<Vec<u8>> = (0..20).map(|_| udp(DST_IP, 1)).collect();
        let mut metas = vec![PacketMeta::new(1); 40];
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp::from_secs(5));
        chain.run(&mut batch);
        answered += batch.len() - 20;
    }
    assert_eq!(answered, 50, "the pacer's burst, within one instant");
}
