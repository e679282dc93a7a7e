//! Running Rust code (sockets) inside a named network namespace.
//!
//! `setns` changes the namespace of the calling *thread* only, so each piece of
//! in-namespace work gets a fresh thread that enters the namespace first and never
//! leaves it; the test thread itself stays in the root namespace.

use std::any::Any;
use std::fs::File;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Where `ip netns add NAME` bind-mounts the namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

type ThreadResult<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// A thread running inside a namespace; join it with a deadline.
#[derive(Debug)]
pub struct NsThread<T> {
    label: String,
    rx: mpsc::Receiver<ThreadResult<T>>,
    handle: thread::JoinHandle<()>,
}

/// Spawns `f` on a new thread inside namespace `netns`.
///
/// The thread is named `label` so its panic message says which host failed. If the
/// namespace cannot be entered, the thread panics before running `f` and
/// [`NsThread::join`] re-raises that panic.
pub fn spawn_in<T, F>(netns: &str, label: &str, f: F) -> NsThread<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let path = netns_path(netns);
    let handle = thread::Builder::new()
        .name(label.to_string())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                let ns =
                    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                crate::sys::setns_net(&ns)
                    .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
                drop(ns);
                f()
            }));
            let _ = tx.send(result);
        })
        .expect("spawn thread");
    NsThread {
        label: label.to_string(),
        rx,
        handle,
    }
}

impl<T> NsThread<T> {
    /// Waits at most `timeout` for the thread's result; re-raises its panic.
    ///
    /// On timeout this panics and leaves the thread behind: every socket the harness
    /// opens has its own timeouts, so such a thread ends by itself soon after.
    #[track_caller]
    pub fn join(self, timeout: Duration) -> T {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(v)) => {
                let _ = self.handle.join();
                v
            }
            Ok(Err(payload)) => {
                let _ = self.handle.join();
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(non-string panic)".into());
                panic!("thread {:?} panicked: {msg}", self.label);
            }
            Err(_) => panic!("thread {:?} did not finish within {timeout:?}", self.label),
        }
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
