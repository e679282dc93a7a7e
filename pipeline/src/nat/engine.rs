//! The NAT engine: connection tracking plus translation, run by the router on
//! routed IPv4, as Linux's nat table does around its routing decision.
//!
//! - **Before routing** (PREROUTING): a packet of a tracked flow is
//!   translated to what its flow's other side expects (for a flow whose
//!   entry holds tuples O, the original, and R, the reply: a packet carrying
//!   O leaves as R inverted, one carrying R as O inverted); an ICMP error
//!   about a tracked flow gets its quoted packet and outer addresses
//!   translated the same way. A new connection to a node address on a
//!   published port is given its destination (DNAT); from a container (a
//!   network that is not open) its source becomes the node's masquerade
//!   address too (hairpin: the server then answers through the switch).
//! - **After routing** (POSTROUTING): a new flow from a network with
//!   `masquerade` leaving through the uplink gets the uplink address and a
//!   source port (or echo identifier) that no other flow to the same
//!   destination uses, the flow's own if it is free, from the configured
//!   range; none free is a counted drop (`nat_ports_exhausted`), never a
//!   wrong translation. Uniqueness comes from the conntrack index itself:
//!   a candidate reply tuple already tracked is refused by the table
//!   (Linux's `nf_nat_used_tuple`), so no port allocator can disagree with
//!   the table.
//!
//! Only flows that get a translation are tracked; other routed traffic
//! passes untouched (and untracked). Fragments are not translated (the
//! switch does not reassemble); a non-SYN TCP segment or an unmatched echo
//! reply that would leave a masquerading network untranslated is INVALID
//! and dropped, so private addresses never leak out of the uplink.
//!
//! One engine per worker, each with its own table and its share of the
//! masquerade ports: [`Nat::owner`] tells which worker's engine a packet
//! belongs to (see [`super::owner`] for the scheme and why both directions
//! of every flow meet there).

use super::owner::FlowOwners;
use super::published::PublishedPorts;
use super::rewrite::{rewrite, rewrite_icmp_error, Endpoints};
use crate::conntrack::{
    ConntrackConfig, ConntrackError, ConntrackStats, ConntrackTable, Direction, EntryId, Packet,
    Removed, Track, Tuple,
};
use crate::drop_reason::DropReason;
use crate::frame::{PacketMeta, Timestamp};
use crate::wire::ip_proto;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Candidate ports tried for one new masqueraded flow before giving up.
const PORT_TRIES: u32 = 64;
/// Expired entries removed per batch at most.
const EXPIRE_BUDGET: usize = 32;
/// Table slots looked at per batch while addresses are being forgotten.
const PURGE_BUDGET: usize = 256;
/// Forgotten addresses whose flows are being removed at once: one walk of
/// the table checks every slot against all of them (see `forget_address`
/// for what happens beyond).
const PURGES: usize = 64;

/// Where masqueraded flows appear to come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masquerade {
    /// The uplink address.
    pub address: Ipv4Addr,
    /// First source port handed out.
    pub first_port: u16,
    /// Last source port handed out.
    pub last_port: u16,
}

/// What happened to a packet before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Before {
    /// Not a tracked flow, not a published port: route as it is.
    Untouched,
    /// Translated (its metadata updated): route it, no translation after.
    Translated,
    /// Drop it.
    Drop(DropReason),
}

/// Counters of one engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatStats {
    /// New masqueraded flows.
    pub masqueraded: u64,
    /// New flows to a published port.
    pub published: u64,
    /// Of those, from a container (source translated too).
    pub hairpin: u64,
    /// Packets of tracked flows translated.
    pub translated: u64,
    /// ICMP errors about tracked flows translated.
    pub related: u64,
    /// New flows dropped: no free source port.
    pub ports_exhausted: u64,
    /// Forgotten addresses whose walk was cut short (more than
    /// `PURGES` at once).
    pub forgets_cut_short: u64,
    /// The conntrack table's own counters.
    pub conntrack: ConntrackStats,
}

impl NatStats {
    /// Adds `other` (totals over several workers' engines).
    pub fn add(&mut self, other: &NatStats) {
        self.masqueraded += other.masqueraded;
        self.published += other.published;
        self.hairpin += other.hairpin;
        self.translated += other.translated;
        self.related += other.related;
        self.ports_exhausted += other.ports_exhausted;
        self.forgets_cut_short += other.forgets_cut_short;
        self.conntrack.add(&other.conntrack);
    }
}

/// A forgotten address whose flows are being removed.
#[derive(Clone, Copy, Debug)]
struct Purge {
    address: Ipv4Addr,
    /// Flows that saw no packet after this are its old container's.
    seen_by: Timestamp,
    /// Table slots the shared walk has yet to look at for it.
    remaining: usize,
}

impl Purge {
    fn covers(&self, e: &crate::conntrack::ConntrackEntry, last_seen: Timestamp) -> bool {
        last_seen <= self.seen_by
            && (e.original.involves(self.address) || e.reply.involves(self.address))
    }
}

/// The engine (see the module docs).
#[derive(Clone, Debug)]
pub struct Nat {
    table: ConntrackTable,
    published: Arc<PublishedPorts>,
    /// Addresses published ports listen on (the uplink's, the host port's).
    node_addresses: Vec<Ipv4Addr>,
    /// The whole masquerade range (what the owner rules look at).
    masquerade_range: Option<Masquerade>,
    /// This worker's share of it (what its new flows get ports from).
    masquerade: Option<Masquerade>,
    owners: FlowOwners,
    /// This engine's worker.
    worker: u16,
    /// Addresses whose flows are being removed (see
    /// [`Nat::forget_address`]).
    purges: Vec<Purge>,
    /// The next slot of the walk all purges share.
    purge_cursor: usize,
    removed: Vec<Removed>,
    stats: NatStats,
}

impl Nat {
    /// An engine with a table of `config`'s size (allocated now) and no rule.
    pub fn new(config: ConntrackConfig) -> Self {
        Nat {
            table: ConntrackTable::new(config),
            published: Arc::new(PublishedPorts::new()),
            node_addresses: Vec::with_capacity(4),
            masquerade_range: None,
            masquerade: None,
            owners: FlowOwners::single(),
            worker: 0,
            purges: Vec::with_capacity(PURGES),
            purge_cursor: 0,
            removed: Vec::with_capacity(4 * crate::frame::MAX_BATCH),
            stats: NatStats::default(),
        }
    }

    /// Sets the masquerade address and range (control path); this engine
    /// allocates from its worker's share of the range.
    pub fn set_masquerade(&mut self, masquerade: Option<Masquerade>) {
        self.masquerade_range = masquerade;
        self.masquerade = masquerade.map(|m| self.owners.share(m, self.worker));
    }

    /// Makes this the engine of worker `worker` of those `owners` spreads
    /// flows over (control path, before traffic: flows already made keep
    /// their ports).
    pub fn set_owners(&mut self, owners: FlowOwners, worker: u16) {
        self.owners = owners;
        self.worker = worker;
        self.set_masquerade(self.masquerade_range);
    }

    /// The worker whose engine `frame`'s flow belongs to (this one's index
    /// when it is this one); the router hands the frame there untouched.
    /// `from_masquerading`: it came from a masquerading network.
    #[inline]
    pub fn owner(&self, frame: &[u8], meta: &PacketMeta, from_masquerading: bool) -> u16 {
        let arrival = super::owner::Arrival {
            worker: self.worker,
            from_masquerading,
        };
        self.owners.owner(
            frame,
            meta,
            arrival,
            self.masquerade_range,
            &self.published,
            &self.node_addresses,
        )
    }

    /// This engine's worker.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// Replaces the published ports and the node addresses they listen on
    /// (control path; established flows keep their translation).
    pub fn set_published(&mut self, published: Arc<PublishedPorts>, node_addresses: &[Ipv4Addr]) {
        self.published = published;
        self.node_addresses.clear();
        self.node_addresses.extend_from_slice(node_addresses);
    }

    /// True when there is anything to translate (else the router skips the
    /// engine).
    pub fn active(&self) -> bool {
        self.masquerade.is_some() || !self.published.is_empty() || !self.table.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> NatStats {
        NatStats {
            conntrack: self.table.stats(),
            ..self.stats
        }
    }

    /// The conntrack table (dumps, tests).
    pub fn table(&self) -> &ConntrackTable {
        &self.table
    }

    /// Removes expired entries, a bounded number per call (once per batch),
    /// and goes on removing forgotten addresses' flows.
    pub fn expire(&mut self, now: Timestamp) {
        self.table.expire(now, EXPIRE_BUDGET, &mut self.removed);
        self.removed.clear();
        if self.purges.is_empty() {
            return;
        }
        let purges = &self.purges;
        let (next, looked) = self.table.remove_where_step(
            self.purge_cursor,
            PURGE_BUDGET,
            &mut self.removed,
            |original, reply, last_seen| {
                purges.iter().any(|p| {
                    last_seen <= p.seen_by
                        && (original.involves(p.address) || reply.involves(p.address))
                })
            },
        );
        self.removed.clear();
        self.purge_cursor = next;
        for p in &mut self.purges {
            p.remaining = p.remaining.saturating_sub(looked);
        }
        self.purges.retain(|p| p.remaining > 0);
    }

    /// Forgets every flow to or from `address` (its container is gone, so
    /// a new container there, or a new owner of its published ports, gets
    /// new connections at once rather than a dead one's translations): the
    /// table is walked a few slots per batch ([`expire`](Self::expire)), and
    /// until it is done a packet of such a flow is treated as new. Flows
    /// made from now on (a new container on the address) are kept. Control
    /// path.
    ///
    /// All forgotten addresses share one walk, each retired after a whole
    /// turn of it from where it joined. The list is bounded ([`PURGES`],
    /// never grown on the worker): beyond it, the address whose walk is
    /// furthest along is retired early (counted in `forgets_cut_short`), and
    /// its remaining flows only expire on their own.
    pub fn forget_address(&mut self, address: Ipv4Addr) {
        let seen_by = self.table.clock();
        let remaining = self.table.slots();
        if let Some(p) = self.purges.iter_mut().find(|p| p.address == address) {
            p.seen_by = seen_by;
            p.remaining = remaining;
            return;
        }
        if self.purges.len() == PURGES {
            if let Some(k) = (0..self.purges.len()).min_by_key(|&k| self.purges[k].remaining) {
                self.purges.swap_remove(k);
                self.stats.forgets_cut_short += 1;
            }
        }
        self.purges.push(Purge {
            address,
            seen_by,
            remaining,
        });
    }

    /// True while flows of some forgotten address may still be in the table.
    pub fn forgetting(&self) -> bool {
        !self.purges.is_empty()
    }

    /// Removes entry `id` if it belongs to an address being forgotten;
    /// true if it did.
    fn forget_now(&mut self, id: EntryId, now: Timestamp) -> bool {
        if !self.forgotten(id, now) {
            return false;
        }
        let _ = self.table.remove(id, &mut self.removed);
        self.removed.clear();
        true
    }

    /// True when entry `id` belongs to an address being forgotten.
    fn forgotten(&self, id: EntryId, now: Timestamp) -> bool {
        let (Some(e), Some(seen)) = (self.table.get(id, now), self.table.last_seen(id)) else {
            return false;
        };
        self.purges.iter().any(|p| p.covers(&e, seen))
    }

    /// Prefetch hints for the conntrack lookups of a batch's packets (TCP and
    /// UDP; see [`ConntrackTable::prefetch`]): the router calls it with the
    /// batch's routed packets before handing them over one by one, so their
    /// table misses overlap. Changes nothing.
    pub fn prefetch<'a>(&self, metas: impl IntoIterator<Item = &'a PacketMeta>) {
        if !self.table.is_empty() {
            self.table
                .prefetch(metas.into_iter().filter_map(Tuple::from_meta));
        }
    }

    /// Before routing (see the module docs). `from_container`: the packet
    /// came from a network that is not open (hairpin applies to it).
    pub fn before_routing(
        &mut self,
        frame: &mut [u8],
        meta: &mut PacketMeta,
        from_container: bool,
        now: Timestamp,
    ) -> Before {
        let packet = match Packet::classify(frame, meta) {
            Ok(Some(packet)) => packet,
            // Untracked kinds, and malformed ones that no flow of ours owns.
            Ok(None) | Err(_) => return Before::Untouched,
        };
        let bytes = meta.ip_len();
        if let Packet::IcmpError { .. } = packet {
            return match self.table.track(&packet, bytes, now, &mut self.removed) {
                // About a gone container's flow: not translated to it.
                Track::Related { id, .. } if self.forgetting() && self.forget_now(id, now) => {
                    Before::Untouched
                }
                Track::Related { id, dir } => self.translate_error(frame, meta, id, dir, now),
                _ => Before::Untouched,
            };
        }
        let tuple = *packet.tuple();
        if let Some((id, dir)) = self
            .table
            .lookup(&tuple, now)
            .filter(|&(id, _)| !self.forgetting() || !self.forget_now(id, now))
        {
            match self
                .table
                .update(id, dir, &packet, bytes, now, &mut self.removed)
            {
                Ok(Track::Existing { id, dir }) => {
                    self.removed.clear();
                    return self.translate(frame, meta, id, dir, now);
                }
                Ok(Track::Invalid(_)) => {
                    self.removed.clear();
                    return Before::Drop(DropReason::CtInvalid);
                }
                // Reopened or gone meanwhile: a new flow.
                _ => self.removed.clear(),
            }
        }
        if !self.node_addresses.contains(&tuple.dst) {
            return Before::Untouched;
        }
        let Some((address, port)) =
            self.published
                .lookup(tuple.protocol, tuple.dst, tuple.dst_port)
        else {
            return Before::Untouched;
        };
        // A new connection to a published port.
        let hairpin = from_container.then_some(self.masquerade).flatten();
        let mut reply = Tuple {
            protocol: tuple.protocol,
            src: address,
            dst: tuple.src,
            src_port: port,
            dst_port: tuple.src_port,
        };
        let verdict = match hairpin {
            Some(m) => {
                reply.dst = m.address;
                let own = tuple.src_port;
                self.insert_with_port(&packet, bytes, reply, m, own, meta.flow_hash, now)
            }
            None => self.insert(&packet, bytes, reply, now),
        };
        match verdict {
            Ok(id) => {
                self.stats.published += 1;
                if hairpin.is_some() {
                    self.stats.hairpin += 1;
                }
                self.translate(frame, meta, id, Direction::Original, now)
            }
            Err(reason) => Before::Drop(reason),
        }
    }

    /// After routing: masquerades a new flow from a masquerading network
    /// leaving by the uplink (the router calls it only for such packets that
    /// were not translated before routing).
    pub fn masquerade(
        &mut self,
        frame: &mut [u8],
        meta: &mut PacketMeta,
        now: Timestamp,
    ) -> Before {
        let Some(m) = self.masquerade else {
            return Before::Untouched;
        };
        let packet = match Packet::classify(frame, meta) {
            Ok(Some(packet)) => packet,
            // Fragments and other protocols: not translated, not let out
            // with a private source either.
            Ok(None) => return Before::Drop(DropReason::CtInvalid),
            Err(_) => return Before::Drop(DropReason::CtInvalid),
        };
        if let Packet::IcmpError { .. } = packet {
            // An error about no flow of ours would leak a private source.
            return Before::Drop(DropReason::CtInvalid);
        }
        let tuple = *packet.tuple();
        let reply = Tuple {
            protocol: tuple.protocol,
            src: tuple.dst,
            dst: m.address,
            src_port: tuple.dst_port,
            dst_port: tuple.src_port,
        };
        let own = if tuple.protocol == ip_proto::ICMP {
            tuple.echo_id()
        } else {
            tuple.src_port
        };
        match self.insert_with_port(&packet, meta.ip_len(), reply, m, own, meta.flow_hash, now) {
            Ok(id) => {
                self.stats.masqueraded += 1;
                self.translate(frame, meta, id, Direction::Original, now)
            }
            Err(reason) => Before::Drop(reason),
        }
    }

    /// Inserts `packet`'s flow with `reply`, whose port on the masquerade
    /// side (`dst_port`, or the echo identifier) is chosen here: `own` if it
    /// is in the range and free, else candidates spread by `hash`. `bytes`:
    /// the packet's IP length, its entry's first count.
    #[allow(clippy::too_many_arguments)]
    fn insert_with_port(
        &mut self,
        packet: &Packet,
        bytes: u32,
        mut reply: Tuple,
        m: Masquerade,
        own: u16,
        hash: u32,
        now: Timestamp,
    ) -> Result<EntryId, DropReason> {
        let first = u32::from(m.first_port);
        // An empty share (fewer ports than workers) has `first = last + 1`.
        let span = (u32::from(m.last_port) + 1).saturating_sub(first);
        let echo = reply.protocol == ip_proto::ICMP;
        if span == 0 {
            self.stats.ports_exhausted += 1;
            return Err(DropReason::NatPortsExhausted);
        }
        let start = if (m.first_port..=m.last_port).contains(&own) {
            u32::from(own) - first
        } else {
            hash % span
        };
        for k in 0..PORT_TRIES.min(span) {
            // The flow's own port first, then a stride through the range.
            let offset = (start + k * (1 + hash % 7919)) % span;
            let port = (first + offset) as u16;
            if !echo && self.published.is_published_port(reply.protocol, port) {
                // Its replies would look like new published connections.
                continue;
            }
            if echo {
                reply.dst_port = port;
                reply.src_port = 0;
            } else {
                reply.dst_port = port;
            }
            match self
                .table
                .insert(packet, reply, bytes, now, &mut self.removed)
            {
                Ok(track) => {
                    self.removed.clear();
                    return self.created(track);
                }
                Err(ConntrackError::TupleInUse(_)) => continue,
                Err(_) => return Err(DropReason::CtInvalid),
            }
        }
        self.stats.ports_exhausted += 1;
        Err(DropReason::NatPortsExhausted)
    }

    /// Inserts `packet`'s flow (`bytes` its IP length) with `reply` as it is.
    fn insert(
        &mut self,
        packet: &Packet,
        bytes: u32,
        reply: Tuple,
        now: Timestamp,
    ) -> Result<EntryId, DropReason> {
        let result = self
            .table
            .insert(packet, reply, bytes, now, &mut self.removed);
        self.removed.clear();
        match result {
            Ok(track) => self.created(track),
            Err(_) => Err(DropReason::CtInvalid),
        }
    }

    fn created(&mut self, track: Track) -> Result<EntryId, DropReason> {
        match track {
            Track::New(id) => Ok(id),
            other => Err(other.drop_reason().unwrap_or(DropReason::CtInvalid)),
        }
    }

    /// Rewrites a packet of entry `id` going `dir` to the other side's view.
    fn translate(
        &mut self,
        frame: &mut [u8],
        meta: &mut PacketMeta,
        id: EntryId,
        dir: Direction,
        now: Timestamp,
    ) -> Before {
        let Some(entry) = self.table.get(id, now) else {
            return Before::Untouched;
        };
        let other = match dir {
            Direction::Original => entry.reply,
            Direction::Reply => entry.original,
        };
        let to = other.invert();
        let endpoints = endpoints(&to);
        if rewrite(
            frame,
            usize::from(meta.l3_offset),
            usize::from(meta.l4_offset),
            meta.protocol,
            true,
            endpoints,
        )
        .is_err()
        {
            return Before::Drop(DropReason::CtInvalid);
        }
        meta.src_ip = to.src;
        meta.dst_ip = to.dst;
        if meta.protocol == ip_proto::ICMP {
            meta.icmp_id = to.echo_id();
        } else {
            meta.src_port = to.src_port;
            meta.dst_port = to.dst_port;
        }
        self.stats.translated += 1;
        Before::Translated
    }

    /// Rewrites an ICMP error travelling `dir` about entry `id`: the quoted
    /// packet becomes what the other side sent, the error goes to that side.
    fn translate_error(
        &mut self,
        frame: &mut [u8],
        meta: &mut PacketMeta,
        id: EntryId,
        dir: Direction,
        now: Timestamp,
    ) -> Before {
        let Some(entry) = self.table.get(id, now) else {
            return Before::Untouched;
        };
        let (own, other) = match dir {
            Direction::Original => (entry.original, entry.reply),
            Direction::Reply => (entry.reply, entry.original),
        };
        // From the flow's far end itself: it appears as the address the
        // other side knows it by; from a router on the way: unchanged.
        let outer_src = (meta.src_ip == own.src).then_some(other.dst);
        let result = rewrite_icmp_error(
            frame,
            usize::from(meta.l3_offset),
            usize::from(meta.l4_offset),
            outer_src,
            other.src,
            endpoints(&other),
        );
        if result.is_err() {
            return Before::Drop(DropReason::CtInvalid);
        }
        if let Some(src) = outer_src {
            meta.src_ip = src;
        }
        meta.dst_ip = other.src;
        self.stats.related += 1;
        Before::Translated
    }
}

/// The rewrite target of a tuple (an echo's identifier in both ports).
fn endpoints(t: &Tuple) -> Endpoints {
    let (sport, dport) = if t.protocol == ip_proto::ICMP {
        (t.echo_id(), t.echo_id())
    } else {
        (t.src_port, t.dst_port)
    };
    Endpoints {
        src: t.src,
        dst: t.dst,
        sport,
        dport,
    }
}
