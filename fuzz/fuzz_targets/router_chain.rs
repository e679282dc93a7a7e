//! Random frames through the whole chain with gateways, the source guard and
//! the router on two networks (the first masquerading out of the second,
//! which is open like an uplink, with a published TCP and UDP port: NAT and
//! conntrack see every routed frame), burst after burst: must never panic;
//! every frame ends decided; a frame the chain forwarded or flooded keeps its
//! length (routing rewrites headers in place); an originated frame is an
//! answer back out of its port (ARP reply, echo, time exceeded) or a flooded
//! ARP request of at most a minimum frame.
//!
//! Input format, repeated: `[n_frames]` then per frame `[port, len, bytes..]`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;
use switchyard_pipeline::conntrack::ConntrackConfig;
use switchyard_pipeline::nat::engine::{Masquerade, Nat};
use switchyard_pipeline::nat::published::{Protocol, PublishRule, PublishedPorts};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, FrameStore, Gateway, L2Config, L2Switch, MacAddr, PacketMeta, PortBinding,
    Timestamp, Verdict, MAX_BURST,
};

fn gateway(n: u8) -> Gateway {
    Gateway {
        ip: Ipv4Addr::new(10, 0, n, 1),
        mac: MacAddr([0x02, 0, 0, 0, n, 1]),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 16,
        aging_ns: 1_000,
    });
    for port in 0..4u16 {
        l2.set_port_domain(port, Some(port / 2));
    }
    let mut chain = Chain::new(l2);
    for d in 0..2u16 {
        chain.set_gateway(d, Some(gateway(d as u8)));
        chain.router.set_network(RoutedNetwork {
            domain: d,
            subnet: Ipv4Addr::new(10, 0, d as u8, 0),
            prefix_len: 24,
            gateway: gateway(d as u8),
            isolated: false,
            open: d == 1,
            mtu: switchyard_pipeline::router::DEFAULT_MTU,
            masquerade: d == 0,
        });
    }
    let mut nat = Nat::new(ConntrackConfig {
        max_entries: 64,
        ..ConntrackConfig::default()
    });
    nat.set_masquerade(Some(Masquerade {
        address: gateway(1).ip,
        first_port: 1024,
        last_port: 1031,
    }));
    let mut published = PublishedPorts::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let _ = published.add(PublishRule {
            protocol,
            host_first: 80,
            host_last: 90,
            host_address: None,
            address: Ipv4Addr::new(10, 0, 0, 5),
            port: 8080,
        });
    }
    nat.set_published(Arc::new(published), &[gateway(1).ip]);
    chain.router.set_nat(Some(Box::new(nat)), Some(1));
    chain
        .router
        .set_default_route(Some((1, Ipv4Addr::new(10, 0, 1, 7))));
    chain.bind_port(
        1,
        Some(PortBinding {
            mac: MacAddr([0x02, 0, 0, 0, 0, 5]),
            ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
        }),
    );
    chain.router.set_static_neighbour(
        Ipv4Addr::new(10, 0, 1, 7),
        Some(MacAddr([2, 0, 0, 1, 0, 7])),
    );
    let mut rest = data;
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(2 * MAX_BURST);
    let mut metas = vec![PacketMeta::new(0); 64];
    let mut now = 0;
    while common::next_burst(&mut rest, &mut frames, &mut metas, 4) {
        now += 1_000_000_000;
        let received = frames.len();
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(now));
        chain.run(&mut batch);
        let decided: Vec<PacketMeta> = batch.metas().to_vec();
        for (k, meta) in decided.iter().enumerate() {
            assert!(!meta.verdict.is_pending(), "undecided frame");
            let len = frames.frame(k).len();
            if k < received {
                if matches!(meta.verdict, Verdict::Forward(_) | Verdict::Flood) {
                    assert_eq!(len, lens[k], "a forwarded frame changed length");
                }
            } else {
                match meta.verdict {
                    Verdict::Forward(p) => assert_eq!(p, meta.in_port),
                    Verdict::Flood => assert!(len <= 60),
                    Verdict::Local => {}
                    v => panic!("originated frame with verdict {v:?}"),
                }
            }
        }
    }
});
