//! Rewriting a packet's IPv4 endpoints in place, with every checksum that
//! covers them updated incrementally (RFC 1624): the IPv4 header checksum,
//! the TCP or UDP checksum (its pseudo-header holds the addresses), the ICMP
//! checksum for an echo identifier, and for an ICMP error the quoted inner
//! header the error is about (its addresses, ports and header checksum, and
//! the outer ICMP checksum that covers them).
//!
//! Nothing is summed again: each changed 16-bit word adjusts the checksums
//! that cover it. A UDP checksum of zero means "none" and stays zero (RFC
//! 768); one that would become zero is written as 0xffff. Every offset is
//! checked: a frame too short for what it claims is refused and left as it
//! was (the parse stage makes that rare).

use crate::checksum::incremental_update;
use crate::wire::ip_proto;
use std::net::Ipv4Addr;

/// The four values NAT changes: addresses and ports (for ICMP echo both
/// ports are the identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port (ICMP echo: identifier).
    pub sport: u16,
    /// Destination port (ICMP echo: identifier).
    pub dport: u16,
}

/// Why a frame could not be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The IP or L4 header is shorter than the frame claims.
    #[error("the frame is too short for its headers")]
    Truncated,
    /// Not a protocol NAT knows how to rewrite.
    #[error("protocol {0} cannot be translated")]
    Protocol(u8),
}

/// Byte offset of the checksum in each L4 header.
fn l4_checksum_offset(protocol: u8) -> Option<usize> {
    match protocol {
        ip_proto::TCP => Some(16),
        ip_proto::UDP => Some(6),
        ip_proto::ICMP => Some(2),
        _ => None,
    }
}

fn read16(frame: &[u8], at: usize) -> Result<u16, RewriteError> {
    let b = frame.get(at..at + 2).ok_or(RewriteError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn write16(frame: &mut [u8], at: usize, v: u16) -> Result<(), RewriteError> {
    let b = frame.get_mut(at..at + 2).ok_or(RewriteError::Truncated)?;
    b.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// The checksums one rewrite touches: where they are and whether each covers
/// the word being changed.
struct Sums {
    /// The IPv4 header checksum's offset.
    ip: usize,
    /// The L4 checksum's offset, unless it is absent (UDP zero) or not
    /// quoted (an ICMP error's inner TCP checksum).
    l4: Option<usize>,
    /// True if `l4` is a UDP checksum (zero is written as 0xffff).
    udp: bool,
    /// An enclosing ICMP error's checksum (inner rewrites change its payload).
    outer_icmp: Option<usize>,
}

impl Sums {
    /// Replaces the word at `at` with `new`, updating the checksums that
    /// cover it: the IP header's if `in_ip`, the L4 one if `in_l4`, and the
    /// outer ICMP one always (everything inner is in its payload).
    fn set(
        &self,
        frame: &mut [u8],
        at: usize,
        new: u16,
        in_ip: bool,
        in_l4: bool,
    ) -> Result<(), RewriteError> {
        let old = read16(frame, at)?;
        if old == new {
            return Ok(());
        }
        write16(frame, at, new)?;
        if in_ip {
            let sum = read16(frame, self.ip)?;
            let updated = incremental_update(sum, old, new);
            write16(frame, self.ip, updated)?;
            if let Some(outer) = self.outer_icmp {
                // The inner header checksum changed too: it is payload of the
                // outer ICMP message as well.
                let o = read16(frame, outer)?;
                write16(frame, outer, incremental_update(o, sum, updated))?;
            }
        }
        if in_l4 {
            if let Some(l4) = self.l4 {
                let sum = read16(frame, l4)?;
                let mut updated = incremental_update(sum, old, new);
                if self.udp && updated == 0 {
                    updated = 0xffff;
                }
                write16(frame, l4, updated)?;
                if let Some(outer) = self.outer_icmp {
                    let o = read16(frame, outer)?;
                    write16(frame, outer, incremental_update(o, sum, updated))?;
                }
            }
        }
        if let Some(outer) = self.outer_icmp {
            let o = read16(frame, outer)?;
            write16(frame, outer, incremental_update(o, old, new))?;
        }
        Ok(())
    }
}

/// Rewrites the packet at `l3` (IPv4 header) / `l4` (its L4 header, ignored
/// for non-first fragments: `first_fragment = false`) to `to`.
pub fn rewrite(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    protocol: u8,
    first_fragment: bool,
    to: Endpoints,
) -> Result<(), RewriteError> {
    let l4_sum = l4_checksum_offset(protocol).ok_or(RewriteError::Protocol(protocol))?;
    let udp_absent = protocol == ip_proto::UDP && read16(frame, l4 + 6)? == 0;
    let sums = Sums {
        ip: l3 + 10,
        l4: (first_fragment && protocol != ip_proto::ICMP && !udp_absent).then_some(l4 + l4_sum),
        udp: protocol == ip_proto::UDP,
        outer_icmp: None,
    };
    write_endpoints(frame, l3, l4, protocol, first_fragment, &sums, to)
}

/// Writes `to` into the header at `l3`/`l4` through `sums`.
fn write_endpoints(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    protocol: u8,
    first_fragment: bool,
    sums: &Sums,
    to: Endpoints,
) -> Result<(), RewriteError> {
    if frame.len() < l3 + 20 {
        return Err(RewriteError::Truncated);
    }
    let s = to.src.octets();
    let d = to.dst.octets();
    // Addresses: in the IP header and in TCP/UDP's pseudo-header.
    let pseudo = protocol != ip_proto::ICMP;
    for (k, word) in [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
    ]
    .into_iter()
    .enumerate()
    {
        sums.set(frame, l3 + 12 + 2 * k, word, true, pseudo)?;
    }
    if !first_fragment {
        return Ok(());
    }
    match protocol {
        ip_proto::TCP | ip_proto::UDP => {
            sums.set(frame, l4, to.sport, false, true)?;
            sums.set(frame, l4 + 2, to.dport, false, true)?;
        }
        ip_proto::ICMP => {
            // Echo: the identifier, covered by the ICMP checksum itself.
            let icmp = Sums {
                ip: sums.ip,
                l4: Some(l4 + 2),
                udp: false,
                outer_icmp: sums.outer_icmp,
            };
            icmp.set(frame, l4 + 4, to.sport, false, true)?;
        }
        other => return Err(RewriteError::Protocol(other)),
    }
    Ok(())
}

/// Rewrites an ICMP error at `l3`/`l4` about a translated flow: the outer
/// destination becomes `outer_dst` (the error goes to the flow's own end),
/// the outer source `outer_src` when given (an error from the far end of
/// the flow itself comes from the address that end is known by; one from a
/// router on the way keeps its own), and the quoted inner packet gets
/// `inner` (the endpoints that end sent, so it recognises its packet).
pub fn rewrite_icmp_error(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    outer_src: Option<Ipv4Addr>,
    outer_dst: Ipv4Addr,
    inner: Endpoints,
) -> Result<(), RewriteError> {
    let inner_l3 = l4 + 8;
    let ihl = usize::from(frame.get(inner_l3).ok_or(RewriteError::Truncated)? & 0x0f) * 4;
    if ihl < 20 {
        return Err(RewriteError::Truncated);
    }
    let inner_proto = *frame.get(inner_l3 + 9).ok_or(RewriteError::Truncated)?;
    let inner_l4 = inner_l3 + ihl;
    // Ports sit in the quoted first 8 bytes; so do UDP's and an ICMP echo's
    // checksums.
    if frame.len() < inner_l4 + 8 {
        return Err(RewriteError::Truncated);
    }
    let inner_sum = match inner_proto {
        ip_proto::UDP if read16(frame, inner_l4 + 6)? != 0 => Some(inner_l4 + 6),
        ip_proto::ICMP => Some(inner_l4 + 2),
        // Linux quotes as much as fits: TCP's checksum is kept right when the
        // quote holds it, as Linux's NAT does.
        ip_proto::TCP if frame.len() >= inner_l4 + 18 => Some(inner_l4 + 16),
        ip_proto::TCP | ip_proto::UDP => None,
        other => return Err(RewriteError::Protocol(other)),
    };
    let inner_sums = Sums {
        ip: inner_l3 + 10,
        l4: inner_sum,
        udp: inner_proto == ip_proto::UDP,
        outer_icmp: Some(l4 + 2),
    };
    write_endpoints(
        frame,
        inner_l3,
        inner_l4,
        inner_proto,
        true,
        &inner_sums,
        inner,
    )?;
    // The outer destination: in the IP header only (ICMP has no pseudo-header).
    let outer = Sums {
        ip: l3 + 10,
        l4: None,
        udp: false,
        outer_icmp: None,
    };
    let d = outer_dst.octets();
    outer.set(
        frame,
        l3 + 16,
        u16::from_be_bytes([d[0], d[1]]),
        true,
        false,
    )?;
    outer.set(
        frame,
        l3 + 18,
        u16::from_be_bytes([d[2], d[3]]),
        true,
        false,
    )?;
    if let Some(src) = outer_src {
        let s = src.octets();
        outer.set(
            frame,
            l3 + 12,
            u16::from_be_bytes([s[0], s[1]]),
            true,
            false,
        )?;
        outer.set(
            frame,
            l3 + 14,
            u16::from_be_bytes([s[2], s[3]]),
            true,
            false,
        )?;
    }
    Ok(())
}
