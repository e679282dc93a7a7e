//! parse_frame on well-formed frames (built by etherparse) and on every kind of
//! malformation, plus properties: never panics, offsets always in range.

mod common;

use common::*;
use proptest::prelude::*;
use switchyard_pipeline::wire::{ip_proto, parse_frame, L3Kind, L4Info};
use switchyard_pipeline::{DropReason, MacAddr};

// Offsets in an untagged frame.
const IP: usize = 14;
const L4_V4: usize = 34;
const L4_V6: usize = 54;

#[test]
fn parses_ipv4_udp() {
    let f = udp4(mac(1), mac(2), b"hello");
    let p = parse_frame(&f).unwrap();
    assert_eq!(p.src, MacAddr(mac(1)));
    assert_eq!(p.dst, MacAddr(mac(2)));
    assert_eq!(p.ethertype, 0x0800);
    assert_eq!(p.vlan_count, 0);
    assert_eq!(p.l3_offset, 14);
    assert_eq!(p.l3, L3Kind::Ipv4);
    let l4 = L4Info {
        protocol: ip_proto::UDP,
        offset: L4_V4,
        len: 13,
        fragment: false,
    };
    assert_eq!(p.l4, Some(l4));
}

#[test]
fn parses_ipv4_tcp_ipv6_udp_tcp() {
    let p = parse_frame(&tcp4(mac(1), mac(2), b"abc")).unwrap();
    assert_eq!(
        p.l4.map(|l| (l.protocol, l.offset, l.len)),
        Some((6, 34, 23))
    );
    let p = parse_frame(&udp6(mac(1), mac(2), b"abc")).unwrap();
    assert_eq!(p.l3, L3Kind::Ipv6);
    assert_eq!(
        p.l4.map(|l| (l.protocol, l.offset, l.len)),
        Some((17, 54, 11))
    );
    let p = parse_frame(&tcp6(mac(1), mac(2), b"")).unwrap();
    assert_eq!(
        p.l4.map(|l| (l.protocol, l.offset, l.len)),
        Some((6, 54, 20))
    );
}

#[test]
fn looks_through_one_and_two_vlan_tags() {
    let p = parse_frame(&udp4_vlan(mac(1), mac(2), b"x")).unwrap();
    assert_eq!((p.vlan_count, p.l3_offset, p.ethertype), (1, 18, 0x0800));
    assert_eq!(p.l4.map(|l| l.offset), Some(38));
    let p = parse_frame(&tcp6_qinq(mac(1), mac(2), b"x")).unwrap();
    assert_eq!((p.vlan_count, p.l3_offset, p.ethertype), (2, 22, 0x86dd));
    assert_eq!(p.l4.map(|l| l.offset), Some(62));
}

#[test]
fn third_vlan_tag_is_opaque() {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(2));
    f.extend_from_slice(&mac(1));
    for _ in 0..3 {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    let p = parse_frame(&f).unwrap();
    assert_eq!((p.vlan_count, p.l3_offset, p.ethertype), (2, 22, 0x8100));
    assert_eq!((p.l3, p.l4), (L3Kind::Other, None));
}

#[test]
fn non_ip_passes_without_l3_info() {
    let p = parse_frame(&arp(mac(1), BROADCAST)).unwrap();
    assert_eq!(p.ethertype, 0x0806);
    assert_eq!((p.l3, p.l4, p.l3_offset), (L3Kind::Other, None, 14));
    // A bare 14-byte header is a valid (if empty) frame.
    assert!(parse_frame(&arp(mac(1), BROADCAST)[..14]).is_ok());
}

#[test]
fn ethernet_padding_is_ignored() {
    let mut f = udp4(mac(1), mac(2), b"");
    assert_eq!(f.len(), 42);
    f.resize(60, 0xee);
    let p = parse_frame(&f).unwrap();
    assert_eq!(p.l4.map(|l| l.len), Some(8));
    let mut f = udp6(mac(1), mac(2), b"");
    f.resize(80, 0xee);
    assert_eq!(parse_frame(&f).unwrap().l4.map(|l| l.len), Some(8));
}

#[test]
fn runt() {
    let f = frame(mac(1), mac(2));
    for len in 0..14 {
        assert_eq!(parse_frame(&f[..len]), Err(DropReason::Runt), "len {len}");
    }
}

#[test]
fn truncated_vlan() {
    let f = udp4_vlan(mac(1), mac(2), b"");
    for len in 14..18 {
        assert_eq!(parse_frame(&f[..len]), Err(DropReason::TruncatedVlan));
    }
    let f = tcp6_qinq(mac(1), mac(2), b"");
    for len in 18..22 {
        assert_eq!(parse_frame(&f[..len]), Err(DropReason::TruncatedVlan));
    }
}

#[test]
fn truncated_ipv4() {
    let f = udp4(mac(1), mac(2), b"");
    for len in 14..34 {
        assert_eq!(parse_frame(&f[..len]), Err(DropReason::TruncatedIpv4));
    }
    // IHL announces options the frame does not hold.
    let mut f = udp4(mac(1), mac(2), b"");
    f[IP] = 0x4f;
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedIpv4));
}

#[test]
fn bad_ipv4_header() {
    let good = udp4(mac(1), mac(2), b"hello");
    let mut f = good.clone();
    f[IP] = 0x44; // IHL 4
    assert_eq!(parse_frame(&f), Err(DropReason::BadIpv4Header));
    let mut f = good.clone();
    f[IP] = 0x65; // version 6 under the IPv4 ethertype
    assert_eq!(parse_frame(&f), Err(DropReason::BadIpv4Header));
    let mut f = good.clone();
    put16(&mut f, IP + 2, 19); // total length below the header
    assert_eq!(parse_frame(&f), Err(DropReason::BadIpv4Header));
    let mut f = good.clone();
    let total = get16(&f, IP + 2);
    put16(&mut f, IP + 2, total + 1); // one byte beyond the frame
    assert_eq!(parse_frame(&f), Err(DropReason::BadIpv4Header));
    // Cutting the frame has the same effect.
    assert_eq!(
        parse_frame(&good[..good.len() - 1]),
        Err(DropReason::BadIpv4Header)
    );
}

#[test]
fn truncated_and_bad_ipv6() {
    let f = udp6(mac(1), mac(2), b"data");
    for len in 14..54 {
        assert_eq!(parse_frame(&f[..len]), Err(DropReason::TruncatedIpv6));
    }
    assert_eq!(
        parse_frame(&f[..f.len() - 1]),
        Err(DropReason::BadIpv6Header),
        "payload length beyond the frame"
    );
    let mut g = f.clone();
    g[IP] = 0x40;
    assert_eq!(parse_frame(&g), Err(DropReason::BadIpv6Header));
}

/// Inserts an IPv6 extension header `ext` (whose first byte is set to the old
/// next header) right after the fixed header.
fn with_ipv6_ext(frame: &[u8], ext_type: u8, mut ext: Vec<u8>) -> Vec<u8> {
    let mut f = frame.to_vec();
    ext[0] = f[IP + 6];
    f[IP + 6] = ext_type;
    let pl = get16(&f, IP + 4);
    put16(&mut f, IP + 4, pl + ext.len() as u16);
    f.splice(L4_V6..L4_V6, ext);
    f
}

#[test]
fn walks_ipv6_extension_headers() {
    let base = udp6(mac(1), mac(2), b"data");
    // Hop-by-hop with a PadN option, 8 bytes.
    let f = with_ipv6_ext(&base, 0, vec![0, 0, 1, 4, 0, 0, 0, 0]);
    let p = parse_frame(&f).unwrap();
    assert_eq!(
        p.l4.map(|l| (l.protocol, l.offset, l.len)),
        Some((17, 62, 12))
    );
    // Destination options of 16 bytes (hdr ext len 1).
    let mut opts = vec![0, 1, 1, 12];
    opts.resize(16, 0);
    let f = with_ipv6_ext(&f, 60, opts);
    let p = parse_frame(&f).unwrap();
    assert_eq!(p.l4.map(|l| (l.protocol, l.offset)), Some((17, 78)));
    // An extension header claiming more than the payload.
    let mut g = with_ipv6_ext(&base, 0, vec![0, 0, 1, 4, 0, 0, 0, 0]);
    g[L4_V6 + 1] = 200;
    assert_eq!(parse_frame(&g), Err(DropReason::BadIpv6Header));
}

#[test]
fn fragments_skip_l4_checks() {
    // IPv6 fragment header with a non-zero offset: the payload is no UDP header.
    let base = udp6(mac(1), mac(2), b"");
    let f = with_ipv6_ext(&base, 44, vec![0, 0, 0x00, 0x10, 0, 0, 0, 1]);
    let mut g = f.clone();
    put16(&mut g, L4_V6 + 8 + 4, 3); // garbage UDP length: not checked
    let p = parse_frame(&g).unwrap();
    let l4 = p.l4.unwrap();
    assert!(l4.fragment);
    assert_eq!((l4.protocol, l4.offset), (17, 62));
    // An atomic fragment (offset 0, no M flag) is a whole datagram: checked.
    let mut atomic = with_ipv6_ext(&base, 44, vec![0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(!parse_frame(&atomic).unwrap().l4.unwrap().fragment);
    put16(&mut atomic, L4_V6 + 8 + 4, 3);
    assert_eq!(parse_frame(&atomic), Err(DropReason::BadUdpHeader));
    // IPv4 first fragment (MF) with a cut TCP header is not judged here.
    let mut f = tcp4(mac(1), mac(2), b"");
    f[IP + 6] = 0x20;
    put16(&mut f, IP + 2, 30);
    let p = parse_frame(&f).unwrap();
    assert!(p.l4.unwrap().fragment);
}

#[test]
fn truncated_and_bad_tcp() {
    // IP length leaves only 10 bytes of TCP header.
    let mut f = tcp4(mac(1), mac(2), b"");
    put16(&mut f, IP + 2, 30);
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
    // Frame cut inside the TCP header (IP length adjusted to match).
    let g = tcp4(mac(1), mac(2), b"");
    let mut cut = g[..L4_V4 + 19].to_vec();
    put16(&mut cut, IP + 2, 39);
    assert_eq!(parse_frame(&cut), Err(DropReason::TruncatedL4));
    // Data offset 15 (60 bytes) with a 20-byte segment.
    let mut f = tcp4(mac(1), mac(2), b"");
    f[L4_V4 + 12] = 0xf0;
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
    // Data offset 4.
    let mut f = tcp4(mac(1), mac(2), b"payload");
    f[L4_V4 + 12] = 0x40;
    assert_eq!(parse_frame(&f), Err(DropReason::BadTcpHeader));
    // Same over IPv6.
    let mut f = tcp6(mac(1), mac(2), b"");
    put16(&mut f, IP + 4, 19);
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
}

#[test]
fn truncated_and_bad_udp() {
    let mut f = udp4(mac(1), mac(2), b"");
    put16(&mut f, IP + 2, 24);
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
    let mut f = udp4(mac(1), mac(2), b"abcd");
    put16(&mut f, L4_V4 + 4, 7);
    assert_eq!(parse_frame(&f), Err(DropReason::BadUdpHeader));
    let mut f = udp4(mac(1), mac(2), b"abcd");
    put16(&mut f, L4_V4 + 4, 13); // beyond the IP payload of 12
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
    let mut f = udp4(mac(1), mac(2), b"abcd");
    put16(&mut f, L4_V4 + 4, 10); // shorter than the IP payload: receivers trim
    assert!(parse_frame(&f).is_ok());
    let mut f = udp6(mac(1), mac(2), b"");
    put16(&mut f, IP + 4, 7);
    assert_eq!(parse_frame(&f), Err(DropReason::TruncatedL4));
}

fn valid_frames() -> Vec<Vec<u8>> {
    vec![
        udp4(mac(1), mac(2), b"hello world"),
        tcp4(mac(1), mac(2), b"hello world"),
        udp6(mac(1), mac(2), b"hello world"),
        tcp6(mac(1), mac(2), b"hello world"),
        udp4_vlan(mac(1), mac(2), b"x"),
        tcp6_qinq(mac(1), mac(2), b"x"),
        arp(mac(1), BROADCAST),
    ]
}

fn check_in_range(f: &[u8]) {
    if let Ok(p) = parse_frame(f) {
        assert!(usize::from(p.l3_offset) <= f.len());
        if let Some(l4) = p.l4 {
            assert!(l4.offset + l4.len <= f.len());
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_in_range(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..7,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = valid_frames()[which].clone();
        for (at, v) in flips {
            let i = at.index(f.len());
            f[i] = v;
        }
        check_in_range(&f);
        let len = cut.index(f.len() + 1);
        check_in_range(&f[..len]);
    }
}
