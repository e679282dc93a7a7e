//! Partial checksum completion: frames built by etherparse (correct checksums)
//! have their checksum replaced by the CHECKSUM_PARTIAL value a veth hands us;
//! the parse stage must restore exactly etherparse's value, and must never
//! change a frame whose checksum is already correct.

mod common;

use common::*;
use etherparse::PacketBuilder;
use proptest::prelude::*;
use switchyard_pipeline::checksum::complete_partial;
use switchyard_pipeline::{parse_frame, parse_stage, PacketMeta, Verdict};

/// Independent 16-bit ones'-complement sum (RFC 1071), unfolded.
fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| (u32::from(c[0]) << 8) | c.get(1).map_or(0, |&b| u32::from(b)))
        .sum()
}

fn fold16(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ones'-complement 16-bit addition.
fn add1c(a: u16, b: u16) -> u16 {
    fold16(u32::from(a) + u32::from(b))
}

/// Where things sit in a frame, computed by etherparse's own parser.
struct Layout {
    addrs: std::ops::Range<usize>,
    proto: u8,
    l4: usize,
    l4_len: usize,
    csum_at: usize,
}

fn layout(f: &[u8]) -> Layout {
    let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
    let (addrs, proto, l4_len) = match p.net.unwrap() {
        etherparse::NetSlice::Ipv4(ip) => {
            let h = ip.header();
            let start = h.slice().as_ptr() as usize - f.as_ptr() as usize;
            (
                start + 12..start + 20,
                h.protocol().0,
                usize::from(h.total_len()) - h.ihl() as usize * 4,
            )
        }
        etherparse::NetSlice::Ipv6(ip) => {
            let h = ip.header();
            let start = h.slice().as_ptr() as usize - f.as_ptr() as usize;
            (
                start + 8..start + 40,
                h.next_header().0,
                usize::from(h.payload_length()),
            )
        }
    };
    let (l4, csum_off) = match p.transport.unwrap() {
        etherparse::TransportSlice::Tcp(t) => {
            (t.slice().as_ptr() as usize - f.as_ptr() as usize, 16)
        }
        etherparse::TransportSlice::Udp(u) => {
            (u.slice().as_ptr() as usize - f.as_ptr() as usize, 6)
        }
        _ => unreachable!(),
    };
    Layout {
        addrs,
        proto,
        l4,
        l4_len,
        csum_at: l4 + csum_off,
    }
}

/// The value Linux leaves in the field under CHECKSUM_PARTIAL: the folded,
/// uncomplemented pseudo-header sum.
fn partial_value(f: &[u8]) -> u16 {
    let l = layout(f);
    fold16(sum16(&f[l.addrs.clone()]) + u32::from(l.proto) + l.l4_len as u32)
}

/// Runs the parse stage on one frame and returns it.
fn through_parse_stage(f: Vec<u8>) -> Vec<u8> {
    let mut frames = vec![f];
    let mut metas = [PacketMeta::new(0)];
    parse_stage(&mut frames, &mut metas);
    assert_eq!(metas[0].verdict, Verdict::Pending);
    frames.pop().unwrap()
}

fn assert_completes(correct: Vec<u8>) {
    let at = layout(&correct).csum_at;
    let mut partial = correct.clone();
    put16(&mut partial, at, partial_value(&correct));
    assert_ne!(partial, correct, "test frame must differ once made partial");
    let fixed = through_parse_stage(partial);
    assert_eq!(get16(&fixed, at), get16(&correct, at));
    assert_eq!(fixed, correct);
}

#[test]
fn completes_tcp_and_udp_over_ipv4_and_ipv6() {
    for payload in [&b""[..], b"a", b"hello", b"an odd-length payload!!"] {
        assert_completes(tcp4(mac(1), mac(2), payload));
        assert_completes(udp4(mac(1), mac(2), payload));
        assert_completes(tcp6(mac(1), mac(2), payload));
        assert_completes(udp6(mac(1), mac(2), payload));
        assert_completes(udp4_vlan(mac(1), mac(2), payload));
        assert_completes(tcp6_qinq(mac(1), mac(2), payload));
    }
}

#[test]
fn ethernet_padding_is_not_summed() {
    // 42-byte UDP frames padded to 60 bytes with non-zero junk.
    let correct = udp4(mac(1), mac(2), b"");
    let at = layout(&correct).csum_at;
    let mut partial = correct.clone();
    put16(&mut partial, at, partial_value(&correct));
    partial.resize(60, 0xa5);
    let fixed = through_parse_stage(partial);
    assert_eq!(get16(&fixed, at), get16(&correct, at));
}

#[test]
fn udp_zero_checksum_means_none_and_is_kept() {
    let mut f = udp4(mac(1), mac(2), b"no checksum");
    let at = layout(&f).csum_at;
    put16(&mut f, at, 0);
    assert_eq!(through_parse_stage(f.clone()), f);
}

/// Builds an IPv4 UDP or TCP frame whose last two payload bytes are `w`.
fn with_word(tcp: bool, w: u16) -> Vec<u8> {
    let mut payload = b"0123456789".to_vec();
    payload.extend_from_slice(&w.to_be_bytes());
    if tcp {
        tcp4(mac(1), mac(2), &payload)
    } else {
        udp4(mac(1), mac(2), &payload)
    }
}

/// The payload word making the frame's full sum (checksum field zeroed) equal
/// `target`, for crafting corner cases.
fn word_for_sum(tcp: bool, target: u16) -> u16 {
    let f = with_word(tcp, 0);
    let l = layout(&f);
    let mut zeroed = f.clone();
    put16(&mut zeroed, l.csum_at, 0);
    let s0 = fold16(
        sum16(&zeroed[l.addrs.clone()])
            + u32::from(l.proto)
            + l.l4_len as u32
            + sum16(&zeroed[l.l4..l.l4 + l.l4_len]),
    );
    // Solve s0 + w = target in ones'-complement arithmetic.
    add1c(target, !s0)
}

#[test]
fn correct_checksum_equal_to_partial_value_is_kept() {
    // Craft frames whose correct checksum happens to equal the folded pseudo sum:
    // the filter fires, the recomputation must give the same value back.
    for tcp in [true, false] {
        let p = partial_value(&with_word(tcp, 0));
        let f = with_word(tcp, word_for_sum(tcp, !p));
        let at = layout(&f).csum_at;
        assert_eq!(get16(&f, at), p, "crafted collision (tcp={tcp})");
        let mut copy = f.clone();
        let parsed = parse_frame(&copy).unwrap();
        assert!(complete_partial(&mut copy, &parsed), "filter must fire");
        assert_eq!(copy, f);
    }
}

#[test]
fn udp_computed_zero_is_sent_as_all_ones() {
    let f = with_word(false, word_for_sum(false, 0xffff));
    let at = layout(&f).csum_at;
    assert_eq!(get16(&f, at), 0xffff, "etherparse agrees");
    let mut partial = f.clone();
    put16(&mut partial, at, partial_value(&f));
    assert_eq!(through_parse_stage(partial), f);
}

#[test]
fn malformed_frames_are_not_touched() {
    let mut f = tcp4(mac(1), mac(2), b"x");
    f[34 + 12] = 0x40; // bad data offset
    let mut frames = vec![f.clone()];
    let mut metas = [PacketMeta::new(0)];
    parse_stage(&mut frames, &mut metas);
    assert!(matches!(metas[0].verdict, Verdict::Drop(_)));
    assert_eq!(frames[0], f);
}

fn build(v6: bool, tcp: bool, vlan: Option<u16>, sport: u16, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(mac(1), mac(2));
    let mut out = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {{
            if tcp {
                let b = $ip.tcp(sport, 443, 7, 512);
                b.write(&mut out, payload).unwrap();
            } else {
                let b = $ip.udp(sport, 443);
                b.write(&mut out, payload).unwrap();
            }
        }};
    }
    match (vlan, v6) {
        (None, false) => finish!(eth.ipv4(V4_SRC, [10, 0, 0, sport as u8], 64)),
        (None, true) => finish!(eth.ipv6(V6_SRC, V6_DST, 64)),
        (Some(v), false) => finish!(eth
            .single_vlan(v.try_into().unwrap())
            .ipv4(V4_SRC, V4_DST, 64)),
        (Some(v), true) => finish!(eth.single_vlan(v.try_into().unwrap()).ipv6(
            V6_SRC,
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sport as u8],
            64
        )),
    }
    out
}

proptest! {
    #[test]
    fn correct_checksums_are_never_changed(
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        vlan in proptest::option::of(0u16..4095),
        sport in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let f = build(v6, tcp, vlan, sport, &payload);
        prop_assert_eq!(through_parse_stage(f.clone()), f);
    }

    #[test]
    fn partial_checksums_are_always_completed(
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        vlan in proptest::option::of(0u16..4095),
        sport in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let f = build(v6, tcp, vlan, sport, &payload);
        let at = layout(&f).csum_at;
        let mut partial = f.clone();
        put16(&mut partial, at, partial_value(&f));
        prop_assert_eq!(through_parse_stage(partial), f);
    }
}
