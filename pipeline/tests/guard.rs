//! The source guard in memory: a port bound to a station passes only frames
//! from that station's MAC and IPv4 address (and ARP with that sender, or the
//! unspecified address of a probe); everything else from it is dropped with a
//! reason; unbound ports are untouched. A property test compares the stage
//! with a plain reference check on random sources.

mod common;

use common::mac;
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::net::Ipv4Addr;
use switchyard_pipeline::guard::{PortBinding, SourceGuard};
use switchyard_pipeline::{
    Batch, DropReason, MacAddr, PacketMeta, ParseStage, Stage, Timestamp, Verdict,
};

const OWN_IP: [u8; 4] = [172, 30, 0, 5];
const GATEWAY_IP: [u8; 4] = [172, 30, 0, 1];

fn binding() -> PortBinding {
    PortBinding {
        mac: MacAddr(mac(5)),
        ip: Some(Ipv4Addr::from(OWN_IP)),
    }
}

fn udp_from(src_mac: [u8; 6], src_ip: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, mac(9))
        .ipv4(src_ip, [172, 30, 0, 9], 64)
        .udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, b"payload").unwrap();
    out
}

/// An ARP request (or reply with `op` 2) from `src_mac` whose sender fields are
/// `sender_mac`/`sender_ip`.
fn arp_from(src_mac: [u8; 6], sender_mac: [u8; 6], sender_ip: [u8; 4], op: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, op]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[172, 30, 0, 9]);
    f
}

/// Parses and guards `frames`, all received on `port`; port 1 is bound.
fn run(frames: Vec<Vec<u8>>, port: u16) -> Vec<Verdict> {
    let mut frames = frames;
    let mut metas = vec![PacketMeta::new(port); frames.len()];
    let mut guard = SourceGuard::new();
    guard.bind(1, Some(binding()));
    {
        let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(1));
        ParseStage::new().process(&mut batch);
        guard.process(&mut batch);
    }
    metas.iter().map(|m| m.verdict).collect()
}

#[test]
fn the_bound_station_passes_and_impostors_are_dropped_by_reason() {
    let own = mac(5);
    let verdicts = run(
        vec![
            udp_from(own, OWN_IP),
            udp_from(own, [0, 0, 0, 0]),
            udp_from(mac(6), OWN_IP),
            udp_from(own, [172, 30, 0, 6]),
            udp_from(own, GATEWAY_IP),
            arp_from(own, own, OWN_IP, 1),
            arp_from(own, own, [0, 0, 0, 0], 1),
            arp_from(own, own, GATEWAY_IP, 2),
            arp_from(own, mac(6), OWN_IP, 1),
            arp_from(own, own, OWN_IP, 1)[..30].to_vec(),
        ],
        1,
    );
    use DropReason::*;
    assert_eq!(
        verdicts,
        vec![
            Verdict::Pending,
            Verdict::Pending,
            Verdict::Drop(SpoofedSourceMac),
            Verdict::Drop(SpoofedSourceIp),
            Verdict::Drop(SpoofedSourceIp),
            Verdict::Pending,
            Verdict::Pending,
            Verdict::Drop(SpoofedSourceIp),
            Verdict::Drop(SpoofedSourceMac),
            Verdict::Drop(TruncatedArp),
        ]
    );
}

#[test]
fn unbound_ports_are_not_guarded() {
    let verdicts = run(
        vec![
            udp_from(mac(6), GATEWAY_IP),
            arp_from(mac(6), mac(7), GATEWAY_IP, 2),
        ],
        2,
    );
    assert_eq!(verdicts, vec![Verdict::Pending, Verdict::Pending]);
}

#[test]
fn a_port_without_an_address_is_guarded_by_mac_only() {
    let mut frames = vec![udp_from(mac(5), [10, 9, 9, 9]), udp_from(mac(6), OWN_IP)];
    let mut metas = vec![PacketMeta::new(3); 2];
    let mut guard = SourceGuard::new();
    guard.bind(
        3,
        Some(PortBinding {
            mac: MacAddr(mac(5)),
            ip: None,
        }),
    );
    let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(1));
    ParseStage::new().process(&mut batch);
    guard.process(&mut batch);
    assert_eq!(batch.metas()[0].verdict, Verdict::Pending);
    assert_eq!(
        batch.metas()[1].verdict,
        Verdict::Drop(DropReason::SpoofedSourceMac)
    );
    assert_eq!(guard.counters().drops.get(DropReason::SpoofedSourceMac), 1);
    guard.bind(3, None);
    assert!(!guard.guards_any());
}

/// The plain rule, written out: what a frame from the bound port should get.
fn reference(src_mac: [u8; 6], ip: [u8; 4], arp: Option<([u8; 6], [u8; 4])>) -> Verdict {
    let own = binding();
    let ip_ok = |ip: [u8; 4]| ip == OWN_IP || ip == [0, 0, 0, 0];
    if src_mac != own.mac.0 {
        return Verdict::Drop(DropReason::SpoofedSourceMac);
    }
    match arp {
        Some((sender_mac, _)) if sender_mac != own.mac.0 => {
            Verdict::Drop(DropReason::SpoofedSourceMac)
        }
        Some((_, sender_ip)) if !ip_ok(sender_ip) => Verdict::Drop(DropReason::SpoofedSourceIp),
        Some(_) => Verdict::Pending,
        None if !ip_ok(ip) => Verdict::Drop(DropReason::SpoofedSourceIp),
        None => Verdict::Pending,
    }
}

fn some_mac() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![Just(mac(5)), Just(mac(6)), (0u8..=255).prop_map(mac)]
}

fn some_ip() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just(OWN_IP),
        Just(GATEWAY_IP),
        Just([0, 0, 0, 0]),
        any::<[u8; 4]>()
    ]
}

proptest! {
    #[test]
    fn guard_agrees_with_the_plain_rule(
        cases in prop::collection::vec(
            (some_mac(), some_ip(), prop::option::of((some_mac(), some_ip()))),
            1..40,
        )
    ) {
        let frames: Vec<Vec<u8>> = cases
            .iter()
            .map(|&(m, ip, arp)| match arp {
                Some((sm, sip)) => arp_from(m, sm, sip, 1),
                None => udp_from(m, ip),
            })
            .collect();
        let verdicts = run(frames, 1);
        for (v, &(m, ip, arp)) in verdicts.iter().zip(&cases) {
            // Frames the parser rejects (a source MAC that is multicast) never
            // reach the guard.
            if matches!(v, Verdict::Drop(DropReason::InvalidSourceMac)) {
                continue;
            }
            prop_assert_eq!(*v, reference(m, ip, arp), "mac {:?} ip {:?} arp {:?}", m, ip, arp);
        }
    }
}
