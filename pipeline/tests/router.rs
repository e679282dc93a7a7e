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

#[test]
fn an_unknown_next_hop_is_asked_for_and_its_answer_is_used() {
    let mut chain = chain(false);
    let target = [10, 2, 0, 9];
    let mut frames = vec![udp(target, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(
        metas[0].verdict,
        Verdict::Drop(DropReason::UnresolvedNextHop)
    );
    assert_eq!(metas[1].verdict, Verdict::Flood, "an ARP request");
    assert_eq!(metas[1].domain, 2);
    let req = frames.frame(1).to_vec();
    assert_eq!(&req[0..6], &[0xff; 6]);
    assert_eq!(&req[12..14], &[0x08, 0x06]);
    assert_eq!(&req[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
    assert_eq!(&req[28..32], &GW2.ip.octets());
    assert_eq!(&req[38..42], &target);
    // A second frame within the retry time asks nothing more.
    let mut frames = vec![udp(target, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(
        metas.iter().filter(|m| m.verdict == Verdict::Flood).count(),
        0
    );

    // The answer, to the gateway MAC, from mac(3) on port 2: consumed, learned.
    let mut reply = mac(3).to_vec();
    reply.splice(0..0, GW2.mac.0);
    reply.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&mac(3));
    reply.extend_from_slice(&target);
    reply.extend_from_slice(&GW2.mac.0);
    reply.extend_from_slice(&GW2.ip.octets());
    let mut frames = vec![reply];
    let metas = run(&mut chain, &mut frames, 2, 1);
    assert_eq!(metas[0].verdict, Verdict::Local);
    assert_eq!(
        chain.router.neighbours().lookup(Ipv4Addr::from(target)),
        Some(MacAddr(mac(3)))
    );
    let mut frames = vec![udp(target, 64)];
    let metas = run(&mut chain, &mut frames, 1, 1);
    assert_eq!(
        metas[0].verdict,
        Verdict::Forward(2),
        "mac(3) was learned on port 2"
    );
    assert_eq!(&frames.frame(0)[0..6], &mac(3));
}
