//! The multi-core engine with real traffic: two pinned workers, veths with two
//! queues (RSS on a veth: each flow picks a queue by hash, each queue is served by
//! one worker), learning shared between workers, frames handed to the worker that
//! owns a single-queue port, and the idle back-off.
//!
//! Switchyard only. Workers on cores 0 and 1 (the machine has two).

use std::time::Duration;
use switchyard_tests::stats::Stats;
use switchyard_tests::{require_root, udp_burst, DaemonConfig, Dataplane, Lab, UdpBurst};

const FLOWS: u16 = 16;

fn two_workers(extra: &[&str]) -> DaemonConfig {
    DaemonConfig {
        workers: vec![0, 1],
        switch_extra: extra.iter().map(|s| s.to_string()).collect(),
        ..DaemonConfig::default()
    }
}

fn worker(stats: &Stats, index: u64) -> &switchyard_tests::stats::WorkerStats {
    stats
        .workers
        .iter()
        .find(|w| w.index == index)
        .expect("worker in stats")
}

/// 16 UDP flows (one socket each, so the sender's veth spreads them over its two
/// queues by hash) all arrive complete and in order; both workers carried traffic.
#[test]
fn two_workers_deliver_every_flow_complete_and_in_order() {
    require_root!();
    let mut lab = Lab::builder(Dataplane::Switchyard)
        .network("red")
        .host_with_queues("h1", "red", "198.18.7.1/24", 2)
        .host_with_queues("h2", "red", "198.18.7.2/24", 2)
        .daemon_config(two_workers(&[]))
        .start();
    lab.assert_ping("h1", "h2", 2);
    for flow in 0..FLOWS {
        let report = udp_burst(
            lab.host("h1"),
            lab.host("h2"),
            UdpBurst {
                port: 6000 + flow,
                count: 500,
                batch: 8,
                ..UdpBurst::default()
            },
        );
        assert_eq!(report.lost(), 0, "flow {flow} lost datagrams: {report:?}");
        assert_eq!(report.reordered, 0, "flow {flow} was reordered: {report:?}");
        assert_eq!(
            (report.duplicates, report.corrupt),
            (0, 0),
            "flow {flow}: {report:?}"
        );
    }
    let stats = lab.daemon().fresh_stats(Duration::from_secs(10));
    let (w0, w1) = (worker(&stats, 0), worker(&stats, 1));
    assert!(
        w0.sockets.iter().any(|s| s == "h1:0") && w1.sockets.iter().any(|s| s == "h1:1"),
        "{stats:?}"
    );
    assert!(
        w0.rx_packets > 100 && w1.rx_packets > 100,
        "both workers must carry flows: worker 0 {} frames, worker 1 {} frames",
        w0.rx_packets,
        w1.rx_packets
    );
    lab.stop_daemon().assert_clean();
}

/// h3 has one queue, so only worker 0 ever sees its frames and learns its MAC.
/// h1's flows to h3 arrive on both workers; worker 1 forwards them as known unicast
/// (not flooded to h2), which it can only do with what worker 0 learned, and hands
/// them to worker 0, the owner of h3's only queue.
#[test]
fn learning_on_one_worker_is_used_by_the_other() {
    require_root!();
    let mut lab = Lab::builder(Dataplane::Switchyard)
        .network("red")
        .host_with_queues("h1", "red", "198.18.8.1/24", 2)
        .host_with_queues("h2", "red", "198.18.8.2/24", 2)
        .host("h3", "red", "198.18.8.3/24")
        .daemon_config(two_workers(&[]))
        .start();
    lab.assert_ping("h3", "h1", 2);
    lab.assert_ping("h3", "h2", 1);
    let h2_before = lab.port_counters("h2");
    let before = lab.daemon().fresh_stats(Duration::from_secs(10));
    let mut sent = 0;
    for flow in 0..FLOWS {
        let report = udp_burst(
            lab.host("h1"),
            lab.host("h3"),
            UdpBurst {
                port: 7000 + flow,
                count: 200,
                batch: 8,
                ..UdpBurst::default()
            },
        );
        assert_eq!(report.lost(), 0, "flow {flow}: {report:?}");
        sent += u64::from(report.sent);
    }
    let h2_after = lab.port_counters("h2");
    let after = lab.daemon().fresh_stats(Duration::from_secs(10));
    let handed = worker(&after, 1).handed_out - worker(&before, 1).handed_out;
    assert!(
        handed > 0,
        "no flow reached worker 1 ({sent} datagrams sent): cannot show shared learning"
    );
    assert!(
        h2_after.tx_packets - h2_before.tx_packets < 5,
        "h1 -> h3 was flooded to h2 ({} frames): worker 1 did not use worker 0's learning",
        h2_after.tx_packets - h2_before.tx_packets
    );
    assert_eq!(
        worker(&after, 0).handed_in - worker(&before, 0).handed_in,
        handed,
        "every handed frame taken over"
    );
    lab.stop_daemon().assert_clean();
}

/// Counters, not clocks: with the default back-off an idle worker sleeps (idle
/// sleeps grow, loop turns nearly stop); with `idle = "busy-poll"` it never sleeps
/// and spins through loop turns.
#[test]
fn idle_backoff_sleeps_and_busy_poll_spins() {
    require_root!();
    for (mode, extra) in [
        ("backoff", vec![]),
        ("busy-poll", vec!["idle = \"busy-poll\""]),
    ] {
        let mut lab = Lab::builder(Dataplane::Switchyard)
            .network("red")
            .host("h1", "red", "198.18.9.1/24")
            .host("h2", "red", "198.18.9.2/24")
            .daemon_config(DaemonConfig {
                switch_extra: extra.iter().map(|s| s.to_string()).collect(),
                ..DaemonConfig::default()
            })
            .start();
        lab.assert_ping("h1", "h2", 3);
        let loaded = lab.daemon().fresh_stats(Duration::from_secs(10));
        let idle = lab.daemon().fresh_stats(Duration::from_secs(10));
        let (a, b) = (worker(&loaded, 0), worker(&idle, 0));
        let sleeps = b.idle_sleeps - a.idle_sleeps;
        let loops = b.loops - a.loops;
        let cpu_ms = b.cpu_ms - a.cpu_ms;
        match mode {
            "backoff" => {
                assert!(
                    sleeps > 100,
                    "{mode}: an idle worker must sleep ({sleeps} sleeps, {loops} loops)"
                );
                assert!(
                    loops < sleeps * 4,
                    "{mode}: idle loop turns must be mostly sleeps ({sleeps}/{loops})"
                );
            }
            _ => {
                assert_eq!(sleeps, 0, "{mode}: busy-poll never sleeps");
                assert!(
                    loops > 100_000,
                    "{mode}: busy-poll spins ({loops} loop turns)"
                );
            }
        }
        eprintln!("{mode}: idle interval: {loops} loop turns, {sleeps} sleeps, {cpu_ms} ms CPU");
        lab.stop_daemon().assert_clean();
    }
}
