//! Running Rust code inside a named network namespace (a wrapper over
//! `switchyard_drivers::netns`, shared with the tests), and
//! reading an interface's counters from inside one.

use anyhow::{anyhow, Context, Result};
use std::time::Duration;
use switchyard_drivers::netns::{spawn_in_netns, NetnsThread};

pub use switchyard_drivers::netns::netns_path;

/// A thread running inside a namespace; join it with a deadline.
pub struct NsThread<T>(NetnsThread<Result<T>>);

/// Spawns `f` on a new thread named `label` inside namespace `netns` (the one
/// implementation in `switchyard_drivers::netns`, errors as `anyhow`).
pub fn spawn_in<T, F>(netns: &str, label: &str, f: F) -> Result<NsThread<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    Ok(NsThread(spawn_in_netns(&netns_path(netns), label, f)?))
}

impl<T> NsThread<T> {
    /// Waits at most `timeout` for the thread's result.
    ///
    /// On timeout the thread is left behind: every loop it runs is bounded in
    /// time, so it ends by itself soon after.
    pub fn join(self, timeout: Duration) -> Result<T> {
        self.0.join(timeout)?
    }
}

/// Runs `f` inside namespace `netns` and returns its result (bounded by `timeout`).
pub fn run_in<T, F>(netns: &str, timeout: Duration, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    spawn_in(netns, netns, f)?.join(timeout)
}

/// Receive counters of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
}

/// Reads `interface`'s receive counters as the calling thread's namespace sees
/// them. Uses /proc/thread-self/net/dev: /sys/class/net shows the namespace
/// sysfs was mounted in, not the thread's, and /proc/self/net the main
/// thread's. Both are the kernel's `dev_get_stats`, so the same numbers.
pub fn rx_counters_here(interface: &str) -> Result<RxCounters> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")
        .context("reading /proc/thread-self/net/dev")?;
    parse_net_dev(&text, interface)
        .ok_or_else(|| anyhow!("no interface {interface:?} in /proc/thread-self/net/dev"))
}

/// Extracts `interface`'s receive bytes and packets from /proc/net/dev text.
fn parse_net_dev(text: &str, interface: &str) -> Option<RxCounters> {
    text.lines().skip(2).find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let mut fields = rest.split_whitespace().map(|f| f.parse::<u64>());
        let bytes = fields.next()?.ok()?;
        let packets = fields.next()?.ok()?;
        Some(RxCounters { packets, bytes })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_are_parsed() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
             eth0: 1234567   8910    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n";
        assert_eq!(
            parse_net_dev(text, "eth0"),
            Some(RxCounters {
                packets: 8910,
                bytes: 1_234_567
            })
        );
        assert_eq!(parse_net_dev(text, "eth1"), None);
    }
}
