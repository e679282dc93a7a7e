//! NAT on one worker, as Docker's bridge networks give it: a masquerading
//! network reaches an outside namespace that has no route back to it (the
//! outside sees the node's uplink address), with ping, TCP and UDP; a
//! published port forwards the outside's connections to a container (which
//! sees the outside's own address) and replies leave from the node's
//! address; a container reaches the published port through the node's
//! address (hairpin) and its server sees the node's address; the switch's
//! conntrack counts what it translated.
//!
//! Switchyard only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_tests::control::{ping_from, ControlLab, Network, Uplink};
use switchyard_tests::flood::{dst_ports, flood, flood_sink, Flood, FloodKind};
use switchyard_tests::netns::NsThread;
use switchyard_tests::traffic::{count_echo_client, count_echo_server, Chat};
use switchyard_tests::{require_root, tcp_transfer, udp_burst, Host, UdpBurst};

const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 80, 2);
const WEB: Ipv4Addr = Ipv4Addr::new(198, 18, 94, 10);

fn uplink() -> Uplink {
    Uplink {
        outside: "198.18.80.1/24".into(),
        address: "198.18.80.2/24".into(),
        gateway: Some("198.18.80.1".into()),
        neighbours: Vec::new(),
        nat_ports: None,
    }
}

/// Serves one connection on `listen` in `server`'s namespace (see
/// [`count_echo_server`]); join it for the bytes read and the peer seen.
fn serve_once(server: &Host, listen: SocketAddr) -> NsThread<Option<(usize, SocketAddr)>> {
    count_echo_server(server, listen, Duration::from_secs(30))
}

/// Connects from `client`'s namespace to `to`, sends `len` bytes, returns
/// the count the server echoed.
#[track_caller]
fn send_once(client: &Host, to: SocketAddr, len: usize) -> u64 {
    count_echo_client(client, to, len, 50).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn masquerade_published_ports_and_hairpin() {
    require_root!();
    let publish = format!(
        "\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8080\naddress = \"{WEB}\"\nport = 80\n"
    );
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.94.0/24", "198.18.94.1").masquerade())
        .uplink(uplink())
        .extra_config(&publish)
        .start();
    let outside = lab.outside();
    // No route back to 198.18.94.0/24 in the outside: only masquerade works.
    let id = lab.id().to_string();
    let w = lab
        .try_attach(
            &lab.netns("w"),
            "web",
            &format!("{id}-w"),
            &["--ip", &WEB.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let c = lab.attach(&lab.netns("c"), "web", &format!("{id}-c"));

    // Out: ping, TCP (the outside sees the node's address), UDP.
    let r = ping_from(&w.netns, outside.ip(), 3);
    assert!(r.all_replied(), "masqueraded ping: {}", r.output);
    let report = tcp_transfer(&w.host(), outside, 5601, 2 << 20, Duration::from_secs(30));
    assert!(report.intact(), "masqueraded TCP: {report:?}");
    assert_eq!(
        report.peer.ip(),
        IpAddr::V4(NODE),
        "the outside sees the node"
    );
    let udp = udp_burst(
        &c.host(),
        outside,
        UdpBurst {
            port: 5602,
            count: 200,
            batch: 8,
            ..UdpBurst::default()
        },
    );
    assert!(
        udp.delivery_ratio() >= 0.99 && udp.corrupt == 0,
        "masqueraded UDP: {udp:?}"
    );

    // In: the outside connects to the node's published port; the container
    // sees the outside's own address.
    let server = serve_once(&w.host(), SocketAddr::new(IpAddr::V4(WEB), 80));
    let echoed = send_once(outside, SocketAddr::new(IpAddr::V4(NODE), 8080), 100_000);
    let (got, peer) = server.join(Duration::from_secs(60)).expect("a connection");
    assert_eq!(
        (got, echoed),
        (100_000, 100_000),
        "published port both ways"
    );
    assert_eq!(
        peer.ip(),
        IpAddr::V4(outside.ip()),
        "DNAT keeps the client's address"
    );

    // Hairpin: another container reaches the published port by the node's
    // address; the server sees the node (so replies come back the same way).
    let server = serve_once(&w.host(), SocketAddr::new(IpAddr::V4(WEB), 80));
    let echoed = send_once(&c.host(), SocketAddr::new(IpAddr::V4(NODE), 8080), 50_000);
    let (got, peer) = server.join(Duration::from_secs(60)).expect("a connection");
    assert_eq!((got, echoed), (50_000, 50_000), "hairpin both ways");
    assert_eq!(
        peer.ip(),
        IpAddr::V4(NODE),
        "hairpin translates the source too"
    );

    let stats = lab.ctl_json(&["stats"]);
    let router = stats["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "router"))
        .unwrap_or_else(|| panic!("router stage: {stats}"));
    assert_eq!(router["drops"]["nat_ports_exhausted"], 0, "{stats}");
    // The connection table shows the translations.
    let ct = lab.ctl_json(&["conntrack"]);
    assert!(ct["stats"]["masqueraded"].as_u64() >= Some(2), "{ct}");
    assert!(ct["stats"]["published"].as_u64() >= Some(2), "{ct}");
    assert_eq!(ct["stats"]["hairpin"], 1, "{ct}");
    let entries = ct["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["original"]["src"] == WEB.to_string()
                && e["reply"]["dst"] == NODE.to_string()),
        "a masqueraded connection of web: {ct}"
    );
    // The masqueraded TCP transfer: counted both ways (its 2 MiB went the
    // original way, IP headers included), with its age.
    let transfer = entries
        .iter()
        .find(|e| {
            e["original"]["protocol"] == 6
                && e["original"]["src"] == WEB.to_string()
                && e["original"]["dst"] == outside.ip().to_string()
                && e["original"]["dst_port"] == 5601
        })
        .unwrap_or_else(|| panic!("the masqueraded TCP connection: {ct}"));
    assert_eq!(transfer["reply"]["dst"], NODE.to_string(), "{transfer}");
    let count = |dir: &str, field: &str| transfer["counters"][dir][field].as_u64().unwrap_or(0);
    for dir in ["original", "reply"] {
        assert!(
            count(dir, "packets") > 0 && count(dir, "bytes") > 0,
            "{dir} counted: {transfer}"
        );
    }
    assert!(
        count("original", "bytes") >= 2 << 20,
        "the transfer's bytes: {transfer}"
    );
    assert!(
        transfer["age_secs"].as_u64().is_some_and(|a| a < 600)
            && transfer["created"].as_u64().is_some(),
        "its age: {transfer}"
    );
    // Without --json: a line of totals, a header, a line per connection.
    let mut text = std::process::Command::new(switchyard_tests::switchyard_bin());
    text.arg("ctl")
        .arg("--socket")
        .arg(lab.socket())
        .arg("conntrack");
    let out = switchyard_tests::cmd::run_timeout(&mut text, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len() >= 3
            && lines[1].starts_with("WORKER")
            && lines.iter().any(|l| l.contains("tcp")
                && l.contains(&format!("{WEB}:"))
                && l.contains(":5601")),
        "ctl conntrack as a table:\n{}",
        out.stdout
    );
}

/// Two workers, each with its own NAT engine and share of the ports: a
/// container's veth has a queue per worker, so its flows arrive on both; the
/// uplink's single queue is on one of them, so every reply arrives there,
/// whichever worker owns its flow, and is handed to the owner. Every
/// masqueraded flow completes both ways, the published port works, and both
/// workers own (route and translate) flows.
#[test]
fn nat_on_two_workers_sees_both_directions_of_every_flow() {
    require_root!();
    let publish = format!(
        "\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8080\naddress = \"{WEB}\"\nport = 80\n"
    );
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.94.0/24", "198.18.94.1").masquerade())
        .uplink(uplink())
        .extra_config(&publish)
        .daemon_config(switchyard_tests::DaemonConfig {
            workers: vec![0, 1],
            ..switchyard_tests::DaemonConfig::default()
        })
        .start();
    let outside = lab.outside();
    let id = lab.id().to_string();
    let w = lab
        .try_attach(
            &lab.netns("w"),
            "web",
            &format!("{id}-w"),
            &["--ip", &WEB.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let r = ping_from(&w.netns, outside.ip(), 3);
    assert!(r.all_replied(), "masqueraded ping: {}", r.output);
    // Sixteen flows, a socket each: spread over both queues.
    for flow in 0..16u16 {
        let udp = udp_burst(
            &w.host(),
            outside,
            UdpBurst {
                port: 5700 + flow,
                count: 100,
                batch: 8,
                ..UdpBurst::default()
            },
        );
        assert!(
            udp.delivery_ratio() >= 0.99 && udp.corrupt == 0,
            "masqueraded UDP flow {flow}: {udp:?}"
        );
    }
    let report = tcp_transfer(&w.host(), outside, 5603, 2 << 20, Duration::from_secs(30));
    assert!(report.intact(), "masqueraded TCP: {report:?}");
    assert_eq!(report.peer.ip(), IpAddr::V4(NODE));
    let server = serve_once(&w.host(), SocketAddr::new(IpAddr::V4(WEB), 80));
    let echoed = send_once(outside, SocketAddr::new(IpAddr::V4(NODE), 8080), 100_000);
    let (got, _) = server.join(Duration::from_secs(60)).expect("a connection");
    assert_eq!(
        (got, echoed),
        (100_000, 100_000),
        "published port on two workers"
    );

    // Replies that landed on the other worker were handed to their flow's
    // owner; both workers made translations.
    let stats = lab.ctl_json(&["stats"]);
    let workers = stats["workers"].as_array().expect("workers");
    let handed_out: u64 = workers
        .iter()
        .filter_map(|w| w["handed_out"].as_u64())
        .sum();
    assert!(
        handed_out > 0,
        "frames handed to their flow's owner: {stats}"
    );
    let ct = lab.ctl_json(&["conntrack"]);
    let per_worker = ct["workers"].as_array().expect("per-worker NAT stats");
    assert_eq!(per_worker.len(), 2, "{ct}");
    for w in per_worker {
        assert!(
            w["stats"]["masqueraded"].as_u64() > Some(0),
            "every worker owns masqueraded flows: {ct}"
        );
    }
    assert!(
        ct["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["worker"] == 1)),
        "entries name their worker: {ct}"
    );
}

/// A flood of new flows does not cut an established one (issue 10): with a
/// small connection table (the setting under test; everything else is the
/// default config), an interactive TCP session through masquerade (small
/// writes both ways, every byte checked, SSH-like) keeps going while the same
/// container sends 100,000 UDP datagrams, each a new flow (its own source
/// port), and the outside sends 50,000 TCP SYNs to a published port (each
/// answered by the container's reset), about 150 times the table in 2 s;
/// and after it. The table stays at its bound throughout, flood flows are
/// evicted for newer ones (early drop), none is refused, and the session's
/// entry, established, stays; the UDP flood reaches the outside translated;
/// new connections, out and in through the published port, work afterwards.
#[test]
fn a_flood_of_new_flows_does_not_cut_an_established_connection() {
    const TABLE: u64 = 1024;
    const FLOWS: u32 = 100_000;
    const SYNS: u32 = 50_000;
    const WEB95: Ipv4Addr = Ipv4Addr::new(198, 18, 95, 10);
    require_root!();
    let publish = format!(
        "\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8080\naddress = \"{WEB95}\"\nport = 80\n"
    );
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.95.0/24", "198.18.95.1").masquerade())
        .uplink(uplink())
        .extra_config(&publish)
        .daemon_config(switchyard_tests::DaemonConfig {
            switch_extra: vec![format!("conntrack_size = {TABLE}")],
            ..switchyard_tests::DaemonConfig::default()
        })
        .start();
    let outside = lab.outside();
    let id = lab.id().to_string();
    let w = lab
        .try_attach(
            &lab.netns("w"),
            "web",
            &format!("{id}-w"),
            &["--ip", &WEB95.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let conntrack = || lab.ctl_json(&["conntrack", "--limit", "0"]);
    let counter = |ct: &serde_json::Value, name: &str| -> u64 {
        ct["stats"]["conntrack"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("conntrack.{name}: {ct}"))
    };
    let wait_rounds = |chat: &Chat, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while chat.rounds() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        chat.rounds()
    };

    // The session, established before the flood.
    let chat_at = SocketAddr::new(IpAddr::V4(outside.ip()), 5604);
    let chat = Chat::start(&w.host(), outside, chat_at, Duration::from_secs(120));
    let before = wait_rounds(&chat, 20);
    assert!(
        before >= 20,
        "the session runs before the flood: {before} rounds"
    );
    let ct = conntrack();
    let (inserted_before, published_before) = (
        counter(&ct, "inserted"),
        ct["stats"]["published"].as_u64().expect("published"),
    );

    // The flood, counted where it arrives.
    let stop = Arc::new(AtomicBool::new(false));
    let sink = flood_sink(
        outside,
        dst_ports(9000, FLOWS),
        stop.clone(),
        Duration::from_secs(90),
    );
    let syns = flood(
        outside,
        Flood {
            kind: FloodKind::TcpSyn,
            src: outside.ip(),
            dst: NODE,
            dst_port: 8080,
            flows: SYNS,
            batch: 32,
            rate: 25_000,
            timeout: Duration::from_secs(30),
        },
    );
    let udp = flood(
        &w.host(),
        Flood {
            kind: FloodKind::Udp,
            src: WEB95,
            dst: outside.ip(),
            dst_port: 9000,
            flows: FLOWS,
            batch: 32,
            rate: 50_000,
            timeout: Duration::from_secs(30),
        },
    );
    // The table while the flood runs (about 2 s): never over its bound.
    let mut samples = Vec::new();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(250));
        let ct = conntrack();
        samples.push((counter(&ct, "entries"), counter(&ct, "inserted")));
    }
    let udp = udp.join(Duration::from_secs(60));
    let syns = syns.join(Duration::from_secs(60));
    let during = chat.rounds() - before;
    stop.store(true, Ordering::Relaxed);
    let (delivered, sources) = sink.join(Duration::from_secs(60));
    let after = wait_rounds(&chat, chat.rounds() + 20);
    let ct = lab.ctl_json(&["conntrack", "--limit", "2000"]);
    let session = chat.finish();
    let flood_inserted = counter(&ct, "inserted") - inserted_before;
    let published = ct["stats"]["published"].as_u64().expect("published") - published_before;
    eprintln!(
        "UDP out: {udp:?}, {delivered} delivered from {sources:?}; SYNs in: {syns:?}, \
         {published} published; {flood_inserted} new entries; \
         session: {} rounds ({during} during the flood), slowest {:?}; \
         table (entries, inserted) while flooding: {samples:?}; conntrack: {}",
        session.rounds, session.slowest_round, ct["stats"]
    );

    // The flood was a flood: sent whole, most of it tracked and translated.
    assert_eq!(
        (udp.sent, syns.sent),
        (FLOWS, SYNS),
        "the senders' own failure"
    );
    let flows = u64::from(FLOWS + SYNS);
    assert!(
        flood_inserted >= flows * 9 / 10 && published >= u64::from(SYNS) * 9 / 10,
        "most of the flood reached the table ({flood_inserted} of {flows}, \
         {published} of {SYNS} SYNs to the published port): {ct}"
    );
    assert!(
        delivered >= u64::from(FLOWS) * 9 / 10 && sources == [NODE],
        "most of the UDP flood reached the outside, from the node's address: \
         {delivered} from {sources:?}"
    );
    // Bounded: at most TABLE entries at any time, older flood flows evicted
    // for newer ones, nothing refused (always something evictable).
    assert!(
        samples.iter().all(|&(entries, _)| entries <= TABLE),
        "the table stayed within its bound while flooded: {samples:?}"
    );
    assert_eq!(counter(&ct, "max_entries"), TABLE, "{ct}");
    assert!(counter(&ct, "entries") <= TABLE, "{ct}");
    assert!(
        counter(&ct, "early_dropped") >= flood_inserted - TABLE,
        "flood flows were evicted for newer ones: {ct}"
    );
    assert_eq!(
        counter(&ct, "full"),
        0,
        "no new flow found nothing evictable: {ct}"
    );
    // The session never stopped, lost or reordered nothing, and its entry
    // (assured) is still there.
    assert!(
        session.intact(),
        "the session survived the flood: {session:?}"
    );
    assert!(
        during >= 10 && after >= before + during + 20,
        "the session went on during the flood ({during} rounds) and after: {session:?}"
    );
    assert!(
        session.slowest_round < Duration::from_secs(2),
        "no round stalled: {session:?}"
    );
    let entries = ct["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["original"]["protocol"] == 6
            && e["original"]["src"] == WEB95.to_string()
            && e["original"]["dst_port"] == 5604
            && e["assured"] == true),
        "the session's entry survived the flood: {ct}"
    );

    // Not stalled: new connections, out through masquerade and in through
    // the published port, work at once.
    let out_at = SocketAddr::new(IpAddr::V4(outside.ip()), 5605);
    let server = serve_once(outside, out_at);
    assert_eq!(
        send_once(&w.host(), out_at, 20_000),
        20_000,
        "a new connection out"
    );
    let (got, peer) = server.join(Duration::from_secs(60)).expect("a connection");
    assert_eq!((got, peer.ip()), (20_000, IpAddr::V4(NODE)));
    let server = serve_once(&w.host(), SocketAddr::new(IpAddr::V4(WEB95), 80));
    let echoed = send_once(outside, SocketAddr::new(IpAddr::V4(NODE), 8080), 20_000);
    let (got, _) = server.join(Duration::from_secs(60)).expect("a connection");
    assert_eq!((got, echoed), (20_000, 20_000), "a new connection in");
    let stats = lab.ctl_json(&["stats"]);
    let full_drops: Vec<u64> = stats["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["drops"]["ct_table_full"].as_u64())
        .collect();
    assert!(
        !full_drops.is_empty() && full_drops.iter().all(|&n| n == 0),
        "no frame dropped for a full table: {stats}"
    );
}

/// The rest of the scenario list: a masquerade range of one port lets the
/// first flow to a destination through and refuses the second (counted, never
/// a wrong translation); a published UDP port reaches its container; an ICMP
/// port unreachable from the outside about a masqueraded datagram reaches the
/// container translated (its connected socket sees the refusal); a container
/// detached and replaced by a new one on the same address is reached through
/// the same published UDP port at once.
#[test]
fn one_port_ranges_udp_publishing_icmp_errors_and_replacement() {
    require_root!();
    let publish = format!(
        "\n[[publish]]\nprotocol = \"udp\"\nhost_port = 5353\naddress = \"{WEB}\"\nport = 53\n"
    );
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.94.0/24", "198.18.94.1").masquerade())
        .uplink(Uplink {
            nat_ports: Some("40000-40000".into()),
            ..uplink()
        })
        .extra_config(&publish)
        .start();
    let outside = lab.outside();
    let id = lab.id().to_string();
    let w = lab
        .try_attach(
            &lab.netns("w"),
            "web",
            &format!("{id}-w"),
            &["--ip", &WEB.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let c = lab.attach(&lab.netns("c"), "web", &format!("{id}-c"));
    let exhausted = || -> u64 {
        let ct = lab.ctl_json(&["conntrack", "--limit", "0"]);
        ct["stats"]["ports_exhausted"]
            .as_u64()
            .unwrap_or_else(|| panic!("{ct}"))
    };

    // One port: the first flow to outside:5605 takes it, the second cannot.
    let burst = |from: &Host, port: u16| {
        udp_burst(
            from,
            outside,
            UdpBurst {
                port,
                count: 20,
                batch: 4,
                timeout: Duration::from_secs(3),
                ..UdpBurst::default()
            },
        )
    };
    // The outside resolved first (a burst to an unresolved next hop keeps
    // only a few frames while ARP asks: by design, not what is tested here).
    let r = ping_from(&w.netns, outside.ip(), 1);
    assert!(r.all_replied(), "{}", r.output);
    let first = burst(&w.host(), 5605);
    assert!(first.delivery_ratio() >= 0.99, "the first flow: {first:?}");
    let second = burst(&c.host(), 5605);
    assert_eq!(
        second.received, 0,
        "the second flow has no port left: {second:?}"
    );
    assert!(exhausted() >= 1, "refusals are counted");

    // A published UDP port.
    let out_ip = outside.ip();
    let server = w.host().spawn("dns", move || {
        let s = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(WEB), 53)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = s.recv_from(&mut buf).expect("a query");
        s.send_to(&buf[..n], peer).unwrap();
        peer
    });
    let answer = outside
        .spawn("query", move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..20 {
                let _ = s.send_to(b"query", SocketAddr::new(IpAddr::V4(NODE), 5353));
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    return Some((buf[..n].to_vec(), from));
                }
            }
            None
        })
        .join(Duration::from_secs(20));
    let peer = server.join(Duration::from_secs(20));
    assert_eq!(
        peer.ip(),
        IpAddr::V4(out_ip),
        "DNAT keeps the client's address"
    );
    let (bytes, from) = answer.expect("the container answered through the published port");
    assert_eq!(
        (bytes.as_slice(), from),
        (&b"query"[..], SocketAddr::new(IpAddr::V4(NODE), 5353))
    );

    // Port unreachable from the outside (nothing listens on 5606) about a
    // masqueraded datagram: translated back, the container's connected
    // socket is refused.
    let refused = w
        .host()
        .spawn("refused", move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.connect(SocketAddr::new(IpAddr::V4(out_ip), 5606))
                .unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 8];
            for _ in 0..10 {
                let _ = s.send(b"anyone?");
                match s.recv(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
                    _ => {}
                }
            }
            false
        })
        .join(Duration::from_secs(20));
    assert!(
        refused,
        "the ICMP port unreachable reached the container translated"
    );

    // Replace the server: a new container on the same address answers the
    // published UDP port at once.
    lab.detach(&format!("{id}-w"));
    let w2 = lab
        .try_attach(
            &lab.netns("w2"),
            "web",
            &format!("{id}-w2"),
            &["--ip", &WEB.to_string()],
        )
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let server = w2.host().spawn("dns2", move || {
        let s = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(WEB), 53)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = s.recv_from(&mut buf).expect("a query");
        s.send_to(&buf[..n], peer).unwrap();
    });
    let answered = outside
        .spawn("query2", move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..20 {
                let _ = s.send_to(b"again", SocketAddr::new(IpAddr::V4(NODE), 5353));
                if s.recv_from(&mut buf).is_ok() {
                    return true;
                }
            }
            false
        })
        .join(Duration::from_secs(20));
    server.join(Duration::from_secs(20));
    assert!(answered, "the new container answers the published port");
}

/// `[conntrack]` timeouts apply: with `udp_unreplied = 2`, a masqueraded
/// datagram nobody answers is tracked (its timeout under 3 s), then gone
/// after the timeout, while the default (30 s) would still hold it.
#[test]
fn conntrack_timeouts_come_from_the_config() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet("web", "198.18.96.0/24", "198.18.96.1").masquerade())
        .uplink(uplink())
        .extra_config("\n[conntrack]\nudp_unreplied = 2\n")
        .start();
    let outside = lab.outside();
    let id = lab.id().to_string();
    let w = lab.attach(&lab.netns("w"), "web", &format!("{id}-w"));
    let out_ip = outside.ip();
    w.host()
        .spawn("one", move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"x", SocketAddr::new(IpAddr::V4(out_ip), 9))
                .unwrap();
        })
        .join(Duration::from_secs(10));
    let udp_entries = |lab: &ControlLab| -> Vec<serde_json::Value> {
        let ct = lab.ctl_json(&["conntrack"]);
        ct["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("{ct}"))
            .iter()
            .filter(|e| e["original"]["protocol"] == 17)
            .cloned()
            .collect()
    };
    let found = udp_entries(&lab);
    assert_eq!(found.len(), 1, "the datagram's flow is tracked: {found:?}");
    assert!(found[0]["expires_in_secs"].as_u64() <= Some(2), "{found:?}");
    std::thread::sleep(Duration::from_millis(3_000));
    assert!(udp_entries(&lab).is_empty(), "gone after its 2 s timeout");
}
