//! Turning a validated config into what the workers run: ports with their
//! queues, XDP modes and domains, and the per-worker settings.

use super::host_port::HostPort;
use crate::placement::{place, WorkerPlacement};
use crate::worker::PipelineKind;
use std::sync::Arc;
use switchyard_config::ConntrackTimeouts;
use switchyard_config::{IdleMode, NodeConfig, PipelineMode, XdpMode};
use switchyard_drivers::afxdp::{AttachMode, XdpModeChoice};
use switchyard_drivers::sys;
use switchyard_pipeline::conntrack::{ConntrackConfig, Timeouts};
use switchyard_pipeline::gateway::Gateway;
use switchyard_pipeline::nat::engine::{Masquerade, Nat};
use switchyard_pipeline::nat::owner::FlowOwners;
use switchyard_pipeline::nat::published::PublishedPorts;
use switchyard_pipeline::router::{RoutedNetwork, DEFAULT_MTU};
use switchyard_pipeline::{DomainId, L2Config, MacAddr};

/// One configured port as the switch runs it.
#[derive(Clone, Debug)]
pub struct PortPlan {
    /// Name from the config.
    pub name: String,
    /// Interface it drives.
    pub interface: String,
    /// Network name.
    pub network: String,
    /// Bridge domain (index of the network).
    pub domain: DomainId,
    /// XDP mode the config asks for.
    pub mode: XdpModeChoice,
    /// Receive queues of the interface.
    pub queues: u32,
}

/// Everything the daemon needs to start its workers.
#[derive(Clone, Debug)]
pub struct SwitchPlan {
    /// Ports, by global port index.
    pub ports: Vec<PortPlan>,
    /// Core of each worker.
    pub cores: Vec<usize>,
    /// AF_XDP ring entries.
    pub ring_size: u32,
    /// Minimum UMEM frames per worker.
    pub umem_frames: u32,
    /// Frames per receive burst.
    pub burst: usize,
    /// MAC table settings.
    pub l2: L2Config,
    /// Which pipeline the workers run.
    pub pipeline: PipelineKind,
    /// What idle workers do.
    pub idle: IdleMode,
    /// Each network as the gateway and router see it (those with a subnet and
    /// a gateway: the config allows no gateway without a subnet), by bridge
    /// domain.
    pub networks: Vec<Option<RoutedNetwork>>,
    /// The uplink, if the config has one: its port and network follow the
    /// configured ones.
    pub uplink: Option<UplinkPlan>,
    /// The host port, if the config has one: its port and network come last.
    pub host: Option<HostPlan>,
    /// NAT, if some network masquerades or a port is published.
    pub nat: Option<NatPlan>,
    /// The node's addresses published ports listen on: the uplink's, the
    /// host port's switch address (fixed at start: changing either takes a
    /// restart).
    pub node_addresses: Vec<std::net::Ipv4Addr>,
}

/// What each worker's NAT engine starts with. Every worker has its own
/// engine and conntrack table; a flow belongs to one of them, found from any
/// of its packets, and the other workers hand its frames there
/// (`switchyard_pipeline::nat::owner`).
#[derive(Clone, Debug)]
pub struct NatPlan {
    /// Connections per worker.
    pub conntrack_size: usize,
    /// How flows are spread over the workers (one set of hash keys for all).
    pub owners: FlowOwners,
    /// Connection timeouts (Linux's, with the config's overrides).
    pub timeouts: Timeouts,
    /// The uplink address and port range, when some network masquerades.
    pub masquerade: Option<Masquerade>,
    /// The published ports.
    pub published: Arc<PublishedPorts>,
    /// The node addresses they listen on.
    pub node_addresses: Vec<std::net::Ipv4Addr>,
    /// The uplink's domain (where masquerade applies).
    pub uplink_domain: Option<DomainId>,
}

impl NatPlan {
    /// A fresh engine for worker `worker` (allocates its conntrack table).
    pub fn engine(&self, worker: usize) -> Nat {
        let mut nat = Nat::new(ConntrackConfig {
            max_entries: self.conntrack_size,
            timeouts: self.timeouts,
        });
        nat.set_owners(self.owners, worker as u16);
        nat.set_masquerade(self.masquerade);
        nat.set_published(Arc::clone(&self.published), &self.node_addresses);
        nat
    }
}

/// Linux's timeouts with `[conntrack]`'s overrides.
pub fn timeouts(config: &ConntrackTimeouts) -> Timeouts {
    let mut t = Timeouts::LINUX;
    let set = |field: &mut u32, value: Option<u32>| {
        if let Some(v) = value {
            *field = v;
        }
    };
    set(&mut t.tcp_syn_sent, config.tcp_syn_sent);
    set(&mut t.tcp_syn_recv, config.tcp_syn_recv);
    set(&mut t.tcp_established, config.tcp_established);
    set(&mut t.tcp_fin_wait, config.tcp_fin_wait);
    set(&mut t.tcp_close_wait, config.tcp_close_wait);
    set(&mut t.tcp_last_ack, config.tcp_last_ack);
    set(&mut t.tcp_time_wait, config.tcp_time_wait);
    set(&mut t.tcp_close, config.tcp_close);
    set(&mut t.tcp_unacknowledged, config.tcp_unacknowledged);
    set(&mut t.udp_unreplied, config.udp_unreplied);
    set(&mut t.udp_assured, config.udp_assured);
    set(&mut t.icmp, config.icmp);
    t
}

/// The published ports of `config`, as the workers look them up.
pub fn published_ports(config: &NodeConfig) -> PublishedPorts {
    let entries: Vec<_> = config
        .publish
        .iter()
        .enumerate()
        .map(|(i, p)| super::publish::PublishEntry::from_config(i, p))
        .collect();
    // Validated (no overlaps, ranges fit, far fewer rules than the index
    // numbers): an error here cannot happen.
    super::publish::table(&entries).unwrap_or_default()
}

/// Where `config`'s masquerading networks' flows appear to come from, if any
/// network masquerades.
pub fn masquerade(config: &NodeConfig) -> Option<Masquerade> {
    config
        .uplink
        .as_ref()
        .filter(|_| config.networks.iter().any(|n| n.masquerade))
        .map(|up| Masquerade {
            address: up.address.addr,
            first_port: up.nat_ports.first,
            last_port: up.nat_ports.last,
        })
}

/// The host port as the workers run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPlan {
    /// Its global port index.
    pub port: usize,
    /// Its bridge domain (a network of its own, `host`).
    pub domain: DomainId,
    /// The host end: a static neighbour.
    pub neighbour: (std::net::Ipv4Addr, MacAddr),
}

/// Name of the host port's network and port (reserved like [`UPLINK`]).
pub const HOST: &str = "host";

/// The uplink as the workers run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkPlan {
    /// Its global port index.
    pub port: usize,
    /// Its bridge domain (a network of its own, `uplink`).
    pub domain: DomainId,
    /// The node's address and the interface's MAC: the gateway the outside
    /// sends to.
    pub gateway: Gateway,
    /// The default route's next hop.
    pub next_hop: Option<std::net::Ipv4Addr>,
    /// Configured neighbours.
    pub neighbours: Vec<(std::net::Ipv4Addr, MacAddr)>,
}

/// Name of the uplink's network and port (reserved: no `[[network]]` or port
/// may take it).
pub const UPLINK: &str = "uplink";

/// Network `name` as the router sees it (domain `domain`), if it has a subnet
/// and a gateway.
pub fn routed_network(
    domain: DomainId,
    name: &str,
    subnet: Option<switchyard_config::Ipv4Cidr>,
    gateway: Option<std::net::Ipv4Addr>,
    isolated: bool,
    masquerade: bool,
) -> Option<RoutedNetwork> {
    let subnet = subnet?;
    Some(RoutedNetwork {
        masquerade,
        ..RoutedNetwork::bridge(
            domain,
            subnet.network(),
            subnet.prefix_len,
            network_gateway(name, gateway)?,
            isolated,
        )
    })
}

/// The uplink's network: the node's address on its prefix, with the
/// interface's own MAC (the outside's ARP caches know the node by it) and MTU;
/// open to every network, as Docker's bridges all reach the outside.
fn uplink_network(domain: DomainId, uplink: &switchyard_config::UplinkConfig) -> RoutedNetwork {
    let mac = sys::interface_mac(&uplink.interface)
        .map(MacAddr)
        .unwrap_or_else(|| gateway_mac(UPLINK));
    let mtu = sys::interface_mtu(&uplink.interface)
        .and_then(|m| u16::try_from(m).ok())
        .unwrap_or(DEFAULT_MTU);
    RoutedNetwork {
        domain,
        subnet: uplink.address.network(),
        prefix_len: uplink.address.prefix_len,
        gateway: Gateway {
            ip: uplink.address.addr,
            mac,
        },
        isolated: false,
        open: true,
        mtu,
        masquerade: false,
    }
}

/// The MAC the switch answers with for network `name`'s gateway address:
/// locally administered unicast (`02:…`), derived from the name alone so it is
/// the same after a restart (containers keep it in their ARP caches) and on
/// every node that has the network.
pub fn gateway_mac(name: &str) -> MacAddr {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"switchyard-gateway:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let b = hash.to_be_bytes();
    MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
}

/// The gateway of a network with a `gateway` address.
pub fn network_gateway(name: &str, address: Option<std::net::Ipv4Addr>) -> Option<Gateway> {
    address.map(|ip| Gateway {
        ip,
        mac: gateway_mac(name),
    })
}

fn mode_choice(mode: XdpMode) -> XdpModeChoice {
    match mode {
        XdpMode::Auto => XdpModeChoice::Auto,
        XdpMode::Native => XdpModeChoice::Native,
        XdpMode::Generic => XdpModeChoice::Generic,
    }
}

impl SwitchPlan {
    /// Builds the plan; reads each interface's queue count from sysfs.
    pub fn from_config(config: &NodeConfig, host_port: Option<&HostPort>) -> Self {
        let mut ports: Vec<PortPlan> = config
            .ports
            .iter()
            .map(|port| {
                let interface = port.interface.clone().unwrap_or_default();
                PortPlan {
                    name: port.name.clone(),
                    queues: sys::rx_queue_count(&interface),
                    interface,
                    network: port.network.clone(),
                    domain: config
                        .networks
                        .iter()
                        .position(|n| n.name == port.network)
                        .unwrap_or(0) as DomainId,
                    mode: mode_choice(port.effective_xdp_mode(&config.switch)),
                }
            })
            .collect();
        let mut networks: Vec<Option<RoutedNetwork>> = config
            .networks
            .iter()
            .enumerate()
            .map(|(d, n)| {
                routed_network(
                    d as DomainId,
                    &n.name,
                    n.subnet,
                    n.gateway,
                    n.isolated,
                    n.masquerade,
                )
            })
            .collect();
        let uplink = config.uplink.as_ref().map(|up| {
            // The uplink's LAN is a flat network's domain if the config has
            // one (its containers are bridged with the uplink), else a
            // network of its own.
            let flat = config.networks.iter().position(|n| n.uplink);
            let (domain, network_name) = match flat {
                Some(d) => (d as DomainId, config.networks[d].name.clone()),
                None => (networks.len() as DomainId, UPLINK.to_string()),
            };
            let network = uplink_network(domain, up);
            match flat {
                Some(d) => networks[d] = Some(network),
                None => networks.push(Some(network)),
            }
            ports.push(PortPlan {
                name: UPLINK.to_string(),
                queues: sys::rx_queue_count(&up.interface),
                interface: up.interface.clone(),
                network: network_name,
                domain,
                mode: mode_choice(config.switch.xdp_mode),
            });
            UplinkPlan {
                port: ports.len() - 1,
                domain,
                gateway: network.gateway,
                next_hop: up.gateway,
                neighbours: up
                    .neighbours
                    .iter()
                    .map(|n| (n.ip, MacAddr(n.mac.0)))
                    .collect(),
            }
        });
        let host = host_port.map(|hp| {
            let domain = networks.len() as DomainId;
            let mac = sys::interface_mac(&hp.switch_end)
                .map(MacAddr)
                .unwrap_or_else(|| gateway_mac(HOST));
            networks.push(Some(RoutedNetwork {
                domain,
                subnet: hp.address.network(),
                prefix_len: hp.address.prefix_len,
                gateway: Gateway {
                    ip: hp.switch_address,
                    mac,
                },
                isolated: false,
                open: true,
                mtu: DEFAULT_MTU,
                masquerade: false,
            }));
            ports.push(PortPlan {
                name: HOST.to_string(),
                queues: 1,
                interface: hp.switch_end.clone(),
                network: HOST.to_string(),
                domain,
                mode: mode_choice(config.switch.xdp_mode),
            });
            HostPlan {
                port: ports.len() - 1,
                domain,
                neighbour: (hp.address.addr, MacAddr(hp.host_mac)),
            }
        });
        let node_addresses: Vec<std::net::Ipv4Addr> = config
            .uplink
            .iter()
            .map(|u| u.address.addr)
            .chain(host_port.map(|h| h.switch_address))
            .collect();
        let needs_nat = config.networks.iter().any(|n| n.masquerade) || !config.publish.is_empty();
        let nat = needs_nat.then(|| NatPlan {
            conntrack_size: config.switch.conntrack_size,
            owners: FlowOwners::new(config.switch.workers.len() as u16),
            timeouts: timeouts(&config.conntrack),
            masquerade: masquerade(config),
            published: Arc::new(published_ports(config)),
            node_addresses: node_addresses.clone(),
            uplink_domain: uplink.as_ref().map(|u| u.domain),
        });
        SwitchPlan {
            ports,
            cores: config.switch.workers.clone(),
            ring_size: config.switch.ring_size,
            umem_frames: config.switch.umem_frames,
            burst: config.switch.burst_size,
            l2: L2Config {
                max_entries: config.switch.mac_table_size,
                aging_ns: config.switch.mac_aging_secs.saturating_mul(1_000_000_000),
            },
            pipeline: match config.switch.pipeline {
                PipelineMode::L2 => PipelineKind::L2,
                PipelineMode::Empty => PipelineKind::Empty,
            },
            idle: config.switch.idle,
            networks,
            uplink,
            host,
            nat,
            node_addresses,
        }
    }

    /// The NAT plan of an engine made at run time, for the first published
    /// port of a switch that started without NAT: `config`'s connection
    /// table size, timeouts and masquerade, the plan's node addresses and
    /// uplink.
    pub fn live_nat(&self, config: &NodeConfig, published: Arc<PublishedPorts>) -> NatPlan {
        NatPlan {
            conntrack_size: config.switch.conntrack_size,
            owners: FlowOwners::new(self.cores.len() as u16),
            timeouts: timeouts(&config.conntrack),
            masquerade: masquerade(config),
            published,
            node_addresses: self.node_addresses.clone(),
            uplink_domain: self.uplink.as_ref().map(|u| u.domain),
        }
    }

    /// Frames an idle socket keeps posted to its fill ring.
    pub const FILL_MIN: u32 = 8;

    /// Frames beyond [`FILL_MIN`](Self::FILL_MIN) an idle socket keeps posted
    /// while the worker's [`BURST_ALLOWANCE`](Self::BURST_ALLOWANCE) lasts: 32 in
    /// all absorbs a TCP initial window or a batch of datagrams that lands
    /// while the worker sleeps (with 8, an idle port lost half of a 16-frame
    /// burst).
    pub const FILL_BURST: u32 = 24;

    /// Burst allowance per worker: the first 64 sockets get
    /// [`FILL_BURST`](Self::FILL_BURST) (a node's usual few dozen ports all do),
    /// later ones only the minimum, so a thousand ports still fit the default
    /// UMEM. A fixed budget, not a share of the pool: frames posted to an idle
    /// socket cannot be taken back, so shares that shrank as ports were added
    /// would strand frames.
    pub const BURST_ALLOWANCE: usize = 64 * Self::FILL_BURST as usize;

    /// Most frames a busy socket keeps posted: its whole fill ring (twice the
    /// RX ring, so a vCPU stall of a few milliseconds at line rate still finds
    /// buffers), as far as the pool has them beyond its reserve.
    pub fn fill_max(&self) -> u32 {
        self.ring_size * 2
    }

    /// Free frames busy sockets' top-ups leave alone: for floods and frames
    /// handed over by other workers (a few bursts' worth).
    pub fn reserve(&self) -> usize {
        8 * self.burst
    }

    /// Frames a worker's UMEM must have for `sockets` sockets. Frame memory
    /// follows traffic, not port count: each socket keeps only
    /// [`FILL_MIN`](Self::FILL_MIN) frames posted while idle, so what is
    /// guaranteed is that minimum per socket, the burst allowance, the reserve, and one busy
    /// socket's full fill ring and a burst of transmissions in flight. Busy
    /// sockets share the rest. Used to size the UMEM at start and to refuse a
    /// port at run time that would starve the others.
    pub fn frames_needed(&self, sockets: usize) -> usize {
        sockets * Self::FILL_MIN as usize
            + Self::BURST_ALLOWANCE
            + self.reserve()
            + self.fill_max() as usize
            + self.ring_size as usize
    }

    /// Places sockets on workers. In generic mode a veth delivers every frame on
    /// queue 0, so such ports count as single-queue.
    pub fn placements(&self, modes: &[AttachMode]) -> Vec<WorkerPlacement> {
        let queues: Vec<u32> = self
            .ports
            .iter()
            .zip(modes)
            .map(|(p, mode)| {
                if *mode == AttachMode::Generic {
                    1
                } else {
                    p.queues
                }
            })
            .collect();
        place(self.cores.len(), &queues)
    }
}
