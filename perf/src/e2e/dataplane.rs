//! The dataplanes under test, each attached to the topology's host-side veth
//! ends and detached again on drop: the Linux bridge (the baseline to beat) and
//! the Switchyard daemon.

use super::cmd;
use super::topology::{interface_exists, object_name, write_sysctl, Topology};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which dataplane forwards between the two veths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataplaneKind {
    /// A Linux bridge in the root namespace: the baseline to beat.
    Bridge,
    /// The `switchyard run` daemon over AF_XDP with its full L2 pipeline.
    Switchyard,
    /// The daemon with `pipeline = "empty"` (port i to port i+1, no
    /// lookups): what the I/O alone costs, so full/empty shows the
    /// pipeline's share.
    SwitchyardEmpty,
}

impl DataplaneKind {
    /// Every dataplane, in the order a full run measures them.
    pub const ALL: [DataplaneKind; 3] = [
        DataplaneKind::Bridge,
        DataplaneKind::Switchyard,
        DataplaneKind::SwitchyardEmpty,
    ];

    /// The name used on the command line, in tables and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            DataplaneKind::Bridge => "bridge",
            DataplaneKind::Switchyard => "switchyard",
            DataplaneKind::SwitchyardEmpty => "switchyard-empty",
        }
    }

    /// The daemon's `pipeline` setting, for the Switchyard dataplanes.
    pub fn pipeline(self) -> Option<&'static str> {
        match self {
            DataplaneKind::Bridge => None,
            DataplaneKind::Switchyard => Some("l2"),
            DataplaneKind::SwitchyardEmpty => Some("empty"),
        }
    }
}

impl fmt::Display for DataplaneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataplaneKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        DataplaneKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                anyhow!("unknown dataplane {s:?} (expected bridge, switchyard or switchyard-empty)")
            })
    }
}

/// How the daemon is started: which cores, which pipeline, which idle mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DaemonSettings {
    /// Cores of the poll workers (`[switch] workers`).
    pub workers: Vec<usize>,
    /// `[switch] pipeline`: "l2" or "empty".
    pub pipeline: String,
    /// `[switch] idle`: "backoff" or "busy-poll".
    pub idle: String,
    /// Run the kernel's receive work for the daemon's ports (the veth NAPI
    /// poll that runs the XDP program and copies frames into the UMEM) in
    /// NAPI threads pinned to these cores, instead of in softirq on the
    /// sender's core. `None` leaves it where the kernel puts it.
    pub napi_cores: Option<Vec<usize>>,
    /// `[switch] mac_table_size`: raised above the default when the `macs`
    /// scenario's stations would not fit (see [`crate::macs`]).
    pub mac_table_size: usize,
    /// A second network with an address pool, for containers attached
    /// through the control socket (the `scale` benchmark); `None`: only the
    /// plain L2 network of the generator and sink.
    #[serde(default)]
    pub container_network: Option<ContainerNetwork>,
    /// Route instead of switch (the `routed` scenario): the generator's host
    /// end is a port of a routed network, the sink's host end the uplink;
    /// `None`: both host ends in one plain L2 network.
    #[serde(default)]
    pub routed: Option<RoutedSettings>,
}

/// The routed layout of the daemon: one network with a gateway on the
/// generator's side, the node's uplink on the sink's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedSettings {
    /// The generator's network (name, subnet, gateway).
    pub network: ContainerNetwork,
    /// `[uplink] address`: the node's address on the uplink with its prefix.
    pub uplink_address: String,
    /// `[uplink] gateway`: the uplink's next hop.
    pub uplink_gateway: String,
    /// `[uplink.neighbours]`: static neighbours on the uplink, (IPv4, MAC).
    pub uplink_neighbours: Vec<(String, String)>,
    /// NAT (the `nat` scenario): `masquerade = true` on the network,
    /// `[[publish]]` tables, `[switch] conntrack_size`; `None`: plain routing.
    #[serde(default)]
    pub nat: Option<NatSettings>,
}

/// The NAT keys of the routed layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatSettings {
    /// `masquerade = true` on the routed network.
    pub masquerade: bool,
    /// `[[publish]]` UDP ranges: (first host port, last host port, the
    /// container's address); each maps one to one onto the same ports.
    pub publish_udp: Vec<(u16, u16, String)>,
    /// `[switch] conntrack_size`; `None`: the default.
    pub conntrack_size: Option<usize>,
}

/// A network with a subnet and gateway that `attach` takes addresses from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// Network name.
    pub name: String,
    /// Subnet, e.g. `198.18.64.0/22`.
    pub subnet: String,
    /// Gateway inside the subnet (never handed to a container).
    pub gateway: String,
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
    /// work (and the sink's receive) to those cores. Without it the kernel does
    /// all of it in softirq on the generator's core, so the bridge would get
    /// one core where Switchyard gets its worker core besides: steering gives
    /// both dataplanes the same cores.
    pub fn attach(topology: &Topology, steer_to: Option<&[usize]>) -> Result<Self> {
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
        if let Some(cores) = steer_to {
            bridge.steer(&topology.gen.host_interface, cores)?;
        }
        Ok(bridge)
    }

    /// Sets the RPS mask of every receive queue of `interface` to `cores`.
    fn steer(&mut self, interface: &str, cores: &[usize]) -> Result<()> {
        let mask = rps_mask(cores)?;
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

    /// Dynamic (learned) FDB entries whose MAC starts with `prefix`
    /// (lower-case `aa:bb:..`), counted over all ports: how many of a
    /// scenario's stations the bridge knows.
    pub fn count_learned(&self, prefix: &str) -> Result<usize> {
        let fdb = cmd::run("bridge", &["fdb", "show", "br", &self.name])?;
        Ok(fdb
            .lines()
            .filter(|line| line.starts_with(prefix) && !line.contains("permanent"))
            .count())
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
    control_socket: PathBuf,
    interfaces: Vec<String>,
    /// Interfaces whose NAPI was switched to threaded mode (undone on drop).
    threaded: Vec<String>,
    /// The NAPI threads pinned for this daemon.
    napi_threads: usize,
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
    /// Writes a config for the two host ends with `settings`, starts
    /// `switchyard run` and waits (bounded) until it has written its stats file,
    /// which it does once every port is open.
    pub fn start(
        topology: &Topology,
        binary: &Path,
        settings: &DaemonSettings,
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
            control_socket: dir.join("ctl.sock"),
            dir,
            interfaces: vec![
                topology.gen.host_interface.clone(),
                topology.sink.host_interface.clone(),
            ],
            threaded: Vec::new(),
            napi_threads: 0,
        };
        let config_file = daemon.dir.join("switchyard.toml");
        std::fs::write(
            &config_file,
            config_text(topology, settings, &daemon.control_socket),
        )
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
        if let Some(cores) = &settings.napi_cores {
            // Only the generator's host end carries load into the daemon.
            let interface = topology.gen.host_interface.clone();
            daemon.napi_threads = daemon
                .pin_napi(&interface, cores)
                .with_context(|| format!("moving {interface}'s NAPI to cores {cores:?}"))?;
        }
        Ok(daemon)
    }

    /// Switches `interface` to threaded NAPI and pins its new NAPI threads
    /// to `cores`; returns how many were pinned.
    ///
    /// Why: with native XDP on a veth, the XDP program and the copy into the
    /// UMEM run in the veth's NAPI poll on the *sending* core, i.e. the
    /// generator's, so the dataplane under test would slow its own traffic
    /// source. The bridge's equivalent work is moved to the switch cores
    /// with RPS; this does the same for Switchyard's ports.
    fn pin_napi(&mut self, interface: &str, cores: &[usize]) -> Result<usize> {
        let before = napi_threads();
        let file = Path::new("/sys/class/net").join(interface).join("threaded");
        std::fs::write(&file, "1").with_context(|| format!("writing 1 to {}", file.display()))?;
        self.threaded.push(interface.to_string());
        // The kernel names them napi/<interface>-<id>, cut to 15 bytes.
        let prefix: String = format!("napi/{interface}").chars().take(15).collect();
        let mut pinned = 0;
        for (tid, comm) in napi_threads() {
            if before.iter().any(|(t, _)| *t == tid) || !comm.starts_with(&prefix) {
                continue;
            }
            sys::set_affinity(tid, cores)
                .with_context(|| format!("pinning NAPI thread {tid} ({comm})"))?;
            pinned += 1;
        }
        if pinned == 0 {
            bail!("no NAPI thread appeared for {interface} (is XDP attached in native mode?)");
        }
        Ok(pinned)
    }

    /// NAPI threads pinned for this daemon's ports.
    pub fn napi_threads(&self) -> usize {
        self.napi_threads
    }

    /// The daemon's live stats document (ports, workers, MAC table; no FDB)
    /// from its control socket, which the harness puts in the daemon's own
    /// temp directory so no other daemon on the machine is reached.
    pub fn live_stats(&self) -> Result<serde_json::Value> {
        use switchyard_switch::control::{client, protocol::Request};
        client::call(
            &self.control_socket,
            &Request::Stats,
            Duration::from_secs(5),
        )
        .with_context(|| format!("asking {} for stats", self.control_socket.display()))
    }

    /// The daemon's control socket (in the harness's temp directory).
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }

    /// The daemon's PID while it runs (for `/proc/<pid>/stat`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the daemon with SIGTERM (SIGKILL after a bounded wait) and returns
    /// its final stats document. Fails if it was not running, did not exit
    /// cleanly, or wrote no final stats.
    pub fn stop(&mut self) -> Result<serde_json::Value> {
        self.stop_within(DAEMON_STOP_TIMEOUT)
    }

    /// Deletes the AF_XDP anchor pair of a daemon this harness had to kill: a
    /// killed daemon cannot, and once the harness removes its temp dir no
    /// record (`<control_socket>.anchor`) is left for a next start to act on.
    fn remove_killed_anchor(&self) {
        let mut record = self.control_socket.as_os_str().to_os_string();
        record.push(".anchor");
        let Ok(name) = std::fs::read_to_string(&record) else {
            return;
        };
        let name = name.trim();
        // Only a name of the daemon's anchor pattern (`sy_a...`): never
        // whatever else a corrupt record might hold.
        if name.starts_with("sy_a") && name.len() <= 15 && interface_exists(name) {
            let _ = cmd::run("ip", &["link", "del", name]);
        }
    }

    /// [`Daemon::stop`] with a longer wait for its exit: a daemon with a
    /// thousand ports closes a thousand sockets on the way out.
    pub fn stop_within(&mut self, timeout: Duration) -> Result<serde_json::Value> {
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
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.remove_killed_anchor();
                bail!("switchyard did not exit within {timeout:?} of SIGTERM (killed)");
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

/// Kernel NAPI threads (thread id, name) currently running.
fn napi_threads() -> Vec<(libc::pid_t, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let tid: libc::pid_t = name.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{tid}/comm")).ok()?;
            let comm = comm.trim_end().to_string();
            comm.starts_with("napi/").then_some((tid, comm))
        })
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(error) = self.stop() {
                eprintln!("switchyard-perf: stopping switchyard: {error:#}");
            }
        }
        for interface in self.threaded.drain(..) {
            let file = Path::new("/sys/class/net")
                .join(&interface)
                .join("threaded");
            if file.exists() {
                let _ = std::fs::write(&file, "0");
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

/// The RPS mask (hex, as /sys wants it) selecting `cores`.
pub(super) fn rps_mask(cores: &[usize]) -> Result<String> {
    if cores.is_empty() {
        bail!("RPS steering needs at least one core");
    }
    let mut mask = 0u64;
    for &core in cores {
        if core >= 64 {
            bail!("RPS steering supports cores 0..63, not {core}");
        }
        mask |= 1u64 << core;
    }
    Ok(format!("{mask:x}"))
}

/// The daemon config: one network, the workers, pipeline, idle mode and
/// MAC table size of `settings`, both host ends as AF_XDP ports, periodic
/// stats off (they would cost the worker time), the control socket at
/// `control_socket`.
fn config_text(topology: &Topology, settings: &DaemonSettings, control_socket: &Path) -> String {
    let workers = settings
        .workers
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let containers = settings
        .container_network
        .as_ref()
        .map(|n| {
            format!(
                "\n[[network]]\nname = \"{}\"\nsubnet = \"{}\"\ngateway = \"{}\"\n",
                n.name, n.subnet, n.gateway
            )
        })
        .unwrap_or_default();
    let conntrack = settings
        .routed
        .as_ref()
        .and_then(|r| r.nat.as_ref())
        .and_then(|n| n.conntrack_size)
        .map(|size| format!("conntrack_size = {size}\n"))
        .unwrap_or_default();
    let switch = format!(
        "[switch]\nworkers = [{workers}]\nstats_interval_secs = 0\npipeline = \"{}\"\nidle = \"{}\"\n\
         mac_table_size = {}\ncontrol_socket = \"{}\"\n{conntrack}\n",
        settings.pipeline,
        settings.idle,
        settings.mac_table_size,
        control_socket.display(),
    );
    let layout = match &settings.routed {
        None => format!(
            "[[network]]\nname = \"bench\"\n\n\
             [[port]]\nname = \"gen\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"bench\"\n\n\
             [[port]]\nname = \"sink\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"bench\"\n",
            topology.gen.host_interface, topology.sink.host_interface
        ),
        Some(routed) => routed_layout(topology, routed),
    };
    format!("{switch}{layout}{containers}")
}

/// The networks, port and uplink of [`RoutedSettings`]: the generator's host
/// end in the routed network, the sink's host end as the uplink.
fn routed_layout(topology: &Topology, routed: &RoutedSettings) -> String {
    let n = &routed.network;
    let neighbours: String = routed
        .uplink_neighbours
        .iter()
        .map(|(ip, mac)| format!("\"{ip}\" = \"{mac}\"\n"))
        .collect();
    let masquerade = if routed.nat.as_ref().is_some_and(|n| n.masquerade) {
        "masquerade = true\n"
    } else {
        ""
    };
    let publish: String = routed
        .nat
        .iter()
        .flat_map(|n| &n.publish_udp)
        .map(|(first, last, address)| {
            format!(
                "\n[[publish]]\nprotocol = \"udp\"\nhost_port = \"{first}-{last}\"\naddress = \"{address}\"\n"
            )
        })
        .collect();
    format!(
        "[[network]]\nname = \"{}\"\nsubnet = \"{}\"\ngateway = \"{}\"\n{masquerade}\n\
         [[port]]\nname = \"gen\"\ndriver = \"af_xdp\"\ninterface = \"{}\"\nnetwork = \"{}\"\n\n\
         [uplink]\ninterface = \"{}\"\naddress = \"{}\"\ngateway = \"{}\"\n\n\
         [uplink.neighbours]\n{neighbours}{publish}",
        n.name,
        n.subnet,
        n.gateway,
        topology.gen.host_interface,
        n.name,
        topology.sink.host_interface,
        routed.uplink_address,
        routed.uplink_gateway,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataplane_names_round_trip() {
        for kind in DataplaneKind::ALL {
            assert_eq!(kind.to_string().parse::<DataplaneKind>().unwrap(), kind);
        }
        assert!("ovs".parse::<DataplaneKind>().is_err());
        assert_eq!(
            serde_json::to_string(&DataplaneKind::SwitchyardEmpty).unwrap(),
            "\"switchyard-empty\""
        );
    }

    fn settings(routed: Option<RoutedSettings>) -> DaemonSettings {
        DaemonSettings {
            workers: vec![1],
            pipeline: "l2".into(),
            idle: "backoff".into(),
            napi_cores: None,
            mac_table_size: 65_536,
            container_network: None,
            routed,
        }
    }

    #[test]
    fn daemon_configs_parse_in_both_layouts() {
        let topology = Topology::for_tests("4242");
        let l2 = config_text(&topology, &settings(None), Path::new("/tmp/x.sock"));
        let config = switchyard_config::parse_str(&l2, "l2.toml").unwrap();
        assert_eq!(config.ports.len(), 2);
        assert!(config.uplink.is_none());
        let routed = RoutedSettings {
            network: ContainerNetwork {
                name: "a".into(),
                subnet: "10.83.1.0/24".into(),
                gateway: "10.83.1.1".into(),
            },
            uplink_address: "10.83.2.10/24".into(),
            uplink_gateway: "10.83.2.1".into(),
            uplink_neighbours: vec![("10.83.2.1".into(), "02:53:59:02:00:01".into())],
            nat: None,
        };
        let text = config_text(&topology, &settings(Some(routed)), Path::new("/tmp/x.sock"));
        let config = switchyard_config::parse_str(&text, "routed.toml").unwrap();
        assert_eq!(
            config.ports.len(),
            1,
            "the generator's port; the sink's end is the uplink"
        );
        assert_eq!(config.ports[0].interface.as_deref(), Some("syp4242-g"));
        let uplink = config.uplink.unwrap();
        assert_eq!(uplink.interface, "syp4242-s");
        assert_eq!(uplink.address.to_string(), "10.83.2.10/24");
        assert_eq!(uplink.gateway, Some("10.83.2.1".parse().unwrap()));
        assert_eq!(uplink.neighbours.len(), 1);
        assert_eq!(
            config.networks[0].gateway,
            Some("10.83.1.1".parse().unwrap())
        );
        let mut nat = routed_settings_for_tests();
        nat.nat = Some(NatSettings {
            masquerade: true,
            publish_udp: vec![(60_000, 60_999, "10.83.1.2".into())],
            conntrack_size: Some(300_000),
        });
        let text = config_text(&topology, &settings(Some(nat)), Path::new("/tmp/x.sock"));
        let config = switchyard_config::parse_str(&text, "nat.toml").unwrap();
        assert!(config.networks[0].masquerade);
        assert_eq!(config.publish.len(), 1);
        assert_eq!(config.publish[0].host_port.len(), 1_000);
        assert_eq!(config.publish[0].port, 60_000);
        assert_eq!(config.switch.conntrack_size, 300_000);
    }

    fn routed_settings_for_tests() -> RoutedSettings {
        RoutedSettings {
            network: ContainerNetwork {
                name: "a".into(),
                subnet: "10.83.1.0/24".into(),
                gateway: "10.83.1.1".into(),
            },
            uplink_address: "10.83.2.10/24".into(),
            uplink_gateway: "10.83.2.1".into(),
            uplink_neighbours: vec![("10.83.2.1".into(), "02:53:59:02:00:01".into())],
            nat: None,
        }
    }

    #[test]
    fn rps_masks_select_the_cores() {
        assert_eq!(rps_mask(&[1]).unwrap(), "2");
        assert_eq!(rps_mask(&[1, 2, 3]).unwrap(), "e");
        assert_eq!(rps_mask(&[0, 63]).unwrap(), "8000000000000001");
        assert!(rps_mask(&[]).is_err());
        assert!(rps_mask(&[64]).is_err());
    }
}
