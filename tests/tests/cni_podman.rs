//! Podman 4 (CNI backend) as the container runtime driving `switchyard-cni`
//! against the real daemon: containers started with `podman run` get their
//! veth, address and route from switchyard, ping each other and an outside
//! namespace through masquerade (the outside sees the node's uplink address),
//! `podman run -p 8080:80` publishes a busybox httpd to the outside, `--ip`
//! and `--mac-address` (which podman passes only in `CNI_ARGS`) give a
//! container a fixed address and MAC, refused ones fail `podman run` with the
//! plugin's error, and `podman rm` takes everything away again (port,
//! published rule, podman's CNI cache entry).
//!
//! Switchyard only; needs root and podman, runc, conmon and busybox-static
//! (`scripts/install-deps.sh`). See `src/podman.rs` for how podman is set up
//! without touching the machine's podman state.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::cmd::{self, CmdOutput};
use switchyard_tests::control::{parse_cidr, ControlLab, Network, PortRow, Uplink};
use switchyard_tests::host::parse_ping_summary;
use switchyard_tests::netns::NsThread;
use switchyard_tests::podman::{Container, Podman};
use switchyard_tests::traffic::connect_retrying;
use switchyard_tests::{require_podman, require_root, Host};

const NET: &str = "web";
const SUBNET: &str = "198.18.124.0/24";
const GATEWAY: &str = "198.18.124.1";
const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 125, 2);
/// `--ip` of container a, and `--mac-address`.
const FIXED_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 124, 50);
const FIXED_MAC: &str = "02:5e:00:12:34:50";
/// The published port (`-p 8080:80`).
const HOST_PORT: u16 = 8080;
/// Where the outside listens for a container's TCP connection.
const OUTSIDE_PORT: u16 = 5811;
/// Bound on one socket operation of the outside's clients and servers.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::with_subnet(NET, SUBNET, GATEWAY).masquerade())
        .uplink(Uplink {
            outside: "198.18.125.1/24".into(),
            address: format!("{NODE}/24"),
            gateway: Some("198.18.125.1".into()),
            neighbours: Vec::new(),
            nat_ports: None,
        })
        .start()
}

/// MAC and IPv4 addresses (with prefix) of `eth0` in namespace `netns`, as
/// the kernel has them.
#[track_caller]
fn eth0_of(netns: &str) -> (String, Vec<(Ipv4Addr, u8)>) {
    let out = cmd::run_ok("ip", &["-n", netns, "-j", "addr", "show", "dev", "eth0"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j addr");
    let mac = v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC on eth0 in {netns}: {out}"))
        .to_ascii_lowercase();
    let addrs = v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .map(|a| {
            parse_cidr(&format!(
                "{}/{}",
                a["local"].as_str().unwrap_or_default(),
                a["prefixlen"]
            ))
        })
        .collect();
    (mac, addrs)
}

/// The container's one IPv4 address on `eth0`, checked to be a pool address
/// with the network's prefix and a default route via the gateway.
#[track_caller]
fn checked_address(c: &Container) -> (Ipv4Addr, String) {
    let (mac, addrs) = eth0_of(&c.netns);
    assert_eq!(addrs.len(), 1, "{}: eth0 addresses {addrs:?}", c.name);
    let (ip, prefix) = addrs[0];
    let o = ip.octets();
    assert!(
        o[..3] == [198, 18, 124] && prefix == 24 && ![0, 1, 255].contains(&o[3]),
        "{}: {ip}/{prefix} is not a pool address of {SUBNET}",
        c.name
    );
    let out = cmd::run_ok(
        "ip",
        &["-n", &c.netns, "-4", "-j", "route", "show", "default"],
    );
    assert!(
        out.stdout.contains(&format!("\"gateway\":\"{GATEWAY}\"")),
        "{}: no default route via {GATEWAY}: {out}",
        c.name
    );
    (ip, mac)
}

/// The daemon's port for container `c` (the plugin names it after the ID).
#[track_caller]
fn port_of(lab: &ControlLab, c: &Container) -> PortRow {
    let ports = lab.ports();
    let row = ports
        .iter()
        .find(|p| p.name.starts_with(&format!("{}-eth0-", &c.id[..12])))
        .unwrap_or_else(|| panic!("no switchyard port for {} ({}) in {ports:?}", c.name, c.id))
        .clone();
    lab.record_link(&row.interface);
    row
}

/// `ping` with busybox inside container `name` (podman exec), bounded.
#[track_caller]
fn container_ping(podman: &Podman, name: &str, dst: Ipv4Addr, count: u32) -> (u32, CmdOutput) {
    let count = count.to_string();
    let out = podman.exec(
        name,
        &[
            "ping",
            "-c",
            &count,
            "-W",
            "2",
            "-w",
            "15",
            &dst.to_string(),
        ],
    );
    let (_, received) = parse_ping_summary(&out.stdout);
    (received, out)
}

/// Accepts one TCP connection on `listen` inside `host`'s namespace within
/// `window`, sends `greeting` and closes; returns the peer it saw.
fn greet_once(
    host: &Host,
    listen: SocketAddr,
    greeting: &'static [u8],
) -> NsThread<Option<SocketAddr>> {
    host.spawn("greet", move || {
        let listener = TcpListener::bind(listen).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream
                        .set_write_timeout(Some(SOCKET_TIMEOUT))
                        .expect("timeout");
                    let _ = stream.write_all(greeting);
                    return Some(peer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept on {listen}: {e}"),
            }
        }
        None
    })
}

/// `GET /index.html` from inside `host`'s namespace to `to` (HTTP/1.0, so
/// the server closes after the body); the whole response.
fn http_get(host: &Host, to: SocketAddr) -> Result<Vec<u8>, String> {
    host.spawn("http-get", move || {
        // httpd may still be starting: up to 100 attempts.
        let mut stream = connect_retrying(to, 100)?;
        let io = |e: std::io::Error| e.to_string();
        stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(io)?;
        stream
            .write_all(b"GET /index.html HTTP/1.0\r\nHost: switchyard\r\n\r\n")
            .map_err(io)?;
        let mut response = Vec::new();
        stream
            .take(1 << 20)
            .read_to_end(&mut response)
            .map_err(io)?;
        Ok(response)
    })
    .join(Duration::from_secs(120))
}

/// The page httpd serves: text with the lab's id and every byte value, so a
/// mangled or truncated body shows.
fn page(id: &str) -> Vec<u8> {
    let mut p = format!("switchyard podman test {id}\n").into_bytes();
    for round in 0..12u8 {
        p.extend((0..=255u8).map(|b| b.wrapping_add(round)));
    }
    p.push(b'\n');
    p
}

/// Two containers by `podman run` on a switchyard network (one with `--ip`
/// and `--mac-address`) ping each other and the outside (masqueraded: the
/// outside has no route back, and its TCP server sees the node's uplink
/// address); `-p 8080:80` serves a busybox httpd page to the outside, byte
/// for byte; a refused `--ip` or `--mac-address` fails `podman run` with the
/// plugin's message and leaves nothing; `podman rm` removes port, rule and
/// podman's CNI cache entry.
#[test]
fn podman_runs_containers_on_a_switchyard_network() {
    require_root!();
    require_podman!();
    let lab = lab();
    // After the lab: dropped first, so its containers' DELs reach the daemon.
    let podman = Podman::new(lab.id(), NET, lab.socket());
    let outside = lab.outside();

    // podman network ls sees the hand-written conflist (VERSION of the plugin).
    let out = podman
        .run(&["network", "ls", "--format", "{{.Name}}"])
        .expect_success();
    assert!(
        out.stdout.lines().any(|l| l.trim() == podman.network()),
        "podman does not list network {}:\n{out}",
        podman.network()
    );

    let long = ["sleep", "600"];
    let a_name = podman.container_name("a");
    let a = podman.start(
        &a_name,
        &[
            "--cap-add",
            "NET_RAW",
            "--ip",
            &FIXED_IP.to_string(),
            "--mac-address",
            FIXED_MAC,
        ],
        &long,
    );
    let b = podman.start(
        &podman.container_name("b"),
        &["--cap-add", "NET_RAW"],
        &long,
    );

    // --ip and --mac-address: in the namespace, in the daemon, in podman.
    let (ip_a, mac_a) = checked_address(&a);
    assert_eq!((ip_a, mac_a.as_str()), (FIXED_IP, FIXED_MAC), "container a");
    let row_a = port_of(&lab, &a);
    assert_eq!(row_a.address.as_deref(), Some(&*format!("{FIXED_IP}/24")));
    assert_eq!(row_a.mac.as_deref(), Some(FIXED_MAC));
    assert_eq!(row_a.network, NET);
    let inspect = podman.inspect(&a.name);
    let seen = &inspect["NetworkSettings"]["Networks"][podman.network()];
    assert_eq!(seen["IPAddress"], FIXED_IP.to_string(), "{inspect}");
    assert_eq!(seen["MacAddress"], FIXED_MAC, "{inspect}");
    let (ip_b, mac_b) = checked_address(&b);
    assert_ne!(ip_b, ip_a);
    let row_b = port_of(&lab, &b);
    assert_eq!(row_b.mac.as_deref(), Some(mac_b.as_str()));

    // They ping each other.
    for (from, dst) in [(&a, ip_b), (&b, ip_a)] {
        let (received, out) = container_ping(&podman, &from.name, dst, 3);
        assert_eq!(received, 3, "{} -> {dst}:\n{out}", from.name);
    }

    // And the outside, which has no route to the containers' subnet: only
    // masquerade (the node's uplink address as source) gets replies back.
    for c in [&a, &b] {
        let (received, out) = container_ping(&podman, &c.name, outside.ip(), 3);
        assert_eq!(
            received,
            3,
            "{} -> outside {}:\n{out}",
            c.name,
            outside.ip()
        );
    }
    let greeting: &'static [u8] = b"hello from the outside\n";
    let server = greet_once(
        outside,
        SocketAddr::new(IpAddr::V4(outside.ip()), OUTSIDE_PORT),
        greeting,
    );
    let out = podman.exec(
        &a.name,
        &["nc", &outside.ip().to_string(), &OUTSIDE_PORT.to_string()],
    );
    let peer = server.join(Duration::from_secs(60));
    assert_eq!(
        peer.map(|p| p.ip()),
        Some(IpAddr::V4(NODE)),
        "the outside's server did not see the node's uplink address; nc:\n{out}"
    );
    assert_eq!(out.stdout.as_bytes(), greeting, "nc in container a:\n{out}");
    let ct = lab.ctl_json(&["conntrack"]);
    assert!(
        ct["stats"]["masqueraded"].as_u64() >= Some(3),
        "two pings and a TCP connection masqueraded: {ct}"
    );

    // A published web server: podman run -p 8080:80 ... httpd.
    let body = page(lab.id());
    let index = podman.rootfs().join("www/index.html");
    std::fs::write(&index, &body).unwrap_or_else(|e| panic!("write {}: {e}", index.display()));
    let port_arg = format!("{HOST_PORT}:80");
    let w = podman.start(
        &podman.container_name("w"),
        &["-p", &port_arg],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let row_w = port_of(&lab, &w);
    let published = lab.ctl_json(&["published"]);
    let host_port = HOST_PORT.to_string();
    assert!(
        published
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| r["protocol"] == "tcp"
                && r["host_port"].as_str() == Some(host_port.as_str())
                && r["origin"] == "attach"
                && r["owner"] == row_w.name.as_str())),
        "no rule for -p {port_arg} owned by {}: {published}",
        row_w.name
    );
    let response = http_get(outside, SocketAddr::new(IpAddr::V4(NODE), HOST_PORT))
        .unwrap_or_else(|e| panic!("GET from the outside: {e}"));
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP header end in {:?}",
                String::from_utf8_lossy(&response)
            )
        });
    let head = String::from_utf8_lossy(&response[..split]);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "httpd answered {head:?}"
    );
    assert!(
        response[split + 4..] == body[..],
        "the page arrived changed: {} bytes instead of {} (head {head:?})",
        response.len() - split - 4,
        body.len()
    );

    // Refused --ip and --mac-address: podman run fails with the plugin's
    // message naming the field, and nothing stays in the daemon.
    let ports_before = lab.ports().len();
    let refused = [
        (
            "198.18.126.5".to_string(),
            None,
            "ip: 198.18.126.5 is not inside",
        ),
        (FIXED_IP.to_string(), None, "is already in use"),
        (GATEWAY.to_string(), None, "is reserved"),
        (
            "198.18.124.60".to_string(),
            Some(FIXED_MAC),
            "already used by port",
        ),
    ];
    for (n, (ip, mac, expect)) in refused.iter().enumerate() {
        let name = podman.container_name(&format!("x{n}"));
        let mut options = vec!["--ip", ip.as_str()];
        if let Some(mac) = mac {
            options.extend(["--mac-address", mac]);
        }
        let out = podman
            .try_start(&name, &options, &long)
            .map(|c| c.name)
            .expect_err("podman run with a refused address or MAC succeeded");
        assert!(
            out.stderr.contains("switchyard-cni") && out.stderr.contains(expect),
            "podman run {options:?}: expected the plugin's {expect:?}:\n{out}"
        );
        podman.remove(&name);
    }
    assert_eq!(lab.ports().len(), ports_before, "a refused run left a port");

    // podman rm: port, published rule and CNI cache entry go.
    assert_eq!(
        podman.cni_cache_files().len(),
        3,
        "{:?}",
        podman.cni_cache_files()
    );
    podman.remove(&w.name);
    assert!(
        !lab.ports().iter().any(|p| p.name == row_w.name),
        "port of the removed httpd container still listed"
    );
    let published = lab.ctl_json(&["published"]);
    assert_eq!(published.as_array().map(Vec::len), Some(0), "{published}");
    for c in [&a, &b] {
        podman.remove(&c.name);
    }
    let left: Vec<PortRow> = lab
        .ports()
        .into_iter()
        .filter(|p| p.origin == "attach")
        .collect();
    assert!(left.is_empty(), "container ports left: {left:?}");
    assert!(
        podman.cni_cache_files().is_empty(),
        "CNI cache left: {:?}",
        podman.cni_cache_files()
    );
    for c in [&a, &b, &w] {
        assert!(
            !std::path::Path::new("/run/netns").join(&c.netns).exists(),
            "{}'s namespace {} outlived podman rm",
            c.name,
            c.netns
        );
    }
}
