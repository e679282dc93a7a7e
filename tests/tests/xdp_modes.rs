//! XDP attach mode selection: a configured mode is used and reported; `auto` takes
//! native mode where the interface allows it and falls back to generic mode where
//! the driver refuses (a veth whose peer MTU is too large for native XDP), saying so
//! in the log, and the port forwards either way.
//!
//! Switchyard only: a Linux bridge has no XDP.

use switchyard_tests::{names, require_root, serial, Daemon, Host};

fn config(xdp_mode: &str, hosts: &[&Host]) -> String {
    let mut text = format!(
        "[switch]\nworkers = [1]\nstats_interval_secs = 1\nxdp_mode = \"{xdp_mode}\"\n\n[[network]]\nname = \"red\"\n"
    );
    for h in hosts {
        text.push_str(&format!(
            "\n[[port]]\nname = \"{}\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"red\"\n",
            h.name(),
            h.ifname()
        ));
    }
    text
}

fn mode_of(daemon: &Daemon, port: &str) -> String {
    let stats = daemon.stats();
    let port = stats
        .ports
        .iter()
        .find(|p| p.name == port)
        .expect("port in stats");
    port.xdp_mode.clone().unwrap_or_default()
}

#[test]
fn configured_generic_mode_is_used_and_reported() {
    require_root!();
    let _serial = serial::serial();
    let id = names::unique_id();
    let h1 = Host::create(&id, "h1", "198.18.4.1/24");
    let h2 = Host::create(&id, "h2", "198.18.4.2/24");
    let mut daemon = Daemon::start_with_text(&config("generic", &[&h1, &h2]));
    assert_eq!(mode_of(&daemon, "h1"), "generic", "log:\n{}", daemon.log());
    assert_eq!(mode_of(&daemon, "h2"), "generic");
    let ping = h1.ping(h2.ip(), 3);
    assert!(
        ping.all_replied(),
        "ping in generic mode failed:\n{}\nlog:\n{}",
        ping.output,
        daemon.log()
    );
    daemon.stop().assert_clean();
}

#[test]
fn auto_mode_falls_back_to_generic_where_native_is_refused() {
    require_root!();
    let _serial = serial::serial();
    let id = names::unique_id();
    let h1 = Host::create(&id, "h1", "198.18.5.1/24");
    let h2 = Host::create(&id, "h2", "198.18.5.2/24");
    // veth refuses native XDP when the peer's MTU is above ~3500 bytes (ERANGE).
    h1.ip_ok(&["link", "set", "eth0", "mtu", "9000"]);
    let mut daemon = Daemon::start_with_text(&config("auto", &[&h1, &h2]));
    assert_eq!(mode_of(&daemon, "h1"), "generic", "log:\n{}", daemon.log());
    assert_eq!(mode_of(&daemon, "h2"), "native", "log:\n{}", daemon.log());
    assert!(
        daemon.log().contains("falling back to generic mode"),
        "the log must say native XDP failed:\n{}",
        daemon.log()
    );
    let ping = h1.ping(h2.ip(), 3);
    assert!(
        ping.all_replied(),
        "ping across modes failed:\n{}\nlog:\n{}",
        ping.output,
        daemon.log()
    );
    daemon.stop().assert_clean();
}

#[test]
fn native_mode_refused_is_a_clear_error_naming_the_mode() {
    require_root!();
    let _serial = serial::serial();
    let id = names::unique_id();
    let h1 = Host::create(&id, "h1", "198.18.6.1/24");
    h1.ip_ok(&["link", "set", "eth0", "mtu", "9000"]);
    let dir = std::env::temp_dir().join(format!("switchyard-xdp-modes-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(&path, config("native", &[&h1])).unwrap();
    let output = std::process::Command::new(switchyard_tests::switchyard_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run switchyard");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "native attach on a 9000-byte veth must fail:\n{stderr}"
    );
    assert!(
        stderr.contains("native mode") && stderr.contains("MTU"),
        "error must name the mode and the cause:\n{stderr}"
    );
    assert!(
        switchyard_tests::host::xdp_info(h1.ifname()).is_none(),
        "a failed attach left an XDP program behind"
    );
}
