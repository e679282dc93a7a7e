//! Running Rust code (sockets) inside a named network namespace, for tests:
//! a thin wrapper over `switchyard_drivers::netns` (the one implementation the
//! benchmarks share) that turns every failure into a
//! panic naming the thread, as a test wants.

use std::time::Duration;
use switchyard_drivers::netns::{spawn_in_netns, NetnsThread};

pub use switchyard_drivers::netns::netns_path;

/// A thread running inside a namespace; join it with a deadline.
#[derive(Debug)]
pub struct NsThread<T>(NetnsThread<T>);

/// Spawns `f` on a new thread inside namespace `netns`.
///
/// The thread is named `label` so a failure says which host failed. If the
/// namespace cannot be entered, or `f` panics, [`NsThread::join`] panics with
/// that.
#[track_caller]
pub fn spawn_in<T, F>(netns: &str, label: &str, f: F) -> NsThread<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    NsThread(spawn_in_netns(&netns_path(netns), label, f).unwrap_or_else(|e| panic!("{e}")))
}

impl<T> NsThread<T> {
    /// Waits at most `timeout` for the thread's result; panics on its failure.
    ///
    /// On timeout this panics and leaves the thread behind: every socket the harness
    /// opens has its own timeouts, so such a thread ends by itself soon after.
    #[track_caller]
    pub fn join(self, timeout: Duration) -> T {
        self.0.join(timeout).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Runs `f` inside namespace `netns` and returns its result (bounded by `timeout`).
#[track_caller]
pub fn run_in<T, F>(netns: &str, timeout: Duration, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    spawn_in(netns, netns, f).join(timeout)
}
