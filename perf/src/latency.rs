//! What the sink learns from the probes it receives: one-way latency in an
//! hdrhistogram, and loss, duplicates and reordering from sequence numbers.
//!
//! Kept free of I/O so the arithmetic is unit-tested; the sink thread feeds it
//! one frame at a time.

use crate::payload::Probe;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histogram tells apart (10 s); anything slower is
/// recorded as 10 s. Three significant digits keep the histogram small
/// (a few tens of KiB) while p99.9 stays exact to 0.1 %.
const MAX_TRACKABLE_NS: u64 = 10_000_000_000;

/// Receives probes of one measurement and sums them up.
#[derive(Debug)]
pub struct ProbeStats {
    run: u16,
    limit: u64,
    histogram: Histogram<u64>,
    seen: SeqSet,
    received: u64,
    duplicates: u64,
    reordered: u64,
    highest_seq: Option<u32>,
    foreign: u64,
}

impl ProbeStats {
    /// Counts probes of measurement `run` with sequence numbers below
    /// `max_frames` (what the generator may send at most); others are
    /// counted as foreign. Reserves the sequence bitmap up front so the
    /// receive loop does not allocate.
    pub fn new(run: u16, max_frames: u64) -> Self {
        ProbeStats {
            run,
            limit: max_frames.min(u64::from(u32::MAX) + 1),
            histogram: Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
                .expect("static histogram bounds are valid"),
            seen: SeqSet::with_capacity(max_frames.min(MAX_RESERVED_SEQ)),
            received: 0,
            duplicates: 0,
            reordered: 0,
            highest_seq: None,
            foreign: 0,
        }
    }

    /// Records a frame's probe (`None`: not one of ours) received at `rx_ns`
    /// (CLOCK_MONOTONIC).
    pub fn record(&mut self, probe: Option<Probe>, rx_ns: u64) {
        let Some(probe) = probe.filter(|p| p.run == self.run && u64::from(p.seq) < self.limit)
        else {
            self.foreign += 1;
            return;
        };
        if !self.seen.insert(probe.seq) {
            self.duplicates += 1;
            return;
        }
        self.received += 1;
        match self.highest_seq {
            Some(highest) if probe.seq < highest => self.reordered += 1,
            _ => self.highest_seq = Some(probe.seq),
        }
        // Same clock on both ends: the difference is never negative, but a
        // zero would not fit the histogram's lowest value of 1.
        let latency = rx_ns.saturating_sub(probe.tx_ns).max(1);
        self.histogram.saturating_record(latency);
    }

    /// The summary, given how many frames the generator sent.
    pub fn summary(&self, sent: u64) -> ProbeSummary {
        ProbeSummary {
            received: self.received,
            lost: sent.saturating_sub(self.received),
            loss_pct: loss_pct(sent, self.received),
            duplicates: self.duplicates,
            reordered: self.reordered,
            foreign: self.foreign,
            latency: (self.received > 0).then(|| Percentiles::of(&self.histogram)),
        }
    }
}

/// Share of `sent` frames that did not arrive, in percent (0 when nothing was sent).
pub fn loss_pct(sent: u64, received: u64) -> f64 {
    if sent == 0 {
        0.0
    } else {
        sent.saturating_sub(received) as f64 / sent as f64 * 100.0
    }
}

/// Sequence numbers seen so far, as a bitmap that grows with the highest one
/// (a point sends at most a few million frames: a few hundred KiB).
#[derive(Debug, Default)]
struct SeqSet {
    words: Vec<u64>,
}

/// Sequence numbers the sink reserves bitmap space for before a point
/// (64 Mi frames: 8 MiB); beyond that the bitmap grows as needed.
const MAX_RESERVED_SEQ: u64 = 1 << 26;

impl SeqSet {
    /// A set with room for sequence numbers below `n` without growing.
    fn with_capacity(n: u64) -> Self {
        SeqSet {
            words: vec![0; n.div_ceil(64) as usize],
        }
    }

    /// Adds `seq`; false when it was already there.
    fn insert(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            // Doubling keeps growth rare; the sink reserves ahead of a point.
            let len = (word + 1).max(self.words.len() * 2);
            self.words.resize(len, 0);
        }
        let mask = 1u64 << bit;
        let fresh = self.words[word] & mask == 0;
        self.words[word] |= mask;
        fresh
    }
}

/// Loss, reordering and latency of one measurement.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeSummary {
    /// Distinct probes of this measurement received.
    pub received: u64,
    /// Sent but never received.
    pub lost: u64,
    /// `lost` in percent of sent.
    pub loss_pct: f64,
    /// Probes received more than once (not counted in `received`).
    pub duplicates: u64,
    /// Probes that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Frames that were not probes of this measurement (stragglers of an
    /// earlier one, anything else on the link).
    pub foreign: u64,
    /// One-way latency; `None` when nothing arrived.
    pub latency: Option<Percentiles>,
}

/// One-way latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Frames measured.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest frame.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// Reads the percentiles (ns in the histogram, µs out).
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }

    /// The five reported values with their labels, in order.
    pub fn labelled(&self) -> [(&'static str, f64); 5] {
        [
            ("p50", self.p50_us),
            ("p90", self.p90_us),
            ("p99", self.p99_us),
            ("p99.9", self.p999_us),
            ("max", self.max_us),
        ]
    }
}

/// Formats microseconds for a table column: three significant digits, so
/// 7.25, 48.1 and 1250 all stay readable at a fixed width.
pub fn format_us(us: f64) -> String {
    if !us.is_finite() {
        "-".to_string()
    } else if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(run: u16, seq: u32, tx_ns: u64) -> Option<Probe> {
        Some(Probe { run, seq, tx_ns })
    }

    #[test]
    fn latency_percentiles_come_from_tx_and_rx_times() {
        let mut stats = ProbeStats::new(3, 1000);
        // 1000 frames: 1 µs .. 1000 µs one-way.
        for i in 0..1000u32 {
            let tx = 1_000_000 + u64::from(i) * 10;
            stats.record(probe(3, i, tx), tx + (u64::from(i) + 1) * 1000);
        }
        let s = stats.summary(1000);
        assert_eq!(
            (s.received, s.lost, s.reordered, s.duplicates),
            (1000, 0, 0, 0)
        );
        let l = s.latency.unwrap();
        assert_eq!(l.count, 1000);
        // Three significant digits: within 0.1 %.
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.001;
        assert!(close(l.p50_us, 500.0), "p50 {}", l.p50_us);
        assert!(close(l.p90_us, 900.0), "p90 {}", l.p90_us);
        assert!(close(l.p99_us, 990.0), "p99 {}", l.p99_us);
        assert!(close(l.p999_us, 999.0), "p99.9 {}", l.p999_us);
        assert!(close(l.max_us, 1000.0), "max {}", l.max_us);
        assert!(close(l.mean_us, 500.5), "mean {}", l.mean_us);
    }

    #[test]
    fn loss_reordering_duplicates_and_strangers_are_counted() {
        let mut stats = ProbeStats::new(1, 100);
        for seq in [0, 1, 3, 2, 5, 5, 4] {
            stats.record(probe(1, seq, 0), 10);
        }
        stats.record(probe(2, 6, 0), 10); // an earlier measurement's frame
        stats.record(None, 10); // not a probe at all
        let s = stats.summary(8); // 0..=7 sent: 6 and 7 lost
        assert_eq!(s.received, 6);
        assert_eq!(s.lost, 2);
        assert!((s.loss_pct - 25.0).abs() < 1e-9);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 2, "2 after 3, 4 after 5");
        assert_eq!(s.foreign, 2);
    }

    #[test]
    fn nothing_received_means_no_latency() {
        let s = ProbeStats::new(0, 10).summary(10);
        assert_eq!(s.latency, None);
        assert_eq!(s.lost, 10);
        assert_eq!(loss_pct(0, 0), 0.0);
    }

    #[test]
    fn sequence_set_grows_and_remembers() {
        let mut set = SeqSet::default();
        assert!(set.insert(5_000_000));
        assert!(!set.insert(5_000_000));
        assert!(set.insert(0));
        assert!(set.insert(70_000_000));
        assert!(!set.insert(70_000_000));
    }

    #[test]
    fn sequence_numbers_past_the_limit_are_foreign() {
        let mut stats = ProbeStats::new(1, 10);
        stats.record(probe(1, u32::MAX, 0), 1);
        stats.record(probe(1, 10, 0), 1);
        stats.record(probe(1, 9, 0), 1);
        let s = stats.summary(10);
        assert_eq!((s.received, s.foreign), (1, 2));
    }

    #[test]
    fn microseconds_format_to_three_digits() {
        assert_eq!(format_us(7.254), "7.25");
        assert_eq!(format_us(48.14), "48.1");
        assert_eq!(format_us(1250.4), "1250");
        assert_eq!(format_us(f64::NAN), "-");
    }
}
