//! Neighbours shared between two workers, in memory and without allocating:
//! a container port with a queue on each worker, an uplink with one queue
//! (worker 0's). Worker 1 routes a frame to an unknown next hop on the
//! uplink: it waits there while worker 1's ARP request is handed to worker 0
//! and sent; the answer reaches worker 0, which learns it although it did not
//! ask and tells worker 1; worker 1 sends the waiting frame (over an empty
//! batch: it receives nothing meanwhile), handed to worker 0 and out of the
//! uplink with the right L2 header. Thousands of rounds, each with a new next
//! hop, run under a counting global allocator without one allocation (own
//! test binary: the counter is global).

use std::net::Ipv4Addr;
use std::sync::Arc;
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{Gateway, L2Config, L2Switch, MacAddr, Timestamp};
use switchyard_switch::fabric::Fabric;
use switchyard_switch::placement::place;
use switchyard_switch::worker::Worker;

mod common;

const WEB: Gateway = Gateway {
    ip: Ipv4Addr::new(10, 1, 0, 1),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 1]),
};
/// The uplink's address on 198.18.0.0/16 (many next hops to ask for).
const UPLINK: Gateway = Gateway {
    ip: Ipv4Addr::new(198, 18, 0, 2),
    mac: MacAddr([0x02, 0xaa, 0, 0, 0, 2]),
};
const CONTAINER: [u8; 6] = [2, 0, 0, 0, 0, 5];

/// Round `k`'s next hop on the uplink's LAN, and its MAC.
fn next_hop(k: u32) -> (Ipv4Addr, [u8; 6]) {
    let n = k + 10;
    let ip = Ipv4Addr::new(198, 18, (n / 250) as u8, (n % 250) as u8 + 3);
    (ip, [2, 0, 0, 1, (k >> 8) as u8, k as u8])
}

/// A datagram from the container to `dst`, through its gateway.
fn outward(dst: Ipv4Addr) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CONTAINER, WEB.mac.0)
        .ipv4([10, 1, 0, 5], dst.octets(), 64)
        .udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, &[0x5a; 64]).unwrap();
    out
}

/// `ip` at `mac` answers the uplink gateway's request.
fn answer(ip: Ipv4Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut f = UPLINK.mac.0.to_vec();
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&UPLINK.mac.0);
    f.extend_from_slice(&UPLINK.ip.octets());
    f.resize(60, 0);
    f
}

/// Port 0: the container's (domain 1, a queue per worker); port 1: the
/// uplink (domain 2, one queue: worker 0's), as the daemon places them.
fn workers() -> Vec<Worker<MemPort>> {
    let fabric = Arc::new(Fabric::new(2, true));
    place(2, &[2, 1])
        .iter()
        .enumerate()
        .map(|(index, placement)| {
            let mut l2 = L2Switch::new(L2Config::default());
            l2.set_port_domain(0, Some(1));
            l2.set_port_domain(1, Some(2));
            let sockets = placement
                .sockets
                .iter()
                .map(|_| {
                    let mut port = MemPort::new();
                    port.inbound.reserve(8);
                    port
                })
                .collect();
            let socket_port = placement.sockets.iter().map(|s| s.port as u16).collect();
            let mut worker = Worker::with_placement(
                index,
                MemPool::new(1024, 2048),
                sockets,
                socket_port,
                placement.tx.clone(),
                Some(Arc::clone(&fabric)),
                l2,
                32,
            );
            worker.set_network(
                1,
                Some(RoutedNetwork::bridge(
                    1,
                    Ipv4Addr::new(10, 1, 0, 0),
                    24,
                    WEB,
                    true,
                )),
            );
            worker.set_network(
                2,
                Some(RoutedNetwork {
                    open: true,
                    ..RoutedNetwork::bridge(2, Ipv4Addr::new(198, 18, 0, 0), 16, UPLINK, false)
                }),
            );
            worker
        })
        .collect()
}

#[test]
fn a_next_hop_learned_on_one_worker_releases_frames_waiting_on_the_other_without_allocating() {
    let mut w = workers();
    assert_eq!(
        w[0].socket_ports(),
        &[0, 1],
        "worker 0: container q0, uplink"
    );
    assert_eq!(w[1].socket_ports(), &[0], "worker 1: container q1 only");
    const ROUNDS: u32 = 3_000;
    const WARM_UP: u32 = 20;
    // Every frame built before counting starts.
    let mut frames: Vec<(Vec<u8>, Vec<u8>)> = (0..ROUNDS)
        .map(|k| {
            let (ip, mac) = next_hop(k);
            (outward(ip), answer(ip, mac))
        })
        .collect();
    frames.reverse();
    let mut clock = 1_000_000_000u64;
    let mut round = |w: &mut Vec<Worker<MemPort>>, k: u32| {
        let (out, reply) = frames.pop().expect("a frame per round");
        let mut turn = |w: &mut Vec<Worker<MemPort>>| {
            clock += 1_000_000;
            for worker in w.iter_mut() {
                worker.poll_once(Timestamp(clock));
            }
        };
        // Worker 1 receives; the frame waits, its ARP request goes to worker 0.
        w[1].ports_mut()[0].inbound.push_back(out);
        turn(w);
        // The answer reaches worker 0 (which sends the request in the same
        // turn); worker 1 is told and releases the frame to worker 0.
        w[0].ports_mut()[1].inbound.push_back(reply);
        turn(w);
        // Worker 0 sends it out of the uplink.
        turn(w);
        if k < WARM_UP {
            let (ip, mac) = next_hop(k);
            let sent = std::mem::take(&mut w[0].ports_mut()[1].outbound);
            assert_eq!(sent.len(), 2, "round {k}: the request and the frame");
            let request = &sent[0];
            assert_eq!(&request[12..14], &[0x08, 0x06], "round {k}: ARP first");
            assert_eq!(&request[38..42], &ip.octets(), "asked for the next hop");
            let frame = &sent[1];
            assert_eq!(&frame[0..6], &mac, "round {k}: to the next hop");
            assert_eq!(&frame[6..12], &UPLINK.mac.0, "from the uplink's gateway");
            assert_eq!(&frame[12..14], &[0x08, 0x00]);
            assert_eq!(frame[14 + 8], 63, "one routed hop");
            assert_eq!(&frame[30..34], &ip.octets());
            if k + 1 == WARM_UP {
                w[0].ports_mut()[1].keep_tx = false;
            }
        }
    };
    for k in 0..WARM_UP {
        round(&mut w, k);
    }
    let before = common::allocations();
    for k in WARM_UP..ROUNDS {
        round(&mut w, k);
    }
    let allocations = common::allocations() - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations in {} rounds",
        ROUNDS - WARM_UP
    );
    let rounds = u64::from(ROUNDS);
    assert_eq!(
        w[0].ports()[1].tx_count,
        2 * rounds,
        "requests and frames out"
    );
    assert_eq!(w[0].counters().neighbour_events_sent, rounds);
    assert_eq!(w[1].counters().neighbour_events_applied, rounds);
    assert_eq!(w[0].counters().neighbour_events_dropped, 0);
    for worker in &w {
        assert_eq!(worker.frames_accounted(), worker.frames_total());
        let router = worker
            .stage_reports()
            .into_iter()
            .find(|r| r.name == "router")
            .expect("router stage");
        assert_eq!(
            router
                .counters
                .drops
                .get(switchyard_pipeline::DropReason::UnresolvedNextHop),
            0,
            "worker {}: nothing waited in vain",
            worker.index()
        );
    }
}
