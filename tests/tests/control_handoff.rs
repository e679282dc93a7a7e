//! Hot-plugged ports on a two-worker switch that need frames handed between
//! workers: a single-queue interface added at run time forwards when the daemon
//! has hand-over (a configured single-queue port needed it), and is refused with
//! a clear error when it has not, leaving nothing half-applied.
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

#[test]
fn single_queue_port_is_refused_clearly_without_handoff() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.47.0/24", "198.18.47.1"))
        .daemon_config(two_workers())
        .start();
    let c = lab.attach(&lab.netns("c"), NET, &format!("{}-c", lab.id()));
    let h2_if = lab
        .add_host("h2", NET, "198.18.47.202/24")
        .ifname()
        .to_string();
    let out = lab.ctl_err(
        &[
            "add-port",
            "--name",
            "h2",
            "--interface",
            &h2_if,
            "--network",
            NET,
        ],
        "invalid_argument",
    );
    assert!(
        out.stderr.contains("handed between workers") && out.stderr.contains("queues"),
        "the refusal must say why and what to do:\n{out}"
    );
    // Nothing half-applied: not a port, no XDP program left on the interface,
    // and the container still works.
    assert!(!lab.port_names().iter().any(|p| p == "h2"));
    let link = switchyard_tests::host::root_link_json(&h2_if).expect("h2 link");
    assert!(
        link.get("xdp").is_none(),
        "an XDP program was left on {h2_if}: {link}"
    );
    let d = lab.attach(&lab.netns("d"), NET, &format!("{}-d", lab.id()));
    let ping = c.host().ping(d.ip, 3);
    assert!(
        ping.all_replied(),
        "containers after the refusal: {}",
        ping.output
    );
    lab.stop_daemon().assert_clean();
}
