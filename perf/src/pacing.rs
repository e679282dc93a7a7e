//! Rate pacing for the traffic generator: which frames are due when.
//!
//! Frame `k` (from 0) of a point at `rate` frames/s is due `k / rate` seconds
//! after the start. The generator asks [`Pacer::due`] how many frames it may
//! send now, sends them as one TX batch with one kick, and sleeps or yields
//! for [`Pacer::wait_ns`]. The schedule is absolute, so a late wake-up (a
//! sleep that overshoots, a preemption) is made up by a larger next batch
//! and the average rate holds. What cannot be made up — more than
//! `max_backlog` frames behind, i.e. the generator is slower than the rate —
//! is skipped and counted, so a target the generator cannot reach shows as
//! "offered < target" instead of one long burst.
//!
//! Pure arithmetic over nanosecond timestamps: the unit tests drive it with
//! made-up clocks.

/// Decides how many frames the generator may send at a given time.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Frames per second; `None` sends as fast as the TX ring takes them.
    rate_pps: Option<f64>,
    start_ns: u64,
    /// Frames sent or skipped: the schedule position.
    accounted: u64,
    skipped: u64,
    max_batch: usize,
    target_batch: usize,
    max_backlog: u64,
}

/// How long the generator waits for frames to accumulate before a kick at
/// most: a kick costs a system call, so at high rates a few frames go in one
/// batch, at low rates every frame leaves on its own (it would otherwise wait
/// for the next ones and measure as latency).
pub const BATCH_QUANTUM_NS: u64 = 20_000;

/// Frames per kick that [`BATCH_QUANTUM_NS`] gathers at `rate_pps`, between
/// 1 and `max_batch`.
pub fn target_batch(rate_pps: Option<f64>, quantum_ns: u64, max_batch: usize) -> usize {
    let max_batch = max_batch.max(1);
    match rate_pps {
        None => max_batch,
        Some(rate) if rate > 0.0 => {
            let frames = (rate * quantum_ns as f64 / 1e9).floor();
            (frames as usize).clamp(1, max_batch)
        }
        Some(_) => 1,
    }
}

impl Pacer {
    /// A schedule starting at `start_ns` (CLOCK_MONOTONIC), sending batches
    /// of at most `max_batch` frames. Up to `max(4 batches, 1 ms of frames)`
    /// may be owed before the excess is skipped.
    pub fn new(rate_pps: Option<f64>, start_ns: u64, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let rate_pps = rate_pps.filter(|r| *r > 0.0 && r.is_finite());
        let max_backlog = match rate_pps {
            Some(rate) => ((rate / 1000.0) as u64).max(4 * max_batch as u64),
            None => u64::MAX,
        };
        Pacer {
            rate_pps,
            start_ns,
            accounted: 0,
            skipped: 0,
            max_batch,
            target_batch: target_batch(rate_pps, BATCH_QUANTUM_NS, max_batch),
            max_backlog,
        }
    }

    /// Frames the schedule has made due by `now_ns` (frame 0 is due at the start).
    fn scheduled(&self, now_ns: u64) -> u64 {
        match self.rate_pps {
            None => u64::MAX,
            Some(rate) => {
                let elapsed = now_ns.saturating_sub(self.start_ns) as f64;
                (elapsed * rate / 1e9).floor() as u64 + 1
            }
        }
    }

    /// How many frames may be sent at `now_ns` (at most one batch). Skips
    /// (and counts) what is owed beyond the backlog limit.
    pub fn due(&mut self, now_ns: u64) -> usize {
        if self.rate_pps.is_none() {
            return self.max_batch;
        }
        let mut owed = self.scheduled(now_ns).saturating_sub(self.accounted);
        if owed > self.max_backlog {
            let skip = owed - self.max_backlog;
            self.skipped += skip;
            self.accounted += skip;
            owed = self.max_backlog;
        }
        owed.min(self.max_batch as u64) as usize
    }

    /// Records that `n` frames were sent.
    pub fn sent(&mut self, n: usize) {
        self.accounted += n as u64;
    }

    /// Nanoseconds from `now_ns` until a full target batch is due; 0 when it
    /// already is (or when unpaced).
    pub fn wait_ns(&self, now_ns: u64) -> u64 {
        let Some(rate) = self.rate_pps else {
            return 0;
        };
        let last_frame = self.accounted + self.target_batch as u64 - 1;
        let due_at = self.start_ns + (last_frame as f64 * 1e9 / rate).ceil() as u64;
        due_at.saturating_sub(now_ns)
    }

    /// Frames skipped because the generator fell too far behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Frames per kick this schedule aims for.
    pub fn target_batch(&self) -> usize {
        self.target_batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn batch_targets_follow_the_rate() {
        assert_eq!(target_batch(None, BATCH_QUANTUM_NS, 32), 32);
        assert_eq!(target_batch(Some(10_000.0), BATCH_QUANTUM_NS, 32), 1);
        assert_eq!(target_batch(Some(500_000.0), BATCH_QUANTUM_NS, 32), 10);
        assert_eq!(target_batch(Some(10e6), BATCH_QUANTUM_NS, 32), 32);
        assert_eq!(target_batch(Some(0.0), BATCH_QUANTUM_NS, 32), 1);
    }

    #[test]
    fn frames_become_due_on_schedule() {
        // 1 Mpps: one frame per microsecond, frame 0 at the start.
        let mut p = Pacer::new(Some(1e6), 1_000, 32);
        assert_eq!(p.due(1_000), 1);
        assert_eq!(p.due(1_000 + 4_500), 5);
        p.sent(5);
        assert_eq!(p.due(1_000 + 4_999), 0);
        assert_eq!(p.due(1_000 + 5_000), 1);
        // Far ahead: at most one batch at a time.
        assert_eq!(p.due(1_000 + 100_000), 32);
        assert_eq!(p.skipped(), 0);
    }

    #[test]
    fn late_wakeups_are_made_up_and_hopeless_debt_is_skipped() {
        let mut p = Pacer::new(Some(1e6), 0, 32);
        // 1 ms late at 1 Mpps: 1001 owed, the backlog limit is 1000 frames.
        assert_eq!(p.due(MS), 32);
        assert_eq!(p.skipped(), 1);
        p.sent(32);
        assert_eq!(p.due(MS), 32, "still catching up");
        // Sending everything that is owed brings it back on schedule.
        for _ in 0..40 {
            let n = p.due(MS);
            p.sent(n);
        }
        assert_eq!(p.due(MS), 0);
        assert_eq!(p.accounted, 1001);
    }

    #[test]
    fn waits_until_a_target_batch_is_due() {
        // 500 kpps: 2 µs per frame, batches of 10 (20 µs).
        let mut p = Pacer::new(Some(500_000.0), 0, 32);
        assert_eq!(p.target_batch(), 10);
        // Frames 0..=9 are due at 18 µs.
        assert_eq!(p.wait_ns(0), 18_000);
        assert_eq!(p.wait_ns(18_000), 0);
        assert_eq!(p.due(18_000), 10);
        p.sent(10);
        assert_eq!(p.wait_ns(18_000), 20_000);
    }

    #[test]
    fn unpaced_sends_full_batches_without_waiting() {
        let mut p = Pacer::new(None, 0, 32);
        assert_eq!(p.due(0), 32);
        p.sent(32);
        assert_eq!(p.due(0), 32);
        assert_eq!(p.wait_ns(0), 0);
        let mut bogus = Pacer::new(Some(f64::NAN), 0, 8);
        assert_eq!(bogus.due(0), 8, "a nonsense rate means unpaced");
    }
}
