//! Routing allocates nothing: the chain routing frames between two networks
//! and out of an open uplink network (static neighbours, new L2 headers, TTL
//! updates), answering with ICMP time exceeded and fragmentation-needed,
//! asking ARP for an unknown next hop, parking the frame and sending it with
//! the answer one batch later, runs thousands of batches under a counting
//! global allocator without one allocation (own test binary: the counter is
//! global).

use std::net::Ipv4Addr;
use switchyard_drivers::memory::MemPool;
use switchyard_drivers::{BatchFrames, FramePool};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, DropReason, Gateway, L2Config, L2Switch, MacAddr, PacketMeta, Timestamp, Verdict,
};

mod common;

const GW1: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
const GW2: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 2, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 2]),
};
const UP: Gateway = Gateway {
    ip: Ipv4Addr::new(192, 0, 2, 10),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 3]),
};
const HOST: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn udp(dst: [u8; 4], ttl: u8, payload: usize, df: bool) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(HOST, GW1.mac.0)
        .ipv4([10, 1, 0, 5], dst, ttl)
        .udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x5a; payload]).unwrap();
    if df {
        out[20] |= 0x40;
    } else {
        out[20] &= !0x40;
    }
    out[24..26].copy_from_slice(&[0, 0]);
    let sum = switchyard_pipeline::checksum::ipv4_header_checksum(&out[14..34]);
    out[24..26].copy_from_slice(&sum.to_be_bytes());
    out
}

fn arp_reply(ip: [u8; 4], mac: [u8; 6]) -> Vec<u8> {
    let mut f = GW2.mac.0.to_vec();
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&GW2.mac.0);
    f.extend_from_slice(&GW2.ip.octets());
    f
}

fn chain() -> Chain {
    let mut l2 = L2Switch::new(L2Config::default());
    for (port, domain) in [(1, 1), (2, 2), (3, 3)] {
        l2.set_port_domain(port, Some(domain));
    }
    let mut chain = Chain::new(l2);
    for (domain, gw, subnet, open, mtu) in [
        (1, GW1, [10, 1, 0, 0], false, 1500),
        (2, GW2, [10, 2, 0, 0], false, 1500),
        (3, UP, [192, 0, 2, 0], true, 1400),
    ] {
        chain.set_network(
            domain,
            Some(RoutedNetwork {
                domain,
                subnet: Ipv4Addr::from(subnet),
                prefix_len: 24,
                gateway: gw,
                isolated: false,
                open,
                mtu,
                masquerade: false,
            }),
        );
    }
    chain
        .router
        .set_default_route(Some((3, Ipv4Addr::new(192, 0, 2, 1))));
    for (ip, host) in [([10, 2, 0, 7], 2), ([192, 0, 2, 1], 3)] {
        chain
            .router
            .set_static_neighbour(Ipv4Addr::from(ip), Some(MacAddr([2, 0, 0, 0, 0, host])));
    }
    chain
}

#[test]
fn routing_allocates_nothing() {
    let mut chain = chain();
    let mut pool = MemPool::new(1024, 2048);
    let mut handles = Vec::with_capacity(128);
    let mut metas = vec![PacketMeta::new(0); 128];
    // Unknown next hops 10.2.0.100..108, one asked per turn and answered in
    // the next, then forgotten so the next round asks again.
    let unknown = |t: u64| [10, 2, 0, 100 + (t % 8) as u8];
    // Every frame built before counting starts.
    let routed = udp([10, 2, 0, 7], 64, 64, false);
    let outward = udp([203, 0, 113, 9], 64, 64, false);
    let expiring = udp([10, 2, 0, 7], 1, 64, false);
    let too_big = udp([203, 0, 113, 9], 64, 1400, true);
    let to_unknown: Vec<Vec<u8>> = (0..8).map(|t| udp(unknown(t), 64, 64, false)).collect();
    let answers: Vec<Vec<u8>> = (0..8)
        .map(|t| arp_reply(unknown(t), [2, 0, 0, 0, 1, t as u8]))
        .collect();
    let mut turn = |t: u64| {
        handles.clear();
        let push = |pool: &mut MemPool, handles: &mut Vec<_>, bytes: &[u8]| {
            handles.push(pool.alloc_from(bytes).expect("pool sized for the batch"));
        };
        let to_unknown = &to_unknown[(t % 8) as usize];
        let answer = &answers[(t.wrapping_sub(1) % 8) as usize];
        for _ in 0..16 {
            push(&mut pool, &mut handles, &routed);
            push(&mut pool, &mut handles, &outward);
        }
        push(&mut pool, &mut handles, &expiring);
        push(&mut pool, &mut handles, &too_big);
        push(&mut pool, &mut handles, to_unknown);
        let received = handles.len();
        if t > 0 {
            push(&mut pool, &mut handles, answer);
        }
        let received = handles.len().max(received);
        for (k, meta) in metas[..received].iter_mut().enumerate() {
            *meta = PacketMeta::new(if k + 1 == received && t > 0 { 2 } else { 1 });
        }
        let mut store = BatchFrames {
            pool: &mut pool,
            handles: &mut handles,
        };
        let mut batch = Batch::new(
            &mut store,
            &mut metas,
            Timestamp(1_000_000_000 + t * 1_000_000),
        );
        chain.run(&mut batch);
        let metas = batch.metas();
        assert!(metas[..32]
            .iter()
            .all(|m| matches!(m.verdict, Verdict::Flood | Verdict::Forward(_))));
        assert_eq!(metas[32].verdict, Verdict::Drop(DropReason::TtlExpired));
        assert_eq!(metas[33].verdict, Verdict::Drop(DropReason::MtuExceeded));
        assert_eq!(metas[34].verdict, Verdict::Local, "parked");
        if t > 0 {
            // The answer released last turn's parked frame into this batch.
            assert!(
                metas[received..].iter().any(|m| m.ethertype == 0x0800
                    && m.domain == 2
                    && matches!(m.verdict, Verdict::Forward(_) | Verdict::Flood)),
                "turn {t}: {:?}",
                &metas[received..]
            );
        }
        for h in handles.drain(..) {
            pool.free(h);
        }
        if t > 0 {
            chain
                .router
                .set_static_neighbour(Ipv4Addr::from(unknown(t.wrapping_sub(1))), None);
        }
    };
    for t in 0..20 {
        turn(t);
    }
    let before = common::allocations();
    for t in 20..5_020 {
        turn(t);
    }
    let allocations = common::allocations() - before;
    assert_eq!(allocations, 0, "{allocations} allocations in 5,000 batches");
    assert_eq!(pool.free_count(), pool.total());
    assert!(chain.router.counters().originated > 5_000);
}
