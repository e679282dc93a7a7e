//! The dataplanes under test, each attached to the topology's host-side veth
//! ends and detached again on drop: the Linux bridge (the baseline to beat) and
//! the Switchyard daemon.

use super::cmd;
use super::topology::{interface_exists, object_name, write_sysctl, Topology};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which dataplane forwards between the two veths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneKind {
    /// A Linux bridge in the root namespace.
    Bridge,
    /// The `switchyard run` daemon over AF_XDP.
    Switchyard,
}

impl fmt::Display for DataplaneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataplaneKind::Bridge => "bridge",
            DataplaneKind::Switchyard => "switchyard",
        })
    }
}

impl FromStr for DataplaneKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bridge" => Ok(DataplaneKind::Bridge),
            "switchyard" => Ok(DataplaneKind::Switchyard),
            other => bail!("unknown dataplane {other:?} (expected bridge or switchyard)"),
        }
    }
}

/// A Linux bridge with both host ends enslaved; deleted on drop (which frees
/// the ports for the next dataplane).
#[derive(Debug)]
pub struct Bridge {
    name: String,
    created: bool,
    /// RPS mask files set on attach, cleared on drop.
    rps_files: Vec<PathBuf>,
}

impl Bridge {
    /// Creates the bridge (STP off, forward delay 0; IPv6, multicast and
    /// multicast snooping off so it sends nothing itself) and enslaves both
    /// host ends.
    ///
    /// With `steer_to` set, RPS on the generator's host end moves the bridge's
    /// work (and the sink's receive) to that core. Without it the kernel does
    /// all of it in softirq on the generator's core, so the bridge would get
    /// one core where Switchyard gets its worker core besides: steering gives
    /// both dataplanes the same two cores.
    pub fn attach(topology: &Topology, steer_to: Option<usize>) -> Result<Self> {
        let name = object_name(&topology.id, "br")?;
        let mut bridge = Bridge {
            name,
            created: false,
            rps_files: Vec::new(),
        };
        cmd::run(
            "ip",
            &[
                "link",
                "add",
                &bridge.name,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                // Snooping makes the bridge send IGMP reports of its own onto the
                // ports; it plays no part in forwarding unicast.
                "mcast_snooping",
                "0",
            ],
        )?;
        bridge.created = true;
        write_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", bridge.name), "1")?;
        for port in [&topology.gen.host_interface, &topology.sink.host_interface] {
            cmd::run("ip", &["link", "set", port, "master", &bridge.name])?;
        }
        cmd::run(
            "ip",
            &["link", "set", &bridge.name, "multicast", "off", "up"],
        )?;
        if let Some(core) = steer_to {
            bridge.steer(&topology.gen.host_interface, core)?;
        }
        Ok(bridge)
    }

    /// Sets the RPS mask of every receive queue of `interface` to `core` alone.
    fn steer(&mut self, interface: &str, core: usize) -> Result<()> {
        if core >= 64 {
            bail!("RPS steering supports cores 0..63, not {core}");
        }
        let mask = format!("{:x}", 1u64 << core);
        let queues = Path::new("/sys/class/net").join(interface).join("queues");
        let entries =
            std::fs::read_dir(&queues).with_context(|| format!("listing {}", queues.display()))?;
        for entry in entries {
            let entry = entry?;
            if !entry.file_name().to_string_lossy().starts_with("rx-") {
                continue;
            }
            let file = entry.path().join("rps_cpus");
            std::fs::write(&file, &mask)
                .with_context(|| format!("writing {mask} to {}", file.display()))?;
            self.rps_files.push(file);
        }
        Ok(())
    }

    /// True when the bridge has learned `mac` on `port` (dynamic entry).
    pub fn has_learned(&self, mac: &[u8; 6], port: &str) -> Result<bool> {
        let fdb = cmd::run("bridge", &["fdb", "show", "br", &self.name])?;
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(fdb.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.first() == Some(&mac.as_str())
                && words.windows(2).any(|w| w[0] == "dev" && w[1] == port)
                && !words.contains(&"permanent")
        }))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for file in self.rps_files.drain(..) {
            let _ = std::fs::write(&file, "0");
        }
        if self.created && interface_exists(&self.name) {
            cmd::cleanup("ip", &["link", "del", &self.name]);
        }
    }
}

/// How long the daemon may take to open its sockets and write the stats file.
const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the daemon may take to exit after SIGTERM before it is killed.
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The Switchyard daemon serving both host ends; stopped on drop.
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    stats_file: PathBuf,
    log_file: PathBuf,
    interfaces: Vec<String>,
}

/// Where the daemon binary is: `$SWITCHYARD_BIN`, else the workspace's
/// `target/release/switchyard` (the workspace this crate was built from).
pub fn daemon_binary() -> PathBuf {
    match std::env::var_os("SWITCHYARD_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/switchyard"),
    }
}

impl Daemon {
    /// Writes a config for the two host ends with one worker on `core`, starts
    /// `switchyard run` and waits (bounded) until it has written its stats file,
    /// which it does once every port is open.
    pub fn start(
        topology: &Topology,
        binary: &Path,
        core: usize,
        stop: &AtomicBool,
    ) -> Result<Self> {
        if !binary.is_file() {
            bail!(
                "no switchyard binary at {} (build it with `cargo build --release -p switchyard-switch` \
                 or set SWITCHYARD_BIN)",
                binary.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("syp{}-switchyard", topology.id));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut daemon = Daemon {
            child: None,
            stats_file: dir.join("stats.json"),
            log_file: dir.join("switchyard.log"),
            dir,
            interfaces: vec![
                topology.gen.host_interface.clone(),
                topology.sink.host_interface.clone(),
            ],
        };
        let config_file = daemon.dir.join("switchyard.toml");
        std::fs::write(&config_file, config_text(topology, core))
            .with_context(|| format!("writing {}", config_file.display()))?;
        let log = std::fs::File::create(&daemon.log_file)
            .with_context(|| format!("creating {}", daemon.log_file.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_file)
            .arg("--stats-file")
            .arg(&daemon.stats_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches only us,
            // and we stop the daemon in order.
            .process_group(0);
        sys::kill_child_with_parent(&mut command, libc::SIGTERM);
        daemon.child = Some(
            command
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?,
        );

        let deadline = Instant::now() + DAEMON_READY_TIMEOUT;
        while !daemon.stats_file.exists() {
            if let Some(status) = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                daemon.child = None;
                bail!(
                    "switchyard exited during start-up ({status}):\n{}",
                    daemon.log_tail()
                );
            }
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted while switchyard was starting");
            }
            if Instant::now() >= deadline {
                bail!(
                    "switchyard did not write {} within {DAEMON_READY_TIMEOUT:?}:\n{}",
                    daemon.stats_file.display(),
                    daemon.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// Stops the daemon with SIGTERM (SIGKILL after a bounded wait) and returns
    /// its final stats document. Fails if it was not running, did not exit
    /// cleanly, or wrote no final stats.
    pub fn stop(&mut self) -> Result<serde_json::Value> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("switchyard is not running"))?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "switchyard exited while measuring ({status}):\n{}",
                self.log_tail()
            );
        }
        sys::signal_child(&child, libc::SIGTERM).context("sending SIGTERM to switchyard")?;
        let deadline = Instant::now() + DAEMON_STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("switchyard did not exit within {DAEMON_STOP_TIMEOUT:?} of SIGTERM (killed)");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = std::fs::read_to_string(&self.stats_file)
            .with_context(|| format!("reading {}", self.stats_file.display()))?;
        let stats: serde_json::Value =
            serde_json::from_str(&text).context("parsing the stats file")?;
        if !status.success() {
            bail!("switchyard exited with {status}:\n{}", self.log_tail());
        }
        if stats.get("final") != Some(&serde_json::Value::Bool(true)) {
            bail!(
                "switchyard exited without writing final stats:\n{}",
                self.log_tail()
            );
        }
        Ok(stats)
    }

    /// The last lines the daemon logged, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() {
            format!("(nothing in {})", self.log_file.display())
        } else {
            tail
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(error) = self.stop() {
                eprintln!("switchyard-perf: stopping switchyard: {error:#}");
            }
        }
        // A daemon that died without cleaning up leaves its XDP program attached;
        // the next dataplane must find the veths bare.
        for interface in &self.interfaces {
            let details =
                cmd::run("ip", &["-d", "link", "show", "dev", interface]).unwrap_or_default();
            if details.contains("prog/xdp") || details.contains(" xdp") {
                eprintln!(
                    "switchyard-perf: detaching an XDP program switchyard left on {interface}"
                );
                cmd::cleanup(
                    "ip",
                    &["link", "set", "dev", interface, "xdpgeneric", "off"],
                );
                cmd::cleanup("ip", &["link", "set", "dev", interface, "xdpdrv", "off"]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon config: one network, one worker on `core`, both host ends as
/// AF_XDP ports, periodic stats off (they would cost the worker time).
fn config_text(topology: &Topology, core: usize) -> String {
    format!(
        "[switch]\nworkers = [{core}]\nstats_interval_secs = 0\n\n\
         [[network]]\nname = \"bench\"\n\n\
         [[port]]\nname = \"gen\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"bench\"\n\n\
         [[port]]\nname = \"sink\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"bench\"\n",
        topology.gen.host_interface, topology.sink.host_interface
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataplane_names_round_trip() {
        for kind in [DataplaneKind::Bridge, DataplaneKind::Switchyard] {
            assert_eq!(kind.to_string().parse::<DataplaneKind>().unwrap(), kind);
        }
        assert!("ovs".parse::<DataplaneKind>().is_err());
    }
}
