//! The validated node configuration, as the daemon consumes it.
//!
//! These types are produced by [`crate::parse_str`] / [`crate::load`] after
//! every check has passed. They derive `Serialize` (so the control socket can
//! show the running config) but not `Deserialize`: the only way in from text
//! is the validating parser.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Ipv4Cidr, Location};

/// A whole node file: the switch itself, its way out, its networks and the
/// ports statically attached to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeConfig {
    /// Where this config came from (file name as given), so run-time errors
    /// can be reported as `origin:line:column: ...` via
    /// [`crate::ConfigError::single`].
    pub origin: String,
    /// `[switch]`: workers, tables and AF_XDP ring sizing.
    pub switch: SwitchConfig,
    /// `[uplink]`: the node's way out, if it has one.
    pub uplink: Option<UplinkConfig>,
    /// `[host]`: the host port, if the node's own stack should reach its
    /// containers.
    pub host: Option<HostPortConfig>,
    /// `[[network]]`: L2 domains, in file order.
    pub networks: Vec<NetworkConfig>,
    /// `[[port]]`: statically configured ports, in file order.
    pub ports: Vec<PortConfig>,
    /// `[[publish]]`: published ports (destination NAT), in file order.
    pub publish: Vec<PublishConfig>,
    /// `[conntrack]`: connection timeouts that differ from Linux's.
    pub conntrack: ConntrackTimeouts,
    /// Where each value was written, by field path (`switch.control_group`,
    /// `network[0].vni`, `uplink`), so checks made outside this crate (the
    /// daemon's: does the group exist, does this build support the setting)
    /// can point at the value like the parser does. Empty for configs built
    /// in code.
    #[serde(skip)]
    pub value_locations: BTreeMap<String, Location>,
}

impl NodeConfig {
    /// The network called `name`, if defined.
    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// Where the value at `field` (a field path as in issues) was written.
    pub fn location_of(&self, field: &str) -> Option<Location> {
        self.value_locations.get(field).copied()
    }

    /// The port called `name`, if defined.
    pub fn port(&self, name: &str) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Runs every semantic check on a config built in code (tests, control
    /// socket changes) rather than parsed from a file.
    ///
    /// Issues point at the `location` of the network or port involved, since
    /// per-value positions are only known while parsing.
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        let mut report = crate::report::Report::default();
        crate::validate::validate(self, &mut report);
        report.into_result(&self.origin)
    }
}

/// `[switch]`: how the dataplane itself runs. Every field has a default, so
/// the section may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchConfig {
    /// CPU cores to pin one poll worker each to. Non-empty, no duplicates,
    /// each below 1024 (`CPU_SETSIZE`, the limit of `sched_setaffinity`).
    pub workers: Vec<usize>,
    /// Unix socket for `switchyard ctl` and the CNI plugin. Absolute, at most
    /// 107 bytes (the `sun_path` limit).
    pub control_socket: PathBuf,
    /// Unix group whose members may use the control socket besides root
    /// (`[A-Za-z0-9_.-]`, 1..=32, not starting with `-`). Without it only
    /// root may; with it the socket is mode 0660 and owned by the group, and
    /// each client's credentials are checked. That the group exists is checked
    /// by the daemon (`switchyard check` / `run`), not here.
    pub control_group: Option<String>,
    /// Capacity of the MAC learning table, 1..=1_048_576 entries (the table's
    /// own limit: [`SwitchConfig::MAX_MAC_TABLE_SIZE`]).
    pub mac_table_size: usize,
    /// Seconds after which an unseen MAC is forgotten; at least 1.
    pub mac_aging_secs: u64,
    /// Default XDP attach mode for AF_XDP ports.
    pub xdp_mode: XdpMode,
    /// Seconds between periodic stats log lines; 0 turns them off.
    pub stats_interval_secs: u64,
    /// Frames taken per rx burst and processed as one batch, 1..=256 and not
    /// more than `ring_size`.
    pub burst_size: usize,
    /// Entries in each AF_XDP ring (rx, tx, fill, completion). A power of
    /// two (the kernel requires it), 64..=16384.
    pub ring_size: u32,
    /// Frames in each worker's UMEM, shared by all of that worker's sockets.
    /// A power of two, at least `2 * ring_size` (the fill ring is kept full
    /// while as many frames again sit in rx/tx rings and batches; with less,
    /// rx starves as soon as tx backs up) and at most 1_048_576 (4 GiB of
    /// 4 KiB frames per worker, a guard against typos).
    pub umem_frames: u32,
    /// What the workers do with a frame: the full L2 pipeline, or the empty one
    /// (port-to-port, no lookups) that benchmarks use to show the pipeline's cost.
    pub pipeline: PipelineMode,
    /// What an idle worker does: back off (spin, yield, then sleep in poll() on its
    /// sockets) so an idle node uses little CPU, or busy-poll for lowest latency.
    pub idle: IdleMode,
    /// Connections each worker's connection-tracking table holds (NAT's
    /// table), 1024..=4_194_304. When full, flows never answered are evicted
    /// for new ones first, as Linux's early drop does.
    pub conntrack_size: usize,
}

impl SwitchConfig {
    /// Default `workers`: a single worker on core 0.
    pub const DEFAULT_WORKERS: [usize; 1] = [0];
    /// Default `control_socket`.
    pub const DEFAULT_CONTROL_SOCKET: &'static str = "/run/switchyard/ctl.sock";
    /// Default `mac_table_size`.
    pub const DEFAULT_MAC_TABLE_SIZE: usize = 65_536;
    /// Largest accepted `mac_table_size` (2^20): the most entries the MAC
    /// table honours (`MacTable::MAX_CAPACITY` in the pipeline crate, 48 MiB
    /// of slots per worker); a larger value would be silently clamped, so it is
    /// refused instead.
    pub const MAX_MAC_TABLE_SIZE: usize = 1_048_576;
    /// Default `mac_aging_secs`, the same as the Linux bridge's.
    pub const DEFAULT_MAC_AGING_SECS: u64 = 300;
    /// Default `stats_interval_secs`.
    pub const DEFAULT_STATS_INTERVAL_SECS: u64 = 10;
    /// Default `burst_size`.
    pub const DEFAULT_BURST_SIZE: usize = 64;
    /// Largest accepted `burst_size` (the pipeline's batch capacity).
    pub const MAX_BURST_SIZE: usize = 256;
    /// Default `ring_size`, libxdp's default ring size.
    pub const DEFAULT_RING_SIZE: u32 = 2048;
    /// Smallest accepted `ring_size`.
    pub const MIN_RING_SIZE: u32 = 64;
    /// Largest accepted `ring_size`.
    pub const MAX_RING_SIZE: u32 = 16_384;
    /// Default `umem_frames` (64 MiB of 4 KiB frames per worker).
    pub const DEFAULT_UMEM_FRAMES: u32 = 16_384;
    /// Largest accepted `umem_frames`.
    pub const MAX_UMEM_FRAMES: u32 = 1 << 20;
    /// Number of CPUs `sched_setaffinity`'s `cpu_set_t` can name.
    pub const MAX_CPUS: usize = 1024;
    /// Default `conntrack_size` (Linux's `nf_conntrack_max` on a 4 GiB host
    /// is 262,144 too).
    pub const DEFAULT_CONNTRACK_SIZE: usize = 262_144;
    /// Smallest accepted `conntrack_size`.
    pub const MIN_CONNTRACK_SIZE: usize = 1024;
    /// Largest accepted `conntrack_size`.
    pub const MAX_CONNTRACK_SIZE: usize = 4_194_304;
}

impl Default for SwitchConfig {
    /// The values used for every field left out of `[switch]`.
    fn default() -> Self {
        Self {
            workers: Self::DEFAULT_WORKERS.to_vec(),
            control_socket: PathBuf::from(Self::DEFAULT_CONTROL_SOCKET),
            control_group: None,
            mac_table_size: Self::DEFAULT_MAC_TABLE_SIZE,
            mac_aging_secs: Self::DEFAULT_MAC_AGING_SECS,
            xdp_mode: XdpMode::Auto,
            stats_interval_secs: Self::DEFAULT_STATS_INTERVAL_SECS,
            burst_size: Self::DEFAULT_BURST_SIZE,
            ring_size: Self::DEFAULT_RING_SIZE,
            umem_frames: Self::DEFAULT_UMEM_FRAMES,
            pipeline: PipelineMode::L2,
            idle: IdleMode::Backoff,
            conntrack_size: Self::DEFAULT_CONNTRACK_SIZE,
        }
    }
}

/// Which forwarding pipeline the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineMode {
    /// Parse, learn, look up, forward or flood: the switch.
    #[default]
    L2,
    /// No lookups: a frame from port i leaves through port i+1 (mod the number
    /// of ports). For measuring the cost of the pipeline itself.
    Empty,
}

impl PipelineMode {
    /// The spelling used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            PipelineMode::L2 => "l2",
            PipelineMode::Empty => "empty",
        }
    }
}

impl fmt::Display for PipelineMode {
    /// Formats as the config spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineMode {
    type Err = String;

    /// Parses the config spelling; the error says which values are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "l2" => Ok(PipelineMode::L2),
            "empty" => Ok(PipelineMode::Empty),
            _ => Err(format!(
                "unknown pipeline \"{s}\"; expected \"l2\" or \"empty\""
            )),
        }
    }
}

/// What a poll worker does when it finds no frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdleMode {
    /// Spin briefly, then yield, then sleep in poll() on the sockets.
    #[default]
    Backoff,
    /// Never sleep: lowest latency, one full core per worker.
    BusyPoll,
}

impl IdleMode {
    /// The spelling used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdleMode::Backoff => "backoff",
            IdleMode::BusyPoll => "busy-poll",
        }
    }
}

impl fmt::Display for IdleMode {
    /// Formats as the config spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdleMode {
    type Err = String;

    /// Parses the config spelling; the error says which values are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backoff" => Ok(IdleMode::Backoff),
            "busy-poll" => Ok(IdleMode::BusyPoll),
            _ => Err(format!(
                "unknown idle mode \"{s}\"; expected \"backoff\" or \"busy-poll\""
            )),
        }
    }
}

/// How the XDP program is attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Try native (driver) mode, fall back to generic if the driver lacks
    /// XDP support. The default: fast where possible, works everywhere.
    #[default]
    Auto,
    /// Native (driver) mode only; fail rather than silently run slow.
    Native,
    /// Generic (skb) mode: works on any interface, at kernel-stack speed.
    Generic,
}

impl XdpMode {
    /// The spelling used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

impl fmt::Display for XdpMode {
    /// Formats as the config spelling (`auto`, `native`, `generic`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for XdpMode {
    type Err = String;

    /// Parses the config spelling; the error says which values are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            _ => Err(format!(
                "unknown XDP mode \"{s}\"; expected \"auto\", \"native\" or \"generic\""
            )),
        }
    }
}

/// `[uplink]`: the node's way out. An AF_XDP port on the node's outward
/// interface, owned by the switch (as a DPDK or VPP NIC is: the host's own
/// stack no longer receives on it), with the node's address: routed traffic
/// from every network leaves here, toward `gateway` when no network covers
/// its destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UplinkConfig {
    /// Linux interface name, e.g. `eth1`.
    pub interface: String,
    /// The node's address on the uplink with its prefix, e.g.
    /// `192.0.2.10/24` (host bits expected; not the network or broadcast
    /// address).
    pub address: Ipv4Cidr,
    /// Next hop for traffic no network covers (the default route); inside
    /// `address`'s prefix. Without it only the uplink's own prefix is reached.
    pub gateway: Option<Ipv4Addr>,
    /// `[uplink.neighbours]`: static ARP entries, `"192.0.2.1" =
    /// "02:00:5e:10:00:01"`, each inside `address`'s prefix and not the
    /// node's own address; never aged, never asked for.
    pub neighbours: Vec<StaticNeighbour>,
    /// Source ports masquerade translates to (`nat_ports = "1024-65535"`,
    /// the default, as Linux's MASQUERADE uses). Split evenly among the
    /// workers (each translates its flows from its own share); a flow keeps
    /// its own port when it is free and in its worker's share (with one
    /// worker: whenever it is free).
    pub nat_ports: crate::PortRange,
}

impl UplinkConfig {
    /// Default `nat_ports`.
    pub const DEFAULT_NAT_PORTS: crate::PortRange = crate::PortRange {
        first: 1024,
        last: 65535,
    };
}

/// The L4 protocols ports are published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl FromStr for L4Protocol {
    type Err = String;

    /// `tcp` or `udp`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(L4Protocol::Tcp),
            "udp" => Ok(L4Protocol::Udp),
            _ => Err(format!(
                "unknown protocol \"{s}\"; expected \"tcp\" or \"udp\""
            )),
        }
    }
}

impl fmt::Display for L4Protocol {
    /// `tcp` or `udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            L4Protocol::Tcp => "tcp",
            L4Protocol::Udp => "udp",
        })
    }
}

/// `[[publish]]`: a published port, as `docker run -p` makes one: traffic to
/// `host_address:host_port` is forwarded to `address:port` (destination NAT),
/// replies are translated back. Ranges map one to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishConfig {
    /// `tcp` or `udp`.
    pub protocol: L4Protocol,
    /// The node's port or range (`8080`, `"8080-8090"`).
    pub host_port: crate::PortRange,
    /// Only traffic to this node address (the uplink's or the host port's
    /// switch address); by default both. A port is published once per
    /// protocol whatever this address.
    pub host_address: Option<Ipv4Addr>,
    /// The container's address (inside a routed network's subnet).
    pub address: Ipv4Addr,
    /// The container's first port (by default `host_port`'s first).
    pub port: u16,
    /// Where the table starts, for run-time error reports.
    pub location: Location,
}

/// `[host]`: the host port, the node's own way to its containers (what
/// `docker0` is to a Docker host). The daemon makes a veth pair in its
/// namespace: `interface` gets `address` and a route to every routed
/// network's subnet through `switch_address`; the other end is the switch's
/// port. Both go when the daemon stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPortConfig {
    /// The host end's name (it must not exist: the daemon makes it).
    pub interface: String,
    /// The host end's address with prefix, e.g. `169.254.100.1/30`.
    pub address: Ipv4Cidr,
    /// The switch's address on the link (the host's next hop to the
    /// containers); by default the first other host address of the prefix.
    pub switch_address: Ipv4Addr,
}

impl HostPortConfig {
    /// Default `interface`, after Docker's `docker0`.
    pub const DEFAULT_INTERFACE: &'static str = "switchyard0";

    /// The first host address of `address`'s prefix that is not `address`
    /// itself (the default `switch_address`).
    pub fn default_switch_address(address: Ipv4Cidr) -> Ipv4Addr {
        let first = u32::from(address.network()) + 1;
        let pick = if first == u32::from(address.addr) {
            first + 1
        } else {
            first
        };
        Ipv4Addr::from(pick)
    }
}

/// `[conntrack]`: how long a connection is kept after its last packet, per
/// state, in seconds; every key left out keeps Linux's default
/// (`nf_conntrack_tcp_timeout_established` = 432,000 s, `udp_timeout` = 30 s,
/// `udp_timeout_stream` = 120 s, ...), which the NAT engine holds. Each value
/// is 1..=31,536,000 (a year).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConntrackTimeouts {
    /// `tcp_syn_sent` in seconds, if set.
    pub tcp_syn_sent: Option<u32>,
    /// `tcp_syn_recv` in seconds, if set.
    pub tcp_syn_recv: Option<u32>,
    /// `tcp_established` in seconds, if set.
    pub tcp_established: Option<u32>,
    /// `tcp_fin_wait` in seconds, if set.
    pub tcp_fin_wait: Option<u32>,
    /// `tcp_close_wait` in seconds, if set.
    pub tcp_close_wait: Option<u32>,
    /// `tcp_last_ack` in seconds, if set.
    pub tcp_last_ack: Option<u32>,
    /// `tcp_time_wait` in seconds, if set.
    pub tcp_time_wait: Option<u32>,
    /// `tcp_close` in seconds, if set.
    pub tcp_close: Option<u32>,
    /// `tcp_unacknowledged` in seconds, if set.
    pub tcp_unacknowledged: Option<u32>,
    /// `udp_unreplied` in seconds, if set.
    pub udp_unreplied: Option<u32>,
    /// `udp_assured` in seconds, if set.
    pub udp_assured: Option<u32>,
    /// `icmp` in seconds, if set.
    pub icmp: Option<u32>,
}

impl ConntrackTimeouts {
    /// The keys, in the order of the fields.
    pub const KEYS: [&'static str; 12] = [
        "tcp_syn_sent",
        "tcp_syn_recv",
        "tcp_established",
        "tcp_fin_wait",
        "tcp_close_wait",
        "tcp_last_ack",
        "tcp_time_wait",
        "tcp_close",
        "tcp_unacknowledged",
        "udp_unreplied",
        "udp_assured",
        "icmp",
    ];

    /// Longest accepted timeout.
    pub const MAX_SECS: u32 = 31_536_000;

    /// Every set value with its key.
    pub fn set(&self) -> Vec<(&'static str, u32)> {
        let values = [
            self.tcp_syn_sent,
            self.tcp_syn_recv,
            self.tcp_established,
            self.tcp_fin_wait,
            self.tcp_close_wait,
            self.tcp_last_ack,
            self.tcp_time_wait,
            self.tcp_close,
            self.tcp_unacknowledged,
            self.udp_unreplied,
            self.udp_assured,
            self.icmp,
        ];
        Self::KEYS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect()
    }
}

/// One static neighbour of the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StaticNeighbour {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: crate::MacAddress,
}

/// `[[network]]`: one L2 domain, optionally with an L3 gateway, like a Docker
/// bridge network. Without `subnet` it is plain L2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkConfig {
    /// Unique name ports and `ctl attach` refer to; `[A-Za-z0-9_.-]{1,32}`.
    pub name: String,
    /// The network's prefix; host bits must be zero, prefix at most /30.
    pub subnet: Option<Ipv4Cidr>,
    /// The switch's own address in `subnet` (containers' default route).
    /// Requires `subnet`; not its network or broadcast address.
    pub gateway: Option<Ipv4Addr>,
    /// SNAT traffic leaving through the uplink to the uplink address.
    /// Requires `subnet`, `gateway` and an `[uplink]`.
    pub masquerade: bool,
    /// Drop traffic to other networks (the default, as Docker's networks are);
    /// `isolated = false` on both networks opens the route between them.
    pub isolated: bool,
    /// VXLAN network identifier to stretch the network across nodes,
    /// 1..=16_777_215, unique per node.
    pub vni: Option<u32>,
    /// A flat network on the uplink's LAN (Docker's macvlan driver): its
    /// containers appear there with their own MACs and addresses, bridged
    /// with the uplink instead of routed. `subnet` is then the pool their
    /// addresses come from, inside the uplink's prefix (their prefix length
    /// is the uplink's), and `gateway` their default route on the LAN (the
    /// LAN's router, or the node's uplink address to route through the
    /// switch). At most one; needs an `[uplink]`.
    pub uplink: bool,
    /// Where the `[[network]]` table starts, for run-time error reports.
    pub location: Location,
}

impl NetworkConfig {
    /// Names of the networks and ports the switch makes itself (the uplink,
    /// the host port), which no `[[network]]` or port can take.
    pub const RESERVED_NAMES: [&'static str; 2] = ["uplink", "host"];
}

/// `[[port]]`: a port attached at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortConfig {
    /// Unique port name (shown by `ctl ports`); `[A-Za-z0-9_.-]{1,32}`.
    pub name: String,
    /// How frames reach the port.
    pub driver: PortDriver,
    /// Linux interface for `af_xdp` ports (required there, refused for
    /// `vhost-user`). Valid Linux name: 1..=15 bytes, no `/`, `:` or
    /// whitespace, not `.` or `..`. Unique across ports and the uplink.
    pub interface: Option<String>,
    /// Unix socket path for `vhost-user` ports (required there, refused for
    /// `af_xdp`). Absolute, at most 107 bytes, unique.
    pub socket: Option<PathBuf>,
    /// Name of the `[[network]]` this port belongs to.
    pub network: String,
    /// Per-port override of `switch.xdp_mode` (`af_xdp` only).
    pub xdp_mode: Option<XdpMode>,
    /// Where the `[[port]]` table starts, for run-time error reports.
    pub location: Location,
    /// Where the `interface` value is, so "interface eth9 does not exist"
    /// can point at it.
    pub interface_location: Option<Location>,
}

impl PortConfig {
    /// The XDP mode this port should use: its own override or the switch's.
    pub fn effective_xdp_mode(&self, switch: &SwitchConfig) -> XdpMode {
        self.xdp_mode.unwrap_or(switch.xdp_mode)
    }
}

/// The kind of port, which decides how frames are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortDriver {
    /// A Linux interface driven through an AF_XDP socket (`"af_xdp"`).
    #[serde(rename = "af_xdp")]
    AfXdp,
    /// A VM's virtio-net over a vhost-user socket (`"vhost-user"`).
    #[serde(rename = "vhost-user")]
    VhostUser,
}

impl PortDriver {
    /// The spelling used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            PortDriver::AfXdp => "af_xdp",
            PortDriver::VhostUser => "vhost-user",
        }
    }
}

impl fmt::Display for PortDriver {
    /// Formats as the config spelling (`af_xdp`, `vhost-user`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortDriver {
    type Err = String;

    /// Parses the config spelling; the error says which values are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "af_xdp" => Ok(PortDriver::AfXdp),
            "vhost-user" => Ok(PortDriver::VhostUser),
            _ => Err(format!(
                "unknown port driver \"{s}\"; expected \"af_xdp\" or \"vhost-user\""
            )),
        }
    }
}
