//! The router stage: IPv4 between the switch's networks, for frames the L2
//! stage handed to a network's gateway and the gateway stage did not answer.
//!
//! For each such frame: the destination is looked up in the routing table (each
//! network's subnet); networks are isolated from each other unless both say
//! otherwise (Docker's default: `isolated = false` on both opens the route); the
//! TTL is decremented with an incremental checksum update (RFC 1624), and a
//! frame whose TTL runs out is answered with ICMP time exceeded from the
//! ingress network's gateway; the next hop's MAC comes from the neighbour table
//! (static entries for the containers the daemon attached, entries learned
//! from ARP for the rest); the new L2 header carries the egress network's
//! gateway MAC as source, and the egress port comes from the L2 table (flooded
//! in the egress network while unknown).
//!
//! An unknown next hop: the frame is dropped and counted
//! (`unresolved_next_hop`) and an ARP request for it is flooded in the egress
//! network, at most once per retry interval (the neighbour table's incomplete
//! state paces it); senders retransmit, as they do after any loss. Frames are
//! not held while resolving: holding them would pin pool frames across
//! bursts, and containers attached by the daemon never need it.
//!
//! All networks share one MTU today (1500, the veths the daemon makes), so no
//! routed frame is ever too big for its egress; fragmentation-needed comes
//! with the uplink, whose MTU may differ.

use crate::batch::Batch;
use crate::checksum::{fold, incremental_update, sum_be_words};
use crate::drop_reason::DropReason;
use crate::frame::{DomainId, FrameStore, PacketMeta, Timestamp, Verdict};
use crate::gateway::Gateway;
use crate::l2::L2Switch;
use crate::mac::MacAddr;
use crate::neighbour::{NeighbourConfig, NeighbourTable, Resolve};
use crate::route::RouteTable;
use crate::stage::StageCounters;
use crate::wire::{ethertype, ip_proto, L3Kind, ETH_HEADER_LEN};
use std::net::Ipv4Addr;

/// TTL of the ICMP errors the router sends.
pub const ERROR_TTL: u8 = 64;
/// Bytes of the offending datagram's payload an ICMP error quotes (RFC 792).
const QUOTED_PAYLOAD: usize = 8;
/// ARP request frame length (padded to Ethernet's minimum).
const ARP_REQUEST_LEN: usize = 60;

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
    /// Refuses traffic to and from other networks.
    pub isolated: bool,
}

/// The router (see the module docs).
#[derive(Clone, Debug)]
pub struct Router {
    routes: RouteTable<DomainId>,
    networks: Vec<Option<RoutedNetwork>>,
    neighbours: NeighbourTable<()>,
    /// Scratch for the neighbour table's released frames (always `()` here).
    released: Vec<()>,
    /// Scratch for the addresses aging asks to probe again (traffic drives
    /// the requests here, so they are only cleared).
    probes: Vec<Ipv4Addr>,
    counters: StageCounters,
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
            neighbours: NeighbourTable::new(neighbours),
            released: Vec::with_capacity(64),
            probes: Vec::with_capacity(64),
            counters: StageCounters::default(),
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
        if self
            .routes
            .insert(network.subnet, network.prefix_len, network.domain)
            .is_ok()
        {
            self.networks[d] = Some(network);
        }
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
    }

    /// True when some network is routed (else the stage has nothing to do).
    pub fn routes_any(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Records `ip` at `mac` for good (a container the daemon attached), or
    /// forgets it with `None`. Control path.
    pub fn set_static_neighbour(&mut self, ip: Ipv4Addr, mac: Option<MacAddr>) {
        match mac {
            Some(mac) => {
                let _ = self.neighbours.set_static(ip, mac, &mut self.released);
            }
            None => {
                self.neighbours.remove(ip, &mut self.released);
            }
        }
        self.released.clear();
    }

    /// The neighbour table (dumps, tests).
    pub fn neighbours(&self) -> &NeighbourTable<()> {
        &self.neighbours
    }

    /// The stage's counters.
    pub fn counters(&self) -> &StageCounters {
        &self.counters
    }

    /// Learns neighbours from the ARP frames of the batch addressed to a
    /// gateway (requests for a gateway address, replies to the router's own
    /// requests); the replies are consumed. Runs before the gateway stage
    /// answers the requests.
    pub fn learn_arp<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
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
            // creates the entry); a reply: only if we asked.
            self.neighbours.confirm(
                arp.sender_ip,
                arp.sender_mac,
                now,
                !reply,
                &mut self.released,
            );
            self.released.clear();
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
        for i in 0..received {
            let meta = batch.metas()[i];
            if meta.verdict != Verdict::ToGateway {
                continue;
            }
            let verdict = self.route_one(l2, batch, i, &meta, now);
            batch.metas_mut()[i].verdict = verdict;
            self.counters.record(&verdict);
        }
        if self.neighbours.stats().unresolved > 0 {
            // Incomplete entries age here, a few slots per batch (requests are
            // sent when traffic asks, so the probes list is only cleared).
            self.neighbours
                .sweep_step(now, 16, &mut self.released, &mut self.probes);
            self.released.clear();
            self.probes.clear();
        }
    }

    fn gateway_of(&self, domain: DomainId) -> Option<Gateway> {
        Some(self.networks.get(usize::from(domain))?.as_ref()?.gateway)
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
        let Some(ingress) = self
            .networks
            .get(usize::from(meta.domain))
            .copied()
            .flatten()
        else {
            return Verdict::Drop(DropReason::NoGateway);
        };
        if meta.dst_ip == ingress.gateway.ip {
            // For the gateway itself and not answered by it (not a ping).
            return Verdict::Drop(DropReason::NoGateway);
        }
        let Some((_, &egress_domain)) = self.routes.lookup(meta.dst_ip) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(egress) = self
            .networks
            .get(usize::from(egress_domain))
            .copied()
            .flatten()
        else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if egress.domain != ingress.domain && (ingress.isolated || egress.isolated) {
            return Verdict::Drop(DropReason::Isolated);
        }
        let l3 = usize::from(meta.l3_offset);
        let Some(&ttl) = batch.frames().frame(i).get(l3 + 8) else {
            return Verdict::Drop(DropReason::TruncatedIpv4);
        };
        if ttl <= 1 {
            self.time_exceeded(batch, i, meta, ingress.gateway);
            return Verdict::Drop(DropReason::TtlExpired);
        }
        let mac = match self.neighbours.resolve(meta.dst_ip, (), now) {
            Resolve::Ready { mac, .. } => mac,
            Resolve::Queued { probe } => {
                if probe {
                    self.arp_request(batch, meta, egress);
                }
                return Verdict::Drop(DropReason::UnresolvedNextHop);
            }
            Resolve::Dropped { .. } => return Verdict::Drop(DropReason::UnresolvedNextHop),
        };
        let frame = batch.frames_mut().frame_mut(i);
        let Some(header) = frame.get_mut(l3..l3 + 20) else {
            return Verdict::Drop(DropReason::TruncatedIpv4);
        };
        // TTL and protocol share a 16-bit word of the header checksum.
        let old = u16::from_be_bytes([header[8], header[9]]);
        header[8] = ttl - 1;
        let new = u16::from_be_bytes([header[8], header[9]]);
        let checksum = u16::from_be_bytes([header[10], header[11]]);
        header[10..12].copy_from_slice(&incremental_update(checksum, old, new).to_be_bytes());
        frame[0..6].copy_from_slice(&mac.0);
        frame[6..12].copy_from_slice(&egress.gateway.mac.0);
        match l2.mac_table().lookup(egress.domain, mac, now) {
            Some(port) if Some(egress.domain) == l2.port_domain(port) => Verdict::Forward(port),
            _ => {
                // Flooded in the egress network, not the one it came from.
                batch.metas_mut()[i].domain = egress.domain;
                Verdict::Flood
            }
        }
    }

    /// Answers frame `i` (TTL exhausted) with ICMP time exceeded from
    /// `gateway`, back out of its ingress port.
    fn time_exceeded<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        i: usize,
        meta: &PacketMeta,
        gateway: Gateway,
    ) {
        let l3 = usize::from(meta.l3_offset);
        let (src_mac, quoted) = {
            let frame = batch.frames().frame(i);
            let ihl = usize::from(frame.get(l3).map_or(5, |b| b & 0x0f)) * 4;
            let end = (l3 + ihl + QUOTED_PAYLOAD).min(frame.len());
            let mut src = [0u8; 6];
            src.copy_from_slice(frame.get(6..12).unwrap_or(&[0; 6]));
            (src, l3..end)
        };
        let quoted_len = quoted.len();
        let len = ETH_HEADER_LEN + 20 + 8 + quoted_len;
        let Ok(reply) = batch.originate(meta.in_port) else {
            return;
        };
        if batch.frames_mut().set_len(reply, len).is_err() {
            batch.metas_mut()[reply].verdict = Verdict::Local;
            return;
        }
        let mut quote = [0u8; 60 + QUOTED_PAYLOAD];
        quote[..quoted_len].copy_from_slice(&batch.frames().frame(i)[quoted]);
        let out = batch.frames_mut().frame_mut(reply);
        out.fill(0);
        out[0..6].copy_from_slice(&src_mac);
        out[6..12].copy_from_slice(&gateway.mac.0);
        out[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let ip = &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 8 + quoted_len) as u16).to_be_bytes());
        ip[8] = ERROR_TTL;
        ip[9] = ip_proto::ICMP;
        ip[12..16].copy_from_slice(&gateway.ip.octets());
        ip[16..20].copy_from_slice(&meta.src_ip.octets());
        let sum = crate::checksum::ipv4_header_checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let icmp = &mut out[ETH_HEADER_LEN + 20..];
        icmp[0] = 11; // time exceeded
        icmp[1] = 0; // TTL exceeded in transit
        icmp[8..8 + quoted_len].copy_from_slice(&quote[..quoted_len]);
        let sum = !fold(sum_be_words(icmp, 0));
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let out_meta = &mut batch.metas_mut()[reply];
        out_meta.domain = meta.domain;
        out_meta.ethertype = ethertype::IPV4;
        out_meta.verdict = Verdict::Forward(meta.in_port);
        self.counters.originated += 1;
        self.counters.record_out(&Verdict::Forward(meta.in_port));
    }

    /// Floods an ARP request for `meta.dst_ip` in `egress` from its gateway.
    fn arp_request<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        meta: &PacketMeta,
        egress: RoutedNetwork,
    ) {
        let Ok(request) = batch.originate(meta.in_port) else {
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
        out[38..42].copy_from_slice(&meta.dst_ip.octets());
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
    target_ip: Ipv4Addr,
}

impl Arp {
    fn read(frame: &[u8]) -> Option<Arp> {
        let a: &[u8; 28] = frame.get(ETH_HEADER_LEN..)?.first_chunk()?;
        if a[..7] != [0, 1, 0x08, 0x00, 6, 4, 0] || !matches!(a[7], 1 | 2) {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&a[8..14]);
        Some(Arp {
            op: a[7],
            sender_mac: MacAddr(mac),
            sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
            target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        })
    }
}

// A compile-time check that an ICMP error always fits a minimum frame buffer.
const _: () = assert!(ETH_HEADER_LEN + 20 + 8 + 60 + QUOTED_PAYLOAD <= 2048);
