//! `switchyard-perf e2e`: forwarding between two veths, measured for each
//! dataplane in turn on one topology with the same generator and cores, so the
//! Linux bridge baseline and Switchyard differ only in the dataplane.
//!
//! Per dataplane and frame size: teach the dataplane the sink's MAC (so the
//! measured traffic is known unicast, not flooding), warm up, read the sink's
//! kernel rx counters, send for the measuring time, let in-flight frames land,
//! read the counters again. Offered = frames `sendmmsg` took; delivered = the
//! sink veth's rx_packets difference.

pub mod cmd;
pub mod dataplane;
pub mod generator;
pub mod netns;
pub mod topology;

use crate::frames::{self, MAX_FRAME_LEN, MIN_FRAME_LEN};
use crate::machine::Machine;
use anyhow::{bail, Result};
use dataplane::{Bridge, Daemon, DataplaneKind};
use generator::GeneratorConfig;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use topology::{Topology, NS_INTERFACE};

/// How the end-to-end run is set up.
#[derive(Clone, Debug, Serialize)]
pub struct E2eOptions {
    /// Measuring time per (dataplane, size) point.
    pub seconds: f64,
    /// Untimed sending before each point (fills caches, wakes the poller).
    pub warmup_seconds: f64,
    /// Frame sizes in bytes (Ethernet without FCS).
    pub sizes: Vec<usize>,
    /// Dataplanes, measured in this order.
    pub dataplanes: Vec<DataplaneKind>,
    /// Core the generator is pinned to.
    pub generator_core: usize,
    /// Core the Switchyard worker is pinned to.
    pub switch_core: usize,
    /// Steer the bridge's forwarding to `switch_core` with RPS, so both
    /// dataplanes use the same two cores (see [`Bridge::attach`]).
    pub bridge_rps: bool,
    /// UDP flows (source ports) the generator cycles through.
    pub flows: usize,
    /// The daemon binary used for the switchyard dataplane.
    pub switchyard_binary: PathBuf,
}

/// One measured point.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Dataplane measured.
    pub dataplane: DataplaneKind,
    /// Frame size in bytes (Ethernet without FCS).
    pub frame_size: usize,
    /// Sending time (from the first to the end of the last send call).
    pub seconds: f64,
    /// Frames the generator's `sendmmsg` calls took.
    pub offered_frames: u64,
    /// Frames the sink veth received (kernel rx_packets difference).
    pub delivered_frames: u64,
    /// Bytes the sink veth received.
    pub delivered_bytes: u64,
    /// Offered rate.
    pub offered_mpps: f64,
    /// Delivered rate.
    pub delivered_mpps: f64,
    /// Delivered throughput in Gbit/s of frame bytes (no preamble, gap or FCS).
    pub delivered_gbps: f64,
    /// Share of offered frames not delivered.
    pub loss_pct: f64,
    /// Send calls that found the device busy.
    pub generator_busy_calls: u64,
    /// Whether the generator thread was pinned to its core.
    pub generator_pinned: bool,
}

/// Everything measured for one dataplane.
#[derive(Clone, Debug, Serialize)]
pub struct DataplaneRun {
    /// The dataplane.
    pub dataplane: DataplaneKind,
    /// Points measured (possibly fewer than asked when `error` is set).
    pub points: Vec<Point>,
    /// Whether the dataplane had learned the sink's MAC on the sink port
    /// (`None`: could not be checked).
    pub sink_mac_learned: Option<bool>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// The daemon's final stats (ports, workers), for the switchyard dataplane.
    pub daemon_stats: Option<serde_json::Value>,
}

/// Switchyard's delivered rate over the bridge's, per frame size.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// Frame size in bytes.
    pub frame_size: usize,
    /// switchyard delivered Mpps / bridge delivered Mpps.
    pub switchyard_over_bridge: f64,
}

/// The `e2e` result document.
#[derive(Clone, Debug, Serialize)]
pub struct E2eReport {
    /// Always "e2e".
    pub subcommand: &'static str,
    /// When the run started (Unix seconds).
    pub unix_time: u64,
    /// Where it ran.
    pub machine: Machine,
    /// How it was set up.
    pub options: E2eOptions,
    /// Results per dataplane.
    pub runs: Vec<DataplaneRun>,
    /// switchyard/bridge per size, where both were measured.
    pub ratios: Vec<Ratio>,
    /// True when Ctrl-C (or SIGTERM) cut the run short.
    pub interrupted: bool,
}

impl E2eReport {
    /// True when some dataplane stopped with an error.
    pub fn has_errors(&self) -> bool {
        self.runs.iter().any(|r| r.error.is_some())
    }

    /// Prints the results table and the ratios.
    pub fn print(&self) {
        println!();
        println!(
            "{:>6}  {:<11} {:>12} {:>14} {:>16} {:>8}",
            "size", "dataplane", "offered Mpps", "delivered Mpps", "delivered Gbit/s", "loss %"
        );
        for run in &self.runs {
            for p in &run.points {
                println!(
                    "{:>6}  {:<11} {:>12.3} {:>14.3} {:>16.3} {:>8.2}",
                    p.frame_size,
                    p.dataplane.to_string(),
                    p.offered_mpps,
                    p.delivered_mpps,
                    p.delivered_gbps,
                    p.loss_pct
                );
            }
            if let Some(error) = &run.error {
                println!(
                    "{:>6}  {:<11} error: {}",
                    "-",
                    run.dataplane.to_string(),
                    first_line(error)
                );
            }
            if run.sink_mac_learned == Some(false) {
                println!(
                    "{:>6}  {:<11} warning: the sink MAC was not learned (traffic was flooded)",
                    "-",
                    run.dataplane.to_string()
                );
            }
        }
        for ratio in &self.ratios {
            println!(
                "ratio switchyard/bridge at {} B (delivered Mpps): {:.2}",
                ratio.frame_size, ratio.switchyard_over_bridge
            );
        }
        let o = &self.options;
        let bridge_core = if o.bridge_rps {
            format!("bridge steered to core {} by RPS", o.switch_core)
        } else {
            format!("bridge in softirq on core {}", o.generator_core)
        };
        println!(
            "generator on core {}, switchyard worker on core {}, {bridge_core}; {} s per point",
            o.generator_core, o.switch_core, o.seconds
        );
        println!("sizes are Ethernet frames without FCS; Gbit/s counts frame bytes only");
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Runs every dataplane over every size on one topology and returns the report
/// (errors of one dataplane are recorded in it, not returned). Returns an error
/// only when the topology itself cannot be built.
pub fn run(options: E2eOptions, stop: Arc<AtomicBool>) -> Result<E2eReport> {
    for &size in &options.sizes {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&size) {
            bail!("frame size {size} is outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN} (Ethernet without FCS)");
        }
    }
    if !(options.seconds > 0.0 && options.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    if !is_root() {
        bail!("e2e creates namespaces, veths and bridges and opens raw sockets: run it as root");
    }
    let machine = Machine::detect();
    machine.print();
    topology::remove_stale();
    let topology = Topology::create()?;
    eprintln!(
        "topology: {} ({}) -> {} | {} <- {} ({})",
        topology.gen.netns,
        NS_INTERFACE,
        topology.gen.host_interface,
        topology.sink.host_interface,
        topology.sink.netns,
        NS_INTERFACE
    );

    let mut runs = Vec::new();
    for &kind in &options.dataplanes {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        eprintln!("dataplane {kind}:");
        runs.push(run_dataplane(kind, &topology, &options, &stop));
    }
    drop(topology);
    let ratios = ratios(&runs);
    Ok(E2eReport {
        subcommand: "e2e",
        unix_time: crate::report::unix_time(),
        machine,
        options,
        runs,
        ratios,
        interrupted: stop.load(Ordering::Relaxed),
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem: the effective one decides.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The dataplane while attached.
enum Attached {
    Bridge(Bridge),
    Switchyard(Daemon),
}

fn run_dataplane(
    kind: DataplaneKind,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
) -> DataplaneRun {
    let mut run = DataplaneRun {
        dataplane: kind,
        points: Vec::new(),
        sink_mac_learned: None,
        error: None,
        daemon_stats: None,
    };
    let attached = match kind {
        DataplaneKind::Bridge => {
            let steer_to = options.bridge_rps.then_some(options.switch_core);
            Bridge::attach(topology, steer_to).map(Attached::Bridge)
        }
        DataplaneKind::Switchyard => Daemon::start(
            topology,
            &options.switchyard_binary,
            options.switch_core,
            stop,
        )
        .map(Attached::Switchyard),
    };
    let mut attached = match attached {
        Ok(attached) => attached,
        Err(error) => {
            eprintln!("  cannot attach: {error:#}");
            run.error = Some(format!("{error:#}"));
            return run;
        }
    };
    for &size in &options.sizes {
        if stop.load(Ordering::Relaxed) {
            run.error = Some("interrupted".to_string());
            break;
        }
        match measure(kind, topology, size, options, stop) {
            Ok(point) => {
                eprintln!(
                    "  {size:>5} B: offered {:.3} Mpps, delivered {:.3} Mpps ({:.2} % loss)",
                    point.offered_mpps, point.delivered_mpps, point.loss_pct
                );
                run.points.push(point);
            }
            Err(error) => {
                eprintln!("  {size} B failed: {error:#}");
                run.error = Some(format!("{size} B: {error:#}"));
                break;
            }
        }
        if let Attached::Bridge(bridge) = &attached {
            let learned = bridge
                .has_learned(&topology.sink.mac, &topology.sink.host_interface)
                .ok();
            run.sink_mac_learned = learned.map(|l| l && run.sink_mac_learned.unwrap_or(true));
        }
    }
    if let Attached::Switchyard(daemon) = &mut attached {
        match daemon.stop() {
            Ok(stats) => {
                run.sink_mac_learned = Some(fdb_has(&stats, &topology.sink.mac, "sink"));
                run.daemon_stats = Some(serde_json::json!({
                    "ports": stats.get("ports"),
                    "workers": stats.get("workers"),
                    "mac_table": stats.get("mac_table"),
                }));
            }
            Err(error) => {
                eprintln!("  stopping switchyard: {error:#}");
                run.error.get_or_insert(format!("{error:#}"));
            }
        }
    }
    drop(attached);
    run
}

/// True when a switchyard stats document lists `mac` on port `port` in its FDB.
fn fdb_has(stats: &serde_json::Value, mac: &[u8; 6], port: &str) -> bool {
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    stats
        .get("fdb")
        .and_then(|f| f.as_array())
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e.get("mac")
                    .and_then(|m| m.as_str())
                    .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
                    && e.get("port").and_then(|p| p.as_str()) == Some(port)
            })
        })
}

/// Frames per second no veth pair on any machine reaches: bounds the
/// generator's loop in count as well as in time.
const MAX_RATE_PPS: f64 = 50e6;

fn measure(
    kind: DataplaneKind,
    topology: &Topology,
    size: usize,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
) -> Result<Point> {
    // Teach the dataplane where the sink lives: frames from the sink to the
    // generator (flooded or forwarded, either way learned).
    let learn = frames::udp_flows(topology.sink.mac, topology.gen.mac, MIN_FRAME_LEN, 3)?;
    generator::send_few(&topology.sink.netns, NS_INTERFACE, learn)?;
    std::thread::sleep(Duration::from_millis(20));

    let traffic = frames::udp_flows(
        topology.gen.mac,
        topology.sink.mac,
        size,
        options.flows.max(1),
    )?;
    let config = |seconds: f64| GeneratorConfig {
        netns: topology.gen.netns.clone(),
        interface: NS_INTERFACE.to_string(),
        core: Some(options.generator_core),
        frames: traffic.clone(),
        duration: Duration::from_secs_f64(seconds),
        max_frames: (seconds * MAX_RATE_PPS) as u64 + 1,
    };
    if options.warmup_seconds > 0.0 {
        generator::run(config(options.warmup_seconds), Arc::clone(stop))?;
    }
    std::thread::sleep(Duration::from_millis(100));
    let before = topology.sink_counters()?;
    let sent = generator::run(config(options.seconds), Arc::clone(stop))?;
    // Let frames still in rings and backlogs land before reading again.
    std::thread::sleep(Duration::from_millis(250));
    let after = topology.sink_counters()?;
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }

    let seconds = sent.elapsed.as_secs_f64().max(1e-9);
    let delivered = after.packets.saturating_sub(before.packets);
    let delivered_bytes = after.bytes.saturating_sub(before.bytes);
    let loss_pct = if sent.frames == 0 {
        100.0
    } else {
        (sent.frames.saturating_sub(delivered) as f64 / sent.frames as f64 * 100.0).max(0.0)
    };
    Ok(Point {
        dataplane: kind,
        frame_size: size,
        seconds,
        offered_frames: sent.frames,
        delivered_frames: delivered,
        delivered_bytes,
        offered_mpps: sent.frames as f64 / seconds / 1e6,
        delivered_mpps: delivered as f64 / seconds / 1e6,
        delivered_gbps: delivered_bytes as f64 * 8.0 / seconds / 1e9,
        loss_pct,
        generator_busy_calls: sent.busy_calls,
        generator_pinned: sent.pinned,
    })
}

fn ratios(runs: &[DataplaneRun]) -> Vec<Ratio> {
    let find = |kind: DataplaneKind| runs.iter().find(|r| r.dataplane == kind);
    let (Some(bridge), Some(switchyard)) =
        (find(DataplaneKind::Bridge), find(DataplaneKind::Switchyard))
    else {
        return Vec::new();
    };
    bridge
        .points
        .iter()
        .filter_map(|b| {
            let s = switchyard
                .points
                .iter()
                .find(|s| s.frame_size == b.frame_size)?;
            (b.delivered_mpps > 0.0).then(|| Ratio {
                frame_size: b.frame_size,
                switchyard_over_bridge: s.delivered_mpps / b.delivered_mpps,
            })
        })
        .collect()
}
