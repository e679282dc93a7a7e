//! Reading an end-to-end run: the tables printed on the terminal, the ratios
//! between dataplanes, and the SVG plots.

use super::dataplane::DataplaneKind;
use super::{DataplaneRun, E2eReport, LatencyPoint, Point, Sweep, NO_DROP_LOSS_PCT};
use crate::latency::format_us;
use crate::svg::{self, Panel, Series, PALETTE};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One dataplane's figure over another's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ratio {
    /// What is compared, e.g. "saturation Mpps, 64 B".
    pub metric: String,
    /// The dataplane on top.
    pub numerator: DataplaneKind,
    /// The dataplane below.
    pub denominator: DataplaneKind,
    /// numerator / denominator.
    pub value: f64,
    /// Whether a ratio above 1 means the numerator did better.
    pub higher_is_better: bool,
    /// Why the ratio may not mean what it seems (a generator-bound sweep,
    /// points disturbed by other processes).
    pub caveat: Option<String>,
}

fn noisy(p: &Point) -> bool {
    p.interference.is_some_and(|i| i.is_noisy())
}

/// What to keep in mind about the saturation ratio of two sweeps.
fn sweep_caveat(top: DataplaneKind, a: &Sweep, bottom: DataplaneKind, b: &Sweep) -> Option<String> {
    let mut caveats = Vec::new();
    match (a.generator_bound, b.generator_bound) {
        (true, true) => caveats.push(
            "both generator-bound: the generator, not either dataplane, set the rate".to_string(),
        ),
        (true, false) => caveats.push(format!(
            "{top} generator-bound: the generator's core set its rate"
        )),
        (false, true) => caveats.push(format!(
            "{bottom} generator-bound: the generator's core set its rate"
        )),
        (false, false) => {}
    }
    if a.points.iter().chain(&b.points).any(noisy) {
        caveats.push("noisy points".to_string());
    }
    (!caveats.is_empty()).then(|| caveats.join("; "))
}

/// The pairs a run compares: Switchyard against the kernel, and the full L2
/// pipeline against the empty one (what the pipeline costs).
const PAIRS: [(DataplaneKind, DataplaneKind); 2] = [
    (DataplaneKind::Switchyard, DataplaneKind::Bridge),
    (DataplaneKind::Switchyard, DataplaneKind::SwitchyardEmpty),
];

/// Ratios of saturation rates, latency percentiles and TCP rates between
/// the dataplane pairs compared (`PAIRS`) wherever both were measured.
pub fn ratios(runs: &[DataplaneRun]) -> Vec<Ratio> {
    let find = |kind: DataplaneKind| runs.iter().find(|r| r.dataplane == kind);
    let mut out = Vec::new();
    for (top, bottom) in PAIRS {
        let (Some(a), Some(b)) = (find(top), find(bottom)) else {
            continue;
        };
        let mut push =
            |metric: String, x: f64, y: f64, higher_is_better: bool, caveat: Option<String>| {
                if x.is_finite() && y.is_finite() && y > 0.0 {
                    out.push(Ratio {
                        metric,
                        numerator: top,
                        denominator: bottom,
                        value: x / y,
                        higher_is_better,
                        caveat,
                    });
                }
            };
        for sa in &a.sweeps {
            if let Some(sb) = b.sweep(sa.frame_size) {
                push(
                    format!("saturation Mpps, {} B", sa.frame_size),
                    sa.saturation_mpps,
                    sb.saturation_mpps,
                    true,
                    sweep_caveat(top, sa, bottom, sb),
                );
            }
        }
        for la in &a.latency {
            let matching = b.latency.iter().find(|lb| {
                lb.point.frame_size == la.point.frame_size && lb.load_pct == la.load_pct
            });
            if let (Some(lb), Some(x), Some(y)) = (
                matching,
                la.point.probes.latency,
                matching.and_then(|lb| lb.point.probes.latency),
            ) {
                let what = format!("{} B at {:.0} % load", lb.point.frame_size, lb.load_pct);
                let caveat =
                    (noisy(&la.point) || noisy(&lb.point)).then(|| "noisy points".to_string());
                push(
                    format!("p50 latency, {what}"),
                    x.p50_us,
                    y.p50_us,
                    false,
                    caveat.clone(),
                );
                push(
                    format!("p99 latency, {what}"),
                    x.p99_us,
                    y.p99_us,
                    false,
                    caveat,
                );
            }
        }
        for ma in &a.mac_scale {
            if let Some(mb) = b.mac_scale.iter().find(|m| m.pairs == ma.pairs) {
                let caveat = (noisy(&ma.saturation) || noisy(&mb.saturation))
                    .then(|| "noisy points".to_string());
                push(
                    format!(
                        "saturation Mpps, {} B, {} MAC pairs",
                        ma.frame_size, ma.pairs
                    ),
                    ma.saturation.delivered_mpps,
                    mb.saturation.delivered_mpps,
                    true,
                    caveat,
                );
            }
        }
        for ta in &a.tcp {
            if let Some(tb) = b.tcp.iter().find(|t| t.streams == ta.streams) {
                push(
                    format!("TCP Gbit/s, {} stream(s)", ta.streams),
                    ta.gbps,
                    tb.gbps,
                    true,
                    None,
                );
            }
        }
    }
    out.extend(super::routed_report::ratios(runs));
    out
}

fn target(p: &Point) -> String {
    p.target_mpps
        .map_or("max".to_string(), |t| format!("{t:.3}"))
}

fn cpu(p: &Point) -> String {
    p.daemon_cpu_pct
        .map_or("-".to_string(), |c| format!("{c:.0}"))
}

/// CPU others took during a point (foreign user time + steal), with a `!`
/// when it was enough to distort the point.
pub(super) fn others(p: &Point) -> String {
    match p.interference {
        Some(i) => format!(
            "{:.0}{}",
            i.foreign_pct + i.steal_pct,
            if i.is_noisy() { "!" } else { "" }
        ),
        None => "-".to_string(),
    }
}

/// The report as terminal tables.
pub fn render(report: &E2eReport) -> String {
    let mut out = String::new();
    let runs = &report.runs;
    if runs.iter().any(|r| !r.sweeps.is_empty()) {
        let _ = writeln!(
            out,
            "\nThroughput at saturation (highest delivered rate of the sweep; no-drop = highest offered rate with <= {NO_DROP_LOSS_PCT} % loss; \
             Mpps/core = delivered per busy switch core at that point)"
        );
        let _ = writeln!(
            out,
            "{:>5}  {:<17} {:>9} {:>7} {:>13} {:>14} {:>10}  note",
            "size", "dataplane", "sat Mpps", "Gbit/s", "no-drop Mpps", "loss at max %", "Mpps/core"
        );
        for run in runs {
            for s in &run.sweeps {
                let unpaced = s.points.iter().find(|p| p.target_mpps.is_none());
                let _ = writeln!(
                    out,
                    "{:>5}  {:<17} {:>9.3} {:>7.2} {:>13} {:>14} {:>10}  {}",
                    s.frame_size,
                    run.dataplane.name(),
                    s.saturation_mpps,
                    s.saturation_gbps,
                    s.no_drop_mpps
                        .map_or("-".to_string(), |m| format!("{m:.3}")),
                    unpaced.map_or("-".to_string(), |p| format!("{:.2}", p.probes.loss_pct)),
                    s.mpps_per_switch_core
                        .map_or("-".to_string(), |m| format!("{m:.3}")),
                    if s.generator_bound {
                        "generator-bound: the dataplane kept up with the generator's maximum"
                    } else {
                        ""
                    }
                );
            }
        }
        let _ = writeln!(
            out,
            "\nSweep (Mpps offered -> delivered; latency one-way; % of one core: CPU = daemon, busy = switch cores, others = other processes + steal)"
        );
        let _ = writeln!(
            out,
            "{:>5}  {:<17} {:>7} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>5} {:>5} {:>7} {:>9}",
            "size",
            "dataplane",
            "target",
            "offered",
            "delivered",
            "Gbit/s",
            "loss %",
            "p50 µs",
            "p99 µs",
            "CPU",
            "busy",
            "others",
            "sink drop"
        );
        for run in runs {
            for s in &run.sweeps {
                for p in &s.points {
                    let l = p.probes.latency;
                    let _ = writeln!(
                        out,
                        "{:>5}  {:<17} {:>7} {:>8.3} {:>9.3} {:>7.2} {:>7.2} {:>8} {:>8} {:>5} {:>5} {:>7} {:>9}",
                        s.frame_size,
                        run.dataplane.name(),
                        target(p),
                        p.offered_mpps,
                        p.delivered_mpps,
                        p.delivered_gbps,
                        p.probes.loss_pct,
                        l.map_or("-".to_string(), |l| format_us(l.p50_us)),
                        l.map_or("-".to_string(), |l| format_us(l.p99_us)),
                        cpu(p),
                        p.switch_cores_busy_pct
                            .map_or("-".to_string(), |b| format!("{b:.0}")),
                        others(p),
                        p.sink_socket.rx_dropped + p.sink_socket.rx_ring_full,
                    );
                }
            }
        }
    }
    if !report.core_stalls.is_empty() {
        let _ = writeln!(
            out,
            "\nCore stalls (a thread spinning on each core before the scenarios: time the core ran something else; \
             frames in flight between cores wait these out)"
        );
        for stalls in &report.core_stalls {
            let _ = writeln!(out, "  {}", crate::stalls::describe(stalls));
        }
    }
    if runs.iter().any(|r| !r.latency.is_empty()) {
        let _ = writeln!(
            out,
            "\nLatency (one-way, µs, generator to sink; load = share of that dataplane's saturation rate)"
        );
        let _ = writeln!(
            out,
            "{:>5}  {:<17} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7}",
            "size",
            "dataplane",
            "load",
            "Mpps",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "loss %",
            "reordered",
            "others"
        );
        for run in runs {
            for lp in &run.latency {
                let _ = writeln!(out, "{}", latency_row(run.dataplane, lp));
            }
        }
    }
    out.push_str(&super::mac_report::render(runs));
    out.push_str(&super::routed_report::render(runs));
    out.push_str(&super::nat::render(runs));
    if runs.iter().any(|r| !r.tcp.is_empty()) {
        let _ = writeln!(
            out,
            "\nTCP (iperf3, MTU 1500, client and server on the traffic cores)"
        );
        let _ = writeln!(
            out,
            "{:<17} {:>7} {:>8} {:>11}",
            "dataplane", "streams", "Gbit/s", "retransmits"
        );
        for run in runs {
            for t in &run.tcp {
                let _ = writeln!(
                    out,
                    "{:<17} {:>7} {:>8.2} {:>11}",
                    run.dataplane.name(),
                    t.streams,
                    t.gbps,
                    t.retransmits.map_or("?".to_string(), |r| r.to_string())
                );
            }
        }
    }
    if !report.idle.is_empty() {
        let _ = writeln!(
            out,
            "\nIdle daemon CPU (no traffic; utime+stime from /proc/<pid>/stat)"
        );
        let _ = writeln!(
            out,
            "{:<10} {:>16} {:>7}  note",
            "idle mode", "% of one core", "others"
        );
        for idle in &report.idle {
            let note = match (&idle.error, idle.mode.as_str(), idle.cpu_pct) {
                (Some(error), _, _) => first_line(error).to_string(),
                (None, "busy-poll", Some(c)) if c < 50.0 => {
                    "busy-poll did not keep a core busy: not honoured by this daemon?".to_string()
                }
                _ => String::new(),
            };
            let others = idle.interference.map_or("-".to_string(), |i| {
                format!(
                    "{:.0}{}",
                    i.foreign_pct + i.steal_pct,
                    if i.is_noisy() { "!" } else { "" }
                )
            });
            let _ = writeln!(
                out,
                "{:<10} {:>16} {:>7}  {note}",
                idle.mode,
                idle.cpu_pct.map_or("-".to_string(), |c| format!("{c:.1}")),
                others
            );
        }
    }
    if !report.ratios.is_empty() {
        let _ = writeln!(out, "\nRatios");
        for r in &report.ratios {
            let _ = writeln!(
                out,
                "  {:<38} {}/{}: {:.2}{}",
                r.metric,
                r.numerator.name(),
                r.denominator.name(),
                r.value,
                match (r.higher_is_better, &r.caveat) {
                    (true, None) => String::new(),
                    (true, Some(c)) => format!("  ({c})"),
                    (false, None) => "  (lower is better)".to_string(),
                    (false, Some(c)) => format!("  (lower is better; {c})"),
                }
            );
        }
    }
    let mut problems = Vec::new();
    let points = || {
        runs.iter().flat_map(|r| {
            r.sweeps
                .iter()
                .flat_map(|s| s.points.iter())
                .chain(r.latency.iter().map(|l| &l.point))
                .chain(
                    r.routed
                        .iter()
                        .flat_map(|x| &x.points)
                        .flat_map(|p| std::iter::once(&p.saturation).chain(&p.latency)),
                )
        })
    };
    let noisy = points()
        .filter(|p| p.interference.is_some_and(|i| i.is_noisy()))
        .count();
    if noisy > 0 {
        problems.push(format!(
            "{noisy} of {} points had other processes or the hypervisor take more than {} % of a core \
             (marked !): the Switchyard worker is a user thread and competes with them, the bridge \
             works in softirq and does not; measure on a quiet machine",
            points().count(),
            crate::cpu::NOISY_PCT
        ));
    }
    for run in runs {
        for note in &run.notes {
            problems.push(format!("{}: {}", run.dataplane.name(), note));
        }
        for error in &run.errors {
            problems.push(format!("{}: {}", run.dataplane.name(), first_line(error)));
        }
        if run.sink_mac_learned == Some(false) {
            problems.push(format!(
                "{}: the sink's MAC was not learned (traffic was flooded)",
                run.dataplane.name()
            ));
        }
        let unpinned = run
            .sweeps
            .iter()
            .flat_map(|s| &s.points)
            .any(|p| !p.generator_pinned);
        if unpinned {
            problems.push(format!(
                "{}: the generator could not be pinned",
                run.dataplane.name()
            ));
        }
        if run.sink_fifo == Some(false) {
            problems.push(format!(
                "{}: the sink did not get SCHED_FIFO; latency includes waiting for the generator's time slice",
                run.dataplane.name()
            ));
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "\nProblems and notes");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    let o = &report.options;
    let bridge = if o.bridge_rps {
        format!("bridge steered to cores {:?} by RPS", o.switch_cores)
    } else {
        format!("bridge in softirq on core {}", o.generator_core)
    };
    let napi = if o.switch_napi_cores.is_empty() {
        format!(
            "switchyard's port NAPI in softirq on the generator's core {}",
            o.generator_core
        )
    } else {
        format!(
            "switchyard's port NAPI threaded on cores {:?}",
            o.switch_napi_cores
        )
    };
    let _ = writeln!(
        out,
        "\ngenerator (AF_XDP) on core {}, sink (AF_XDP) on core {}, switchyard workers on {:?} (idle = {:?}), {bridge}, {napi}; \
         {} s per sweep point, {} s per latency point; sizes are Ethernet frames without FCS, Gbit/s counts frame bytes",
        o.generator_core,
        o.sink_core,
        o.switch_cores,
        o.switch_idle,
        o.step_seconds,
        o.latency_seconds
    );
    out
}

fn latency_row(kind: DataplaneKind, lp: &LatencyPoint) -> String {
    let p = &lp.point;
    let cells: Vec<String> = match p.probes.latency {
        Some(l) => l.labelled().iter().map(|(_, v)| format_us(*v)).collect(),
        None => vec!["-".to_string(); 5],
    };
    format!(
        "{:>5}  {:<17} {:>4.0}% {:>7.3} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7.2} {:>9} {:>7}",
        p.frame_size,
        kind.name(),
        lp.load_pct,
        p.delivered_mpps,
        cells[0],
        cells[1],
        cells[2],
        cells[3],
        cells[4],
        p.probes.loss_pct,
        p.probes.reordered,
        others(p)
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn color(kind: DataplaneKind) -> String {
    let i = DataplaneKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0);
    PALETTE[i % PALETTE.len()].to_string()
}

/// Throughput vs offered load, one panel per frame size.
pub fn throughput_svg(report: &E2eReport) -> Option<String> {
    let mut sizes: Vec<usize> = report
        .runs
        .iter()
        .flat_map(|r| r.sweeps.iter().map(|s| s.frame_size))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return None;
    }
    let panels: Vec<Panel> = sizes
        .iter()
        .map(|&size| Panel {
            title: format!("{size} B frames"),
            x_label: "offered Mpps".to_string(),
            y_label: "delivered Mpps".to_string(),
            diagonal: true,
            series: report
                .runs
                .iter()
                .filter_map(|run| {
                    let sweep = run.sweep(size)?;
                    let mark = if sweep.points.iter().any(noisy) {
                        " (noisy points)"
                    } else {
                        ""
                    };
                    Some(Series {
                        name: format!("{}{mark}", run.dataplane.name()),
                        color: color(run.dataplane),
                        dashed: run.dataplane == DataplaneKind::SwitchyardEmpty,
                        points: sweep
                            .points
                            .iter()
                            .map(|p| (p.offered_mpps, p.delivered_mpps))
                            .collect(),
                    })
                })
                .collect(),
            ..Panel::default()
        })
        .collect();
    Some(svg::figure(
        &format!("Delivered vs offered load ({})", machine_line(report)),
        &panels,
        panels.len().min(3),
    ))
}

/// Latency percentiles, one panel per (frame size, load).
pub fn latency_svg(report: &E2eReport) -> Option<String> {
    let mut keys: Vec<(usize, u64)> = report
        .runs
        .iter()
        .flat_map(|r| {
            r.latency
                .iter()
                .map(|l| (l.point.frame_size, (l.load_pct * 100.0) as u64))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return None;
    }
    let categories: Vec<String> = ["p50", "p90", "p99", "p99.9", "max"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let panels: Vec<Panel> = keys
        .iter()
        .map(|&(size, load)| Panel {
            title: format!("{size} B at {} % of saturation", load as f64 / 100.0),
            x_label: "percentile".to_string(),
            y_label: "one-way latency, µs (log)".to_string(),
            log_y: true,
            x_categories: Some(categories.clone()),
            series: report
                .runs
                .iter()
                .filter_map(|run| {
                    let lp = run.latency.iter().find(|l| {
                        l.point.frame_size == size && (l.load_pct * 100.0) as u64 == load
                    })?;
                    let l = lp.point.probes.latency?;
                    let mark = if noisy(&lp.point) { ", noisy" } else { "" };
                    Some(Series {
                        name: format!(
                            "{} ({:.3} Mpps{mark})",
                            run.dataplane.name(),
                            lp.point.delivered_mpps
                        ),
                        color: color(run.dataplane),
                        dashed: run.dataplane == DataplaneKind::SwitchyardEmpty,
                        points: l
                            .labelled()
                            .iter()
                            .enumerate()
                            .map(|(i, (_, v))| (i as f64, *v))
                            .collect(),
                    })
                })
                .collect(),
            ..Panel::default()
        })
        .collect();
    Some(svg::figure(
        &format!("One-way latency ({})", machine_line(report)),
        &panels,
        panels.len().min(3),
    ))
}

fn machine_line(report: &E2eReport) -> String {
    let m = &report.machine;
    format!("{} CPUs, {}, kernel {}", m.nproc, m.cpu_model, m.kernel)
}

/// Writes `<prefix>-throughput.svg` and `<prefix>-latency.svg` into `dir`
/// (each only when there is something to plot) and returns their paths.
pub fn write_plots(report: &E2eReport, dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, svg) in [
        ("throughput", throughput_svg(report)),
        ("latency", latency_svg(report)),
    ] {
        let Some(svg) = svg else { continue };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{prefix}-{name}.svg"));
        let tmp = path.with_extension("svg.tmp");
        std::fs::write(&tmp, svg).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::mac_scale::{Learning, MacScale};
    use crate::e2e::routed::{Path, RoutedPoint, RoutedRun};
    use crate::e2e::tcp::TcpResult;
    use crate::e2e::{summarize_sweep, E2eOptions, IdleRun, Scenario};
    use crate::latency::ProbeStats;
    use crate::machine::Machine;
    use crate::payload::Probe;
    use crate::xsk::SocketStats;

    fn point(size: usize, target: Option<f64>, offered: f64, delivered: f64, p50_ns: u64) -> Point {
        let mut stats = ProbeStats::new(1, 1000);
        let received = (delivered * 100.0) as u32;
        for seq in 0..received {
            stats.record(
                Some(Probe {
                    run: 1,
                    seq,
                    tx_ns: 0,
                }),
                p50_ns,
            );
        }
        let sent = (offered * 100.0) as u64;
        Point {
            frame_size: size,
            target_mpps: target,
            seconds: 1.0,
            offered_frames: sent,
            offered_mpps: offered,
            delivered_frames: u64::from(received),
            delivered_mpps: delivered,
            delivered_gbps: delivered * size as f64 * 8.0 / 1000.0,
            probes: stats.summary(sent),
            sink_socket: SocketStats::default(),
            generator_skipped: 0,
            generator_kicks: 0,
            generator_unfinished: 0,
            generator_pinned: true,
            generator_max_tx_pending: 0,
            sink_max_rx_backlog: 0,
            interference: None,
            switch_cores_busy_pct: Some(50.0),
            cores_busy_pct: Some(150.0),
            wall_seconds: 1.0,
            daemon_cpu_pct: Some(99.0),
        }
    }

    /// The routed scenario on `kind`: L2 at `sat`, routed at `routed` x it.
    fn routed_run(kind: DataplaneKind, sat: f64, routed: f64) -> Option<RoutedRun> {
        if !crate::e2e::routed::routes(kind) {
            return None;
        }
        let mut points = Vec::new();
        for (path, rate) in [(Path::L2, sat), (Path::Routed, sat * routed)] {
            for flows in [1, 10_000] {
                points.push(RoutedPoint {
                    path,
                    frame_size: 64,
                    flows,
                    saturation: point(64, None, 1.0, rate, 10_000),
                    latency: (path == Path::Routed)
                        .then(|| point(64, Some(rate / 2.0), rate / 2.0, rate / 2.0, 10_000)),
                });
            }
        }
        Some(RoutedRun {
            gateway_mac: Some("02:53:59:11:00:01".into()),
            points,
            daemon_stats: None,
        })
    }

    fn run(kind: DataplaneKind, sat: f64, p50_ns: u64, gbps: f64) -> DataplaneRun {
        let points = vec![
            point(64, None, 1.0, sat, p50_ns),
            point(64, Some(0.5), 0.5, 0.5, p50_ns),
            point(64, Some(0.25), 0.25, 0.25, p50_ns),
        ];
        DataplaneRun {
            dataplane: kind,
            sweeps: vec![summarize_sweep(64, points)],
            latency: vec![LatencyPoint {
                load_pct: 50.0,
                saturation_mpps: sat,
                point: point(64, Some(sat / 2.0), sat / 2.0, sat / 2.0, p50_ns),
            }],
            mac_scale: [1, 1000]
                .into_iter()
                .map(|pairs| MacScale {
                    pairs,
                    frame_size: 64,
                    learning: Learning {
                        stations_needed: 2 * pairs,
                        taught: pairs,
                        stations_known: (kind != DataplaneKind::SwitchyardEmpty)
                            .then_some(2 * pairs + 2),
                        table_full: (kind == DataplaneKind::Switchyard).then_some(0),
                        table_capacity: None,
                        passes: 1,
                    },
                    // A little slower with more pairs.
                    saturation: point(64, None, 1.0, sat * (1.0 - pairs as f64 * 1e-4), p50_ns),
                    latency: Some(point(64, Some(sat / 2.0), sat / 2.0, sat / 2.0, p50_ns)),
                })
                .collect(),
            // The kernel loses 10 % routing, Switchyard 5 %.
            routed: routed_run(
                kind,
                sat,
                if kind == DataplaneKind::Bridge {
                    0.9
                } else {
                    0.95
                },
            ),
            nat: None,
            tcp: vec![TcpResult {
                streams: 1,
                seconds: 3.0,
                gbps,
                sender_gbps: gbps,
                retransmits: Some(3),
            }],
            sink_mac_learned: Some(true),
            sink_xdp_mode: None,
            sink_fifo: Some(true),
            errors: Vec::new(),
            notes: Vec::new(),
            daemon_stats: None,
        }
    }

    fn report() -> E2eReport {
        let runs = vec![
            run(DataplaneKind::Bridge, 0.6, 20_000, 10.0),
            run(DataplaneKind::Switchyard, 0.9, 10_000, 2.5),
            run(DataplaneKind::SwitchyardEmpty, 1.0, 9_000, 2.6),
        ];
        E2eReport {
            core_stalls: Vec::new(),
            unix_time: 0,
            machine: Machine {
                nproc: 2,
                cpu_model: "Test CPU".into(),
                kernel: "6.18".into(),
                load_1m: 0.0,
            },
            options: E2eOptions {
                scenarios: Scenario::ALL.to_vec(),
                dataplanes: DataplaneKind::ALL.to_vec(),
                sizes: vec![64],
                latency_sizes: vec![64],
                latency_loads_pct: vec![50.0],
                sweep_fractions: vec![0.25, 0.5],
                step_seconds: 1.0,
                latency_seconds: 1.0,
                warmup_seconds: 0.0,
                tcp_seconds: 3.0,
                tcp_streams: vec![1],
                idle_seconds: 1.0,
                idle_modes: vec!["backoff".into(), "busy-poll".into()],
                switch_idle: "backoff".into(),
                generator_core: 0,
                sink_core: 0,
                switch_cores: vec![1],
                bridge_rps: true,
                switch_napi_cores: Vec::new(),
                flows: 64,
                mac_pairs: vec![1, 1000],
                mac_pairs_size: 64,
                routed_sizes: Vec::new(),
                routed_flows: Vec::new(),
                nat_flows: Vec::new(),
                switchyard_binary: "/x".into(),
            },
            ratios: ratios(&runs),
            runs,
            idle: vec![
                IdleRun {
                    mode: "backoff".into(),
                    seconds: 1.0,
                    cpu_pct: Some(1.5),
                    workers: None,
                    interference: None,
                    error: None,
                },
                IdleRun {
                    mode: "busy-poll".into(),
                    seconds: 1.0,
                    cpu_pct: Some(2.0),
                    workers: None,
                    interference: None,
                    error: None,
                },
            ],
            seconds: 10.0,
            interrupted: false,
        }
    }

    #[test]
    fn sweeps_find_saturation_and_no_drop_rates() {
        let r = run(DataplaneKind::Bridge, 0.6, 1000, 1.0);
        let s = &r.sweeps[0];
        assert_eq!(s.saturation_mpps, 0.6);
        assert_eq!(s.no_drop_mpps, Some(0.5), "the unpaced point lost 40 %");
        assert!(!s.generator_bound);
        let offered: Vec<f64> = s.points.iter().map(|p| p.offered_mpps).collect();
        assert_eq!(offered, vec![0.25, 0.5, 1.0], "sorted by offered load");
    }

    #[test]
    fn ratios_compare_switchyard_with_the_kernel_and_the_empty_pipeline() {
        let r = report();
        let find = |metric: &str, den: DataplaneKind| {
            r.ratios
                .iter()
                .find(|x| x.metric == metric && x.denominator == den)
                .map(|x| x.value)
        };
        let sat = find("saturation Mpps, 64 B", DataplaneKind::Bridge).unwrap();
        assert!((sat - 1.5).abs() < 1e-9);
        let empty = find("saturation Mpps, 64 B", DataplaneKind::SwitchyardEmpty).unwrap();
        assert!((empty - 0.9).abs() < 1e-9);
        let p50 = find("p50 latency, 64 B at 50 % load", DataplaneKind::Bridge).unwrap();
        assert!((p50 - 0.5).abs() < 0.01, "{p50}");
        let tcp = find("TCP Gbit/s, 1 stream(s)", DataplaneKind::Bridge).unwrap();
        assert!((tcp - 0.25).abs() < 1e-9);
    }

    #[test]
    fn ratio_caveats_name_generator_bound_and_noisy_sweeps() {
        let mut quiet = run(DataplaneKind::Bridge, 1.0, 1000, 1.0);
        let bound = quiet.sweeps[0].clone();
        assert!(bound.generator_bound, "nothing lost at the unpaced point");
        let limited = run(DataplaneKind::Switchyard, 0.6, 1000, 1.0).sweeps[0].clone();
        let (b, s) = (DataplaneKind::Bridge, DataplaneKind::Switchyard);
        assert_eq!(sweep_caveat(s, &limited, b, &limited), None);
        assert_eq!(
            sweep_caveat(s, &limited, b, &bound).unwrap(),
            "bridge generator-bound: the generator's core set its rate"
        );
        assert!(sweep_caveat(s, &bound, b, &bound)
            .unwrap()
            .starts_with("both generator-bound"));
        quiet.sweeps[0].points[0].interference = Some(crate::cpu::Interference {
            foreign_pct: 30.0,
            steal_pct: 0.0,
        });
        assert!(sweep_caveat(s, &limited, b, &quiet.sweeps[0])
            .unwrap()
            .ends_with("noisy points"));
    }

    #[test]
    fn tables_show_every_scenario() {
        let text = render(&report());
        for needle in [
            "Throughput at saturation",
            "switchyard-empty",
            "Latency (one-way",
            "TCP (iperf3",
            "Idle daemon CPU",
            "not honoured",
            "switchyard/bridge: 1.50",
            "(lower is better)",
            "L2 with N MAC pairs",
            "switchyard/switchyard-empty: 0.90",
            "saturation Mpps, 64 B, 1000 MAC pairs",
            "2002 / 2000",
            "- (no learning)",
            "Routed: container 10.83.1.2",
            "kernel router  routed",
            "routed Mpps, 64 B, 10000 flows",
            // 0.9 * 0.95 / (0.6 * 0.9): 1.58x the kernel, 0.95 of its L2.
            "vs kernel router 1.58 (met), vs its l2 0.95 (met)",
            "routed / l2 Mpps, 64 B, 1 flows        bridge/bridge: 0.90",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // A latency row: 10 µs p50 for switchyard at 50 % load.
        assert!(
            text.lines()
                .any(|l| l.contains("switchyard ") && l.contains("50%") && l.contains("10.0")),
            "{text}"
        );
    }

    #[test]
    fn plots_have_a_line_per_dataplane() {
        let r = report();
        let legend = |svg: &str| {
            let texts = crate::svg::texts(svg);
            DataplaneKind::ALL
                .iter()
                .filter(|k| {
                    texts
                        .iter()
                        .any(|t| t.starts_with(&format!("{} ", k.name())) || t == k.name())
                })
                .count()
        };
        let t = throughput_svg(&r).unwrap();
        assert_eq!(legend(&t), 3);
        assert!(t.contains("64 B frames"));
        let l = latency_svg(&r).unwrap();
        assert_eq!(legend(&l), 3);
        assert!(l.contains("64 B at 50 % of saturation"));
    }
}
