//! Random frames through the whole chain with gateways, the source guard and
//! the router on two networks (the first masquerading out of the second,
//! which is open like an uplink, with a published TCP and UDP port: NAT and
//! conntrack see every routed frame), burst after burst: must never panic;
//! every frame ends decided; a frame the chain forwarded or flooded keeps its
//! length (routing rewrites headers in place); an originated frame is an
//! answer back out of its port (ARP reply, echo, time exceeded) or a flooded
//! ARP request of at most a minimum frame.
//!
//! Two workers, each with its own chain and NAT engine (one ownership rule
//! for both): bursts land on them in turn, and a frame handed to its flow's
//! owner is unchanged and run there as a handed-in batch, which hands
//! nothing on.
//!
//! Input format, repeated: `[n_frames]` then per frame `[port, len, bytes..]`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;
use switchyard_pipeline::conntrack::ConntrackConfig;
use switchyard_pipeline::nat::engine::{Masquerade, Nat};
use switchyard_pipeline::nat::owner::FlowOwners;
use switchyard_pipeline::nat::published::{Protocol, PublishRule, PublishedPorts};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, Gateway, L2Config, L2Switch, MacAddr, PacketMeta, PortBinding, Timestamp,
    Verdict, MAX_BURST,
};

fn gateway(n: u8) -> Gateway {
    Gateway {
        ip: Ipv4Addr::new(10, 0, n, 1),
        mac: MacAddr([0x02, 0, 0, 0, n, 1]),
    }
}

/// Worker `worker`'s chain.
fn chain_of(owners: FlowOwners, worker: u16) -> Chain {
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
    nat.set_owners(owners, worker);
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
    chain
}

/// Checks a run batch's verdicts (see the module docs).
fn check(batch_metas: &[PacketMeta], frames: &[Vec<u8>], received: usize, lens: &[usize]) {
    for (k, meta) in batch_metas.iter().enumerate() {
        assert!(!meta.verdict.is_pending(), "undecided frame");
        let len = frames[k].len();
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

fuzz_target!(|data: &[u8]| {
    let owners = FlowOwners::with_seed(2, 7);
    let mut chains = [chain_of(owners, 0), chain_of(owners, 1)];
    let mut rest = data;
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(2 * MAX_BURST);
    let mut metas = vec![PacketMeta::new(0); 64];
    let mut now = 0;
    let mut turn = 0usize;
    while common::next_burst(&mut rest, &mut frames, &mut metas, 4) {
        now += 1_000_000_000;
        turn += 1;
        let on = turn % 2;
        let received = frames.len();
        let sent: Vec<Vec<u8>> = frames.clone();
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(now));
        chains[on].run(&mut batch);
        let decided: Vec<PacketMeta> = batch.metas().to_vec();
        check(&decided, &frames, received, &lens);
        // Frames handed to the other worker: untouched, run there once.
        let mut handed: Vec<Vec<u8>> = Vec::new();
        let mut handed_metas = Vec::new();
        for (k, meta) in decided.iter().enumerate().take(received) {
            if let Verdict::HandOff(owner) = meta.verdict {
                assert_eq!(usize::from(owner), 1 - on, "handed to the other worker");
                assert_eq!(frames[k], sent[k], "a handed frame was changed");
                handed.push(sent[k].clone());
                handed_metas.push(PacketMeta::new(meta.in_port));
            }
        }
        if handed.is_empty() {
            continue;
        }
        let received = handed.len();
        let lens: Vec<usize> = handed.iter().map(Vec::len).collect();
        handed_metas.resize(received + 64, PacketMeta::new(0));
        let mut batch = Batch::new(&mut handed, &mut handed_metas, Timestamp(now)).handed_in();
        chains[1 - on].run(&mut batch);
        let decided: Vec<PacketMeta> = batch.metas().to_vec();
        assert!(
            !decided
                .iter()
                .any(|m| matches!(m.verdict, Verdict::HandOff(_))),
            "a handed-in frame was handed on"
        );
        check(&decided, &handed, received, &lens);
    }
});
