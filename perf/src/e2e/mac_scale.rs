//! The `macs` scenario: the L2 path with N source/destination MAC pairs.
//!
//! Per N, on each dataplane: the sink's port is taught N stations (frames
//! from the sink namespace with source MACs `sink-station 0..N`, sent
//! through the AF_PACKET learning sender), a paced warm-up from the
//! generator with source MACs `gen-station 0..N` teaches the generator's
//! side, the learning is checked (the daemon's MAC table entries over its
//! control socket; the bridge's FDB), then one unpaced point gives the
//! saturation rate and one paced point at [`LATENCY_LOAD_PCT`] of it the
//! latency. Every frame is learned unicast, as real traffic is; none is
//! flooded unless the check says a station was missed.
//!
//! The daemon's MAC table is sized for the largest N (two stations per pair,
//! at most half full: see [`MacPairs::mac_table_size`]), so at 100,000 pairs
//! it is 262,144 entries, not the default 65,536: this scenario measures
//! lookups in a big table of learned stations, not a node whose table is
//! full (that node floods, and `table_full` would count it).

use super::dataplane::DataplaneKind;
use super::topology::NS_INTERFACE;
use super::{describe, learn, Point, PointContext, POINT_OVERHEAD_S};
use crate::frames::{self, MIN_FRAME_LEN};
use crate::macs::{station_mac, MacPairs, Side};
use crate::progress::Progress;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Load of the latency point, % of that N's saturation rate.
pub const LATENCY_LOAD_PCT: f64 = 50.0;

/// The warm-up's rate: paced below every dataplane's saturation (the
/// bridge's is ~0.4 Mpps here), so no frame, and no station with it, is
/// lost before it is learned (an unpaced warm-up lost up to 90 % on a
/// loaded VM and left thousands of the 200,000 stations unlearned).
const WARMUP_PPS: f64 = 200_000.0;

/// Default frame size of the scenario (and of old result files without one).
pub fn default_frame_size() -> usize {
    64
}

/// Warm-up time for `pairs`: the profile's, or long enough to send every
/// generator station twice at [`WARMUP_PPS`].
pub fn warmup_seconds(pairs: usize, profile_warmup: f64) -> f64 {
    profile_warmup.max(2.0 * pairs as f64 / WARMUP_PPS)
}

/// Teaching time for `pairs` stations (bursts of 64 with a 0.1 ms pause).
fn teaching_seconds(pairs: usize) -> f64 {
    0.05 + pairs as f64 * 4e-6
}

/// About how long one N takes, for the progress estimate.
pub fn planned_seconds(pairs: usize, warmup: f64, step: f64) -> f64 {
    teaching_seconds(pairs) + warmup_seconds(pairs, warmup) + 2.0 * step + 3.0 * POINT_OVERHEAD_S
}

/// What the dataplane knew after teaching and warm-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Learning {
    /// Stations the pairs need learned: two per pair.
    pub stations_needed: usize,
    /// Learning frames the sink side sent (one per sink station per pass).
    pub taught: usize,
    /// Teaching passes run (a second one when the first missed stations).
    #[serde(default)]
    pub passes: usize,
    /// Stations the dataplane knew: the daemon's MAC table entries (which
    /// also count the topology's own two MACs), or the bridge's dynamic
    /// FDB entries of the scenario's stations; `None` when not checked
    /// (the empty pipeline learns nothing).
    pub stations_known: Option<usize>,
    /// The daemon's `table_full` counter over this N: source MACs it could
    /// not learn (their frames were flooded).
    pub table_full: Option<u64>,
    /// The daemon's MAC table capacity.
    pub table_capacity: Option<usize>,
}

impl Learning {
    /// True when every station was learned (or nothing was checked).
    pub fn complete(&self) -> bool {
        self.stations_known
            .is_none_or(|known| known >= self.stations_needed)
            && self.table_full.is_none_or(|full| full == 0)
    }
}

/// One N on one dataplane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MacScale {
    /// Source/destination MAC pairs.
    pub pairs: usize,
    /// Frame size.
    pub frame_size: usize,
    /// What the dataplane had learned before the points.
    pub learning: Learning,
    /// The unpaced point: the saturation rate at this N.
    pub saturation: Point,
    /// The paced point at [`LATENCY_LOAD_PCT`] of it, for latency.
    pub latency: Option<Point>,
}

/// The daemon's MAC table (entries, capacity, table_full) from a stats document.
fn mac_table(stats: &serde_json::Value) -> Option<(usize, usize, u64)> {
    let table = stats.get("mac_table")?;
    Some((
        table.get("entries")?.as_u64()? as usize,
        table.get("capacity")?.as_u64()? as usize,
        table.get("table_full")?.as_u64()?,
    ))
}

/// `02:5a:0` as `bridge fdb show` prints it: the prefix of every station
/// of [`station_mac`], both sides.
fn station_prefix() -> String {
    let mac = station_mac(Side::Generator, 0);
    format!("{:02x}:{:02x}:0", mac[0], mac[1])
}

/// Teaching passes at most: a second pass re-teaches when the first left
/// stations unlearned (a frame lost while a vCPU stalled); learning is
/// idempotent, so it only fills the gaps.
const TEACHING_PASSES: usize = 2;

/// Measures `count` pairs on the dataplane `ctx` drives.
pub(super) fn measure(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    count: usize,
    progress: &mut Progress,
) -> Result<MacScale> {
    let pairs = MacPairs::new(count)?;
    ctx.mac_pairs = Some(pairs);
    let result = learn_all(ctx, kind, pairs, progress).and_then(|learning| {
        let (saturation, latency) = points(ctx, kind, count, progress)?;
        Ok(MacScale {
            pairs: count,
            frame_size: ctx.options.mac_pairs_size,
            learning,
            saturation,
            latency: Some(latency),
        })
    });
    ctx.mac_pairs = None;
    result
}

/// Teaches the sink's stations (AF_PACKET from the sink namespace) and the
/// generator's (an unpaced warm-up with the pairs' MACs), then checks what
/// the dataplane learned; a second pass when the first missed any.
fn learn_all(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    pairs: MacPairs,
    progress: &mut Progress,
) -> Result<Learning> {
    let count = pairs.count();
    let before = match ctx.daemon {
        Some(daemon) if kind == DataplaneKind::Switchyard => Some(daemon.live_stats()?),
        _ => None,
    };
    let template = frames::udp_flows(
        station_mac(Side::Sink, 0),
        ctx.topology.gen.mac,
        MIN_FRAME_LEN,
        1,
    )?
    .remove(0);
    let warmup = warmup_seconds(count, ctx.options.warmup_seconds);
    let mut learning = Learning {
        stations_needed: 2 * count,
        ..Learning::default()
    };
    for pass in 1..=TEACHING_PASSES {
        progress.step(
            &format!("{kind} {count} MAC pairs: teaching the sink's stations (pass {pass})"),
            teaching_seconds(count),
        );
        learning.taught += learn::send_many(
            &ctx.topology.sink.netns,
            NS_INTERFACE,
            template.clone(),
            count,
            |i| station_mac(Side::Sink, i),
        )?;
        std::thread::sleep(Duration::from_millis(20));
        progress.step(
            &format!("{kind} {count} MAC pairs: warm-up, learning the generator's stations (pass {pass})"),
            warmup + POINT_OVERHEAD_S,
        );
        ctx.measure(ctx.options.mac_pairs_size, Some(WARMUP_PPS), warmup)?;
        check(ctx, &mut learning, before.as_ref())?;
        learning.passes = pass;
        if learning.complete() {
            break;
        }
        progress.log(&format!(
            "  {kind} {count} MAC pairs, pass {pass}: {} of {} stations learned (table_full {}){}",
            learning.stations_known.unwrap_or(0),
            learning.stations_needed,
            learning.table_full.unwrap_or(0),
            if pass < TEACHING_PASSES {
                ": teaching again"
            } else {
                ": the rest is flooded"
            }
        ));
    }
    Ok(learning)
}

/// Reads what the dataplane knows into `learning`.
fn check(
    ctx: &PointContext<'_>,
    learning: &mut Learning,
    before: Option<&serde_json::Value>,
) -> Result<()> {
    if let (Some(daemon), Some(before)) = (ctx.daemon, before) {
        let after = daemon.live_stats()?;
        if let (Some((entries, capacity, full)), Some((_, _, full_before))) =
            (mac_table(&after), mac_table(before))
        {
            learning.stations_known = Some(entries);
            learning.table_capacity = Some(capacity);
            learning.table_full = Some(full.saturating_sub(full_before));
        }
    }
    if let Some(bridge) = ctx.bridge {
        learning.stations_known = Some(bridge.count_learned(&station_prefix())?);
    }
    Ok(())
}

/// The unpaced point and the latency point at [`LATENCY_LOAD_PCT`] of it.
fn points(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    count: usize,
    progress: &mut Progress,
) -> Result<(Point, Point)> {
    let size = ctx.options.mac_pairs_size;
    let step = ctx.options.step_seconds;
    progress.step(
        &format!("{kind} {count} MAC pairs: unpaced"),
        step + POINT_OVERHEAD_S,
    );
    let saturation = ctx.measure(size, None, step)?;
    progress.log(&format!(
        "{} [{count} MAC pairs]",
        describe(kind, &saturation)
    ));
    if saturation.delivered_mpps <= 0.0 {
        bail!("nothing was delivered at full load with {count} MAC pairs");
    }
    let rate = saturation.delivered_mpps * 1e6 * LATENCY_LOAD_PCT / 100.0;
    progress.step(
        &format!(
            "{kind} {count} MAC pairs: latency at {LATENCY_LOAD_PCT:.0} % ({:.3} Mpps)",
            rate / 1e6
        ),
        step + POINT_OVERHEAD_S,
    );
    let latency = ctx.measure(size, Some(rate), step)?;
    progress.log(&format!("{} [{count} MAC pairs]", describe(kind, &latency)));
    Ok((saturation, latency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warm_up_is_long_enough_to_learn_every_station() {
        assert_eq!(warmup_seconds(1, 0.3), 0.3);
        assert_eq!(warmup_seconds(1000, 0.1), 0.1);
        // 100,000 stations, twice, at 0.2 Mpps: 1 s.
        assert!((warmup_seconds(100_000, 0.1) - 1.0).abs() < 1e-9);
        let plan = planned_seconds(100_000, 0.3, 2.0);
        assert!(plan > 5.0 && plan < 7.0, "{plan}");
    }

    #[test]
    fn learning_is_complete_only_when_every_station_is_known() {
        let mut l = Learning {
            stations_needed: 2000,
            taught: 1000,
            ..Learning::default()
        };
        assert!(l.complete(), "nothing checked (empty pipeline)");
        l.stations_known = Some(2002);
        l.table_full = Some(0);
        assert!(l.complete());
        l.table_full = Some(3);
        assert!(!l.complete(), "the table refused stations");
        l.table_full = Some(0);
        l.stations_known = Some(1500);
        assert!(!l.complete());
    }

    #[test]
    fn the_daemons_table_is_read_from_its_stats() {
        let stats = serde_json::json!({
            "mac_table": {"entries": 200_002, "capacity": 262_144, "learn_events_dropped": 0,
                          "learned": 200_002, "moved": 0, "table_full": 0, "aged": 0}
        });
        assert_eq!(mac_table(&stats), Some((200_002, 262_144, 0)));
        assert_eq!(mac_table(&serde_json::json!({})), None);
        assert_eq!(station_prefix(), "02:5a:0");
    }
}
