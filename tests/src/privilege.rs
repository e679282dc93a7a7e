//! Whether this process may build namespaces and veths, and what to do when it may not.

use std::fs;

/// Capability bit of CAP_NET_ADMIN (veths, bridges, XDP).
const CAP_NET_ADMIN: u32 = 12;
/// Capability bit of CAP_SYS_ADMIN (`ip netns add` mounts, `setns`).
const CAP_SYS_ADMIN: u32 = 21;

/// Reads the effective capability mask of this process from /proc/self/status.
pub fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// Explains why end-to-end tests cannot run here, or `None` when they can.
pub fn missing_privilege() -> Option<String> {
    let caps = effective_caps().unwrap_or(0);
    let mut missing = Vec::new();
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        missing.push("CAP_NET_ADMIN");
    }
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push("CAP_SYS_ADMIN");
    }
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "end-to-end tests need root (euid {} lacks {})",
            crate::sys::euid(),
            missing.join(", ")
        ))
    }
}

/// Returns true when the test may go on; otherwise skips or fails it.
///
/// Without the privileges: under `CI=true` this panics, because a skipped end-to-end
/// suite in CI would look green while testing nothing; elsewhere it prints `SKIP: ...`
/// and returns false so the test can `return` early (see [`crate::require_root!`]).
#[track_caller]
pub fn require_root() -> bool {
    match missing_privilege() {
        None => true,
        Some(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}; CI=true, so this is a failure, not a skip");
            }
            eprintln!("SKIP: {why}");
            false
        }
    }
}

/// `return`s from the calling test (after printing `SKIP: ...`) unless it has root.
///
/// See [`require_root`] for the CI behaviour.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::require_root() {
            return;
        }
    };
}
