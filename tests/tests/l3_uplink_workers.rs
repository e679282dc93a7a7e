//! The uplink with two workers and no static neighbour: the outside's MAC is
//! learned from ARP, and every worker routes to it. A container's veth has a
//! queue per worker, so its flows arrive on both; the uplink's veth has one
//! queue, so every ARP answer lands on worker 0 only. Worker 1's frames to
//! the outside wait for an answer it never receives itself: it is told by
//! worker 0 (neighbour events through the fabric), and its waiting frames
//! leave then. Without that sharing, worker 1's flows never get out.
//!
//! Shown: the container's first ping, sent on its second queue (XPS and a
//! pinned `ping`) so that worker 1 asks, reaches the outside host (worker 1
//! was told the answer: a neighbour event applied); pings from both queues
//! to the outside host on the uplink's LAN and to an address behind the
//! default route; then sixteen UDP flows (a socket each, so both queues and
//! both workers carry some) to each, all delivered; both workers' router
//! stages routed frames and no frame waited in vain.
//!
//! Switchyard only.

use std::net::Ipv4Addr;

use switchyard_tests::control::{ping_from, ControlLab, Network, Uplink};
use switchyard_tests::host::{parse_ping_summary, Host};
use switchyard_tests::{cmd, sys};
use switchyard_tests::{require_root, udp_burst, DaemonConfig, UdpBurst, UdpReport};

/// A counter of worker `w`'s router stage (`drops.REASON` for a drop
/// reason; 0 when absent).
fn worker_router(stats: &serde_json::Value, w: usize, key: &str) -> u64 {
    let router = stats["workers"][w]["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "router"));
    let value = match key.strip_prefix("drops.") {
        Some(reason) => router.map(|r| &r["drops"][reason]),
        None => router.map(|r| &r[key]),
    };
    value.and_then(|v| v.as_u64()).unwrap_or(0)
}

/// Sets the CPUs whose frames leave through each transmit queue of `eth0`
/// in `netns` (XPS; 0: none, the socket's hash chooses). With queue `k` for
/// CPU `k`, a process pinned to CPU `k` reaches queue `k` of the switch's end
/// of the veth, hence worker `k`.
fn set_xps(netns: &str, cpu_masks: &[u32]) {
    for (k, mask) in cpu_masks.iter().enumerate() {
        let path = format!("/sys/class/net/eth0/queues/tx-{k}/xps_cpus");
        let script = format!("echo {mask:x} > {path}");
        cmd::run_ok("ip", &["netns", "exec", netns, "sh", "-c", &script]);
    }
}

/// `count` pings to `ip` from a process pinned to CPU `cpu` of `netns`:
/// (transmitted, received, output).
fn ping_on_cpu(netns: &str, cpu: usize, ip: Ipv4Addr, count: u32) -> (u32, u32, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "taskset", "-c", &cpu.to_string()])
        .args(["ping", "-c", &count.to_string(), "-i", "0.2", "-W", "3"])
        .arg(ip.to_string())
        .output()
        .expect("ping");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let (tx, rx) = parse_ping_summary(&text);
    (tx, rx, text)
}

#[test]
fn every_worker_routes_to_a_learned_next_hop_on_the_uplink() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.97.0/24", "198.18.97.1"))
        .uplink(Uplink {
            outside: "198.18.96.1/24".into(),
            address: "198.18.96.2/24".into(),
            gateway: Some("198.18.96.1".into()),
            neighbours: Vec::new(),
            nat_ports: None,
        })
        .daemon_config(DaemonConfig {
            workers: vec![0, 1],
            ..DaemonConfig::default()
        })
        .start();
    let outside = lab.outside();
    outside.ip_ok(&["route", "add", "198.18.97.0/24", "via", "198.18.96.2"]);
    let beyond_ip = Ipv4Addr::new(203, 0, 113, 9);
    outside.ip_ok(&["addr", "add", "203.0.113.9/32", "dev", "lo"]);
    // The same namespace, addressed beyond the uplink's LAN (through the
    // default route's next hop, which is the outside host itself).
    let beyond = Host::adopt(
        "beyond",
        outside.netns(),
        outside.ifname(),
        "203.0.113.9/32",
        outside.mac(),
    );
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));

    set_xps(&w.netns, &[0b01, 0b10]);

    // The very first frame to the outside comes in on worker 1, which does
    // not own the uplink: it waits there while worker 1 asks, the answer
    // reaches worker 0, and worker 1 sends it when worker 0 tells it.
    let (tx, rx, out) = ping_on_cpu(&w.netns, 1, outside.ip(), 3);
    let stats = lab.ctl_json(&["stats"]);
    assert!(
        tx == 3 && rx == 3,
        "first pings from worker 1's queue: {rx}/{tx} replied (worker 1: router \
         originated {}, neighbour events applied {}):\n{out}",
        worker_router(&stats, 1, "originated"),
        stats["workers"][1]["neighbour_events_applied"],
    );
    assert!(
        worker_router(&stats, 1, "originated") >= 1,
        "worker 1 asked for the next hop itself: {stats}"
    );
    assert!(
        stats["workers"][1]["neighbour_events_applied"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "worker 1 learned the answer from worker 0: {stats}"
    );
    // From both queues, to the outside host and beyond the default route.
    for cpu in 0..2 {
        for (to, ip) in [("outside", outside.ip()), ("beyond", beyond_ip)] {
            let (tx, rx, out) = ping_on_cpu(&w.netns, cpu, ip, 3);
            assert!(
                tx == 3 && rx == 3,
                "web (cpu {cpu}) -> {to} ({ip}): {rx}/{tx}:\n{out}"
            );
        }
    }

    // A warm-up burst through each queue (sender pinned to its CPU) before
    // anything is measured: a socket that only saw pings keeps 32 frames
    // posted for the kernel, and a stalled worker (a loaded machine) loses
    // what a burst brings beyond them (`rx_fill_ring_empty`); one that has
    // received keeps that many more (see the README, "Frame memory follows
    // traffic"). That is the switch's sizing, not what this test is about.
    let client = w.host();
    for cpu in 0..2 {
        std::thread::scope(|s| {
            s.spawn(|| {
                sys::pin_current_thread(cpu).expect("pin the warm-up sender");
                udp_burst(
                    &client,
                    outside,
                    UdpBurst {
                        port: 6499,
                        count: 400,
                        batch: 8,
                        ..UdpBurst::default()
                    },
                )
            })
            .join()
            .expect("warm-up burst");
        });
    }

    // Sixteen flows to each, a socket each, the transmit queue chosen by each
    // socket's random hash again (XPS off): spread over both queues, hence
    // both workers. All reports are gathered before judging, so a failure
    // shows which flows fell short.
    set_xps(&w.netns, &[0, 0]);
    let r = ping_from(&w.netns, beyond_ip, 2);
    assert!(r.all_replied(), "web -> beyond: {}", r.output);
    let mut reports: Vec<(String, UdpReport)> = Vec::new();
    for (name, to) in [("outside", outside), ("beyond", &beyond)] {
        for flow in 0..16u16 {
            let report = udp_burst(
                &client,
                to,
                UdpBurst {
                    port: 6500 + flow,
                    count: 200,
                    batch: 8,
                    ..UdpBurst::default()
                },
            );
            reports.push((format!("{name} flow {flow}"), report));
        }
    }
    let stats = lab.ctl_json(&["stats"]);
    let short: Vec<String> = reports
        .iter()
        .filter(|(_, r)| r.delivery_ratio() < 0.99 || r.corrupt > 0)
        .map(|(name, r)| format!("{name}: {}/{} (corrupt {})", r.received, r.sent, r.corrupt))
        .collect();
    let workers: Vec<String> = (0..2)
        .map(|k| {
            let wk = &stats["workers"][k];
            format!(
                "worker {k}: router frames_in {} originated {} unresolved_next_hop {}; \
                 neighbour events sent {} applied {} dropped {}",
                worker_router(&stats, k, "frames_in"),
                worker_router(&stats, k, "originated"),
                worker_router(&stats, k, "drops.unresolved_next_hop"),
                wk["neighbour_events_sent"],
                wk["neighbour_events_applied"],
                wk["neighbour_events_dropped"],
            )
        })
        .collect();
    // The ports' counters with their drops (the switch's and the kernel's):
    // where the frames of a short flow went.
    let ports: Vec<String> = stats["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    format!(
                        "port {}: rx {} tx {} drops {} kernel {}",
                        p["name"], p["rx_packets"], p["tx_packets"], p["drops"], p["kernel_drops"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        short.is_empty(),
        "{} of {} flows fell short:\n{}\n{}\n{}",
        short.len(),
        reports.len(),
        short.join("\n"),
        workers.join("\n"),
        ports.join("\n")
    );
    for k in 0..2 {
        assert!(
            worker_router(&stats, k, "frames_in") > 0,
            "worker {k} routed nothing:\n{}",
            workers.join("\n")
        );
        assert_eq!(
            worker_router(&stats, k, "drops.unresolved_next_hop"),
            0,
            "worker {k}: no frame waited in vain:\n{}",
            workers.join("\n")
        );
    }
}
