//! Progress for long runs: where the run is, how long it has taken and about
//! how long it still needs, on stderr.
//!
//! On a terminal an `indicatif` bar is redrawn in place (its position is the
//! planned seconds done, so its estimate scales the plan still to come by
//! the pace so far) and log lines scroll above it; in a log file every
//! status is its own line, from [`status_line`].

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Tracks planned against spent time and prints status and log lines.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    planned_total: f64,
    planned_done: f64,
    /// The bar, on a terminal only.
    bar: Option<ProgressBar>,
}

/// Bar units per planned second (the bar counts whole units).
const UNITS_PER_SECOND: f64 = 1000.0;

impl Progress {
    /// A run planned to take about `planned_seconds`.
    pub fn new(planned_seconds: f64) -> Self {
        let planned_total = planned_seconds.max(0.0);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some((planned_total * UNITS_PER_SECOND) as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = ProgressStyle::with_template(
                "[{percent:>3}% {elapsed:>4} elapsed, ~{eta} left] {wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            start: Instant::now(),
            planned_total,
            planned_done: 0.0,
            bar,
        }
    }

    /// Announces a step planned to take `planned_seconds`; counts it as done
    /// for the estimate once the next step begins (or [`Progress::finish`]).
    pub fn step(&mut self, label: &str, planned_seconds: f64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => {
                bar.set_position((self.planned_done * UNITS_PER_SECOND) as u64);
                bar.set_message(label.to_string());
            }
            None => eprintln!(
                "{}",
                status_line(elapsed, self.planned_done, self.planned_total, label)
            ),
        }
        self.planned_done += planned_seconds.max(0.0);
        tracing::debug!(label, planned_seconds, "step");
    }

    /// Prints a line above the status line.
    pub fn log(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Clears the status line (before the final tables go to stdout).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `[ 42%  1:05 elapsed, ~1:30 left] label`: the share of the plan done, the
/// time taken, and the plan still to come scaled by the pace so far.
pub fn status_line(elapsed: f64, planned_done: f64, planned_total: f64, label: &str) -> String {
    let share = if planned_total > 0.0 {
        (planned_done / planned_total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pace = if planned_done > 1.0 {
        (elapsed / planned_done).clamp(0.5, 3.0)
    } else {
        1.0
    };
    let left = (planned_total - planned_done).max(0.0) * pace;
    format!(
        "[{:>3.0}% {:>5} elapsed, ~{} left] {label}",
        share * 100.0,
        clock(elapsed),
        clock(left)
    )
}

/// Seconds as `m:ss`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_as_minutes_and_seconds() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(59.6), "1:00");
        assert_eq!(clock(305.0), "5:05");
        assert_eq!(clock(-3.0), "0:00");
    }

    #[test]
    fn status_shows_share_elapsed_and_estimate() {
        // Half the plan done in twice the planned time: the rest is
        // expected to take twice as long too.
        let line = status_line(120.0, 60.0, 120.0, "bridge 64 B");
        assert_eq!(line, "[ 50%  2:00 elapsed, ~2:00 left] bridge 64 B");
        let start = status_line(0.0, 0.0, 300.0, "pipeline");
        assert_eq!(start, "[  0%  0:00 elapsed, ~5:00 left] pipeline");
    }
}
