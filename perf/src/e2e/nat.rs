//! The `nat` scenario: a node's NAT, Switchyard's against the kernel's, on
//! the `routed` scenario's topology, generator, sink and cores (see
//! [`super::routed`]: the same addresses, hosts and rig, reused here).
//!
//! - **Masquerade** (container -> outside): UDP from the container
//!   `10.83.1.2` to the outside host `10.83.2.1`, leaving with the uplink's
//!   address `10.83.2.10`; 1 and 10,000 flows (port pairs), established by
//!   a warm-up before the timed points.
//! - **DNAT** (outside -> published port -> container): UDP from the outside
//!   host to `10.83.2.10:60000-60999` (1,000 published ports), forwarded to
//!   the container on the same port: 1 flow (one port) and 10,000 flows over
//!   the 1,000 ports. The rig runs the other way round: its generator in the
//!   outside's namespace, its sink in the container's.
//! - **New flows**: the masquerade path with a new flow in every frame (no
//!   pair repeats within a point), unpaced: new connections per second, into
//!   a connection table of the default size (262,144 on both, so a long
//!   point runs the table full and evicts the oldest unreplied flows, as a
//!   flood does).
//!
//! Per direction and flow count: one unpaced point (the saturation rate)
//! and one paced at [`LATENCY_LOAD_PCT`] of it for latency; 64-byte frames.
//!
//! The kernel: the `routed` scenario's [`KernelRouter`] (a bridge with the
//! gateway and IPv4 forwarding in a namespace of its own) with an nftables
//! ruleset, a Docker node's two NAT rules: masquerade of the network's
//! subnet out of the uplink, DNAT of the published range to the container
//! (see [`NFT_RULESET`]). Switchyard: the routed layout with `masquerade =
//! true` on network `a` and a `[[publish]]` table for the range.
//!
//! The container's sink never answers ARP (its AF_XDP socket takes every
//! frame), so the kernel router knows it as a static neighbour, and
//! Switchyard learns it from an ARP request the harness sends from the
//! container (for its gateway) before each DNAT point.

use super::dataplane::{Daemon, DataplaneKind, NatSettings};
use super::kernel_router::{KernelRouter, KernelRouterConfig};
use super::routed::{
    dotted, routed_settings, Hosts, RoutedTraffic, GATEWAY_IP, GEN_IP, LATENCY_LOAD_PCT,
    NETWORK_SUBNET, PREFIX_LEN, SINK_IP, UPLINK_ADDRESS,
};
use super::topology::{format_mac, Topology, NS_INTERFACE};
use super::traffic::{Rig, RigConfig, RunIds};
use super::{
    daemon_settings, describe, first_line, DataplaneRun, E2eOptions, Point, PointContext,
    DAEMON_START_S, POINT_OVERHEAD_S,
};
use crate::flows::{PortFlows, FRESH_PAIRS};
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Frame size of every point.
pub const FRAME_SIZE: usize = 64;

/// The node's uplink address (masquerade source, published ports' address).
pub const UPLINK_IP: [u8; 4] = [10, 83, 2, 10];

/// First published UDP port; [`PUBLISHED_PORTS`] from it, to the same
/// ports of the container.
pub const FIRST_PUBLISHED_PORT: u16 = 60_000;

/// Published ports.
pub const PUBLISHED_PORTS: usize = 1_000;

/// The kernel's rules: `{uplink}` and `{bridge}` are replaced by the router
/// namespace's interfaces. A Docker node's equivalent of `-t nat -A
/// POSTROUTING -s subnet ! -o docker0 -j MASQUERADE` and `-A DOCKER -p udp
/// --dport 60000:60999 -j DNAT --to-destination 10.83.1.2`.
pub const NFT_RULESET: &str = "table ip syp_nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"{uplink}\" ip daddr 10.83.2.10 udp dport 60000-60999 dnat to 10.83.1.2
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{uplink}\" ip saddr 10.83.1.0/24 masquerade
  }
}
";

/// Flow counts of the scenario by default.
pub fn default_flows() -> Vec<usize> {
    vec![1, 10_000]
}

/// Which NAT path a point measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatPath {
    /// Container -> outside, source translated, established flows.
    Masquerade,
    /// Outside -> published port -> container, established flows.
    Dnat,
    /// Container -> outside with a new flow in every frame.
    New,
}

impl fmt::Display for NatPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatPath::Masquerade => "masquerade",
            NatPath::Dnat => "dnat",
            NatPath::New => "new flows",
        })
    }
}

/// One path and flow count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NatPoint {
    /// The path.
    pub path: NatPath,
    /// UDP flows (port pairs); for [`NatPath::New`] the frames sent.
    pub flows: usize,
    /// Published ports the flows went to ([`NatPath::Dnat`]).
    pub ports: Option<usize>,
    /// The unpaced point.
    pub saturation: Point,
    /// The paced point at [`LATENCY_LOAD_PCT`] of it.
    pub latency: Option<Point>,
}

impl NatPoint {
    /// The routed scenario's view of the point (CPU per packet, disturbed
    /// and generator-bound checks are the same).
    pub fn as_routed(&self) -> super::routed::RoutedPoint {
        super::routed::RoutedPoint {
            path: super::routed::Path::Routed,
            frame_size: FRAME_SIZE,
            flows: self.flows,
            saturation: self.saturation.clone(),
            latency: self.latency.clone(),
        }
    }
}

/// The scenario's results on one dataplane.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NatRun {
    /// Points in the order measured.
    pub points: Vec<NatPoint>,
    /// The daemon's final per-port and per-stage counters (Switchyard).
    pub daemon_stats: Option<serde_json::Value>,
}

impl NatRun {
    /// The point of `path` with `flows`, if measured.
    pub fn point(&self, path: NatPath, flows: usize) -> Option<&NatPoint> {
        self.points
            .iter()
            .find(|p| p.path == path && (path == NatPath::New || p.flows == flows))
    }
}

/// About how long the scenario takes on one dataplane.
pub fn planned_seconds(options: &E2eOptions) -> f64 {
    let point = options.step_seconds + POINT_OVERHEAD_S;
    let warmups = 2.0 * (options.warmup_seconds + POINT_OVERHEAD_S);
    2.0 * 2.0 * options.nat_flows.len() as f64 * point + warmups + point + DAEMON_START_S + 1.0
}

/// Attaches `kind`'s NAT layout, measures into `run.nat` and detaches.
pub(super) fn measure_nat(
    run: &mut DataplaneRun,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) {
    let kind = run.dataplane;
    let mut result = NatRun::default();
    if let Err(error) = nat_phase(&mut result, run, topology, options, stop, progress, ids) {
        progress.log(&format!(
            "{kind} nat: {}",
            first_line(&format!("{error:#}"))
        ));
        run.errors.push(format!("nat: {error:#}"));
    }
    run.nat = Some(result);
}

/// The NAT dataplane while attached.
enum Translator {
    Kernel(#[allow(dead_code)] KernelRouter),
    Switchyard(Daemon),
}

fn nat_phase(
    result: &mut NatRun,
    run: &mut DataplaneRun,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) -> Result<()> {
    let kind = run.dataplane;
    let neighbours = vec![(dotted(SINK_IP), format_mac(&topology.sink.mac))];
    let last = FIRST_PUBLISHED_PORT + PUBLISHED_PORTS as u16 - 1;
    progress.step(&format!("{kind}: NAT layout"), DAEMON_START_S);
    let mut translator = match kind {
        DataplaneKind::Bridge => {
            let router = KernelRouter::start(
                topology,
                &KernelRouterConfig {
                    gateway: format!("{GATEWAY_IP}/{PREFIX_LEN}"),
                    uplink_address: UPLINK_ADDRESS.to_string(),
                    uplink_neighbours: neighbours,
                    network_neighbours: vec![(dotted(GEN_IP), format_mac(&topology.gen.mac))],
                    nft_ruleset: Some(NFT_RULESET.to_string()),
                    steer_to: options.bridge_rps.then(|| options.switch_cores.clone()),
                },
            )?;
            progress.log(&format!(
                "  {kind} nat: kernel router in {} with nftables masquerade of {NETWORK_SUBNET} \
                 and DNAT of udp {FIRST_PUBLISHED_PORT}-{last} to {}",
                router.netns,
                dotted(GEN_IP)
            ));
            Translator::Kernel(router)
        }
        DataplaneKind::Switchyard => {
            let mut settings = daemon_settings(options, "l2", &options.switch_idle);
            let mut routed = routed_settings(neighbours);
            routed.nat = Some(NatSettings {
                masquerade: true,
                publish_udp: vec![(FIRST_PUBLISHED_PORT, last, dotted(GEN_IP))],
                conntrack_size: None,
            });
            settings.routed = Some(routed);
            Translator::Switchyard(Daemon::start(
                topology,
                &options.switchyard_binary,
                &settings,
                stop,
            )?)
        }
        DataplaneKind::SwitchyardEmpty => bail!("the empty pipeline does not translate"),
    };
    let hosts = Hosts::configure(topology)?;
    let gateway = hosts.resolve_gateway()?;
    let daemon = match &translator {
        Translator::Switchyard(daemon) => Some(daemon),
        Translator::Kernel(_) => None,
    };
    // Container -> outside: the routed scenario's rig.
    let outbound = RigConfig {
        gen_netns: topology.gen.netns.clone(),
        sink_netns: topology.sink.netns.clone(),
        interface: NS_INTERFACE.to_string(),
        gen_core: Some(options.generator_core),
        sink_core: Some(options.sink_core),
    };
    let measured = with_rig(&outbound, topology, options, daemon, ids, stop, |ctx| {
        ctx.teach_sink_mac()?;
        let mut points = Vec::new();
        measure_path(
            ctx,
            kind,
            NatPath::Masquerade,
            gateway,
            progress,
            &mut points,
        )?;
        measure_new(ctx, kind, gateway, progress, &mut points)?;
        Ok(points)
    });
    topology.detach_xdp(&topology.sink);
    match measured {
        Ok(points) => result.points.extend(points),
        Err(error) => run.errors.push(format!("nat, masquerade: {error:#}")),
    }
    // Outside -> published ports -> container: the rig the other way round.
    if !stop.load(Ordering::Relaxed) {
        let inbound = RigConfig {
            gen_netns: topology.sink.netns.clone(),
            sink_netns: topology.gen.netns.clone(),
            ..outbound
        };
        let uplink_mac = topology.sink.host_mac;
        let measured = with_rig(&inbound, topology, options, daemon, ids, stop, |ctx| {
            let mut points = Vec::new();
            measure_path(ctx, kind, NatPath::Dnat, uplink_mac, progress, &mut points)?;
            Ok(points)
        });
        topology.detach_xdp(&topology.gen);
        match measured {
            Ok(points) => result.points.extend(points),
            Err(error) => run.errors.push(format!("nat, dnat: {error:#}")),
        }
    }
    drop(hosts);
    if let Translator::Switchyard(daemon) = &mut translator {
        let stats = daemon.stop()?;
        result.daemon_stats = Some(serde_json::json!({
            "ports": stats.get("ports"),
            "stages": stats.get("stages"),
            "uplink": stats.get("uplink"),
        }));
    }
    drop(translator);
    Ok(())
}

/// Opens a rig with `config` and runs `body` with a point context over it.
fn with_rig<T>(
    config: &RigConfig,
    topology: &Topology,
    options: &E2eOptions,
    daemon: Option<&Daemon>,
    ids: &mut RunIds,
    stop: &Arc<AtomicBool>,
    body: impl FnOnce(&mut PointContext<'_>) -> Result<T>,
) -> Result<T> {
    let mut rig = Rig::start(config, stop).context("traffic rig")?;
    let mut ctx = PointContext {
        rig: &mut rig,
        topology,
        options,
        daemon,
        bridge: None,
        ids,
        stop,
        mac_pairs: None,
        routed: None,
    };
    body(&mut ctx)
}

/// The frames of `path` with `flows` flows.
fn traffic(path: NatPath, dst_mac: [u8; 6], flows: usize) -> Result<RoutedTraffic> {
    Ok(match path {
        NatPath::Masquerade => RoutedTraffic::outbound(dst_mac, PortFlows::new(flows)?),
        NatPath::Dnat => RoutedTraffic {
            dst_mac,
            flows: PortFlows::with_destinations(flows, flows.min(PUBLISHED_PORTS))?,
            inbound: Some((SINK_IP, UPLINK_IP)),
        },
        // Half-way through the pairs: clear of the established points' flows.
        NatPath::New => RoutedTraffic::outbound(dst_mac, PortFlows::fresh(FRESH_PAIRS / 2)),
    })
}

/// An ARP request from the container for its gateway: Switchyard learns the
/// container's MAC from it (its sink never answers ARP itself).
fn arp_request(topology: &Topology) -> Vec<u8> {
    let mac = topology.gen.mac;
    let gateway: std::net::Ipv4Addr = GATEWAY_IP.parse().expect("a literal address");
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&GEN_IP);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&gateway.octets());
    frame.resize(60, 0);
    frame
}

/// Unpaced and latency points of `path` for every flow count, after a
/// warm-up that establishes the most flows.
fn measure_path(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    path: NatPath,
    dst_mac: [u8; 6],
    progress: &mut Progress,
    points: &mut Vec<NatPoint>,
) -> Result<()> {
    let options = ctx.options;
    let refresh = |ctx: &PointContext<'_>| -> Result<()> {
        if path == NatPath::Dnat {
            super::learn::send_few(
                &ctx.topology.gen.netns,
                NS_INTERFACE,
                vec![arp_request(ctx.topology)],
            )?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    };
    let most = options.nat_flows.iter().copied().max().unwrap_or(1);
    refresh(ctx)?;
    ctx.routed = Some(traffic(path, dst_mac, most)?);
    progress.step(
        &format!("{kind} {path}: warm-up"),
        options.warmup_seconds.max(0.3) + POINT_OVERHEAD_S,
    );
    ctx.measure(FRAME_SIZE, None, options.warmup_seconds.max(0.3))?;
    for &flows in &options.nat_flows {
        if ctx.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        refresh(ctx)?;
        ctx.routed = Some(traffic(path, dst_mac, flows)?);
        progress.step(
            &format!("{kind} {path}, {flows} flows: unpaced"),
            options.step_seconds + POINT_OVERHEAD_S,
        );
        let saturation = ctx.measure(FRAME_SIZE, None, options.step_seconds)?;
        progress.log(&format!(
            "{} [{path}, {flows} flows]",
            describe(kind, &saturation)
        ));
        let latency = if saturation.delivered_mpps > 0.0 {
            refresh(ctx)?;
            let rate = saturation.delivered_mpps * 1e6 * LATENCY_LOAD_PCT / 100.0;
            progress.step(
                &format!("{kind} {path}, {flows} flows: latency"),
                options.step_seconds + POINT_OVERHEAD_S,
            );
            let point = ctx.measure(FRAME_SIZE, Some(rate), options.step_seconds)?;
            progress.log(&format!(
                "{} [{path}, {flows} flows]",
                describe(kind, &point)
            ));
            Some(point)
        } else {
            None
        };
        points.push(NatPoint {
            path,
            flows,
            ports: (path == NatPath::Dnat).then_some(flows.min(PUBLISHED_PORTS)),
            saturation,
            latency,
        });
    }
    ctx.routed = None;
    Ok(())
}

/// The new-flow point: every frame a new masqueraded flow, unpaced.
fn measure_new(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    gateway: [u8; 6],
    progress: &mut Progress,
    points: &mut Vec<NatPoint>,
) -> Result<()> {
    let options = ctx.options;
    ctx.routed = Some(traffic(NatPath::New, gateway, 1)?);
    progress.step(
        &format!("{kind} new flows: unpaced"),
        options.step_seconds + POINT_OVERHEAD_S,
    );
    let saturation = ctx.measure(FRAME_SIZE, None, options.step_seconds)?;
    ctx.routed = None;
    progress.log(&format!("{} [new flows]", describe(kind, &saturation)));
    points.push(NatPoint {
        path: NatPath::New,
        flows: saturation.offered_frames as usize,
        ports: None,
        saturation,
        latency: None,
    });
    Ok(())
}

/// Switchyard's established-flow NAT rate over the kernel's that the issue
/// asks for.
pub const TARGET_VS_KERNEL: f64 = 3.0;

/// Switchyard's NAT rate over its own routed rate (same frames, flows and
/// run) that the issue asks for: at most 15 % lower.
pub const TARGET_VS_ROUTED: f64 = 0.85;

/// The scenario's table and targets, or an empty string when it did not run.
pub fn render(runs: &[DataplaneRun]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let nat_runs: Vec<(DataplaneKind, &NatRun)> = runs
        .iter()
        .filter_map(|r| r.nat.as_ref().map(|n| (r.dataplane, n)))
        .collect();
    if nat_runs.iter().all(|(_, n)| n.points.is_empty()) {
        return out;
    }
    let _ = writeln!(
        out,
        "\nNAT, {FRAME_SIZE} B: masquerade = container 10.83.1.2 -> outside 10.83.2.1 as 10.83.2.10; \
         dnat = outside -> 10.83.2.10:{FIRST_PUBLISHED_PORT}+ ({PUBLISHED_PORTS} published ports) -> container; \
         new flows = a new masqueraded flow per frame (sat = new flows/s); kernel = bridge + ip_forward + nftables; \
         CPU ns = all cores per delivered frame; latency at {LATENCY_LOAD_PCT:.0} % of sat"
    );
    let _ = writeln!(
        out,
        "{:<11} {:>6} {:<14} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "path",
        "flows",
        "dataplane",
        "sat Mpps",
        "loss %",
        "CPU ns",
        "daemon",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "others"
    );
    let us = |p: &NatPoint, f: fn(&crate::latency::Percentiles) -> f64| {
        p.latency
            .as_ref()
            .and_then(|l| l.probes.latency)
            .map_or("-".to_string(), |l| crate::latency::format_us(f(&l)))
    };
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let mut keys: Vec<(NatPath, usize)> = Vec::new();
    for (_, n) in &nat_runs {
        for p in &n.points {
            let key = (p.path, if p.path == NatPath::New { 0 } else { p.flows });
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    for &(path, flows) in &keys {
        for (kind, n) in &nat_runs {
            let Some(p) = n.point(path, flows) else {
                continue;
            };
            let r = p.as_routed();
            let note = if r.generator_bound() {
                "  generator-bound"
            } else if r.disturbed() {
                "  disturbed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{:<11} {:>6} {:<14} {:>9.3} {:>8.2} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7}{note}",
                path.to_string(),
                p.flows,
                label(*kind),
                p.saturation.delivered_mpps,
                p.saturation.probes.loss_pct,
                opt(r.cpu_ns_per_packet()),
                opt(r.daemon_ns_per_packet()),
                us(p, |l| l.p50_us),
                us(p, |l| l.p99_us),
                us(p, |l| l.p999_us),
                super::report::others(&p.saturation),
            );
        }
    }
    let find = |kind: DataplaneKind| {
        runs.iter()
            .find(|r| r.dataplane == kind)
            .map(|r| (r.nat.as_ref(), r.routed.as_ref()))
    };
    if let Some((Some(sy), sy_routed)) = find(DataplaneKind::Switchyard) {
        let kernel = find(DataplaneKind::Bridge).and_then(|(n, _)| n);
        let _ = writeln!(
            out,
            "NAT targets (switchyard >= {TARGET_VS_KERNEL}x the kernel; >= {TARGET_VS_ROUTED} of its own routed rate)"
        );
        for &(path, flows) in &keys {
            let Some(p) = sy.point(path, flows) else {
                continue;
            };
            let rate = p.saturation.delivered_mpps;
            let mut parts = Vec::new();
            if let Some(k) = kernel.and_then(|k| k.point(path, flows)) {
                if k.saturation.delivered_mpps > 0.0 {
                    let ratio = rate / k.saturation.delivered_mpps;
                    let target = if path == NatPath::New {
                        ""
                    } else if ratio >= TARGET_VS_KERNEL {
                        " met"
                    } else {
                        " not met"
                    };
                    parts.push(format!("vs kernel {ratio:.2}{target}"));
                }
            }
            let routed = sy_routed.and_then(|r| {
                r.point(
                    super::routed::Path::Routed,
                    FRAME_SIZE,
                    if path == NatPath::New { 1 } else { flows },
                )
            });
            if let (Some(r), false) = (routed, path == NatPath::New) {
                if r.saturation.delivered_mpps > 0.0 {
                    let ratio = rate / r.saturation.delivered_mpps;
                    let target = if ratio >= TARGET_VS_ROUTED {
                        "met"
                    } else {
                        "not met"
                    };
                    parts.push(format!("vs its routed {ratio:.2} {target}"));
                }
            }
            if !parts.is_empty() {
                let _ = writeln!(
                    out,
                    "  {path:<11} {:>6} flows: switchyard {rate:.3} Mpps: {}",
                    p.flows,
                    parts.join(", ")
                );
            }
        }
    }
    out
}

/// What a dataplane is called in the NAT table.
fn label(kind: DataplaneKind) -> &'static str {
    match kind {
        DataplaneKind::Bridge => "kernel nft",
        kind => kind.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arp_request_asks_for_the_gateway_from_the_container() {
        let topology = Topology::for_tests("4242");
        let frame = arp_request(&topology);
        assert_eq!(frame.len(), 60);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[28..32], &GEN_IP);
        assert_eq!(&frame[38..42], &[10, 83, 1, 1]);
        assert_eq!(&frame[6..12], &topology.gen.mac);
    }

    #[test]
    fn dnat_frames_go_from_the_outside_to_the_published_ports() {
        let t = traffic(NatPath::Dnat, [2; 6], 10_000).unwrap();
        assert_eq!(t.inbound, Some((SINK_IP, UPLINK_IP)));
        assert_eq!(
            t.flows.destination_ports(),
            (FIRST_PUBLISHED_PORT, PUBLISHED_PORTS)
        );
        let one = traffic(NatPath::Dnat, [2; 6], 1).unwrap();
        assert_eq!(one.flows.destination_ports().1, 1);
        assert!(NFT_RULESET.contains("60000-60999"));
        assert!(traffic(NatPath::Masquerade, [2; 6], 1)
            .unwrap()
            .inbound
            .is_none());
    }
}
