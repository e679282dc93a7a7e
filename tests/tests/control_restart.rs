//! Restarts are safe for the neighbours: a daemon deletes only the AF_XDP anchor
//! veth it created and recorded (`<control_socket>.anchor`), never an interface by
//! its name alone. Container veths (`sy` + 8 hex, some of them `sya...`), a user's
//! `syaabcdef0`, and another daemon's anchor all survive starts, clean restarts
//! and a restart after SIGKILL; the SIGKILLed run's own anchor is removed by the
//! next start of the same daemon, and only that one.

use std::fs;
use std::process::Command;
use std::time::Duration;

use switchyard_tests::cmd;
use switchyard_tests::control::{
    link_exists, ping_from, recorded_anchor, render_config, Attached, ControlLab, Network,
};
use switchyard_tests::names;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{require_root, switchyard_bin, Daemon, DaemonConfig, Host, PortConfig};

fn small_rings() -> DaemonConfig {
    DaemonConfig {
        switch_extra: vec!["ring_size = 256".into(), "umem_frames = 16384".into()],
        ..DaemonConfig::default()
    }
}

/// A veth pair the test made in the root namespace, deleted on drop. Refuses to
/// start if the name is taken (it is never someone else's to delete).
struct TestVeth(String);

impl TestVeth {
    #[track_caller]
    fn create(name: &str, peer: &str) -> TestVeth {
        assert!(
            !link_exists(name) && !link_exists(peer),
            "{name} or {peer} already exists on this machine; not touching it"
        );
        cmd::run_ok(
            "ip",
            &["link", "add", name, "type", "veth", "peer", "name", peer],
        );
        TestVeth(name.to_string())
    }
}

impl Drop for TestVeth {
    fn drop(&mut self) {
        if link_exists(&self.0) {
            cmd::cleanup(&["link", "del", &self.0]);
        }
    }
}

/// The daemon's host veth name for port `name` (first choice): `sy` + FNV-1a,
/// as `derive_host_name` in switch/src/daemon/controller/containers.rs.
fn host_name_of(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("sy{hash:08x}")
}

/// `n` container names of this lab whose host veths are `sya<7 hex>`: exactly the
/// names the old sweep (`sya<hex>` with no live PID) deleted at every start.
fn names_hashing_to_sya(id: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("{id}-a{i}"))
        .filter(|name| host_name_of(name).starts_with("sya"))
        .take(n)
        .collect();
    assert_eq!(names.len(), n, "not enough names hash to sya...");
    names
}

#[track_caller]
fn assert_all_pairs_ping(cs: &[Attached]) {
    for a in cs {
        for b in cs {
            if a.name != b.name {
                let r = ping_from(&a.netns, b.ip, 2);
                assert!(
                    r.all_replied(),
                    "{} -> {} ({}): {}/{}\n{}",
                    a.name,
                    b.name,
                    b.ip,
                    r.received,
                    r.transmitted,
                    r.output
                );
            }
        }
    }
}

#[track_caller]
fn assert_exist(what: &str, links: &[&str]) {
    for l in links {
        assert!(link_exists(l), "{what}: {l} was deleted");
    }
}

/// (a) a user's `syaabcdef0` survives start and restarts; (c) a SIGKILLed daemon
/// leaves its anchor and the next start removes exactly that one (not a foreign
/// anchor-looking veth); (d) attached containers whose veths are `sya...` all
/// survive and still reach each other after each restart.
#[test]
fn restarts_delete_only_the_daemons_own_recorded_anchor() {
    require_root!();
    // Made before the daemon starts: it must survive the start too.
    let user = TestVeth::create("syaabcdef0", "syaabcdef1");
    let id = names::unique_id();
    // Looks exactly like an anchor of some other daemon (not in our record).
    let foreign_name = format!("sy_a{id}ff");
    let foreign = TestVeth::create(&foreign_name, &format!("sy_b{id}ff"));
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet(
            "web",
            "198.18.62.0/28",
            "198.18.62.14",
        ))
        .daemon_config(small_rings())
        .start();
    let neighbours = [user.0.as_str(), foreign.0.as_str()];
    assert_exist("after start", &neighbours);

    let names = names_hashing_to_sya(lab.id(), 3);
    let cs: Vec<Attached> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ns = lab.netns(&format!("a{i}"));
            lab.attach(&ns, "web", name)
        })
        .collect();
    for c in &cs {
        assert!(c.interface.starts_with("sya"), "{c:?}");
    }
    let veths: Vec<&str> = cs.iter().map(|c| c.interface.as_str()).collect();
    assert_all_pairs_ping(&cs);

    // Clean restart: the old anchor goes with its daemon, a new one is recorded.
    let first = lab.recorded_anchor().expect("anchor recorded");
    assert!(first.starts_with("sy_a") && link_exists(&first), "{first}");
    lab.restart_daemon();
    assert!(!link_exists(&first), "a clean exit deletes the anchor");
    let second = lab.recorded_anchor().expect("anchor recorded");
    assert_ne!(second, first);
    assert!(link_exists(&second));
    assert_exist("after a clean restart", &neighbours);
    assert_exist("container veth after a clean restart", &veths);
    assert_all_pairs_ping(&cs);

    // SIGKILL: nothing cleans up, the anchor stays; the next start removes it.
    lab.kill_daemon();
    assert!(
        link_exists(&second),
        "a SIGKILLed daemon cannot delete its anchor"
    );
    let text = lab.config_text();
    lab.start_daemon_with_text(&text);
    assert!(
        !link_exists(&second),
        "the next start removes the recorded anchor of the killed run"
    );
    let third = lab.recorded_anchor().expect("anchor recorded");
    assert!(link_exists(&third) && third != second);
    assert_exist("after a restart after SIGKILL", &neighbours);
    assert_exist("container veth after a restart after SIGKILL", &veths);
    assert_all_pairs_ping(&cs);

    lab.stop_daemon().assert_clean();
    assert!(!link_exists(&third));
    assert_exist("after stop", &neighbours);
}

/// (b) Two daemons with different control sockets and configs run at once;
/// restarting one (cleanly, or after SIGKILL) leaves the other's anchor and the
/// traffic through it intact; a third daemon started on the second one's
/// socket is refused before it touches anything.
#[test]
fn a_neighbour_daemon_keeps_its_anchor_and_traffic() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::l2("a"))
        .host("h1", "a", "198.18.63.1/24")
        .host("h2", "a", "198.18.63.2/24")
        .daemon_config(small_rings())
        .start();
    // Daemon B: its own hosts, network, socket and state (dropped before them).
    let b_id = names::unique_id();
    let b_dir = TempDir::new("ctlb", 0o700);
    let b_socket = b_dir.path().join("b.sock");
    let b1 = Host::create(&b_id, "b1", "198.18.64.1/24");
    let b2 = Host::create(&b_id, "b2", "198.18.64.2/24");
    let b_ports: Vec<PortConfig> = [&b1, &b2]
        .iter()
        .map(|h| PortConfig {
            name: h.name().to_string(),
            interface: h.ifname().to_string(),
            network: "b".into(),
        })
        .collect();
    let b_text = render_config(&small_rings(), &b_socket, &[Network::l2("b")], &b_ports);
    let mut b = Daemon::start_with_text(&b_text);

    let b_anchor = recorded_anchor(&b_socket).expect("B recorded its anchor");
    let a_anchor = lab.recorded_anchor().expect("A recorded its anchor");
    assert_ne!(a_anchor, b_anchor);
    assert!(link_exists(&a_anchor) && link_exists(&b_anchor));
    let ping = |from: &Host, to: &Host| {
        let r = from.ping(to.ip(), 3);
        assert!(
            r.all_replied(),
            "{} -> {}: {}/{}\n{}",
            from.name(),
            to.name(),
            r.received,
            r.transmitted,
            r.output
        );
    };
    ping(&b1, &b2);
    ping(lab.host("h1"), lab.host("h2"));

    lab.restart_daemon();
    assert!(link_exists(&b_anchor), "A's restart deleted B's anchor");
    ping(&b1, &b2);
    ping(lab.host("h1"), lab.host("h2"));

    lab.kill_daemon();
    let text = lab.config_text();
    lab.start_daemon_with_text(&text);
    assert!(!link_exists(&a_anchor), "A's own killed anchor is gone");
    assert!(
        link_exists(&b_anchor),
        "A's start after SIGKILL deleted B's anchor"
    );
    ping(&b1, &b2);
    ping(lab.host("h1"), lab.host("h2"));

    // A second daemon on B's socket must not take B's record (nor its anchor).
    let c_config = b_dir.path().join("c.toml");
    fs::write(
        &c_config,
        render_config(&small_rings(), &b_socket, &[Network::l2("c")], &[]),
    )
    .expect("write c.toml");
    let out = cmd::run_timeout(
        Command::new(switchyard_bin())
            .arg("run")
            .arg("--config")
            .arg(&c_config)
            .env("NO_COLOR", "1"),
        Duration::from_secs(30),
    )
    .expect("run the third daemon");
    assert!(!out.success(), "a daemon on a busy socket started:\n{out}");
    assert!(
        out.stderr.contains("another switchyard daemon"),
        "unclear refusal:\n{out}"
    );
    assert!(
        link_exists(&b_anchor),
        "the refused daemon deleted B's anchor"
    );
    assert_eq!(
        recorded_anchor(&b_socket).as_deref(),
        Some(b_anchor.as_str())
    );
    ping(&b1, &b2);

    b.stop().assert_clean();
    assert!(!link_exists(&b_anchor));
    lab.stop_daemon().assert_clean();
}
