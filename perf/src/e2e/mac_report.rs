//! The `macs` scenario's table: per MAC pair count and dataplane, the
//! saturation rate, how it compares with the same dataplane at the fewest
//! pairs (flat = the table's cost does not grow), latency at half load and
//! what was learned. Kept apart from [`super::report`], which it feeds.

use super::mac_scale::{MacScale, LATENCY_LOAD_PCT};
use super::DataplaneRun;
use crate::latency::format_us;
use std::fmt::Write;

/// The table, or an empty string when the scenario did not run.
pub fn render(runs: &[DataplaneRun]) -> String {
    let mut out = String::new();
    if runs.iter().all(|r| r.mac_scale.is_empty()) {
        return out;
    }
    let size = runs
        .iter()
        .flat_map(|r| &r.mac_scale)
        .map(|m| m.frame_size)
        .next()
        .unwrap_or(64);
    let _ = writeln!(
        out,
        "\nL2 with N MAC pairs ({size} B; every station learned first; sat = unpaced delivered rate; \
         vs fewest = sat / the same dataplane's sat at the fewest pairs; latency at {LATENCY_LOAD_PCT:.0} % of sat; \
         learned = stations known / needed)"
    );
    let _ = writeln!(
        out,
        "{:>7}  {:<17} {:>9} {:>11} {:>14} {:>8} {:>8} {:>8} {:>8}  learned",
        "pairs",
        "dataplane",
        "sat Mpps",
        "vs fewest",
        "loss at max %",
        "Mpps",
        "p50 µs",
        "p99 µs",
        "p99.9"
    );
    for run in runs {
        let fewest = run.mac_scale.iter().min_by_key(|m| m.pairs);
        for m in &run.mac_scale {
            let vs =
                fewest
                    .filter(|f| f.saturation.delivered_mpps > 0.0)
                    .map_or("-".to_string(), |f| {
                        format!(
                            "{:.2}",
                            m.saturation.delivered_mpps / f.saturation.delivered_mpps
                        )
                    });
            let _ = writeln!(out, "{}", row(run, m, &vs));
        }
    }
    out
}

fn row(run: &DataplaneRun, m: &MacScale, vs: &str) -> String {
    let latency = m.latency.as_ref();
    let pct = |f: fn(&crate::latency::Percentiles) -> f64| {
        latency
            .and_then(|p| p.probes.latency)
            .map_or("-".to_string(), |l| format_us(f(&l)))
    };
    let l = &m.learning;
    let learned = match l.stations_known {
        Some(known) => format!(
            "{known} / {}{}{}",
            l.stations_needed,
            if l.passes > 1 { " (2nd pass)" } else { "" },
            if l.complete() {
                ""
            } else {
                " (incomplete: some flooded)"
            }
        ),
        None => "- (no learning)".to_string(),
    };
    format!(
        "{:>7}  {:<17} {:>9.3} {:>11} {:>14.2} {:>8} {:>8} {:>8} {:>8}  {learned}",
        m.pairs,
        run.dataplane.name(),
        m.saturation.delivered_mpps,
        vs,
        m.saturation.probes.loss_pct,
        latency.map_or("-".to_string(), |p| format!("{:.3}", p.delivered_mpps)),
        pct(|l| l.p50_us),
        pct(|l| l.p99_us),
        pct(|l| l.p999_us),
    )
}
