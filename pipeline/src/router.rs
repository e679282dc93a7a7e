//! The router stage: IPv4 between the switch's networks and out of the
//! uplink, for frames the L2 stage handed to a gateway and the gateway stage
//! did not answer.
//!
//! For each such frame:
//! - the destination is looked up in the routing table (each network's subnet
//!   as a connected route, the uplink's default route through its next hop);
//! - networks are isolated from each other unless both say otherwise (Docker's
//!   default: `isolated = false` on both opens the route); *open* networks (the
//!   uplink, the host port) reach and are reached by every network, as Docker's
//!   bridges reach the outside and the host whatever their isolation;
//! - the TTL is decremented with an incremental checksum update (RFC 1624); a
//!   frame whose TTL runs out is answered with ICMP time exceeded from the
//!   ingress network's gateway;
//! - a datagram longer than the egress network's MTU is answered with ICMP
//!   fragmentation-needed carrying that MTU when DF is set (path MTU discovery),
//!   and dropped either way (`mtu_exceeded`): the switch does not fragment;
//! - the next hop (the destination on a connected network, else the route's
//!   gateway) gets its MAC from the neighbour table: static entries for the
//!   containers the daemon attached and for configured neighbours, entries
//!   learned from ARP for the rest; the new L2 header carries the egress
//!   network's gateway MAC as source, and the egress port comes from the L2
//!   table (flooded in the egress network while unknown).
//!
//! An unknown next hop: an ARP request for it is flooded in the egress network
//! (at most once per retry interval: the neighbour table's incomplete state
//! paces it) and the frame waits, copied into one of the router's parking
//! buffers (`crate::parking`), up to [`QUEUE_PER_NEIGHBOUR`] per neighbour.
//! When the answer comes, the waiting frames are sent from the batch that
//! carried it. Frames beyond the queue, with every buffer taken, or whose
//! neighbour never answers are dropped and counted (`unresolved_next_hop`;
//! those that waited in vain in the router's counters, as no port is
//! receiving them then).
//!
//! ICMP errors are sent only where RFC 1812 allows and at most
//! [`ErrorPacer::PER_SEC`] per second (see `crate::icmp_error`).
//!
//! ## Neighbours shared between workers
//!
//! Every worker has its own router and neighbour table, read and written
//! without locks. ARP frames land on whichever worker owns the receiving
//! queue, which is often not the worker whose frames wait for the answer (a
//! container's flows arrive on every worker; the uplink's replies on the one
//! that owns its queue). So, as VPP's workers do with their adjacencies, a
//! router that learns from an ARP frame addressed to the switch shares it:
//! - what is learned: the sender of a request for a gateway address (it will
//!   talk to us), and the sender of a reply to a gateway address *whether or
//!   not this router asked* (to the gateway's IP and MAC: some worker of ours
//!   asked). Static entries are neither learned nor shared;
//! - each such frame adds a [`NeighbourEvent`] to a buffer of fixed capacity
//!   (one batch's worth: at most one event per frame, so it never fills while
//!   the worker drains it after every batch; repeats of the last event are
//!   skipped), collected only when [`share_neighbours`](Router::share_neighbours)
//!   is on; the worker sends the events to every other worker;
//! - a router that gets an event applies it
//!   ([`apply_neighbour_event`](Router::apply_neighbour_event)): the entry is
//!   confirmed, created if there is room, never a static one changed, and the
//!   frames that waited for it are originated into the batch it is given
//!   (the worker gives an empty one when it has no traffic of its own).
//!
//! Why it is right: an event is a hint, never a requirement. A lost event
//! (a full queue, counted by the worker) leaves the peer as it was before
//! sharing existed: it asks again on its next retry, and the answer is
//! shared again. Events carry the time they were learned; a table keeps
//! whichever of its own confirmation and the event is newer, so events that
//! cross (a neighbour that changed its MAC, seen by two workers) cannot bring
//! an older MAC back. Each table still ages its entries by itself: a stale
//! entry is probed by the worker that uses it, the reply (wherever it lands)
//! is shared, and an entry nobody confirms is forgotten on every worker on
//! its own schedule. Events never cause events, so nothing loops.
//!
//! [`QUEUE_PER_NEIGHBOUR`]: crate::neighbour::QUEUE_PER_NEIGHBOUR

use crate::batch::Batch;
use crate::checksum::incremental_update;
use crate::drop_reason::DropReason;
use crate::frame::{
    DomainId, FrameStore, PacketMeta, PortId, Timestamp, Verdict, MAX_BATCH, NO_PORT,
};
use crate::gateway::Gateway;
use crate::icmp_error::{self, ErrorPacer, IcmpError};
use crate::l2::L2Switch;
use crate::mac::MacAddr;
use crate::nat::engine::{Before, Nat};
use crate::neighbour::{NeighbourConfig, NeighbourState, NeighbourTable, Resolve};
use crate::parking::{Parking, Slot, NO_SLOT};
use crate::route::RouteTable;
use crate::stage::StageCounters;
use crate::wire::{ethertype, L3Kind, ETH_HEADER_LEN};
use std::net::Ipv4Addr;

pub use crate::icmp_error::ERROR_TTL;

/// ARP request frame length (padded to Ethernet's minimum).
const ARP_REQUEST_LEN: usize = 60;

/// The MTU of a network whose links are the veths the daemon makes.
pub const DEFAULT_MTU: u16 = 1500;

/// A network as the router sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutedNetwork {
    /// Its bridge domain.
    pub domain: DomainId,
    /// Its subnet.
    pub subnet: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The switch's address and MAC in it.
    pub gateway: Gateway,
    /// Refuses traffic to and from other networks (unless they are open).
    pub isolated: bool,
    /// Reaches and is reached by every network, isolated or not: the uplink
    /// and the host port.
    pub open: bool,
    /// Largest IPv4 datagram its links carry (header included).
    pub mtu: u16,
    /// New flows from it leaving by the uplink take the uplink address
    /// (masquerade).
    pub masquerade: bool,
}

impl RoutedNetwork {
    /// A network with the daemon's veths' MTU, not open.
    pub fn bridge(
        domain: DomainId,
        subnet: Ipv4Addr,
        prefix_len: u8,
        gateway: Gateway,
        isolated: bool,
    ) -> Self {
        RoutedNetwork {
            domain,
            subnet,
            prefix_len,
            gateway,
            isolated,
            open: false,
            mtu: DEFAULT_MTU,
            masquerade: false,
        }
    }

    /// True if frames may be routed between `self` and `other`.
    pub fn reaches(&self, other: &RoutedNetwork) -> bool {
        self.domain == other.domain || self.open || other.open || !(self.isolated || other.isolated)
    }
}

/// Where a route sends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    /// The egress network's domain.
    pub domain: DomainId,
    /// The gateway to send it to; `None` for a connected network (the
    /// destination itself is the next hop).
    pub via: Option<Ipv4Addr>,
}

/// A neighbour one worker's router learned from an ARP frame addressed to
/// the switch, for the other workers' routers (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourEvent {
    /// The network whose gateway the ARP frame was for.
    pub domain: DomainId,
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// When it was learned (the workers share one clock epoch).
    pub at: Timestamp,
}

/// Most neighbour events collected per batch: one per frame at most, so a
/// buffer drained after every batch never fills.
pub const NEIGHBOUR_EVENTS_PER_BATCH: usize = MAX_BATCH;

/// The router (see the module docs).
#[derive(Clone, Debug)]
pub struct Router {
    routes: RouteTable<RouteTarget>,
    networks: Vec<Option<RoutedNetwork>>,
    default_route: Option<RouteTarget>,
    neighbours: NeighbourTable<Slot>,
    parking: Parking,
    pacer: ErrorPacer,
    /// Scratch for the neighbour table's released frames (parking slots).
    released: Vec<Slot>,
    /// Scratch for the addresses aging asks to probe again.
    probes: Vec<Ipv4Addr>,
    /// Parked frames dropped since the worker last asked, with their ingress
    /// port (at most one per parking buffer between two drains).
    late_drops: Vec<(PortId, DropReason)>,
    /// Neighbours learned for the other workers (only collected when `share`
    /// is set); capacity fixed at creation, never grown.
    events: Vec<NeighbourEvent>,
    share: bool,
    counters: StageCounters,
    /// Connection tracking and translation, when some network masquerades
    /// or a port is published.
    nat: Option<Box<Nat>>,
    /// The uplink's domain: where masquerade applies.
    nat_uplink: Option<DomainId>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new(NeighbourConfig::default())
    }
}

impl Router {
    /// Key of the router's counters in stats.
    pub const NAME: &'static str = "router";

    /// A router with no network, whose neighbour table has `neighbours`' bounds.
    pub fn new(neighbours: NeighbourConfig) -> Self {
        Router {
            routes: RouteTable::new(),
            networks: Vec::new(),
            default_route: None,
            neighbours: NeighbourTable::new(neighbours),
            parking: Parking::new(),
            pacer: ErrorPacer::new(),
            released: Vec::with_capacity(64),
            probes: Vec::with_capacity(64),
            late_drops: Vec::with_capacity(2 * crate::parking::SLOTS),
            events: Vec::with_capacity(NEIGHBOUR_EVENTS_PER_BATCH),
            share: false,
            counters: StageCounters::default(),
            nat: None,
            nat_uplink: None,
        }
    }

    /// Adds or replaces a network (control path). Its subnet must be a valid
    /// prefix (the config checked it); an invalid one is ignored.
    pub fn set_network(&mut self, network: RoutedNetwork) {
        let d = usize::from(network.domain);
        if self.networks.len() <= d {
            self.networks.resize(d + 1, None);
        }
        if let Some(old) = self.networks[d].take() {
            let _ = self.routes.remove(old.subnet, old.prefix_len);
        }
        let connected = RouteTarget {
            domain: network.domain,
            via: None,
        };
        if self
            .routes
            .insert(network.subnet, network.prefix_len, connected)
            .is_ok()
        {
            self.networks[d] = Some(network);
        }
        self.restore_default_route();
    }

    /// Removes `domain`'s network (control path).
    pub fn remove_network(&mut self, domain: DomainId) {
        if let Some(old) = self
            .networks
            .get_mut(usize::from(domain))
            .and_then(Option::take)
        {
            let _ = self.routes.remove(old.subnet, old.prefix_len);
        }
        self.restore_default_route();
    }

    /// Sends everything no network covers to `via` in `domain`'s network (the
    /// uplink's next hop), or nothing (`None`). Control path.
    pub fn set_default_route(&mut self, route: Option<(DomainId, Ipv4Addr)>) {
        self.default_route = route.map(|(domain, via)| RouteTarget {
            domain,
            via: Some(via),
        });
        let _ = self.routes.remove(Ipv4Addr::UNSPECIFIED, 0);
        self.restore_default_route();
    }

    /// Keeps 0.0.0.0/0 in the table unless a network claims it.
    fn restore_default_route(&mut self) {
        let claimed = self.networks.iter().flatten().any(|n| n.prefix_len == 0);
        if let (Some(target), false) = (self.default_route, claimed) {
            let _ = self.routes.insert(Ipv4Addr::UNSPECIFIED, 0, target);
        }
    }

    /// Every route: prefix, length and target (dumps, tests).
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, RouteTarget)> + '_ {
        self.routes.routes().map(|(p, l, t)| (p, l, *t))
    }

    /// Gives the router its NAT engine (or none) and the uplink's domain,
    /// where masquerade applies; returns the engine it had, so a control
    /// path can free it elsewhere. Control path: replacing the engine
    /// forgets its flows.
    pub fn set_nat(&mut self, nat: Option<Box<Nat>>, uplink: Option<DomainId>) -> Option<Box<Nat>> {
        self.nat_uplink = uplink;
        std::mem::replace(&mut self.nat, nat)
    }

    /// The NAT engine, if any (stats, published ports, tests).
    pub fn nat(&self) -> Option<&Nat> {
        self.nat.as_deref()
    }

    /// The NAT engine, mutable (control path: published ports).
    pub fn nat_mut(&mut self) -> Option<&mut Nat> {
        self.nat.as_deref_mut()
    }

    /// True when some network is routed (else the stage has nothing to do).
    pub fn routes_any(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Records `ip` at `mac` for good (a container the daemon attached, a
    /// configured neighbour), or forgets it with `None`. Control path; frames
    /// that were waiting for it are dropped (counted in the router's counters).
    pub fn set_static_neighbour(&mut self, ip: Ipv4Addr, mac: Option<MacAddr>) {
        match mac {
            Some(mac) => {
                let _ = self.neighbours.set_static(ip, mac, &mut self.released);
            }
            None => {
                self.neighbours.remove(ip, &mut self.released);
            }
        }
        self.drop_released();
    }

    /// The neighbour table (dumps, tests).
    pub fn neighbours(&self) -> &NeighbourTable<Slot> {
        &self.neighbours
    }

    /// Parking buffers free now (tests: none stays taken).
    pub fn free_parking(&self) -> usize {
        self.parking.free_slots()
    }

    /// The stage's counters.
    pub fn counters(&self) -> &StageCounters {
        &self.counters
    }

    /// Makes [`learn_arp`](Self::learn_arp) collect a [`NeighbourEvent`] for
    /// every neighbour it learns or confirms. Only workers that share their
    /// neighbours switch it on (someone must drain the events).
    pub fn share_neighbours(&mut self, on: bool) {
        self.share = on;
        self.events.clear();
    }

    /// The neighbour events collected since the last
    /// [`clear_neighbour_events`](Self::clear_neighbour_events).
    pub fn neighbour_events(&self) -> &[NeighbourEvent] {
        &self.events
    }

    /// Forgets the collected neighbour events (after they were sent).
    pub fn clear_neighbour_events(&mut self) {
        self.events.clear();
    }

    /// Applies a neighbour another worker's router learned: confirms it
    /// (creating the entry if there is room; a static entry or a newer local
    /// confirmation wins) and originates the frames that waited for it into
    /// `batch`, up to [`QUEUE_PER_NEIGHBOUR`] of them (a batch without that
    /// much room drops the rest as `no_free_frame`). Returns whether the
    /// table now knows the neighbour at the event's MAC. An event for a
    /// network this router does not have is ignored.
    ///
    /// [`QUEUE_PER_NEIGHBOUR`]: crate::neighbour::QUEUE_PER_NEIGHBOUR
    pub fn apply_neighbour_event<F: FrameStore + ?Sized>(
        &mut self,
        l2: &L2Switch,
        batch: &mut Batch<'_, F>,
        event: &NeighbourEvent,
    ) -> bool {
        if self.network(event.domain).is_none() {
            return false;
        }
        let known =
            self.neighbours
                .apply_learned(event.ip, event.mac, event.at, &mut self.released);
        self.send_released(l2, batch, event.mac);
        known
    }

    /// Learns neighbours from the ARP frames of the batch addressed to a
    /// gateway (requests for a gateway address, replies to one) and sends
    /// the frames that waited for them; the replies are consumed. What it
    /// learns is also collected for the other workers when sharing is on
    /// (see the module docs). Runs before the gateway stage answers the
    /// requests.
    pub fn learn_arp<F: FrameStore + ?Sized>(&mut self, l2: &L2Switch, batch: &mut Batch<'_, F>) {
        let now = batch.now();
        for i in 0..batch.len() {
            let meta = batch.metas()[i];
            if meta.ethertype != ethertype::ARP || meta.vlan_count != 0 {
                continue;
            }
            if !matches!(meta.verdict, Verdict::ToGateway | Verdict::Flood) {
                continue;
            }
            let Some(gateway) = self.gateway_of(meta.domain) else {
                continue;
            };
            let Some(arp) = Arp::read(batch.frames().frame(i)) else {
                continue;
            };
            if arp.target_ip != gateway.ip || arp.sender_ip.is_unspecified() {
                continue;
            }
            let reply = arp.op == 2;
            // A request for our address: the sender will talk to us (Linux
            // creates the entry). A reply to our address and MAC: one of the
            // switch's workers asked, maybe not this one, so it is learned
            // here too. Any other reply only if this router asked.
            let create = !reply || arp.target_mac == gateway.mac;
            let known = self.neighbours.confirm(
                arp.sender_ip,
                arp.sender_mac,
                now,
                create,
                &mut self.released,
            );
            self.send_released(l2, batch, arp.sender_mac);
            if known && self.share {
                self.share_learned(meta.domain, arp.sender_ip, arp.sender_mac, now);
            }
            if reply {
                batch.metas_mut()[i].verdict = Verdict::Local;
                self.counters.record(&Verdict::Local);
            }
        }
    }

    /// Routes the batch's frames left for a gateway; `l2` gives egress ports.
    pub fn route<F: FrameStore + ?Sized>(&mut self, l2: &L2Switch, batch: &mut Batch<'_, F>) {
        let now = batch.now();
        let received = batch.len();
        if let Some(nat) = self.nat.as_deref().filter(|n| n.active()) {
            // The batch's conntrack lookups' misses, started together.
            let metas = batch.metas()[..received].iter();
            nat.prefetch(metas.filter(|m| m.verdict == Verdict::ToGateway));
        }
        for i in 0..received {
            let meta = batch.metas()[i];
            if meta.verdict != Verdict::ToGateway {
                continue;
            }
            let verdict = self.route_one(l2, batch, i, &meta, now);
            batch.metas_mut()[i].verdict = verdict;
            self.counters.record(&verdict);
        }
        if let Some(nat) = self.nat.as_mut() {
            nat.expire(now);
        }
        let stats = self.neighbours.stats();
        if stats.entries > 0 {
            // Aging, a few slots per batch: waiting entries on time (their
            // retries are sent from here), the rest over passes of the slab.
            if stats.unresolved > 0 {
                self.neighbours
                    .sweep_unresolved(now, 16, &mut self.released, &mut self.probes);
            }
            self.neighbours
                .sweep_step(now, 16, &mut self.released, &mut self.probes);
            self.drop_released();
            for k in 0..self.probes.len() {
                let target = self.probes[k];
                let egress = self
                    .routes
                    .lookup(target)
                    .and_then(|(_, t)| self.network(t.domain));
                if let Some(egress) = egress {
                    self.arp_request(batch, egress, target);
                }
            }
            self.probes.clear();
        }
    }

    /// Collects a neighbour learned from ARP for the other workers (not a
    /// static one: every worker has those; not the last event again).
    fn share_learned(&mut self, domain: DomainId, ip: Ipv4Addr, mac: MacAddr, at: Timestamp) {
        if self.neighbours.state(ip) == Some(NeighbourState::Static) {
            return;
        }
        if self
            .events
            .last()
            .is_some_and(|e| e.ip == ip && e.mac == mac && e.domain == domain)
        {
            return;
        }
        if self.events.len() < self.events.capacity() {
            self.events.push(NeighbourEvent {
                domain,
                ip,
                mac,
                at,
            });
        }
    }

    fn gateway_of(&self, domain: DomainId) -> Option<Gateway> {
        Some(self.network(domain)?.gateway)
    }

    fn network(&self, domain: DomainId) -> Option<RoutedNetwork> {
        self.networks.get(usize::from(domain)).copied().flatten()
    }

    /// Frees the parking buffers of released frames that cannot be sent,
    /// counting them as dropped.
    fn drop_released(&mut self) {
        for k in 0..self.released.len() {
            let slot = self.released[k];
            if slot != NO_SLOT {
                self.late_drop(slot, DropReason::UnresolvedNextHop);
                self.parking.give_back(slot);
            }
        }
        self.released.clear();
    }

    /// Counts a parked frame as dropped, in the stage and for its ingress port.
    fn late_drop(&mut self, slot: Slot, reason: DropReason) {
        self.counters.record_out(&Verdict::Drop(reason));
        if let Some((held, _)) = self.parking.get(slot) {
            if self.late_drops.len() < self.late_drops.capacity() {
                self.late_drops.push((held.in_port, reason));
            }
        }
    }

    /// Hands each parked frame dropped since the last call to `count` with its
    /// ingress port, so the worker counts it there like any other drop (such
    /// frames left their batch long ago). Allocates nothing.
    pub fn drain_late_drops(&mut self, mut count: impl FnMut(PortId, DropReason)) {
        for (port, reason) in self.late_drops.drain(..) {
            count(port, reason);
        }
    }

    /// Sends the released frames (now resolved to `mac`) from the batch.
    fn send_released<F: FrameStore + ?Sized>(
        &mut self,
        l2: &L2Switch,
        batch: &mut Batch<'_, F>,
        mac: MacAddr,
    ) {
        for k in 0..self.released.len() {
            let slot = self.released[k];
            if slot == NO_SLOT {
                continue;
            }
            if !self.send_parked(l2, batch, slot, mac) {
                self.late_drop(slot, DropReason::NoFreeFrame);
            }
            self.parking.give_back(slot);
        }
        self.released.clear();
    }

    /// Originates a copy of the frame parked in `slot` with its new L2 header.
    fn send_parked<F: FrameStore + ?Sized>(
        &mut self,
        l2: &L2Switch,
        batch: &mut Batch<'_, F>,
        slot: Slot,
        mac: MacAddr,
    ) -> bool {
        let Some((held, _)) = self.parking.get(slot) else {
            return false;
        };
        let Some(egress) = self.network(held.domain) else {
            return false;
        };
        let Ok(out) = batch.originate(held.in_port) else {
            return false;
        };
        let len = usize::from(held.len);
        if batch.frames_mut().set_len(out, len).is_err() {
            batch.metas_mut()[out].verdict = Verdict::Local;
            return false;
        }
        let frame = batch.frames_mut().frame_mut(out);
        if let Some((_, bytes)) = self.parking.get(slot) {
            frame.copy_from_slice(bytes);
        }
        frame[0..6].copy_from_slice(&mac.0);
        frame[6..12].copy_from_slice(&egress.gateway.mac.0);
        let verdict = egress_verdict(l2, egress.domain, mac, batch.now());
        let meta = &mut batch.metas_mut()[out];
        meta.domain = egress.domain;
        meta.ethertype = ethertype::IPV4;
        meta.verdict = verdict;
        self.counters.originated += 1;
        self.counters.record_out(&verdict);
        true
    }

    fn route_one<F: FrameStore + ?Sized>(
        &mut self,
        l2: &L2Switch,
        batch: &mut Batch<'_, F>,
        i: usize,
        meta: &PacketMeta,
        now: Timestamp,
    ) -> Verdict {
        if meta.l3 != L3Kind::Ipv4 || meta.vlan_count != 0 {
            return Verdict::Drop(DropReason::NoGateway);
        }
        let Some(ingress) = self.network(meta.domain) else {
            return Verdict::Drop(DropReason::NoGateway);
        };
        if !batch.is_handed_in() {
            if let Some(nat) = self.nat.as_deref().filter(|n| n.active()) {
                // A flow another worker's engine holds: handed to it
                // untouched, it routes it from scratch (`crate::nat::owner`).
                let owner = nat.owner(batch.frames().frame(i), meta, ingress.masquerade);
                if owner != nat.worker() {
                    return Verdict::HandOff(owner);
                }
            }
        }
        // NAT before routing: tracked flows and published ports (the
        // packet's addresses may change, so `meta` is the router's own copy).
        let mut meta = *meta;
        let meta = &mut meta;
        let mut translated = false;
        if let Some(nat) = self.nat.as_mut().filter(|n| n.active()) {
            let frame = batch.frames_mut().frame_mut(i);
            match nat.before_routing(frame, meta, !ingress.open, now) {
                Before::Untouched => {}
                Before::Translated => translated = true,
                Before::Drop(reason) => return Verdict::Drop(reason),
            }
        }
        if meta.dst_ip == ingress.gateway.ip {
            // For the gateway itself and not answered by it (not a ping).
            return Verdict::Drop(DropReason::NoGateway);
        }
        let Some((_, &target)) = self.routes.lookup(meta.dst_ip) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(egress) = self.network(target.domain) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        // A translated flow was allowed when it began (a published port is
        // reachable from every network, as through Docker's proxy).
        if !translated && !ingress.reaches(&egress) {
            return Verdict::Drop(DropReason::Isolated);
        }
        let l3 = usize::from(meta.l3_offset);
        let (ttl, total_len, dont_fragment) = {
            let Some(h) = batch.frames().frame(i).get(l3..l3 + 20) else {
                return Verdict::Drop(DropReason::TruncatedIpv4);
            };
            (h[8], u16::from_be_bytes([h[2], h[3]]), h[6] & 0x40 != 0)
        };
        if ttl <= 1 {
            self.answer(batch, i, meta, ingress.gateway, IcmpError::TimeExceeded);
            return Verdict::Drop(DropReason::TtlExpired);
        }
        if total_len > egress.mtu {
            if dont_fragment {
                let error = IcmpError::FragmentationNeeded { mtu: egress.mtu };
                self.answer(batch, i, meta, ingress.gateway, error);
            }
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        let next_hop = target.via.unwrap_or(meta.dst_ip);
        if next_hop == egress.gateway.ip {
            // A route through the switch's own address would loop.
            return Verdict::Drop(DropReason::NoRoute);
        }
        // NAT after routing: a new flow from a masquerading network out of
        // the uplink.
        if !translated && ingress.masquerade && Some(egress.domain) == self.nat_uplink {
            if let Some(nat) = self.nat.as_mut() {
                let frame = batch.frames_mut().frame_mut(i);
                if let Before::Drop(reason) = nat.masquerade(frame, meta, now) {
                    return Verdict::Drop(reason);
                }
            }
        }
        {
            let frame = batch.frames_mut().frame_mut(i);
            let header = &mut frame[l3..l3 + 20];
            // TTL and protocol share a 16-bit word of the header checksum.
            let old = u16::from_be_bytes([header[8], header[9]]);
            header[8] = ttl - 1;
            let new = u16::from_be_bytes([header[8], header[9]]);
            let checksum = u16::from_be_bytes([header[10], header[11]]);
            header[10..12].copy_from_slice(&incremental_update(checksum, old, new).to_be_bytes());
        }
        let slot = self.parking.take();
        let mac = match self.neighbours.resolve(next_hop, slot, now) {
            Resolve::Ready { mac, frame, probe } => {
                self.parking.give_back(frame);
                if probe {
                    self.arp_request(batch, egress, next_hop);
                }
                mac
            }
            Resolve::Queued { probe } => {
                if probe {
                    self.arp_request(batch, egress, next_hop);
                }
                let frame = batch.frames().frame(i);
                if self.parking.fill(slot, frame, meta.in_port, egress.domain) {
                    // Held (a copy): this buffer is done with.
                    return Verdict::Local;
                }
                // Queued as "nothing": its release frees nothing.
                return Verdict::Drop(DropReason::UnresolvedNextHop);
            }
            Resolve::Dropped { frame, .. } => {
                self.parking.give_back(frame);
                return Verdict::Drop(DropReason::UnresolvedNextHop);
            }
        };
        let frame = batch.frames_mut().frame_mut(i);
        frame[0..6].copy_from_slice(&mac.0);
        frame[6..12].copy_from_slice(&egress.gateway.mac.0);
        let verdict = egress_verdict(l2, egress.domain, mac, now);
        if verdict == Verdict::Flood {
            // Flooded in the egress network, not the one it came from.
            batch.metas_mut()[i].domain = egress.domain;
        }
        verdict
    }

    /// Sends `error` about frame `i` from `gateway` if RFC 1812 and the pacer
    /// allow.
    fn answer<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        i: usize,
        meta: &PacketMeta,
        gateway: Gateway,
        error: IcmpError,
    ) {
        if !icmp_error::may_answer(meta, batch.frames().frame(i)) || !self.pacer.allow(batch.now())
        {
            return;
        }
        if icmp_error::originate(batch, i, meta, gateway, error) {
            self.counters.originated += 1;
            self.counters.record_out(&Verdict::Forward(meta.in_port));
        }
    }

    /// Floods an ARP request for `target` in `egress` from its gateway.
    fn arp_request<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        egress: RoutedNetwork,
        target: Ipv4Addr,
    ) {
        // From no port: flooded to every port of the egress network.
        let Ok(request) = batch.originate(NO_PORT) else {
            return;
        };
        if batch
            .frames_mut()
            .set_len(request, ARP_REQUEST_LEN)
            .is_err()
        {
            batch.metas_mut()[request].verdict = Verdict::Local;
            return;
        }
        let out = batch.frames_mut().frame_mut(request);
        out.fill(0);
        out[0..6].copy_from_slice(&[0xff; 6]);
        out[6..12].copy_from_slice(&egress.gateway.mac.0);
        out[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        out[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        out[22..28].copy_from_slice(&egress.gateway.mac.0);
        out[28..32].copy_from_slice(&egress.gateway.ip.octets());
        out[38..42].copy_from_slice(&target.octets());
        let out_meta = &mut batch.metas_mut()[request];
        out_meta.domain = egress.domain;
        out_meta.ethertype = ethertype::ARP;
        out_meta.verdict = Verdict::Flood;
        self.counters.originated += 1;
        self.counters.record_out(&Verdict::Flood);
    }
}

/// The fields of an Ethernet/IPv4 ARP body the router learns from.
#[derive(Clone, Copy, Debug)]
struct Arp {
    op: u8,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
}

impl Arp {
    fn read(frame: &[u8]) -> Option<Arp> {
        let a: &[u8; 28] = frame.get(ETH_HEADER_LEN..)?.first_chunk()?;
        if a[..7] != [0, 1, 0x08, 0x00, 6, 4, 0] || !matches!(a[7], 1 | 2) {
            return None;
        }
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&a[8..14]);
        let mut target_mac = [0u8; 6];
        target_mac.copy_from_slice(&a[18..24]);
        Some(Arp {
            op: a[7],
            sender_mac: MacAddr(sender_mac),
            sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
            target_mac: MacAddr(target_mac),
            target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        })
    }
}

/// Where a frame to `mac` in `domain` goes: the port the L2 table knows it
/// on, else flooded in that domain.
fn egress_verdict(l2: &L2Switch, domain: DomainId, mac: MacAddr, now: Timestamp) -> Verdict {
    match l2.mac_table().lookup(domain, mac, now) {
        Some(port) if Some(domain) == l2.port_domain(port) => Verdict::Forward(port),
        _ => Verdict::Flood,
    }
}
