//! Labs for the control socket: a daemon with a `control_socket` (and networks
//! with subnets), namespaces standing in for containers that the daemon attaches
//! itself, harness hosts as config ports, and clients (`switchyard ctl`, raw lines).
//!
//! Cleanup on drop, also when a test panics, in this order: the daemon (SIGTERM),
//! then every veth the daemon made for the test (the interfaces named in attach
//! replies, plus those in the state file, in case a reply got lost), then the
//! namespaces, then the harness hosts, then the temp dir with socket and state file,
//! then the machine-wide test lock.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::cmd::{self, CmdOutput};
use crate::daemon::{switchyard_bin, Daemon, DaemonConfig, DaemonExit, PortConfig};
use crate::host::{Host, PingResult};
use crate::names;
use crate::serial::{self, SerialGuard};
use crate::tempdir::TempDir;

/// Bound on one `switchyard ctl` invocation (attach creates a veth and binds sockets).
pub const CTL_TIMEOUT: Duration = Duration::from_secs(60);
/// Read/write timeout of raw control-socket clients.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest reply line a raw client accepts.
const MAX_REPLY_BYTES: u64 = 16 << 20;

/// Path of the CNI plugin binary: `$SWITCHYARD_CNI_BIN`, else next to `switchyard`.
#[track_caller]
pub fn switchyard_cni_bin() -> PathBuf {
    let path = match std::env::var_os("SWITCHYARD_CNI_BIN") {
        Some(p) => PathBuf::from(p),
        None => switchyard_bin().with_file_name("switchyard-cni"),
    };
    assert!(
        path.is_file(),
        "switchyard-cni not found at {} (set SWITCHYARD_CNI_BIN, or `cargo build --workspace`)",
        path.display()
    );
    path
}

/// A `[[network]]`, optionally with a subnet (address pool) and gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Network name.
    pub name: String,
    /// `subnet = "a.b.c.d/n"`, if any.
    pub subnet: Option<String>,
    /// `gateway = "a.b.c.d"`, if any.
    pub gateway: Option<String>,
    /// `isolated = false` when true (networks are isolated by default).
    pub open: bool,
    /// `uplink = true`: a flat network on the uplink's LAN.
    pub flat: bool,
    /// `masquerade = true`: its flows leave by the uplink from its address.
    pub masquerade: bool,
}

impl Network {
    /// A plain L2 network (no address pool).
    pub fn l2(name: &str) -> Network {
        Network {
            name: name.to_string(),
            subnet: None,
            gateway: None,
            open: false,
            flat: false,
            masquerade: false,
        }
    }

    /// A network with an address pool and gateway.
    pub fn with_subnet(name: &str, subnet: &str, gateway: &str) -> Network {
        Network {
            name: name.to_string(),
            subnet: Some(subnet.to_string()),
            gateway: Some(gateway.to_string()),
            open: false,
            flat: false,
            masquerade: false,
        }
    }

    /// The same network with `masquerade = true`.
    pub fn masquerade(mut self) -> Network {
        self.masquerade = true;
        self
    }

    /// A flat network on the uplink's LAN (`uplink = true`): addresses from
    /// `pool`, default route `gateway` (the LAN's router).
    pub fn flat(name: &str, pool: &str, gateway: &str) -> Network {
        Network {
            flat: true,
            ..Network::with_subnet(name, pool, gateway)
        }
    }

    /// The same network with `isolated = false`: routed to other open networks.
    pub fn open(mut self) -> Network {
        self.open = true;
        self
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

/// Renders a daemon config: `base`'s `[switch]` settings plus `control_socket`, then
/// `networks` (with subnets) and `ports`. `base.networks` and `base.ports` are ignored.
pub fn render_config(
    base: &DaemonConfig,
    socket: &Path,
    networks: &[Network],
    ports: &[PortConfig],
) -> String {
    let mut switch = base.clone();
    switch.networks.clear();
    switch.ports.clear();
    switch.switch_extra.insert(
        0,
        format!("control_socket = {}", toml_str(&socket.to_string_lossy())),
    );
    let mut t = switch.to_toml();
    for n in networks {
        let _ = writeln!(t, "\n[[network]]\nname = {}", toml_str(&n.name));
        if let Some(s) = &n.subnet {
            let _ = writeln!(t, "subnet = {}", toml_str(s));
        }
        if let Some(g) = &n.gateway {
            let _ = writeln!(t, "gateway = {}", toml_str(g));
        }
        if n.open {
            let _ = writeln!(t, "isolated = false");
        }
        if n.flat {
            let _ = writeln!(t, "uplink = true");
        }
        if n.masquerade {
            let _ = writeln!(t, "masquerade = true");
        }
    }
    for p in ports {
        let _ = writeln!(
            t,
            "\n[[port]]\nname = {}\ndriver = \"af_xdp\"\ninterface = {}\nnetwork = {}",
            toml_str(&p.name),
            toml_str(&p.interface),
            toml_str(&p.network)
        );
    }
    t
}

/// What `ctl attach --json` replied, parsed.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Port name.
    pub name: String,
    /// Host end of the veth (`sy<8 hex>`), the switch's port.
    pub interface: String,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// MAC of the container's interface.
    pub mac: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The gateway, if the network has one.
    pub gateway: Option<Ipv4Addr>,
    /// Network joined.
    pub network: String,
    /// The namespace name (for `ip netns exec`).
    pub netns: String,
    /// The reply as the daemon sent it.
    pub raw: Value,
}

impl Attached {
    /// The container as a harness [`Host`] (owning nothing), for ping and TCP/UDP.
    pub fn host(&self) -> Host {
        Host::adopt(
            &self.name,
            &self.netns,
            &self.interface,
            &format!("{}/{}", self.ip, self.prefix_len),
            &self.mac,
        )
    }
}

/// Parses an `a.b.c.d/n` address.
#[track_caller]
pub fn parse_cidr(text: &str) -> (Ipv4Addr, u8) {
    let (ip, len) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("{text:?} is not a.b.c.d/n"));
    (
        ip.parse().unwrap_or_else(|e| panic!("{text:?}: {e}")),
        len.parse().unwrap_or_else(|e| panic!("{text:?}: {e}")),
    )
}

/// One row of `ctl ports --json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PortRow {
    /// Port name.
    pub name: String,
    /// Interface the switch drives.
    pub interface: String,
    /// Network.
    pub network: String,
    /// `config`, `attach` or `add-port`.
    pub origin: String,
    /// Container MAC (attached ports).
    #[serde(default)]
    pub mac: Option<String>,
    /// Container address (attached ports).
    #[serde(default)]
    pub address: Option<String>,
    /// XDP mode in use.
    #[serde(default)]
    pub xdp_mode: String,
}

/// A control-socket client speaking raw lines (for hostile input).
#[derive(Debug)]
pub struct RawClient {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl RawClient {
    /// Connects with [`RAW_TIMEOUT`] read and write timeouts.
    #[track_caller]
    pub fn connect(socket: &Path) -> RawClient {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        stream.set_read_timeout(Some(RAW_TIMEOUT)).expect("timeout");
        stream
            .set_write_timeout(Some(RAW_TIMEOUT))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        RawClient { stream, reader }
    }

    /// The underlying stream (to shut it down, or write without waiting).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Writes `bytes` as they are (no newline added).
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes to the control socket: {e}", bytes.len()));
    }

    /// Reads one reply line and parses it; panics on timeout, EOF or non-JSON.
    #[track_caller]
    pub fn read_reply(&mut self) -> Value {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY_BYTES)
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("no reply from the control socket: {e}"));
        assert!(
            n > 0,
            "the daemon closed the connection instead of replying"
        );
        assert_eq!(
            line.last(),
            Some(&b'\n'),
            "reply is not one newline-terminated line: {:?}",
            String::from_utf8_lossy(&line)
        );
        serde_json::from_slice(&line).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&line)
            )
        })
    }

    /// Sends `line` plus a newline and returns the reply.
    #[track_caller]
    pub fn request(&mut self, line: &[u8]) -> Value {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        self.send_raw(&bytes);
        self.read_reply()
    }
}

/// Panics unless `reply` is `{"ok":false,"error":{"code":code,"message":<non-empty>}}`.
#[track_caller]
pub fn assert_error_reply(reply: &Value, code: &str, what: &str) {
    assert_eq!(
        reply.get("ok"),
        Some(&Value::Bool(false)),
        "{what}: expected an error reply, got {reply}"
    );
    assert!(
        reply.get("result").is_none(),
        "{what}: error reply with a result: {reply}"
    );
    assert_eq!(
        reply.pointer("/error/code").and_then(Value::as_str),
        Some(code),
        "{what}: wrong error code in {reply}"
    );
    assert!(
        reply
            .pointer("/error/message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty()),
        "{what}: error without a message: {reply}"
    );
}

/// Panics unless `reply` is `{"ok":true,"result":...}`; returns the result.
#[track_caller]
pub fn expect_ok_reply<'a>(reply: &'a Value, what: &str) -> &'a Value {
    assert_eq!(
        reply.get("ok"),
        Some(&Value::Bool(true)),
        "{what}: expected success, got {reply}"
    );
    reply
        .get("result")
        .unwrap_or_else(|| panic!("{what}: success without a result: {reply}"))
}

/// Interfaces the daemon made for this lab, deleted on drop if still there.
#[derive(Debug)]
struct LinkSweeper {
    recorded: Mutex<Vec<String>>,
    state_file: PathBuf,
}

impl LinkSweeper {
    fn record(&self, interface: &str) {
        let mut v = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        if !v.iter().any(|i| i == interface) {
            v.push(interface.to_string());
        }
    }
}

impl Drop for LinkSweeper {
    fn drop(&mut self) {
        let mut names: Vec<String> = self
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Attached ports whose reply never reached the test are in the state file.
        if let Ok(text) = std::fs::read_to_string(&self.state_file) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                for p in v["ports"].as_array().into_iter().flatten() {
                    if p["origin"] == "attach" {
                        if let Some(i) = p["interface"].as_str() {
                            if !names.iter().any(|n| n == i) {
                                names.push(i.to_string());
                            }
                        }
                    }
                }
            }
        }
        for name in names {
            if Path::new("/sys/class/net").join(&name).exists() {
                if std::thread::panicking() {
                    eprintln!("removing leftover attached veth {name}");
                }
                cmd::cleanup(&["link", "del", &name]);
            }
        }
    }
}

/// Namespaces created by the lab, deleted on drop.
#[derive(Debug, Default)]
struct NetnsSet(Mutex<Vec<String>>);

impl Drop for NetnsSet {
    fn drop(&mut self) {
        for ns in self.0.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            cmd::cleanup(&["netns", "del", &ns]);
        }
    }
}

#[derive(Debug, Clone)]
struct HostSpec {
    name: String,
    network: String,
    cidr: String,
}

/// Describes a [`ControlLab`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct ControlLabBuilder {
    networks: Vec<Network>,
    hosts: Vec<HostSpec>,
    config: DaemonConfig,
    uplink: Option<Uplink>,
    host_port: Option<String>,
    extra: String,
}

/// The lab's `[uplink]`: an "outside" harness host whose root-namespace veth end
/// is the switch's uplink interface.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The outside host's address with prefix (inside its namespace).
    pub outside: String,
    /// `address`: the node's address on the uplink, with prefix.
    pub address: String,
    /// `gateway`: the default route's next hop, if any.
    pub gateway: Option<String>,
    /// `[uplink.neighbours]` lines (`"ip" = "mac"`).
    pub neighbours: Vec<(String, String)>,
    /// `nat_ports`, if not the default.
    pub nat_ports: Option<String>,
}

/// Name of the outside harness host of a lab with an uplink.
pub const OUTSIDE: &str = "out";

impl ControlLabBuilder {
    /// Adds a network.
    pub fn network(mut self, network: Network) -> Self {
        self.networks.push(network);
        self
    }

    /// Adds a harness host (namespace + veth, at most 6 characters of name) that is a
    /// `[[port]]` of the config.
    pub fn host(mut self, name: &str, network: &str, cidr: &str) -> Self {
        self.hosts.push(HostSpec {
            name: name.into(),
            network: network.into(),
            cidr: cidr.into(),
        });
        self
    }

    /// Gives the node an `[uplink]` toward a new outside host ([`OUTSIDE`]).
    pub fn uplink(mut self, uplink: Uplink) -> Self {
        self.uplink = Some(uplink);
        self
    }

    /// Gives the node a host port (`[host]`) with the host end at `address`
    /// (with prefix), named [`ControlLab::host_port_name`].
    pub fn host_port(mut self, address: &str) -> Self {
        self.host_port = Some(address.to_string());
        self
    }

    /// Appends `text` (e.g. `[[publish]]` tables) to the config.
    pub fn extra_config(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self
    }

    /// `[switch]` settings (workers, extra lines such as `ring_size = 256`).
    pub fn daemon_config(mut self, config: DaemonConfig) -> Self {
        self.config = config;
        self
    }

    /// Takes the test lock, builds the hosts, starts the daemon and waits until it is
    /// ready. Panics on failure; what was made is removed on unwind.
    #[track_caller]
    pub fn start(self) -> ControlLab {
        self.start_with(|_| {})
    }

    /// As [`start`](Self::start), running `prepare` on the lab after its hosts
    /// exist and before the daemon starts (interface settings the daemon
    /// reads at start).
    #[track_caller]
    pub fn start_with(self, prepare: impl FnOnce(&ControlLab)) -> ControlLab {
        let serial = serial::serial();
        let id = names::unique_id();
        let dir = TempDir::new("ctl", 0o700);
        let socket = dir.path().join("ctl.sock");
        let state_file = dir.path().join("ctl.sock.state.json");
        let mut lab = ControlLab {
            daemon: None,
            retired: Vec::new(),
            links: LinkSweeper {
                recorded: Mutex::new(Vec::new()),
                state_file,
            },
            namespaces: NetnsSet::default(),
            hosts: Vec::new(),
            host_networks: Vec::new(),
            networks: self.networks,
            config: self.config,
            uplink: None,
            host_port: self.host_port,
            extra: self.extra,
            socket,
            id,
            _dir: dir,
            _serial: serial,
        };
        for h in &self.hosts {
            lab.add_host(&h.name, &h.network, &h.cidr);
        }
        if lab.host_port.is_some() {
            // The daemon deletes it on stop; recorded in case it is killed.
            lab.record_link(&lab.host_port_name());
        }
        if let Some(uplink) = self.uplink {
            let outside = Host::create(&lab.id, OUTSIDE, &uplink.outside);
            lab.uplink = Some((uplink, outside));
        }
        prepare(&lab);
        lab.start_daemon();
        lab
    }
}

/// A daemon with a control socket, its networks, harness hosts and test namespaces.
#[derive(Debug)]
pub struct ControlLab {
    // Field order is drop order (see the module docs).
    daemon: Option<Daemon>,
    retired: Vec<Daemon>,
    links: LinkSweeper,
    namespaces: NetnsSet,
    hosts: Vec<Host>,
    host_networks: Vec<String>,
    networks: Vec<Network>,
    config: DaemonConfig,
    uplink: Option<(Uplink, Host)>,
    host_port: Option<String>,
    extra: String,
    socket: PathBuf,
    id: String,
    _dir: TempDir,
    _serial: SerialGuard,
}

impl ControlLab {
    /// Starts describing a lab.
    pub fn builder() -> ControlLabBuilder {
        ControlLabBuilder::default()
    }

    /// The lab's unique id (part of every name it creates).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The control socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The state file path (`<control_socket>.state.json`).
    pub fn state_file(&self) -> &Path {
        &self.links.state_file
    }

    /// The running daemon.
    #[track_caller]
    pub fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon is not running")
    }

    /// True while the daemon process is alive.
    pub fn daemon_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(Daemon::is_running)
    }

    /// The config as the lab describes it now (networks, hosts as ports).
    pub fn config_text(&self) -> String {
        let ports: Vec<PortConfig> = self
            .hosts
            .iter()
            .zip(&self.host_networks)
            .map(|(h, n)| PortConfig {
                name: h.name().to_string(),
                interface: h.ifname().to_string(),
                network: n.clone(),
            })
            .collect();
        let mut text = render_config(&self.config, &self.socket, &self.networks, &ports);
        text.push_str(&self.extra);
        if let Some(address) = &self.host_port {
            let _ = writeln!(
                text,
                "\n[host]\ninterface = {}\naddress = {}",
                toml_str(&self.host_port_name()),
                toml_str(address)
            );
        }
        if let Some((uplink, outside)) = &self.uplink {
            let _ = writeln!(
                text,
                "\n[uplink]\ninterface = {}\naddress = {}",
                toml_str(outside.ifname()),
                toml_str(&uplink.address)
            );
            if let Some(gateway) = &uplink.gateway {
                let _ = writeln!(text, "gateway = {}", toml_str(gateway));
            }
            if let Some(ports) = &uplink.nat_ports {
                let _ = writeln!(text, "nat_ports = {}", toml_str(ports));
            }
            if !uplink.neighbours.is_empty() {
                let _ = writeln!(text, "[uplink.neighbours]");
                for (ip, mac) in &uplink.neighbours {
                    let _ = writeln!(text, "{} = {}", toml_str(ip), toml_str(mac));
                }
            }
        }
        text
    }

    /// The host end of the lab's host port (`syt<id>hp`).
    pub fn host_port_name(&self) -> String {
        names::ifname(&self.id, "hp")
    }

    /// The outside host behind the uplink.
    #[track_caller]
    pub fn outside(&self) -> &Host {
        &self
            .uplink
            .as_ref()
            .expect("the lab has no uplink (ControlLabBuilder::uplink)")
            .1
    }

    /// Starts the daemon with [`ControlLab::config_text`]; waits until it is ready.
    #[track_caller]
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(Daemon::start_with_text(&self.config_text()));
    }

    /// Starts the daemon with `text` verbatim.
    #[track_caller]
    pub fn start_daemon_with_text(&mut self, text: &str) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(Daemon::start_with_text(text));
    }

    /// SIGTERMs the daemon; it is kept so a later failure still prints its log.
    #[track_caller]
    pub fn stop_daemon(&mut self) -> DaemonExit {
        let mut d = self.daemon.take().expect("daemon is not running");
        let exit = d.stop();
        self.retired.push(d);
        exit
    }

    /// [`ControlLab::stop_daemon`] with a longer wait for the exit (node-scale
    /// tests: closing a thousand sockets takes the kernel seconds).
    #[track_caller]
    pub fn stop_daemon_within(&mut self, timeout: Duration) -> DaemonExit {
        let mut d = self.daemon.take().expect("daemon is not running");
        let exit = d.stop_within(timeout);
        self.retired.push(d);
        exit
    }

    /// SIGKILLs the daemon (a crash: nothing of its shutdown runs, so its anchor
    /// veth stays); it is kept so a later failure still prints its log.
    #[track_caller]
    pub fn kill_daemon(&mut self) {
        let mut d = self.daemon.take().expect("daemon is not running");
        d.kill();
        self.retired.push(d);
    }

    /// The anchor veth the daemon recorded in `<control_socket>.anchor`, if any.
    pub fn recorded_anchor(&self) -> Option<String> {
        recorded_anchor(&self.socket)
    }

    /// Stops the daemon (panics unless it exits cleanly) and starts a new one with
    /// the same config file contents.
    #[track_caller]
    pub fn restart_daemon(&mut self) {
        let text = self.daemon().config_text();
        self.stop_daemon().assert_clean();
        self.start_daemon_with_text(&text);
    }

    /// Adds a harness host (not in the running config until it is written and
    /// reloaded).
    #[track_caller]
    pub fn add_host(&mut self, name: &str, network: &str, cidr: &str) -> &Host {
        self.hosts.push(Host::create(&self.id, name, cidr));
        self.host_networks.push(network.to_string());
        self.hosts.last().expect("just pushed")
    }

    /// Adds a network to the lab's description (see [`ControlLab::write_config`]).
    pub fn add_network(&mut self, network: Network) {
        self.networks.push(network);
    }

    /// Writes [`ControlLab::config_text`] over the running daemon's config file.
    #[track_caller]
    pub fn write_config(&mut self) {
        let text = self.config_text();
        self.write_config_text(&text);
    }

    /// Writes `text` over the running daemon's config file.
    #[track_caller]
    pub fn write_config_text(&mut self, text: &str) {
        let path = self.daemon().config_path().to_path_buf();
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Harness host `name`.
    #[track_caller]
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .unwrap_or_else(|| panic!("no host {name:?} in lab"))
    }

    /// Creates namespace `syt<id>-<suffix>` (with `lo` up and IPv6 off, so no
    /// RS/MLD noise), removed on drop; returns its name.
    #[track_caller]
    pub fn netns(&self, suffix: &str) -> String {
        let name = self.netns_with_ipv6(suffix);
        cmd::run_ok(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        name
    }

    /// Creates namespace `syt<id>-<suffix>` with the kernel's defaults, as a
    /// container runtime would hand it over; removed on drop.
    #[track_caller]
    pub fn netns_with_ipv6(&self, suffix: &str) -> String {
        let name = names::netns_name(&self.id, suffix);
        cmd::run_ok("ip", &["netns", "add", &name]);
        self.namespaces
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        name
    }

    /// Creates many namespaces like [`ControlLab::netns`] (IPv6 off) with one
    /// `ip -batch` run instead of two processes each: node-scale tests make a
    /// thousand. Returns their names in order.
    #[track_caller]
    pub fn netns_many(&self, suffixes: &[String]) -> Vec<String> {
        let names: Vec<String> = suffixes
            .iter()
            .map(|s| names::netns_name(&self.id, s))
            .collect();
        let mut batch = String::new();
        for name in &names {
            batch.push_str(&format!("netns add {name}\n"));
        }
        for name in &names {
            batch.push_str(&format!(
                "netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
                 net.ipv6.conf.default.disable_ipv6=1\n"
            ));
        }
        let file = std::env::temp_dir().join(format!("syt{}-netns.batch", self.id));
        std::fs::write(&file, batch).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        // Recorded before running, so a half-done batch is still cleaned up.
        self.namespaces
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(names.iter().cloned());
        let mut ip = Command::new("ip");
        ip.arg("-batch").arg(&file);
        // About 20 ms per namespace here; bounded all the same.
        let timeout = Duration::from_secs(30) + Duration::from_millis(50) * names.len() as u32;
        cmd::run_timeout(&mut ip, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect_success();
        let _ = std::fs::remove_file(&file);
        names
    }

    /// Deletes namespace `name` (one this lab created) now, as a runtime does when a
    /// sandbox goes away.
    #[track_caller]
    pub fn delete_netns(&self, name: &str) {
        let mut v = self.namespaces.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = v
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("namespace {name} was not made by this lab"));
        cmd::run_ok("ip", &["netns", "del", name]);
        v.remove(i);
    }

    /// Records an interface the daemon made for this lab, so it is deleted on drop.
    pub fn record_link(&self, interface: &str) {
        self.links.record(interface);
    }

    /// Runs `switchyard ctl --socket <lab socket> --json args...`.
    #[track_caller]
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        let mut c = Command::new(switchyard_bin());
        c.arg("ctl")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(args)
            .env("NO_COLOR", "1");
        cmd::run_timeout(&mut c, CTL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `ctl args...`, panics unless it succeeds, returns its JSON output.
    #[track_caller]
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let out = self.ctl(args).expect_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{out}", out.cmdline))
    }

    /// Runs `ctl args...` and panics unless it fails with `code: ...` on stderr.
    #[track_caller]
    pub fn ctl_err(&self, args: &[&str], code: &str) -> CmdOutput {
        let out = self.ctl(args);
        assert!(
            !out.success(),
            "`{}` succeeded, expected {code}:\n{out}",
            out.cmdline
        );
        assert!(
            out.stderr.contains(&format!("{code}: ")),
            "`{}` failed without `{code}: ` on stderr:\n{out}",
            out.cmdline
        );
        out
    }

    /// `ctl attach --netns /run/netns/<netns> --network <network> --name <name>
    /// extra...`; returns the reply, or the failed command.
    #[track_caller]
    pub fn try_attach(
        &self,
        netns: &str,
        network: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<Attached, CmdOutput> {
        let path = format!("/run/netns/{netns}");
        let mut args = vec![
            "attach",
            "--netns",
            &path,
            "--network",
            network,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        let out = self.ctl(&args);
        if !out.success() {
            return Err(out);
        }
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("attach printed no JSON ({e}):\n{out}"));
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("attach reply lacks string {k:?}: {v}"))
                .to_string()
        };
        let interface = s("interface");
        self.record_link(&interface);
        let (ip, prefix_len) = parse_cidr(&s("address"));
        let gateway = match v.get("gateway") {
            None | Some(Value::Null) => None,
            Some(g) => Some(
                g.as_str()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or_else(|| panic!("bad gateway in {v}")),
            ),
        };
        Ok(Attached {
            name: s("name"),
            interface,
            ifname: s("ifname"),
            mac: s("mac"),
            ip,
            prefix_len,
            gateway,
            network: s("network"),
            netns: netns.to_string(),
            raw: v,
        })
    }

    /// Like [`ControlLab::try_attach`] without extras; panics on failure.
    #[track_caller]
    pub fn attach(&self, netns: &str, network: &str, name: &str) -> Attached {
        self.try_attach(netns, network, name, &[])
            .unwrap_or_else(|out| panic!("attach failed:\n{out}"))
    }

    /// `ctl detach name`; panics unless it succeeds.
    #[track_caller]
    pub fn detach(&self, name: &str) {
        let v = self.ctl_json(&["detach", name]);
        assert_eq!(v["detached"], name, "unexpected detach reply {v}");
    }

    /// `ctl ports`, parsed.
    #[track_caller]
    pub fn ports(&self) -> Vec<PortRow> {
        let v = self.ctl_json(&["ports"]);
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("unexpected `ctl ports` shape ({e}): {v}"))
    }

    /// The port names `ctl ports` lists, sorted.
    #[track_caller]
    pub fn port_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ports().into_iter().map(|p| p.name).collect();
        names.sort();
        names
    }

    /// One raw request line on a fresh connection; returns the reply.
    #[track_caller]
    pub fn raw_request(&self, line: &[u8]) -> Value {
        RawClient::connect(&self.socket).request(line)
    }
}

impl Drop for ControlLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let ns = self
                .namespaces
                .0
                .lock()
                .map(|v| v.join(", "))
                .unwrap_or_default();
            eprintln!(
                "control lab {} failed; socket {}; namespaces: {ns}; hosts: {}",
                self.id,
                self.socket.display(),
                self.hosts
                    .iter()
                    .map(|h| format!("{} ({}, {})", h.name(), h.ip(), h.ifname()))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if let Ok(state) = std::fs::read_to_string(&self.links.state_file) {
                eprintln!("--- state file ---\n{state}");
            }
        }
    }
}

/// `ping` from inside `netns` (no host needed), bounded.
#[track_caller]
pub fn ping_from(netns: &str, dst: Ipv4Addr, count: u32) -> PingResult {
    let dst = dst.to_string();
    let count_s = count.to_string();
    let timeout = Duration::from_secs(5 + 2 * u64::from(count));
    let output = cmd::run_with_timeout(
        "ip",
        &[
            "netns", "exec", netns, "ping", "-n", "-q", "-c", &count_s, "-i", "0.2", "-W", "1",
            &dst,
        ],
        timeout,
    );
    let (transmitted, received) = crate::host::parse_ping_summary(&output.stdout);
    PingResult {
        transmitted,
        received,
        output,
    }
}

/// The anchor veth a daemon with control socket `socket` recorded in
/// `<socket>.anchor` (its AF_XDP anchor, `sy_a<8 hex>`), if any.
pub fn recorded_anchor(socket: &Path) -> Option<String> {
    let mut path = socket.as_os_str().to_os_string();
    path.push(".anchor");
    let text = std::fs::read_to_string(path).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// True when a root-namespace interface `name` exists.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Waits (bounded by `timeout`) until `cond` holds; returns whether it did.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_socket_subnets_and_ports() {
        let base = DaemonConfig {
            switch_extra: vec!["ring_size = 256".into()],
            ..DaemonConfig::default()
        };
        let t = render_config(
            &base,
            Path::new("/tmp/x/ctl.sock"),
            &[
                Network::with_subnet("web", "198.18.40.0/24", "198.18.40.1"),
                Network::l2("red"),
            ],
            &[PortConfig {
                name: "h1".into(),
                interface: "syt0001h1".into(),
                network: "red".into(),
            }],
        );
        assert!(t.starts_with("[switch]\n"));
        assert!(t.contains("control_socket = \"/tmp/x/ctl.sock\"\nring_size = 256\n"));
        assert!(t.contains(
            "[[network]]\nname = \"web\"\nsubnet = \"198.18.40.0/24\"\ngateway = \"198.18.40.1\"\n"
        ));
        assert!(t.contains("[[network]]\nname = \"red\"\n\n[[port]]\nname = \"h1\""));
    }

    #[test]
    fn cidr_parses() {
        assert_eq!(
            parse_cidr("198.18.40.2/24"),
            (Ipv4Addr::new(198, 18, 40, 2), 24)
        );
    }
}
