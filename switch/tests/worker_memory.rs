//! The poll worker over in-memory ports: the same loop the daemon runs over
//! AF_XDP, checked for forwarding, flooding, separation and frame accounting.

use etherparse::PacketBuilder;
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::{L2Config, L2Switch, Timestamp};
use switchyard_switch::worker::Worker;

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn udp_frame(src: u8, dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(mac(src), dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .udp(1000, 2000);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

/// A worker with `domains[i]` as port i's network.
fn worker(domains: &[u16]) -> Worker<MemPort> {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 1024,
        aging_ns: 300_000_000_000,
    });
    for (port, domain) in domains.iter().enumerate() {
        l2.set_port_domain(port as u16, Some(*domain));
    }
    let ports = domains.iter().map(|_| MemPort::new()).collect();
    Worker::new(MemPool::new(256, 2048), ports, l2, 32)
}

fn run(worker: &mut Worker<MemPort>, turns: usize) {
    for t in 0..turns {
        worker.poll_once(Timestamp::from_secs(1 + t as u64 / 1000));
    }
}

#[test]
fn unknown_unicast_floods_then_learned_unicast_goes_to_one_port() {
    let mut w = worker(&[0, 0, 0]);
    // Host 1 talks to host 2 before 2 ever spoke: flooded to ports 1 and 2, not back to 0.
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, mac(2), b"hello"));
    run(&mut w, 2);
    assert_eq!(w.ports()[1].outbound.len(), 1);
    assert_eq!(w.ports()[2].outbound.len(), 1);
    assert!(w.ports()[0].outbound.is_empty());
    // Host 2 answers: host 1 is known, so only port 0 gets it.
    w.ports_mut()[1]
        .inbound
        .push_back(udp_frame(2, mac(1), b"hi"));
    run(&mut w, 2);
    assert_eq!(w.ports()[0].outbound.len(), 1);
    assert_eq!(
        w.ports()[2].outbound.len(),
        1,
        "third host sees no learned unicast"
    );
    // Now both are known: 100 frames 1 -> 2 reach port 1 only.
    for _ in 0..100 {
        w.ports_mut()[0]
            .inbound
            .push_back(udp_frame(1, mac(2), b"data"));
    }
    run(&mut w, 10);
    assert_eq!(w.ports()[1].outbound.len(), 101);
    assert_eq!(w.ports()[2].outbound.len(), 1);
    assert_eq!(w.port_counters()[1].tx_packets, 101);
    assert_eq!(w.frames_accounted(), w.frames_total());
    assert!(w.free_list_is_unique());
}

#[test]
fn broadcast_reaches_every_other_port_of_its_network_only() {
    let mut w = worker(&[0, 0, 1, 0]);
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, [0xff; 6], b"who-has"));
    run(&mut w, 2);
    assert_eq!(w.ports()[1].outbound.len(), 1);
    assert_eq!(w.ports()[3].outbound.len(), 1);
    assert!(w.ports()[2].outbound.is_empty(), "other network");
    assert!(
        w.ports()[0].outbound.is_empty(),
        "never back out of the ingress port"
    );
    assert_eq!(
        w.ports()[1].outbound[0],
        udp_frame(1, [0xff; 6], b"who-has"),
        "copies are intact"
    );
    assert_eq!(w.frames_accounted(), w.frames_total());
}

#[test]
fn networks_do_not_cross_even_with_a_learned_mac() {
    let mut w = worker(&[0, 1]);
    // Host 2 is learned in network 1; host 1 in network 0 sends to its MAC.
    w.ports_mut()[1]
        .inbound
        .push_back(udp_frame(2, [0xff; 6], b"x"));
    run(&mut w, 2);
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, mac(2), b"y"));
    run(&mut w, 2);
    assert!(w.ports()[1].outbound.is_empty());
    assert!(w.ports()[0].outbound.is_empty());
}

#[test]
fn malformed_frames_are_dropped_counted_and_do_not_disturb_others() {
    let mut w = worker(&[0, 0]);
    w.ports_mut()[0]
        .inbound
        .extend([vec![0u8; 5], udp_frame(1, mac(2), b"ok"), vec![0xff; 13]]);
    run(&mut w, 2);
    assert_eq!(w.ports()[1].outbound.len(), 1);
    let drops = &w.port_counters()[0].drops;
    assert_eq!(drops.total(), 2);
    assert_eq!(w.frames_accounted(), w.frames_total());
}

#[test]
fn flood_without_free_frames_is_counted_not_leaked() {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 16,
        aging_ns: 1_000_000_000,
    });
    for port in 0..4 {
        l2.set_port_domain(port, Some(0));
    }
    let ports = (0..4).map(|_| MemPort::new()).collect();
    // 4 frames in the pool: a burst of 4 broadcasts leaves none for the copies.
    let mut w = Worker::new(MemPool::new(4, 2048), ports, l2, 8);
    for _ in 0..4 {
        w.ports_mut()[0]
            .inbound
            .push_back(udp_frame(1, [0xff; 6], b"b"));
    }
    run(&mut w, 1);
    let delivered: usize = (1..4).map(|p| w.ports()[p].outbound.len()).sum();
    let dropped = w.port_counters()[0].drops.total() as usize;
    assert_eq!(
        delivered + dropped,
        4 * 3,
        "each copy either delivered or counted"
    );
    assert!(dropped > 0);
    assert_eq!(w.frames_accounted(), w.frames_total());
}

#[test]
fn empty_pipeline_sends_each_port_to_the_next_without_lookups() {
    let mut w = worker(&[0, 0, 0]);
    w.set_pipeline(switchyard_switch::worker::PipelineKind::Empty);
    // Even a broadcast and a runt go port i -> i+1: no parsing, no flooding.
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, [0xff; 6], b"b"));
    w.ports_mut()[2].inbound.push_back(vec![1, 2, 3]);
    run(&mut w, 2);
    assert_eq!(w.ports()[1].outbound.len(), 1);
    assert_eq!(w.ports()[0].outbound, vec![vec![1, 2, 3]]);
    assert!(w.ports()[2].outbound.is_empty());
    assert_eq!(w.l2().mac_table().len(), 0, "nothing learned");
}

/// Two workers as the daemon places them on ports with [2, 1, 1] queues: worker 1
/// has a socket only on port 0 (queue 1) and hands frames for ports 1 and 2 to
/// worker 0. A station learned by worker 0 is used by worker 1 (no flood), and the
/// frame reaches the station through worker 0's socket.
#[test]
fn learning_on_one_worker_is_used_by_the_other_and_frames_are_handed_over() {
    use std::sync::Arc;
    use switchyard_switch::fabric::Fabric;
    use switchyard_switch::placement::place;

    let placements = place(2, &[2, 1, 1]);
    let fabric = Arc::new(Fabric::new(2, true));
    let mut workers: Vec<Worker<MemPort>> = placements
        .iter()
        .enumerate()
        .map(|(index, placement)| {
            let mut l2 = L2Switch::new(L2Config {
                max_entries: 1024,
                aging_ns: 300_000_000_000,
            });
            for port in 0..3 {
                l2.set_port_domain(port, Some(0));
            }
            let sockets = placement.sockets.iter().map(|_| MemPort::new()).collect();
            let socket_port = placement.sockets.iter().map(|s| s.port as u16).collect();
            Worker::with_placement(
                index,
                MemPool::new(256, 2048),
                sockets,
                socket_port,
                placement.tx.clone(),
                Some(Arc::clone(&fabric)),
                l2,
                32,
            )
        })
        .collect();
    let turn = |workers: &mut Vec<Worker<MemPort>>, t: u64| {
        for w in workers.iter_mut() {
            w.poll_once(Timestamp::from_secs(t));
        }
    };
    // Worker 0's socket 1 serves port 1: station 2 speaks there; worker 0 learns it.
    assert_eq!(workers[0].socket_ports(), &[0, 1, 2]);
    assert_eq!(workers[1].socket_ports(), &[0]);
    workers[0].ports_mut()[1]
        .inbound
        .push_back(udp_frame(2, [0xff; 6], b"hello"));
    turn(&mut workers, 1);
    turn(&mut workers, 1);
    assert!(
        !workers[1].l2().mac_table().is_empty(),
        "worker 1 applied worker 0's learn event"
    );
    workers[0].ports_mut()[2].outbound.clear();
    workers[0].ports_mut()[1].outbound.clear();

    // Station 1 on port 0 (queue 1, worker 1) sends 10 frames to station 2.
    for _ in 0..10 {
        workers[1].ports_mut()[0]
            .inbound
            .push_back(udp_frame(1, mac(2), b"data"));
    }
    for t in 2..5 {
        turn(&mut workers, t);
    }
    assert_eq!(
        workers[0].ports()[1].outbound.len(),
        10,
        "delivered on port 1 by its owner"
    );
    assert!(
        workers[0].ports()[2].outbound.is_empty(),
        "known unicast: not flooded to port 2"
    );
    assert_eq!(workers[1].counters().handed_out, 10);
    assert_eq!(workers[0].counters().handed_in, 10);
    assert_eq!(workers[0].port_counters()[1].tx_packets, 10);
    for w in &workers {
        assert_eq!(w.frames_accounted(), w.frames_total());
    }
}

/// Ports come and go between bursts: a port added at run time is learned and
/// forwarded to; after removal its MACs are forgotten, frames for it are no longer
/// sent anywhere near it, and no frame leaks.
#[test]
fn ports_added_and_removed_at_run_time() {
    use switchyard_switch::placement::TxRoute;
    let mut w = worker(&[0, 0]);
    w.add_port(2, Some(0), vec![MemPort::new()], TxRoute::Local(0));
    w.ports_mut()[2]
        .inbound
        .push_back(udp_frame(3, [0xff; 6], b"hello"));
    run(&mut w, 2);
    assert_eq!(
        w.ports()[0].outbound.len(),
        1,
        "new port's broadcast flooded"
    );
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, mac(3), b"to-new"));
    run(&mut w, 2);
    assert_eq!(
        w.ports()[2].outbound.len(),
        1,
        "learned unicast to the new port"
    );
    assert_eq!(w.port_counters()[2].tx_packets, 1);

    w.remove_port(2);
    assert_eq!(w.ports().len(), 2);
    assert!(
        w.l2().mac_table().iter().all(|e| e.port != 2),
        "its MACs are forgotten"
    );
    w.ports_mut()[0]
        .inbound
        .push_back(udp_frame(1, mac(3), b"gone"));
    run(&mut w, 2);
    assert_eq!(
        w.ports()[1].outbound.len(),
        2,
        "unknown again: flooded to the remaining port"
    );
    assert_eq!(w.frames_accounted(), w.frames_total());
    // Port 1 still works after the socket indices shifted.
    w.ports_mut()[1]
        .inbound
        .push_back(udp_frame(2, mac(1), b"still"));
    run(&mut w, 2);
    assert_eq!(
        w.ports()[0].outbound.last().map(Vec::len),
        Some(udp_frame(2, mac(1), b"still").len())
    );
}

#[test]
fn frames_through_the_gateway_are_counted_drops_until_routing_exists() {
    use switchyard_pipeline::{DropReason, MacAddr};
    let gateway = [0x02, 0xaa, 0, 0, 0, 1];
    let mut l2 = L2Switch::new(L2Config::default());
    for port in 0..2 {
        l2.set_port_domain(port, Some(0));
    }
    l2.set_domain_gateway(0, Some(MacAddr(gateway)));
    let ports = (0..2).map(|_| MemPort::new()).collect();
    let mut w = Worker::new(MemPool::new(256, 2048), ports, l2, 32);
    w.ports_mut()[0].inbound.extend([
        udp_frame(1, gateway, b"out"),
        udp_frame(1, mac(2), b"in"),
        vec![0; 4],
    ]);
    run(&mut w, 2);
    let c = &w.port_counters()[0];
    assert_eq!(c.drops.get(DropReason::NoGateway), 1);
    assert_eq!(c.drops.get(DropReason::Runt), 1);
    assert_eq!(c.drops.total(), 2);
    assert_eq!(
        w.ports()[1].outbound.len(),
        1,
        "only the unknown unicast left"
    );
    // Per-stage counters, in chain order.
    let stages = w.stage_reports();
    let names: Vec<_> = stages.iter().map(|s| s.name).collect();
    assert_eq!(names, ["parse", "guard", "l2", "gateway", "router"]);
    assert_eq!(
        (stages[0].counters.frames_in, stages[0].counters.passed),
        (3, 2)
    );
    assert_eq!(stages[0].counters.drops.get(DropReason::Runt), 1);
    assert_eq!(
        (stages[2].counters.to_gateway, stages[2].counters.flooded),
        (1, 1)
    );
    assert_eq!(w.frames_accounted(), w.frames_total());
}
