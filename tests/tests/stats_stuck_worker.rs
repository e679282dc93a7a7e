//! `ctl stats`, `ctl ports` and `ctl fdb` answer while a worker is stuck: the
//! worker's thread is stopped with ptrace (only that thread; the daemon's
//! control thread runs on), and the control socket still serves its counters
//! and MAC table, because they are read from what the worker published, never
//! asked of it. Before, each of these waited 10 s for the worker and failed
//! with "a worker did not answer".

use switchyard_tests::control::{ping_from, ControlLab, Network};
use switchyard_tests::sys::{stop_thread, thread_named};
use switchyard_tests::{require_root, DaemonConfig};

const NET: &str = "stuck";

#[test]
fn stats_ports_and_fdb_answer_while_the_worker_is_stopped() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.43.0/29", "198.18.43.6"))
        .daemon_config(DaemonConfig {
            switch_extra: Vec::new(),
            ..DaemonConfig::default()
        })
        .start();
    let id = lab.id().to_string();
    let (ns1, ns2) = (lab.netns("s1"), lab.netns("s2"));
    let c1 = lab.attach(&ns1, NET, &format!("{id}-s1"));
    let c2 = lab.attach(&ns2, NET, &format!("{id}-s2"));
    let ping = ping_from(&c1.netns, c2.ip, 3);
    assert!(ping.all_replied(), "{}", ping.output);

    let pid = lab.daemon().pid().expect("daemon running");
    let tid = thread_named(pid, "sy-worker-0").expect("worker thread sy-worker-0");
    let stopped = stop_thread(pid, tid).expect("ptrace-stop the worker thread (needs root)");

    let stats = lab.ctl_json(&["stats"]);
    let port = |name: &str| {
        stats["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("port {name} in stats: {stats}"))
    };
    for c in [&c1, &c2] {
        assert!(
            port(&c.name)["rx_packets"].as_u64().unwrap() >= 3,
            "{}'s pings counted: {stats}",
            c.name
        );
    }
    assert!(
        stats["workers"][0]["loops"].as_u64().unwrap() > 0,
        "{stats}"
    );
    // The pipeline stages' counters are published too: parse saw the pings.
    let parse = stats["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["name"] == "parse"))
        .unwrap_or_else(|| panic!("a parse stage in stats: {stats}"));
    assert!(
        parse["frames_in"].as_u64().unwrap_or(0) >= 6,
        "parse counted the pings both ways: {parse}"
    );
    let ports = lab.ctl_json(&["ports"]);
    assert_eq!(ports.as_array().map(Vec::len), Some(2), "{ports}");
    let fdb = lab.ctl_json(&["fdb", "--network", NET]);
    for c in [&c1, &c2] {
        assert!(
            fdb.as_array().unwrap().iter().any(|e| e["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&c.mac))
                && e["port"] == c.name.as_str()),
            "{} ({}) in the fdb while the worker is stopped: {fdb}",
            c.name,
            c.mac
        );
    }
    // Still stopped: nothing the worker did made those answers.
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).is_ok_and(|s| s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('t'))),
        "the worker stayed stopped"
    );
    drop(stopped);

    let ping = ping_from(&c1.netns, c2.ip, 3);
    assert!(ping.all_replied(), "forwards again: {}", ping.output);
    lab.detach(&c1.name);
    lab.detach(&c2.name);
    lab.stop_daemon().assert_clean();
}
