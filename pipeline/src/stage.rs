//! The [`Stage`] trait: one step of the packet pipeline over a whole batch, in
//! the spirit of VPP's graph nodes. Each stage is a small type owning its
//! tables and its [`StageCounters`]; the worker runs them in a fixed order as a
//! [`crate::chain::Chain`], statically dispatched (the trait's method is
//! generic, so it cannot be a `dyn` object and is never called through one).

use crate::batch::Batch;
use crate::drop_reason::{DropCounters, DropReason};
use crate::frame::{FrameStore, Verdict};
use serde::Serialize;

/// One pipeline step: refines the verdicts of the frames it is responsible for
/// (usually the `Pending` ones), may rewrite, resize or originate frames, never
/// does I/O and never allocates per packet or per batch.
pub trait Stage {
    /// Stable snake_case name, used as the key of the stage's counters in stats.
    const NAME: &'static str;

    /// Runs the stage over `batch`.
    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>);

    /// The stage's per-node counters.
    fn counters(&self) -> &StageCounters;
}

/// VPP-style per-node counters: frames a stage looked at, what it decided for
/// them, and its drops by reason. Serialized as one object per stage in stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageCounters {
    /// Frames the stage took in (for most stages: the batch's pending frames).
    pub frames_in: u64,
    /// Frames it left pending for the next stage.
    pub passed: u64,
    /// Frames it decided to send out of one port.
    pub forwarded: u64,
    /// Frames it decided to flood.
    pub flooded: u64,
    /// Frames it handed to the gateway.
    pub to_gateway: u64,
    /// Frames it consumed.
    pub local: u64,
    /// Frames it routed (awaiting a new L2 header).
    pub routed: u64,
    /// Frames it dropped (the sum of `drops`).
    pub dropped: u64,
    /// Frames it originated (replies, errors) into fresh pool frames.
    pub originated: u64,
    /// Its drops by reason.
    pub drops: DropCounters,
}

impl StageCounters {
    /// Counts one frame taken in and the verdict the stage left it with.
    #[inline]
    pub fn record(&mut self, verdict: &Verdict) {
        self.frames_in += 1;
        self.record_out(verdict);
    }

    /// Counts the verdict of a frame without counting it in (an originated frame,
    /// counted in `originated` instead).
    #[inline]
    pub fn record_out(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Pending => self.passed += 1,
            Verdict::Forward(_) => self.forwarded += 1,
            Verdict::Flood => self.flooded += 1,
            Verdict::ToGateway => self.to_gateway += 1,
            Verdict::Local => self.local += 1,
            Verdict::Routed { .. } => self.routed += 1,
            // Another worker takes it from here: passed on, not decided.
            Verdict::HandOff(_) => self.passed += 1,
            Verdict::Drop(reason) => {
                self.dropped += 1;
                self.drops.count(*reason);
            }
        }
    }

    /// Words of [`to_words`](Self::to_words): the scalar counters, then one
    /// per drop reason.
    pub const WORDS: usize = 9 + DropReason::COUNT;

    /// The counters as plain words, for publishing them to another thread.
    pub fn to_words(&self) -> [u64; StageCounters::WORDS] {
        let mut words = [0u64; StageCounters::WORDS];
        let scalars = [
            self.frames_in,
            self.passed,
            self.forwarded,
            self.flooded,
            self.to_gateway,
            self.local,
            self.routed,
            self.dropped,
            self.originated,
        ];
        words[..9].copy_from_slice(&scalars);
        for (word, reason) in words[9..].iter_mut().zip(DropReason::ALL) {
            *word = self.drops.get(*reason);
        }
        words
    }

    /// The counters back from [`to_words`](Self::to_words).
    pub fn from_words(words: &[u64; StageCounters::WORDS]) -> Self {
        let mut drops = DropCounters::default();
        for (word, reason) in words[9..].iter().zip(DropReason::ALL) {
            drops.count_n(*reason, *word);
        }
        StageCounters {
            frames_in: words[0],
            passed: words[1],
            forwarded: words[2],
            flooded: words[3],
            to_gateway: words[4],
            local: words[5],
            routed: words[6],
            dropped: words[7],
            originated: words[8],
            drops,
        }
    }

    /// Adds another instance's counters (aggregating workers).
    pub fn add(&mut self, other: &StageCounters) {
        self.frames_in += other.frames_in;
        self.passed += other.passed;
        self.forwarded += other.forwarded;
        self.flooded += other.flooded;
        self.to_gateway += other.to_gateway;
        self.local += other.local;
        self.routed += other.routed;
        self.dropped += other.dropped;
        self.originated += other.originated;
        self.drops.add(&other.drops);
    }
}

/// One stage's counters under its name, as the stats report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StageReport {
    /// The stage's [`Stage::NAME`].
    pub name: &'static str,
    /// Its counters.
    #[serde(flatten)]
    pub counters: StageCounters,
}

impl StageReport {
    /// The report of `stage`.
    pub fn of<S: Stage>(stage: &S) -> Self {
        StageReport {
            name: S::NAME,
            counters: *stage.counters(),
        }
    }
}
