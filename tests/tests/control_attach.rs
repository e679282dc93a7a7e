//! Containers attached at run time with `switchyard ctl attach`: the daemon makes the
//! veth, addresses the container from the network's pool, and switches its traffic;
//! `detach` undoes all of it and returns the address; a restarted daemon re-adopts
//! attached containers from its state file.
//!
//! Switchyard only; no `[[port]]` in the config. The network is a /29 with the
//! gateway in the middle of the pool (198.18.41.2), so the pool has to skip it:
//! usable are .1, .3, .4, .5, .6.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::control::{
    link_exists, ping_from, wait_until, Attached, ControlLab, Network,
};
use switchyard_tests::{require_root, tcp_transfer, DaemonConfig};

const NET: &str = "web";
const SUBNET: &str = "198.18.41.0/29";
const GATEWAY: &str = "198.18.41.2";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 41, last)
}

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::with_subnet(NET, SUBNET, GATEWAY))
        .daemon_config(DaemonConfig {
            switch_extra: Vec::new(),
            ..DaemonConfig::default()
        })
        .start()
}

#[track_caller]
fn assert_pings(from: &Attached, to: &Attached) {
    let r = ping_from(&from.netns, to.ip, 3);
    assert!(
        r.all_replied(),
        "{} ({}) -> {} ({}): {}/{} replies\n{}",
        from.name,
        from.ip,
        to.name,
        to.ip,
        r.received,
        r.transmitted,
        r.output
    );
}

#[track_caller]
fn assert_all_pairs_ping(containers: &[&Attached]) {
    for a in containers {
        for b in containers {
            if a.name != b.name {
                assert_pings(a, b);
            }
        }
    }
}

#[track_caller]
fn assert_tcp(from: &Attached, to: &Attached, port: u16) {
    let report = tcp_transfer(
        &from.host(),
        &to.host(),
        port,
        8 << 20,
        Duration::from_secs(60),
    );
    assert!(
        report.intact(),
        "TCP {} -> {} not intact: {report:?}",
        from.name,
        to.name
    );
}

/// What the namespace really has: `eth0` with the reply's MAC and address, up, and a
/// default route via the gateway.
#[track_caller]
fn assert_container_setup(c: &Attached) {
    let out = switchyard_tests::cmd::run_ok(
        "ip",
        &["-n", &c.netns, "-j", "addr", "show", "dev", &c.ifname],
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j addr");
    let link = &v[0];
    assert_eq!(
        link["address"].as_str().map(str::to_ascii_lowercase),
        Some(c.mac.to_ascii_lowercase()),
        "{}: MAC in the namespace differs from the reply: {out}",
        c.name
    );
    assert!(
        link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{}: {} is not up: {out}",
        c.name,
        c.ifname
    );
    let has_addr = link["addr_info"].as_array().is_some_and(|a| {
        a.iter().any(|i| {
            i["family"] == "inet"
                && i["local"].as_str() == Some(&c.ip.to_string())
                && i["prefixlen"].as_u64() == Some(u64::from(c.prefix_len))
        })
    });
    assert!(
        has_addr,
        "{}: {}/{} not on {}: {out}",
        c.name, c.ip, c.prefix_len, c.ifname
    );
    let out = switchyard_tests::cmd::run_ok(
        "ip",
        &["-n", &c.netns, "-4", "-j", "route", "show", "default"],
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j route");
    assert!(
        v.as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["gateway"] == GATEWAY && r["dev"] == c.ifname.as_str())),
        "{}: no default route via {GATEWAY}: {out}",
        c.name
    );
}

/// Three containers attached at run time get distinct pool addresses (never the
/// gateway, network or broadcast), reach each other (ping, byte-checked TCP); a
/// detached one loses its veth and its traffic, and its address goes to the next
/// container; after a daemon restart the remaining containers still talk, without
/// re-attaching, and `ctl ports` lists them.
#[test]
fn attach_detach_reuse_and_restart() {
    require_root!();
    let mut lab = lab();
    let id = lab.id().to_string();
    assert!(lab.port_names().is_empty(), "no [[port]] in the config");

    let names: Vec<String> = (1..=3).map(|i| format!("{id}-c{i}")).collect();
    let mut cs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ns = lab.netns(&format!("c{}", i + 1));
        cs.push(lab.attach(&ns, NET, name));
    }
    let (c1, c2, c3) = (&cs[0], &cs[1], &cs[2]);

    // Addresses: distinct, from the pool, lowest first, the gateway skipped.
    let addrs: HashSet<Ipv4Addr> = cs.iter().map(|c| c.ip).collect();
    assert_eq!(addrs.len(), 3, "addresses not distinct: {cs:#?}");
    for c in &cs {
        assert_eq!(c.prefix_len, 29, "{c:?}");
        assert_eq!(c.gateway, Some(GATEWAY.parse().unwrap()), "{c:?}");
        assert_eq!(c.network, NET);
        assert_eq!(c.ifname, "eth0");
        assert!(
            ![ip(0), ip(2), ip(7)].contains(&c.ip),
            "handed out network/gateway/broadcast: {c:?}"
        );
        assert!(
            c.interface.starts_with("sy") && c.interface.len() == 10,
            "host end is not sy<8 hex>: {c:?}"
        );
        assert!(link_exists(&c.interface), "{c:?}: no host veth");
        assert_container_setup(c);
    }
    assert_eq!(
        cs.iter().map(|c| c.ip).collect::<Vec<_>>(),
        vec![ip(1), ip(3), ip(4)],
        "the pool hands out its lowest free address, skipping the gateway .2"
    );
    let ports = lab.ports();
    for c in &cs {
        let row = ports
            .iter()
            .find(|p| p.name == c.name)
            .unwrap_or_else(|| panic!("{} not in ctl ports: {ports:?}", c.name));
        assert_eq!(row.origin, "attach");
        assert_eq!(row.interface, c.interface);
        assert_eq!(row.network, NET);
        assert_eq!(
            row.address.as_deref(),
            Some(format!("{}/29", c.ip).as_str())
        );
        assert_eq!(
            row.mac.as_deref().map(str::to_ascii_lowercase),
            Some(c.mac.to_ascii_lowercase())
        );
    }

    assert_all_pairs_ping(&[c1, c2, c3]);
    assert_tcp(c1, c2, 5201);
    assert_tcp(c3, c1, 5202);

    // Detach c2 (the middle address): port, veth and traffic gone.
    lab.detach(&c2.name);
    assert!(
        wait_until(Duration::from_secs(5), || !link_exists(&c2.interface)),
        "veth {} still exists after detach",
        c2.interface
    );
    let gone = switchyard_tests::cmd::run("ip", &["-n", &c2.netns, "link", "show", "eth0"]);
    assert!(
        !gone.success(),
        "eth0 still in the detached namespace: {gone}"
    );
    assert!(
        !lab.port_names().contains(&c2.name),
        "detached port still listed"
    );
    let r = ping_from(&c1.netns, c2.ip, 2);
    assert_eq!(
        r.received, 0,
        "ping to a detached container answered: {}",
        r.output
    );
    assert_pings(c1, c3);
    lab.ctl_err(&["detach", &c2.name], "not_found");

    // A new container gets the freed address back (the lowest free one).
    let ns4 = lab.netns("c4");
    let c4 = lab.attach(&ns4, NET, &format!("{id}-c4"));
    assert_eq!(
        c4.ip, c2.ip,
        "the detached container's address was not reused"
    );
    assert_container_setup(&c4);
    // c1 and c3 talked to c2 at this address (their ARP caches say so): they reach
    // c4 at once (also `reused_address_is_reachable_from_old_peers`).
    assert_all_pairs_ping(&[c1, c3, &c4]);

    // Restart: the veths stay, the new daemon re-adopts them from the state file.
    let before: Vec<_> = lab.ports();
    lab.restart_daemon();
    for c in [c1, c3, &c4] {
        assert!(
            link_exists(&c.interface),
            "{}: veth gone across restart",
            c.name
        );
    }
    let after = lab.ports();
    let key = |rows: &[switchyard_tests::control::PortRow]| {
        let mut v: Vec<_> = rows
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.interface.clone(),
                    p.network.clone(),
                    p.origin.clone(),
                    p.mac.clone(),
                    p.address.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        key(&after),
        key(&before),
        "ports differ after restart\nbefore: {before:#?}\nafter: {after:#?}"
    );
    assert_eq!(after.len(), 3);
    assert_all_pairs_ping(&[c1, c3, &c4]);
    assert_tcp(&c4, c1, 5203);

    // The re-adopted ports behave like any other: detach works, the pool is right.
    for c in [c1, c3, &c4] {
        lab.detach(&c.name);
        assert!(
            wait_until(Duration::from_secs(5), || !link_exists(&c.interface)),
            "veth {} still exists after detach",
            c.interface
        );
    }
    assert!(lab.port_names().is_empty());
    lab.stop_daemon().assert_clean();
}

/// The pool runs out with `pool_exhausted`; explicit addresses are checked against
/// the subnet, the reserved addresses and the ones in use; names are unique; an
/// unknown network is `not_found`. No failed attach leaves a port or a veth behind.
#[test]
fn attach_errors_leave_nothing_behind() {
    require_root!();
    let lab = lab();
    let id = lab.id().to_string();
    let mut cs = Vec::new();
    for i in 1..=5 {
        let ns = lab.netns(&format!("p{i}"));
        cs.push(lab.attach(&ns, NET, &format!("{id}-p{i}")));
    }
    assert_eq!(
        cs.iter().map(|c| c.ip).collect::<Vec<_>>(),
        vec![ip(1), ip(3), ip(4), ip(5), ip(6)],
        "five usable addresses in a /29 with the gateway at .2"
    );
    let ns = lab.netns("x");
    let attempt = |name: &str, extra: &[&str], code: &str| {
        let out = lab
            .try_attach(&ns, NET, name, extra)
            .map(|a| panic!("attach {name} {extra:?} succeeded: {a:?}"))
            .unwrap_err();
        assert!(
            out.stderr.contains(&format!("{code}: ")),
            "attach {name} {extra:?}: expected {code}:\n{out}"
        );
    };
    attempt(&format!("{id}-x"), &[], "pool_exhausted");
    // Free one: the explicit --ip checks apply against the real pool.
    lab.detach(&cs[4].name);
    attempt(&format!("{id}-x"), &["--ip", GATEWAY], "invalid_argument");
    attempt(
        &format!("{id}-x"),
        &["--ip", "198.18.41.0"],
        "invalid_argument",
    );
    attempt(
        &format!("{id}-x"),
        &["--ip", "198.18.41.7"],
        "invalid_argument",
    );
    attempt(
        &format!("{id}-x"),
        &["--ip", "198.18.42.6"],
        "invalid_argument",
    );
    attempt(
        &format!("{id}-x"),
        &["--ip", "198.18.41.3"],
        "invalid_argument",
    );
    attempt(
        &format!("{id}-x"),
        &["--ip", "not-an-ip"],
        "invalid_argument",
    );
    attempt(
        &format!("{id}-x"),
        &["--mac", "01:00:5e:00:00:01"],
        "invalid_argument",
    );
    attempt(&cs[0].name, &[], "already_exists");
    attempt("bad name!", &[], "invalid_argument");
    let out = lab.ctl_err(
        &[
            "attach",
            "--netns",
            &format!("/run/netns/{ns}"),
            "--network",
            "nosuchnet",
        ],
        "not_found",
    );
    drop(out);
    assert_eq!(
        links_in(&ns),
        Vec::<String>::new(),
        "a failed attach left a veth behind"
    );
    assert_eq!(lab.port_names().len(), 4);
    // The freed address is still there for a correct request.
    let x = lab
        .try_attach(&ns, NET, &format!("{id}-x"), &["--ip", "198.18.41.6"])
        .unwrap_or_else(|out| panic!("{out}"));
    assert_eq!(x.ip, ip(6));
    assert_pings(&x, &cs[0]);
    for c in cs.iter().take(4).chain([&x]) {
        lab.detach(&c.name);
    }
    assert!(lab.port_names().is_empty());
}

/// A container that gets a detached container's address is reachable from a peer
/// that talked to the previous holder, within a few seconds, without speaking first.
///
/// The peer's ARP cache still maps the address to the old container's MAC (REACHABLE
/// for up to `base_reachable_time`, 15-45 s), so unless the new container announces
/// itself (gratuitous ARP) or keeps the MAC (Docker derives it from the address),
/// traffic to it goes to a MAC that no longer exists.
#[test]
fn reused_address_is_reachable_from_old_peers() {
    require_root!();
    let lab = lab();
    let id = lab.id().to_string();
    let ns1 = lab.netns("r1");
    let ns2 = lab.netns("r2");
    let ns3 = lab.netns("r3");
    let r1 = lab.attach(&ns1, NET, &format!("{id}-r1"));
    let r2 = lab.attach(&ns2, NET, &format!("{id}-r2"));
    assert_pings(&r1, &r2);
    lab.detach(&r2.name);
    let r3 = lab.attach(&ns3, NET, &format!("{id}-r3"));
    assert_eq!(r3.ip, r2.ip, "address not reused");
    let neigh = switchyard_tests::cmd::run_ok("ip", &["-n", &ns1, "neigh", "show"]);
    let reached = wait_until(Duration::from_secs(5), || {
        ping_from(&r1.netns, r3.ip, 1).all_replied()
    });
    let neigh_after = switchyard_tests::cmd::run_ok("ip", &["-n", &ns1, "neigh", "show"]);
    assert!(
        reached,
        "{} cannot reach {} ({}, new MAC {}, old holder's MAC {}) within 5 s of the attach\n\
         neighbours of {} right after the attach:\n{}\nand 5 s later:\n{}",
        r1.name, r3.name, r3.ip, r3.mac, r2.mac, r1.name, neigh.stdout, neigh_after.stdout
    );
    lab.detach(&r1.name);
    lab.detach(&r3.name);
}

/// Detaching the container attached first (the first socket its worker opened on
/// the UMEM) must not break later attaches: a new container attaches and talks, and
/// after every container is gone, another one still attaches.
#[test]
fn attach_works_after_the_first_container_is_detached() {
    require_root!();
    let lab = lab();
    let id = lab.id().to_string();
    let a = lab.attach(&lab.netns("a"), NET, &format!("{id}-a"));
    let b = lab.attach(&lab.netns("b"), NET, &format!("{id}-b"));
    assert_pings(&a, &b);
    lab.detach(&a.name);
    let c = lab
        .try_attach(&lab.netns("c"), NET, &format!("{id}-c"), &[])
        .unwrap_or_else(|out| panic!("attach after detaching the first container failed:\n{out}"));
    assert_pings(&c, &b);
    lab.detach(&b.name);
    lab.detach(&c.name);
    let d = lab
        .try_attach(&lab.netns("d"), NET, &format!("{id}-d"), &[])
        .unwrap_or_else(|out| panic!("attach after detaching every container failed:\n{out}"));
    let e = lab.attach(&lab.netns("e"), NET, &format!("{id}-e"));
    assert_pings(&d, &e);
    lab.detach(&d.name);
    lab.detach(&e.name);
}

/// The protocol documents `not_found` for "a named port, network or namespace
/// does not exist"; attaching to a namespace path that does not exist must say so.
#[test]
fn attach_to_missing_namespace_is_not_found() {
    require_root!();
    let lab = lab();
    let missing = format!("/run/netns/{}-gone", lab.id());
    lab.ctl_err(
        &[
            "attach",
            "--netns",
            &missing,
            "--network",
            NET,
            "--name",
            "gone",
        ],
        "not_found",
    );
    assert!(lab.port_names().is_empty());
}

/// Interfaces inside namespace `ns` other than `lo` (a failed attach must leave none).
fn links_in(ns: &str) -> Vec<String> {
    let out = switchyard_tests::cmd::run_ok("ip", &["-n", ns, "-j", "link", "show"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j link");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| *n != "lo")
        .map(str::to_string)
        .collect()
}
