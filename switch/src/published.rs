//! Counters a worker publishes for the control thread to read while it runs,
//! without being asked: `ctl stats`, `ctl ports` and the stats file never send
//! the worker a command, so a busy or stuck worker cannot delay them and a
//! report costs the worker nothing.
//!
//! Every cell has exactly one writer (the worker that owns it) and is a plain
//! `AtomicU64` updated with a `Relaxed` load and store: on x86 that is the same
//! `mov`s a plain `u64` add compiles to, with no lock prefix and no fence. The
//! control thread reads with `Relaxed` loads. Two kinds of cells:
//!
//! - [`PortCells`]: one port's counters on one worker, bumped where the worker
//!   counts (per burst, not per frame where a burst has a sum). Each counter is
//!   exact on its own; two counters read together may be a burst apart (packets
//!   already counted, bytes not yet), which a monitoring read tolerates. Each
//!   (worker, port) pair has its own cells, cache-line aligned, so no two
//!   workers ever write one line.
//! - [`WorkerBoard`]: the worker's loop counters, histograms and table gauges,
//!   published as one group under a sequence lock once per loop turn (a fixed
//!   number of stores, whatever the port count), so a reader sees a histogram
//!   whose buckets and totals belong to the same turn. The reader retries a
//!   bounded number of times and then takes the last read: a worker preempted
//!   in the middle of a publish never hangs the control thread.
//!
//! The sequence lock is the usual one for safe Rust (all data accessed through
//! atomics, so a torn read is a stale value, never undefined behaviour): the
//! writer makes the sequence odd, fences (release), stores, then stores the
//! next even sequence with release; the reader loads the sequence with acquire,
//! loads the data, fences (acquire) and checks the sequence did not change.

use crate::stats::{BurstHistogram, TurnHistogram, WorkerCounters};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use switchyard_drivers::KernelDrops;
use switchyard_pipeline::chain::STAGES;
use switchyard_pipeline::stage::{StageCounters, StageReport};
use switchyard_pipeline::{DropCounters, DropReason, L2Stats, PortCounters};

/// Adds `n` to a cell only its owner writes: a load and a store, no lock prefix.
#[inline(always)]
fn bump(cell: &AtomicU64, n: u64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// One port's counters as one worker publishes them (see the module docs).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct PortCells {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    kernel: [AtomicU64; 4],
}

impl PortCells {
    /// Counts `packets` received frames of `bytes` bytes in all.
    #[inline]
    pub fn count_rx(&self, packets: u64, bytes: u64) {
        bump(&self.rx_packets, packets);
        bump(&self.rx_bytes, bytes);
    }

    /// Counts `packets` transmitted frames of `bytes` bytes in all.
    #[inline]
    pub fn count_tx(&self, packets: u64, bytes: u64) {
        bump(&self.tx_packets, packets);
        bump(&self.tx_bytes, bytes);
    }

    /// Counts one drop.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    /// Counts `n` drops of one reason (no store when `n` is 0).
    #[inline]
    pub fn count_drops(&self, reason: DropReason, n: u64) {
        if n > 0 {
            bump(&self.drops[reason as usize], n);
        }
    }

    /// Adds what the kernel counted on one socket since it was last read.
    pub fn add_kernel(&self, delta: &KernelDrops) {
        let fields = [
            delta.rx_dropped,
            delta.rx_ring_full,
            delta.rx_fill_ring_empty,
            delta.tx_invalid,
        ];
        for (cell, n) in self.kernel.iter().zip(fields) {
            if n > 0 {
                bump(cell, n);
            }
        }
    }

    /// The counters as they are now (any thread).
    pub fn read(&self) -> PortCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut drops = DropCounters::default();
        for reason in DropReason::ALL {
            drops.count_n(*reason, load(&self.drops[*reason as usize]));
        }
        PortCounters {
            rx_packets: load(&self.rx_packets),
            rx_bytes: load(&self.rx_bytes),
            tx_packets: load(&self.tx_packets),
            tx_bytes: load(&self.tx_bytes),
            drops,
        }
    }

    /// The kernel's AF_XDP drops on this worker's sockets of the port, as last
    /// read by the worker (any thread).
    pub fn read_kernel(&self) -> KernelDrops {
        let [a, b, c, d] = &self.kernel;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        KernelDrops {
            rx_dropped: load(a),
            rx_ring_full: load(b),
            rx_fill_ring_empty: load(c),
            tx_invalid: load(d),
        }
    }
}

/// Gauges of a worker's MAC table and frame pool, published with its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableGauges {
    /// Learning counters of the worker's MAC table.
    pub l2: L2Stats,
    /// Entries in its MAC table.
    pub mac_entries: u64,
    /// Frames at rest or in a port's rings at the last audit (see
    /// `Worker::frames_accounted`; refreshed every 100 ms, between turns).
    pub frames_accounted: u64,
}

/// What a reader gets from a [`WorkerBoard`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardRead {
    /// Loop counters (`cpu_ms` as the worker last set it; the daemon reads
    /// the thread's CPU time itself).
    pub counters: WorkerCounters,
    /// Table and pool gauges.
    pub gauges: TableGauges,
    /// The pipeline stages' counters, in chain order (named by
    /// `switchyard_pipeline::chain::Chain::NAMES`).
    pub stages: [StageCounters; STAGES],
    /// False when every retry overlapped a publish (the worker was preempted
    /// mid-write): the values are individually valid but may mix two turns.
    pub consistent: bool,
}

/// Scalars of the group, in publish order.
const SCALARS: usize = 22;
/// Buckets of both histograms.
const BUCKETS: usize = 9 + 16;
/// Read attempts before a reader takes what it has.
const READ_ATTEMPTS: usize = 1000;

/// One worker's loop counters, histograms and gauges under a sequence lock
/// (see the module docs). Written only by its worker.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerBoard {
    seq: AtomicU64,
    scalars: [AtomicU64; SCALARS],
    buckets: [AtomicU64; BUCKETS],
    stages: [[AtomicU64; StageCounters::WORDS]; STAGES],
}

impl Default for WorkerBoard {
    fn default() -> Self {
        WorkerBoard {
            seq: AtomicU64::new(0),
            scalars: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            stages: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

fn scalars_of(c: &WorkerCounters, g: &TableGauges) -> [u64; SCALARS] {
    [
        c.loops,
        c.busy_loops,
        c.rx_bursts,
        c.rx_packets,
        c.kick_errors,
        c.idle_sleeps,
        c.handed_out,
        c.handed_in,
        c.cpu_ms,
        c.parks,
        c.wakes,
        c.polled_sockets,
        g.l2.learned,
        g.l2.moved,
        g.l2.table_full,
        g.l2.aged,
        g.mac_entries,
        g.frames_accounted,
        c.neighbour_events_sent,
        c.neighbour_events_applied,
        c.neighbour_events_dropped,
        0,
    ]
}

impl WorkerBoard {
    /// Publishes the worker's counters and gauges as one group; with
    /// `stages` absent (no frame went through the pipeline since the last
    /// publish) the histogram and stage cells are left as they are, which keeps
    /// an idle turn's cost to the scalars. Only the owning worker calls it.
    #[inline]
    pub fn publish(
        &self,
        counters: &WorkerCounters,
        gauges: &TableGauges,
        stages: Option<&[StageReport; STAGES]>,
    ) {
        let histograms = stages.is_some();
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (cell, value) in self.scalars.iter().zip(scalars_of(counters, gauges)) {
            cell.store(value, Ordering::Relaxed);
        }
        if histograms {
            let buckets = counters
                .burst_sizes
                .buckets()
                .iter()
                .chain(counters.turn_durations.buckets().iter());
            for (cell, value) in self.buckets.iter().zip(buckets) {
                cell.store(*value, Ordering::Relaxed);
            }
        }
        for (cells, stage) in self.stages.iter().zip(stages.into_iter().flatten()) {
            for (cell, value) in cells.iter().zip(stage.counters.to_words()) {
                cell.store(value, Ordering::Relaxed);
            }
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The last published group (any thread; never blocks for long).
    pub fn read(&self) -> BoardRead {
        let mut scalars = [0u64; SCALARS];
        let mut buckets = [0u64; BUCKETS];
        let mut stage_words = [[0u64; StageCounters::WORDS]; STAGES];
        let mut consistent = false;
        for attempt in 0..READ_ATTEMPTS {
            let before = self.seq.load(Ordering::Acquire);
            for (value, cell) in scalars.iter_mut().zip(&self.scalars) {
                *value = cell.load(Ordering::Relaxed);
            }
            for (value, cell) in buckets.iter_mut().zip(&self.buckets) {
                *value = cell.load(Ordering::Relaxed);
            }
            for (words, cells) in stage_words.iter_mut().zip(&self.stages) {
                for (value, cell) in words.iter_mut().zip(cells) {
                    *value = cell.load(Ordering::Relaxed);
                }
            }
            fence(Ordering::Acquire);
            let after = self.seq.load(Ordering::Relaxed);
            if before == after && before.is_multiple_of(2) {
                consistent = true;
                break;
            }
            if attempt > 8 {
                std::thread::yield_now();
            }
        }
        let [loops, busy_loops, rx_bursts, rx_packets, kick_errors, idle_sleeps, handed_out, handed_in, cpu_ms, parks, wakes, polled_sockets, learned, moved, table_full, aged, mac_entries, frames_accounted, neighbour_events_sent, neighbour_events_applied, neighbour_events_dropped, _] =
            scalars;
        let mut burst = [0u64; 9];
        burst.copy_from_slice(&buckets[..9]);
        let mut turns = [0u64; 16];
        turns.copy_from_slice(&buckets[9..]);
        BoardRead {
            counters: WorkerCounters {
                loops,
                busy_loops,
                rx_bursts,
                rx_packets,
                kick_errors,
                idle_sleeps,
                handed_out,
                handed_in,
                cpu_ms,
                burst_sizes: BurstHistogram::from_buckets(burst),
                parks,
                wakes,
                polled_sockets,
                turn_durations: TurnHistogram::from_buckets(turns),
                neighbour_events_sent,
                neighbour_events_applied,
                neighbour_events_dropped,
            },
            gauges: TableGauges {
                l2: L2Stats {
                    learned,
                    moved,
                    table_full,
                    aged,
                },
                mac_entries,
                frames_accounted,
            },
            stages: std::array::from_fn(|k| StageCounters::from_words(&stage_words[k])),
            consistent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn port_cells_count_and_read_back() {
        let cells = PortCells::default();
        cells.count_rx(3, 180);
        cells.count_tx(2, 120);
        cells.count_drop(DropReason::Runt);
        cells.count_drops(DropReason::TxRingFull, 4);
        cells.count_drops(DropReason::TxRingFull, 0);
        cells.add_kernel(&KernelDrops {
            rx_ring_full: 5,
            ..KernelDrops::default()
        });
        let c = cells.read();
        assert_eq!(
            (c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes),
            (3, 180, 2, 120)
        );
        assert_eq!(c.drops.get(DropReason::Runt), 1);
        assert_eq!(c.drops.get(DropReason::TxRingFull), 4);
        assert_eq!(c.drops.total(), 5);
        assert_eq!(cells.read_kernel().rx_ring_full, 5);
    }

    #[test]
    fn a_reader_never_sees_a_half_published_group() {
        // The writer keeps every scalar and the turn histogram's total equal
        // to its turn number; a consistent read must see them all equal.
        let board = Arc::new(WorkerBoard::default());
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (board, done) = (Arc::clone(&board), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut c = WorkerCounters::default();
                for turn in 1..=200_000u64 {
                    c.loops = turn;
                    c.busy_loops = turn;
                    c.turn_durations.record(turn % 5000);
                    let g = TableGauges {
                        mac_entries: turn,
                        ..TableGauges::default()
                    };
                    let stages = std::array::from_fn(|k| StageReport {
                        name: switchyard_pipeline::chain::Chain::NAMES[k],
                        counters: StageCounters {
                            frames_in: turn,
                            ..StageCounters::default()
                        },
                    });
                    board.publish(&c, &g, Some(&stages));
                }
                done.store(true, Ordering::Release);
            })
        };
        let mut reads = 0u64;
        while !done.load(Ordering::Acquire) || reads < 10 {
            let r = board.read();
            if r.consistent {
                let total: u64 = r.counters.turn_durations.buckets().iter().sum();
                assert_eq!(r.counters.busy_loops, r.counters.loops);
                assert_eq!(r.gauges.mac_entries, r.counters.loops);
                assert_eq!(total, r.counters.loops, "histogram from the same turn");
                assert_eq!(
                    r.stages[1].frames_in, r.counters.loops,
                    "stages from the same turn"
                );
            }
            reads += 1;
        }
        writer.join().unwrap();
        let last = board.read();
        assert!(last.consistent);
        assert_eq!(last.counters.loops, 200_000);
    }
}
