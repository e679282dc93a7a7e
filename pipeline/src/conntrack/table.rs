//! The bounded connection-tracking table: a slab of entries allocated once,
//! the index of their tuples, the expiry lists, early drop, and the counters.
//! See the module docs of [`crate::conntrack`] for the design.

use super::index::Index;
use super::key::{Direction, EntryId, Tuple};
use super::lru::Lists;
use super::packet::Packet;
use super::tcp_conn::{EntryStatus, TcpConn, TcpOutcome, TcpState};
use super::timeouts::{TimeoutClass, Timeouts};
use super::verdict::{Invalid, InvalidCounters, RemoveReason, Removed, Track};
use crate::frame::Timestamp;
use crate::keyed_hash::KeyHasher;
use std::net::Ipv4Addr;

/// Size and timeouts of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Most entries (flows) at once, 1 to [`MAX_ENTRIES`](Self::MAX_ENTRIES):
    /// all of them are allocated up front (see
    /// [`ConntrackTable::memory_for`]).
    pub max_entries: usize,
    /// How long entries live after their last packet.
    pub timeouts: Timeouts,
}

impl ConntrackConfig {
    /// The default size: Linux's `nf_conntrack_max` on a machine with 4 GiB
    /// or more (50 MiB here: 200 bytes per entry, index and expiry links
    /// included; the entry itself is 152 of them, 40 for accounting).
    pub const DEFAULT_ENTRIES: usize = 262_144;
    /// The largest size honoured (800 MiB): larger requests are
    /// clamped. Indices are 31-bit, so the bound is the memory, not the
    /// format.
    pub const MAX_ENTRIES: usize = 1 << 22;
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_entries: Self::DEFAULT_ENTRIES,
            timeouts: Timeouts::LINUX,
        }
    }
}

/// Why a table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConntrackError {
    /// Another live entry already has this tuple (a NAT choosing a reply
    /// tuple picks another port and tries again).
    #[error("tuple {0} is already tracked")]
    TupleInUse(Tuple),
    /// The handle names no live entry (removed, expired, or its slot reused).
    #[error("no such conntrack entry")]
    NoSuchEntry,
    /// The entry has seen a reply: its reply tuple can no longer change.
    #[error("the entry has seen a reply; its reply tuple is fixed")]
    AlreadyReplied,
    /// A reply tuple with another protocol than the original's, or a packet
    /// whose tuple's protocol is not its kind's.
    #[error("a conntrack entry's tuples must have its packet's protocol")]
    ProtocolMismatch,
}

/// What an entry tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    Icmp,
}

/// A flow's state, as a dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// A TCP connection in this state.
    Tcp(TcpState),
    /// UDP, no reply yet.
    UdpUnreplied,
    /// UDP, replied.
    UdpReplied,
    /// ICMP echo.
    Icmp,
}

/// Packets and bytes one direction of a flow carried, as Linux's conntrack
/// accounting (`nf_conntrack_acct`) counts them: what an operator looks at
/// to tell a busy flow from an idle one, or a one-way flow from a replied one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectionCounters {
    /// Packets tracked as this flow's (INVALID ones and ICMP errors about
    /// it not included).
    pub packets: u64,
    /// Their bytes: each packet's IP total length (header included, link
    /// layer not), as Linux counts.
    pub bytes: u64,
}

/// A flow's counters both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowCounters {
    /// Packets carrying the original tuple (the side that opened the flow).
    pub original: DirectionCounters,
    /// Packets carrying the reply tuple.
    pub reply: DirectionCounters,
}

impl FlowCounters {
    /// The counters of direction `dir`.
    pub fn get(&self, dir: Direction) -> DirectionCounters {
        match dir {
            Direction::Original => self.original,
            Direction::Reply => self.reply,
        }
    }

    /// Counts one packet of `bytes` going `dir` (the hot path: two adds, no
    /// branch beyond the direction).
    #[inline]
    fn count(&mut self, dir: Direction, bytes: u32) {
        let c = match dir {
            Direction::Original => &mut self.original,
            Direction::Reply => &mut self.reply,
        };
        c.packets = c.packets.wrapping_add(1);
        c.bytes = c.bytes.wrapping_add(u64::from(bytes));
    }
}

/// One entry as a dump (`ctl conntrack`) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConntrackEntry {
    /// Its handle.
    pub id: EntryId,
    /// The tuple of the packet that created it.
    pub original: Tuple,
    /// The tuple replies carry (differs from `original.invert()` under NAT).
    pub reply: Tuple,
    /// Protocol state.
    pub state: FlowState,
    /// The expiry list it is on (which timeout applies).
    pub class: TimeoutClass,
    /// Completed its handshake (TCP) or replied (UDP): never evicted for a
    /// new flow.
    pub assured: bool,
    /// A packet went the reply way.
    pub seen_reply: bool,
    /// When it expires without another packet.
    pub deadline: Timestamp,
    /// Whole seconds left until then.
    pub expires_in_secs: u64,
    /// When its first packet was tracked (the table's clock then).
    pub created: Timestamp,
    /// Whole seconds since then (how long the connection has lasted).
    pub age_secs: u64,
    /// Packets and bytes each way, its first packet included.
    pub counters: FlowCounters,
}

/// Counters of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConntrackStats {
    /// Entries now.
    pub entries: usize,
    /// The table's bound.
    pub max_entries: usize,
    /// Entries now that a new flow may evict (unassured or closing).
    pub evictable: usize,
    /// Entries created.
    pub inserted: u64,
    /// Entries removed at their timeout.
    pub expired: u64,
    /// Entries evicted for new flows (early drop).
    pub early_dropped: u64,
    /// Closed TCP entries removed for a reopening SYN.
    pub reopened: u64,
    /// Entries removed by the caller.
    pub removed: u64,
    /// New flows refused because nothing was evictable.
    pub full: u64,
    /// ICMP errors matched to a flow.
    pub related: u64,
    /// INVALID packets by reason.
    pub invalid: InvalidCounters,
}

impl ConntrackStats {
    /// Adds `other` (totals over several workers' tables: entries and
    /// bounds add up too).
    pub fn add(&mut self, other: &ConntrackStats) {
        self.entries += other.entries;
        self.max_entries += other.max_entries;
        self.evictable += other.evictable;
        self.inserted += other.inserted;
        self.expired += other.expired;
        self.early_dropped += other.early_dropped;
        self.reopened += other.reopened;
        self.removed += other.removed;
        self.full += other.full;
        self.related += other.related;
        self.invalid.add(&other.invalid);
    }
}

/// One slot of the slab. Accounting (`created` and `counters`) grew it by
/// 40 bytes, from 112 to 152 (u64 counters: a busy flow would wrap u32
/// packets within the hour); the hot path adds to two of them per packet,
/// in the entry it already touches, and allocates nothing.
#[derive(Clone, Copy, Debug)]
struct Entry {
    original: Tuple,
    reply: Tuple,
    /// Last refresh, nanoseconds of the table's clock.
    last_seen: u64,
    /// The table's clock when the entry was created (its age in dumps).
    created: u64,
    /// Packets and bytes each way.
    counters: FlowCounters,
    generation: u32,
    used: bool,
    seen_reply: bool,
    assured: bool,
    kind: Kind,
    class: TimeoutClass,
    tcp: TcpConn,
}

const NO_TUPLE: Tuple = Tuple {
    protocol: 0,
    src: Ipv4Addr::UNSPECIFIED,
    dst: Ipv4Addr::UNSPECIFIED,
    src_port: 0,
    dst_port: 0,
};

impl Entry {
    fn empty() -> Entry {
        Entry {
            original: NO_TUPLE,
            reply: NO_TUPLE,
            last_seen: 0,
            created: 0,
            counters: FlowCounters::default(),
            generation: 0,
            used: false,
            seen_reply: false,
            assured: false,
            kind: Kind::Udp,
            class: TimeoutClass::UdpUnreplied,
            tcp: TcpConn::default(),
        }
    }

    #[inline]
    fn tuple(&self, dir: u32) -> &Tuple {
        if dir == 0 {
            &self.original
        } else {
            &self.reply
        }
    }
}

/// How long after its last refresh an entry's deadline is left as it is
/// (nanoseconds): the precision of every timeout.
pub const REFRESH_GRANULARITY: u64 = 1_000_000_000;

/// How many tuples [`ConntrackTable::prefetch`] hashes ahead of the entries
/// it prefetches: enough for a slot to arrive from memory meanwhile.
pub const PREFETCH_AHEAD: usize = 8;

/// Index value of entry `i`'s tuple in direction `dir`.
#[inline]
const fn value(i: u32, dir: Direction) -> u32 {
    (i << 1) | dir.index() as u32
}

#[inline]
const fn direction(value: u32) -> Direction {
    if value & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

/// The bounded connection-tracking table; see the module docs of
/// [`crate::conntrack`].
#[derive(Clone, Debug)]
pub struct ConntrackTable {
    config: ConntrackConfig,
    /// Each class's timeout in nanoseconds.
    timeouts: [u64; TimeoutClass::COUNT],
    entries: Box<[Entry]>,
    free: Vec<u32>,
    index: Index,
    lists: Lists,
    /// The latest time any call passed in: the table's clock never goes
    /// back, so every expiry list stays in deadline order.
    clock: u64,
    stats: ConntrackStats,
}

impl ConntrackTable {
    /// An empty table with all its memory allocated now; hash keys are random.
    pub fn new(config: ConntrackConfig) -> Self {
        Self::with_hasher(config, KeyHasher::random())
    }

    /// Like [`new`](Self::new) with hash keys derived from `seed`, for
    /// reproducible tests and benchmarks. Not for live traffic: known keys let
    /// a sender pick colliding tuples.
    pub fn with_seed(config: ConntrackConfig, seed: u64) -> Self {
        Self::with_hasher(config, KeyHasher::from_seed(seed))
    }

    fn with_hasher(config: ConntrackConfig, hasher: KeyHasher) -> Self {
        let max = config.max_entries.clamp(1, ConntrackConfig::MAX_ENTRIES);
        let config = ConntrackConfig {
            max_entries: max,
            ..config
        };
        ConntrackTable {
            config,
            timeouts: config.timeouts.nanos(),
            entries: vec![Entry::empty(); max].into_boxed_slice(),
            free: (0..max as u32).rev().collect(),
            index: Index::new(2 * max, hasher),
            lists: Lists::new(max),
            clock: 0,
            stats: ConntrackStats {
                max_entries: max,
                ..ConntrackStats::default()
            },
        }
    }

    /// Bytes a table of `max_entries` allocates (clamped as
    /// [`new`](Self::new) clamps it), for config documentation and checks.
    pub fn memory_for(max_entries: usize) -> usize {
        let n = max_entries.clamp(1, ConntrackConfig::MAX_ENTRIES);
        n * (std::mem::size_of::<Entry>() + std::mem::size_of::<u32>())
            + Lists::bytes_for(n)
            + Index::bytes_for(2 * n)
    }

    /// Size and timeouts as applied (size clamped).
    pub fn config(&self) -> ConntrackConfig {
        self.config
    }

    /// Changes the timeouts (a config reload). Entries keep their class and
    /// last packet time; each class's new timeout applies to all of its
    /// entries at once, so the expiry lists stay in order.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.config.timeouts = timeouts;
        self.timeouts = timeouts.nanos();
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.config.max_entries - self.free.len()
    }

    /// True when no entry is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters and sizes.
    pub fn stats(&self) -> ConntrackStats {
        let evictable = TimeoutClass::ALL
            .iter()
            .filter(|c| c.evictable())
            .map(|c| self.lists.len(*c))
            .sum();
        ConntrackStats {
            entries: self.len(),
            evictable,
            ..self.stats
        }
    }

    /// The entry and direction `tuple` belongs to, if any live entry has it
    /// (an entry past its deadline counts as gone). Changes nothing.
    pub fn lookup(&self, tuple: &Tuple, now: Timestamp) -> Option<(EntryId, Direction)> {
        let now = self.clock.max(now.0);
        let (i, dir) = self.find(tuple)?;
        let e = &self.entries[i as usize];
        (!self.expired(e, now)).then_some((EntryId::new(i, e.generation), dir))
    }

    /// Prefetch hints for the lookups of a batch's `tuples`, to call before
    /// looking them up one by one: each tuple's index slot is prefetched, and
    /// [`PREFETCH_AHEAD`] tuples later (its slot has arrived by then) the
    /// entry that slot names, so the batch's cache and TLB misses overlap
    /// instead of stalling each packet in turn (VPP's two-pass lookups).
    /// Only hints: changes nothing, allocates nothing, and a wrong guess (a
    /// colliding hash) costs a wasted prefetch.
    pub fn prefetch(&self, tuples: impl IntoIterator<Item = Tuple>) {
        let mut ring = [0u32; PREFETCH_AHEAD];
        let mut n = 0usize;
        for tuple in tuples {
            let h = self.index.hash(&tuple);
            self.index.prefetch(h);
            let slot = &mut ring[n % PREFETCH_AHEAD];
            if n >= PREFETCH_AHEAD {
                self.prefetch_entry(*slot);
            }
            *slot = h;
            n += 1;
        }
        for k in n.saturating_sub(PREFETCH_AHEAD)..n {
            self.prefetch_entry(ring[k % PREFETCH_AHEAD]);
        }
    }

    #[inline]
    fn prefetch_entry(&self, hash: u32) {
        if let Some(v) = self.index.candidate(hash) {
            switchyard_mem::prefetch(&self.entries[(v >> 1) as usize]);
        }
    }

    /// Tracks one packet, creating an entry for a new flow with the
    /// untranslated reply tuple (`tuple.invert()`): the whole of conntrack for
    /// a caller without NAT. Entries removed on the way (an expired one found
    /// by the lookup, one evicted or reclaimed for the new flow, a closed one
    /// reopened) are pushed to `removed`: at most two per call, so a vector
    /// with room for two per packet of a batch never grows.
    ///
    /// `bytes` is the packet's IP total length, counted in the entry's
    /// [`FlowCounters`] when the packet is the flow's (a new or existing
    /// entry; not an INVALID packet, not an ICMP error).
    pub fn track(
        &mut self,
        packet: &Packet,
        bytes: u32,
        now: Timestamp,
        removed: &mut Vec<Removed>,
    ) -> Track {
        let tuple = match *packet {
            Packet::IcmpError { outer_dst, quoted } => {
                return self.related(outer_dst, &quoted, now)
            }
            _ => *packet.tuple(),
        };
        if tuple.protocol != packet.protocol() {
            return self.invalid(Invalid::Malformed);
        }
        let now = self.advance(now);
        if let Some((i, dir)) = self.find_live(&tuple, now, removed) {
            match self.apply(i, dir, packet, bytes, now, removed) {
                Track::Restart => {}
                verdict => return verdict,
            }
        }
        match self.create(packet, tuple.invert(), bytes, now, removed) {
            Ok(verdict) => verdict,
            Err(ConntrackError::TupleInUse(_)) => self.invalid(Invalid::TupleClash),
            Err(_) => self.invalid(Invalid::Malformed),
        }
    }

    /// Creates the entry of a new flow whose first packet is `packet`, with an
    /// explicit `reply` tuple (NAT: the translated addresses and ports replies
    /// will carry). The packet must be able to open a flow (a TCP SYN, any UDP
    /// datagram, an echo request), else the verdict is INVALID; a full table
    /// evicts as [`track`](Self::track) does (into `removed`). An ICMP error
    /// creates nothing: it is matched as [`related`](Self::related) would.
    ///
    /// `Err(TupleInUse)` when a live entry holds either tuple already: nothing
    /// changed, the caller may pick another reply tuple. `bytes` (the IP
    /// total length) is the new entry's first count, as in
    /// [`track`](Self::track).
    pub fn insert(
        &mut self,
        packet: &Packet,
        reply: Tuple,
        bytes: u32,
        now: Timestamp,
        removed: &mut Vec<Removed>,
    ) -> Result<Track, ConntrackError> {
        if let Packet::IcmpError { outer_dst, quoted } = *packet {
            return Ok(self.related(outer_dst, &quoted, now));
        }
        let now = self.advance(now);
        self.create(packet, reply, bytes, now, removed)
    }

    /// Tracks `packet` as part of entry `id` going `dir` (what
    /// [`lookup`](Self::lookup) found for it): updates protocol state and
    /// timeout. [`Track::Restart`] when the packet reopens a closed TCP
    /// connection: the entry is gone (into `removed`) and the packet is a new
    /// flow. `bytes` (the IP total length) is counted to `dir` as in
    /// [`track`](Self::track).
    pub fn update(
        &mut self,
        id: EntryId,
        dir: Direction,
        packet: &Packet,
        bytes: u32,
        now: Timestamp,
        removed: &mut Vec<Removed>,
    ) -> Result<Track, ConntrackError> {
        let i = self.resolve(id)?;
        let now = self.advance(now);
        if self.expired(&self.entries[i as usize], now) {
            self.remove_at(i, RemoveReason::Expired, removed);
            return Err(ConntrackError::NoSuchEntry);
        }
        Ok(self.apply(i, dir, packet, bytes, now, removed))
    }

    /// Matches an ICMP error to the flow of the packet it quotes (`quoted`,
    /// from [`quoted_tuple`](super::quoted_tuple)): that packet was sent by
    /// the flow, so its inverse is the tuple of the direction the error
    /// travels. The error must go to the quoted packet's source
    /// (`outer_dst`), as Linux checks. Changes no entry (no TCP state, no
    /// timeout).
    pub fn related(&mut self, outer_dst: Ipv4Addr, quoted: &Tuple, now: Timestamp) -> Track {
        if outer_dst != quoted.src {
            return self.invalid(Invalid::IcmpWrongDestination);
        }
        match self.lookup(&quoted.invert(), now) {
            Some((id, dir)) => {
                self.stats.related += 1;
                Track::Related { id, dir }
            }
            None => self.invalid(Invalid::IcmpUnrelated),
        }
    }

    /// Changes entry `id`'s reply tuple (NAT deciding its translation after
    /// creating the entry), allowed until a packet has gone the reply way.
    /// An expired entry holding the new tuple is removed first (into
    /// `removed`).
    pub fn set_reply(
        &mut self,
        id: EntryId,
        reply: Tuple,
        now: Timestamp,
        removed: &mut Vec<Removed>,
    ) -> Result<(), ConntrackError> {
        let i = self.resolve(id)?;
        let now = self.advance(now);
        let e = self.entries[i as usize];
        if self.expired(&e, now) {
            self.remove_at(i, RemoveReason::Expired, removed);
            return Err(ConntrackError::NoSuchEntry);
        }
        if e.seen_reply {
            return Err(ConntrackError::AlreadyReplied);
        }
        if reply.protocol != e.original.protocol {
            return Err(ConntrackError::ProtocolMismatch);
        }
        if reply == e.reply {
            return Ok(());
        }
        if reply != e.original {
            if let Some((j, _)) = self.find(&reply) {
                if self.expired(&self.entries[j as usize], now) {
                    self.remove_at(j, RemoveReason::Expired, removed);
                } else {
                    return Err(ConntrackError::TupleInUse(reply));
                }
            }
        }
        if e.reply != e.original {
            let h = self.index.hash(&e.reply);
            self.index.remove(h, value(i, Direction::Reply));
        }
        self.entries[i as usize].reply = reply;
        if reply != e.original {
            let h = self.index.hash(&reply);
            self.index.insert(h, value(i, Direction::Reply));
        }
        Ok(())
    }

    /// Removes entry `id` (reported into `removed` with
    /// [`RemoveReason::Removed`]).
    pub fn remove(
        &mut self,
        id: EntryId,
        removed: &mut Vec<Removed>,
    ) -> Result<(), ConntrackError> {
        let i = self.resolve(id)?;
        self.remove_at(i, RemoveReason::Removed, removed);
        Ok(())
    }

    /// Removes the entries for which `doomed(original, reply, last_seen)`
    /// holds among `budget` slots from `from` on (wrapping round the end),
    /// into `removed` with [`RemoveReason::Removed`]; returns the slot to go
    /// on from and how many slots it looked at. A walk a few slots per loop
    /// turn, never a scan in one go: the NAT engine removes a gone
    /// container's flows with it (its address, flows that saw no packet
    /// since it went), while a new container's on the same address stay.
    pub fn remove_where_step(
        &mut self,
        from: usize,
        budget: usize,
        removed: &mut Vec<Removed>,
        mut doomed: impl FnMut(&Tuple, &Tuple, Timestamp) -> bool,
    ) -> (usize, usize) {
        let slots = self.entries.len();
        let looked = budget.min(slots);
        let mut i = from % slots.max(1);
        for _ in 0..looked {
            let e = &self.entries[i];
            if e.used && doomed(&e.original, &e.reply, Timestamp(e.last_seen)) {
                self.remove_at(i as u32, RemoveReason::Removed, removed);
            }
            i = (i + 1) % slots;
        }
        (i, looked)
    }

    /// Slots in the table (its bound): a walk of them all visits every entry.
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// The latest time any call passed in (the table's clock, which never
    /// goes back).
    pub fn clock(&self) -> Timestamp {
        Timestamp(self.clock)
    }

    /// When entry `id` last saw a packet (to [`REFRESH_GRANULARITY`]: a
    /// refresh within it is not recorded), if it is live.
    pub fn last_seen(&self, id: EntryId) -> Option<Timestamp> {
        let i = self.resolve(id).ok()?;
        Some(Timestamp(self.entries[i as usize].last_seen))
    }

    /// Removes up to `budget` entries whose timeout has passed at `now`, most
    /// overdue first, into `out`; returns how many. Looks only at the head of
    /// each expiry list (the next entry to expire in its class), so each call
    /// costs O(budget), never a scan: call it once per loop turn with a small
    /// budget and expiry keeps up with any rate the budget allows.
    pub fn expire(&mut self, now: Timestamp, budget: usize, out: &mut Vec<Removed>) -> usize {
        let now = self.advance(now);
        let mut done = 0;
        while done < budget {
            let Some(i) = self.most_overdue(now) else {
                break;
            };
            self.remove_at(i, RemoveReason::Expired, out);
            done += 1;
        }
        done
    }

    /// The earliest deadline of any entry (from when
    /// [`expire`](Self::expire) has work), `None` when empty.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        TimeoutClass::ALL
            .iter()
            .filter_map(|c| self.lists.head(*c))
            .map(|i| self.deadline(&self.entries[i as usize]))
            .min()
            .map(Timestamp)
    }

    /// Entry `id` as a dump shows it, if it is live at `now`.
    pub fn get(&self, id: EntryId, now: Timestamp) -> Option<ConntrackEntry> {
        let i = self.resolve(id).ok()?;
        let now = self.clock.max(now.0);
        let e = &self.entries[i as usize];
        (!self.expired(e, now)).then(|| self.view(i, now))
    }

    /// Every live entry, for dumps (control path: walks the whole slab).
    pub fn entries(&self, now: Timestamp) -> impl Iterator<Item = ConntrackEntry> + '_ {
        let now = self.clock.max(now.0);
        (0..self.entries.len() as u32)
            .filter(move |&i| {
                let e = &self.entries[i as usize];
                e.used && !self.expired(e, now)
            })
            .map(move |i| self.view(i, now))
    }

    // Internals.

    fn view(&self, i: u32, now: u64) -> ConntrackEntry {
        let e = &self.entries[i as usize];
        let deadline = self.deadline(e);
        ConntrackEntry {
            id: EntryId::new(i, e.generation),
            original: e.original,
            reply: e.reply,
            state: match e.kind {
                Kind::Tcp => FlowState::Tcp(e.tcp.state()),
                Kind::Udp if e.seen_reply => FlowState::UdpReplied,
                Kind::Udp => FlowState::UdpUnreplied,
                Kind::Icmp => FlowState::Icmp,
            },
            class: e.class,
            assured: e.assured,
            seen_reply: e.seen_reply,
            deadline: Timestamp(deadline),
            expires_in_secs: deadline.saturating_sub(now) / 1_000_000_000,
            created: Timestamp(e.created),
            age_secs: now.saturating_sub(e.created) / 1_000_000_000,
            counters: e.counters,
        }
    }

    #[inline]
    fn advance(&mut self, now: Timestamp) -> u64 {
        self.clock = self.clock.max(now.0);
        self.clock
    }

    #[inline]
    fn deadline(&self, e: &Entry) -> u64 {
        e.last_seen.saturating_add(self.timeouts[e.class.index()])
    }

    #[inline]
    fn expired(&self, e: &Entry, now: u64) -> bool {
        self.deadline(e) <= now
    }

    fn invalid(&mut self, reason: Invalid) -> Track {
        self.stats.invalid.count(reason);
        Track::Invalid(reason)
    }

    /// The slot of a live handle.
    fn resolve(&self, id: EntryId) -> Result<u32, ConntrackError> {
        match self.entries.get(id.index()) {
            Some(e) if e.used && e.generation == id.generation() => Ok(id.index() as u32),
            _ => Err(ConntrackError::NoSuchEntry),
        }
    }

    /// The slot and direction holding `tuple`, expired or not.
    #[inline]
    fn find(&self, tuple: &Tuple) -> Option<(u32, Direction)> {
        let h = self.index.hash(tuple);
        let entries = &self.entries;
        self.index
            .find(h, |v| entries[(v >> 1) as usize].tuple(v & 1) == tuple)
            .map(|v| (v >> 1, direction(v)))
    }

    /// As [`find`](Self::find), removing (into `removed`) an entry found past
    /// its deadline.
    fn find_live(
        &mut self,
        tuple: &Tuple,
        now: u64,
        removed: &mut Vec<Removed>,
    ) -> Option<(u32, Direction)> {
        let (i, dir) = self.find(tuple)?;
        if self.expired(&self.entries[i as usize], now) {
            self.remove_at(i, RemoveReason::Expired, removed);
            return None;
        }
        Some((i, dir))
    }

    /// The head with the earliest deadline at or before `now`, ties to the
    /// lower class.
    fn most_overdue(&self, now: u64) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for class in TimeoutClass::ALL {
            if let Some(i) = self.lists.head(class) {
                let deadline = self.deadline(&self.entries[i as usize]);
                if deadline <= now && best.is_none_or(|(d, _)| deadline < d) {
                    best = Some((deadline, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The least recently refreshed evictable entry, ties to the lower class.
    fn oldest_evictable(&self) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for class in TimeoutClass::ALL {
            if !class.evictable() {
                continue;
            }
            if let Some(i) = self.lists.head(class) {
                let seen = self.entries[i as usize].last_seen;
                if best.is_none_or(|(s, _)| seen < s) {
                    best = Some((seen, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// A free slot for a new entry in a full table: an expired entry
    /// reclaimed, else the oldest evictable one dropped.
    fn make_room(&mut self, now: u64, removed: &mut Vec<Removed>) -> Option<u32> {
        if let Some(i) = self.most_overdue(now) {
            self.remove_at(i, RemoveReason::Expired, removed);
        } else if let Some(i) = self.oldest_evictable() {
            self.remove_at(i, RemoveReason::EarlyDrop, removed);
        } else {
            return None;
        }
        self.free.pop()
    }

    fn remove_at(&mut self, i: u32, reason: RemoveReason, removed: &mut Vec<Removed>) {
        let e = self.entries[i as usize];
        if !e.used {
            return;
        }
        let h = self.index.hash(&e.original);
        self.index.remove(h, value(i, Direction::Original));
        if e.reply != e.original {
            let h = self.index.hash(&e.reply);
            self.index.remove(h, value(i, Direction::Reply));
        }
        self.lists.unlink(i);
        let slot = &mut self.entries[i as usize];
        slot.used = false;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(i);
        match reason {
            RemoveReason::Expired => self.stats.expired += 1,
            RemoveReason::EarlyDrop => self.stats.early_dropped += 1,
            RemoveReason::Reopened => self.stats.reopened += 1,
            RemoveReason::Removed => self.stats.removed += 1,
        }
        removed.push(Removed {
            id: EntryId::new(i, e.generation),
            original: e.original,
            reply: e.reply,
            reason,
        });
    }

    /// Creates the entry for `packet` (see [`insert`](Self::insert)); `now`
    /// is the advanced clock.
    fn create(
        &mut self,
        packet: &Packet,
        reply: Tuple,
        bytes: u32,
        now: u64,
        removed: &mut Vec<Removed>,
    ) -> Result<Track, ConntrackError> {
        let original = *packet.tuple();
        if original.protocol != packet.protocol() || reply.protocol != original.protocol {
            return Err(ConntrackError::ProtocolMismatch);
        }
        // What the first packet makes of the flow, decided before anything
        // is evicted for it.
        let (kind, tcp, class) = match packet {
            Packet::Tcp(_, segment) => {
                let mut conn = match TcpConn::new(segment) {
                    Ok(conn) => conn,
                    Err(reason) => return Ok(self.invalid(reason)),
                };
                let status = EntryStatus::default();
                match conn.packet(Direction::Original, segment, status, &self.timeouts) {
                    TcpOutcome::Accept { class, .. } => (Kind::Tcp, conn, class),
                    TcpOutcome::Invalid(reason) => return Ok(self.invalid(reason)),
                    TcpOutcome::Ignore | TcpOutcome::Restart => {
                        return Ok(self.invalid(Invalid::TcpState))
                    }
                }
            }
            Packet::Udp(_) => (Kind::Udp, TcpConn::default(), TimeoutClass::UdpUnreplied),
            Packet::EchoRequest(_) => (Kind::Icmp, TcpConn::default(), TimeoutClass::Icmp),
            Packet::EchoReply(_) => return Ok(self.invalid(Invalid::EchoReplyUnmatched)),
            Packet::IcmpError { .. } => return Ok(self.invalid(Invalid::IcmpUnrelated)),
        };
        for tuple in [original, reply] {
            if let Some((j, _)) = self.find(&tuple) {
                if self.expired(&self.entries[j as usize], now) {
                    self.remove_at(j, RemoveReason::Expired, removed);
                } else {
                    return Err(ConntrackError::TupleInUse(tuple));
                }
            }
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => match self.make_room(now, removed) {
                Some(i) => i,
                None => {
                    self.stats.full += 1;
                    return Ok(Track::Full);
                }
            },
        };
        let generation = self.entries[i as usize].generation;
        let mut counters = FlowCounters::default();
        counters.count(Direction::Original, bytes);
        self.entries[i as usize] = Entry {
            original,
            reply,
            last_seen: now,
            created: now,
            counters,
            generation,
            used: true,
            seen_reply: false,
            assured: false,
            kind,
            class,
            tcp,
        };
        let h = self.index.hash(&original);
        self.index.insert(h, value(i, Direction::Original));
        if reply != original {
            let h = self.index.hash(&reply);
            self.index.insert(h, value(i, Direction::Reply));
        }
        self.lists.push_back(i, class);
        self.stats.inserted += 1;
        Ok(Track::New(EntryId::new(i, generation)))
    }

    /// Tracks `packet` (`bytes` long) on live entry `i` going `dir`; counts
    /// it unless INVALID or reopening.
    fn apply(
        &mut self,
        i: u32,
        dir: Direction,
        packet: &Packet,
        bytes: u32,
        now: u64,
        removed: &mut Vec<Removed>,
    ) -> Track {
        let e = &mut self.entries[i as usize];
        let id = EntryId::new(i, e.generation);
        let existing = Track::Existing { id, dir };
        match (e.kind, packet) {
            (Kind::Udp, Packet::Udp(_))
            | (Kind::Icmp, Packet::EchoRequest(_) | Packet::EchoReply(_)) => {
                e.counters.count(dir, bytes);
                if dir == Direction::Reply {
                    e.seen_reply = true;
                    e.assured |= e.kind == Kind::Udp;
                }
                let class = match e.kind {
                    Kind::Udp if e.seen_reply => TimeoutClass::UdpAssured,
                    Kind::Udp => TimeoutClass::UdpUnreplied,
                    _ => TimeoutClass::Icmp,
                };
                self.refresh(i, class, now);
                existing
            }
            (Kind::Tcp, Packet::Tcp(_, segment)) => {
                let status = EntryStatus {
                    seen_reply: e.seen_reply,
                    assured: e.assured,
                };
                let outcome = e.tcp.packet(dir, segment, status, &self.timeouts);
                match outcome {
                    TcpOutcome::Accept {
                        class,
                        refresh,
                        assure,
                    } => {
                        e.counters.count(dir, bytes);
                        e.seen_reply |= dir == Direction::Reply;
                        e.assured |= assure;
                        // Not refreshed: the entry keeps its deadline, hence
                        // its class, so its list stays in order.
                        if refresh {
                            self.refresh(i, class, now);
                        }
                        existing
                    }
                    TcpOutcome::Ignore => {
                        // Let through as the flow's, so counted (Linux
                        // skips its accounting for these rare segments).
                        e.counters.count(dir, bytes);
                        e.seen_reply |= dir == Direction::Reply;
                        existing
                    }
                    TcpOutcome::Invalid(reason) => self.invalid(reason),
                    TcpOutcome::Restart => {
                        self.remove_at(i, RemoveReason::Reopened, removed);
                        Track::Restart
                    }
                }
            }
            _ => self.invalid(Invalid::Malformed),
        }
    }

    /// Restarts entry `i`'s timeout under `class`. Within
    /// [`REFRESH_GRANULARITY`] of its last refresh, in the same class, it
    /// keeps its place and deadline: a busy flow then costs one index slot
    /// and one entry per packet, not the three list neighbours a move
    /// touches, and its deadline is at most that much early.
    #[inline]
    fn refresh(&mut self, i: u32, class: TimeoutClass, now: u64) {
        let e = &mut self.entries[i as usize];
        if e.class == class && now.saturating_sub(e.last_seen) < REFRESH_GRANULARITY {
            return;
        }
        e.last_seen = now;
        e.class = class;
        self.lists.touch(i, class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_as_documented() {
        let default = ConntrackTable::memory_for(ConntrackConfig::DEFAULT_ENTRIES);
        let max = ConntrackTable::memory_for(ConntrackConfig::MAX_ENTRIES);
        let per_entry = default / ConntrackConfig::DEFAULT_ENTRIES;
        eprintln!(
            "entry {} bytes, {per_entry} per entry in all; default {:.1} MiB, max {:.1} MiB",
            std::mem::size_of::<Entry>(),
            default as f64 / f64::from(1 << 20),
            max as f64 / f64::from(1 << 20),
        );
        // The figures in `ConntrackConfig`'s and `Entry`'s docs, README and
        // config docs.
        assert_eq!(std::mem::size_of::<Entry>(), 152);
        assert!(default < 52 << 20, "{default}");
        assert!(max < 820 << 20, "{max}");
    }
}
