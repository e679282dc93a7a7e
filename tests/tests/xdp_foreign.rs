//! The daemon never removes or replaces an XDP program it did not attach: a
//! foreign program on a configured interface stops the start with a clear
//! error, on a hot-plugged interface refuses the port, and in both cases is
//! still attached (same program id) afterwards; restarts leave it alone.
//!
//! The foreign program is a two-instruction XDP_PASS program built with clang
//! and attached with `ip link ... xdpgeneric obj`, as another application would.

use std::process::Command;
use std::time::Duration;

use switchyard_tests::cmd::{run_ok, run_timeout};
use switchyard_tests::control::{ControlLab, Network};
use switchyard_tests::host::xdp_info;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{names, require_root, switchyard_bin, Daemon, DaemonConfig, PortConfig};

const NET: &str = "red";

/// Builds the foreign program's object file in `dir`.
fn foreign_object(dir: &TempDir) -> String {
    let source = dir.path().join("foreign.c");
    std::fs::write(
        &source,
        "#define SEC(n) __attribute__((section(n), used))\n\
         SEC(\"xdp\") int foreign_pass(void *ctx) { return 2; }\n\
         char _license[] SEC(\"license\") = \"GPL\";\n",
    )
    .expect("write foreign.c");
    let object = dir.path().join("foreign.o");
    let (src, obj) = (source.to_string_lossy(), object.to_string_lossy());
    run_ok("clang", &["-O2", "-target", "bpf", "-c", &src, "-o", &obj]);
    obj.into_owned()
}

/// Attaches the foreign program to `ifname` in generic mode; returns its id.
fn attach_foreign(ifname: &str, object: &str) -> u64 {
    run_ok(
        "ip",
        &[
            "link",
            "set",
            "dev",
            ifname,
            "xdpgeneric",
            "obj",
            object,
            "sec",
            "xdp",
        ],
    );
    program_id(ifname).expect("foreign program attached")
}

fn program_id(ifname: &str) -> Option<u64> {
    xdp_info(ifname)?.get("prog")?.get("id")?.as_u64()
}

#[test]
fn a_foreign_program_on_a_hot_plugged_interface_is_refused_and_survives() {
    require_root!();
    let dir = TempDir::new("foreign-xdp", 0o755);
    let object = foreign_object(&dir);
    let mut lab = ControlLab::builder()
        .network(Network::l2(NET))
        .host("h1", NET, "198.18.49.1/24")
        .host("h2", NET, "198.18.49.2/24")
        .start();
    let h3_if = lab
        .add_host("h3", NET, "198.18.49.3/24")
        .ifname()
        .to_string();
    let id = attach_foreign(&h3_if, &object);
    let out = lab.ctl_err(
        &[
            "add-port",
            "--name",
            "h3",
            "--interface",
            &h3_if,
            "--network",
            NET,
        ],
        "system_error",
    );
    assert!(
        out.stderr.contains("foreign_pass") && out.stderr.contains("foreign"),
        "the refusal must name the foreign program:\n{out}"
    );
    assert_eq!(
        program_id(&h3_if),
        Some(id),
        "the foreign program was touched"
    );
    lab.restart_daemon();
    assert_eq!(
        program_id(&h3_if),
        Some(id),
        "a restart touched the foreign program"
    );
    let ping = lab.host("h1").ping(lab.host("h2").ip(), 2);
    assert!(ping.all_replied(), "{}", ping.output);
    lab.stop_daemon().assert_clean();
    assert_eq!(
        program_id(&h3_if),
        Some(id),
        "stopping touched the foreign program"
    );
}

#[test]
fn a_foreign_program_on_a_configured_interface_stops_the_start_and_survives() {
    require_root!();
    let dir = TempDir::new("foreign-xdp-run", 0o755);
    let object = foreign_object(&dir);
    let id = names::unique_id();
    let h1 = switchyard_tests::Host::create(&id, "h1", "198.18.50.1/24");
    let h2 = switchyard_tests::Host::create(&id, "h2", "198.18.50.2/24");
    let prog = attach_foreign(h2.ifname(), &object);
    let config = DaemonConfig {
        networks: vec![NET.into()],
        ports: [&h1, &h2]
            .iter()
            .map(|h| PortConfig {
                name: h.name().into(),
                interface: h.ifname().into(),
                network: NET.into(),
            })
            .collect(),
        switch_extra: vec![format!(
            "control_socket = {:?}",
            dir.path().join("ctl.sock").to_string_lossy()
        )],
        ..DaemonConfig::default()
    };
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    let out = run_timeout(
        Command::new(switchyard_bin())
            .arg("run")
            .arg("--config")
            .arg(&path),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !out.success(),
        "the daemon started over a foreign program: {out}"
    );
    assert!(
        out.stderr.contains("foreign_pass"),
        "the error must name the foreign program: {out}"
    );
    assert_eq!(
        program_id(h2.ifname()),
        Some(prog),
        "the foreign program was touched"
    );
    assert_eq!(program_id(h1.ifname()), None, "our program was left on h1");
    // Once the owner removes it, the same config runs.
    run_ok(
        "ip",
        &["link", "set", "dev", h2.ifname(), "xdpgeneric", "off"],
    );
    let mut daemon = Daemon::start(&config);
    let ping = h1.ping(h2.ip(), 2);
    assert!(ping.all_replied(), "{}\n{}", ping.output, daemon.log());
    daemon.stop().assert_clean();
}
