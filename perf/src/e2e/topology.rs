//! The test topology: two namespaces (generator and sink), each holding one end
//! of a veth whose other end stays in the root namespace for a dataplane to
//! join. Created once per run, so every dataplane is measured on the very same
//! links; removed on drop, whatever happened in between.
//!
//! Every name carries `syp` plus this process's PID in hex, so `ip link | grep
//! syp` finds leftovers and [`remove_stale`] can tell whose they are.

use super::cmd;
use super::netns::{self, RxCounters};
use crate::frames::test_mac;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

/// Prefix of every kernel object this crate creates.
pub const PREFIX: &str = "syp";

/// Longest Linux interface name (IFNAMSIZ minus the NUL).
pub const IFNAME_MAX: usize = 15;

/// Name of the veth end inside each namespace.
pub const NS_INTERFACE: &str = "eth0";

/// The generator's address in the TCP scenario (the UDP frames carry it too).
pub const GEN_IP: &str = "10.83.0.1";

/// The sink's address in the TCP scenario.
pub const SINK_IP: &str = "10.83.0.2";

/// Prefix length of the test hosts' subnet.
const PREFIX_LEN: u8 = 24;

/// One namespace with its veth.
#[derive(Clone, Debug)]
pub struct Station {
    /// Namespace name.
    pub netns: String,
    /// MAC of [`NS_INTERFACE`] inside the namespace.
    pub mac: [u8; 6],
    /// Host (root-namespace) end of the veth, where a dataplane attaches.
    pub host_interface: String,
    /// MAC of the host end.
    pub host_mac: [u8; 6],
}

impl Station {
    /// Station `suffix` of topology `id`: namespace `syp<id>-<suffix>`, host
    /// end `syp<id>-<first letter>`, MACs tagged `tag`.
    fn named(id: &str, suffix: &str, tag: u8) -> Result<Station> {
        Ok(Station {
            netns: object_name(id, suffix)?,
            mac: test_mac(tag, 1),
            host_interface: object_name(id, &suffix[..1])?,
            host_mac: test_mac(tag | 0x10, 1),
        })
    }
}

/// The generator and sink stations; deletes them on drop.
#[derive(Debug)]
pub struct Topology {
    /// Unique id (`<pid hex>`), part of every name.
    pub id: String,
    /// Where traffic comes from.
    pub gen: Station,
    /// Where traffic goes to (its kernel counts what arrives).
    pub sink: Station,
    created_netns: Vec<String>,
    created_links: Vec<String>,
}

/// `syp<id>-<suffix>`, checked against the interface name limit.
pub fn object_name(id: &str, suffix: &str) -> Result<String> {
    let name = format!("{PREFIX}{id}-{suffix}");
    if name.len() > IFNAME_MAX {
        bail!("interface name {name:?} is longer than {IFNAME_MAX} bytes");
    }
    Ok(name)
}

/// `aa:bb:cc:dd:ee:ff`, as `ip` prints and takes a MAC.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Topology {
    /// Creates both namespaces and veths, IPv6 and multicast off on every test
    /// link (so the kernel sends no router solicitations, DAD or IGMP into the
    /// measurement), links up.
    pub fn create() -> Result<Self> {
        let id = format!("{:x}", std::process::id());
        let mut topology = Topology {
            gen: Station::named(&id, "gen", 1)?,
            sink: Station::named(&id, "sink", 2)?,
            id,
            created_netns: Vec::new(),
            created_links: Vec::new(),
        };
        for station in [topology.gen.clone(), topology.sink.clone()] {
            topology
                .add_station(&station)
                .with_context(|| format!("creating station {}", station.netns))?;
        }
        Ok(topology)
    }

    /// The names and MACs [`Topology::create`] would use for `id`, with
    /// nothing created (and so nothing deleted on drop): for tests of what
    /// the harness writes.
    #[cfg(test)]
    pub(crate) fn for_tests(id: &str) -> Self {
        Topology {
            gen: Station::named(id, "gen", 1).unwrap(),
            sink: Station::named(id, "sink", 2).unwrap(),
            id: id.to_string(),
            created_netns: Vec::new(),
            created_links: Vec::new(),
        }
    }

    fn add_station(&mut self, station: &Station) -> Result<()> {
        cmd::run("ip", &["netns", "add", &station.netns])?;
        self.created_netns.push(station.netns.clone());
        // New interfaces of the namespace start with IPv6 off.
        netns::run_in(&station.netns, Duration::from_secs(5), || {
            for key in ["all", "default"] {
                write_sysctl(&format!("net/ipv6/conf/{key}/disable_ipv6"), "1")?;
            }
            Ok(())
        })?;
        let (host_mac, mac) = (format_mac(&station.host_mac), format_mac(&station.mac));
        cmd::run(
            "ip",
            &[
                "link",
                "add",
                &station.host_interface,
                "address",
                &host_mac,
                "type",
                "veth",
                "peer",
                "name",
                NS_INTERFACE,
                "address",
                &mac,
                "netns",
                &station.netns,
            ],
        )?;
        self.created_links.push(station.host_interface.clone());
        write_sysctl(
            &format!("net/ipv6/conf/{}/disable_ipv6", station.host_interface),
            "1",
        )?;
        netns::run_in(&station.netns, Duration::from_secs(5), || {
            write_sysctl(&format!("net/ipv6/conf/{NS_INTERFACE}/disable_ipv6"), "1")
        })?;
        // Multicast off: no IGMP reports from the links themselves land in the
        // sink's counters.
        cmd::run(
            "ip",
            &[
                "link",
                "set",
                &station.host_interface,
                "multicast",
                "off",
                "up",
            ],
        )?;
        cmd::run(
            "ip",
            &[
                "-n",
                &station.netns,
                "link",
                "set",
                NS_INTERFACE,
                "multicast",
                "off",
                "up",
            ],
        )?;
        Ok(())
    }

    /// The sink's receive counters, read inside its namespace.
    pub fn sink_counters(&self) -> Result<RxCounters> {
        netns::run_in(&self.sink.netns, Duration::from_secs(5), || {
            netns::rx_counters_here(NS_INTERFACE)
        })
    }
}

impl Topology {
    /// Gives both `eth0`s their IPv4 address (for TCP); removed again when
    /// the guard drops. The UDP scenarios run without addresses, so the
    /// namespaces' own stacks never answer the generated frames.
    pub fn add_addresses(&self) -> Result<Addresses<'_>> {
        let guard = Addresses { topology: self };
        for (station, ip) in [(&self.gen, GEN_IP), (&self.sink, SINK_IP)] {
            let address = format!("{ip}/{PREFIX_LEN}");
            cmd::run(
                "ip",
                &[
                    "-n",
                    &station.netns,
                    "addr",
                    "add",
                    &address,
                    "dev",
                    NS_INTERFACE,
                ],
            )?;
        }
        Ok(guard)
    }

    /// Removes any XDP program left on `eth0` of `station`'s namespace (the
    /// sink's AF_XDP socket attaches one; TCP must reach the kernel stack).
    pub fn detach_xdp(&self, station: &Station) {
        let details = cmd::run(
            "ip",
            &[
                "-n",
                &station.netns,
                "-d",
                "link",
                "show",
                "dev",
                NS_INTERFACE,
            ],
        )
        .unwrap_or_default();
        if details.contains("prog/xdp") || details.contains(" xdp") {
            for mode in ["xdpgeneric", "xdpdrv"] {
                cmd::cleanup(
                    "ip",
                    &[
                        "-n",
                        &station.netns,
                        "link",
                        "set",
                        "dev",
                        NS_INTERFACE,
                        mode,
                        "off",
                    ],
                );
            }
        }
    }
}

/// The TCP scenario's addresses; flushed on drop.
#[derive(Debug)]
pub struct Addresses<'a> {
    topology: &'a Topology,
}

impl Drop for Addresses<'_> {
    fn drop(&mut self) {
        for station in [&self.topology.gen, &self.topology.sink] {
            if netns::netns_path(&station.netns).exists() {
                cmd::cleanup(
                    "ip",
                    &["-n", &station.netns, "addr", "flush", "dev", NS_INTERFACE],
                );
                // Forget the peer's MAC too: the next scenario starts cold.
                cmd::cleanup(
                    "ip",
                    &["-n", &station.netns, "neigh", "flush", "dev", NS_INTERFACE],
                );
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a host end deletes its peer; deleting a namespace deletes what
        // is left in it. Skip what is already gone to keep the output quiet.
        for link in self.created_links.drain(..).rev() {
            if interface_exists(&link) {
                cmd::cleanup("ip", &["link", "del", &link]);
            }
        }
        for ns in self.created_netns.drain(..).rev() {
            if netns::netns_path(&ns).exists() {
                cmd::cleanup("ip", &["netns", "del", &ns]);
            }
        }
    }
}

/// Writes a sysctl under /proc/sys (as the calling thread's namespace sees it).
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value).with_context(|| format!("writing {} to {}", value, path.display()))
}

/// True when the root namespace has interface `name`.
pub fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// PID encoded in one of our object names (`syp<pid hex>-…`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (hex, _) = rest.split_once('-')?;
    u32::from_str_radix(hex, 16).ok()
}

/// Removes namespaces, interfaces and temporary directories left by earlier runs that were killed
/// before they could clean up (their PID no longer runs). Objects of live
/// runs are left alone, so two benchmarks at once do not break each other.
pub fn remove_stale() {
    let is_stale = |name: &str| match owner_pid(name) {
        Some(pid) => {
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        }
        None => false,
    };
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    for link in names("/sys/class/net").into_iter().filter(|n| is_stale(n)) {
        eprintln!("switchyard-perf: removing interface {link} left by an earlier run");
        cmd::cleanup("ip", &["link", "del", &link]);
    }
    for ns in names("/var/run/netns").into_iter().filter(|n| is_stale(n)) {
        eprintln!("switchyard-perf: removing namespace {ns} left by an earlier run");
        cmd::cleanup("ip", &["netns", "del", &ns]);
    }
    let tmp = std::env::temp_dir();
    for dir in names(&tmp.to_string_lossy())
        .into_iter()
        .filter(|n| is_stale(n))
    {
        let _ = std::fs::remove_dir_all(tmp.join(dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_carry_the_pid() {
        let id = format!("{:x}", 4_194_304u32); // the largest PID Linux hands out
        for suffix in ["g", "s", "br", "gen", "sink"] {
            let name = object_name(&id, suffix).unwrap();
            assert!(name.len() <= IFNAME_MAX);
            assert_eq!(owner_pid(&name), Some(4_194_304));
        }
        assert_eq!(owner_pid("eth0"), None);
        assert_eq!(owner_pid("sypx-g"), None);
    }

    #[test]
    fn macs_print_like_ip_does() {
        assert_eq!(
            format_mac(&[2, 0x53, 0x59, 1, 0, 0xab]),
            "02:53:59:01:00:ab"
        );
    }
}
