//! The worker's side of `ctl publish`, in memory: a worker started without
//! NAT has nowhere to put published ports until it is given an engine (made
//! elsewhere, as the control thread makes it); then each new table swapped in
//! between bursts decides where new connections to the node's port go (a SYN
//! to it reaches the container, translated; after an empty table it does not),
//! and the swap itself allocates nothing and frees nothing on the worker: the
//! caller keeps its own reference to the old table (own test binary: the
//! allocation counter is global).

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use std::sync::Arc;
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::conntrack::ConntrackConfig;
use switchyard_pipeline::nat::engine::Nat;
use switchyard_pipeline::nat::published::{Protocol, PublishRule, PublishedPorts};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{Gateway, L2Config, L2Switch, MacAddr, Timestamp};
use switchyard_switch::worker::Worker;

mod common;

const UPLINK: u16 = 0;
const CONTAINER: u16 = 1;
const GW: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
const NODE: Gateway = Gateway {
    ip: Ipv4Addr::new(192, 0, 2, 10),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 3]),
};
const OUTSIDE: [u8; 4] = [192, 0, 2, 1];
const OUTSIDE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
const C1: [u8; 4] = [10, 1, 0, 5];
const C1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 5];

fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(5000, 5001)
        .write(&mut out, b"hello")
        .unwrap();
    out
}

/// A SYN from the outside to the node's `port`.
fn syn(sport: u16, port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(OUTSIDE_MAC, NODE.mac.0)
        .ipv4(OUTSIDE, NODE.ip.octets(), 64)
        .tcp(sport, port, 1000, 64_000)
        .syn()
        .write(&mut out, &[])
        .unwrap();
    out
}

fn worker() -> Worker<MemPort> {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(UPLINK, Some(3));
    l2.set_port_domain(CONTAINER, Some(1));
    let mut w = Worker::new(
        MemPool::new(256, 2048),
        vec![MemPort::new(), MemPort::new()],
        l2,
        32,
    );
    w.set_network(
        1,
        Some(RoutedNetwork::bridge(
            1,
            Ipv4Addr::new(10, 1, 0, 0),
            24,
            GW,
            true,
        )),
    );
    w.set_network(
        3,
        Some(RoutedNetwork {
            open: true,
            ..RoutedNetwork::bridge(3, Ipv4Addr::new(192, 0, 2, 0), 24, NODE, false)
        }),
    );
    w.set_static_neighbour(Ipv4Addr::from(OUTSIDE), MacAddr(OUTSIDE_MAC));
    w.set_static_neighbour(Ipv4Addr::from(C1), MacAddr(C1_MAC));
    w
}

/// Receives `frame` on `port` and runs one loop turn; returns what the
/// container's port sent.
fn turn(w: &mut Worker<MemPort>, port: u16, frame: Vec<u8>, t: u64) -> Vec<Vec<u8>> {
    w.ports_mut()[usize::from(port)].inbound.push_back(frame);
    w.poll_once(Timestamp::from_secs(1 + t));
    std::mem::take(&mut w.ports_mut()[usize::from(CONTAINER)].outbound)
}

fn table(rules: &[(u16, u16)]) -> Arc<PublishedPorts> {
    let mut t = PublishedPorts::new();
    for &(host, port) in rules {
        t.add(PublishRule {
            protocol: Protocol::Tcp,
            host_first: host,
            host_last: host,
            host_address: None,
            address: Ipv4Addr::from(C1),
            port,
        })
        .unwrap();
    }
    Arc::new(t)
}

/// The destination of a TCP frame.
fn tcp_destination(frame: &[u8]) -> (Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("IPv4")
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        panic!("TCP")
    };
    (ip.header().destination_addr(), tcp.destination_port())
}

#[test]
fn published_ports_swap_in_between_bursts_without_allocating() {
    let mut w = worker();
    // Both stations learned: the container sends out, the outside to the node.
    turn(&mut w, CONTAINER, udp(C1_MAC, GW.mac.0, C1, OUTSIDE), 0);
    turn(
        &mut w,
        UPLINK,
        udp(OUTSIDE_MAC, NODE.mac.0, OUTSIDE, NODE.ip.octets()),
        1,
    );
    let node = [NODE.ip];

    // No engine: nowhere to put the table.
    assert!(!w.set_published(table(&[(8081, 80)]), &node));
    assert!(turn(&mut w, UPLINK, syn(40_000, 8081), 2).is_empty());

    // An engine made off the worker, then tables swapped in.
    let nat = Nat::new(ConntrackConfig {
        max_entries: 1024,
        ..ConntrackConfig::default()
    });
    assert!(w.set_nat(Some(Box::new(nat)), Some(3)).is_none());
    let first = table(&[(8081, 80)]);
    let kept = Arc::clone(&first);
    let before = common::allocations();
    assert!(w.set_published(first, &node));
    assert_eq!(common::allocations(), before, "the swap allocated");
    let sent = turn(&mut w, UPLINK, syn(40_001, 8081), 3);
    assert_eq!(sent.len(), 1, "the SYN to the published port");
    assert_eq!(tcp_destination(&sent[0]), (Ipv4Addr::from(C1), 80));

    let empty = table(&[]);
    let held = Arc::clone(&empty);
    let before = common::allocations();
    assert!(w.set_published(empty, &node));
    assert_eq!(common::allocations(), before, "the swap allocated");
    assert_eq!(
        Arc::strong_count(&kept),
        1,
        "the worker let go of the old table; only the caller frees it"
    );
    assert!(
        turn(&mut w, UPLINK, syn(40_002, 8081), 4).is_empty(),
        "a new connection after the rule went"
    );
    drop(held);
}
