//! ICMP errors the router originates about a frame it could not route
//! (RFC 792, RFC 1812 section 4.3.2): which frames may be answered at all,
//! how fast, and how the answer is written into a fresh frame of the batch.
//!
//! Never answered (RFC 1812 4.3.2.7): an ICMP error message (so two routers
//! cannot answer each other's errors forever), a non-first fragment, and a
//! datagram to or from a broadcast or multicast address. Answers are paced by
//! a token bucket (Linux's `icmp_msgs_per_sec`/`icmp_msgs_burst`: 1,000 per
//! second, bursts of 50), so a flood of expiring or oversize frames cannot
//! make the switch flood ICMP.

use crate::batch::Batch;
use crate::checksum::{fold, ipv4_header_checksum, sum_be_words};
use crate::frame::{FrameStore, PacketMeta, Timestamp, Verdict};
use crate::gateway::Gateway;
use crate::wire::{ethertype, ip_proto, ETH_HEADER_LEN};

/// TTL of the ICMP errors the router sends.
pub const ERROR_TTL: u8 = 64;
/// Bytes of the offending datagram's payload an error quotes after its IP
/// header (RFC 792's minimum; enough for the ports of TCP and UDP).
const QUOTED_PAYLOAD: usize = 8;
/// Longest IPv4 header (IHL 15).
const MAX_IP_HEADER: usize = 60;

/// The errors the router sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 11 code 0: the TTL ran out in transit.
    TimeExceeded,
    /// Type 3 code 4: too big for the next hop's MTU and DF set; carries that
    /// MTU (RFC 1191), so the sender's path MTU discovery can lower its size.
    FragmentationNeeded {
        /// The egress link's MTU.
        mtu: u16,
    },
}

impl IcmpError {
    /// The ICMP type, code and the 4 bytes after the checksum.
    fn header(self) -> (u8, u8, [u8; 4]) {
        match self {
            IcmpError::TimeExceeded => (11, 0, [0; 4]),
            IcmpError::FragmentationNeeded { mtu } => {
                let m = mtu.to_be_bytes();
                (3, 4, [0, 0, m[0], m[1]])
            }
        }
    }
}

/// A token bucket pacing the errors one router sends.
#[derive(Clone, Debug)]
pub struct ErrorPacer {
    tokens: u32,
    last_refill: Timestamp,
}

impl ErrorPacer {
    /// Errors per second at most (Linux's `icmp_msgs_per_sec`).
    pub const PER_SEC: u64 = 1000;
    /// Errors sent back to back at most (Linux's `icmp_msgs_burst`).
    pub const BURST: u32 = 50;

    /// A full bucket.
    pub fn new() -> Self {
        ErrorPacer {
            tokens: Self::BURST,
            last_refill: Timestamp::default(),
        }
    }

    /// Takes a token at `now`, if one is left.
    pub fn allow(&mut self, now: Timestamp) -> bool {
        let elapsed = now.saturating_since(self.last_refill);
        let earned = elapsed.saturating_mul(Self::PER_SEC) / 1_000_000_000;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(Self::BURST)) as u32;
            self.last_refill = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Default for ErrorPacer {
    fn default() -> Self {
        Self::new()
    }
}

/// True if frame `meta` may be answered with an ICMP error at all (see the
/// module docs).
pub fn may_answer(meta: &PacketMeta, frame: &[u8]) -> bool {
    let l3 = usize::from(meta.l3_offset);
    // Fragment offset non-zero: not the first fragment.
    let Some(flags) = frame.get(l3 + 6..l3 + 8) else {
        return false;
    };
    if u16::from_be_bytes([flags[0], flags[1]]) & 0x1fff != 0 {
        return false;
    }
    if meta.protocol == ip_proto::ICMP && !matches!(meta.icmp_type, 0 | 8 | 13 | 14) {
        // Only queries (echo, timestamp) are answered; errors and unknown
        // types are not.
        return false;
    }
    let bad =
        |ip: std::net::Ipv4Addr| ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified();
    !bad(meta.src_ip) && !bad(meta.dst_ip)
}

/// Originates `error` about frame `i` from `gateway`, back out of its ingress
/// port to the frame's Ethernet source; returns false when the batch had no
/// room (nothing sent).
pub fn originate<F: FrameStore + ?Sized>(
    batch: &mut Batch<'_, F>,
    i: usize,
    meta: &PacketMeta,
    gateway: Gateway,
    error: IcmpError,
) -> bool {
    let l3 = usize::from(meta.l3_offset);
    let mut quote = [0u8; MAX_IP_HEADER + QUOTED_PAYLOAD];
    let mut src_mac = [0u8; 6];
    let quoted_len = {
        let frame = batch.frames().frame(i);
        let ihl = usize::from(frame.get(l3).map_or(5, |b| b & 0x0f)) * 4;
        let end = (l3 + ihl + QUOTED_PAYLOAD).min(frame.len());
        let Some(quoted) = frame.get(l3..end) else {
            return false;
        };
        quote[..quoted.len()].copy_from_slice(quoted);
        src_mac.copy_from_slice(frame.get(6..12).unwrap_or(&[0; 6]));
        quoted.len()
    };
    let len = ETH_HEADER_LEN + 20 + 8 + quoted_len;
    let Ok(reply) = batch.originate(meta.in_port) else {
        return false;
    };
    if batch.frames_mut().set_len(reply, len).is_err() {
        batch.metas_mut()[reply].verdict = Verdict::Local;
        return false;
    }
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
    let sum = ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let (kind, code, rest) = error.header();
    let icmp = &mut out[ETH_HEADER_LEN + 20..];
    icmp[0] = kind;
    icmp[1] = code;
    icmp[4..8].copy_from_slice(&rest);
    icmp[8..8 + quoted_len].copy_from_slice(&quote[..quoted_len]);
    let sum = !fold(sum_be_words(icmp, 0));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let out_meta = &mut batch.metas_mut()[reply];
    out_meta.domain = meta.domain;
    out_meta.ethertype = ethertype::IPV4;
    out_meta.verdict = Verdict::Forward(meta.in_port);
    true
}

// An ICMP error always fits a minimum frame buffer.
const _: () = assert!(ETH_HEADER_LEN + 20 + 8 + MAX_IP_HEADER + QUOTED_PAYLOAD <= 2048);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_allows_a_burst_then_the_rate() {
        let mut pacer = ErrorPacer::new();
        let t0 = Timestamp::from_secs(10);
        let sent = (0..200).filter(|_| pacer.allow(t0)).count();
        assert_eq!(sent, ErrorPacer::BURST as usize);
        // 10 ms later: 10 more.
        let t1 = Timestamp(t0.0 + 10_000_000);
        let sent = (0..200).filter(|_| pacer.allow(t1)).count();
        assert_eq!(sent, 10);
    }
}
