//! Tests of the harness itself: cleanup on drop and on panic, namespace threads,
//! the root check. Linux bridge only, so they run without the daemon.

use std::net::{SocketAddrV4, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_tests::cmd::{run_ok, run_timeout};
use switchyard_tests::netns::netns_path;
use switchyard_tests::{names, require_root, Dataplane, Host, Lab};

fn two_hosts() -> Lab {
    Lab::builder(Dataplane::LinuxBridge)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .start()
}

/// Every namespace and interface name the lab created (hosts' veths and bridges).
fn created_names(lab: &Lab) -> (Vec<String>, Vec<String>) {
    let netns = lab.hosts().iter().map(|h| h.netns().to_string()).collect();
    let links = run_ok("ip", &["-o", "link", "show"])
        .stdout
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(&format!("{}{}", names::PREFIX, lab.id())))
        .collect();
    (netns, links)
}

#[track_caller]
fn assert_gone(netns: &[String], links: &[String]) {
    assert!(!links.is_empty() && !netns.is_empty(), "nothing recorded");
    for ns in netns {
        assert!(!netns_path(ns).exists(), "namespace {ns} left behind");
    }
    for l in links {
        assert!(
            !Path::new("/sys/class/net").join(l).exists(),
            "interface {l} left behind"
        );
    }
}

/// Dropping a lab removes its namespaces, veths and bridges.
#[test]
fn lab_is_removed_on_drop() {
    require_root!();
    let lab = two_hosts();
    let (netns, links) = created_names(&lab);
    assert_eq!(links.len(), 3, "expected 2 veths + 1 bridge, got {links:?}");
    drop(lab);
    assert_gone(&netns, &links);
}

/// A test that panics mid-way still leaves nothing behind.
#[test]
fn lab_is_removed_on_panic() {
    require_root!();
    let recorded = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let rec = Arc::clone(&recorded);
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        let lab = two_hosts();
        *rec.lock().unwrap() = created_names(&lab);
        panic!("deliberate panic to test cleanup");
    }));
    assert!(result.is_err());
    let (netns, links) = recorded.lock().unwrap().clone();
    assert_gone(&netns, &links);
}

/// Code spawned into a host runs in that host's namespace: it can bind the host's
/// address, which the root namespace cannot.
#[test]
fn spawned_thread_runs_in_the_namespace() {
    require_root!();
    let host = Host::create(&names::unique_id(), "h1", "198.18.0.1/24");
    let addr = SocketAddrV4::new(host.ip(), 0);
    let inside = host
        .spawn("bind", move || {
            UdpSocket::bind(addr).map(|_| ()).map_err(|e| e.to_string())
        })
        .join(Duration::from_secs(5));
    assert_eq!(inside, Ok(()), "could not bind {addr} inside the namespace");
    assert!(
        UdpSocket::bind(addr).is_err(),
        "{addr} is bindable in the root namespace"
    );
}

/// Harness hook for [`require_root_skips_or_fails_unprivileged`]: trivially passes
/// with root; what matters is how it behaves when re-run without privileges.
#[test]
fn probe_require_root() {
    require_root!();
}

/// Without privileges, `require_root!` skips (prints SKIP) normally and fails with
/// CI=true. Checked by re-running this binary's probe test as uid 65534.
#[test]
fn require_root_skips_or_fails_unprivileged() {
    require_root!();
    let exe = std::env::current_exe().expect("current exe");
    let unprivileged = |ci: Option<&str>| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "probe_require_root",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("CI");
        if let Some(v) = ci {
            cmd.env("CI", v);
        }
        run_timeout(&mut cmd, Duration::from_secs(30)).expect("run probe")
    };
    let local = unprivileged(None);
    assert!(
        local.success() && local.stderr.contains("SKIP:"),
        "without CI, an unprivileged run should skip: {local}"
    );
    let ci = unprivileged(Some("true"));
    assert!(
        !ci.success() && format!("{}{}", ci.stdout, ci.stderr).contains("CI=true"),
        "with CI=true, an unprivileged run should fail: {ci}"
    );
}
