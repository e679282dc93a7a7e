//! A packet as conntrack takes it: its tuple plus what its protocol's
//! tracking needs (the TCP fields; for ICMP echo whether request or reply;
//! for an ICMP error the tuple of the packet it quotes), read from a frame
//! the parse stage has filled a [`PacketMeta`] for.

use super::key::{Tuple, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST};
use super::tcp::TcpSegment;
use super::verdict::Invalid;
use crate::frame::PacketMeta;
use crate::wire::{ip_proto, L3Kind};
use std::net::Ipv4Addr;

/// ICMP errors that quote the packet they are about (Linux's
/// `icmp_is_err`): destination unreachable, source quench, redirect, time
/// exceeded, parameter problem.
const ICMP_ERRORS: [u8; 5] = [3, 4, 5, 11, 12];
/// Bytes of the ICMP header before an error's quote.
const ICMP_HEADER_LEN: usize = 8;

/// One packet to track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// A TCP segment.
    Tcp(Tuple, TcpSegment),
    /// A UDP datagram.
    Udp(Tuple),
    /// An ICMP echo request (creates an entry).
    EchoRequest(Tuple),
    /// An ICMP echo reply (matches its request's entry, never creates one).
    EchoReply(Tuple),
    /// An ICMP error about another packet.
    IcmpError {
        /// The error's own destination (it must be the quoted packet's source).
        outer_dst: Ipv4Addr,
        /// The tuple of the quoted packet.
        quoted: Tuple,
    },
}

/// Why an ICMP error's quote names no flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// Shorter than its IPv4 header plus the 8 bytes with the ports.
    #[error("quoted packet cut short")]
    Truncated,
    /// Not an IPv4 header (version, or IHL below 5).
    #[error("quoted packet is not IPv4")]
    NotIpv4,
    /// A non-first fragment: no ports to quote.
    #[error("quoted packet is a non-first fragment")]
    Fragment,
    /// A protocol conntrack does not track (or an ICMP message other than echo).
    #[error("quoted packet's protocol is not tracked")]
    Untracked,
}

/// The tuple of the packet an ICMP error quotes: `inner` is the quoted IPv4
/// header and what follows it (RFC 792 guarantees the first 8 bytes, which
/// hold TCP's and UDP's ports and the echo identifier).
pub fn quoted_tuple(inner: &[u8]) -> Result<Tuple, QuoteError> {
    let Some(&first) = inner.first() else {
        return Err(QuoteError::Truncated);
    };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 {
        return Err(QuoteError::NotIpv4);
    }
    let (Some(ip), Some(l4)) = (inner.get(..20), inner.get(ihl..ihl + 8)) else {
        return Err(QuoteError::Truncated);
    };
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return Err(QuoteError::Fragment);
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    match ip[9] {
        ip_proto::TCP => Ok(Tuple::tcp(src, port(0), dst, port(2))),
        ip_proto::UDP => Ok(Tuple::udp(src, port(0), dst, port(2))),
        ip_proto::ICMP => match l4[0] {
            ICMP_ECHO_REQUEST => Ok(Tuple::echo_request(src, dst, port(4))),
            ICMP_ECHO_REPLY => Ok(Tuple::echo_reply(src, dst, port(4))),
            _ => Err(QuoteError::Untracked),
        },
        _ => Err(QuoteError::Untracked),
    }
}

impl Packet {
    /// Reads the packet in `frame`, which `meta` describes. `Ok(None)` for
    /// what conntrack does not track: non-IPv4 frames, fragments (the switch
    /// does not reassemble; the caller decides what they get), protocols
    /// other than TCP, UDP and ICMP, ICMP messages other than echo and
    /// errors, and errors about such packets. `Err` for a TCP header that
    /// cannot be read or an ICMP error whose quote cannot be read: INVALID.
    pub fn classify(frame: &[u8], meta: &PacketMeta) -> Result<Option<Packet>, Invalid> {
        if meta.l3 != L3Kind::Ipv4 || meta.fragment {
            return Ok(None);
        }
        let start = usize::from(meta.l4_offset);
        let l4 = frame
            .get(start..start + usize::from(meta.l4_len))
            .unwrap_or(&[]);
        match meta.protocol {
            ip_proto::TCP => {
                let segment = TcpSegment::parse(l4).map_err(|_| Invalid::Malformed)?;
                let tuple = Tuple::tcp(meta.src_ip, meta.src_port, meta.dst_ip, meta.dst_port);
                Ok(Some(Packet::Tcp(tuple, segment)))
            }
            ip_proto::UDP => Ok(Some(Packet::Udp(Tuple::udp(
                meta.src_ip,
                meta.src_port,
                meta.dst_ip,
                meta.dst_port,
            )))),
            ip_proto::ICMP => {
                let Some(h) = l4.first_chunk::<ICMP_HEADER_LEN>() else {
                    return Ok(None);
                };
                let id = u16::from_be_bytes([h[4], h[5]]);
                match h[0] {
                    ICMP_ECHO_REQUEST => Ok(Some(Packet::EchoRequest(Tuple::echo_request(
                        meta.src_ip,
                        meta.dst_ip,
                        id,
                    )))),
                    ICMP_ECHO_REPLY => Ok(Some(Packet::EchoReply(Tuple::echo_reply(
                        meta.src_ip,
                        meta.dst_ip,
                        id,
                    )))),
                    kind if ICMP_ERRORS.contains(&kind) => {
                        match quoted_tuple(&l4[ICMP_HEADER_LEN..]) {
                            Ok(quoted) => Ok(Some(Packet::IcmpError {
                                outer_dst: meta.dst_ip,
                                quoted,
                            })),
                            // About a packet conntrack would not have
                            // tracked: neither is the error.
                            Err(QuoteError::Fragment | QuoteError::Untracked) => Ok(None),
                            Err(QuoteError::Truncated | QuoteError::NotIpv4) => {
                                Err(Invalid::IcmpBadQuote)
                            }
                        }
                    }
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// The tuple the packet carries (for an ICMP error: the quoted one).
    pub const fn tuple(&self) -> &Tuple {
        match self {
            Packet::Tcp(t, _) | Packet::Udp(t) | Packet::EchoRequest(t) | Packet::EchoReply(t) => t,
            Packet::IcmpError { quoted, .. } => quoted,
        }
    }

    /// The IP protocol the packet's kind implies.
    pub(crate) const fn protocol(&self) -> u8 {
        match self {
            Packet::Tcp(..) => ip_proto::TCP,
            Packet::Udp(_) => ip_proto::UDP,
            Packet::EchoRequest(_) | Packet::EchoReply(_) | Packet::IcmpError { .. } => {
                ip_proto::ICMP
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn reads_quoted_tuples() {
        let udp = ipv4(ip_proto::UDP, &[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        assert_eq!(
            quoted_tuple(&udp),
            Ok(Tuple::udp(
                Ipv4Addr::new(10, 0, 0, 1),
                5000,
                Ipv4Addr::new(10, 0, 0, 2),
                53
            ))
        );
        let echo = ipv4(ip_proto::ICMP, &[8, 0, 0, 0, 0, 9, 0, 1]);
        assert_eq!(
            quoted_tuple(&echo),
            Ok(Tuple::echo_request(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                9
            ))
        );
        assert_eq!(quoted_tuple(&udp[..27]), Err(QuoteError::Truncated));
        assert_eq!(quoted_tuple(&[]), Err(QuoteError::Truncated));
        assert_eq!(quoted_tuple(&[0x44; 28]), Err(QuoteError::NotIpv4));
        let mut fragment = udp.clone();
        fragment[7] = 1;
        assert_eq!(quoted_tuple(&fragment), Err(QuoteError::Fragment));
        assert_eq!(quoted_tuple(&ipv4(47, &[0; 8])), Err(QuoteError::Untracked));
        // IHL 15 with only 28 bytes: cut short, no panic.
        let mut long = udp.clone();
        long[0] = 0x4f;
        assert_eq!(quoted_tuple(&long), Err(QuoteError::Truncated));
    }

    #[test]
    fn classify_never_panics_on_short_frames() {
        let mut meta = PacketMeta::new(0);
        meta.l3 = L3Kind::Ipv4;
        meta.l4_offset = 34;
        meta.l4_len = 200;
        for protocol in [ip_proto::TCP, ip_proto::UDP, ip_proto::ICMP, 99] {
            meta.protocol = protocol;
            for len in 0..80 {
                let _ = Packet::classify(&vec![3u8; len], &meta);
            }
        }
    }
}
