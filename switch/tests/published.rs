//! The counters a worker publishes are read from another thread while the
//! worker runs, and while it is stuck, without sending it anything: what
//! `ctl stats` relies on.

use etherparse::PacketBuilder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::{DropReason, L2Config, L2Switch, Timestamp};
use switchyard_switch::worker::Worker;

const FRAMES: usize = 5_000;
const RUNTS: usize = 7;
/// Only a guard against a hang; no assertion depends on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn udp_frame(src: u8, dst: u8) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src], [2, 0, 0, 0, 0, dst])
        .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
        .udp(1000, 2000);
    let mut frame = Vec::with_capacity(builder.size(18));
    builder.write(&mut frame, &[0u8; 18]).unwrap();
    frame
}

/// Waits (without a timed assertion: the guard only stops a hang) until
/// `done` holds.
fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG_GUARD, "hung waiting for {what}");
        thread::yield_now();
    }
}

#[test]
fn counters_are_read_while_the_worker_runs_and_while_it_is_stuck() {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(0));
    l2.set_port_domain(1, Some(0));
    let mut sender = MemPort::new();
    sender.keep_tx = false;
    for i in 0..FRAMES {
        sender.inbound.push_back(udp_frame(1, 2));
        if i % (FRAMES / RUNTS) == 0 && i / (FRAMES / RUNTS) < RUNTS {
            sender.inbound.push_back(vec![0u8; 8]);
        }
    }
    let frame_len = udp_frame(1, 2).len() as u64;
    let mut sink = MemPort::new();
    sink.keep_tx = false;
    let mut worker = Worker::new(MemPool::new(1024, 2048), vec![sender, sink], l2, 32);
    // What the control thread keeps: the worker's published cells.
    let board = Arc::clone(worker.board());
    let ports: Vec<_> = worker.published_ports().to_vec();

    let stop = Arc::new(AtomicBool::new(false));
    let (stuck_tx, stuck_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let thread = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut turn = 0u64;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let now = Timestamp(turn * 1_000);
                if worker.poll_once(now) > 0 {
                    worker.record_turn(1_500);
                }
                // Told to get stuck: block, as a worker in a long system call
                // or descheduled would, until released.
                if stuck_rx.try_recv().is_ok() {
                    ack_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                }
            }
            worker
        })
    };

    // While it runs: counters grow, and every consistent read of the board
    // is one turn's state (histograms included).
    let mut last_loops = 0;
    wait_until(
        || {
            let read = board.read();
            if read.consistent {
                let c = read.counters;
                assert!(c.loops >= last_loops, "loops never go back");
                last_loops = c.loops;
                let bursts: u64 = c.burst_sizes.buckets().iter().sum();
                assert_eq!(bursts, c.rx_bursts, "burst histogram from the same turn");
                let turns: u64 = c.turn_durations.buckets().iter().sum();
                assert!(
                    turns == c.busy_loops || turns + 1 == c.busy_loops,
                    "turn histogram {turns} vs {} busy turns",
                    c.busy_loops
                );
            }
            ports[0].read().rx_packets == (FRAMES + RUNTS) as u64
        },
        "every frame to be counted",
    );
    let rx = ports[0].read();
    assert_eq!(rx.rx_bytes, FRAMES as u64 * frame_len + RUNTS as u64 * 8);
    assert_eq!(rx.drops.get(DropReason::Runt), RUNTS as u64);
    // Transmit is counted in the same turn as the receive, a few stores later.
    wait_until(
        || ports[1].read().tx_packets == FRAMES as u64,
        "every frame to be sent",
    );
    assert_eq!(ports[1].read().tx_bytes, FRAMES as u64 * frame_len);

    // Stuck: the worker answers nothing, and everything is still readable.
    stuck_tx.send(()).unwrap();
    ack_rx.recv().unwrap();
    let stuck = board.read();
    assert!(stuck.consistent);
    assert_eq!(board.read(), stuck, "nothing moves while it is stuck");
    assert_eq!(stuck.counters.rx_packets, (FRAMES + RUNTS) as u64);
    assert!(stuck.gauges.l2.learned >= 1, "station 1 learned");
    assert_eq!(stuck.gauges.mac_entries, 1);
    assert_eq!(stuck.gauges.frames_accounted, 1024, "frames at rest");
    assert_eq!(ports[1].read().tx_packets, FRAMES as u64);
    release_tx.send(()).unwrap();

    stop.store(true, Ordering::Relaxed);
    let worker = thread.join().unwrap();
    // The worker's own view agrees with what was read from outside.
    assert_eq!(worker.port_counters()[0], ports[0].read());
    assert_eq!(worker.port_counters()[1], ports[1].read());
    assert_eq!(*worker.counters(), board.read().counters);
    assert_eq!(worker.frames_accounted(), worker.frames_total());
}
