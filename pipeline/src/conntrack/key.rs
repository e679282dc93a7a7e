//! What conntrack keys flows by: an IPv4 5-tuple per direction, which
//! direction of its entry a packet travels in, and the handle of an entry.

use crate::frame::PacketMeta;
use crate::wire::{ip_proto, L3Kind};
use std::net::Ipv4Addr;

/// ICMP echo request (RFC 792).
pub(crate) const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP echo reply.
pub(crate) const ICMP_ECHO_REPLY: u8 = 0;

/// One direction of a flow, as its packets carry it on the wire: protocol,
/// addresses and ports.
///
/// ICMP echo has no ports; its identifier takes their place so that a
/// request and its reply key one flow, as Linux keys them: a request keys as
/// `src_port = id, dst_port = 0` and a reply as `src_port = 0, dst_port = id`.
/// The [`invert`](Self::invert)ed tuple of a request is then exactly the
/// tuple its reply carries, and a request the other way round (`id, 0` from
/// the peer) never matches a reply, except for identifier 0, where the two
/// forms coincide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Tuple {
    /// IP protocol (TCP, UDP or ICMP).
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port (ICMP echo request: the identifier; reply: 0).
    pub src_port: u16,
    /// Destination port (ICMP echo request: 0; reply: the identifier).
    pub dst_port: u16,
}

impl Tuple {
    /// A TCP tuple.
    pub const fn tcp(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Self {
        Tuple {
            protocol: ip_proto::TCP,
            src,
            dst,
            src_port,
            dst_port,
        }
    }

    /// A UDP tuple.
    pub const fn udp(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Self {
        Tuple {
            protocol: ip_proto::UDP,
            src,
            dst,
            src_port,
            dst_port,
        }
    }

    /// The tuple of an ICMP echo request from `src` to `dst` with identifier `id`.
    pub const fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Self {
        Tuple {
            protocol: ip_proto::ICMP,
            src,
            dst,
            src_port: id,
            dst_port: 0,
        }
    }

    /// The tuple of an ICMP echo reply from `src` to `dst` with identifier `id`
    /// (the inverse of the request it answers).
    pub const fn echo_reply(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Self {
        Tuple {
            protocol: ip_proto::ICMP,
            src,
            dst,
            src_port: 0,
            dst_port: id,
        }
    }

    /// The tuple a reply to this packet carries, untranslated: addresses and
    /// ports swapped (for ICMP echo, request and reply forms swapped).
    pub const fn invert(&self) -> Self {
        Tuple {
            protocol: self.protocol,
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }

    /// True when `address` is one of its two addresses.
    #[inline]
    pub fn involves(&self, address: Ipv4Addr) -> bool {
        self.src == address || self.dst == address
    }

    /// The ICMP echo identifier of an ICMP tuple (whichever port holds it).
    pub const fn echo_id(&self) -> u16 {
        if self.src_port != 0 {
            self.src_port
        } else {
            self.dst_port
        }
    }

    /// The tuple of an unfragmented IPv4 TCP or UDP packet from the parse
    /// stage's metadata; `None` for anything else (ICMP needs the frame:
    /// see [`Packet::classify`](super::Packet::classify)).
    pub fn from_meta(meta: &PacketMeta) -> Option<Tuple> {
        if meta.l3 != L3Kind::Ipv4 || meta.fragment {
            return None;
        }
        match meta.protocol {
            ip_proto::TCP | ip_proto::UDP => Some(Tuple {
                protocol: meta.protocol,
                src: meta.src_ip,
                dst: meta.dst_ip,
                src_port: meta.src_port,
                dst_port: meta.dst_port,
            }),
            _ => None,
        }
    }

    /// The two 64-bit words the index hashes.
    #[inline]
    pub(crate) fn words(&self) -> (u64, u64) {
        let a = (u64::from(u32::from(self.src)) << 32) | u64::from(u32::from(self.dst));
        let b = (u64::from(self.protocol) << 32)
            | (u64::from(self.src_port) << 16)
            | u64::from(self.dst_port);
        (a, b)
    }
}

impl std::fmt::Display for Tuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            ip_proto::TCP => write!(
                f,
                "tcp {}:{} -> {}:{}",
                self.src, self.src_port, self.dst, self.dst_port
            ),
            ip_proto::UDP => write!(
                f,
                "udp {}:{} -> {}:{}",
                self.src, self.src_port, self.dst, self.dst_port
            ),
            ip_proto::ICMP => write!(f, "icmp {} -> {} id {}", self.src, self.dst, self.echo_id()),
            p => write!(
                f,
                "proto {p} {}:{} -> {}:{}",
                self.src, self.src_port, self.dst, self.dst_port
            ),
        }
    }
}

/// Which of its entry's two tuples a packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The direction of the packet that created the entry.
    Original,
    /// The way back.
    Reply,
}

impl Direction {
    /// The other direction.
    pub const fn opposite(self) -> Self {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }

    /// 0 for original, 1 for reply (array index of per-direction state).
    #[inline]
    pub(crate) const fn index(self) -> usize {
        match self {
            Direction::Original => 0,
            Direction::Reply => 1,
        }
    }
}

/// The handle of one entry. `index` is dense (below the table's
/// `max_entries`), so a NAT engine can keep its own per-entry data in a plain
/// array beside the table; `generation` changes whenever the slot is reused,
/// so a handle kept past its entry's removal is refused, never confused with
/// the flow that took the slot next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct EntryId {
    index: u32,
    generation: u32,
}

impl EntryId {
    pub(crate) const fn new(index: u32, generation: u32) -> Self {
        EntryId { index, generation }
    }

    /// The entry's slot, below the table's `max_entries`.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// How many times the slot had been reused before this entry took it.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_inverts_to_its_reply() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            Tuple::echo_request(a, b, 7).invert(),
            Tuple::echo_reply(b, a, 7)
        );
        assert_ne!(Tuple::echo_request(b, a, 7), Tuple::echo_reply(b, a, 7));
        assert_eq!(Tuple::echo_reply(b, a, 7).echo_id(), 7);
    }

    #[test]
    fn words_differ_for_every_field() {
        let t = Tuple::tcp(Ipv4Addr::new(1, 2, 3, 4), 5, Ipv4Addr::new(6, 7, 8, 9), 10);
        let variants = [
            Tuple { protocol: 17, ..t },
            Tuple {
                src: Ipv4Addr::new(1, 2, 3, 5),
                ..t
            },
            Tuple {
                dst: Ipv4Addr::new(6, 7, 8, 8),
                ..t
            },
            Tuple { src_port: 6, ..t },
            Tuple { dst_port: 11, ..t },
            t.invert(),
        ];
        for v in variants {
            assert_ne!(v.words(), t.words(), "{v}");
        }
    }
}
