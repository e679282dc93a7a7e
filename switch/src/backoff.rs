//! Idle back-off for a poll worker: spin briefly, then yield, then sleep in short
//! steps, so an idle node does not burn its cores, while a busy one never sleeps.

use std::time::Duration;

/// Idle turns spent spinning before yielding.
const SPIN_TURNS: u32 = 512;
/// Idle turns spent yielding before sleeping.
const YIELD_TURNS: u32 = 1024;
/// First sleep; doubles on each further idle turn up to [`MAX_SLEEP`].
const MIN_SLEEP: Duration = Duration::from_micros(20);
/// Longest sleep by default: bounds the delay of work that cannot wake a sleeping
/// worker (frames handed over by another worker, learn events, stats requests).
pub const MAX_SLEEP: Duration = Duration::from_millis(1);

/// Tracks consecutive idle loop turns and decides how to wait.
#[derive(Debug)]
pub struct Backoff {
    idle_turns: u32,
    sleep: Duration,
    max_sleep: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::with_max_sleep(MAX_SLEEP)
    }
}

/// What the worker should do after an idle turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Poll again at once.
    Spin,
    /// Give the core to another thread once.
    Yield,
    /// Sleep this long.
    Sleep(Duration),
}

impl Backoff {
    /// A back-off whose sleeps grow up to `max_sleep`. A worker sleeping in poll()
    /// on its sockets wakes when frames arrive, so it can afford longer sleeps when
    /// nothing else needs it promptly.
    pub fn with_max_sleep(max_sleep: Duration) -> Self {
        Backoff {
            idle_turns: 0,
            sleep: Duration::ZERO,
            max_sleep: max_sleep.max(MIN_SLEEP),
        }
    }

    /// Records a turn that did (`work > 0`) or did not find frames and says how to wait.
    pub fn after_turn(&mut self, work: usize) -> Wait {
        if work > 0 {
            self.idle_turns = 0;
            self.sleep = Duration::ZERO;
            return Wait::Spin;
        }
        self.idle_turns = self.idle_turns.saturating_add(1);
        if self.idle_turns < SPIN_TURNS {
            Wait::Spin
        } else if self.idle_turns < SPIN_TURNS + YIELD_TURNS {
            Wait::Yield
        } else {
            self.sleep = (self.sleep * 2).clamp(MIN_SLEEP, self.max_sleep);
            Wait::Sleep(self.sleep)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_then_yields_then_sleeps_and_resets_on_work() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.after_turn(0), Wait::Spin);
        for _ in 0..SPIN_TURNS {
            backoff.after_turn(0);
        }
        assert_eq!(backoff.after_turn(0), Wait::Yield);
        for _ in 0..YIELD_TURNS {
            backoff.after_turn(0);
        }
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            match backoff.after_turn(0) {
                Wait::Sleep(d) => {
                    assert!(d >= last && d <= MAX_SLEEP);
                    last = d;
                }
                other => panic!("expected sleep, got {other:?}"),
            }
        }
        assert_eq!(last, MAX_SLEEP);
        assert_eq!(backoff.after_turn(3), Wait::Spin);
        assert_eq!(backoff.after_turn(0), Wait::Spin);
    }
}
