//! Hot-plugged ports on a two-worker switch that need frames handed between
//! workers: a single-queue interface added at run time forwards, whether or not
//! a configured port needed hand-over when the daemon started.
//!
//! Workers on cores 0 and 1 (the machine has two).

use switchyard_tests::control::{ControlLab, Network};
use switchyard_tests::{require_root, DaemonConfig};

const NET: &str = "red";

fn two_workers() -> DaemonConfig {
    DaemonConfig {
        workers: vec![0, 1],
        ..DaemonConfig::default()
    }
}

#[test]
fn single_queue_port_added_live_is_served_through_handoff() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.46.0/24", "198.18.46.1"))
        // A configured single-queue port: worker 1 has no queue on it, so the
        // daemon starts with hand-over.
        .host("h1", NET, "198.18.46.201/24")
        .daemon_config(two_workers())
        .start();
    let h2_if = lab
        .add_host("h2", NET, "198.18.46.202/24")
        .ifname()
        .to_string();
    let v = lab.ctl_json(&[
        "add-port",
        "--name",
        "h2",
        "--interface",
        &h2_if,
        "--network",
        NET,
    ]);
    assert_eq!(v["added"], "h2", "{v}");
    // A container's veth has a queue per worker: its flows arrive on both
    // workers, and those for h2 reach it only through worker 0.
    let c = lab.attach(&lab.netns("c"), NET, &format!("{}-c", lab.id()));
    let container = c.host();
    for (from, to) in [
        (&container, lab.host("h2")),
        (lab.host("h2"), lab.host("h1")),
    ] {
        let ping = from.ping(to.ip(), 3);
        assert!(
            ping.all_replied(),
            "{} -> {}: {}",
            from.name(),
            to.name(),
            ping.output
        );
    }
    let report = switchyard_tests::udp_burst(
        &container,
        lab.host("h2"),
        switchyard_tests::UdpBurst {
            port: 6100,
            count: 2000,
            ..switchyard_tests::UdpBurst::default()
        },
    );
    assert!(report.delivery_ratio() >= 0.99, "{report:?}");
    lab.stop_daemon().assert_clean();
}

/// Frames worker 0 took over from worker 1, from `ctl stats`.
fn handed_in(lab: &ControlLab) -> u64 {
    let stats = lab.ctl_json(&["stats"]);
    stats["workers"][0]["handed_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("workers[0].handed_in in stats: {stats}"))
}

#[test]
fn single_queue_port_added_live_forwards_when_no_configured_port_needed_handoff() {
    require_root!();
    // No configured port at all: nothing at start needs frames handed between
    // workers, yet the port added live does.
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.47.0/24", "198.18.47.1"))
        .daemon_config(two_workers())
        .start();
    let c = lab.attach(&lab.netns("c"), NET, &format!("{}-c", lab.id()));
    let h2_if = lab
        .add_host("h2", NET, "198.18.47.202/24")
        .ifname()
        .to_string();
    let v = lab.ctl_json(&[
        "add-port",
        "--name",
        "h2",
        "--interface",
        &h2_if,
        "--network",
        NET,
    ]);
    assert_eq!(v["added"], "h2", "{v}");
    let container = c.host();
    let ping = container.ping(lab.host("h2").ip(), 3);
    assert!(ping.all_replied(), "container -> h2: {}", ping.output);
    // Each datagram socket gets its own transmit hash, so the container's veth
    // spreads them over its two queues: flows that arrive on worker 1 reach
    // the single-queue h2 only through worker 0's mailbox. Up to 16 flows (the
    // chance that all take queue 0 is 1 in 65,536).
    let before = handed_in(&lab);
    let mut flows = 0;
    while flows < 16 && handed_in(&lab) == before {
        let report = switchyard_tests::udp_burst(
            &container,
            lab.host("h2"),
            switchyard_tests::UdpBurst {
                port: 6200 + flows,
                count: 200,
                ..switchyard_tests::UdpBurst::default()
            },
        );
        // Forwarding through the mailbox is the subject, not loss: on this
        // 2-vCPU machine a worker delayed a few milliseconds while a burst
        // lands can lose a datagram or three, so a short flow allows 5 %.
        assert!(
            report.delivery_ratio() >= 0.95,
            "flow {flows}: {report:?}\n{}",
            lab.ctl_json(&["stats"])
        );
        flows += 1;
    }
    assert!(
        handed_in(&lab) > before,
        "no frame was handed from worker 1 to worker 0 in {flows} flows"
    );
    // A second container reaches both.
    let d = lab.attach(&lab.netns("d"), NET, &format!("{}-d", lab.id()));
    for to in [c.ip, lab.host("h2").ip()] {
        let ping = d.host().ping(to, 3);
        assert!(ping.all_replied(), "d -> {to}: {}", ping.output);
    }
    lab.stop_daemon().assert_clean();
}
