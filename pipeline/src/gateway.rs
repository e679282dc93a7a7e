//! The gateway responder stage: answers, for each network's gateway address,
//! ARP requests (with a reply originated into a fresh pool frame) and ICMP echo
//! requests (turned into the reply in place: the reply is the request's own
//! bytes with addresses swapped and the type changed, so no payload is
//! copied). Neither allocates. Not yet wired into the worker's chain; routing
//! (the rest of issue 9) adds it after the L2 stage.
//!
//! It looks at frames the L2 stage handed to the gateway (`ToGateway`: unicast
//! to the gateway MAC) and at flooded ARP requests; everything else passes
//! untouched, and a `ToGateway` frame it does not answer stays `ToGateway` for
//! the route stage. Tagged (VLAN) frames are left alone.

use crate::batch::Batch;
use crate::checksum::{incremental_update, ipv4_header_checksum};
use crate::frame::{DomainId, FrameStore, PacketMeta, Verdict};
use crate::mac::MacAddr;
use crate::parse::{ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST};
use crate::stage::{Stage, StageCounters};
use crate::wire::{ethertype, ip_proto, L3Kind, ETH_HEADER_LEN};
use serde::Serialize;
use std::net::Ipv4Addr;

/// One network's gateway: the address containers route through and the MAC
/// the switch answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway address (the network's `gateway` in the config).
    pub ip: Ipv4Addr,
    /// The MAC the switch uses for it.
    pub mac: MacAddr,
}

/// What the responder answered, beyond the per-node counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStats {
    /// ARP replies originated.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub echo_replies: u64,
}

/// Length of an ARP body for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;
/// Length of an ARP reply frame as sent: padded to Ethernet's 60-byte minimum.
pub const ARP_FRAME_LEN: usize = 60;
/// TTL of the replies the gateway sends.
pub const REPLY_TTL: u8 = 64;

/// The gateway responder (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct GatewayStage {
    /// Gateway of each domain, by domain id.
    gateways: Vec<Option<Gateway>>,
    /// Some entry of `gateways` is set (kept at control time, read per batch).
    any: bool,
    counters: StageCounters,
    stats: GatewayStats,
}

impl GatewayStage {
    /// A responder for no network yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `domain` a gateway (or none). Control path.
    pub fn set_gateway(&mut self, domain: DomainId, gateway: Option<Gateway>) {
        let d = usize::from(domain);
        if self.gateways.len() <= d {
            self.gateways.resize(d + 1, None);
        }
        if let Some(slot) = self.gateways.get_mut(d) {
            *slot = gateway;
        }
        self.any = self.gateways.iter().any(Option::is_some);
    }

    /// True when some network has a gateway (else the stage has nothing to do).
    #[inline]
    pub fn has_gateways(&self) -> bool {
        self.any
    }

    /// The gateway of `domain`.
    #[inline]
    pub fn gateway(&self, domain: DomainId) -> Option<Gateway> {
        self.gateways.get(usize::from(domain)).copied().flatten()
    }

    /// What it answered so far.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }
}

impl Stage for GatewayStage {
    const NAME: &'static str = "gateway";

    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        // Only the frames that were in the batch before this stage: the ones
        // it originates are final.
        for i in 0..batch.len() {
            let meta = batch.metas()[i];
            if meta.vlan_count != 0 {
                continue;
            }
            let candidate = match meta.verdict {
                Verdict::ToGateway => true,
                Verdict::Flood => meta.ethertype == ethertype::ARP,
                _ => false,
            };
            if !candidate {
                continue;
            }
            let Some(gateway) = self.gateway(meta.domain) else {
                continue;
            };
            let verdict = if meta.ethertype == ethertype::ARP {
                self.arp(batch, i, &meta, gateway)
            } else if is_echo_request_to(&meta, gateway.ip) {
                echo_reply_in_place(batch.frames_mut(), i, &meta, gateway)
                    .map(|()| {
                        self.stats.echo_replies += 1;
                        Verdict::Forward(meta.in_port)
                    })
                    .unwrap_or(meta.verdict)
            } else {
                meta.verdict
            };
            if verdict == meta.verdict && meta.verdict == Verdict::Flood {
                // Not ours (an ARP request for a neighbour): not taken in.
                continue;
            }
            batch.metas_mut()[i].verdict = verdict;
            self.counters.record(&verdict);
        }
    }

    fn counters(&self) -> &StageCounters {
        &self.counters
    }
}

impl GatewayStage {
    /// Answers an ARP request for the gateway address with a reply originated
    /// into a fresh frame; the request is consumed. Anything else is left as it was.
    fn arp<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        i: usize,
        meta: &PacketMeta,
        gateway: Gateway,
    ) -> Verdict {
        let Some(request) = ArpRequest::read(batch.frames().frame(i)) else {
            return meta.verdict;
        };
        if request.target_ip != gateway.ip || request.sender_ip == gateway.ip {
            return meta.verdict;
        }
        // Without a frame for the reply the request is dropped and counted
        // (no_free_frame); the requester retries.
        let reply = match batch.originate(meta.in_port) {
            Ok(reply) => reply,
            Err(e) => return Verdict::Drop(e.drop_reason()),
        };
        let frames = batch.frames_mut();
        if let Err(e) = frames.set_len(reply, ARP_FRAME_LEN) {
            // Never sent half-built: the fresh frame goes back to the pool.
            batch.metas_mut()[reply].verdict = Verdict::Local;
            return Verdict::Drop(e.drop_reason());
        }
        write_arp_reply(frames.frame_mut(reply), &request, gateway);
        let out = &mut batch.metas_mut()[reply];
        out.domain = meta.domain;
        out.ethertype = ethertype::ARP;
        out.verdict = Verdict::Forward(meta.in_port);
        self.counters.originated += 1;
        self.counters.record_out(&out.verdict);
        self.stats.arp_replies += 1;
        Verdict::Local
    }
}

/// The fields of an ARP request (IPv4 over Ethernet) the reply needs.
#[derive(Clone, Copy, Debug)]
struct ArpRequest {
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
}

impl ArpRequest {
    /// Reads an untagged frame's ARP body; `None` unless it is a well-formed
    /// Ethernet/IPv4 request.
    fn read(frame: &[u8]) -> Option<ArpRequest> {
        let arp: &[u8; ARP_LEN] = frame.get(ETH_HEADER_LEN..)?.first_chunk()?;
        // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, operation 1 (request).
        if arp[..8] != [0, 1, 0x08, 0x00, 6, 4, 0, 1] {
            return None;
        }
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&arp[8..14]);
        Some(ArpRequest {
            sender_mac,
            sender_ip: Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]),
            target_ip: Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]),
        })
    }
}

/// Writes a whole ARP reply frame (`frame` is exactly [`ARP_FRAME_LEN`] bytes).
fn write_arp_reply(frame: &mut [u8], request: &ArpRequest, gateway: Gateway) {
    frame.fill(0);
    let mac = gateway.mac.0;
    let ip = gateway.ip.octets();
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = frame.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(&request.sender_mac);
    put(&mac);
    put(&ethertype::ARP.to_be_bytes());
    put(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    put(&mac);
    put(&ip);
    put(&request.sender_mac);
    put(&request.sender_ip.octets());
}

/// True for a whole echo request to `ip` from a unicast address (as the parse
/// stage read it).
#[inline]
fn is_echo_request_to(meta: &PacketMeta, ip: Ipv4Addr) -> bool {
    meta.l3 == L3Kind::Ipv4
        && meta.protocol == ip_proto::ICMP
        && !meta.fragment
        && meta.icmp_type == ICMP_ECHO_REQUEST
        && meta.icmp_code == 0
        && meta.l4_len >= 8
        && meta.dst_ip == ip
        // Never answer to an address no single host owns.
        && !meta.src_ip.is_unspecified()
        && !meta.src_ip.is_broadcast()
        && !meta.src_ip.is_multicast()
}

/// Turns the echo request in frame `i` into its reply: MACs and addresses
/// swapped (the reply comes from the gateway whatever MAC the request used),
/// TTL reset, type 0, both checksums updated. `None` if the frame does not
/// hold what the meta says (never for a frame the parse stage passed).
fn echo_reply_in_place<F: FrameStore + ?Sized>(
    frames: &mut F,
    i: usize,
    meta: &PacketMeta,
    gateway: Gateway,
) -> Option<()> {
    let frame = frames.frame_mut(i);
    let l3 = usize::from(meta.l3_offset);
    let l4 = usize::from(meta.l4_offset);
    let ihl = l4.checked_sub(l3)?;
    // Ethernet: back to the sender, from the gateway.
    let (eth, _) = frame.split_first_chunk_mut::<12>()?;
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&eth[6..]);
    eth[..6].copy_from_slice(&sender);
    eth[6..].copy_from_slice(&gateway.mac.0);
    // IPv4: swap the addresses, fresh TTL, checksum over the header again.
    let ip = frame.get_mut(l3..l3 + ihl)?;
    ip[8] = REPLY_TTL;
    let mut src = [0u8; 4];
    src.copy_from_slice(ip.get(12..16)?);
    ip.copy_within(16..20, 12);
    ip.get_mut(16..20)?.copy_from_slice(&src);
    let sum = ipv4_header_checksum(ip);
    ip.get_mut(10..12)?.copy_from_slice(&sum.to_be_bytes());
    // ICMP: type 8 -> 0 in the first word; the checksum follows incrementally.
    let icmp = frame.get_mut(l4..l4 + 4)?;
    let old_word = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = ICMP_ECHO_REPLY;
    let new_word = u16::from_be_bytes([icmp[0], icmp[1]]);
    let old_sum = u16::from_be_bytes([icmp[2], icmp[3]]);
    let new_sum = incremental_update(old_sum, old_word, new_word);
    icmp[2..4].copy_from_slice(&new_sum.to_be_bytes());
    Some(())
}
