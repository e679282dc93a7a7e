//! The kernel baseline of the `routed` scenario: a Linux bridge holding the
//! network's gateway address on the generator's side and kernel IPv4
//! forwarding to the uplink veth, as a Docker or CNI bridge node routes its
//! containers' traffic out (without their iptables rules: no NAT, no
//! conntrack, so this is the kernel's fastest routed path).
//!
//! All of it lives in a router namespace of its own (`syp<id>-rtr`): the two
//! host ends of the topology move in for the kernel run and back to the
//! harness's namespace afterwards, so `net.ipv4.ip_forward` (a per-namespace
//! sysctl) is set there and the machine's own namespace is never touched.
//! Dropping the [`KernelRouter`] moves the host ends back (down, without
//! addresses, IPv6 and multicast off again, then up) and deletes the
//! namespace with the bridge in it, whatever happened in between. If the
//! harness is killed, [`super::topology::remove_stale`] deletes the
//! namespace and the veths with it.

use super::cmd;
use super::netns;
use super::topology::{interface_exists, object_name, write_sysctl, Topology};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// How the kernel router is addressed.
#[derive(Clone, Debug)]
pub struct KernelRouterConfig {
    /// The gateway address with its prefix, on the bridge (`10.83.1.1/24`).
    pub gateway: String,
    /// The node's uplink address with its prefix, on the sink's host end
    /// (`10.83.2.10/24`).
    pub uplink_address: String,
    /// Static neighbours on the uplink (IPv4, MAC): the sink's kernel never
    /// answers ARP (its AF_XDP socket takes every frame), so the router
    /// knows it statically, as Switchyard's `[uplink.neighbours]` does.
    pub uplink_neighbours: Vec<(String, String)>,
    /// Static neighbours on the bridge (the generator's side), (IPv4, MAC):
    /// a container whose AF_XDP sink takes every frame never answers ARP.
    pub network_neighbours: Vec<(String, String)>,
    /// An nftables ruleset loaded in the router namespace (`nft -f`), with
    /// `{bridge}` and `{uplink}` replaced by the interfaces' names: the
    /// `nat` scenario's masquerade and DNAT rules. `None`: no rules, no
    /// conntrack.
    pub nft_ruleset: Option<String>,
    /// Steer the router's work to these cores with RPS on the generator's
    /// host end, as the bridge is with `--bridge-rps`; `None`: softirq on
    /// the sending core, where the kernel puts it.
    pub steer_to: Option<Vec<usize>>,
}

/// The router namespace with the bridge and forwarding; undone on drop.
#[derive(Debug)]
pub struct KernelRouter {
    /// The router namespace.
    pub netns: String,
    /// The bridge inside it.
    pub bridge: String,
    /// Host ends moved into the namespace (moved back on drop).
    moved: Vec<String>,
    /// The interface whose RPS mask was set (cleared on drop).
    steered: Option<String>,
    created_netns: bool,
}

/// Name of the router namespace of topology `id`.
pub fn router_netns(id: &str) -> Result<String> {
    object_name(id, "rtr")
}

impl KernelRouter {
    /// Creates the router namespace (IPv6 off, forwarding on), moves both
    /// host ends into it, puts the generator's under a bridge with the
    /// gateway address, gives the sink's the uplink address and the static
    /// neighbours. Fails (undoing what it did) when any step fails.
    pub fn start(topology: &Topology, config: &KernelRouterConfig) -> Result<Self> {
        let mut router = KernelRouter {
            netns: router_netns(&topology.id)?,
            bridge: object_name(&topology.id, "rbr")?,
            moved: Vec::new(),
            steered: None,
            created_netns: false,
        };
        router.set_up(topology, config)?;
        Ok(router)
    }

    fn set_up(&mut self, topology: &Topology, config: &KernelRouterConfig) -> Result<()> {
        let ns = self.netns.clone();
        cmd::run("ip", &["netns", "add", &ns])?;
        self.created_netns = true;
        netns::run_in(&ns, Duration::from_secs(5), || {
            for key in ["all", "default"] {
                write_sysctl(&format!("net/ipv6/conf/{key}/disable_ipv6"), "1")?;
            }
            // This namespace's own forwarding switch, not the machine's.
            write_sysctl("net/ipv4/ip_forward", "1")
        })
        .context("setting up the router namespace")?;
        let gen = topology.gen.host_interface.clone();
        let sink = topology.sink.host_interface.clone();
        for interface in [&gen, &sink] {
            cmd::run("ip", &["link", "set", "dev", interface, "netns", &ns])?;
            self.moved.push(interface.clone());
        }
        let ip = |args: &[&str]| -> Result<String> {
            let mut all = vec!["-n", ns.as_str()];
            all.extend_from_slice(args);
            cmd::run("ip", &all)
        };
        ip(&["link", "set", "lo", "up"])?;
        ip(&[
            "link",
            "add",
            &self.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["link", "set", "dev", &gen, "master", &self.bridge])?;
        ip(&["addr", "add", &config.gateway, "dev", &self.bridge])?;
        ip(&["addr", "add", &config.uplink_address, "dev", &sink])?;
        for interface in [&self.bridge, &gen, &sink] {
            ip(&["link", "set", "dev", interface, "multicast", "off", "up"])?;
        }
        for (address, mac) in &config.uplink_neighbours {
            ip(&[
                "neigh",
                "replace",
                address,
                "lladdr",
                mac,
                "dev",
                &sink,
                "nud",
                "permanent",
            ])?;
        }
        for (address, mac) in &config.network_neighbours {
            ip(&[
                "neigh",
                "replace",
                address,
                "lladdr",
                mac,
                "dev",
                &self.bridge,
                "nud",
                "permanent",
            ])?;
        }
        if let Some(ruleset) = &config.nft_ruleset {
            let text = ruleset
                .replace("{bridge}", &self.bridge)
                .replace("{uplink}", &sink);
            let file = std::env::temp_dir().join(format!("{ns}.nft"));
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            let loaded = cmd::run(
                "ip",
                &["netns", "exec", &ns, "nft", "-f", &file.to_string_lossy()],
            );
            let _ = std::fs::remove_file(&file);
            loaded.context(
                "loading the nftables ruleset (is nftables installed? scripts/install-deps.sh)",
            )?;
        }
        if let Some(cores) = &config.steer_to {
            let mask = super::dataplane::rps_mask(cores)?;
            self.steered = Some(gen.clone());
            set_rps(&ns, &gen, &mask)?;
        }
        let forwarding = netns::run_in(&ns, Duration::from_secs(5), || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .context("reading net.ipv4.ip_forward")
        })?;
        if forwarding.trim() != "1" {
            bail!("net.ipv4.ip_forward is {forwarding:?} in {ns}, not 1");
        }
        Ok(())
    }

    /// Moves the host ends back to the harness's namespace and restores what
    /// the topology gave them; deletes the namespace (and the bridge in it).
    fn tear_down(&mut self) {
        let ns = self.netns.clone();
        let home = std::process::id().to_string();
        if let Some(interface) = self.steered.take() {
            if let Err(error) = set_rps(&ns, &interface, "0") {
                eprintln!("switchyard-perf: clean-up: {error:#}");
            }
        }
        for interface in self.moved.drain(..) {
            if !netns::netns_path(&ns).exists() {
                break;
            }
            // Unenslaved first, so the bridge keeps nothing of it.
            cmd::cleanup(
                "ip",
                &["-n", &ns, "link", "set", "dev", &interface, "nomaster"],
            );
            cmd::cleanup(
                "ip",
                &["-n", &ns, "link", "set", "dev", &interface, "netns", &home],
            );
            if interface_exists(&interface) {
                // A device that changes namespace comes back down, without
                // addresses and with the new namespace's IPv6 defaults.
                if let Err(error) =
                    write_sysctl(&format!("net/ipv6/conf/{interface}/disable_ipv6"), "1")
                {
                    eprintln!("switchyard-perf: clean-up: {error:#}");
                }
                cmd::cleanup(
                    "ip",
                    &["link", "set", "dev", &interface, "multicast", "off", "up"],
                );
            } else {
                eprintln!("switchyard-perf: clean-up: {interface} did not come back from {ns}");
            }
        }
        if self.created_netns && netns::netns_path(&ns).exists() {
            cmd::cleanup("ip", &["netns", "del", &ns]);
        }
        self.created_netns = false;
    }
}

/// Writes `mask` to every receive queue's `rps_cpus` of `interface` in
/// namespace `ns` (through `ip netns exec`, which mounts that namespace's
/// sysfs: the harness's own /sys shows only its namespace's devices).
fn set_rps(ns: &str, interface: &str, mask: &str) -> Result<()> {
    // Names are ours (`syp<id>-<x>`) and the mask hex digits: nothing to quote.
    let script = format!(
        "for q in /sys/class/net/{interface}/queues/rx-*/rps_cpus; do echo {mask} > \"$q\" || exit 1; done"
    );
    cmd::run("ip", &["netns", "exec", ns, "sh", "-c", &script])
        .with_context(|| format!("setting the RPS mask of {interface} in {ns} to {mask}"))?;
    Ok(())
}

impl Drop for KernelRouter {
    fn drop(&mut self) {
        self.tear_down();
    }
}
