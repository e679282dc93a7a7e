//! Published ports at run time (one worker, an uplink toward an outside
//! namespace): `ctl publish tcp 8081 web/<port>:80` makes the outside's
//! connections to the node's address reach the container, `ctl unpublish`
//! stops them (a bounded connect fails while the container listens), an
//! overlap is refused naming the rule it hits, a daemon restart keeps a live
//! rule, detach removes the container's rules, a reload applies `[[publish]]`
//! changes live (and refuses one that collides with a live rule); on a switch
//! started without NAT, an attach with a port mapping installs the engine and
//! works, a refused mapping fails the attach and leaves nothing, and the CNI
//! plugin's `runtimeConfig.portMappings` are published by ADD and removed by
//! DEL.
//!
//! Switchyard only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::cmd;
use switchyard_tests::control::{link_exists, switchyard_cni_bin, ControlLab, Network, Uplink};
use switchyard_tests::traffic::{count_echo_client, count_echo_server};
use switchyard_tests::{require_root, Host};

const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 82, 2);
const WEB: Ipv4Addr = Ipv4Addr::new(198, 18, 96, 10);
const SUBNET: &str = "198.18.96.0/24";
const GATEWAY: &str = "198.18.96.1";

fn uplink() -> Uplink {
    Uplink {
        outside: "198.18.82.1/24".into(),
        address: "198.18.82.2/24".into(),
        gateway: Some("198.18.82.1".into()),
        neighbours: Vec::new(),
        nat_ports: None,
    }
}

/// The outside reaches `container` (listening on its port 80) through the
/// node's `port`; the container sees the outside's own address.
#[track_caller]
fn assert_reaches(outside: &Host, container: &Host, port: u16, what: &str) {
    let server = count_echo_server(
        container,
        SocketAddr::new(IpAddr::V4(container.ip()), 80),
        Duration::from_secs(40),
    );
    let echoed = count_echo_client(outside, SocketAddr::new(IpAddr::V4(NODE), port), 20_000, 15);
    let peer = server.join(Duration::from_secs(60)).map(|(_, peer)| peer);
    assert_eq!(
        echoed,
        Ok(20_000),
        "{what}: the exchange through {NODE}:{port}"
    );
    assert_eq!(
        peer.map(|p| p.ip()),
        Some(IpAddr::V4(outside.ip())),
        "{what}: DNAT keeps the client's address"
    );
}

/// The outside cannot connect to the node's `port` although `container`
/// listens on its port 80 (one bounded connect).
#[track_caller]
fn assert_refused(outside: &Host, container: &Host, port: u16, what: &str) {
    let server = count_echo_server(
        container,
        SocketAddr::new(IpAddr::V4(container.ip()), 80),
        Duration::from_secs(4),
    );
    let result = count_echo_client(outside, SocketAddr::new(IpAddr::V4(NODE), port), 100, 1);
    let peer = server.join(Duration::from_secs(30)).map(|(_, peer)| peer);
    assert!(result.is_err(), "{what}: {NODE}:{port} still connects");
    assert_eq!(peer, None, "{what}: the container was reached");
}

/// `ctl published`, as (protocol, host_port, origin, owner) rows.
#[track_caller]
fn published(lab: &ControlLab) -> Vec<(String, String, String, Option<String>)> {
    let v = lab.ctl_json(&["published"]);
    v.as_array()
        .unwrap_or_else(|| panic!("published is not a list: {v}"))
        .iter()
        .map(|r| {
            let s = |k: &str| {
                r[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {r}"))
                    .to_string()
            };
            (
                s("protocol"),
                s("host_port"),
                s("origin"),
                r["owner"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn row(
    protocol: &str,
    port: &str,
    origin: &str,
    owner: Option<&str>,
) -> (String, String, String, Option<String>) {
    (
        protocol.into(),
        port.into(),
        origin.into(),
        owner.map(str::to_string),
    )
}

/// `ctl publish` and `unpublish` on a masquerading node, overlaps, a restart,
/// detach, and `[[publish]]` changes by reload.
#[test]
fn ctl_publish_unpublish_restart_detach_and_reload() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet("web", SUBNET, GATEWAY).masquerade())
        .uplink(uplink())
        .start();
    let id = lab.id().to_string();
    let name = format!("{id}-w");
    let w = lab
        .try_attach(&lab.netns("w"), "web", &name, &["--ip", &WEB.to_string()])
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let target = format!("web/{name}:80");

    // Nothing published yet: the node's port goes nowhere.
    assert_refused(lab.outside(), &w.host(), 8081, "before publish");
    let rule = lab.ctl_json(&["publish", "tcp", "8081", &target]);
    assert_eq!(rule["address"], WEB.to_string(), "{rule}");
    assert_eq!(
        (&rule["port"], &rule["origin"]),
        (&json!(80), &json!("ctl")),
        "{rule}"
    );
    assert_reaches(lab.outside(), &w.host(), 8081, "ctl publish");
    assert_eq!(published(&lab), [row("tcp", "8081", "ctl", Some(&name))]);

    // Refused, each with its reason; nothing changes.
    let out = lab.ctl_err(
        &["publish", "tcp", "8080-8085", "198.18.96.20:80"],
        "already_exists",
    );
    assert!(
        out.stderr
            .contains(&format!("already published by `publish tcp 8081 {target}`")),
        "the overlap names the rule it hits:\n{out}"
    );
    let out = lab.ctl_err(
        &["publish", "tcp", "8090", "198.18.97.20:80"],
        "invalid_argument",
    );
    assert!(out.stderr.contains("in no routed network"), "{out}");
    lab.ctl_err(&["publish", "tcp", "8090", "web/nosuch:80"], "not_found");
    lab.ctl_err(&["publish", "tcp", "8090", "web:80"], "invalid_argument");
    let out = lab.ctl_err(
        &[
            "publish",
            "udp",
            "8090",
            &target,
            "--host-address",
            "198.18.82.99",
        ],
        "invalid_argument",
    );
    assert!(
        out.stderr.contains("not one of the node's addresses"),
        "{out}"
    );
    lab.ctl_err(&["unpublish", "tcp", "8082"], "not_found");
    assert_eq!(published(&lab).len(), 1);

    // A restart keeps the live rule (state file), and it forwards.
    lab.restart_daemon();
    assert_eq!(published(&lab), [row("tcp", "8081", "ctl", Some(&name))]);
    assert_reaches(lab.outside(), &w.host(), 8081, "after a restart");

    // Unpublished: the container listens, the node's port goes nowhere.
    let gone = lab.ctl_json(&["unpublish", "tcp", "8081"]);
    assert_eq!(gone["unpublished"]["host_port"], "8081", "{gone}");
    assert_refused(lab.outside(), &w.host(), 8081, "after unpublish");
    assert!(published(&lab).is_empty());

    // Detach takes the container's rules with it.
    lab.ctl_json(&["publish", "tcp", "8081", &target]);
    lab.ctl_json(&["publish", "udp", "5353", &format!("web/{name}:53")]);
    assert_eq!(published(&lab).len(), 2);
    lab.detach(&name);
    assert!(published(&lab).is_empty(), "{:?}", published(&lab));

    // A reload applies [[publish]] changes live.
    let w2 = lab
        .try_attach(
            &lab.netns("w2"),
            "web",
            &format!("{id}-w2"),
            &["--ip", &WEB.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let live = lab.ctl_json(&["publish", "tcp", "8081", &format!("web/{id}-w2:80")]);
    assert_eq!(live["origin"], "ctl");
    let base = lab.config_text();
    let file_rule = |port: u16| {
        format!("\n[[publish]]\nprotocol = \"tcp\"\nhost_port = {port}\naddress = \"{WEB}\"\nport = 80\n")
    };
    lab.write_config_text(&format!("{base}{}", file_rule(8081)));
    let out = lab.ctl_err(&["reload"], "invalid_config");
    assert!(
        out.stderr.contains("publish[0] of the config file"),
        "{out}"
    );
    lab.write_config_text(&format!("{base}{}", file_rule(9000)));
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["publish_changed"], true, "{reply}");
    assert_eq!(
        published(&lab),
        [
            row("tcp", "9000", "config", None),
            row("tcp", "8081", "ctl", Some(&format!("{id}-w2"))),
        ]
    );
    assert_reaches(lab.outside(), &w2.host(), 9000, "[[publish]] by reload");
    let out = lab.ctl_err(
        &["publish", "tcp", "9000", &format!("web/{id}-w2:80")],
        "already_exists",
    );
    assert!(
        out.stderr.contains("publish[0] of the config file"),
        "{out}"
    );
    let out = lab.ctl_err(&["unpublish", "tcp", "9000"], "invalid_argument");
    assert!(out.stderr.contains("config file"), "{out}");
    lab.write_config_text(&base);
    lab.ctl_json(&["reload"]);
    assert_refused(
        lab.outside(),
        &w2.host(),
        9000,
        "[[publish]] removed by reload",
    );
    assert_reaches(
        lab.outside(),
        &w2.host(),
        8081,
        "the live rule after reloads",
    );
}

/// The CNI plugin run as a runtime runs it (clean environment, `CNI_*`
/// variables, the configuration on stdin).
fn cni(command: &str, container_id: &str, netns: &str, conf: &Value) -> cmd::CmdOutput {
    let bin = switchyard_cni_bin();
    let dir = bin.parent().expect("plugin directory").to_path_buf();
    let mut c = Command::new(&bin);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_PATH", &dir)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", format!("/run/netns/{netns}"))
        .env("CNI_IFNAME", "eth0");
    let stdin = serde_json::to_vec(conf).expect("conf serialises");
    cmd::run_timeout_input(&mut c, &stdin, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A node started without NAT (no masquerade, no `[[publish]]`): the first
/// port mapping installs the engine; attach mappings and CNI `portMappings`
/// are published with their port and go with it.
#[test]
fn attach_and_cni_port_mappings_without_nat_at_start() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", SUBNET, GATEWAY))
        .uplink(uplink())
        .start();
    let id = lab.id().to_string();
    let name = format!("{id}-m");
    let m = lab
        .try_attach(
            &lab.netns("m"),
            "web",
            &name,
            &[
                "--ip",
                &WEB.to_string(),
                "-p",
                "8082:80",
                "-p",
                "5300:53/udp",
            ],
        )
        .unwrap_or_else(|e| panic!("attach with mappings: {e}"));
    assert_eq!(
        published(&lab),
        [
            row("tcp", "8082", "attach", Some(&name)),
            row("udp", "5300", "attach", Some(&name)),
        ]
    );
    assert_reaches(lab.outside(), &m.host(), 8082, "attach -p");

    // A refused mapping fails the attach and leaves nothing behind.
    let before = lab.port_names();
    let ns = lab.netns("x");
    let refused = lab.try_attach(
        &ns,
        "web",
        &format!("{id}-x"),
        &["-p", "9100:91", "-p", "8082:80"],
    );
    let out = refused.expect_err("an attach with a taken host port");
    assert!(
        out.stderr.contains("already_exists") && out.stderr.contains(&format!("port {name:?}")),
        "the refusal names the mapping it hits:\n{out}"
    );
    assert_eq!(lab.port_names(), before, "the refused attach left a port");
    assert_eq!(published(&lab).len(), 2, "the refused attach left a rule");
    let links = cmd::run_ok("ip", &["-n", &ns, "-o", "link", "show"]);
    assert!(
        !links.stdout.contains("eth0"),
        "the refused attach left its veth:\n{links}"
    );

    // The CNI path: ADD publishes runtimeConfig.portMappings, DEL removes them.
    lab.detach(&name);
    assert!(published(&lab).is_empty());
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "webnet",
        "type": "switchyard-cni",
        "network": "web",
        "controlSocket": lab.socket().to_string_lossy(),
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": 8083, "containerPort": 80, "protocol": "tcp"}
        ]},
    });
    let container_id = format!("{id}0c{}", "0".repeat(56));
    let cni_ns = lab.netns("c");
    let add = cni("ADD", &container_id, &cni_ns, &conf);
    assert!(add.success(), "CNI ADD:\n{add}");
    let result: Value = serde_json::from_str(add.stdout.trim()).expect("ADD result");
    let host_if = result["interfaces"][0]["name"]
        .as_str()
        .expect("host interface")
        .to_string();
    lab.record_link(&host_if);
    let address = result["ips"][0]["address"]
        .as_str()
        .expect("ADD address")
        .to_string();
    let rows = published(&lab);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.as_str()),
        ("tcp", "8083", "attach")
    );
    let c = Host::adopt("c", &cni_ns, &host_if, &address, "");
    assert_reaches(lab.outside(), &c, 8083, "CNI portMappings");
    let del = cni("DEL", &container_id, &cni_ns, &conf);
    assert!(del.success(), "CNI DEL:\n{del}");
    assert!(published(&lab).is_empty(), "DEL left its mappings");
    assert!(!link_exists(&host_if), "DEL left the veth");
}
/// Two workers, no NAT at start: the first `ctl publish` turns NAT on (an
/// engine on each worker, each flow owned by one of them), and every
/// connection through the published port completes, whichever queue the
/// container's side of it lands on.
#[test]
fn live_publish_turns_nat_on_across_two_workers() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", SUBNET, GATEWAY))
        .uplink(uplink())
        .daemon_config(switchyard_tests::DaemonConfig {
            workers: vec![0, 1],
            ..switchyard_tests::DaemonConfig::default()
        })
        .start();
    let id = lab.id().to_string();
    let name = format!("{id}-w");
    let w = lab
        .try_attach(&lab.netns("w"), "web", &name, &["--ip", &WEB.to_string()])
        .unwrap_or_else(|e| panic!("attach: {e}"));
    lab.ctl_json(&["publish", "tcp", "8084", &format!("web/{name}:80")]);
    // Eight connections, new source ports each: their replies hash over
    // both of the container's queues.
    for n in 0..8 {
        assert_reaches(lab.outside(), &w.host(), 8084, &format!("connection {n}"));
    }
    let ct = lab.ctl_json(&["conntrack", "--limit", "0"]);
    assert_eq!(
        ct["workers"].as_array().map(Vec::len),
        Some(2),
        "NAT turned on on both workers: {ct}"
    );
    assert!(
        ct["stats"]["published"].as_u64() >= Some(8),
        "every connection translated by its flow's owner: {ct}"
    );
    lab.ctl_json(&["unpublish", "tcp", "8084"]);
    assert_refused(lab.outside(), &w.host(), 8084, "after unpublish");
}

/// A UDP server answering `count` datagrams on its port 53 (echoing them),
/// for at most `within`.
fn udp_echo(
    container: &Host,
    count: usize,
    within: Duration,
) -> switchyard_tests::netns::NsThread<usize> {
    let ip = container.ip();
    container.spawn("dns", move || {
        let s = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 53)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = std::time::Instant::now() + within;
        let mut buf = [0u8; 64];
        let mut answered = 0;
        while answered < count && std::time::Instant::now() < deadline {
            if let Ok((n, peer)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], peer);
                answered += 1;
            }
        }
        answered
    })
}

/// Stale state: a client that keeps one UDP socket (one source port, as a
/// resolver does) talks to a published port; its container is detached and
/// a new one, at another address, takes the port over. The client's next
/// datagram reaches the new container at once: the old container's flows
/// went with it (without that, the old translation would send it to the
/// dead address until the UDP timeout, as the CNI portmap tests check).
#[test]
fn a_new_container_on_a_published_udp_port_gets_a_lasting_client_at_once() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", SUBNET, GATEWAY).masquerade())
        .uplink(uplink())
        .start();
    let id = lab.id().to_string();
    let old_ip = Ipv4Addr::new(198, 18, 96, 20);
    let new_ip = Ipv4Addr::new(198, 18, 96, 21);
    let old = lab
        .try_attach(
            &lab.netns("o"),
            "web",
            &format!("{id}-o"),
            &["--ip", &old_ip.to_string(), "-p", "5354:53/udp"],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let client = lab
        .outside()
        .spawn("client", || std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
        .join(Duration::from_secs(10));
    // The socket lives in the outside namespace whichever thread uses it.
    let ask = move |client: &std::net::UdpSocket, tries: usize| -> bool {
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        (0..tries).any(|_| {
            let _ = client.send_to(b"query", SocketAddr::new(IpAddr::V4(NODE), 5354));
            client.recv_from(&mut buf).is_ok()
        })
    };
    let server = udp_echo(&old.host(), 1, Duration::from_secs(10));
    assert!(ask(&client, 20), "the first container answers");
    assert_eq!(server.join(Duration::from_secs(20)), 1);
    let ct = lab.ctl_json(&["conntrack", "--network", "web"]);
    assert!(
        ct["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["reply"]["src"] == old_ip.to_string())),
        "the client's flow to the old container is tracked: {ct}"
    );

    lab.detach(&format!("{id}-o"));
    let new = lab
        .try_attach(
            &lab.netns("n"),
            "web",
            &format!("{id}-n"),
            &["--ip", &new_ip.to_string(), "-p", "5354:53/udp"],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let server = udp_echo(&new.host(), 1, Duration::from_secs(10));
    // Three tries (under a second): the old flow's 120 s would lose them all.
    assert!(
        ask(&client, 3),
        "the same client socket reaches the new container at once"
    );
    assert_eq!(server.join(Duration::from_secs(20)), 1);
    let ct = lab.ctl_json(&["conntrack", "--network", "web"]);
    let entries = ct["entries"].as_array().expect("entries");
    assert!(
        !entries
            .iter()
            .any(|e| e["reply"]["src"] == old_ip.to_string()),
        "no flow of the detached container is left: {ct}"
    );
    assert!(
        ct["stats"]["conntrack"]["removed"].as_u64() >= Some(1),
        "its flow was removed, not expired: {ct}"
    );
}
