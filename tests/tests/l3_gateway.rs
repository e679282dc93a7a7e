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
