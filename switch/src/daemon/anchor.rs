//! The daemon's AF_XDP anchor: a traffic-free veth pair whose queue w holds
//! worker w's first socket (see `UmemPool::set_anchor`).
//!
//! Restart safety: the daemon deletes only an anchor it created and recorded.
//! Before the pair is made, its name is written to a record file next to the
//! control socket (`<control_socket>.anchor`), which this daemon keeps locked
//! (`flock`) for as long as it runs. The next start of the same daemon (same
//! control socket) takes the lock, deletes exactly the pair the record names
//! (a run killed with SIGKILL could not), and records its own. Nothing is ever
//! deleted by name pattern alone, so a container's veth (`sy` + 8 hex digits),
//! a user's interface or another daemon's anchor (another control socket,
//! another record) are never touched, also in a PID namespace where PIDs say
//! nothing about other daemons.
//!
//! Names are `sy_a<8 hex>` / `sy_b<8 hex>` (12 bytes): the `_` never appears
//! in container veth names, and the hex is random, not the PID, so two
//! daemons with the same PID in different PID namespaces never pick one name.

use crate::netlink;
use anyhow::{bail, Context, Result};
use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Prefix of the anchor end the workers bind.
const NAME_PREFIX: &str = "sy_a";
/// Prefix of the anchor's peer end.
const PEER_PREFIX: &str = "sy_b";
/// Attempts at a random name that no interface has yet.
const NAME_ATTEMPTS: usize = 16;

/// Path of the anchor record: next to the control socket (like the state
/// file), so two daemons with two sockets never share one.
pub fn record_path(control_socket: &Path) -> PathBuf {
    let mut name = control_socket
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".anchor");
    control_socket.with_file_name(name)
}

/// True for names of the form this module gives anchors (`sy_a` + 8 hex):
/// a record naming anything else is not acted on.
pub fn is_anchor_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX)
        .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The peer end of anchor `name`.
fn peer_of(name: &str) -> String {
    format!("{PEER_PREFIX}{}", &name[NAME_PREFIX.len()..])
}

/// A random anchor name (std's per-process random hash keys, the PID and the
/// clock mixed; no new dependency needed for 32 unpredictable bits).
fn random_name(attempt: usize) -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_usize(attempt);
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    format!("{NAME_PREFIX}{:08x}", hasher.finish() as u32)
}

/// The anchor pair of this daemon and the locked record that names it. Drop
/// deletes the pair, then the record.
pub struct Anchor {
    /// The end the workers bind.
    pub name: String,
    record_path: PathBuf,
    /// Holds the `flock` for the daemon's lifetime.
    _record: File,
}

impl Anchor {
    /// Takes the record next to `control_socket` (refusing if another daemon
    /// holds it), removes the pair a previous run recorded, records a new name
    /// and creates the pair with `workers` queues.
    pub fn create(control_socket: &Path, workers: usize) -> Result<Self> {
        let record_path = record_path(control_socket);
        let mut record = open_locked(&record_path)?;
        remove_recorded(&mut record, &record_path);
        let name = (0..NAME_ATTEMPTS)
            .map(random_name)
            .find(|candidate| {
                !netlink::link_exists(candidate) && !netlink::link_exists(&peer_of(candidate))
            })
            .context("no free name for the AF_XDP anchor veth")?;
        let peer = peer_of(&name);
        // Recorded before it exists: a crash right after the create leaves a
        // record the next start acts on, never an unrecorded pair.
        write_record(&mut record, &name)
            .with_context(|| format!("writing the anchor record {}", record_path.display()))?;
        if let Err(error) = netlink::create_anchor_pair(&name, &peer, workers as u32) {
            let _ = write_record(&mut record, "");
            return Err(error).with_context(|| format!("creating the AF_XDP anchor veth {name}"));
        }
        for end in [&name, &peer] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
        }
        info!(anchor = %name, record = %record_path.display(), "AF_XDP anchor created");
        Ok(Anchor {
            name,
            record_path,
            _record: record,
        })
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        match netlink::delete_link(&self.name) {
            Ok(_) => {
                // Removed while still locked: a daemon starting now either
                // fails to lock this file or makes a fresh one.
                let _ = std::fs::remove_file(&self.record_path);
            }
            Err(error) => {
                warn!(%error, anchor = %self.name, "could not delete the anchor veth; the next start will")
            }
        }
    }
}

/// Opens (creating it, mode 0600) and locks the record; a lock held elsewhere
/// means a daemon with this control socket is running.
fn open_locked(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening the anchor record {}", path.display()))?
    };
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another switchyard daemon is running with this control socket ({} is locked)",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Deletes the pair a previous run of this daemon recorded, if it is still there.
fn remove_recorded(record: &mut File, path: &Path) {
    let mut text = String::new();
    if record.read_to_string(&mut text).is_err() {
        return;
    }
    let name = text.trim();
    if name.is_empty() {
        return;
    }
    if !is_anchor_name(name) {
        warn!(record = %path.display(), content = %name, "ignoring an anchor record that names no anchor");
        return;
    }
    match netlink::delete_link(name) {
        Ok(true) => {
            info!(anchor = %name, "removed the anchor a previous run of this daemon left behind")
        }
        Ok(false) => {}
        Err(error) => warn!(%error, anchor = %name, "could not remove the previous run's anchor"),
    }
}

/// Replaces the record's content with `name` and syncs it.
fn write_record(record: &mut File, name: &str) -> std::io::Result<()> {
    record.set_len(0)?;
    record.rewind()?;
    record.write_all(name.as_bytes())?;
    record.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_names_never_look_like_container_veths() {
        for attempt in 0..64 {
            let name = random_name(attempt);
            assert!(is_anchor_name(&name), "{name}");
            assert!(name.len() <= 15);
            assert!(name.contains('_'), "container veths are sy + hex: {name}");
            let peer = peer_of(&name);
            assert!(peer.starts_with("sy_b") && peer.len() == name.len());
        }
        for not_ours in [
            "syaabcdef0",
            "sy1f374a80",
            "sy_a",
            "sy_a1234567",
            "sy_a1234567g",
            "sya1",
        ] {
            assert!(!is_anchor_name(not_ours), "{not_ours}");
        }
    }

    #[test]
    fn record_sits_next_to_the_control_socket() {
        assert_eq!(
            record_path(Path::new("/run/switchyard/ctl.sock")),
            Path::new("/run/switchyard/ctl.sock.anchor")
        );
    }

    #[test]
    fn a_second_holder_of_the_record_is_refused() {
        let dir = std::env::temp_dir().join(format!("sy-anchor-test-{}", std::process::id()));
        let path = dir.join("ctl.sock.anchor");
        let first = open_locked(&path).expect("first lock");
        let second = open_locked(&path);
        assert!(second.is_err(), "a second daemon must not take the record");
        drop(first);
        assert!(open_locked(&path).is_ok(), "the lock goes with its holder");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
