//! Config reload while forwarding: `ctl reload` and SIGHUP add a network and ports
//! without disturbing the ports that stay (a UDP burst across each reload loses
//! nothing); a broken file is refused with `invalid_config` and the running version
//! stays; a fixed file then applies, removals included.
//!
//! Switchyard only. All hosts share 198.18.45.0/24, so that "red" and "blue" being
//! separate L2 domains shows in pings that must fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::control::{assert_error_reply, wait_until, ControlLab, Network};
use switchyard_tests::{require_root, udp_burst, DaemonConfig, Host, UdpBurst};

/// `[switch]` for labs that grow to 6 ports on one worker: every socket keeps
/// 2 * ring_size frames of the worker's UMEM in its fill ring, so the defaults
/// (ring 2048, 16384 frames) feed only 4 sockets (see
/// `ports_beyond_the_umem_are_refused_or_forward`).
fn small_rings() -> DaemonConfig {
    DaemonConfig {
        switch_extra: Vec::new(),
        ..DaemonConfig::default()
    }
}

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::l2("red"))
        .host("h1", "red", "198.18.45.1/24")
        .host("h2", "red", "198.18.45.2/24")
        .daemon_config(small_rings())
        .start()
}

#[track_caller]
fn assert_ping(lab: &ControlLab, from: &str, to: &str) {
    let dst = lab.host(to).ip();
    let r = lab.host(from).ping(dst, 3);
    assert!(
        r.all_replied(),
        "{from} -> {to} ({dst}): {}/{} replies\n{}",
        r.received,
        r.transmitted,
        r.output
    );
}

#[track_caller]
fn assert_no_ping(lab: &ControlLab, from: &str, to: &str) {
    let dst = lab.host(to).ip();
    let r = lab.host(from).ping(dst, 2);
    assert_eq!(
        r.received, 0,
        "{from} -> {to} ({dst}) must not get through\n{}",
        r.output
    );
}

/// `(name, network, origin)` of every port, sorted.
fn port_set(lab: &ControlLab) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = lab
        .ports()
        .into_iter()
        .map(|p| (p.name, p.network, p.origin))
        .collect();
    v.sort();
    v
}

fn port_block(name: &str, interface: &str, network: &str) -> String {
    format!(
        "\n[[port]]\nname = \"{name}\"\ndriver = \"af_xdp\"\ninterface = \"{interface}\"\nnetwork = \"{network}\"\n"
    )
}

fn copy_of(h: &Host) -> Host {
    Host::adopt(
        h.name(),
        h.netns(),
        h.ifname(),
        &format!("{}/{}", h.ip(), h.prefix_len()),
        h.mac(),
    )
}

/// Runs `change` while a UDP burst h1 -> h2 is under way; panics unless the burst
/// outlasted the change and arrived complete and in order.
#[track_caller]
fn across_burst<T>(
    lab: &mut ControlLab,
    port: u16,
    change: impl FnOnce(&mut ControlLab) -> T,
) -> T {
    // Copies that own nothing, so `change` may borrow the lab mutably meanwhile.
    let (ha, hb) = (copy_of(lab.host("h1")), copy_of(lab.host("h2")));
    let done = AtomicBool::new(false);
    let (report, value) = thread::scope(|s| {
        let flow = s.spawn(|| {
            let r = udp_burst(
                &ha,
                &hb,
                UdpBurst {
                    port,
                    count: 12_000,
                    batch: 4,
                    timeout: Duration::from_secs(40),
                    ..UdpBurst::default()
                },
            );
            done.store(true, Ordering::SeqCst);
            r
        });
        thread::sleep(Duration::from_millis(500));
        let value = change(lab);
        assert!(
            !done.load(Ordering::SeqCst),
            "the burst ended before the reload did: make it longer"
        );
        (
            flow.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            value,
        )
    });
    assert_eq!(
        (
            report.lost(),
            report.reordered,
            report.duplicates,
            report.corrupt
        ),
        (0, 0, 0, 0),
        "h1 -> h2 across the reload (lost, reordered, duplicates, corrupt): {report:?}"
    );
    value
}

#[track_caller]
fn names(v: &Value, key: &str) -> Vec<String> {
    let mut n: Vec<String> = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("reload reply without {key}: {v}"))
        .iter()
        .map(|x| x.as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

/// Refused reloads (syntax error, a port on a missing network, a missing interface
/// via SIGHUP) change nothing; ctl reload and SIGHUP of good files add a network and
/// ports while the old ports forward without loss; a fixed file adds and removes.
#[test]
fn reload_applies_good_files_and_refuses_broken_ones() {
    require_root!();
    let mut lab = lab();
    assert_ping(&lab, "h1", "h2");
    assert_eq!(
        port_set(&lab),
        vec![
            ("h1".into(), "red".into(), "config".into()),
            ("h2".into(), "red".into(), "config".into())
        ]
    );

    // 1. ctl reload: network blue with h3 and h4, while h1 -> h2 carries a burst.
    lab.add_network(Network::l2("blue"));
    lab.add_host("h3", "blue", "198.18.45.3/24");
    lab.add_host("h4", "blue", "198.18.45.4/24");
    lab.write_config();
    let reply = across_burst(&mut lab, 7101, |lab| lab.ctl_json(&["reload"]));
    assert_eq!(names(&reply, "added"), ["h3", "h4"], "{reply}");
    assert_eq!(names(&reply, "removed"), Vec::<String>::new(), "{reply}");
    assert_eq!(
        names(&reply, "needs_restart"),
        Vec::<String>::new(),
        "{reply}"
    );
    assert_ping(&lab, "h3", "h4");
    assert_ping(&lab, "h4", "h3");
    assert_ping(&lab, "h2", "h1");
    assert_no_ping(&lab, "h1", "h3");
    assert_no_ping(&lab, "h4", "h2");

    // 2. SIGHUP: h5 joins blue.
    lab.add_host("h5", "blue", "198.18.45.5/24");
    lab.write_config();
    across_burst(&mut lab, 7102, |lab| {
        lab.daemon()
            .signal(libc::SIGHUP)
            .unwrap_or_else(|e| panic!("SIGHUP: {e}"));
        assert!(
            wait_until(Duration::from_secs(10), || lab
                .port_names()
                .contains(&"h5".to_string())),
            "h5 not added within 10 s of SIGHUP; ports: {:?}",
            lab.port_names()
        );
    });
    assert!(
        lab.daemon().log().contains("SIGHUP: config reloaded"),
        "no reload line in the log"
    );
    assert_ping(&lab, "h5", "h3");
    assert_ping(&lab, "h1", "h2");
    let good = lab.config_text();
    let running = port_set(&lab);
    assert_eq!(running.len(), 5, "{running:?}");

    // 3. Broken files: refused, nothing changes, everything still forwards.
    let h6_if = lab
        .add_host("h6", "blue", "198.18.45.6/24")
        .ifname()
        .to_string();
    let broken = [
        ("syntax error", format!("{good}\n[[port]\nname = \"h6\"\n")),
        (
            "port on a missing network",
            format!("{good}{}", port_block("h6", &h6_if, "nosuch")),
        ),
        (
            "two ports on one interface",
            format!("{good}{}", port_block("h6", lab.host("h1").ifname(), "red")),
        ),
    ];
    for (what, text) in &broken {
        lab.write_config_text(text);
        let out = lab.ctl_err(&["reload"], "invalid_config");
        assert!(out.stdout.trim().is_empty(), "{what}: {out}");
        let raw = lab.raw_request(br#"{"cmd":"reload"}"#);
        assert_error_reply(&raw, "invalid_config", what);
        assert_eq!(port_set(&lab), running, "{what}: ports changed");
        assert_ping(&lab, "h1", "h2");
        assert_ping(&lab, "h3", "h5");
    }
    // A missing interface, via SIGHUP: logged, refused, nothing changes.
    let log_len = lab.daemon().log().len();
    let missing_if = format!("syt{}gone", lab.id());
    lab.write_config_text(&format!("{good}{}", port_block("h6", &missing_if, "blue")));
    lab.daemon()
        .signal(libc::SIGHUP)
        .unwrap_or_else(|e| panic!("SIGHUP: {e}"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.daemon().log()[log_len..]
            .contains("reload refused")),
        "no refusal logged after SIGHUP with a missing interface:\n{}",
        &lab.daemon().log()[log_len..]
    );
    assert!(lab.daemon_running(), "the daemon died on a refused reload");
    assert_eq!(port_set(&lab), running, "ports changed on a refused SIGHUP");
    assert_ping(&lab, "h1", "h2");
    assert_ping(&lab, "h4", "h3");

    // 4. The fixed file applies: h6 added, h4 removed (and really gone).
    let h4 = port_block("h4", lab.host("h4").ifname(), "blue");
    let fixed = lab.config_text();
    assert!(fixed.contains(&h4));
    lab.write_config_text(&fixed.replace(&h4, ""));
    let reply = across_burst(&mut lab, 7103, |lab| lab.ctl_json(&["reload"]));
    assert_eq!(names(&reply, "added"), ["h6"], "{reply}");
    assert_eq!(names(&reply, "removed"), ["h4"], "{reply}");
    assert_ping(&lab, "h6", "h3");
    assert_ping(&lab, "h5", "h6");
    assert_no_ping(&lab, "h3", "h4");
    let mut want = running.clone();
    want.retain(|(n, _, _)| n != "h4");
    want.push(("h6".into(), "blue".into(), "config".into()));
    want.sort();
    assert_eq!(port_set(&lab), want);
    lab.stop_daemon().assert_clean();
}

/// `add-port` and `del-port` at run time: an added port forwards and survives a
/// restart (state file); a removed one stops; wrong requests get the documented codes
/// and change nothing.
#[test]
fn add_port_and_del_port() {
    require_root!();
    let mut lab = lab();
    let h3_if = lab
        .add_host("h3", "red", "198.18.45.3/24")
        .ifname()
        .to_string();
    let v = lab.ctl_json(&[
        "add-port",
        "--name",
        "h3",
        "--interface",
        &h3_if,
        "--network",
        "red",
    ]);
    assert_eq!(v["added"], "h3", "{v}");
    let row = lab
        .ports()
        .into_iter()
        .find(|p| p.name == "h3")
        .expect("h3 listed");
    assert_eq!(
        (
            row.interface.as_str(),
            row.network.as_str(),
            row.origin.as_str()
        ),
        (h3_if.as_str(), "red", "add-port")
    );
    assert_ping(&lab, "h3", "h1");
    assert_ping(&lab, "h2", "h3");

    let h1_if = lab.host("h1").ifname().to_string();
    // A free interface, for the requests that must fail for another reason.
    let spare_if = lab
        .add_host("h4", "red", "198.18.45.4/24")
        .ifname()
        .to_string();
    let before = port_set(&lab);
    for (args, code) in [
        (
            vec![
                "add-port",
                "--name",
                "h3",
                "--interface",
                &h1_if,
                "--network",
                "red",
            ],
            "already_exists",
        ),
        (
            vec![
                "add-port",
                "--name",
                "hx",
                "--interface",
                &h3_if,
                "--network",
                "red",
            ],
            "already_exists",
        ),
        (
            vec![
                "add-port",
                "--name",
                "hx",
                "--interface",
                "syt-nosuchif",
                "--network",
                "red",
            ],
            "not_found",
        ),
        (
            vec![
                "add-port",
                "--name",
                "hx",
                "--interface",
                &spare_if,
                "--network",
                "nosuch",
            ],
            "not_found",
        ),
        (
            vec![
                "add-port",
                "--name",
                "bad name",
                "--interface",
                &spare_if,
                "--network",
                "red",
            ],
            "invalid_argument",
        ),
        (vec!["del-port", "h1"], "invalid_argument"),
        (vec!["del-port", "nosuch"], "not_found"),
        (vec!["detach", "h1"], "invalid_argument"),
        (vec!["detach", "h3"], "invalid_argument"),
    ] {
        lab.ctl_err(&args, code);
    }
    assert_eq!(
        port_set(&lab),
        before,
        "a refused request changed the ports"
    );
    assert_ping(&lab, "h1", "h3");

    // Added ports are in the state file: a restarted daemon re-adopts h3.
    lab.restart_daemon();
    assert_eq!(port_set(&lab), before, "ports differ after restart");
    assert_ping(&lab, "h3", "h2");

    let v = lab.ctl_json(&["del-port", "h3"]);
    assert_eq!(v["removed"], "h3", "{v}");
    assert!(!lab.port_names().contains(&"h3".to_string()));
    assert!(
        switchyard_tests::control::link_exists(&h3_if),
        "del-port must leave the interface alone"
    );
    assert_no_ping(&lab, "h1", "h3");
    assert_ping(&lab, "h1", "h2");
    lab.ctl_err(&["del-port", "h3"], "not_found");
    lab.stop_daemon().assert_clean();
}

/// With the default rings (2048) and UMEM (16384 frames), one worker's fill rings
/// take every frame once 4 ports exist. Adding ports beyond what the UMEM can feed
/// must either be refused with an error, or the ports must forward; a port that is
/// accepted and then drops everything (`no_free_frame`) is neither.
#[test]
fn ports_beyond_the_umem_are_refused_or_forward() {
    require_root!();
    let mut lab = ControlLab::builder()
        .network(Network::l2("red"))
        .host("h1", "red", "198.18.46.1/24")
        .host("h2", "red", "198.18.46.2/24")
        .start();
    // After each accepted port: the new port reaches h1, and h1 still reaches h2.
    for i in 3..=6 {
        let name = format!("h{i}");
        let ifname = lab
            .add_host(&name, "red", &format!("198.18.46.{i}/24"))
            .ifname()
            .to_string();
        let out = lab.ctl(&[
            "add-port",
            "--name",
            &name,
            "--interface",
            &ifname,
            "--network",
            "red",
        ]);
        if !out.success() {
            // Refused: fine, as long as it says why and the rest still forwards.
            assert!(out.stderr.contains(": "), "refusal without a code: {out}");
            assert_ping(&lab, "h1", "h2");
            continue;
        }
        let mut failures = Vec::new();
        for (from, to) in [(name.as_str(), "h1"), ("h1", "h2")] {
            let r = lab.host(from).ping(lab.host(to).ip(), 2);
            if !r.all_replied() {
                failures.push(format!("{from} -> {to}: {}/{}", r.received, r.transmitted));
            }
        }
        if !failures.is_empty() {
            let stats = lab.daemon().fresh_stats(Duration::from_secs(10));
            let drops: Vec<String> = stats
                .ports
                .iter()
                .map(|p| {
                    format!(
                        "{}: {:?}",
                        p.name,
                        p.drops.iter().filter(|(_, v)| **v > 0).collect::<Vec<_>>()
                    )
                })
                .collect();
            panic!(
                "add-port {name} was accepted as port #{i} (ring_size 2048, umem_frames 16384, \
                 one worker), then: {failures:?}\ndrops per port: {drops:#?}"
            );
        }
    }
}

/// Networks keep their identity by name across reloads: a reload that would
/// readdress a network under attached containers (subnet or gateway) or remove it
/// is refused with `invalid_config` naming the network and field, and nothing
/// changes; reordering the `[[network]]`s moves no port to another bridge domain.
///
/// red: container c1 (attached, from red's pool) and host h1; blue: host h2. All
/// three share 198.18.46.0/24 on the wire, so only the bridge domains keep c1 and
/// h1 apart from h2.
#[test]
fn reload_never_moves_a_container_to_another_network() {
    use switchyard_tests::control::{ping_from, render_config};
    use switchyard_tests::PortConfig;
    require_root!();
    let red = Network::with_subnet("red", "198.18.46.0/25", "198.18.46.126");
    let blue = Network::l2("blue");
    let mut lab = ControlLab::builder()
        .network(red.clone())
        .network(blue.clone())
        .host("h1", "red", "198.18.46.120/24")
        .host("h2", "blue", "198.18.46.121/24")
        .daemon_config(small_rings())
        .start();
    let ns = lab.netns("c1");
    let c1 = lab.attach(&ns, "red", &format!("{}-c1", lab.id()));
    let ifnames: Vec<(String, String)> = ["h1", "h2"]
        .iter()
        .map(|h| (h.to_string(), lab.host(h).ifname().to_string()))
        .collect();
    let port = |h: &str, n: &str| PortConfig {
        name: h.into(),
        interface: ifnames
            .iter()
            .find(|(name, _)| name == h)
            .map(|(_, i)| i.clone())
            .expect("known host"),
        network: n.into(),
    };
    let ports = vec![port("h1", "red"), port("h2", "blue")];
    let check_domains = |lab: &ControlLab, when: &str| {
        let to_h1 = ping_from(&c1.netns, lab.host("h1").ip(), 3);
        assert!(to_h1.all_replied(), "{when}: c1 -> h1\n{}", to_h1.output);
        let to_h2 = ping_from(&c1.netns, lab.host("h2").ip(), 2);
        assert_eq!(
            to_h2.received, 0,
            "{when}: c1 reached blue's h2\n{}",
            to_h2.output
        );
        assert_no_ping(lab, "h1", "h2");
    };
    check_domains(&lab, "before any reload");
    let before = port_set(&lab);

    // Readdressing red under c1: refused, named, nothing changed.
    let readdressed = [
        (
            Network::with_subnet("red", "198.18.46.0/24", "198.18.46.126"),
            "network[0].subnet",
        ),
        (
            Network::with_subnet("red", "198.18.46.0/25", "198.18.46.125"),
            "network[0].gateway",
        ),
    ];
    for (changed, field) in readdressed {
        let text = render_config(
            &small_rings(),
            lab.socket(),
            &[changed, blue.clone()],
            &ports,
        );
        lab.write_config_text(&text);
        let out = lab.ctl_err(&["reload"], "invalid_config");
        assert!(
            out.stderr.contains(field) && out.stderr.contains("\"red\""),
            "the refusal must name the network and field {field}:\n{out}"
        );
        assert_eq!(port_set(&lab), before, "a refused reload changed ports");
        check_domains(&lab, &format!("after the refused {field} change"));
    }

    // Opening red to other networks under its ports: refused (the workers'
    // routers took its isolation when its ports arrived), named, nothing changed.
    let text = render_config(
        &small_rings(),
        lab.socket(),
        &[red.clone().open(), blue.clone()],
        &ports,
    );
    lab.write_config_text(&text);
    let out = lab.ctl_err(&["reload"], "invalid_config");
    assert!(
        out.stderr.contains("network[0].isolated") && out.stderr.contains("\"red\""),
        "the refusal must name the network and field:\n{out}"
    );
    assert_eq!(port_set(&lab), before, "a refused reload changed ports");
    check_domains(&lab, "after the refused isolation change");

    // Removing red while c1 is attached: refused too.
    let text = render_config(
        &small_rings(),
        lab.socket(),
        std::slice::from_ref(&blue),
        &[port("h2", "blue")],
    );
    lab.write_config_text(&text);
    let out = lab.ctl_err(&["reload"], "invalid_config");
    assert!(out.stderr.contains("\"red\" is removed"), "{out}");
    assert_eq!(port_set(&lab), before);
    check_domains(&lab, "after the refused removal");

    // Reordered networks (and ports): every port stays in its network.
    let text = render_config(
        &small_rings(),
        lab.socket(),
        &[blue.clone(), red.clone()],
        &[port("h2", "blue"), port("h1", "red")],
    );
    lab.write_config_text(&text);
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(names(&reply, "added"), Vec::<String>::new(), "{reply}");
    assert_eq!(names(&reply, "removed"), Vec::<String>::new(), "{reply}");
    assert_eq!(port_set(&lab), before);
    check_domains(&lab, "after reordering the networks");

    // A new network in front of both takes no existing domain either.
    let green = Network::l2("green");
    let text = render_config(
        &small_rings(),
        lab.socket(),
        &[green, blue.clone(), red.clone()],
        &ports,
    );
    lab.write_config_text(&text);
    lab.ctl_json(&["reload"]);
    check_domains(&lab, "after adding a network in front");
    lab.detach(&c1.name);
    lab.stop_daemon().assert_clean();
}
