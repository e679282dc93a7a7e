//! Originating frames allocates nothing: the chain plus the gateway responder,
//! answering ARP requests with replies taken from an in-memory pool and echo
//! requests in place, run thousands of batches under a counting global
//! allocator without one allocation (own test binary: the counter is global).

use std::net::Ipv4Addr;
use switchyard_drivers::memory::MemPool;
use switchyard_drivers::{BatchFrames, FramePool};
use switchyard_pipeline::{
    Batch, Chain, Gateway, GatewayStage, L2Config, L2Switch, MacAddr, PacketMeta, Stage, Timestamp,
    Verdict,
};

mod common;

const GW: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 0, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};

fn arp_request(host: u8) -> Vec<u8> {
    let mac = [2, 0, 0, 0, 0, host];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[10, 0, 0, host]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&GW.ip.octets());
    f
}

fn echo_request(host: u8) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, host], GW.mac.0)
        .ipv4([10, 0, 0, host], GW.ip.octets(), 64)
        .icmpv4_echo_request(u16::from(host), 1);
    let mut out = Vec::new();
    b.write(&mut out, &[0x5a; 32]).unwrap();
    out
}

#[test]
fn originating_replies_allocates_nothing() {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(0));
    l2.set_port_domain(1, Some(0));
    l2.set_domain_gateway(0, Some(GW.mac));
    let mut chain = Chain::new(l2);
    let mut gw = GatewayStage::new();
    gw.set_gateway(0, Some(GW));
    let requests: Vec<Vec<u8>> = (2..34u8)
        .flat_map(|h| [arp_request(h), echo_request(h)])
        .collect();
    let burst = requests.len();
    let mut pool = MemPool::new(4 * burst as u32, 2048);
    let mut handles = Vec::with_capacity(2 * burst);
    let mut metas = vec![PacketMeta::new(0); 2 * burst];
    let mut turn = |t: u64| {
        for r in &requests {
            handles.push(pool.alloc_from(r).expect("pool sized for the batch"));
        }
        for meta in &mut metas[..burst] {
            *meta = PacketMeta::new(0);
        }
        let mut frames = BatchFrames {
            pool: &mut pool,
            handles: &mut handles,
        };
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp::from_secs(1 + t / 1000));
        chain.run(&mut batch);
        gw.process(&mut batch);
        let answered = batch
            .metas()
            .iter()
            .filter(|m| m.verdict == Verdict::Forward(0))
            .count();
        assert_eq!(batch.len(), burst + burst / 2, "one ARP reply per request");
        assert_eq!(answered, burst, "every request answered");
        for h in handles.drain(..) {
            pool.free(h);
        }
    };
    for t in 0..10 {
        turn(t);
    }
    let before = common::allocations();
    for t in 10..5_010 {
        turn(t);
    }
    let allocations = common::allocations() - before;
    assert_eq!(allocations, 0, "{allocations} allocations in 5,000 batches");
    assert_eq!(gw.stats().arp_replies, 5_010 * burst as u64 / 2);
    assert_eq!(pool.free_count(), pool.total());
}
