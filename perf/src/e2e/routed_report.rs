//! The `routed` scenario's table and ratios: per frame size and flow count,
//! each dataplane's switched (L2 reference) and routed saturation rate, CPU
//! per packet, latency at half load, and the two targets: Switchyard routed
//! at least [`TARGET_VS_KERNEL`] times the kernel's routed rate, and at most
//! 15 % below its own L2 rate ([`TARGET_VS_L2`]). Kept apart from
//! [`super::report`], which it feeds.

use super::dataplane::DataplaneKind;
use super::report::Ratio;
use super::routed::{Path, RoutedPoint, RoutedRun, LATENCY_LOAD_PCT, WORKER_DISTURBED_PCT};
use super::DataplaneRun;
use crate::latency::format_us;
use std::fmt::Write;

/// Switchyard's routed rate over the kernel's that the issue asks for.
pub const TARGET_VS_KERNEL: f64 = 1.5;

/// Switchyard's routed rate over its own L2 rate that the issue asks for
/// (routing at most 15 % below switching).
pub const TARGET_VS_L2: f64 = 0.85;

/// What a dataplane is called on a path: the bridge's routed equivalent is
/// the kernel router (bridge + IPv4 forwarding).
pub fn label(kind: DataplaneKind, path: Path) -> &'static str {
    match (kind, path) {
        (DataplaneKind::Bridge, Path::Routed) => "kernel router",
        (kind, _) => kind.name(),
    }
}

fn routed_runs(runs: &[DataplaneRun]) -> impl Iterator<Item = (DataplaneKind, &RoutedRun)> {
    runs.iter()
        .filter_map(|r| r.routed.as_ref().map(|routed| (r.dataplane, routed)))
}

/// The (size, flows) keys measured, in order.
fn keys(runs: &[DataplaneRun]) -> Vec<(usize, usize)> {
    let mut keys: Vec<(usize, usize)> = routed_runs(runs)
        .flat_map(|(_, r)| r.points.iter().map(|p| (p.frame_size, p.flows)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

/// The table, or an empty string when the scenario did not run.
pub fn render(runs: &[DataplaneRun]) -> String {
    let mut out = String::new();
    let keys = keys(runs);
    if keys.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nRouted: container 10.83.1.2 -> gateway 10.83.1.1 -> uplink 10.83.2.10 -> outside 10.83.2.1 \
         (sat = unpaced delivered rate; l2 = the same frames switched to the sink's MAC; \
         CPU ns/pkt = busy time of all cores, generator and sink included, per delivered frame; \
         daemon = switchyard's own; vs l2 = routed sat / the same dataplane's l2 sat; latency at {LATENCY_LOAD_PCT:.0} % of sat; \
         others = other processes + steal at sat, % of a core, ! = noisy)"
    );
    let _ = writeln!(
        out,
        "{:>5} {:>6}  {:<14} {:<6} {:>9} {:>7} {:>14} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>7}",
        "size",
        "flows",
        "dataplane",
        "path",
        "sat Mpps",
        "Gbit/s",
        "loss at max %",
        "CPU ns",
        "daemon",
        "vs l2",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "others"
    );
    for &(size, flows) in &keys {
        for (kind, routed) in routed_runs(runs) {
            for path in [Path::L2, Path::Routed] {
                if let Some(p) = routed.point(path, size, flows) {
                    let l2 = routed.point(Path::L2, size, flows);
                    let _ = writeln!(out, "{}", row(kind, p, l2));
                }
            }
        }
    }
    let lines = targets(runs, &keys);
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "Routed targets (switchyard routed >= {TARGET_VS_KERNEL}x the kernel router; \
             switchyard routed >= {TARGET_VS_L2} of its l2)"
        );
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    for (kind, routed) in routed_runs(runs) {
        if let Some(mac) = &routed.gateway_mac {
            let _ = writeln!(
                out,
                "  {}: the generator's kernel resolved the gateway to {mac}",
                label(kind, Path::Routed)
            );
        }
        if let Some(c) = routed.router_counts() {
            let _ = writeln!(
                out,
                "  {}: router stage over the routed run: {} frames in, {} forwarded, {} flooded (next hop's port unknown), {} dropped",
                kind.name(),
                c.frames_in,
                c.forwarded,
                c.flooded,
                c.dropped
            );
        }
    }
    out
}

fn row(kind: DataplaneKind, p: &RoutedPoint, l2: Option<&RoutedPoint>) -> String {
    let s = &p.saturation;
    let vs = match (p.path, l2) {
        (Path::Routed, Some(l2)) if l2.saturation.delivered_mpps > 0.0 => {
            format!("{:.2}", s.delivered_mpps / l2.saturation.delivered_mpps)
        }
        _ => "-".to_string(),
    };
    let latency = p.latency.as_ref().and_then(|l| l.probes.latency);
    let pct = |f: fn(&crate::latency::Percentiles) -> f64| {
        latency.map_or("-".to_string(), |l| format_us(f(&l)))
    };
    let note = match (p.generator_bound(), p.daemon_pct_while_sending()) {
        (true, _) => "  generator-bound".to_string(),
        (false, Some(cpu)) if cpu < WORKER_DISTURBED_PCT => {
            format!("  the daemon had {cpu:.0} % of a core while sending: disturbed")
        }
        _ => String::new(),
    };
    format!(
        "{:>5} {:>6}  {:<14} {:<6} {:>9.3} {:>7.2} {:>14.2} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>7}{note}",
        p.frame_size,
        p.flows,
        label(kind, p.path),
        p.path.to_string(),
        s.delivered_mpps,
        s.delivered_gbps,
        s.probes.loss_pct,
        optional(p.cpu_ns_per_packet(), 0),
        optional(p.daemon_ns_per_packet(), 0),
        vs,
        pct(|l| l.p50_us),
        pct(|l| l.p99_us),
        pct(|l| l.p999_us),
        super::report::others(s),
    )
}

/// One line per (size, flows) with both targets read off the run.
fn targets(runs: &[DataplaneRun], keys: &[(usize, usize)]) -> Vec<String> {
    let find = |kind: DataplaneKind| {
        runs.iter()
            .find(|r| r.dataplane == kind)
            .and_then(|r| r.routed.as_ref())
    };
    let (Some(sy), kernel) = (find(DataplaneKind::Switchyard), find(DataplaneKind::Bridge)) else {
        return Vec::new();
    };
    let verdict = |value: f64, target: f64| {
        if value >= target {
            "met"
        } else {
            "not met"
        }
    };
    keys.iter()
        .filter_map(|&(size, flows)| {
            let routed = sy.point(Path::Routed, size, flows)?;
            let rate = routed.saturation.delivered_mpps;
            let mut parts = Vec::new();
            if let Some(k) = kernel.and_then(|k| k.point(Path::Routed, size, flows)) {
                let kernel_rate = k.saturation.delivered_mpps;
                if kernel_rate > 0.0 {
                    let r = rate / kernel_rate;
                    let bound = match (k.generator_bound(), routed.generator_bound()) {
                        (true, true) => "; both generator-bound: the generator set both rates",
                        (true, false) => "; the kernel was generator-bound",
                        (false, true) => "; switchyard was generator-bound",
                        (false, false) => "",
                    };
                    parts.push(format!(
                        "vs kernel router {r:.2} ({}{bound})",
                        verdict(r, TARGET_VS_KERNEL)
                    ));
                }
            }
            if let Some(l2) = sy.point(Path::L2, size, flows) {
                let l2_rate = l2.saturation.delivered_mpps;
                if l2_rate > 0.0 {
                    let r = rate / l2_rate;
                    parts.push(format!(
                        "vs its l2 {r:.2} ({}{})",
                        verdict(r, TARGET_VS_L2),
                        if routed.generator_bound() && !l2.generator_bound() {
                            "; routed generator-bound: the generator set its rate"
                        } else {
                            ""
                        }
                    ));
                }
            }
            let disturbed = [
                Some(routed),
                kernel.and_then(|k| k.point(Path::Routed, size, flows)),
            ]
            .into_iter()
            .chain([sy.point(Path::L2, size, flows)])
            .flatten()
            .any(RoutedPoint::disturbed);
            (!parts.is_empty()).then(|| {
                format!(
                    "{size:>5} B, {flows:>6} flows: switchyard routed {rate:.3} Mpps: {}{}",
                    parts.join(", "),
                    if disturbed {
                        " [disturbed points: measure again on a quiet machine]"
                    } else {
                        ""
                    }
                )
            })
        })
        .collect()
}

/// The scenario's ratios for the report's list: Switchyard routed over the
/// kernel router, and each dataplane's routed rate over its own L2 rate.
pub fn ratios(runs: &[DataplaneRun]) -> Vec<Ratio> {
    let find = |kind: DataplaneKind| {
        runs.iter()
            .find(|r| r.dataplane == kind)
            .and_then(|r| r.routed.as_ref())
    };
    let mut out = Vec::new();
    let noisy = |p: &RoutedPoint| p.disturbed();
    for (size, flows) in keys(runs) {
        let sy = find(DataplaneKind::Switchyard).and_then(|r| r.point(Path::Routed, size, flows));
        let kernel = find(DataplaneKind::Bridge).and_then(|r| r.point(Path::Routed, size, flows));
        if let (Some(a), Some(b)) = (sy, kernel) {
            if b.saturation.delivered_mpps > 0.0 {
                let mut caveats = Vec::new();
                if b.generator_bound() {
                    caveats
                        .push("kernel router generator-bound: the generator's core set its rate");
                }
                if noisy(a) || noisy(b) {
                    caveats.push("disturbed points");
                }
                out.push(Ratio {
                    metric: format!("routed Mpps, {size} B, {flows} flows"),
                    numerator: DataplaneKind::Switchyard,
                    denominator: DataplaneKind::Bridge,
                    value: a.saturation.delivered_mpps / b.saturation.delivered_mpps,
                    higher_is_better: true,
                    caveat: (!caveats.is_empty()).then(|| caveats.join("; ")),
                });
            }
        }
        for kind in [DataplaneKind::Switchyard, DataplaneKind::Bridge] {
            let Some(run) = find(kind) else { continue };
            let (Some(a), Some(b)) = (
                run.point(Path::Routed, size, flows),
                run.point(Path::L2, size, flows),
            ) else {
                continue;
            };
            if b.saturation.delivered_mpps > 0.0 {
                out.push(Ratio {
                    metric: format!("routed / l2 Mpps, {size} B, {flows} flows"),
                    numerator: kind,
                    denominator: kind,
                    value: a.saturation.delivered_mpps / b.saturation.delivered_mpps,
                    higher_is_better: true,
                    caveat: (noisy(a) || noisy(b)).then(|| "disturbed points".to_string()),
                });
            }
        }
    }
    out
}
