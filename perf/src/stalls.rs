//! Core stall probe: how often, and for how long, a core stops running the
//! thread that spins on it.
//!
//! A thread pinned to a core reads CLOCK_MONOTONIC in a tight loop; any gap
//! between two reads longer than [`GAP_NS`] is time the core spent elsewhere:
//! interrupts, other threads, or (on a VM) the hypervisor running something
//! else on the physical CPU. A dataplane that passes frames between cores
//! (Switchyard, OVS, VPP) holds frames in rings while either core is stalled,
//! so these gaps become its latency tail; the Linux bridge forwards inside
//! the sender's own system call and has no frame in flight while its core
//! is away. The probe runs before the traffic scenarios, on each core they
//! use, so a run's latency tails can be read against the platform's stalls.

use crate::sys;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Gaps above this count as stalls (a clock read takes ~20-50 ns).
pub const GAP_NS: u64 = 20_000;

/// What the probe saw on one core.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CoreStalls {
    /// The core probed.
    pub core: usize,
    /// Whether pinning to it worked (if not, the figures are of some core).
    pub pinned: bool,
    /// Probing time, ms.
    pub probe_ms: f64,
    /// Gaps longer than [`GAP_NS`].
    pub stalls: u64,
    /// Gaps longer than 100 µs.
    pub over_100us: u64,
    /// Gaps longer than 1 ms.
    pub over_1ms: u64,
    /// Time lost in all gaps, % of the probing time.
    pub lost_pct: f64,
    /// Longest gap, µs.
    pub max_us: f64,
}

/// Spins on `core` for `duration` and reports its stalls. Bounded by
/// `duration` (plus one stall).
pub fn probe(core: usize, duration: Duration) -> CoreStalls {
    let budget = duration.as_nanos() as u64;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: core });
                let start = sys::monotonic_ns();
                let mut previous = start;
                let mut result = CoreStalls {
                    core,
                    pinned,
                    ..CoreStalls::default()
                };
                let mut lost_ns = 0u64;
                let mut max_ns = 0u64;
                loop {
                    let now = sys::monotonic_ns();
                    let gap = now - previous;
                    previous = now;
                    if gap > GAP_NS {
                        result.stalls += 1;
                        result.over_100us += u64::from(gap > 100_000);
                        result.over_1ms += u64::from(gap > 1_000_000);
                        lost_ns += gap;
                        max_ns = max_ns.max(gap);
                    }
                    if now - start >= budget {
                        let elapsed = (now - start).max(1);
                        result.probe_ms = elapsed as f64 / 1e6;
                        result.lost_pct = lost_ns as f64 * 100.0 / elapsed as f64;
                        result.max_us = max_ns as f64 / 1e3;
                        return result;
                    }
                }
            })
            .join()
            .unwrap_or_default()
    })
}

/// One line per core for the terminal.
pub fn describe(stalls: &CoreStalls) -> String {
    format!(
        "core {}: {} stalls > 20 µs in {:.0} ms ({} > 100 µs, {} > 1 ms), {:.1} % of the time lost, longest {:.0} µs{}",
        stalls.core,
        stalls.stalls,
        stalls.probe_ms,
        stalls.over_100us,
        stalls.over_1ms,
        stalls.lost_pct,
        stalls.max_us,
        if stalls.pinned { "" } else { " (not pinned)" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_probe_reports_its_time_and_consistent_counts() {
        let s = probe(0, Duration::from_millis(20));
        assert!(s.probe_ms >= 20.0);
        assert!(s.over_1ms <= s.over_100us && s.over_100us <= s.stalls);
        assert!((0.0..=100.0).contains(&s.lost_pct));
        assert!(describe(&s).starts_with("core 0: "));
    }
}
