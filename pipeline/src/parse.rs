//! The parse stage: the first stage of every burst. It validates each frame once
//! (so later stages may trust the offsets), records in the frame's
//! [`PacketMeta`] everything later stages need from the headers (offsets,
//! EtherType and VLAN, IPv4 addresses, protocol, ports, ICMP type and echo id, a
//! flow hash), and repairs partial checksums from offloading senders before the
//! frame goes anywhere. No later stage parses again.

use crate::batch::Batch;
use crate::checksum::complete_partial;
use crate::flow::{ipv4_flow_hash, ipv6_flow_hash, l2_flow_hash};
use crate::frame::{FrameStore, PacketMeta, Verdict};
use crate::stage::{Stage, StageCounters};
use crate::wire::{ip_proto, parse_frame, L3Kind, ParsedFrame};
use std::net::Ipv4Addr;

/// The parse stage as a [`Stage`]: parses every `Pending` frame; a malformed one
/// becomes `Drop(reason)`, a good one stays `Pending` with its meta filled in.
#[derive(Clone, Debug, Default)]
pub struct ParseStage {
    counters: StageCounters,
}

impl ParseStage {
    /// A parse stage with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Stage for ParseStage {
    const NAME: &'static str = "parse";

    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        let (frames, metas) = batch.split();
        for (i, meta) in metas.iter_mut().enumerate() {
            if !meta.verdict.is_pending() {
                continue;
            }
            parse_into(frames, i, meta);
            self.counters.record(&meta.verdict);
        }
    }

    fn counters(&self) -> &StageCounters {
        &self.counters
    }
}

/// Parses every `Pending` frame of a batch as [`ParseStage`] does, without
/// counters (tests, benchmarks and the fuzz targets call it directly).
///
/// `metas[i]` describes frame `i` of `frames`, which must hold at least
/// `metas.len()` frames. Frames already decided are skipped. No allocation.
pub fn parse_stage<F: FrameStore + ?Sized>(frames: &mut F, metas: &mut [PacketMeta]) {
    for (i, meta) in metas.iter_mut().enumerate() {
        if meta.verdict.is_pending() {
            parse_into(frames, i, meta);
        }
    }
}

/// Parses frame `index` into `meta` and completes a partial checksum.
#[inline]
fn parse_into<F: FrameStore + ?Sized>(frames: &mut F, index: usize, meta: &mut PacketMeta) {
    match parse_frame(frames.frame(index)) {
        Ok(parsed) => {
            fill_meta(frames.frame(index), &parsed, meta);
            if parsed.l4.is_some() {
                complete_partial(frames.frame_mut(index), &parsed);
            }
        }
        Err(reason) => meta.verdict = Verdict::Drop(reason),
    }
}

/// Copies what parsing found into `meta` (the frame was validated by
/// [`parse_frame`], so every read below is in bounds; each is still checked).
#[inline]
fn fill_meta(frame: &[u8], parsed: &ParsedFrame, meta: &mut PacketMeta) {
    meta.ethertype = parsed.ethertype;
    meta.vlan_count = parsed.vlan_count;
    meta.vlan_id = parsed.vlan_id;
    meta.l3_offset = parsed.l3_offset;
    meta.l3 = parsed.l3;
    let l3 = usize::from(parsed.l3_offset);
    let Some(l4) = parsed.l4 else {
        meta.flow_hash = frame
            .first_chunk::<12>()
            .map_or(0, |macs| l2_flow_hash(macs, parsed.ethertype));
        return;
    };
    // Both offsets are below a frame's length, which fits u16 for every frame
    // a port can hold (at most 64 KiB).
    meta.l4_offset = l4.offset as u16;
    meta.l4_len = l4.len as u16;
    meta.protocol = l4.protocol;
    meta.fragment = l4.fragment;
    let segment = frame.get(l4.offset..l4.offset + l4.len).unwrap_or(&[]);
    if !l4.fragment {
        match l4.protocol {
            ip_proto::TCP | ip_proto::UDP => {
                if let Some(p) = segment.first_chunk::<4>() {
                    meta.src_port = u16::from_be_bytes([p[0], p[1]]);
                    meta.dst_port = u16::from_be_bytes([p[2], p[3]]);
                }
            }
            ip_proto::ICMP if parsed.l3 == L3Kind::Ipv4 => {
                if let Some(h) = segment.first_chunk::<4>() {
                    meta.icmp_type = h[0];
                    meta.icmp_code = h[1];
                }
                if let Some(h) = segment.first_chunk::<8>() {
                    // Echo is defined with code 0 only (RFC 792); anything else
                    // has no identifier.
                    if (h[0] == ICMP_ECHO_REPLY || h[0] == ICMP_ECHO_REQUEST) && h[1] == 0 {
                        meta.icmp_id = u16::from_be_bytes([h[4], h[5]]);
                    }
                }
            }
            _ => {}
        }
    }
    let hash_port = if meta.icmp_id != 0 {
        meta.icmp_id
    } else {
        meta.src_port
    };
    match parsed.l3 {
        L3Kind::Ipv4 => {
            if let Some(h) = frame.get(l3 + 12..l3 + 20) {
                meta.src_ip = Ipv4Addr::new(h[0], h[1], h[2], h[3]);
                meta.dst_ip = Ipv4Addr::new(h[4], h[5], h[6], h[7]);
            }
            meta.flow_hash = ipv4_flow_hash(
                meta.src_ip,
                meta.dst_ip,
                meta.protocol,
                hash_port,
                meta.dst_port,
            );
        }
        L3Kind::Ipv6 => {
            let addr = |at: usize| -> [u8; 16] {
                frame
                    .get(at..at + 16)
                    .and_then(|a| a.try_into().ok())
                    .unwrap_or([0; 16])
            };
            meta.flow_hash = ipv6_flow_hash(
                &addr(l3 + 8),
                &addr(l3 + 24),
                meta.protocol,
                meta.src_port,
                meta.dst_port,
            );
        }
        L3Kind::Other => {}
    }
}

/// ICMPv4 echo reply type.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv4 echo request type.
pub const ICMP_ECHO_REQUEST: u8 = 8;
