//! The neighbour table: IPv4 next hop -> MAC, as the kernel's ARP cache keeps it
//! for a router, bounded so that no traffic pattern can exhaust it.
//!
//! States follow Linux's in a reduced form:
//! - *incomplete*: a frame needed the address, a request went out, up to
//!   [`QUEUE_PER_NEIGHBOUR`] frames wait for the answer (more are dropped and
//!   counted); after [`NeighbourConfig::max_probes`] requests without answer the
//!   entry fails: its frames are released to be counted as dropped and freed;
//! - *reachable*: answered (or confirmed) within `reachable_ns`; frames go out;
//! - *stale*: older than that, frames still go out with the known MAC while a
//!   request is sent at most every `retry_ns`; unconfirmed for `max_probes`
//!   retries more, the entry is forgotten;
//! - *static*: from the config, never aged.
//!
//! Bounds: at most `max_entries` entries, of which at most `max_unresolved`
//! incomplete. A flood of frames to unknown addresses fills only the incomplete
//! share, which empties itself within `max_probes * retry_ns`; resolved
//! neighbours are never evicted to make room, so established traffic keeps its
//! next hops. Unsolicited ARP replies create nothing (Linux's `arp_accept = 0`):
//! only [`confirm`](NeighbourTable::confirm) with `create` adds an entry unasked
//! (the router passes it for an ARP request that targets one of the switch's
//! own addresses, and for a reply to one of them: with several workers the one
//! that asked may not be the one the reply reaches), and
//! [`apply_learned`](NeighbourTable::apply_learned), which takes what another
//! worker's table learned that way (see `crate::router`).
//!
//! Layout: entries live in a slab allocated once at `max_entries`; a map
//! (allocated at its bound, keyed hash) finds an address's slot. Frames wait
//! inside their entry's slot, so nothing allocates per packet. Aging is
//! incremental: [`sweep_step`](NeighbourTable::sweep_step) looks at a bounded
//! number of slots per call.
//!
//! The table is generic over the frame handle `H` it holds (a UMEM descriptor in
//! the worker, anything in tests): frames it gives back are the caller's to send
//! or free.

use crate::frame::Timestamp;
use crate::keyed_hash::KeyedState;
use crate::mac::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Frames kept per unresolved neighbour while its address is asked for (Linux
/// keeps a byte budget per neighbour; a few frames are enough to carry the first
/// packets of a connection, the rest are retransmitted by their senders).
pub const QUEUE_PER_NEIGHBOUR: usize = 4;

/// Sizes and timers of a neighbour table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Most entries of any state.
    pub max_entries: usize,
    /// Most incomplete entries (a share of `max_entries`).
    pub max_unresolved: usize,
    /// How long an answer keeps an entry reachable (Linux: 30 s base).
    pub reachable_ns: u64,
    /// Time between requests for one address (Linux: 1 s).
    pub retry_ns: u64,
    /// Requests without an answer before an entry fails (Linux: 3).
    pub max_probes: u8,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            max_entries: 4096,
            max_unresolved: 1024,
            reachable_ns: 30_000_000_000,
            retry_ns: 1_000_000_000,
            max_probes: 3,
        }
    }
}

/// State of one entry, as a dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighbourState {
    /// Asked for, no answer yet.
    Incomplete,
    /// Answered within the reachable time.
    Reachable,
    /// Known, but not confirmed lately: used while being asked for again.
    Stale,
    /// Configured; never aged.
    Static,
}

/// Why a frame could not wait for its next hop's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourDrop {
    /// Its neighbour already has [`QUEUE_PER_NEIGHBOUR`] frames waiting.
    QueueFull,
    /// No room for another unresolved neighbour.
    TableFull,
}

/// What [`NeighbourTable::resolve`] decided for one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve<H> {
    /// Send it to `mac` now; `probe` asks the caller to send a request for the
    /// address too (the entry is stale and a retry is due).
    Ready {
        /// The next hop's MAC.
        mac: MacAddr,
        /// The frame, back to the caller.
        frame: H,
        /// Also send an ARP request for the address.
        probe: bool,
    },
    /// The frame waits in the table; `probe` asks the caller to send a request
    /// for the address (the first frame for it, or a retry is due).
    Queued {
        /// Send an ARP request for the address.
        probe: bool,
    },
    /// The frame cannot wait: the caller counts and frees it.
    Dropped {
        /// The frame, back to the caller.
        frame: H,
        /// Why.
        reason: NeighbourDrop,
    },
}

/// Error adding a static entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NeighbourError {
    /// The table holds `max_entries` entries already.
    #[error("the neighbour table is full ({0} entries)")]
    TableFull(usize),
}

/// Counters of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NeighbourStats {
    /// Entries now.
    pub entries: usize,
    /// Incomplete entries now.
    pub unresolved: usize,
    /// Entries that failed (no answer) and released their frames.
    pub failed: u64,
    /// Stale entries forgotten after going unconfirmed.
    pub expired: u64,
    /// Frames dropped because their neighbour's queue was full.
    pub queue_full: u64,
    /// Frames dropped because no unresolved entry could be added.
    pub table_full: u64,
}

/// One neighbour as a dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NeighbourEntry {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC (zero while incomplete).
    pub mac: MacAddr,
    /// Its state.
    pub state: NeighbourState,
}

#[derive(Clone, Debug)]
struct Slot<H> {
    used: bool,
    ip: u32,
    mac: MacAddr,
    state: NeighbourState,
    /// Last answer (reachable/stale) or first request (incomplete).
    confirmed: Timestamp,
    /// Last request sent for the address.
    last_probe: Timestamp,
    /// Requests sent since the last answer.
    probes: u8,
    queue: [Option<H>; QUEUE_PER_NEIGHBOUR],
    queued: usize,
}

impl<H> Slot<H> {
    fn empty() -> Self {
        Slot {
            used: false,
            ip: 0,
            mac: MacAddr([0; 6]),
            state: NeighbourState::Incomplete,
            confirmed: Timestamp(0),
            last_probe: Timestamp(0),
            probes: 0,
            queue: std::array::from_fn(|_| None),
            queued: 0,
        }
    }

    /// Moves the waiting frames into `out`, oldest first.
    fn release(&mut self, out: &mut Vec<H>) {
        for frame in self.queue[..self.queued].iter_mut() {
            if let Some(frame) = frame.take() {
                out.push(frame);
            }
        }
        self.queued = 0;
    }
}

/// The bounded IPv4 neighbour table; see the module docs.
#[derive(Clone, Debug)]
pub struct NeighbourTable<H> {
    config: NeighbourConfig,
    slots: Vec<Slot<H>>,
    index: HashMap<u32, u32, KeyedState>,
    free: Vec<u32>,
    unresolved: usize,
    /// Slots of the incomplete entries (at most `max_unresolved`, allocated
    /// once), so their retries can be timed without walking the slab.
    incomplete: Vec<u32>,
    incomplete_cursor: usize,
    cursor: usize,
    stats: NeighbourStats,
}

impl<H> NeighbourTable<H> {
    /// An empty table with every slot allocated now (`max_entries` of them).
    pub fn new(config: NeighbourConfig) -> Self {
        let max = config.max_entries.max(1);
        let config = NeighbourConfig {
            max_entries: max,
            max_unresolved: config.max_unresolved.clamp(1, max),
            max_probes: config.max_probes.max(1),
            ..config
        };
        NeighbourTable {
            config,
            slots: (0..max).map(|_| Slot::empty()).collect(),
            index: HashMap::with_capacity_and_hasher(max, KeyedState::random()),
            free: (0..max as u32).rev().collect(),
            unresolved: 0,
            incomplete: Vec::with_capacity(config.max_unresolved.clamp(1, max)),
            incomplete_cursor: 0,
            cursor: 0,
            stats: NeighbourStats::default(),
        }
    }

    /// The table's sizes and timers (bounds clamped as applied).
    pub fn config(&self) -> NeighbourConfig {
        self.config
    }

    /// The MAC frames for `ip` go to now (reachable, stale or static).
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        let slot = &self.slots[*self.index.get(&u32::from(ip))? as usize];
        (slot.state != NeighbourState::Incomplete).then_some(slot.mac)
    }

    /// Decides what happens to `frame`, whose next hop is `ip`: sent now, kept
    /// until the address is known, or dropped (see [`Resolve`]).
    pub fn resolve(&mut self, ip: Ipv4Addr, frame: H, now: Timestamp) -> Resolve<H> {
        let key = u32::from(ip);
        if let Some(&at) = self.index.get(&key) {
            let config = self.config;
            let slot = &mut self.slots[at as usize];
            let retry_due = now.saturating_since(slot.last_probe) >= config.retry_ns;
            return match slot.state {
                NeighbourState::Static | NeighbourState::Reachable | NeighbourState::Stale => {
                    if slot.state == NeighbourState::Reachable
                        && now.saturating_since(slot.confirmed) >= config.reachable_ns
                    {
                        slot.state = NeighbourState::Stale;
                    }
                    let probe = slot.state == NeighbourState::Stale && retry_due;
                    if probe {
                        slot.last_probe = now;
                        slot.probes = slot.probes.saturating_add(1);
                    }
                    Resolve::Ready {
                        mac: slot.mac,
                        frame,
                        probe,
                    }
                }
                NeighbourState::Incomplete => {
                    if slot.queued == QUEUE_PER_NEIGHBOUR {
                        self.stats.queue_full += 1;
                        return Resolve::Dropped {
                            frame,
                            reason: NeighbourDrop::QueueFull,
                        };
                    }
                    slot.queue[slot.queued] = Some(frame);
                    slot.queued += 1;
                    let probe = retry_due && slot.probes < config.max_probes;
                    if probe {
                        slot.last_probe = now;
                        slot.probes += 1;
                    }
                    Resolve::Queued { probe }
                }
            };
        }
        if self.unresolved >= self.config.max_unresolved {
            self.stats.table_full += 1;
            return Resolve::Dropped {
                frame,
                reason: NeighbourDrop::TableFull,
            };
        }
        let Some(at) = self.free.pop() else {
            self.stats.table_full += 1;
            return Resolve::Dropped {
                frame,
                reason: NeighbourDrop::TableFull,
            };
        };
        let slot = self.occupy(at, key, MacAddr([0; 6]), NeighbourState::Incomplete, now);
        slot.probes = 1;
        slot.queue[0] = Some(frame);
        slot.queued = 1;
        self.unresolved += 1;
        self.incomplete.push(at);
        Resolve::Queued { probe: true }
    }

    /// Records that `ip` is at `mac` (an ARP reply, or a request from it). An
    /// entry that waited releases its frames into `released`, to be sent to
    /// `mac` in order. Without an entry, one is added only when `create` is true
    /// (the neighbour asked for one of the switch's own addresses, so it will
    /// talk to us) and there is room. Static entries are never changed. Returns
    /// whether the table now knows `ip` at `mac`.
    pub fn confirm(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        now: Timestamp,
        create: bool,
        released: &mut Vec<H>,
    ) -> bool {
        let key = u32::from(ip);
        if let Some(&at) = self.index.get(&key) {
            let slot = &mut self.slots[at as usize];
            match slot.state {
                NeighbourState::Static => return slot.mac == mac,
                NeighbourState::Incomplete => {
                    slot.release(released);
                    self.leave_incomplete(at);
                }
                NeighbourState::Reachable | NeighbourState::Stale => {}
            }
            let slot = &mut self.slots[at as usize];
            slot.state = NeighbourState::Reachable;
            slot.mac = mac;
            slot.confirmed = now;
            slot.probes = 0;
            return true;
        }
        if !create {
            return false;
        }
        let Some(at) = self.free.pop() else {
            return false;
        };
        self.occupy(at, key, mac, NeighbourState::Reachable, now);
        true
    }

    /// Records what another worker's table learned: `ip` at `mac`, confirmed
    /// at `at` (the workers share one clock epoch). Like
    /// [`confirm`](Self::confirm) with `create` (the other worker only shares
    /// what an ARP frame addressed to the switch told it), except that a
    /// newer local confirmation wins: a reachable or stale entry confirmed
    /// after `at` is left as it is, so events that arrive late or out of
    /// order never bring back an older MAC. An incomplete entry takes any
    /// answer and releases its frames into `released`; static entries are
    /// never changed. Returns whether the table now knows `ip` at `mac`.
    pub fn apply_learned(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        at: Timestamp,
        released: &mut Vec<H>,
    ) -> bool {
        if let Some(&slot) = self.index.get(&u32::from(ip)) {
            let slot = &self.slots[slot as usize];
            if matches!(
                slot.state,
                NeighbourState::Reachable | NeighbourState::Stale
            ) && slot.confirmed > at
            {
                return slot.mac == mac;
            }
        }
        self.confirm(ip, mac, at, true, released)
    }

    /// Puts a new entry for `key` into free slot `at` (indexed, no probes,
    /// nothing queued) and returns it for the caller's finishing touches.
    fn occupy(
        &mut self,
        at: u32,
        key: u32,
        mac: MacAddr,
        state: NeighbourState,
        now: Timestamp,
    ) -> &mut Slot<H> {
        self.index.insert(key, at);
        let slot = &mut self.slots[at as usize];
        slot.used = true;
        slot.ip = key;
        slot.mac = mac;
        slot.state = state;
        slot.confirmed = now;
        slot.last_probe = now;
        slot.probes = 0;
        slot.queued = 0;
        slot
    }

    /// Adds or replaces a static entry (from the config). A waiting entry
    /// for the address releases its frames into `released`.
    pub fn set_static(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        released: &mut Vec<H>,
    ) -> Result<(), NeighbourError> {
        let key = u32::from(ip);
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => {
                let at = self
                    .free
                    .pop()
                    .ok_or(NeighbourError::TableFull(self.config.max_entries))?;
                self.occupy(at, key, mac, NeighbourState::Static, Timestamp(0));
                at
            }
        };
        let slot = &mut self.slots[at as usize];
        if slot.state == NeighbourState::Incomplete {
            slot.release(released);
            self.leave_incomplete(at);
        }
        let slot = &mut self.slots[at as usize];
        slot.state = NeighbourState::Static;
        slot.mac = mac;
        slot.probes = 0;
        Ok(())
    }

    /// Forgets `ip`, whatever its state; its waiting frames go to `released`.
    pub fn remove(&mut self, ip: Ipv4Addr, released: &mut Vec<H>) -> bool {
        let Some(at) = self.index.remove(&u32::from(ip)) else {
            return false;
        };
        self.free_slot(at as usize, released);
        true
    }

    fn free_slot(&mut self, at: usize, released: &mut Vec<H>) {
        let slot = &mut self.slots[at];
        let was_incomplete = slot.state == NeighbourState::Incomplete;
        slot.release(released);
        slot.used = false;
        if was_incomplete {
            self.leave_incomplete(at as u32);
        }
        self.free.push(at as u32);
    }

    /// Bookkeeping of slot `at` leaving the incomplete state (answered, made
    /// static, failed or removed): O(incomplete entries), at most
    /// `max_unresolved`, and only when an entry resolves.
    fn leave_incomplete(&mut self, at: u32) {
        self.unresolved -= 1;
        if let Some(pos) = self.incomplete.iter().position(|&s| s == at) {
            self.incomplete.swap_remove(pos);
        }
    }

    /// Ages up to `budget` incomplete entries from where the last call
    /// stopped, as [`sweep_step`](Self::sweep_step) does: retries are asked
    /// for (into `probes`) on time, and entries that fail release their frames.
    /// With no more than `budget` entries waiting, every one is looked at on
    /// every call, so a retry is never later than the next call after it is
    /// due.
    pub fn sweep_unresolved(
        &mut self,
        now: Timestamp,
        budget: usize,
        released: &mut Vec<H>,
        probes: &mut Vec<Ipv4Addr>,
    ) {
        for _ in 0..budget.min(self.incomplete.len()) {
            let n = self.incomplete.len();
            if n == 0 {
                break;
            }
            let pos = self.incomplete_cursor % n;
            let at = self.incomplete[pos];
            self.age_slot(at as usize, now, released, probes);
            // A failed entry was swapped out: `pos` now holds another one.
            if self.incomplete.get(pos) == Some(&at) {
                self.incomplete_cursor = pos + 1;
            } else {
                self.incomplete_cursor = pos;
            }
        }
    }

    /// Ages up to `budget` slots from where the last call stopped: incomplete
    /// entries are asked for again when a retry is due (their addresses go to
    /// `probes`) and fail after `max_probes` requests (their frames go to
    /// `released`, as drops); reachable ones turn stale after the reachable
    /// time; stale ones unconfirmed for `max_probes` retries more are forgotten.
    /// A whole pass takes `max_entries / budget` calls.
    pub fn sweep_step(
        &mut self,
        now: Timestamp,
        budget: usize,
        released: &mut Vec<H>,
        probes: &mut Vec<Ipv4Addr>,
    ) {
        let n = self.slots.len();
        for _ in 0..budget.min(n) {
            let at = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            self.age_slot(at, now, released, probes);
        }
    }

    /// [`sweep_step`](Self::sweep_step) over every slot.
    pub fn sweep(&mut self, now: Timestamp, released: &mut Vec<H>, probes: &mut Vec<Ipv4Addr>) {
        for at in 0..self.slots.len() {
            self.age_slot(at, now, released, probes);
        }
    }

    fn age_slot(
        &mut self,
        at: usize,
        now: Timestamp,
        released: &mut Vec<H>,
        probes: &mut Vec<Ipv4Addr>,
    ) {
        let config = self.config;
        let slot = &mut self.slots[at];
        if !slot.used {
            return;
        }
        let retry_due = now.saturating_since(slot.last_probe) >= config.retry_ns;
        match slot.state {
            NeighbourState::Static => {}
            NeighbourState::Incomplete => {
                if !retry_due {
                    return;
                }
                if slot.probes >= config.max_probes {
                    let ip = slot.ip;
                    self.index.remove(&ip);
                    self.free_slot(at, released);
                    self.stats.failed += 1;
                } else {
                    slot.probes += 1;
                    slot.last_probe = now;
                    probes.push(Ipv4Addr::from(slot.ip));
                }
            }
            NeighbourState::Reachable => {
                if now.saturating_since(slot.confirmed) >= config.reachable_ns {
                    slot.state = NeighbourState::Stale;
                    slot.probes = 0;
                }
            }
            NeighbourState::Stale => {
                let limit = config.reachable_ns
                    + config.retry_ns * u64::from(config.max_probes).saturating_add(1);
                if now.saturating_since(slot.confirmed) >= limit {
                    let ip = slot.ip;
                    self.index.remove(&ip);
                    self.free_slot(at, released);
                    self.stats.expired += 1;
                }
            }
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> NeighbourStats {
        NeighbourStats {
            entries: self.index.len(),
            unresolved: self.unresolved,
            ..self.stats
        }
    }

    /// Every entry, for dumps (control path: walks the whole slab).
    pub fn entries(&self) -> impl Iterator<Item = NeighbourEntry> + '_ {
        self.slots
            .iter()
            .filter(|s| s.used)
            .map(|s| NeighbourEntry {
                ip: Ipv4Addr::from(s.ip),
                mac: s.mac,
                state: s.state,
            })
    }

    /// The state of `ip`'s entry, if any (tests, dumps).
    pub fn state(&self, ip: Ipv4Addr) -> Option<NeighbourState> {
        Some(self.slots[*self.index.get(&u32::from(ip))? as usize].state)
    }
}
