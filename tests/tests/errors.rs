//! The daemon's error paths: bad config at run time, missing privileges, `check`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use switchyard_tests::cmd::{run_timeout, CmdOutput};
use switchyard_tests::host::xdp_info;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{names, require_root, switchyard_bin, DaemonConfig, Host, PortConfig};

const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// 1-based line of the first line of `toml` starting with `prefix`.
fn line_of(toml: &str, prefix: &str) -> usize {
    toml.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{toml}"))
        + 1
}

/// True when `text` contains `node.toml:<line>:<column>` for some column.
fn has_position(text: &str, line: usize) -> bool {
    let needle = format!("node.toml:{line}:");
    text.match_indices(&needle).any(|(i, _)| {
        text[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

fn write_config(dir: &TempDir, toml: &str) -> std::path::PathBuf {
    let path = dir.path().join("node.toml");
    fs::write(&path, toml).expect("write config");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod config");
    path
}

fn run(cmd: &mut Command) -> CmdOutput {
    run_timeout(cmd, EXIT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn one_port_config(interface: &str) -> DaemonConfig {
    DaemonConfig {
        networks: vec!["red".into()],
        ports: vec![PortConfig {
            name: "h1".into(),
            interface: interface.into(),
            network: "red".into(),
        }],
        ..DaemonConfig::default()
    }
}

/// `switchyard run` naming an interface that does not exist exits non-zero and says
/// which field (`port[0].interface`) at which line:column.
#[test]
fn run_with_missing_interface_names_field_and_position() {
    require_root!();
    let bin = switchyard_bin();
    let missing = names::ifname(&names::unique_id(), "gone");
    let toml = one_port_config(&missing).to_toml();
    let line = line_of(&toml, "interface =");
    let dir = TempDir::new("missing-if", 0o755);
    let config = write_config(&dir, &toml);
    let out = run(Command::new(&bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--stats-file")
        .arg(dir.path().join("stats.json")));
    assert!(!out.success(), "daemon accepted a missing interface: {out}");
    assert!(
        out.stderr.contains("port[0].interface"),
        "error does not name the field port[0].interface: {out}"
    );
    assert!(
        has_position(&out.stderr, line),
        "error does not give node.toml:{line}:<column>: {out}"
    );
}

/// `switchyard run` without privileges (uid 65534, no capabilities) exits non-zero and
/// tells the user it needs CAP_NET_ADMIN or root, instead of failing obscurely.
#[test]
fn run_without_privileges_asks_for_cap_net_admin() {
    require_root!();
    let bin = switchyard_bin();
    let id = names::unique_id();
    let host = Host::create(&id, "h1", "198.18.0.1/24");
    // World-writable so the unprivileged daemon fails on privileges, not on the stats path.
    let dir = TempDir::new("nonroot", 0o777);
    let config = write_config(&dir, &one_port_config(host.ifname()).to_toml());
    let out = run(Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(&bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--stats-file")
        .arg(dir.path().join("stats.json")));
    assert!(!out.success(), "unprivileged daemon did not fail: {out}");
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("cap_net_admin") || err.contains("root"),
        "error does not mention CAP_NET_ADMIN or root: {out}"
    );
    assert!(
        xdp_info(host.ifname()).is_none(),
        "an unprivileged daemon left an XDP program on {}",
        host.ifname()
    );
}

/// `switchyard check` accepts a valid config and rejects a port on an undefined network
/// with `node.toml:L:C: port[1].network: network "db" is not defined`.
#[test]
fn check_reports_undefined_network_with_position() {
    let bin = switchyard_bin();
    let mut cfg = one_port_config("sytcheck0");
    let dir = TempDir::new("check", 0o755);
    let valid = write_config(&dir, &cfg.to_toml());
    let ok = run(Command::new(&bin).arg("check").arg("--config").arg(&valid));
    assert!(
        ok.success(),
        "check rejected a valid config: {ok}\n{}",
        cfg.to_toml()
    );

    cfg.ports.push(PortConfig {
        name: "h2".into(),
        interface: "sytcheck1".into(),
        network: "db".into(),
    });
    let toml = cfg.to_toml();
    let line = toml
        .lines()
        .position(|l| l == "network = \"db\"")
        .expect("db line")
        + 1;
    let invalid = write_config(&dir, &toml);
    let bad = run(Command::new(&bin)
        .arg("check")
        .arg("--config")
        .arg(&invalid));
    assert!(
        !bad.success(),
        "check accepted an undefined network: {bad}\n{toml}"
    );
    assert!(
        bad.stderr
            .contains("port[1].network: network \"db\" is not defined"),
        "check's message differs from the documented one: {bad}"
    );
    assert!(
        has_position(&bad.stderr, line),
        "check's message lacks node.toml:{line}:<column>: {bad}"
    );
}
