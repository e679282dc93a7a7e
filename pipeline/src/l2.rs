//! The L2 switch: per-network bridge domains with MAC learning, forwarding and
//! flooding, as batch stages.
//!
//! Every network is its own bridge domain: ports belong to at most one domain,
//! MACs are learned per domain, and a frame is only ever forwarded or flooded to
//! ports of its ingress port's domain, so nothing crosses networks at L2.

use crate::batch::Batch;
use crate::drop_reason::DropReason;
use crate::frame::MAX_BURST;
use crate::frame::{DomainId, FrameStore, PacketMeta, PortId, Timestamp, Verdict};
use crate::mac::{word_is_multicast, word_is_valid_source, MacAddr};
use crate::mac_table::{LearnOutcome, MacTable};
use crate::stage::{Stage, StageCounters};
use serde::{Deserialize, Serialize};

pub use crate::parse::parse_stage;

/// Sizing and aging of the MAC table, from the node config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Config {
    /// Most MAC addresses remembered across all domains; beyond it new stations
    /// are flooded to instead of learned (bounded memory under a MAC flood).
    pub max_entries: usize,
    /// How long an address is remembered after its last frame, in nanoseconds.
    pub aging_ns: u64,
}

impl Default for L2Config {
    /// 16 Ki entries and the 300 s aging time of the Linux bridge and most switches.
    fn default() -> Self {
        L2Config {
            max_entries: 16 * 1024,
            aging_ns: 300 * 1_000_000_000,
        }
    }
}

/// Learning counters, so an operator can see churn, moves and MAC floods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct L2Stats {
    /// Addresses newly learned (including re-learned after aging out).
    pub learned: u64,
    /// Stations seen moving to another port (re-learned at once).
    pub moved: u64,
    /// Source addresses not learned because the table was full.
    pub table_full: u64,
    /// Entries removed or replaced because they aged out.
    pub aged: u64,
}

/// A MAC learned (or moved, or refreshed after a while) by one worker, for the
/// other workers to apply to their own copy of the table. Workers never share a
/// table: each reads its own copy without locks, and these events keep the copies
/// in step within a loop turn or two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnEvent {
    /// Domain the station is in.
    pub domain: DomainId,
    /// The station.
    pub mac: MacAddr,
    /// Port it was seen on.
    pub port: PortId,
    /// When it was seen (the workers share one clock epoch).
    pub at: Timestamp,
}

/// One switch's L2 state: which port is in which domain, and the MAC table.
#[derive(Clone, Debug)]
pub struct L2Switch {
    table: MacTable,
    /// Domain of each port, indexed by port id (ports are dense).
    port_domain: Vec<Option<DomainId>>,
    /// Member ports of each domain, sorted, indexed by domain id.
    domain_ports: Vec<Vec<PortId>>,
    /// The gateway MAC of each domain as a word (0: none), indexed by domain id:
    /// frames to it are handed to the gateway stages instead of switched.
    domain_gateway: Vec<u64>,
    counters: StageCounters,
    learned: u64,
    moved: u64,
    table_full: u64,
    /// Learn events for other workers (only collected when `publish` is set);
    /// capacity fixed at creation, never grown on the hot path.
    events: Vec<LearnEvent>,
    publish: bool,
    /// A refreshed address is published again once per this period, so other
    /// workers' copies do not age out while the station keeps talking.
    republish_ns: u64,
}

impl L2Switch {
    /// An empty switch: no ports, no networks; the table is allocated now.
    pub fn new(config: L2Config) -> Self {
        L2Switch {
            table: MacTable::new(config.max_entries, config.aging_ns),
            port_domain: Vec::new(),
            domain_ports: Vec::new(),
            domain_gateway: Vec::new(),
            counters: StageCounters::default(),
            learned: 0,
            moved: 0,
            table_full: 0,
            events: Vec::with_capacity(MAX_BURST),
            publish: false,
            republish_ns: (config.aging_ns / 4).max(1_000_000_000),
        }
    }

    /// Makes [`forward_stage`](Self::forward_stage) collect a [`LearnEvent`] for
    /// every new or moved station, and for a refreshed one once per quarter of the
    /// aging time. Only workers that share their learning switch it on.
    pub fn publish_learning(&mut self, on: bool) {
        self.publish = on;
    }

    /// The learn events collected since the last [`clear_learn_events`](Self::clear_learn_events).
    pub fn learn_events(&self) -> &[LearnEvent] {
        &self.events
    }

    /// Forgets the collected learn events (after they were sent).
    pub fn clear_learn_events(&mut self) {
        self.events.clear();
    }

    /// Applies a station another worker learned; a newer local sighting wins.
    pub fn apply_learn_event(&mut self, event: &LearnEvent) {
        match self
            .table
            .apply_learned(event.domain, event.mac, event.port, event.at)
        {
            LearnOutcome::New => self.learned += 1,
            LearnOutcome::Moved { .. } => self.moved += 1,
            LearnOutcome::TableFull => self.table_full += 1,
            LearnOutcome::Refreshed { .. } => {}
        }
    }

    /// Puts `port` into bridge domain `domain`, or into none (its frames are then
    /// dropped with `NoNetwork`). Changing a port's domain forgets the MACs
    /// learned on it, since they belonged to the old network. Control path.
    pub fn set_port_domain(&mut self, port: PortId, domain: Option<DomainId>) {
        let old = self.port_domain(port);
        if old == domain {
            return;
        }
        if let Some(d) = old {
            if let Some(ports) = self.domain_ports.get_mut(usize::from(d)) {
                ports.retain(|p| *p != port);
            }
            // Only frames from a port with a domain are learned, so a port without
            // one has no entries and the table walk can be skipped.
            self.table.remove_port(port);
        }
        let idx = usize::from(port);
        if self.port_domain.len() <= idx {
            self.port_domain.resize(idx + 1, None);
        }
        if let Some(slot) = self.port_domain.get_mut(idx) {
            *slot = domain;
        }
        if let Some(d) = domain {
            let d = usize::from(d);
            if self.domain_ports.len() <= d {
                self.domain_ports.resize_with(d + 1, Vec::new);
            }
            if let Some(ports) = self.domain_ports.get_mut(d) {
                if let Err(at) = ports.binary_search(&port) {
                    ports.insert(at, port);
                }
            }
        }
    }

    /// Detaches `port` from its domain and forgets every MAC learned on it (port
    /// deleted). Control path.
    pub fn remove_port(&mut self, port: PortId) {
        self.set_port_domain(port, None);
    }

    /// Detaches every port of `domain` and forgets its MACs (network deleted).
    /// Control path.
    pub fn remove_domain(&mut self, domain: DomainId) {
        let ports = self
            .domain_ports
            .get_mut(usize::from(domain))
            .map(std::mem::take)
            .unwrap_or_default();
        for port in ports {
            if let Some(slot) = self.port_domain.get_mut(usize::from(port)) {
                *slot = None;
            }
        }
        // Entries of its ports all live in this domain: one walk forgets them.
        self.table.remove_domain(domain);
    }

    /// Makes `mac` the gateway MAC of `domain` (or clears it): unicast frames to
    /// it get `Verdict::ToGateway` (after their source is learned) instead of
    /// being switched. Control path.
    pub fn set_domain_gateway(&mut self, domain: DomainId, mac: Option<MacAddr>) {
        let d = usize::from(domain);
        if self.domain_gateway.len() <= d {
            self.domain_gateway.resize(d + 1, 0);
        }
        if let Some(slot) = self.domain_gateway.get_mut(d) {
            *slot = mac.map_or(0, |m| m.to_u64());
        }
    }

    /// The gateway MAC of `domain`, if it has one.
    pub fn domain_gateway(&self, domain: DomainId) -> Option<MacAddr> {
        match self.domain_gateway.get(usize::from(domain)) {
            Some(&w) if w != 0 => Some(MacAddr::from_u64(w)),
            _ => None,
        }
    }

    /// The domain `port` belongs to, if any.
    #[inline]
    pub fn port_domain(&self, port: PortId) -> Option<DomainId> {
        self.port_domain.get(usize::from(port)).copied().flatten()
    }

    /// Member ports of `domain`, sorted: where a `Flood` verdict goes (the caller
    /// skips the ingress port).
    #[inline]
    pub fn flood_ports(&self, domain: DomainId) -> &[PortId] {
        self.domain_ports
            .get(usize::from(domain))
            .map_or(&[], Vec::as_slice)
    }

    /// Ports a `Flood` verdict for `meta` goes out of: the members of its domain
    /// minus the ingress port (a frame is never sent back where it came from).
    #[inline]
    pub fn flood_targets(&self, meta: &PacketMeta) -> impl Iterator<Item = PortId> + '_ {
        let in_port = meta.in_port;
        self.flood_ports(meta.domain)
            .iter()
            .copied()
            .filter(move |p| *p != in_port)
    }

    /// The MAC table, for fdb dumps and stats.
    pub fn mac_table(&self) -> &MacTable {
        &self.table
    }

    /// Learning counters so far.
    pub fn stats(&self) -> L2Stats {
        L2Stats {
            learned: self.learned,
            moved: self.moved,
            table_full: self.table_full,
            aged: self.table.aged_total(),
        }
    }

    /// Removes aged-out MACs; call it every few seconds between bursts. Returns how
    /// many were removed.
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        self.table.sweep(now)
    }

    /// Sweeps the next `budget` slots of the MAC table for aged entries (see
    /// [`MacTable::sweep_step`]): aging spread over turns, never one long stall.
    pub fn sweep_step(&mut self, now: Timestamp, budget: usize) -> usize {
        self.table.sweep_step(now, budget)
    }

    /// Runs parsing and L2 on a batch: [`parse_stage`] then
    /// [`forward_stage`](Self::forward_stage) (tests and fuzzing; the worker
    /// runs a [`crate::chain::Chain`]).
    pub fn process<F: FrameStore + ?Sized>(
        &mut self,
        frames: &mut F,
        metas: &mut [PacketMeta],
        now: Timestamp,
    ) {
        parse_stage(frames, metas);
        self.forward_stage(frames, metas, now);
    }

    /// Decides every `Pending` frame of a parsed batch: learn the source, then
    /// forward to the known port, flood, or drop.
    ///
    /// Per frame: ingress port in no domain -> `Drop(NoNetwork)`; source multicast
    /// or zero -> `Drop(InvalidSourceMac)`; the source is learned (even if the
    /// table is full the frame still goes on); group destination -> `Flood`; a
    /// destination known on another port of the same domain -> `Forward(port)`;
    /// known on the ingress port -> `Drop(SameSegment)`; the domain's gateway MAC
    /// -> `ToGateway`; unknown -> `Flood`. Counts every decision. Sets
    /// `meta.domain`. Two table hashes per unicast frame (source and destination),
    /// one per group-addressed frame; no allocation.
    pub fn forward_stage<F: FrameStore + ?Sized>(
        &mut self,
        frames: &F,
        metas: &mut [PacketMeta],
        now: Timestamp,
    ) {
        // The last unicast forwarding decision of this batch. A frame with the
        // same ingress port and the same 12 MAC bytes as the frame just decided
        // gets the same verdict without touching the table: nothing was learned
        // in between (learning its source again at the same `now` changes
        // nothing), so the lookup would answer the same. Bursts of one
        // conversation, the common case, skip both hash lookups (VPP's l2-learn
        // and l2-fwd keep the same one-entry cache).
        let mut last: Option<LastForward> = None;
        for (i, meta) in metas.iter_mut().enumerate() {
            if meta.verdict != Verdict::Pending {
                continue;
            }
            let frame = frames.frame(i);
            if let (Some(hit), Some(macs)) = (last, frame.first_chunk::<12>()) {
                if hit.in_port == meta.in_port && hit.macs == *macs {
                    meta.domain = hit.domain;
                    meta.verdict = Verdict::Forward(hit.out);
                    self.counters.record(&meta.verdict);
                    continue;
                }
            }
            meta.verdict = self.decide(frame, meta, now);
            self.counters.record(&meta.verdict);
            last = match (meta.verdict, frame.first_chunk::<12>()) {
                (Verdict::Forward(out), Some(macs)) => Some(LastForward {
                    in_port: meta.in_port,
                    macs: *macs,
                    domain: meta.domain,
                    out,
                }),
                _ => None,
            };
        }
    }

    #[inline]
    fn decide(&mut self, frame: &[u8], meta: &mut PacketMeta, now: Timestamp) -> Verdict {
        let in_port = meta.in_port;
        let Some(domain) = self.port_domain(in_port) else {
            return Verdict::Drop(DropReason::NoNetwork);
        };
        meta.domain = domain;
        // The parse stage guarantees 14 bytes; checked again so this stage is safe
        // on its own.
        let Some(h) = frame.first_chunk::<14>() else {
            return Verdict::Drop(DropReason::Runt);
        };
        // Both MACs as words: one load and byte swap each (bytes 0..8 and 6..14,
        // keeping the top 48 bits).
        let dst = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) >> 16;
        let src = u64::from_be_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]) >> 16;
        if !word_is_valid_source(src) {
            return Verdict::Drop(DropReason::InvalidSourceMac);
        }
        let publish = match self.table.learn_packed(domain, src, in_port, now) {
            LearnOutcome::New => {
                self.learned += 1;
                true
            }
            LearnOutcome::Refreshed { previous } => {
                now.0 / self.republish_ns != previous.0 / self.republish_ns
            }
            LearnOutcome::Moved { .. } => {
                self.moved += 1;
                true
            }
            LearnOutcome::TableFull => {
                self.table_full += 1;
                false
            }
        };
        // Bounded by the capacity reserved at creation: never allocates. A batch is
        // at most MAX_BURST frames and the worker drains events after each batch.
        if publish && self.publish && self.events.len() < self.events.capacity() {
            self.events.push(LearnEvent {
                domain,
                mac: MacAddr::from_u64(src),
                port: in_port,
                at: now,
            });
        }
        if word_is_multicast(dst) {
            return Verdict::Flood;
        }
        if let Some(&gateway) = self.domain_gateway.get(usize::from(domain)) {
            if gateway == dst {
                return Verdict::ToGateway;
            }
        }
        match self.table.lookup_packed(domain, dst, now) {
            Some(port) if port == in_port => Verdict::Drop(DropReason::SameSegment),
            // Checked against the port's current domain too, so a stale entry can
            // never send a frame into another network.
            Some(port) if self.port_domain(port) == Some(domain) => Verdict::Forward(port),
            _ => Verdict::Flood,
        }
    }
}

/// The L2 stage: learn the source, then forward, flood, hand to the gateway or
/// drop (see [`L2Switch::forward_stage`]).
impl Stage for L2Switch {
    const NAME: &'static str = "l2";

    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        let now = batch.now();
        let (frames, metas) = batch.split();
        self.forward_stage(&*frames, metas, now);
    }

    fn counters(&self) -> &StageCounters {
        &self.counters
    }
}

/// One forwarding decision remembered for the next frame of a batch (see
/// [`L2Switch::forward_stage`]).
#[derive(Clone, Copy)]
struct LastForward {
    in_port: PortId,
    macs: [u8; 12],
    domain: DomainId,
    out: PortId,
}
