//! Unique, short names for everything a test creates in the kernel.
//!
//! Tests run in parallel threads and several test binaries may run at once, so every
//! namespace, veth and bridge carries `syt` + a per-process + per-test id. Linux
//! interface names are limited to 15 bytes (IFNAMSIZ - 1), which keeps the id short.

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every kernel object the harness creates: `ip link | grep syt` finds leftovers.
pub const PREFIX: &str = "syt";

/// Longest Linux interface name (IFNAMSIZ minus the NUL).
pub const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh id: 4 hex digits of the PID, then 2 hex digits of a per-process counter.
///
/// Two tests of one process never share an id. PIDs above 65535 can alias, and a
/// crashed run can leave objects behind, so an id whose prefix is already in use by a
/// namespace or interface is skipped.
pub fn unique_id() -> String {
    for _ in 0..256 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff;
        let id = format!("{:04x}{:02x}", std::process::id() & 0xffff, n);
        if !prefix_in_use(&format!("{PREFIX}{id}")) {
            return id;
        }
    }
    panic!("no free {PREFIX}<id> prefix for this process: clean up stale syt* namespaces/links");
}

fn prefix_in_use(prefix: &str) -> bool {
    ["/var/run/netns", "/sys/class/net"].iter().any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    })
}

/// Builds `syt<id><suffix>` and checks it fits an interface name.
///
/// Panics with the offending name rather than letting `ip` fail with a vaguer message.
#[track_caller]
pub fn ifname(id: &str, suffix: &str) -> String {
    let name = format!("{PREFIX}{id}{suffix}");
    assert!(
        name.len() <= IFNAME_MAX,
        "interface name {name:?} is longer than {IFNAME_MAX} bytes: use a shorter host or network name"
    );
    name
}

/// Builds the namespace name for host `host` of lab `id` (namespace names have no 15-byte limit).
pub fn netns_name(id: &str, host: &str) -> String {
    format!("{PREFIX}{id}-{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_short() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 6);
        assert!(ifname(&a, "h1").len() <= IFNAME_MAX);
        assert!(ifname(&a, "b255").len() <= IFNAME_MAX);
    }

    #[test]
    #[should_panic(expected = "longer than 15")]
    fn long_names_are_refused() {
        ifname("abcdef", "toolong");
    }
}
