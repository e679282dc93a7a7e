//! The source guard stage: anti-spoofing on ports whose station the switch
//! assigned (containers attached through the control socket or CNI). A frame
//! from such a port must carry the port's MAC as its Ethernet source, and, when
//! the port has an IPv4 address, that address as its IPv4 source and as an ARP
//! sender; otherwise it is dropped and counted (`spoofed_source_mac`,
//! `spoofed_source_ip`). So no container can claim the gateway's address, a
//! neighbour's address or MAC, or poison other stations' ARP caches, as
//! Docker's bridge driver prevents with its own filters (and libvirt with
//! `clean-traffic`).
//!
//! Allowed besides the port's own address: the unspecified source `0.0.0.0`
//! (DHCP discovery, and ARP probes of duplicate address detection, RFC 5227).
//! Ports without a binding (configured interfaces, `add-port`) are not guarded.
//! It runs right after parsing, before the L2 stage, so a spoofed frame never
//! teaches the MAC table anything.

use crate::batch::Batch;
use crate::drop_reason::DropReason;
use crate::frame::{FrameStore, PortId, Verdict};
use crate::mac::MacAddr;
use crate::stage::{Stage, StageCounters};
use crate::wire::{ethertype, L3Kind};
use std::net::Ipv4Addr;

/// The station a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBinding {
    /// The only Ethernet source the port may send from.
    pub mac: MacAddr,
    /// The only IPv4 source (and ARP sender address) it may use, if it has one.
    pub ip: Option<Ipv4Addr>,
}

/// Offsets inside an ARP body (IPv4 over Ethernet).
const ARP_SENDER_MAC: usize = 8;
const ARP_SENDER_IP: usize = 14;
const ARP_BODY_LEN: usize = 28;

/// The source guard (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct SourceGuard {
    /// Binding of each port, by port id.
    bindings: Vec<Option<PortBinding>>,
    /// Some port is bound (kept at control time, read per batch).
    any: bool,
    counters: StageCounters,
}

impl SourceGuard {
    /// A guard with no port bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `port` to a station (or unbinds it). Control path.
    pub fn bind(&mut self, port: PortId, binding: Option<PortBinding>) {
        let p = usize::from(port);
        if self.bindings.len() <= p {
            self.bindings.resize(p + 1, None);
        }
        self.bindings[p] = binding;
        self.any = self.bindings.iter().any(Option::is_some);
    }

    /// The binding of `port`.
    pub fn binding(&self, port: PortId) -> Option<PortBinding> {
        self.bindings.get(usize::from(port)).copied().flatten()
    }

    /// True when some port is bound (else the stage has nothing to do).
    #[inline]
    pub fn guards_any(&self) -> bool {
        self.any
    }
}

/// What a bound port's frame is: allowed, or dropped for a reason.
fn check(
    frame: &[u8],
    meta: &crate::frame::PacketMeta,
    binding: PortBinding,
) -> Option<DropReason> {
    let Some(src) = frame.get(6..12) else {
        return Some(DropReason::Runt);
    };
    if src != binding.mac.0 {
        return Some(DropReason::SpoofedSourceMac);
    }
    let ip_ok = |ip: Ipv4Addr| {
        binding
            .ip
            .is_none_or(|own| ip == own || ip.is_unspecified())
    };
    if meta.l3 == L3Kind::Ipv4 {
        return (!ip_ok(meta.src_ip)).then_some(DropReason::SpoofedSourceIp);
    }
    if meta.ethertype == ethertype::ARP {
        let l3 = usize::from(meta.l3_offset);
        let Some(arp) = frame.get(l3..l3 + ARP_BODY_LEN) else {
            return Some(DropReason::TruncatedArp);
        };
        if arp[ARP_SENDER_MAC..ARP_SENDER_MAC + 6] != binding.mac.0 {
            return Some(DropReason::SpoofedSourceMac);
        }
        let s = &arp[ARP_SENDER_IP..ARP_SENDER_IP + 4];
        if !ip_ok(Ipv4Addr::new(s[0], s[1], s[2], s[3])) {
            return Some(DropReason::SpoofedSourceIp);
        }
    }
    None
}

impl Stage for SourceGuard {
    const NAME: &'static str = "guard";

    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        let (frames, metas) = batch.split();
        for (i, meta) in metas.iter_mut().enumerate() {
            if !meta.verdict.is_pending() {
                continue;
            }
            let Some(binding) = self.binding(meta.in_port) else {
                continue;
            };
            if let Some(reason) = check(frames.frame(i), meta, binding) {
                meta.verdict = Verdict::Drop(reason);
            }
            self.counters.record(&meta.verdict);
        }
    }

    fn counters(&self) -> &StageCounters {
        &self.counters
    }
}
