//! The `routed` scenario: a container's traffic leaving the node, container
//! -> gateway -> uplink -> outside, through Switchyard and through the
//! kernel on the same topology, generator, sink and cores.
//!
//! The topology's generator is a container on network A (`10.83.1.2/24`,
//! default route via the gateway `10.83.1.1`); its sink is the outside host
//! behind the uplink (`10.83.2.1/24`, with a route to network A via the
//! node's uplink address `10.83.2.10`). Frames are UDP from `10.83.1.2` to
//! `10.83.2.1` addressed to the gateway's MAC, which the generator's own
//! kernel resolves by ARP (a ping to the gateway) before the rig opens.
//! 1 flow or 10,000 flows are distinct UDP port pairs ([`PortFlows`]).
//!
//! Per dataplane:
//! - **L2 reference**, while the dataplane's L2 layout of the other
//!   scenarios is attached (the bridge; Switchyard's one L2 network): the
//!   same frames, sizes and flows but addressed to the sink's MAC, so the
//!   routed rate can be read against the same dataplane's switched rate.
//! - **Routed**: the kernel as a [`KernelRouter`] (the bridge with the
//!   gateway address and IPv4 forwarding, in a router namespace of its own),
//!   Switchyard as the daemon with network `a` (subnet and gateway) on the
//!   generator's host end and the `[uplink]` on the sink's, the sink a
//!   static neighbour in both (the sink's kernel never answers ARP: its
//!   AF_XDP socket takes every frame).
//!
//! Per frame size: a warm-up (the most flows), then per flow count one
//! unpaced point (the saturation rate) and, for the routed path at the first
//! frame size, one point paced at [`LATENCY_LOAD_PCT`] of it for latency.
//! The empty pipeline cannot route and is skipped.

use super::dataplane::{ContainerNetwork, Daemon, DataplaneKind, RoutedSettings};
use super::kernel_router::{KernelRouter, KernelRouterConfig};
use super::topology::{format_mac, Topology, NS_INTERFACE};
use super::traffic::{Rig, RigConfig, RunIds};
use super::{
    daemon_settings, describe, first_line, DataplaneRun, E2eOptions, Point, PointContext,
    DAEMON_START_S, POINT_OVERHEAD_S,
};
use crate::flows::PortFlows;
use crate::frames::{self, Flow};
use crate::payload;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Network A: the generator's (the containers') subnet.
pub const NETWORK_SUBNET: &str = "10.83.1.0/24";

/// Network A's gateway: the bridge's address, or Switchyard's gateway.
pub const GATEWAY_IP: &str = "10.83.1.1";

/// The generator's address in network A.
pub const GEN_IP: [u8; 4] = [10, 83, 1, 2];

/// The node's address on the uplink, with its prefix.
pub const UPLINK_ADDRESS: &str = "10.83.2.10/24";

/// The sink's (the outside host's) address: the frames' destination and the
/// uplink's next hop.
pub const SINK_IP: [u8; 4] = [10, 83, 2, 1];

/// Prefix length of both subnets.
pub(super) const PREFIX_LEN: u8 = 24;

/// Switchyard's name for network A.
pub(super) const NETWORK_NAME: &str = "a";

/// The daemon's CPU share below which an unpaced point that lost frames
/// was disturbed (see [`RoutedPoint::disturbed`]).
pub const WORKER_DISTURBED_PCT: f64 = 80.0;

/// Load of the latency points, % of the routed saturation rate.
pub const LATENCY_LOAD_PCT: f64 = 50.0;

/// Frame sizes of the scenario by default.
pub fn default_sizes() -> Vec<usize> {
    vec![64, 1500]
}

/// Flow counts of the scenario by default.
pub fn default_flows() -> Vec<usize> {
    vec![1, 10_000]
}

/// `a.b.c.d` of an address.
pub(super) fn dotted(ip: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

/// Which path a point went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// Switched: the dataplane's L2 layout, frames to the sink's MAC.
    L2,
    /// Routed: frames to the gateway's MAC, out of the uplink.
    Routed,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::L2 => "l2",
            Path::Routed => "routed",
        })
    }
}

/// One frame size and flow count on one path.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoutedPoint {
    /// L2 reference or routed.
    pub path: Path,
    /// Frame size.
    pub frame_size: usize,
    /// UDP flows (port pairs).
    pub flows: usize,
    /// The unpaced point: the saturation rate.
    pub saturation: Point,
    /// The paced point at [`LATENCY_LOAD_PCT`] of it (routed, first size).
    pub latency: Option<Point>,
}

impl RoutedPoint {
    /// CPU time of every core per delivered frame at saturation, in ns
    /// (generator, dataplane, sink, softirq), less what other processes took.
    pub fn cpu_ns_per_packet(&self) -> Option<f64> {
        cpu_ns_per_packet(&self.saturation)
    }

    /// The daemon's own CPU time per delivered frame at saturation, in ns
    /// (Switchyard only).
    pub fn daemon_ns_per_packet(&self) -> Option<f64> {
        let p = &self.saturation;
        let cpu = p.daemon_cpu_pct? / 100.0 * p.wall_seconds;
        (p.delivered_frames > 0).then(|| cpu / p.delivered_frames as f64 * 1e9)
    }

    /// True when others disturbed the point: other processes or the
    /// hypervisor took more than [`crate::cpu::NOISY_PCT`] of a core, or
    /// the daemon, losing frames, had less than [`WORKER_DISTURBED_PCT`] of
    /// its core while sending (its busy worker alone keeps ~95 %).
    pub fn disturbed(&self) -> bool {
        let p = &self.saturation;
        p.interference.is_some_and(|i| i.is_noisy())
            || (!self.generator_bound()
                && self
                    .daemon_pct_while_sending()
                    .is_some_and(|c| c < WORKER_DISTURBED_PCT))
    }

    /// The daemon's CPU at saturation, % of one core, over the sending time
    /// only: the point's CPU figures also cover the drain after it, when an
    /// unloaded worker backs off (150 ms of a 0.5 s quick point).
    pub fn daemon_pct_while_sending(&self) -> Option<f64> {
        let p = &self.saturation;
        let cpu = p.daemon_cpu_pct?;
        (p.seconds > 0.0).then(|| cpu * p.wall_seconds / p.seconds)
    }

    /// True when even the unpaced generator lost (almost) nothing: the
    /// generator's core, not the dataplane, set the rate.
    pub fn generator_bound(&self) -> bool {
        self.saturation.probes.loss_pct < 1.0
    }
}

/// CPU ns per delivered frame of a point over all cores (see
/// [`RoutedPoint::cpu_ns_per_packet`]).
pub fn cpu_ns_per_packet(p: &Point) -> Option<f64> {
    let others = p.interference.map_or(0.0, |i| i.foreign_pct);
    let busy = (p.cores_busy_pct? - others).max(0.0) / 100.0 * p.wall_seconds;
    (p.delivered_frames > 0).then(|| busy / p.delivered_frames as f64 * 1e9)
}

/// The scenario's results on one dataplane.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoutedRun {
    /// The gateway's MAC as the generator's kernel resolved it by ARP.
    pub gateway_mac: Option<String>,
    /// L2 reference and routed points, in the order measured.
    pub points: Vec<RoutedPoint>,
    /// The routed daemon's final per-port and per-stage counters (Switchyard).
    pub daemon_stats: Option<serde_json::Value>,
}

/// What the routed daemon's router stage did with its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterCounts {
    /// Frames the router stage saw.
    pub frames_in: u64,
    /// Routed to a known port.
    pub forwarded: u64,
    /// Routed, flooded in the egress network (next hop's port unknown).
    pub flooded: u64,
    /// Dropped (any reason).
    pub dropped: u64,
}

impl RoutedRun {
    /// The router stage's counters from the routed daemon's final stats.
    pub fn router_counts(&self) -> Option<RouterCounts> {
        let stages = self.daemon_stats.as_ref()?.get("stages")?.as_array()?;
        let router = stages
            .iter()
            .find(|s| s.get("name").and_then(|n| n.as_str()) == Some("router"))?;
        let count = |key: &str| router.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        Some(RouterCounts {
            frames_in: count("frames_in"),
            forwarded: count("forwarded"),
            flooded: count("flooded"),
            dropped: count("dropped"),
        })
    }

    /// The point of `path`, `size` and `flows`, if measured.
    pub fn point(&self, path: Path, size: usize, flows: usize) -> Option<&RoutedPoint> {
        self.points
            .iter()
            .find(|p| p.path == path && p.frame_size == size && p.flows == flows)
    }
}

/// What the generator sends in this scenario's points.
#[derive(Clone, Copy, Debug)]
pub(super) struct RoutedTraffic {
    /// Ethernet destination: the sink (L2) or the gateway (routed).
    pub dst_mac: [u8; 6],
    /// The UDP port pairs.
    pub flows: PortFlows,
    /// `Some((src_ip, dst_ip))`: frames from the sink's side (the outside)
    /// with these addresses, sent by a rig whose generator is the sink's
    /// namespace (the `nat` scenario's published ports); `None`: from the
    /// generator's address to the sink's.
    pub inbound: Option<([u8; 4], [u8; 4])>,
}

impl RoutedTraffic {
    /// Frames from the generator (a container) to the sink (the outside).
    pub fn outbound(dst_mac: [u8; 6], flows: PortFlows) -> Self {
        RoutedTraffic {
            dst_mac,
            flows,
            inbound: None,
        }
    }
}

/// The templates of one point: UDP from the generator's address to the
/// sink's, `size` bytes, from `src` to `dst`, checksum cleared for the probe
/// (the ports are written per frame, see [`PortFlows`]).
pub(super) fn templates(src: [u8; 6], dst: [u8; 6], size: usize) -> Result<Vec<Vec<u8>>> {
    templates_between(src, dst, GEN_IP, SINK_IP, size)
}

/// [`templates`] between any two addresses.
pub(super) fn templates_between(
    src: [u8; 6],
    dst: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    size: usize,
) -> Result<Vec<Vec<u8>>> {
    let (src_port, dst_port) = PortFlows::ports(0);
    let mut frame = frames::udp_frame(
        &Flow {
            src_mac: src,
            dst_mac: dst,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
        },
        size,
    )?;
    if !payload::make_template(&mut frame) {
        bail!("frame of {size} bytes is too short for a probe");
    }
    Ok(vec![frame])
}

/// Whether `kind` has a routed equivalent to measure.
pub fn routes(kind: DataplaneKind) -> bool {
    kind != DataplaneKind::SwitchyardEmpty
}

/// About how long the scenario takes on one dataplane that routes.
pub fn planned_seconds(options: &E2eOptions) -> f64 {
    let point = |s: f64| s + POINT_OVERHEAD_S;
    let per_path = options.routed_sizes.len() as f64
        * (point(options.warmup_seconds)
            + options.routed_flows.len() as f64 * point(options.step_seconds));
    let latency = options.routed_flows.len() as f64 * point(options.step_seconds);
    // Set-up: the daemon (the router namespace is quicker), ARP, the rig.
    2.0 * per_path + latency + DAEMON_START_S + 0.5
}

/// The L2 reference on the dataplane `ctx` drives (its L2 layout attached).
pub(super) fn measure_l2(
    ctx: &mut PointContext<'_>,
    run: &mut DataplaneRun,
    progress: &mut Progress,
) {
    let kind = run.dataplane;
    let dst = ctx.topology.sink.mac;
    if let Err(error) = ctx.teach_sink_mac() {
        run.errors.push(format!("routed, L2 reference: {error:#}"));
        return;
    }
    let mut points = Vec::new();
    measure_points(
        ctx,
        kind,
        Path::L2,
        dst,
        &mut points,
        &mut run.errors,
        progress,
    );
    run.routed
        .get_or_insert_with(RoutedRun::default)
        .points
        .extend(points);
}

/// Attaches `kind`'s routed layout, measures the routed points into
/// `run.routed` and detaches again. Failures are recorded in `run`.
pub(super) fn measure_routed(
    run: &mut DataplaneRun,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) {
    let kind = run.dataplane;
    let mut result = run.routed.take().unwrap_or_default();
    if let Err(error) = routed_phase(&mut result, run, topology, options, stop, progress, ids) {
        progress.log(&format!(
            "{kind} routed: {}",
            first_line(&format!("{error:#}"))
        ));
        run.errors.push(format!("routed: {error:#}"));
    }
    run.routed = Some(result);
}

/// The routed dataplane while attached.
enum Router {
    Kernel(KernelRouter),
    Switchyard(Daemon),
}

fn routed_phase(
    result: &mut RoutedRun,
    run: &mut DataplaneRun,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) -> Result<()> {
    let kind = run.dataplane;
    let sink_mac = format_mac(&topology.sink.mac);
    let neighbours = vec![(dotted(SINK_IP), sink_mac)];
    progress.step(&format!("{kind}: routed layout"), DAEMON_START_S);
    let mut router = match kind {
        DataplaneKind::Bridge => Router::Kernel(KernelRouter::start(
            topology,
            &KernelRouterConfig {
                gateway: format!("{GATEWAY_IP}/{PREFIX_LEN}"),
                uplink_address: UPLINK_ADDRESS.to_string(),
                uplink_neighbours: neighbours,
                network_neighbours: Vec::new(),
                nft_ruleset: None,
                steer_to: options.bridge_rps.then(|| options.switch_cores.clone()),
            },
        )?),
        DataplaneKind::Switchyard => {
            let mut settings = daemon_settings(options, "l2", &options.switch_idle);
            settings.routed = Some(routed_settings(neighbours));
            Router::Switchyard(Daemon::start(
                topology,
                &options.switchyard_binary,
                &settings,
                stop,
            )?)
        }
        DataplaneKind::SwitchyardEmpty => bail!("the empty pipeline does not route"),
    };
    if let Router::Kernel(kernel) = &router {
        progress.log(&format!(
            "  {kind} routed: kernel router in namespace {} (bridge {} with {GATEWAY_IP}, forwarding to {UPLINK_ADDRESS})",
            kernel.netns, kernel.bridge
        ));
    }
    let hosts = Hosts::configure(topology)?;
    let gateway = hosts.resolve_gateway()?;
    result.gateway_mac = Some(format_mac(&gateway));
    progress.log(&format!(
        "  {kind} routed: gateway {GATEWAY_IP} is at {} (ARP from the generator's namespace)",
        format_mac(&gateway)
    ));
    let measured = {
        let mut rig = Rig::start(
            &RigConfig {
                gen_netns: topology.gen.netns.clone(),
                sink_netns: topology.sink.netns.clone(),
                interface: NS_INTERFACE.to_string(),
                gen_core: Some(options.generator_core),
                sink_core: Some(options.sink_core),
            },
            stop,
        )
        .context("traffic rig")?;
        let mut ctx = PointContext {
            rig: &mut rig,
            topology,
            options,
            daemon: match &router {
                Router::Switchyard(daemon) => Some(daemon),
                Router::Kernel(_) => None,
            },
            bridge: None,
            ids,
            stop,
            mac_pairs: None,
            routed: None,
        };
        // The uplink learns where the sink is, as the L2 scenarios teach
        // it: an outside router talks back; our sink never sends by itself
        // (unlearned, Switchyard floods routed frames in the uplink's
        // network; the kernel router drops these frames, not for it).
        ctx.teach_sink_mac()?;
        let mut points = Vec::new();
        measure_points(
            &mut ctx,
            kind,
            Path::Routed,
            gateway,
            &mut points,
            &mut run.errors,
            progress,
        );
        points
    };
    result.points.extend(measured);
    // The sink's stack again (its XDP program goes with the rig's socket).
    topology.detach_xdp(&topology.sink);
    drop(hosts);
    if let Router::Switchyard(daemon) = &mut router {
        let stats = daemon.stop()?;
        result.daemon_stats = Some(serde_json::json!({
            "ports": stats.get("ports"),
            "stages": stats.get("stages"),
            "uplink": stats.get("uplink"),
        }));
    }
    drop(router);
    Ok(())
}

/// Switchyard's routed layout: network `a` with its gateway on the
/// generator's side, the uplink on the sink's with the sink as its gateway
/// and static neighbour.
pub(super) fn routed_settings(neighbours: Vec<(String, String)>) -> RoutedSettings {
    RoutedSettings {
        network: ContainerNetwork {
            name: NETWORK_NAME.to_string(),
            subnet: NETWORK_SUBNET.to_string(),
            gateway: GATEWAY_IP.to_string(),
        },
        uplink_address: UPLINK_ADDRESS.to_string(),
        uplink_gateway: dotted(SINK_IP),
        uplink_neighbours: neighbours,
        nat: None,
    }
}

/// Measures every frame size and flow count of `path` into `points`; a
/// failing frame size is recorded in `errors` and the next one still runs.
fn measure_points(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    path: Path,
    dst_mac: [u8; 6],
    points: &mut Vec<RoutedPoint>,
    errors: &mut Vec<String>,
    progress: &mut Progress,
) {
    let options = ctx.options;
    for (i, &size) in options.routed_sizes.iter().enumerate() {
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        let with_latency = path == Path::Routed && i == 0;
        if let Err(error) = measure_size(
            ctx,
            kind,
            path,
            dst_mac,
            size,
            with_latency,
            points,
            progress,
        ) {
            progress.log(&format!(
                "{kind} {path} {size} B: {}",
                first_line(&format!("{error:#}"))
            ));
            errors.push(format!("routed, {path} {size} B: {error:#}"));
        }
    }
    ctx.routed = None;
}

#[allow(clippy::too_many_arguments)]
fn measure_size(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    path: Path,
    dst_mac: [u8; 6],
    size: usize,
    with_latency: bool,
    points: &mut Vec<RoutedPoint>,
    progress: &mut Progress,
) -> Result<()> {
    let options = ctx.options;
    let most = options.routed_flows.iter().copied().max().unwrap_or(1);
    if options.warmup_seconds > 0.0 {
        ctx.routed = Some(RoutedTraffic::outbound(dst_mac, PortFlows::new(most)?));
        progress.step(
            &format!("{kind} {path} {size} B: warm-up"),
            options.warmup_seconds + POINT_OVERHEAD_S,
        );
        ctx.measure(size, None, options.warmup_seconds)?;
    }
    for &flows in &options.routed_flows {
        if ctx.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        ctx.routed = Some(RoutedTraffic::outbound(dst_mac, PortFlows::new(flows)?));
        progress.step(
            &format!("{kind} {path} {size} B, {flows} flows: unpaced"),
            options.step_seconds + POINT_OVERHEAD_S,
        );
        let saturation = ctx.measure(size, None, options.step_seconds)?;
        progress.log(&format!(
            "{} [{path}, {flows} flows]",
            describe(kind, &saturation)
        ));
        let latency = if with_latency && saturation.delivered_mpps > 0.0 {
            let rate = saturation.delivered_mpps * 1e6 * LATENCY_LOAD_PCT / 100.0;
            progress.step(
                &format!(
                    "{kind} {path} {size} B, {flows} flows: latency at {LATENCY_LOAD_PCT:.0} % ({:.3} Mpps)",
                    rate / 1e6
                ),
                options.step_seconds + POINT_OVERHEAD_S,
            );
            let point = ctx.measure(size, Some(rate), options.step_seconds)?;
            progress.log(&format!(
                "{} [{path}, {flows} flows]",
                describe(kind, &point)
            ));
            Some(point)
        } else {
            None
        };
        points.push(RoutedPoint {
            path,
            frame_size: size,
            flows,
            saturation,
            latency,
        });
    }
    Ok(())
}

/// The generator's and the sink's addresses and routes for the routed
/// layout; removed again (with the neighbours they learned) on drop.
pub(super) struct Hosts<'a> {
    topology: &'a Topology,
}

impl<'a> Hosts<'a> {
    /// Generator `10.83.1.2/24` with a default route via the gateway; sink
    /// `10.83.2.1/24` with a route to network A via the uplink address.
    pub(super) fn configure(topology: &'a Topology) -> Result<Self> {
        let hosts = Hosts { topology };
        let uplink_ip = UPLINK_ADDRESS.split('/').next().unwrap_or(UPLINK_ADDRESS);
        let gen_address = format!("{}/{PREFIX_LEN}", dotted(GEN_IP));
        let sink_address = format!("{}/{PREFIX_LEN}", dotted(SINK_IP));
        let steps: [(&str, Vec<&str>); 4] = [
            (
                &topology.gen.netns,
                vec!["addr", "add", &gen_address, "dev", NS_INTERFACE],
            ),
            (
                &topology.gen.netns,
                vec![
                    "route",
                    "add",
                    "default",
                    "via",
                    GATEWAY_IP,
                    "dev",
                    NS_INTERFACE,
                ],
            ),
            (
                &topology.sink.netns,
                vec!["addr", "add", &sink_address, "dev", NS_INTERFACE],
            ),
            (
                &topology.sink.netns,
                vec![
                    "route",
                    "add",
                    NETWORK_SUBNET,
                    "via",
                    uplink_ip,
                    "dev",
                    NS_INTERFACE,
                ],
            ),
        ];
        for (netns, args) in steps {
            let mut all = vec!["-n", netns];
            all.extend(args);
            super::cmd::run("ip", &all)?;
        }
        Ok(hosts)
    }

    /// Has the generator's kernel resolve the gateway by ARP (a short ping
    /// to it) and returns the MAC it learned.
    pub(super) fn resolve_gateway(&self) -> Result<[u8; 6]> {
        let netns = &self.topology.gen.netns;
        // A ping that goes unanswered still resolves the MAC; the neighbour
        // entry decides.
        let ping = super::cmd::run(
            "ip",
            &[
                "netns", "exec", netns, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1",
                "-w", "3", GATEWAY_IP,
            ],
        );
        let neighbours = super::cmd::run(
            "ip",
            &[
                "-n",
                netns,
                "neigh",
                "show",
                GATEWAY_IP,
                "dev",
                NS_INTERFACE,
            ],
        )?;
        match parse_lladdr(&neighbours) {
            Some(mac) => Ok(mac),
            None => bail!(
                "the gateway {GATEWAY_IP} did not answer ARP from {netns} (neighbour entry {:?}; ping: {})",
                neighbours.trim(),
                match ping {
                    Ok(_) => "answered".to_string(),
                    Err(error) => first_line(&format!("{error:#}")).to_string(),
                }
            ),
        }
    }
}

impl Drop for Hosts<'_> {
    fn drop(&mut self) {
        for station in [&self.topology.gen, &self.topology.sink] {
            if super::netns::netns_path(&station.netns).exists() {
                for what in ["route", "addr", "neigh"] {
                    super::cmd::cleanup(
                        "ip",
                        &["-n", &station.netns, what, "flush", "dev", NS_INTERFACE],
                    );
                }
            }
        }
    }
}

/// The MAC of an `ip neigh show` line (`10.83.1.1 lladdr 02:.. REACHABLE`).
fn parse_lladdr(text: &str) -> Option<[u8; 6]> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    let mut mac = [0u8; 6];
    let mut parts = words.next()?.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_mac_is_read_from_ip_neigh() {
        assert_eq!(
            parse_lladdr("10.83.1.1 lladdr 02:53:1f:37:4a:80 REACHABLE\n"),
            Some([0x02, 0x53, 0x1f, 0x37, 0x4a, 0x80])
        );
        assert_eq!(parse_lladdr("10.83.1.1 FAILED\n"), None);
        assert_eq!(parse_lladdr("10.83.1.1 INCOMPLETE\n"), None);
        assert_eq!(parse_lladdr(""), None);
        assert_eq!(parse_lladdr("x lladdr 02:53:1f:37:4a"), None);
    }

    #[test]
    fn the_router_stage_is_read_from_the_daemons_stats() {
        let mut run = RoutedRun::default();
        assert_eq!(run.router_counts(), None);
        run.daemon_stats = Some(serde_json::json!({"stages": [
            {"name": "l2", "frames_in": 9, "forwarded": 9},
            {"name": "router", "frames_in": 100, "forwarded": 97, "flooded": 1, "dropped": 2},
        ]}));
        assert_eq!(
            run.router_counts(),
            Some(RouterCounts {
                frames_in: 100,
                forwarded: 97,
                flooded: 1,
                dropped: 2
            })
        );
    }

    #[test]
    fn a_worker_off_its_core_marks_a_point_disturbed() {
        let text = include_str!("../../results/run-latest.json");
        let saved: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut point: Point =
            serde_json::from_value(saved["e2e"]["runs"][0]["sweeps"][0]["points"][0].clone())
                .unwrap();
        point.interference = None;
        point.probes.loss_pct = 20.0;
        // A quick point: 0.5 s of sending in 0.65 s; the worker busy while
        // sending and backing off in the drain reads 77 % over the wall.
        point.seconds = 0.5;
        point.wall_seconds = 0.65;
        point.daemon_cpu_pct = Some(77.0);
        let mut p = RoutedPoint {
            path: Path::Routed,
            frame_size: 64,
            flows: 1,
            saturation: point,
            latency: None,
        };
        assert!((p.daemon_pct_while_sending().unwrap() - 100.1).abs() < 0.1);
        assert!(!p.disturbed());
        p.saturation.daemon_cpu_pct = Some(30.0);
        assert!(p.disturbed(), "the worker had 39 % of its core");
        p.saturation.probes.loss_pct = 0.0;
        assert!(
            !p.disturbed(),
            "generator-bound: the worker had nothing more to do"
        );
    }

    #[test]
    fn templates_go_from_network_a_to_the_outside() {
        let frames = templates([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 64).unwrap();
        assert_eq!(frames.len(), 1);
        let parsed = etherparse::SlicedPacket::from_ethernet(&frames[0]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = parsed.net else {
            panic!("not IPv4");
        };
        assert_eq!(ip.header().source(), GEN_IP);
        assert_eq!(ip.header().destination(), SINK_IP);
        assert_eq!(frames[0][..6], [2, 0, 0, 0, 0, 2]);
        assert!(templates([0; 6], [0; 6], 20).is_err());
    }

    #[test]
    fn cpu_per_packet_comes_from_all_cores_over_delivered_frames() {
        let text = include_str!("../../results/run-latest.json");
        let saved: serde_json::Value = serde_json::from_str(text).unwrap();
        let point: Point =
            serde_json::from_value(saved["e2e"]["runs"][0]["sweeps"][0]["points"][0].clone())
                .unwrap();
        assert_eq!(point.cores_busy_pct, None, "old files have no figure");
        assert_eq!(cpu_ns_per_packet(&point), None);
        let mut point = point;
        point.cores_busy_pct = Some(150.0);
        point.interference = None;
        point.wall_seconds = 2.0;
        point.delivered_frames = 1_000_000;
        // 1.5 cores for 2 s over a million frames: 3 µs each.
        assert!((cpu_ns_per_packet(&point).unwrap() - 3000.0).abs() < 1e-6);
    }
}
