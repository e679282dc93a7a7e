//! Who may use the control socket: it is mode 0600 (root only) by default, 0660
//! and group-owned with `[switch] control_group`; and every client's kernel
//! credentials are checked as well, so even a socket file made world-writable by
//! mistake serves only root and the group. A refused client gets one
//! `permission_denied` reply and is disconnected.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use switchyard_tests::cmd::{self, CmdOutput};
use switchyard_tests::control::{ControlLab, CTL_TIMEOUT};
use switchyard_tests::{require_root, switchyard_bin, DaemonConfig};

/// The unprivileged user the clients run as (`nobody`).
const NOBODY: &str = "65534";

/// `switchyard ctl --socket S --json version` as uid/gid 65534 with the given
/// supplementary groups (`setpriv`; none with `--clear-groups`).
fn ctl_as_nobody(socket: &Path, groups: Option<&str>) -> CmdOutput {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY]);
    match groups {
        Some(g) => c.args(["--groups", g]),
        None => c.arg("--clear-groups"),
    };
    c.arg(switchyard_bin())
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .arg("version")
        .env("NO_COLOR", "1");
    cmd::run_timeout(&mut c, CTL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn mode_and_gid(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.gid())
}

/// Opens the way to the socket for others (the lab's directory is 0700) and, with
/// `world`, makes the socket itself world-writable: the file mode then lets anyone
/// connect, so only the daemon's credential check stands in the way.
fn expose(socket: &Path, world: bool) {
    let dir = socket.parent().expect("socket dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    if world {
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
            .expect("chmod socket");
    }
}

#[track_caller]
fn assert_refused(out: &CmdOutput) {
    assert!(!out.success(), "a non-root client was served:\n{out}");
    assert!(
        out.stderr.contains("permission_denied: ") && out.stderr.contains("uid 65534"),
        "no clear permission_denied reply:\n{out}"
    );
}

#[test]
fn only_root_is_served_by_default() {
    require_root!();
    let lab = ControlLab::builder().start();
    assert_eq!(mode_and_gid(lab.socket()).0, 0o600, "socket mode");
    lab.ctl_json(&["version"]);

    expose(lab.socket(), true);
    assert_refused(&ctl_as_nobody(lab.socket(), None));
    // Refused clients do not disturb anyone: root is still served.
    let v = lab.ctl_json(&["version"]);
    assert!(v["protocol"].is_number(), "{v}");
}

#[test]
fn members_of_the_control_group_are_served_others_refused() {
    require_root!();
    let users = cmd::run_ok("getent", &["group", "users"]);
    let gid: u32 = users
        .stdout
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gid in {users}"));
    let lab = ControlLab::builder()
        .daemon_config(DaemonConfig {
            switch_extra: vec!["control_group = \"users\"".into()],
            ..DaemonConfig::default()
        })
        .start();
    assert_eq!(
        mode_and_gid(lab.socket()),
        (0o660, gid),
        "socket mode and group"
    );

    expose(lab.socket(), false);
    let member = ctl_as_nobody(lab.socket(), Some(&gid.to_string()));
    assert!(
        member.success(),
        "a control_group member was refused:\n{member}"
    );
    assert!(member.stdout.contains("\"protocol\""), "{member}");

    // Not a member: the file mode keeps it out; with the mode opened up by
    // mistake, the credential check does.
    let outsider = ctl_as_nobody(lab.socket(), None);
    assert!(!outsider.success(), "{outsider}");
    expose(lab.socket(), true);
    assert_refused(&ctl_as_nobody(lab.socket(), None));
    lab.ctl_json(&["version"]);
}

#[test]
fn an_unknown_control_group_is_a_located_config_error() {
    require_root!();
    let dir = switchyard_tests::tempdir::TempDir::new("grp", 0o700);
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "[switch]\nworkers = [1]\ncontrol_group = \"no-such-group-sy\"\n",
    )
    .unwrap();
    let out = cmd::run_timeout(
        Command::new(switchyard_bin())
            .arg("check")
            .arg("--config")
            .arg(&path),
        CTL_TIMEOUT,
    )
    .unwrap();
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains(":3:17: switch.control_group: group \"no-such-group-sy\" does not exist"),
        "{out}"
    );
}
