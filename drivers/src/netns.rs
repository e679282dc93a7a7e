//! Threads that run one piece of work inside a named network namespace, with a
//! deadline on the result: the tests and the benchmarks share this one
//! implementation (they had one each); both enter namespaces through
//! [`crate::sys::enter_netns`], as the daemon's [`crate::sys::in_netns`] does.
//!
//! `setns` changes the namespace of the calling *thread* only, so each piece of
//! in-namespace work gets a fresh thread that enters the namespace first and
//! never leaves it; the caller stays where it is. The result (or the panic, or
//! the failure to enter) comes back through a channel, so joining can have a
//! deadline.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where `ip netns add NAME` bind-mounts the namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

/// Why a namespace thread gave no result.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The thread could not be started.
    #[error("spawning a thread for namespace {path}: {source}")]
    Spawn {
        /// The namespace.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The namespace could not be opened or entered.
    #[error("entering network namespace {path}: {source}")]
    Enter {
        /// The namespace.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The work panicked.
    #[error("thread {label:?} panicked: {message}")]
    Panicked {
        /// The thread's name.
        label: String,
        /// The panic's message.
        message: String,
    },
    /// The work did not finish in time (the thread is left to end by itself).
    #[error("thread {label:?} did not finish within {timeout:?}")]
    TimedOut {
        /// The thread's name.
        label: String,
        /// The deadline given.
        timeout: Duration,
    },
}

type Outcome<T> = Result<T, NetnsError>;

/// A thread running inside a namespace; join it with a deadline.
#[derive(Debug)]
pub struct NetnsThread<T> {
    label: String,
    rx: mpsc::Receiver<Outcome<T>>,
    handle: JoinHandle<()>,
}

/// Spawns `f` on a new thread named `label` inside the namespace at `path`.
pub fn spawn_in_netns<T, F>(path: &Path, label: &str, f: F) -> Result<NetnsThread<T>, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    let name = label.to_string();
    let handle = std::thread::Builder::new()
        .name(label.to_string())
        .spawn({
            let path = path.clone();
            move || {
                let entered = std::fs::File::open(&path)
                    .and_then(|ns| crate::sys::enter_netns(&ns))
                    .map_err(|source| NetnsError::Enter {
                        path: path.clone(),
                        source,
                    });
                let outcome = entered.and_then(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
                        NetnsError::Panicked {
                            label: name,
                            message: panic_message(payload.as_ref()),
                        }
                    })
                });
                let _ = tx.send(outcome);
            }
        })
        .map_err(|source| NetnsError::Spawn { path, source })?;
    Ok(NetnsThread {
        label: label.to_string(),
        rx,
        handle,
    })
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

impl<T> NetnsThread<T> {
    /// Waits at most `timeout` for the thread's result. On timeout the thread
    /// is left behind: the callers bound every loop they run in one, so it
    /// ends by itself soon after.
    pub fn join(self, timeout: Duration) -> Result<T, NetnsError> {
        match self.rx.recv_timeout(timeout) {
            Ok(outcome) => {
                let _ = self.handle.join();
                outcome
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(NetnsError::TimedOut {
                label: self.label,
                timeout,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.handle.join();
                Err(NetnsError::Panicked {
                    label: self.label,
                    message: "(ended without a result)".into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error_not_a_panic() {
        let t = spawn_in_netns(Path::new("/nonexistent/netns"), "t", || 1).unwrap();
        assert!(matches!(
            t.join(Duration::from_secs(5)),
            Err(NetnsError::Enter { .. })
        ));
    }
}
