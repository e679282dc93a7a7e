//! Random frames through the chain (parse, the source guard with port 1 bound,
//! L2) and the gateway responder, burst
//! after burst: must never panic; every reply goes back out of the port its
//! request came in on; an ARP reply is exactly one 60-byte frame per answered
//! request, and an echo reply keeps its request's length.
//!
//! Input format, repeated: `[n_frames]` then per frame `[port, len, bytes..]`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use switchyard_pipeline::gateway::ARP_FRAME_LEN;
use switchyard_pipeline::{
    Batch, Chain, FrameStore, Gateway, GatewayStage, L2Config, L2Switch, MacAddr, PacketMeta,
    PortBinding, Stage, Timestamp, Verdict, MAX_BURST,
};

const GATEWAY: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 0, 0, 1),
    mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
};

fuzz_target!(|data: &[u8]| {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 16,
        aging_ns: 1_000,
    });
    for port in 0..4 {
        l2.set_port_domain(port, Some(0));
    }
    l2.set_domain_gateway(0, Some(GATEWAY.mac));
    let mut chain = Chain::new(l2);
    chain.bind_port(
        1,
        Some(PortBinding {
            mac: MacAddr([0x02, 0, 0, 0, 0, 5]),
            ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
        }),
    );
    let mut gw = GatewayStage::new();
    gw.set_gateway(0, Some(GATEWAY));
    let mut rest = data;
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(2 * MAX_BURST);
    let mut metas = vec![PacketMeta::new(0); 64];
    let mut now = 0;
    while common::next_burst(&mut rest, &mut frames, &mut metas, 4) {
        now += 1;
        let received = frames.len();
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(now));
        chain.run(&mut batch);
        gw.process(&mut batch);
        let total = batch.len();
        let decided: Vec<PacketMeta> = batch.metas().to_vec();
        let mut arp_answered = 0;
        for (k, meta) in decided.iter().enumerate() {
            assert!(!meta.verdict.is_pending(), "undecided frame");
            if k < received {
                if meta.verdict == Verdict::Local {
                    arp_answered += 1;
                }
                if meta.verdict == Verdict::Forward(meta.in_port) {
                    // Only the gateway sends a frame back: an echo reply.
                    assert_eq!(frames.frame(k).len(), lens[k]);
                }
            } else {
                assert_eq!(meta.verdict, Verdict::Forward(meta.in_port));
                assert_eq!(frames.frame(k).len(), ARP_FRAME_LEN);
            }
        }
        assert_eq!(total - received, arp_answered);
    }
});
