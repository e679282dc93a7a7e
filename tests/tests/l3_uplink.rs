//! The uplink: containers reach an "outside" namespace behind the node's
//! uplink veth (a server there, with a return route to the containers' subnet
//! through the uplink address), and the outside reaches them, with no
//! translation (the server sees the container's own address). What is shown:
//! - ping and TCP from a container to the outside host on the uplink's LAN,
//!   and through the uplink's default route to an address beyond it;
//! - the first frames to a next hop not yet resolved wait for its ARP answer
//!   and are delivered (no `unresolved_next_hop` drop);
//! - the outside pings the node's uplink address;
//! - isolated networks (the default) all reach the uplink, not each other;
//! - TTL 1 to the outside is answered with ICMP time exceeded by the gateway;
//! - a DF datagram over the uplink's smaller MTU is answered with
//!   fragmentation-needed, and TCP then gets through at the smaller path MTU;
//! - a static neighbour from the config is used without ARP;
//! - a flat network (`uplink = true`, Docker's macvlan) puts its containers on
//!   the uplink's LAN: the outside reaches them by their own addresses and
//!   MACs, with no route, and routed networks reach them too.
//!
//! Switchyard only (the kernel's equivalent is a bridge plus IP forwarding,
//! measured in `perf/`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use switchyard_tests::control::{ping_from, Attached, ControlLab, Network, Uplink};
use switchyard_tests::{require_root, tcp_transfer};

/// `ping` output with its arguments, run in `c`'s namespace.
fn ping_raw(c: &Attached, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &c.netns, "ping"])
        .args(args)
        .output()
        .expect("ping");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn router_counter(lab: &ControlLab, key: &str) -> u64 {
    let stats = lab.ctl_json(&["stats"]);
    let router = stats["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "router"))
        .unwrap_or_else(|| panic!("router stage in stats: {stats}"));
    let value = match key.strip_prefix("drops.") {
        Some(reason) => &router["drops"][reason],
        None => &router[key],
    };
    value
        .as_u64()
        .unwrap_or_else(|| panic!("router {key} in stats: {stats}"))
}

/// The uplink LAN 198.18.80.0/24: the outside host at .1, the node at .2.
fn uplink(gateway: bool) -> Uplink {
    Uplink {
        outside: "198.18.80.1/24".into(),
        address: "198.18.80.2/24".into(),
        gateway: gateway.then(|| "198.18.80.1".into()),
        neighbours: Vec::new(),
        nat_ports: None,
    }
}

#[test]
fn containers_reach_the_outside_and_the_outside_reaches_them() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.81.0/24", "198.18.81.1"))
        .network(Network::with_subnet("db", "198.18.82.0/24", "198.18.82.1"))
        .uplink(uplink(true))
        .start();
    let outside = lab.outside();
    // The outside knows the containers' subnets through the node, and holds an
    // address beyond the uplink's LAN (reached through the default route).
    for subnet in ["198.18.81.0/24", "198.18.82.0/24"] {
        outside.ip_ok(&["route", "add", subnet, "via", "198.18.80.2"]);
    }
    outside.ip_ok(&["addr", "add", "203.0.113.7/32", "dev", "lo"]);
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let d = lab.attach(&lab.netns("d"), "db", &format!("{id}-d"));

    // The very first frame to the outside waits for the outside's ARP answer
    // and is delivered: one ping, one reply, nothing dropped unresolved.
    let out = ping_raw(&w, &["-c", "1", "-W", "3", "198.18.80.1"]);
    assert!(
        out.contains("1 received"),
        "the first ping to an unresolved next hop must be delivered:\n{out}"
    );
    assert_eq!(router_counter(&lab, "drops.unresolved_next_hop"), 0);
    // Both isolated networks reach the outside, one hop away.
    for c in [&w, &d] {
        let r = ping_from(&c.netns, outside.ip(), 3);
        assert!(r.all_replied(), "{} -> outside: {}", c.name, r.output);
    }
    let out = ping_raw(&w, &["-c", "1", "-W", "2", "198.18.80.1"]);
    assert!(out.contains("ttl=63"), "one routed hop expected:\n{out}");
    // Beyond the uplink's LAN, through the default route's next hop.
    let r = ping_from(&w.netns, Ipv4Addr::new(203, 0, 113, 7), 3);
    assert!(r.all_replied(), "web -> 203.0.113.7: {}", r.output);
    // ... but not each other (isolation holds with the uplink open to both).
    let r = ping_from(&w.netns, d.ip, 1);
    assert_eq!(r.received, 0, "web reached isolated db: {}", r.output);
    // The outside reaches the node's own address.
    let r = outside.ping(Ipv4Addr::new(198, 18, 80, 2), 2);
    assert!(r.all_replied(), "outside -> node address: {}", r.output);

    // TCP both ways, untranslated: each side sees the other's own address.
    let report = tcp_transfer(&w.host(), outside, 5401, 4 << 20, Duration::from_secs(30));
    assert!(report.intact(), "TCP web -> outside: {report:?}");
    assert_eq!(report.peer.ip(), IpAddr::V4(w.ip), "no translation");
    let report = tcp_transfer(outside, &d.host(), 5402, 4 << 20, Duration::from_secs(30));
    assert!(report.intact(), "TCP outside -> db: {report:?}");
    assert_eq!(report.peer.ip(), IpAddr::V4(outside.ip()));

    // TTL 1 toward the outside runs out at the gateway.
    let out = ping_raw(&w, &["-c", "1", "-W", "2", "-t", "1", "198.18.80.1"]);
    assert!(
        out.contains("From 198.18.81.1") && out.contains("Time to live exceeded"),
        "ICMP time exceeded from web's gateway expected:\n{out}"
    );
}

#[test]
fn a_smaller_uplink_mtu_is_discovered_and_tcp_gets_through() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.83.0/24", "198.18.83.1"))
        .uplink(uplink(false))
        .start_with(|lab| {
            // A smaller link on the switch's side of the uplink, set before the
            // daemon reads it; the outside end keeps 1500, so the outside's TCP
            // advertises an MSS the path cannot carry.
            let ifname = lab.outside().ifname().to_string();
            switchyard_tests::cmd::run_ok("ip", &["link", "set", &ifname, "mtu", "1400"]);
        });
    let outside = lab.outside();
    outside.ip_ok(&["route", "add", "198.18.83.0/24", "via", "198.18.80.2"]);
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));

    // ping with DF and 1500 bytes of IP: too big for the uplink.
    let out = ping_raw(
        &w,
        &[
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1472",
            "198.18.80.1",
        ],
    );
    assert!(
        out.contains("mtu = 1400") || out.contains("mtu=1400"),
        "fragmentation-needed with the uplink's MTU expected:\n{out}"
    );
    assert!(router_counter(&lab, "drops.mtu_exceeded") >= 1);
    // Under the MTU it passes.
    let out = ping_raw(
        &w,
        &[
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1372",
            "198.18.80.1",
        ],
    );
    assert!(out.contains("1 received"), "1400-byte ping:\n{out}");

    // A fresh container (no path MTU cached yet) sends full-size TCP segments
    // with DF; the gateway's answer lowers its path MTU and the stream arrives.
    let c = lab.attach(&lab.netns("c"), "web", &format!("{id}-c"));
    let before = router_counter(&lab, "drops.mtu_exceeded");
    let report = tcp_transfer(&c.host(), outside, 5403, 2 << 20, Duration::from_secs(30));
    assert!(report.intact(), "TCP over the smaller path MTU: {report:?}");
    assert!(
        router_counter(&lab, "drops.mtu_exceeded") > before,
        "the first full-size segments were too big and answered"
    );
}

#[test]
fn a_static_neighbour_is_used_without_asking() {
    require_root!();
    let mut spec = uplink(true);
    // The outside's MAC is only known once its veth exists: a chosen one,
    // set on the outside's interface before the daemon starts.
    let mac = "02:5e:00:00:80:01";
    spec.neighbours.push(("198.18.80.1".into(), mac.into()));
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.84.0/24", "198.18.84.1"))
        .uplink(spec)
        .start_with(|lab| {
            lab.outside()
                .ip_ok(&["link", "set", "eth0", "address", mac]);
        });
    let outside = lab.outside();
    outside.ip_ok(&["route", "add", "198.18.84.0/24", "via", "198.18.80.2"]);
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let r = ping_from(&w.netns, outside.ip(), 3);
    assert!(
        r.all_replied(),
        "web -> outside via the static neighbour: {}",
        r.output
    );
    // The router sent nothing of its own: no ARP request (and no error).
    assert_eq!(router_counter(&lab, "originated"), 0, "no ARP request");
    let dump = lab.ctl_json(&["neighbours"]);
    let entry = dump
        .as_array()
        .and_then(|n| n.iter().find(|e| e["ip"] == "198.18.80.1"))
        .unwrap_or_else(|| panic!("198.18.80.1 in ctl neighbours: {dump}"));
    assert_eq!(entry["state"], "static", "{dump}");
    assert_eq!(entry["mac"], mac, "{dump}");

    let routes = lab.ctl_json(&["routes"]);
    let rows = routes
        .as_array()
        .unwrap_or_else(|| panic!("routes: {routes}"));
    let has = |destination: &str, network: &str, via: Option<&str>| {
        rows.iter().any(|r| {
            r["destination"] == destination && r["network"] == network && r["via"].as_str() == via
        })
    };
    assert!(has("198.18.84.0/24", "web", None), "{routes}");
    assert!(has("198.18.80.0/24", "uplink", None), "{routes}");
    assert!(has("0.0.0.0/0", "uplink", Some("198.18.80.1")), "{routes}");
}

#[test]
fn a_flat_network_puts_its_containers_on_the_uplink_lan() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.92.0/24", "198.18.92.1"))
        .network(Network::flat("lan", "198.18.80.128/25", "198.18.80.1"))
        .uplink(uplink(true))
        .start();
    let outside = lab.outside();
    outside.ip_ok(&["route", "add", "198.18.92.0/24", "via", "198.18.80.2"]);
    let id = lab.id().to_string();
    let f = lab.attach(&lab.netns("f"), "lan", &format!("{id}-f"));
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    assert!(
        (u32::from(f.ip) & 0xffff_ff80) == u32::from(Ipv4Addr::new(198, 18, 80, 128)),
        "address from the pool: {}",
        f.ip
    );
    assert_eq!(f.prefix_len, 24, "the LAN's prefix, not the pool's");

    // The outside reaches it on its own LAN: no route, its own MAC.
    let r = outside.ping(f.ip, 3);
    assert!(r.all_replied(), "outside -> flat container: {}", r.output);
    let seen = outside.neigh_mac(f.ip);
    assert_eq!(
        seen.as_deref().map(str::to_lowercase),
        Some(f.mac.to_lowercase()),
        "the outside knows the container by its own MAC"
    );
    let r = ping_from(&f.netns, outside.ip(), 3);
    assert!(r.all_replied(), "flat container -> outside: {}", r.output);
    // Not routed: the TTL arrives untouched.
    let out = ping_raw(&f, &["-c", "1", "-W", "2", "198.18.80.1"]);
    assert!(out.contains("ttl=64"), "bridged, not routed:\n{out}");
    let report = tcp_transfer(outside, &f.host(), 5404, 2 << 20, Duration::from_secs(30));
    assert!(report.intact(), "TCP outside -> flat container: {report:?}");

    // A routed network reaches the flat one through the switch (the flat
    // container answers through its default route, the LAN's router: the
    // outside, which forwards like one).
    outside.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let r = ping_from(&w.netns, f.ip, 3);
    assert!(r.all_replied(), "web -> flat container: {}", r.output);

    let routes = lab.ctl_json(&["routes"]);
    assert!(
        routes.as_array().is_some_and(|rows| rows
            .iter()
            .any(|r| r["destination"] == "198.18.80.0/24" && r["network"] == "lan")),
        "the flat network's route is the LAN's: {routes}"
    );
}
