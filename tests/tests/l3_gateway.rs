//! Each network's gateway address is answered by the switch itself: containers
//! resolve it with ARP (their kernel's neighbour table shows the switch's MAC
//! for it) and ping it, with payloads intact; the MAC is the same for every
//! container of a network and stays the same across a daemon restart (so the
//! containers' ARP caches stay right), and differs between networks. An address
//! of the subnet that nobody holds gets no answer from the switch.
//!
//! Switchyard only (the Linux bridge has no gateway of its own here).

use std::net::Ipv4Addr;
use std::time::Duration;

use switchyard_tests::control::{ping_from, Attached, ControlLab, Network};
use switchyard_tests::require_root;

const WEB: &str = "web";
const DB: &str = "db";

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::with_subnet(WEB, "198.18.60.0/24", "198.18.60.1"))
        .network(Network::with_subnet(DB, "198.18.61.0/24", "198.18.61.1"))
        .start()
}

/// The MAC the container's kernel resolved `ip` to (`ip neigh`), if any.
fn neighbour_mac(c: &Attached, ip: Ipv4Addr) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &c.netns,
            "ip",
            "-j",
            "neigh",
            "show",
            &ip.to_string(),
        ])
        .output()
        .expect("ip neigh");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?
        .iter()
        .find_map(|e| e["lladdr"].as_str().map(str::to_string))
}

#[track_caller]
fn assert_gateway_pings(c: &Attached) {
    let gw = c.gateway.expect("network has a gateway");
    let r = ping_from(&c.netns, gw, 3);
    assert!(
        r.all_replied(),
        "{} -> its gateway {gw}: {}/{}\n{}",
        c.name,
        r.received,
        r.transmitted,
        r.output
    );
}

/// `ping -s SIZE -p PATTERN`: the reply must carry the same bytes (ping checks
/// the pattern and reports "wrong data byte" otherwise).
#[track_caller]
fn assert_big_ping_intact(c: &Attached) {
    let gw = c.gateway.expect("network has a gateway").to_string();
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &c.netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1400",
            "-p", "a55a0ff0", &gw,
        ])
        .output()
        .expect("ping");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("3 received") && !text.contains("wrong data"),
        "{} -> {gw} with 1400-byte payloads:\n{text}",
        c.name
    );
}

#[test]
fn containers_resolve_and_ping_their_gateway() {
    require_root!();
    let mut lab = lab();
    let id = lab.id().to_string();
    let a = lab.attach(&lab.netns("a"), WEB, &format!("{id}-a"));
    let b = lab.attach(&lab.netns("b"), WEB, &format!("{id}-b"));
    let d = lab.attach(&lab.netns("d"), DB, &format!("{id}-d"));
    for c in [&a, &b, &d] {
        assert_gateway_pings(c);
        assert_big_ping_intact(c);
    }
    let mac = |c: &Attached| {
        neighbour_mac(c, c.gateway.unwrap())
            .unwrap_or_else(|| panic!("{} has no neighbour entry for its gateway", c.name))
    };
    let (web_mac, db_mac) = (mac(&a), mac(&d));
    assert_eq!(mac(&b), web_mac, "one gateway MAC per network");
    assert_ne!(web_mac, db_mac, "networks have their own gateway MACs");
    let first = u8::from_str_radix(&web_mac[..2], 16).unwrap();
    assert_eq!(
        first & 0x03,
        0x02,
        "locally administered unicast: {web_mac}"
    );

    // Nobody holds .250: the switch does not answer for it (a ping gets no
    // reply and the address stays unresolved).
    let free = Ipv4Addr::new(198, 18, 60, 250);
    let r = ping_from(&a.netns, free, 1);
    assert_eq!(r.received, 0, "someone answered for {free}: {}", r.output);
    assert_eq!(neighbour_mac(&a, free), None, "{free} resolved");

    // The counters say who answered.
    let stats = lab.ctl_json(&["stats"]);
    let gateway = stats["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "gateway"))
        .unwrap_or_else(|| panic!("a gateway stage in stats: {stats}"));
    assert!(
        gateway["originated"].as_u64().unwrap_or(0) >= 3,
        "ARP replies originated: {gateway}"
    );
    assert!(
        gateway["forwarded"].as_u64().unwrap_or(0) >= 18,
        "echo replies sent back: {gateway}"
    );

    // After a restart the gateway answers with the same MAC: the containers'
    // cached entries stay right.
    lab.restart_daemon();
    std::thread::sleep(Duration::from_millis(200));
    assert_gateway_pings(&a);
    assert_eq!(mac(&a), web_mac, "gateway MAC changed across the restart");
    lab.stop_daemon().assert_clean();
}

/// Runs `ip ARGS` inside container `c`'s namespace; panics on failure.
fn ip_in(c: &Attached, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &c.netns, "ip"])
        .args(args)
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?} in {}: {}",
        c.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port's drop counter `reason`, from `ctl stats`.
fn port_drops(lab: &ControlLab, port: &str, reason: &str) -> u64 {
    let stats = lab.ctl_json(&["stats"]);
    stats["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == port))
        .and_then(|p| p["drops"][reason].as_u64())
        .unwrap_or_else(|| panic!("port {port} drops.{reason} in stats: {stats}"))
}

#[test]
fn a_container_cannot_send_from_an_address_or_mac_it_was_not_given() {
    require_root!();
    let lab = lab();
    let id = lab.id().to_string();
    let a = lab.attach(&lab.netns("a"), WEB, &format!("{id}-a"));
    let b = lab.attach(&lab.netns("b"), WEB, &format!("{id}-b"));
    let c = lab.attach(&lab.netns("c"), WEB, &format!("{id}-c"));
    let r = ping_from(&a.netns, c.ip, 2);
    assert!(r.all_replied(), "a -> c before: {}", r.output);

    // a takes b's address: its ARP and pings carry a source it was not given.
    let own = format!("{}/{}", a.ip, a.prefix_len);
    let stolen = format!("{}/{}", b.ip, b.prefix_len);
    ip_in(&a, &["addr", "del", &own, "dev", &a.ifname]);
    ip_in(&a, &["addr", "add", &stolen, "dev", &a.ifname]);
    ip_in(&a, &["neigh", "flush", "dev", &a.ifname]);
    let before = port_drops(&lab, &a.name, "spoofed_source_ip");
    let r = ping_from(&a.netns, c.ip, 2);
    assert_eq!(r.received, 0, "a reached c from b's address: {}", r.output);
    assert!(
        port_drops(&lab, &a.name, "spoofed_source_ip") > before,
        "the spoofed frames were not counted"
    );
    // c never learned b's address at a's MAC, and b still works.
    assert_ne!(
        neighbour_mac(&c, b.ip).map(|m| m.to_lowercase()),
        Some(a.mac.to_lowercase()),
        "c's ARP cache was poisoned"
    );
    let r = ping_from(&b.netns, c.ip, 2);
    assert!(
        r.all_replied(),
        "b -> c while a claims b's address: {}",
        r.output
    );

    // a claims the gateway's address: nobody believes it.
    let gw = a.gateway.unwrap();
    ip_in(&a, &["addr", "add", &format!("{gw}/32"), "dev", &a.ifname]);
    let _ = ping_from(&a.netns, c.ip, 1);
    assert_ne!(
        neighbour_mac(&c, gw).map(|m| m.to_lowercase()),
        Some(a.mac.to_lowercase()),
        "c believes a is the gateway"
    );
    let r = ping_from(&c.netns, gw, 2);
    assert!(r.all_replied(), "c -> gateway: {}", r.output);

    // Back to its own address but a new MAC: dropped by MAC.
    ip_in(&a, &["addr", "flush", "dev", &a.ifname]);
    ip_in(&a, &["addr", "add", &own, "dev", &a.ifname]);
    ip_in(
        &a,
        &["link", "set", &a.ifname, "address", "02:00:00:00:be:ef"],
    );
    let before = port_drops(&lab, &a.name, "spoofed_source_mac");
    let r = ping_from(&a.netns, c.ip, 2);
    assert_eq!(
        r.received, 0,
        "a reached c from a MAC it was not given: {}",
        r.output
    );
    assert!(port_drops(&lab, &a.name, "spoofed_source_mac") > before);

    // Its own MAC and address again: it works again.
    ip_in(&a, &["link", "set", &a.ifname, "address", &a.mac]);
    ip_in(&a, &["route", "replace", "default", "via", &gw.to_string()]);
    let r = ping_from(&a.netns, c.ip, 3);
    assert!(r.all_replied(), "a -> c after it behaves: {}", r.output);
}
