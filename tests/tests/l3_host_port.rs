//! The host port: the node's own stack reaches its containers, as a Docker
//! host does through `docker0`. The daemon makes a veth pair, addresses the
//! host end and routes every routed network's subnet through the switch; from
//! the root namespace (this test process) ping and TCP reach containers on
//! isolated networks; a reload that adds a network adds its route; stopping
//! the daemon removes the pair, and a restart makes it again.
//!
//! Switchyard only.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use switchyard_tests::cmd;
use switchyard_tests::control::{link_exists, ControlLab, Network};
use switchyard_tests::require_root;
use switchyard_tests::traffic::connect_retrying;

const HOST_END: Ipv4Addr = Ipv4Addr::new(198, 18, 86, 1);

/// Pings `dst` from the root namespace; true if every echo came back.
fn ping_from_host(dst: Ipv4Addr, count: u32) -> (bool, String) {
    let out = cmd::run_with_timeout(
        "ping",
        &[
            "-c",
            &count.to_string(),
            "-W",
            "2",
            "-i",
            "0.2",
            &dst.to_string(),
        ],
        Duration::from_secs(20),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    (
        out.success() && text.contains(&format!("{count} received")),
        text,
    )
}

fn host_route(subnet: &str) -> String {
    cmd::run("ip", &["-4", "route", "show", subnet]).stdout
}

#[test]
fn the_host_reaches_containers_through_the_host_port() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.87.0/24", "198.18.87.1"))
        .network(Network::with_subnet("db", "198.18.88.0/24", "198.18.88.1"))
        .host_port("198.18.86.1/30")
        .start();
    let hp = lab.host_port_name();
    assert!(link_exists(&hp), "the daemon made the host end {hp}");
    for subnet in ["198.18.87.0/24", "198.18.88.0/24"] {
        let route = host_route(subnet);
        assert!(
            route.contains("via 198.18.86.2") && route.contains(&hp),
            "host route to {subnet} through the switch: {route:?}"
        );
    }
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let d = lab.attach(&lab.netns("d"), "db", &format!("{id}-d"));
    for c in [&w, &d] {
        let (ok, out) = ping_from_host(c.ip, 3);
        assert!(ok, "host -> {} ({}):\n{out}", c.name, c.ip);
    }

    // TCP from the host to a server in the container; the server sees the
    // host end's address.
    let port = 5501;
    let listen = SocketAddr::new(IpAddr::V4(w.ip), port);
    let server = w.host().spawn("srv", move || {
        let listener = TcpListener::bind(listen).expect("bind in the container");
        let (mut stream, peer) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read");
        (got, peer)
    });
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut stream = connect_retrying(listen, 50).expect("connect from the host to the container");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&payload).expect("send");
    drop(stream);
    let (got, peer) = server.join(Duration::from_secs(30));
    assert!(
        got == payload,
        "{} of {} bytes arrived intact",
        got.len(),
        payload.len()
    );
    assert_eq!(peer.ip(), IpAddr::V4(HOST_END));

    // A network added by reload is routed from the host too.
    lab.add_network(Network::with_subnet("api", "198.18.89.0/24", "198.18.89.1"));
    lab.write_config();
    lab.ctl_json(&["reload"]);
    let route = host_route("198.18.89.0/24");
    assert!(
        route.contains("via 198.18.86.2"),
        "route after reload: {route:?}"
    );
    let a = lab.attach(&lab.netns("a"), "api", &format!("{id}-a"));
    let (ok, out) = ping_from_host(a.ip, 2);
    assert!(ok, "host -> api after reload:\n{out}");

    // Stopping removes the pair; a restart makes it again and it works.
    lab.stop_daemon();
    assert!(!link_exists(&hp), "the host port outlived the daemon");
    assert!(host_route("198.18.87.0/24").is_empty());
    lab.start_daemon();
    assert!(link_exists(&hp));
    let (ok, out) = ping_from_host(w.ip, 3);
    assert!(ok, "host -> web after a restart:\n{out}");
}

#[test]
fn an_existing_interface_is_never_taken_for_the_host_port() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.90.0/24", "198.18.90.1"))
        .start();
    // Someone else's interface with the host port's name.
    let name = lab.host_port_name();
    cmd::run_ok(
        "ip",
        &[
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}x"),
        ],
    );
    lab.record_link(&name);
    lab.stop_daemon();
    let text = lab.config_text()
        + &format!("\n[host]\ninterface = \"{name}\"\naddress = \"198.18.91.1/30\"\n");
    let path = std::env::temp_dir().join(format!("syt{}-host.toml", lab.id()));
    std::fs::write(&path, text).expect("write config");
    let mut run = std::process::Command::new(switchyard_tests::switchyard_bin());
    run.arg("run").arg("--config").arg(&path);
    let out = cmd::run_timeout(&mut run, Duration::from_secs(30)).expect("run the daemon");
    let _ = std::fs::remove_file(&path);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.success(), "the daemon must refuse to start: {text}");
    assert!(
        text.contains("already exists and this daemon did not make it"),
        "refused with a clear error: {text}"
    );
    assert!(link_exists(&name), "the foreign interface survived");
}
