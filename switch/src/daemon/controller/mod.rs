//! The control thread's state and operations: the port and network registries,
//! adding and removing ports while the workers forward, container attach/detach,
//! CNI CHECK, config reload, the state file, and stats.
//!
//! Every change is made as a whole or not at all: sockets are bound (the slow
//! part) on this thread before any worker is told; a failure closes what was
//! opened and leaves the running version as it was. Workers take a new port
//! between two bursts, so other ports never stop forwarding.
//!
//! Stats, port lists and the FDB are answered from what the workers publish
//! (`crate::published`) and from this thread's copy of the MAC table
//! (`crate::fdb_copy`): no worker is asked, so a busy or stuck worker delays
//! none of them.

mod containers;
mod publish;
mod reload;
mod routing;
mod state;

pub use state::state_path;

use super::plan::SwitchPlan;
use super::report::{self, PortView};
use super::worker_thread::{WorkerCommand, WorkerHandle};
use crate::control::protocol::{ErrorCode, PortInfo, Reply, Request, PROTOCOL_VERSION};
use crate::fabric::Fabric;
use crate::fdb_copy::FdbCopy;
use crate::placement::place;
use crate::published::PortCells;
use crate::stats::{Snapshot, WorkerReport};
use crossbeam::channel;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_config::{Ipv4Cidr, NodeConfig, XdpMode};
use switchyard_drivers::afxdp::{AttachMode, Redirect, XdpModeChoice, XdpPort, XdpPortConfig};
use switchyard_drivers::sys;
use switchyard_pipeline::{DomainId, PortId, Timestamp};
use tracing::{info, warn};

/// How long the control thread waits for a worker to answer.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a port came from (it decides how it may be removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A `[[port]]` of the config file: changed by editing the file and reloading.
    Config,
    /// A container attached with `attach` (the switch made its veth).
    Attach,
    /// An existing interface added with `add-port`.
    AddPort,
    /// The `[uplink]`'s interface: changed by editing the file and restarting.
    Uplink,
    /// The host port's switch end (`[host]`), made by the daemon.
    Host,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Attach => "attach",
            Origin::AddPort => "add-port",
            Origin::Uplink => "uplink",
            Origin::Host => "host",
        }
    }
}

/// A port of the running switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortEntry {
    /// Port name.
    pub name: String,
    /// Interface the switch drives.
    pub interface: String,
    /// Network it belongs to.
    pub network: String,
    /// Where it came from.
    pub origin: Origin,
    /// Container MAC (attached ports).
    #[serde(default)]
    pub mac: Option<String>,
    /// Container address with prefix (attached ports).
    #[serde(default)]
    pub address: Option<String>,
    /// Container namespace as given at attach.
    #[serde(default)]
    pub netns: Option<String>,
    /// Interface name inside the namespace.
    #[serde(default)]
    pub ifname: Option<String>,
}

impl PortEntry {
    /// The station an attached container's port is bound to (its MAC and
    /// address as the daemon assigned them); `None` for other ports.
    fn binding(&self) -> Option<switchyard_pipeline::guard::PortBinding> {
        if self.origin != Origin::Attach {
            return None;
        }
        let mac = self.mac.as_deref()?.parse().ok()?;
        Some(switchyard_pipeline::guard::PortBinding {
            mac,
            ip: self.address().map(|(ip, _)| ip),
        })
    }

    fn address(&self) -> Option<(Ipv4Addr, u8)> {
        let text = self.address.as_deref()?;
        let (ip, prefix) = text.split_once('/')?;
        Some((ip.parse().ok()?, prefix.parse().ok()?))
    }
}

/// A network of the running switch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NetworkEntry {
    name: String,
    subnet: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
    isolated: bool,
    /// Made by the switch (the uplink's network), not by a `[[network]]`:
    /// containers cannot join it and reloads leave it alone.
    builtin: bool,
    /// Its new flows out of the uplink are masqueraded.
    masquerade: bool,
    /// For a flat network (on the uplink's LAN): the LAN's prefix length,
    /// which its containers' addresses get (its `subnet` is only their pool),
    /// and the node's address there (never handed out).
    lan: Option<(u8, Ipv4Addr)>,
}

/// An error reply in the making.
#[derive(Debug)]
pub struct CtlError {
    code: ErrorCode,
    message: String,
}

impl CtlError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CtlError {
            code,
            message: message.into(),
        }
    }
}

type CtlResult<T> = Result<T, CtlError>;

/// The control thread's view of the switch.
pub struct Controller {
    config_path: PathBuf,
    config: NodeConfig,
    plan: Arc<SwitchPlan>,
    ports: Vec<Option<PortEntry>>,
    modes: Vec<AttachMode>,
    networks: Vec<Option<NetworkEntry>>,
    workers: Vec<WorkerHandle>,
    fabric: Arc<Fabric>,
    state_path: PathBuf,
    /// Sockets each port has on each worker (admission of new ports).
    port_sockets: Vec<Vec<usize>>,
    /// The daemon's XDP program: attached to each port's interface.
    redirect: Arc<Redirect>,
    /// This thread's copy of the MAC table, fed by the workers' learn events.
    fdb: FdbCopy,
    /// The workers' clock epoch (learn events carry times on it).
    epoch: Instant,
    /// The host port (`[host]`), whose routes follow the networks.
    host_port: Option<super::host_port::HostPort>,
    /// Every published port: the config's, in file order, then run-time ones.
    published: Vec<super::publish::PublishEntry>,
    /// The table the workers have; this thread keeps a reference, so the one
    /// a worker lets go of is never freed on the worker.
    published_table: Arc<switchyard_pipeline::nat::published::PublishedPorts>,
    /// The node's addresses published ports listen on (sent with each table).
    node_addresses: Arc<[Ipv4Addr]>,
    /// NAT is on: the NAT worker has its engine and the others hand it what
    /// they route (from the start, or since the first published port of a
    /// switch started without NAT).
    nat_installed: bool,
}

impl Controller {
    /// The controller of freshly started workers serving the config's ports.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        config: NodeConfig,
        plan: Arc<SwitchPlan>,
        workers: Vec<WorkerHandle>,
        modes: Vec<AttachMode>,
        fabric: Arc<Fabric>,
        placements: &[crate::placement::WorkerPlacement],
        redirect: Arc<Redirect>,
        epoch: Instant,
    ) -> Self {
        let port_sockets = (0..plan.ports.len())
            .map(|port| {
                placements
                    .iter()
                    .map(|p| p.sockets.iter().filter(|s| s.port == port).count())
                    .collect()
            })
            .collect();
        let mut networks: Vec<Option<NetworkEntry>> = config
            .networks
            .iter()
            .map(|n| {
                Some(NetworkEntry {
                    name: n.name.clone(),
                    subnet: n.subnet,
                    gateway: n.gateway,
                    isolated: n.isolated,
                    masquerade: n.masquerade,
                    builtin: false,
                    lan: n
                        .uplink
                        .then_some(config.uplink.as_ref())
                        .flatten()
                        .map(|up| (up.address.prefix_len, up.address.addr)),
                })
            })
            .collect();
        let flat = config.networks.iter().any(|n| n.uplink);
        if let Some(up) = config.uplink.as_ref().filter(|_| !flat) {
            networks.push(Some(NetworkEntry {
                name: super::plan::UPLINK.to_string(),
                subnet: Some(up.address.trunc()),
                gateway: Some(up.address.addr),
                isolated: false,
                masquerade: false,
                builtin: true,
                lan: None,
            }));
        }
        if let Some(host) = &config.host {
            networks.push(Some(NetworkEntry {
                name: super::plan::HOST.to_string(),
                subnet: Some(host.address.trunc()),
                gateway: Some(host.switch_address),
                isolated: false,
                masquerade: false,
                builtin: true,
                lan: None,
            }));
        }
        let uplink_port = plan.uplink.as_ref().map(|u| u.port);
        let host_port = plan.host.as_ref().map(|h| h.port);
        let ports = plan
            .ports
            .iter()
            .enumerate()
            .map(|(index, p)| {
                Some(PortEntry {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    network: p.network.clone(),
                    origin: if Some(index) == uplink_port {
                        Origin::Uplink
                    } else if Some(index) == host_port {
                        Origin::Host
                    } else {
                        Origin::Config
                    },
                    mac: None,
                    address: None,
                    netns: None,
                    ifname: None,
                })
            })
            .collect();
        let state_path = state_path(&config.switch.control_socket);
        let published = config
            .publish
            .iter()
            .enumerate()
            .map(|(i, p)| super::publish::PublishEntry::from_config(i, p))
            .collect();
        let published_table = plan
            .nat
            .as_ref()
            .map(|nat| Arc::clone(&nat.published))
            .unwrap_or_default();
        Controller {
            published,
            published_table,
            node_addresses: plan.node_addresses.clone().into(),
            nat_installed: plan.nat.is_some(),
            config_path,
            config,
            ports,
            modes,
            networks,
            workers,
            fabric,
            state_path,
            port_sockets,
            redirect,
            fdb: FdbCopy::new(plan.l2),
            epoch,
            plan,
            host_port: None,
        }
    }

    /// Hands the controller the host port, and routes the host to every
    /// routed network through it.
    pub fn set_host_port(&mut self, host_port: super::host_port::HostPort) {
        self.host_port = Some(host_port);
        self.sync_host_routes();
    }

    /// Makes the host port's routes match the routed networks (after start
    /// and every reload).
    fn sync_host_routes(&mut self) {
        let subnets: Vec<Ipv4Cidr> = self
            .networks
            .iter()
            .flatten()
            .filter(|n| !n.builtin && n.gateway.is_some())
            .filter_map(|n| n.subnet)
            .map(|s| s.trunc())
            .collect();
        if let Some(host_port) = &mut self.host_port {
            host_port.sync_routes(&subnets);
        }
    }

    /// Refuses a port whose sockets would not fit in some worker's UMEM: each
    /// socket keeps a few frames posted even while idle, and the pool must keep
    /// enough beyond that for traffic (see `SwitchPlan::frames_needed`).
    fn admit(&self, placements: &[crate::placement::WorkerPlacement]) -> CtlResult<()> {
        for (w, (worker, placement)) in self.workers.iter().zip(placements).enumerate() {
            let current: usize = self
                .port_sockets
                .iter()
                .map(|counts| counts.get(w).copied().unwrap_or(0))
                .sum();
            let wanted = current + placement.sockets.len();
            if self.plan.frames_needed(wanted) > worker.frames {
                return Err(CtlError::new(
                    ErrorCode::PoolExhausted,
                    format!(
                        "worker {w}'s UMEM ({} frames) has no room for another port: it serves \
                         {current} socket(s), each keeping {} frames posted while idle, and keeps \
                         {} for traffic; raise [switch] umem_frames",
                        worker.frames,
                        SwitchPlan::FILL_MIN,
                        self.plan.frames_needed(0)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Ports now served (config, attached and added).
    pub fn port_count(&self) -> usize {
        self.ports.iter().flatten().count()
    }

    fn domain_of(&self, network: &str) -> Option<DomainId> {
        self.networks
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.name == network))
            .map(|d| d as DomainId)
    }

    fn network(&self, name: &str) -> Option<&NetworkEntry> {
        self.networks.iter().flatten().find(|n| n.name == name)
    }

    fn port_index(&self, name: &str) -> Option<usize> {
        self.ports
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.name == name))
    }

    fn used_addresses(&self, network: &str) -> HashSet<Ipv4Addr> {
        let mut used: HashSet<Ipv4Addr> = self
            .ports
            .iter()
            .flatten()
            .filter(|p| p.network == network)
            .filter_map(|p| p.address())
            .map(|(ip, _)| ip)
            .collect();
        // A flat network's pool never hands out the node's own address.
        if let Some((_, node)) = self.network(network).and_then(|n| n.lan) {
            used.insert(node);
        }
        used
    }

    /// Answers one control request.
    pub fn handle(&mut self, request: Request) -> Reply {
        let result = match request {
            Request::Version => Ok(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": PROTOCOL_VERSION,
                "workers": self.workers.len(),
            })),
            Request::Ports => self.ports_info().map(|p| serde_json::json!(p)),
            Request::Fdb { network } => self.fdb(network.as_deref()),
            Request::Stats => {
                Ok(serde_json::to_value(self.snapshot(false, true)).unwrap_or_default())
            }
            Request::Routes => self.routes(),
            Request::Neighbours => self.neighbours(),
            Request::Conntrack { limit, network } => {
                self.conntrack(limit.unwrap_or(1000), network.as_deref())
            }
            Request::Attach(request) => self.attach(request).map(|r| serde_json::json!(r)),
            Request::Detach { name } => self
                .detach(&name)
                .map(|()| serde_json::json!({ "detached": name })),
            Request::AddPort {
                name,
                interface,
                network,
            } => self
                .add_port(&name, &interface, &network)
                .map(|()| serde_json::json!({ "added": name })),
            Request::DelPort { name } => self
                .del_port(&name)
                .map(|()| serde_json::json!({ "removed": name })),
            Request::Check {
                name,
                netns,
                ifname,
            } => self
                .check(&name, &netns, ifname.as_deref())
                .map(|()| serde_json::json!({ "checked": name })),
            Request::Reload => self.reload(),
            Request::Publish(request) => self.publish(request).map(|r| serde_json::json!(r)),
            Request::Unpublish {
                protocol,
                host_port,
            } => self
                .unpublish(&protocol, &host_port)
                .map(|r| serde_json::json!({ "unpublished": r })),
            Request::Published => Ok(serde_json::json!(self.published_info())),
        };
        match result {
            Ok(value) => Reply::success(value),
            Err(error) => Reply::failure(error.code, error.message),
        }
    }

    /// The workers' clock now.
    fn now(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_nanos() as u64)
    }

    /// Applies the learn events the workers published since the last call to
    /// this thread's FDB copy. The daemon calls it every 50 ms, so the
    /// observer inbox rarely fills.
    pub fn observe_learning(&mut self) {
        self.fdb.drain(&self.fabric);
    }

    fn port_views(&self) -> Vec<Option<PortView>> {
        self.ports
            .iter()
            .zip(
                self.modes
                    .iter()
                    .chain(std::iter::repeat(&AttachMode::Native)),
            )
            .map(|(p, mode)| {
                p.as_ref().map(|p| PortView {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    network: p.network.clone(),
                    mode: mode.name(),
                })
            })
            .collect()
    }

    fn network_names(&self) -> Vec<Option<String>> {
        self.networks
            .iter()
            .map(|n| n.as_ref().map(|n| n.name.clone()))
            .collect()
    }

    /// The stats document, from what the workers published (no worker is
    /// asked); with `fdb` the MAC table copy is listed too.
    pub fn snapshot(&mut self, is_final: bool, fdb: bool) -> Snapshot {
        let reports: Vec<WorkerReport> = self.workers.iter().map(|w| w.read_report()).collect();
        let entries = if fdb {
            self.observe_learning();
            let now = self.now();
            self.fdb.entries(now)
        } else {
            Vec::new()
        };
        report::snapshot(
            &self.port_views(),
            &self.network_names(),
            &reports,
            &entries,
            self.fabric.learn_dropped(),
            self.fabric.observer_dropped(),
            is_final,
        )
    }

    fn ports_info(&mut self) -> CtlResult<Vec<PortInfo>> {
        let snap = self.snapshot(false, false);
        Ok(self
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let stats = snap.ports.iter().find(|s| s.name == p.name);
                PortInfo {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    network: p.network.clone(),
                    origin: p.origin.name().to_string(),
                    mac: p.mac.clone(),
                    address: p.address.clone(),
                    xdp_mode: stats.map(|s| s.xdp_mode.clone()).unwrap_or_default(),
                    rx_packets: stats.map_or(0, |s| s.counters.rx_packets),
                    tx_packets: stats.map_or(0, |s| s.counters.tx_packets),
                    drops: stats.map_or(0, |s| s.counters.drops.total()),
                }
            })
            .collect())
    }

    fn fdb(&mut self, network: Option<&str>) -> CtlResult<serde_json::Value> {
        if let Some(name) = network {
            if self.network(name).is_none() {
                return Err(CtlError::new(
                    ErrorCode::NotFound,
                    format!("network {name:?} does not exist"),
                ));
            }
        }
        let snap = self.snapshot(false, true);
        let entries: Vec<_> = snap
            .fdb
            .into_iter()
            .filter(|e| network.is_none_or(|n| e.network == n))
            .collect();
        Ok(serde_json::json!(entries))
    }

    /// Binds sockets for a new port on every worker (native XDP first where
    /// allowed), then hands them over. All or nothing.
    fn add_live_port(&mut self, entry: PortEntry, mode: XdpMode) -> CtlResult<usize> {
        if self.port_index(&entry.name).is_some() {
            return Err(CtlError::new(
                ErrorCode::AlreadyExists,
                format!("port {:?} already exists", entry.name),
            ));
        }
        if self
            .ports
            .iter()
            .flatten()
            .any(|p| p.interface == entry.interface)
        {
            return Err(CtlError::new(
                ErrorCode::AlreadyExists,
                format!("interface {} is already a port", entry.interface),
            ));
        }
        let domain = self.domain_of(&entry.network).ok_or_else(|| {
            CtlError::new(
                ErrorCode::NotFound,
                format!("network {:?} does not exist", entry.network),
            )
        })?;
        if !matches!(entry.origin, Origin::Uplink | Origin::Host)
            && self.network(&entry.network).is_some_and(|n| n.builtin)
        {
            return Err(CtlError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "network {:?} is the switch's own (the uplink's or the host port's); ports join a [[network]]",
                    entry.network
                ),
            ));
        }
        let ifindex = sys::interface_index(&entry.interface).ok_or_else(|| {
            CtlError::new(
                ErrorCode::NotFound,
                format!("interface {:?} does not exist", entry.interface),
            )
        })?;
        let system = |e: &dyn std::fmt::Display| {
            CtlError::new(ErrorCode::SystemError, format!("{}: {e}", entry.interface))
        };
        let choice = match mode {
            XdpMode::Auto => XdpModeChoice::Auto,
            XdpMode::Native => XdpModeChoice::Native,
            XdpMode::Generic => XdpModeChoice::Generic,
        };
        let mode = super::attach_program(&self.redirect, &entry.interface, choice)
            .map_err(|e| system(&e))?;
        let detach = |redirect: &Redirect| {
            if let Err(error) = redirect.detach(ifindex, mode) {
                warn!(interface = %entry.interface, %error, "could not detach our XDP program");
            }
        };
        // In generic mode a veth delivers every frame on queue 0.
        let queues = if mode == AttachMode::Generic {
            1
        } else {
            sys::rx_queue_count(&entry.interface)
        };
        let placements = place(self.workers.len(), &[queues]);
        // A worker without a queue on the port hands its frames for it to the
        // queue's owner through the fabric's mailboxes (there whenever there
        // are several workers).
        if let Err(error) = self.admit(&placements) {
            detach(&self.redirect);
            return Err(error);
        }
        let sockets = match self.open_sockets(&entry.interface, mode, &placements) {
            Ok(sockets) => sockets,
            Err(error) => {
                detach(&self.redirect);
                return Err(system(&error));
            }
        };
        let index = self
            .ports
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.ports.len());
        let socket_counts: Vec<usize> = placements.iter().map(|p| p.sockets.len()).collect();
        let queues: Vec<Vec<u32>> = placements
            .iter()
            .map(|p| p.sockets.iter().map(|s| s.queue).collect())
            .collect();
        let binding = entry.binding();
        let network = self.networks[domain as usize].as_ref().and_then(|n| {
            if n.builtin || n.lan.is_some() {
                // The uplink's LAN and the host port's link are set at start.
                self.plan.networks.get(domain as usize).copied().flatten()
            } else {
                super::plan::routed_network(
                    domain,
                    &n.name,
                    n.subnet,
                    n.gateway,
                    n.isolated,
                    n.masquerade,
                )
            }
        });
        // Each worker counts the port in cells this thread keeps and reads.
        let cells: Vec<Arc<PortCells>> = self
            .workers
            .iter()
            .map(|_| Arc::new(PortCells::default()))
            .collect();
        // One deadline for the whole hand-over: a stuck worker delays the
        // control socket (and SIGTERM, which waits for this lock) by at most
        // WORKER_REPLY_TIMEOUT, never forever (a full command channel included).
        let deadline = std::time::Instant::now() + WORKER_REPLY_TIMEOUT;
        let waits: Vec<_> = self
            .workers
            .iter()
            .zip(placements)
            .zip(sockets)
            .zip(&cells)
            .map(|(((worker, placement), sockets), cells)| {
                let (done, wait) = channel::bounded(1);
                let command = WorkerCommand::AddPort {
                    port: index as PortId,
                    domain,
                    sockets,
                    route: placement.tx[0],
                    cells: Arc::clone(cells),
                    network,
                    binding,
                    done,
                };
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                worker
                    .commands
                    .send_timeout(command, left)
                    .ok()
                    .map(|_| wait)
            })
            .collect();
        let all_took = waits
            .into_iter()
            .all(|wait| wait.is_some_and(|w| w.recv_deadline(deadline).is_ok()));
        if !all_took {
            // Nothing half-applied: every worker that has the port (or will
            // take it late: commands are handled in order) removes it again.
            for worker in &self.workers {
                let (done, _ignored) = channel::bounded(1);
                let command = WorkerCommand::RemovePort {
                    port: index as PortId,
                    done,
                };
                let _ = worker.commands.send_timeout(command, WORKER_REPLY_TIMEOUT);
            }
            detach(&self.redirect);
            warn!(port = %entry.name, "a worker did not take the new port in time; rolled back");
            return Err(CtlError::new(
                ErrorCode::Internal,
                "a worker did not take the new port in time; nothing was changed",
            ));
        }
        if index == self.ports.len() {
            self.ports.push(None);
        }
        if self.modes.len() <= index {
            self.modes.resize(index + 1, AttachMode::Native);
        }
        info!(port = %entry.name, interface = %entry.interface, network = %entry.network, mode = mode.name(), "port added");
        self.ports[index] = Some(entry);
        self.modes[index] = mode;
        if self.port_sockets.len() <= index {
            self.port_sockets.resize(index + 1, Vec::new());
        }
        self.port_sockets[index] = socket_counts;
        for ((worker, cells), queues) in self.workers.iter_mut().zip(cells).zip(queues) {
            if worker.ports.len() <= index {
                worker.ports.resize(index + 1, None);
            }
            worker.ports[index] = Some(cells);
            worker
                .sockets
                .extend(queues.into_iter().map(|q| (index, q)));
        }
        Ok(index)
    }

    /// Opens every worker's sockets for one port (per the placement), on the
    /// workers' UMEMs, from this thread. Nothing is handed over yet.
    fn open_sockets(
        &self,
        interface: &str,
        mode: AttachMode,
        placements: &[crate::placement::WorkerPlacement],
    ) -> Result<Vec<Vec<XdpPort>>, switchyard_drivers::PortError> {
        let mut all = Vec::with_capacity(self.workers.len());
        for (worker, placement) in self.workers.iter().zip(placements) {
            let mut sockets = Vec::new();
            for socket in &placement.sockets {
                let config = XdpPortConfig {
                    interface: interface.to_string(),
                    queue: socket.queue,
                    mode,
                    ring_size: self.plan.ring_size,
                    fill_min: SwitchPlan::FILL_MIN,
                    fill_burst: SwitchPlan::FILL_BURST,
                    fill_max: self.plan.fill_max(),
                    redirect: Some(Arc::clone(&self.redirect)),
                    busy_retry: Duration::from_secs(3),
                };
                sockets.push(XdpPort::open_unfilled(&worker.umem, &config)?);
            }
            all.push(sockets);
        }
        Ok(all)
    }

    /// Takes a port out of every worker and detaches its XDP program.
    fn remove_live_port(&mut self, index: usize) -> CtlResult<PortEntry> {
        let entry = self
            .ports
            .get_mut(index)
            .and_then(Option::take)
            .ok_or_else(|| CtlError::new(ErrorCode::NotFound, "no such port"))?;
        if let Some(counts) = self.port_sockets.get_mut(index) {
            counts.clear();
        }
        let waits: Vec<_> = self
            .workers
            .iter()
            .map(|worker| {
                let (done, wait) = channel::bounded(1);
                worker
                    .commands
                    .send_timeout(
                        WorkerCommand::RemovePort {
                            port: index as PortId,
                            done,
                        },
                        WORKER_REPLY_TIMEOUT,
                    )
                    .ok()
                    .map(|_| wait)
            })
            .collect();
        let deadline = std::time::Instant::now() + WORKER_REPLY_TIMEOUT;
        for wait in waits {
            let _ = wait.and_then(|w| w.recv_deadline(deadline).ok());
        }
        for worker in &mut self.workers {
            worker.sockets.retain(|(port, _)| *port != index);
            if let Some(cells) = worker.ports.get_mut(index) {
                *cells = None;
            }
        }
        // What the workers learned on the port before they removed it is in
        // the observer inbox now: apply it, then forget the port's stations,
        // so no late event brings one back under a reused port index.
        self.observe_learning();
        self.fdb.remove_port(index as PortId);
        if let Some(ifindex) = sys::interface_index(&entry.interface) {
            let mode = self.modes.get(index).copied().unwrap_or(AttachMode::Native);
            if let Err(error) = self.redirect.detach(ifindex, mode) {
                warn!(interface = %entry.interface, %error, "leaving our XDP program behind");
            }
        }
        info!(port = %entry.name, interface = %entry.interface, "port removed");
        Ok(entry)
    }

    fn add_port(&mut self, name: &str, interface: &str, network: &str) -> CtlResult<()> {
        check_name(name)?;
        let entry = PortEntry {
            name: name.to_string(),
            interface: interface.to_string(),
            network: network.to_string(),
            origin: Origin::AddPort,
            mac: None,
            address: None,
            netns: None,
            ifname: None,
        };
        self.add_live_port(entry, self.config.switch.xdp_mode)?;
        self.save_state();
        Ok(())
    }

    fn del_port(&mut self, name: &str) -> CtlResult<()> {
        let index = self.port_index(name).ok_or_else(|| {
            CtlError::new(ErrorCode::NotFound, format!("port {name:?} does not exist"))
        })?;
        match self.ports[index].as_ref().map(|p| p.origin) {
            Some(Origin::AddPort) => {}
            Some(Origin::Uplink | Origin::Host) => {
                return Err(CtlError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "port {name:?} is the switch's own ([uplink] or [host]): change the \
                         config file and restart"
                    ),
                ))
            }
            Some(Origin::Config) => {
                return Err(CtlError::new(
                    ErrorCode::InvalidArgument,
                    format!("port {name:?} comes from the config file: remove it there and reload"),
                ))
            }
            _ => {
                return Err(CtlError::new(
                    ErrorCode::InvalidArgument,
                    format!("port {name:?} is an attached container: use detach"),
                ))
            }
        }
        self.remove_live_port(index)?;
        self.save_state();
        Ok(())
    }

    /// Stops the workers (final reports), detaches every XDP program. Attached
    /// containers' veths stay: a restarted daemon re-adopts them.
    pub fn shutdown(&mut self) -> (Option<Snapshot>, Vec<WorkerReport>) {
        let reports = super::worker_thread::stop_all(&self.workers);
        let views = self.port_views();
        let names = self.network_names();
        let learn_dropped = self.fabric.learn_dropped();
        // The workers have stopped learning: the copy is complete.
        self.observe_learning();
        let now = self.now();
        let fdb = self.fdb.entries(now);
        let observer_dropped = self.fabric.observer_dropped();
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.thread.join();
        }
        for (index, port) in self.ports.iter().enumerate() {
            let Some(port) = port else { continue };
            if let Some(ifindex) = sys::interface_index(&port.interface) {
                let mode = self.modes.get(index).copied().unwrap_or(AttachMode::Native);
                if let Err(error) = self.redirect.detach(ifindex, mode) {
                    warn!(interface = %port.interface, %error, "leaving our XDP program behind");
                }
            }
        }
        // Its sockets are closed and its program detached: the pair can go.
        self.host_port = None;
        match reports {
            Some(reports) => (
                Some(report::snapshot(
                    &views,
                    &names,
                    &reports,
                    &fdb,
                    learn_dropped,
                    observer_dropped,
                    true,
                )),
                reports,
            ),
            None => (None, Vec::new()),
        }
    }

    /// True if a worker thread has ended (it never should while running).
    pub fn worker_died(&self) -> bool {
        self.workers.iter().any(|w| w.thread.is_finished())
    }
}

fn check_name(name: &str) -> CtlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CtlError::new(
            ErrorCode::InvalidArgument,
            format!("port name {name:?} must be 1-32 characters of letters, digits, '_', '.', '-'"),
        ))
    }
}
