//! A `Lab`: hosts on networks, joined by a dataplane (the daemon, or a Linux bridge).
//!
//! Test bodies are written once against a `Lab` and run on both dataplanes: the Linux
//! bridge validates the harness and the bodies, and serves as a baseline.

use std::time::Duration;

use crate::bridge::Bridge;
use crate::daemon::{Daemon, DaemonConfig, DaemonExit, PortConfig};
use crate::host::{Host, LinkCounters};
use crate::names;
use crate::serial::{self, SerialGuard};

/// What moves frames between the hosts' ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    /// One Linux bridge per network in the root namespace (test-only stand-in, baseline).
    LinuxBridge,
    /// The `switchyard` daemon with every host's root-side veth end as an AF_XDP port.
    Switchyard,
}

/// Per-port counters as the dataplane sees them (frames it received from / sent to a port).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames the dataplane received on the port.
    pub rx_packets: u64,
    /// Frames the dataplane sent out of the port.
    pub tx_packets: u64,
}

/// How long to wait for the daemon's stats file to be rewritten (twice) after now.
pub const FRESH_STATS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct HostSpec {
    name: String,
    network: String,
    cidr: String,
    queues: u32,
}

/// Describes a lab before it is built.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    dataplane: Dataplane,
    networks: Vec<String>,
    hosts: Vec<HostSpec>,
    config: DaemonConfig,
}

impl LabBuilder {
    /// Adds a network (one L2 domain).
    pub fn network(mut self, name: &str) -> Self {
        self.networks.push(name.to_string());
        self
    }

    /// Adds host `name` (at most 6 characters: it is part of an interface name) on
    /// `network` with IPv4 address `cidr`.
    pub fn host(mut self, name: &str, network: &str, cidr: &str) -> Self {
        self.hosts.push(HostSpec {
            name: name.to_string(),
            network: network.to_string(),
            cidr: cidr.to_string(),
            queues: 1,
        });
        self
    }

    /// Adds a host whose veth has `queues` queues on both ends (flows spread over
    /// them, and a multi-worker switch receives on each queue with another worker).
    pub fn host_with_queues(mut self, name: &str, network: &str, cidr: &str, queues: u32) -> Self {
        self.hosts.push(HostSpec {
            name: name.to_string(),
            network: network.to_string(),
            cidr: cidr.to_string(),
            queues,
        });
        self
    }

    /// Overrides daemon settings (workers, aging, stats interval); networks and ports
    /// are filled in from the lab.
    pub fn daemon_config(mut self, config: DaemonConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds hosts and dataplane. Waits for the machine-wide test lock first.
    ///
    /// Panics on any failure; whatever was already created is removed on unwind.
    #[track_caller]
    pub fn start(self) -> Lab {
        let serial = serial::serial();
        for h in &self.hosts {
            assert!(
                self.networks.contains(&h.network),
                "host {} is on undeclared network {}",
                h.name,
                h.network
            );
        }
        let id = names::unique_id();
        let mut lab = Lab {
            daemon: None,
            retired: Vec::new(),
            bridges: Vec::new(),
            hosts: Vec::new(),
            host_networks: Vec::new(),
            id,
            dataplane: self.dataplane,
            networks: self.networks,
            config: self.config,
            _serial: serial,
        };
        for h in &self.hosts {
            lab.hosts.push(Host::create_with_queues(
                &lab.id, &h.name, &h.cidr, h.queues,
            ));
            lab.host_networks.push(h.network.clone());
        }
        match lab.dataplane {
            Dataplane::LinuxBridge => {
                for (i, net) in lab.networks.iter().enumerate() {
                    let members: Vec<&str> = lab
                        .hosts
                        .iter()
                        .zip(&lab.host_networks)
                        .filter(|(_, n)| *n == net)
                        .map(|(h, _)| h.ifname())
                        .collect();
                    let name = names::ifname(&lab.id, &format!("br{i}"));
                    lab.bridges.push(Bridge::create(&name, &members));
                }
            }
            Dataplane::Switchyard => lab.start_daemon(),
        }
        lab
    }
}

/// Hosts joined by a dataplane; everything is torn down on drop, daemon first.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: stop the daemon before its interfaces vanish, delete
    // bridges before the veths, release the test lock last.
    daemon: Option<Daemon>,
    /// Stopped or killed daemons, kept so a later failure still prints their logs.
    retired: Vec<Daemon>,
    bridges: Vec<Bridge>,
    hosts: Vec<Host>,
    host_networks: Vec<String>,
    id: String,
    dataplane: Dataplane,
    networks: Vec<String>,
    config: DaemonConfig,
    _serial: SerialGuard,
}

impl Lab {
    /// Starts describing a lab on `dataplane`.
    pub fn builder(dataplane: Dataplane) -> LabBuilder {
        LabBuilder {
            dataplane,
            networks: Vec::new(),
            hosts: Vec::new(),
            config: DaemonConfig::default(),
        }
    }

    /// The dataplane in use.
    pub fn dataplane(&self) -> Dataplane {
        self.dataplane
    }

    /// The lab's unique id (part of every name it created).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host `name`; panics if there is none.
    #[track_caller]
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .unwrap_or_else(|| panic!("no host {name:?} in lab"))
    }

    /// All hosts, in the order they were declared.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The network host `name` is on.
    #[track_caller]
    pub fn network_of(&self, name: &str) -> &str {
        let i = self
            .hosts
            .iter()
            .position(|h| h.name() == name)
            .unwrap_or_else(|| panic!("no host {name:?} in lab"));
        &self.host_networks[i]
    }

    /// The daemon config for this lab's networks and hosts.
    pub fn daemon_config(&self) -> DaemonConfig {
        DaemonConfig {
            networks: self.networks.clone(),
            ports: self
                .hosts
                .iter()
                .zip(&self.host_networks)
                .map(|(h, n)| PortConfig {
                    name: h.name().to_string(),
                    interface: h.ifname().to_string(),
                    network: n.clone(),
                })
                .collect(),
            ..self.config.clone()
        }
    }

    /// The running daemon; panics on the Linux-bridge dataplane or when stopped.
    #[track_caller]
    pub fn daemon(&mut self) -> &mut Daemon {
        assert_eq!(
            self.dataplane,
            Dataplane::Switchyard,
            "no daemon on {:?}",
            self.dataplane
        );
        self.daemon.as_mut().expect("daemon is not running")
    }

    /// Starts (or restarts) the daemon with this lab's config; waits until it is ready.
    #[track_caller]
    pub fn start_daemon(&mut self) {
        assert_eq!(self.dataplane, Dataplane::Switchyard);
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(Daemon::start(&self.daemon_config()));
    }

    /// SIGTERMs the daemon and returns how it ended.
    #[track_caller]
    pub fn stop_daemon(&mut self) -> DaemonExit {
        let mut d = self.daemon.take().expect("daemon is not running");
        let exit = d.stop();
        self.retired.push(d);
        exit
    }

    /// SIGKILLs the daemon (a crash: its XDP programs stay attached).
    #[track_caller]
    pub fn kill_daemon(&mut self) -> std::process::ExitStatus {
        let mut d = self.daemon.take().expect("daemon is not running");
        let status = d.kill();
        self.retired.push(d);
        status
    }

    /// The dataplane's counters for port `host`, as of now.
    ///
    /// Switchyard: from a stats file written after this call (waits up to
    /// [`FRESH_STATS_TIMEOUT`]). Linux bridge: the kernel counters of the root-side veth
    /// end, which count exactly what the bridge sent to / took from that port.
    #[track_caller]
    pub fn port_counters(&mut self, host: &str) -> PortCounters {
        match self.dataplane {
            Dataplane::LinuxBridge => {
                let LinkCounters {
                    rx_packets,
                    tx_packets,
                    ..
                } = self.host(host).port_link_counters();
                PortCounters {
                    rx_packets,
                    tx_packets,
                }
            }
            Dataplane::Switchyard => {
                let stats = self.daemon().fresh_stats(FRESH_STATS_TIMEOUT);
                let p = stats.port(host);
                PortCounters {
                    rx_packets: p.rx_packets,
                    tx_packets: p.tx_packets,
                }
            }
        }
    }

    /// Counters of several ports from one consistent snapshot.
    #[track_caller]
    pub fn ports_counters(&mut self, hosts: &[&str]) -> Vec<PortCounters> {
        match self.dataplane {
            Dataplane::LinuxBridge => hosts.iter().map(|h| self.port_counters(h)).collect(),
            Dataplane::Switchyard => {
                let stats = self.daemon().fresh_stats(FRESH_STATS_TIMEOUT);
                hosts
                    .iter()
                    .map(|h| {
                        let p = stats.port(h);
                        PortCounters {
                            rx_packets: p.rx_packets,
                            tx_packets: p.tx_packets,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The port (host name) on which the dataplane has learned host `station`'s MAC.
    ///
    /// Switchyard: the `fdb` of a fresh stats file. Linux bridge: `bridge fdb show`,
    /// with the veth end mapped back to its host. `None` when not learned.
    #[track_caller]
    pub fn learned_port(&mut self, station: &str) -> Option<String> {
        let mac = self.host(station).mac().to_string();
        let network = self.network_of(station).to_string();
        match self.dataplane {
            Dataplane::Switchyard => {
                let stats = self.daemon().fresh_stats(FRESH_STATS_TIMEOUT);
                stats.fdb_entry(&network, &mac).map(|e| e.port.clone())
            }
            Dataplane::LinuxBridge => {
                let i = self.networks.iter().position(|n| *n == network)?;
                let out = crate::cmd::run_ok(
                    "bridge",
                    &["-j", "fdb", "show", "br", self.bridges[i].name()],
                );
                let entries: serde_json::Value = serde_json::from_str(&out.stdout)
                    .unwrap_or_else(|e| panic!("parse `{}`: {e}", out.cmdline));
                let ifname = entries
                    .as_array()?
                    .iter()
                    .filter(|e| e.get("state").and_then(|s| s.as_str()) != Some("permanent"))
                    .find(|e| {
                        e.get("mac")
                            .and_then(|m| m.as_str())
                            .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
                    })?
                    .get("ifname")?
                    .as_str()?
                    .to_string();
                self.hosts
                    .iter()
                    .find(|h| h.ifname() == ifname)
                    .map(|h| h.name().to_string())
            }
        }
    }

    /// Pings from `from` to host `to` (`count` requests) and panics unless all replied.
    #[track_caller]
    pub fn assert_ping(&self, from: &str, to: &str, count: u32) {
        let dst = self.host(to).ip();
        let r = self.host(from).ping(dst, count);
        assert!(
            r.all_replied(),
            "{from} -> {to} ({dst}) on {:?}: {}/{} replies\n{}",
            self.dataplane,
            r.received,
            r.transmitted,
            r.output
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "lab {} on {:?} failed; hosts: {}",
                self.id,
                self.dataplane,
                self.hosts
                    .iter()
                    .map(|h| format!(
                        "{} ({}, {}, {}, ns {})",
                        h.name(),
                        h.ip(),
                        h.mac(),
                        h.ifname(),
                        h.netns()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        // Fields drop in declaration order after this: daemon, retired daemons (their
        // logs are printed if panicking), bridges, hosts, lock.
    }
}

/// Generates, for each named body `fn body(Dataplane)`, a module with two tests:
/// `body::linux_bridge` and `body::switchyard`, each skipping (or failing in CI)
/// without root.
///
/// Filter by dataplane with `cargo test linux_bridge` or `cargo test switchyard`.
#[macro_export]
macro_rules! dataplane_tests {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[test]
                fn linux_bridge() {
                    $crate::require_root!();
                    super::$body($crate::Dataplane::LinuxBridge);
                }

                #[test]
                fn switchyard() {
                    $crate::require_root!();
                    super::$body($crate::Dataplane::Switchyard);
                }
            }
        )*
    };
}
