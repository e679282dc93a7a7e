//! Progress for long runs: where the run is, how long it has taken and about
//! how long it still needs, on stderr.
//!
//! On a terminal the status line is redrawn in place and log lines scroll
//! above it; in a log file every status is its own line. The estimate scales
//! the planned seconds still to come by how fast the plan has gone so far.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Tracks planned against spent time and prints status and log lines.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    planned_total: f64,
    planned_done: f64,
    tty: bool,
    status: String,
}

impl Progress {
    /// A run planned to take about `planned_seconds`.
    pub fn new(planned_seconds: f64) -> Self {
        Progress {
            start: Instant::now(),
            planned_total: planned_seconds.max(0.0),
            planned_done: 0.0,
            tty: std::io::stderr().is_terminal(),
            status: String::new(),
        }
    }

    /// Announces a step planned to take `planned_seconds`; counts it as done
    /// for the estimate once the next step begins (or [`Progress::finish`]).
    pub fn step(&mut self, label: &str, planned_seconds: f64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.status = status_line(elapsed, self.planned_done, self.planned_total, label);
        self.planned_done += planned_seconds.max(0.0);
        self.draw();
    }

    /// Prints a line above the status line.
    pub fn log(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{line}\n{}", self.status);
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Clears the status line (before the final tables go to stdout).
    pub fn finish(&mut self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
        self.status.clear();
    }

    fn draw(&self) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{}", self.status);
        } else {
            let _ = writeln!(err, "{}", self.status);
        }
        let _ = err.flush();
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
