//! The parse stage's metadata against a plain reference parse by etherparse
//! (an independent implementation): on well-formed frames of every kind the
//! stage must accept them and agree on every field; on truncated, bit-flipped
//! and random frames it must never panic, keep its offsets inside the frame,
//! and agree with etherparse wherever both accept the frame.

use etherparse::{
    NetSlice, PacketBuilder, PacketBuilderStep, SlicedPacket, TransportSlice, VlanSlice,
};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use switchyard_pipeline::flow::ipv4_flow_hash;
use switchyard_pipeline::wire::L3Kind;
use switchyard_pipeline::{Batch, PacketMeta, ParseStage, Stage, Timestamp, Verdict};

/// What a frame carries, for the generator.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Udp4,
    Tcp4,
    IcmpEcho4,
    IcmpUnreachable4,
    Udp6,
    Arp,
}

#[derive(Clone, Debug)]
struct Spec {
    kind: Kind,
    vlans: u8,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ports: (u16, u16),
    icmp_id: u16,
    payload: Vec<u8>,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Udp4),
        Just(Kind::Tcp4),
        Just(Kind::IcmpEcho4),
        Just(Kind::IcmpUnreachable4),
        Just(Kind::Udp6),
        Just(Kind::Arp),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        kind(),
        0u8..=2,
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<(u16, u16)>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(kind, vlans, src_ip, dst_ip, ports, icmp_id, payload)| Spec {
                kind,
                vlans,
                src_ip,
                dst_ip,
                ports,
                icmp_id,
                payload,
            },
        )
}

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn l2(spec: &Spec) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
    let v6 = matches!(spec.kind, Kind::Udp6);
    let mut a6 = [0u8; 16];
    a6[..4].copy_from_slice(&spec.src_ip);
    let mut b6 = [0u8; 16];
    b6[12..].copy_from_slice(&spec.dst_ip);
    macro_rules! ip {
        ($step:expr) => {
            if v6 {
                $step.ipv6(a6, b6, 64)
            } else {
                $step.ipv4(spec.src_ip, spec.dst_ip, 64)
            }
        };
    }
    match spec.vlans {
        0 => ip!(eth),
        1 => ip!(eth.single_vlan(42.try_into().unwrap())),
        _ => ip!(eth.double_vlan(100.try_into().unwrap(), 42.try_into().unwrap())),
    }
}

fn build(spec: &Spec) -> Vec<u8> {
    let mut out = Vec::new();
    let p = &spec.payload;
    match spec.kind {
        Kind::Udp4 | Kind::Udp6 => l2(spec).udp(spec.ports.0, spec.ports.1).write(&mut out, p),
        Kind::Tcp4 => l2(spec)
            .tcp(spec.ports.0, spec.ports.1, 1, 1000)
            .write(&mut out, p),
        Kind::IcmpEcho4 => l2(spec)
            .icmpv4_echo_request(spec.icmp_id, 7)
            .write(&mut out, p),
        Kind::IcmpUnreachable4 => l2(spec)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut out, p),
        Kind::Arp => {
            out.extend_from_slice(&DST_MAC);
            out.extend_from_slice(&SRC_MAC);
            out.extend_from_slice(&[0x08, 0x06]);
            out.extend_from_slice(&[0u8; 28]);
            return out;
        }
    }
    .unwrap();
    out
}

/// Runs the parse stage on one frame.
fn parse(frame: &[u8]) -> PacketMeta {
    let mut frames = vec![frame.to_vec()];
    let mut metas = [PacketMeta::new(3)];
    let mut stage = ParseStage::new();
    stage.process(&mut Batch::new(&mut frames, &mut metas, Timestamp(0)));
    assert_eq!(stage.counters().frames_in, 1);
    // Parsing never changes the frame's length (it may complete a checksum).
    assert_eq!(frames[0].len(), frame.len());
    metas[0]
}

/// What the reference parse found.
#[derive(Debug, Default, PartialEq)]
struct Reference {
    ethertype: u16,
    vlan_count: u8,
    vlan_id: u16,
    l3_offset: u16,
    ipv4: Option<(Ipv4Addr, Ipv4Addr, u8, bool)>,
    ports: Option<(u16, u16)>,
    icmp: Option<(u8, u8, u16)>,
}

/// The reference parse, or None when etherparse rejects the frame or reads it
/// in a way the switch deliberately does not (0x9100 tags, IPv4 extension
/// headers such as AH, which the switch leaves opaque).
fn reference(frame: &[u8]) -> Option<Reference> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let mut r = Reference {
        ethertype: 0,
        l3_offset: 14,
        ..Reference::default()
    };
    let outer = match &sliced.link {
        Some(etherparse::LinkSlice::Ethernet2(e)) => e.ether_type().0,
        _ => return None,
    };
    r.ethertype = outer;
    match &sliced.vlan {
        Some(VlanSlice::SingleVlan(v)) => {
            if outer == 0x9100 {
                return None;
            }
            r.vlan_count = 1;
            r.vlan_id = v.vlan_identifier().value();
            r.ethertype = v.ether_type().0;
        }
        Some(VlanSlice::DoubleVlan(v)) => {
            // 0x9100 (pre-standard QinQ) is a tag to etherparse, not to the
            // switch (which knows 0x8100 and 0x88a8, as OVS does), wherever it
            // stands: the outer TPID, the inner one, or the final EtherType.
            if outer == 0x9100
                || v.outer().ether_type().0 == 0x9100
                || v.inner().header_slice()[2..4] == [0x91, 0x00]
            {
                return None;
            }
            r.vlan_count = 2;
            r.vlan_id = v.outer().vlan_identifier().value();
            r.ethertype = v.inner().ether_type().0;
        }
        None => {}
    }
    if r.ethertype == 0x9100 {
        return None;
    }
    r.l3_offset = 14 + 4 * u16::from(r.vlan_count);
    if let Some(NetSlice::Ipv4(ip)) = &sliced.net {
        let h = ip.header();
        let protocol = h.protocol().0;
        if !ip.extensions().is_empty() {
            return None;
        }
        let fragment = h.is_fragmenting_payload();
        r.ipv4 = Some((h.source_addr(), h.destination_addr(), protocol, fragment));
        match &sliced.transport {
            Some(TransportSlice::Tcp(t)) => r.ports = Some((t.source_port(), t.destination_port())),
            Some(TransportSlice::Udp(u)) => r.ports = Some((u.source_port(), u.destination_port())),
            Some(TransportSlice::Icmpv4(i)) => {
                let id = match i.icmp_type() {
                    etherparse::Icmpv4Type::EchoRequest(e)
                    | etherparse::Icmpv4Type::EchoReply(e) => e.id,
                    _ => 0,
                };
                r.icmp = Some((i.type_u8(), i.code_u8(), id));
            }
            _ => {}
        }
    }
    Some(r)
}

/// Checks the stage's meta for `frame` against the reference parse; returns
/// whether both accepted it.
fn check(frame: &[u8]) -> Result<bool, TestCaseError> {
    let meta = parse(frame);
    if !meta.verdict.is_pending() {
        prop_assert!(matches!(meta.verdict, Verdict::Drop(_)));
        return Ok(false);
    }
    // Offsets stay inside the frame whatever the bytes.
    prop_assert!(usize::from(meta.l3_offset) <= frame.len());
    prop_assert!(usize::from(meta.l4_offset) + usize::from(meta.l4_len) <= frame.len());
    let Some(r) = reference(frame) else {
        return Ok(false);
    };
    prop_assert_eq!(meta.ethertype, r.ethertype);
    prop_assert_eq!(meta.vlan_count, r.vlan_count);
    prop_assert_eq!(meta.vlan_id, r.vlan_id);
    prop_assert_eq!(meta.l3_offset, r.l3_offset);
    if let Some((src, dst, protocol, fragment)) = r.ipv4 {
        prop_assert_eq!(meta.l3, L3Kind::Ipv4);
        prop_assert_eq!((meta.src_ip, meta.dst_ip), (src, dst));
        prop_assert_eq!(meta.protocol, protocol);
        prop_assert_eq!(meta.fragment, fragment);
        if let Some(ports) = r.ports {
            prop_assert_eq!((meta.src_port, meta.dst_port), ports);
        } else if !fragment {
            prop_assert_eq!((meta.src_port, meta.dst_port), (0, 0));
        }
        if let Some((t, c, id)) = r.icmp {
            prop_assert_eq!((meta.icmp_type, meta.icmp_code, meta.icmp_id), (t, c, id));
        }
        let hash_port = if meta.icmp_id != 0 {
            meta.icmp_id
        } else {
            meta.src_port
        };
        prop_assert_eq!(
            meta.flow_hash,
            ipv4_flow_hash(src, dst, protocol, hash_port, meta.dst_port)
        );
    } else {
        prop_assert_ne!(meta.l3, L3Kind::Ipv4);
        prop_assert_eq!(meta.src_ip, Ipv4Addr::UNSPECIFIED);
    }
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every well-formed frame is accepted, by both, with the same fields.
    #[test]
    fn well_formed_frames_match_the_reference(spec in spec()) {
        let frame = build(&spec);
        prop_assert!(check(&frame)?, "rejected a well-formed {:?} frame", spec.kind);
        let meta = parse(&frame);
        if matches!(spec.kind, Kind::Udp4 | Kind::Tcp4) {
            prop_assert_eq!((meta.src_port, meta.dst_port), spec.ports);
        }
        if matches!(spec.kind, Kind::IcmpEcho4) {
            prop_assert_eq!((meta.icmp_type, meta.icmp_id), (8, spec.icmp_id));
        }
    }

    /// Cut short anywhere: never a panic; agreement wherever both accept.
    #[test]
    fn truncated_frames_never_panic(spec in spec(), cut in any::<proptest::sample::Index>()) {
        let frame = build(&spec);
        let len = cut.index(frame.len() + 1);
        check(&frame[..len])?;
    }

    /// A few bytes flipped anywhere: never a panic; agreement wherever both accept.
    #[test]
    fn corrupted_frames_never_panic(
        spec in spec(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut frame = build(&spec);
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        check(&frame)?;
    }

    /// Random bytes: never a panic.
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        check(&bytes)?;
    }
}
