//! NAT's packet rewriting: after changing addresses, ports or an echo
//! identifier, every checksum verifies from scratch (IPv4 header, TCP, UDP,
//! ICMP), a UDP datagram without checksum keeps none, and an ICMP error about
//! a translated flow has its quoted packet and outer destination rewritten
//! with both the inner and the outer checksums still right.

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use switchyard_pipeline::checksum::{fold, ipv4_header_checksum, pseudo_header_sum, sum_be_words};
use switchyard_pipeline::nat::rewrite::{rewrite, rewrite_icmp_error, Endpoints};

const L3: usize = 14;
const L4: usize = 34;

fn ip_ok(frame: &[u8], l3: usize) -> bool {
    let ip = &frame[l3..l3 + 20];
    u16::from_be_bytes([ip[10], ip[11]]) == ipv4_header_checksum(ip)
}

/// The L4 checksum over pseudo-header and segment verifies (sums to 0xffff).
fn l4_ok(frame: &[u8]) -> bool {
    let ip = &frame[L3..L3 + 20];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = &frame[L4..L3 + total];
    let pseudo = pseudo_header_sum(&ip[12..16], &ip[16..20], ip[9], seg.len() as u32);
    fold(sum_be_words(seg, pseudo)) == 0xffff
}

fn icmp_ok(frame: &[u8]) -> bool {
    let ip = &frame[L3..L3 + 20];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    fold(sum_be_words(&frame[L4..L3 + total], 0)) == 0xffff
}

const TO: Endpoints = Endpoints {
    src: Ipv4Addr::new(192, 0, 2, 10),
    dst: Ipv4Addr::new(198, 51, 100, 7),
    sport: 61_000,
    dport: 8080,
};

#[test]
fn tcp_and_udp_keep_valid_checksums() {
    for tcp in [true, false] {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 1, 0, 5], [198, 51, 100, 7], 64);
        let mut frame = Vec::new();
        if tcp {
            b.tcp(40_000, 80, 1234, 65_000)
                .syn()
                .write(&mut frame, b"hello")
                .unwrap();
        } else {
            b.udp(40_000, 53).write(&mut frame, b"hello").unwrap();
        }
        let proto = frame[L3 + 9];
        rewrite(&mut frame, L3, L4, proto, true, TO).unwrap();
        assert!(ip_ok(&frame, L3), "IPv4 header checksum (tcp: {tcp})");
        assert!(l4_ok(&frame), "L4 checksum (tcp: {tcp})");
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        assert_eq!(ip.header().source_addr(), TO.src);
        assert_eq!(ip.header().destination_addr(), TO.dst);
        let (s, d) = match &p.transport {
            Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            other => panic!("{other:?}"),
        };
        assert_eq!((s, d), (TO.sport, TO.dport));
    }
}

#[test]
fn a_udp_datagram_without_checksum_keeps_none() {
    let b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 1, 0, 5], [198, 51, 100, 7], 64)
        .udp(40_000, 53);
    let mut frame = Vec::new();
    b.write(&mut frame, b"no checksum").unwrap();
    frame[L4 + 6..L4 + 8].copy_from_slice(&[0, 0]);
    rewrite(&mut frame, L3, L4, 17, true, TO).unwrap();
    assert_eq!(&frame[L4 + 6..L4 + 8], &[0, 0]);
    assert!(ip_ok(&frame, L3));
}

#[test]
fn an_echo_identifier_is_rewritten_with_its_checksum() {
    let b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 1, 0, 5], [198, 51, 100, 7], 64)
        .icmpv4_echo_request(0x1234, 7);
    let mut frame = Vec::new();
    b.write(&mut frame, &[0x5a; 40]).unwrap();
    let to = Endpoints {
        sport: 0x4321,
        dport: 0x4321,
        ..TO
    };
    rewrite(&mut frame, L3, L4, 1, true, to).unwrap();
    assert!(ip_ok(&frame, L3) && icmp_ok(&frame));
    assert_eq!(&frame[L4 + 4..L4 + 6], &[0x43, 0x21]);
}

#[test]
fn an_icmp_error_has_its_quote_and_destination_rewritten() {
    for (proto, quote_len) in [(17u8, 8usize), (6, 8), (6, 20)] {
        // The offending packet as the outside saw it: from the node's address.
        let inner_b = PacketBuilder::ipv4([192, 0, 2, 10], [198, 51, 100, 7], 63);
        let mut inner = Vec::new();
        if proto == 17 {
            inner_b.udp(61_000, 53).write(&mut inner, b"query").unwrap();
        } else {
            inner_b
                .tcp(61_000, 80, 9, 100)
                .write(&mut inner, b"segment")
                .unwrap();
        }
        inner.truncate(20 + quote_len);
        // Frag-needed from a router 203.0.113.1 to the node.
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        icmp.extend_from_slice(&inner);
        let sum = !fold(sum_be_words(&icmp, 0));
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let b =
            PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([203, 0, 113, 1], [192, 0, 2, 10], 64);
        let mut frame = Vec::new();
        // Written as raw IP payload with protocol 1.
        b.write(&mut frame, etherparse::IpNumber::ICMP, &icmp)
            .unwrap();
        assert!(icmp_ok(&frame));
        // Back to the container: outer destination and the quoted source.
        let inner_to = Endpoints {
            src: Ipv4Addr::new(10, 1, 0, 5),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            sport: 40_000,
            dport: if proto == 17 { 53 } else { 80 },
        };
        rewrite_icmp_error(
            &mut frame,
            L3,
            L4,
            None,
            Ipv4Addr::new(10, 1, 0, 5),
            inner_to,
        )
        .unwrap();
        assert!(ip_ok(&frame, L3), "outer IPv4 checksum");
        assert!(
            icmp_ok(&frame),
            "outer ICMP checksum ({proto}, {quote_len})"
        );
        assert!(ip_ok(&frame, L4 + 8), "inner IPv4 checksum");
        assert_eq!(&frame[L3 + 16..L3 + 20], &[10, 1, 0, 5]);
        assert_eq!(&frame[L4 + 8 + 12..L4 + 8 + 16], &[10, 1, 0, 5]);
        assert_eq!(&frame[L4 + 28..L4 + 30], &40_000u16.to_be_bytes());
        // The quote now equals the packet the container sent, checksums
        // included (built from scratch here).
        let sent_b = PacketBuilder::ipv4([10, 1, 0, 5], [198, 51, 100, 7], 63);
        let mut sent = Vec::new();
        if proto == 17 {
            sent_b.udp(40_000, 53).write(&mut sent, b"query").unwrap();
        } else {
            sent_b
                .tcp(40_000, 80, 9, 100)
                .write(&mut sent, b"segment")
                .unwrap();
        }
        let quoted = &frame[L4 + 8..L4 + 8 + 20 + quote_len];
        let expected = &sent[..20 + quote_len];
        // Bytes 4..6 (IP id) are the builder's and equal in both.
        assert_eq!(quoted, expected, "quote of {proto} with {quote_len} bytes");
    }
}

#[test]
fn short_frames_are_refused_unchanged() {
    let mut frame = vec![0u8; 30];
    frame[L3] = 0x45;
    let before = frame.clone();
    assert!(rewrite(&mut frame, L3, L4, 6, true, TO).is_err());
    assert!(rewrite_icmp_error(&mut frame, L3, L4, None, TO.src, TO).is_err());
    assert_eq!(frame, before);
}
