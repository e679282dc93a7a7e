//! IPv4 routing between networks through their gateways: two open networks
//! (`isolated = false` on both) reach each other (ping and a byte-checked TCP
//! transfer), with the TTL decremented by one hop; a frame whose TTL runs out at
//! the gateway is answered with ICMP time exceeded from the gateway's address;
//! an isolated network (the default) reaches neither, and is counted.
//!
//! Switchyard only.

use std::time::Duration;

use switchyard_tests::control::{ping_from, Attached, ControlLab, Network};
use switchyard_tests::{require_root, tcp_transfer, udp_burst, DaemonConfig, UdpBurst};

/// `ping` output with its arguments, run in `c`'s namespace.
fn ping_raw(c: &Attached, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &c.netns, "ping"])
        .args(args)
        .output()
        .expect("ping");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn stage_drops(lab: &ControlLab, reason: &str) -> u64 {
    let stats = lab.ctl_json(&["stats"]);
    stats["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "router"))
        .and_then(|s| s["drops"][reason].as_u64())
        .unwrap_or_else(|| panic!("router drops.{reason} in stats: {stats}"))
}

#[test]
fn open_networks_route_to_each_other_and_isolated_ones_do_not() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.70.0/24", "198.18.70.1").open())
        .network(Network::with_subnet("api", "198.18.71.0/24", "198.18.71.1").open())
        .network(Network::with_subnet("db", "198.18.72.0/24", "198.18.72.1"))
        .start();
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let a = lab.attach(&lab.netns("a"), "api", &format!("{id}-a"));
    let d = lab.attach(&lab.netns("d"), "db", &format!("{id}-d"));

    for (from, to) in [(&w, &a), (&a, &w)] {
        let r = ping_from(&from.netns, to.ip, 3);
        assert!(
            r.all_replied(),
            "{} -> {}: {}",
            from.name,
            to.name,
            r.output
        );
    }
    // One hop: the reply's TTL is the sender's 64 minus one.
    let out = ping_raw(&w, &["-c", "1", "-W", "2", &a.ip.to_string()]);
    assert!(out.contains("ttl=63"), "one routed hop expected:\n{out}");
    let report = tcp_transfer(&w.host(), &a.host(), 5301, 4 << 20, Duration::from_secs(30));
    assert!(
        report.intact(),
        "TCP web -> api through the gateways: {report:?}"
    );

    // TTL 1 runs out at the gateway, which says so from its own address.
    let out = ping_raw(&w, &["-c", "1", "-W", "2", "-t", "1", &a.ip.to_string()]);
    assert!(
        out.contains("From 198.18.70.1") && out.contains("Time to live exceeded"),
        "ICMP time exceeded from web's gateway expected:\n{out}"
    );
    assert!(stage_drops(&lab, "ttl_expired") >= 1);

    // db is isolated (the default): neither way, and counted.
    let before = stage_drops(&lab, "isolated");
    for (from, to) in [(&w, &d), (&d, &a)] {
        let r = ping_from(&from.netns, to.ip, 1);
        assert_eq!(
            r.received, 0,
            "{} reached isolated {}: {}",
            from.name, to.name, r.output
        );
    }
    assert!(stage_drops(&lab, "isolated") >= before + 2);
    // Its own gateway still answers.
    let r = ping_from(&d.netns, d.gateway.unwrap(), 2);
    assert!(r.all_replied(), "db -> its gateway: {}", r.output);
}

/// Two workers: a container's veth has a queue per worker, so its flows arrive
/// on either; each worker's router has the attached containers as static
/// neighbours, and routed flows arrive complete in both directions.
#[test]
fn routing_works_on_every_worker() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.73.0/24", "198.18.73.1").open())
        .network(Network::with_subnet("api", "198.18.74.0/24", "198.18.74.1").open())
        .daemon_config(DaemonConfig {
            workers: vec![0, 1],
            ..DaemonConfig::default()
        })
        .start();
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let a = lab.attach(&lab.netns("a"), "api", &format!("{id}-a"));
    for (from, to) in [(&w, &a), (&a, &w)] {
        let r = ping_from(&from.netns, to.ip, 3);
        assert!(
            r.all_replied(),
            "{} -> {}: {}",
            from.name,
            to.name,
            r.output
        );
    }
    // Sixteen flows (a socket each, so a random transmit hash each: spread over
    // both queues, hence both workers, but for a 1 in 32,768 chance).
    for flow in 0..16u16 {
        let report = udp_burst(
            &w.host(),
            &a.host(),
            UdpBurst {
                port: 6300 + flow,
                count: 200,
                batch: 8,
                ..UdpBurst::default()
            },
        );
        assert!(
            report.delivery_ratio() >= 0.99 && report.corrupt == 0,
            "routed flow {flow}: {report:?}"
        );
    }
    let stats = lab.ctl_json(&["stats"]);
    let routed_on = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            w["stages"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "router"))
                .and_then(|r| r["frames_in"].as_u64())
                .unwrap_or(0)
                > 0
        })
        .count();
    assert_eq!(routed_on, 2, "both workers routed: {stats}");
}
