//! A machine-wide lock so traffic tests do not overlap.
//!
//! The VM has 2 cores, every daemon pins its worker to core 1, and several tests
//! assert on loss rates and counters: run concurrently, they would measure each other.
//! An `flock` on a file in the temp dir serialises tests across threads of one test
//! binary and across processes (cargo test binaries, nextest's per-test processes).

use std::fs::{File, OpenOptions};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for its turn before failing (generous: a whole suite).
pub const SERIAL_WAIT: Duration = Duration::from_secs(900);

/// Held while a test uses the network lab; released on drop (also on panic).
#[derive(Debug)]
pub struct SerialGuard {
    _file: File,
}

/// Waits (bounded by [`SERIAL_WAIT`]) until no other lab test runs, and returns the guard.
#[track_caller]
pub fn serial() -> SerialGuard {
    let path = std::env::temp_dir().join("switchyard-tests.lock");
    let deadline = Instant::now() + SERIAL_WAIT;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
        match crate::sys::try_flock_exclusive(&file) {
            Ok(true) => return SerialGuard { _file: file },
            Ok(false) => {}
            Err(e) => panic!("flock {}: {e}", path.display()),
        }
        if Instant::now() >= deadline {
            panic!(
                "waited {SERIAL_WAIT:?} for {} without getting it: another test run holds it",
                path.display()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}
