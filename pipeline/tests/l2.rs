//! L2 switching over batches: learning, aging, moves, flooding, a full table,
//! network separation and malformed frames, with frames built by etherparse.

mod common;

use common::*;
use switchyard_pipeline::{
    DropReason, L2Config, L2Stats, L2Switch, MacAddr, PacketMeta, PortId, Timestamp, Verdict,
};

const WEB: u16 = 10;
const DB: u16 = 20;
const AGING_S: u64 = 10;

/// Ports 1, 2, 3 in network WEB; 4, 5 in DB; 9 in none.
fn switch_with(max_entries: usize) -> L2Switch {
    let mut sw = L2Switch::new(L2Config {
        max_entries,
        aging_ns: AGING_S * 1_000_000_000,
    });
    for p in [1, 2, 3] {
        sw.set_port_domain(p, Some(WEB));
    }
    for p in [4, 5] {
        sw.set_port_domain(p, Some(DB));
    }
    sw
}

fn switch() -> L2Switch {
    switch_with(1024)
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// Sends one frame through the whole L2 pipeline.
fn send(sw: &mut L2Switch, port: PortId, frame: Vec<u8>, now: Timestamp) -> PacketMeta {
    let mut frames = vec![frame];
    let mut metas = [PacketMeta::new(port)];
    sw.process(&mut frames, &mut metas, now);
    metas[0]
}

/// The ports a verdict sends the frame to.
fn outputs(sw: &L2Switch, meta: &PacketMeta) -> Vec<PortId> {
    match meta.verdict {
        Verdict::Forward(p) => vec![p],
        Verdict::Flood => sw.flood_targets(meta).collect(),
        Verdict::Drop(_)
        | Verdict::Pending
        | Verdict::ToGateway
        | Verdict::Local
        | Verdict::Routed { .. }
        | Verdict::HandOff(_) => vec![],
    }
}

const A: u8 = 0xa;
const B: u8 = 0xb;
const C: u8 = 0xc;

#[test]
fn learns_and_forwards() {
    let mut sw = switch();
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(0));
    assert_eq!(m.verdict, Verdict::Flood, "B unknown yet");
    assert_eq!(m.domain, WEB);
    assert_eq!(outputs(&sw, &m), vec![2, 3]);
    let m = send(&mut sw, 2, frame(mac(B), mac(A)), t(1));
    assert_eq!(m.verdict, Verdict::Forward(1));
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(2));
    assert_eq!(m.verdict, Verdict::Forward(2));
    assert_eq!(
        sw.stats(),
        L2Stats {
            learned: 2,
            ..L2Stats::default()
        }
    );
    let mut fdb: Vec<_> = sw
        .mac_table()
        .iter()
        .map(|e| (e.domain, e.mac, e.port))
        .collect();
    fdb.sort();
    assert_eq!(
        fdb,
        vec![(WEB, MacAddr(mac(A)), 1), (WEB, MacAddr(mac(B)), 2)]
    );
}

#[test]
fn entries_age_out_and_flooding_resumes() {
    let mut sw = switch();
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(AGING_S));
    assert_eq!(
        m.verdict,
        Verdict::Forward(2),
        "still fresh at exactly the aging time"
    );
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(AGING_S + 1));
    assert_eq!(m.verdict, Verdict::Flood, "aged out");
    assert_eq!(sw.sweep(t(AGING_S + 1)), 1);
    assert_eq!(sw.stats().aged, 1);
    assert_eq!(sw.mac_table().len(), 1, "only A is left");
    // Traffic refreshes an entry.
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(20));
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(29));
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(38));
    assert_eq!(m.verdict, Verdict::Forward(2));
}

#[test]
fn moved_station_is_relearned_at_once() {
    let mut sw = switch();
    send(&mut sw, 1, frame(mac(A), BROADCAST), t(0));
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    assert_eq!(
        send(&mut sw, 2, frame(mac(B), mac(A)), t(1)).verdict,
        Verdict::Forward(1)
    );
    // A shows up behind port 3.
    send(&mut sw, 3, frame(mac(A), mac(B)), t(2));
    assert_eq!(
        send(&mut sw, 2, frame(mac(B), mac(A)), t(2)).verdict,
        Verdict::Forward(3)
    );
    assert_eq!(sw.stats().moved, 1);
    assert_eq!(sw.stats().learned, 2);
}

#[test]
fn flooding_rules() {
    let mut sw = switch();
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    for dst in [BROADCAST, MULTICAST] {
        let m = send(&mut sw, 1, frame(mac(A), dst), t(0));
        assert_eq!(m.verdict, Verdict::Flood);
        assert_eq!(
            outputs(&sw, &m),
            vec![2, 3],
            "never back to the ingress port"
        );
    }
    // Unknown unicast floods too.
    let m = send(&mut sw, 3, frame(mac(C), mac(0x77)), t(0));
    assert_eq!(m.verdict, Verdict::Flood);
    assert_eq!(outputs(&sw, &m), vec![1, 2]);
    // A destination learned on the ingress port is not sent back.
    send(&mut sw, 1, frame(mac(0x77), BROADCAST), t(0));
    let m = send(&mut sw, 1, frame(mac(A), mac(0x77)), t(0));
    assert_eq!(m.verdict, Verdict::Drop(DropReason::SameSegment));
    assert_eq!(sw.flood_ports(WEB), &[1, 2, 3]);
    assert_eq!(sw.flood_ports(DB), &[4, 5]);
    assert_eq!(sw.flood_ports(99), &[] as &[PortId]);
}

#[test]
fn full_table_stops_learning_but_keeps_switching() {
    let mut sw = switch_with(2);
    send(&mut sw, 1, frame(mac(A), BROADCAST), t(0));
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    // C cannot be learned, but its frames still go where they should.
    let m = send(&mut sw, 3, frame(mac(C), mac(A)), t(1));
    assert_eq!(m.verdict, Verdict::Forward(1));
    assert_eq!(sw.stats().table_full, 1);
    assert_eq!(sw.mac_table().len(), 2);
    // Frames to C are flooded, never dropped.
    let m = send(&mut sw, 1, frame(mac(A), mac(C)), t(1));
    assert_eq!(m.verdict, Verdict::Flood);
    assert_eq!(outputs(&sw, &m), vec![2, 3]);
    let m = send(&mut sw, 3, frame(mac(C), BROADCAST), t(1));
    assert_eq!(m.verdict, Verdict::Flood);
    assert_eq!(sw.stats().table_full, 2);
    // Once entries age out and are swept, C is learned.
    sw.sweep(t(AGING_S + 2));
    send(&mut sw, 3, frame(mac(C), BROADCAST), t(AGING_S + 2));
    let m = send(&mut sw, 1, frame(mac(A), mac(C)), t(AGING_S + 2));
    assert_eq!(m.verdict, Verdict::Forward(3));
}

#[test]
fn networks_are_separate() {
    let mut sw = switch();
    // The same MAC lives in both networks, behind different ports.
    send(&mut sw, 1, frame(mac(A), BROADCAST), t(0));
    let m = send(&mut sw, 4, frame(mac(A), BROADCAST), t(0));
    assert_eq!(outputs(&sw, &m), vec![5], "a flood stays in its network");
    assert_eq!(sw.stats().learned, 2);
    assert_eq!(sw.stats().moved, 0, "not a move: another domain");
    assert_eq!(
        send(&mut sw, 5, frame(mac(B), mac(A)), t(1)).verdict,
        Verdict::Forward(4)
    );
    assert_eq!(
        send(&mut sw, 2, frame(mac(C), mac(A)), t(1)).verdict,
        Verdict::Forward(1)
    );
    // B is known only in DB: from WEB it is unknown and flooded inside WEB only.
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(2));
    assert_eq!(m.verdict, Verdict::Flood);
    assert_eq!(outputs(&sw, &m), vec![2, 3]);
}

#[test]
fn moving_a_port_to_another_network_forgets_its_macs() {
    let mut sw = switch();
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    sw.set_port_domain(2, Some(DB));
    assert_eq!(sw.port_domain(2), Some(DB));
    assert_eq!(sw.flood_ports(WEB), &[1, 3]);
    assert_eq!(sw.flood_ports(DB), &[2, 4, 5]);
    let m = send(&mut sw, 1, frame(mac(A), mac(B)), t(1));
    assert_eq!(m.verdict, Verdict::Flood);
    assert_eq!(outputs(&sw, &m), vec![3]);
}

#[test]
fn removing_ports_and_networks() {
    let mut sw = switch();
    send(&mut sw, 2, frame(mac(B), BROADCAST), t(0));
    send(&mut sw, 4, frame(mac(C), BROADCAST), t(0));
    sw.remove_port(2);
    assert_eq!(sw.port_domain(2), None);
    assert_eq!(sw.flood_ports(WEB), &[1, 3]);
    assert_eq!(sw.mac_table().len(), 1);
    assert_eq!(
        send(&mut sw, 2, frame(mac(B), BROADCAST), t(1)).verdict,
        Verdict::Drop(DropReason::NoNetwork)
    );
    sw.remove_domain(DB);
    assert!(sw.mac_table().is_empty());
    assert_eq!(sw.flood_ports(DB), &[] as &[PortId]);
    assert_eq!(sw.port_domain(4), None);
}

#[test]
fn bad_sources_and_ports_without_network_are_dropped() {
    let mut sw = switch();
    let m = send(&mut sw, 9, frame(mac(A), mac(B)), t(0));
    assert_eq!(m.verdict, Verdict::Drop(DropReason::NoNetwork));
    let m = send(&mut sw, 1000, frame(mac(A), mac(B)), t(0));
    assert_eq!(m.verdict, Verdict::Drop(DropReason::NoNetwork));
    for src in [BROADCAST, MULTICAST, [0; 6]] {
        let m = send(&mut sw, 1, frame(src, mac(B)), t(0));
        assert_eq!(m.verdict, Verdict::Drop(DropReason::InvalidSourceMac));
    }
    assert!(sw.mac_table().is_empty(), "nothing learned from bad frames");
}

#[test]
fn malformed_frames_are_dropped_with_their_reason() {
    let mut sw = switch();
    let mut bad_ihl = udp4(mac(A), mac(B), b"x");
    bad_ihl[14] = 0x44;
    let mut bad_tcp = tcp4(mac(A), mac(B), b"x");
    bad_tcp[34 + 12] = 0x40;
    let mut short_udp = udp4(mac(A), mac(B), b"");
    put16(&mut short_udp, 14 + 2, 24);
    let v6 = tcp6(mac(A), mac(B), b"");
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![0u8; 13], DropReason::Runt),
        (
            udp4_vlan(mac(A), mac(B), b"")[..16].to_vec(),
            DropReason::TruncatedVlan,
        ),
        (
            udp4(mac(A), mac(B), b"")[..30].to_vec(),
            DropReason::TruncatedIpv4,
        ),
        (bad_ihl, DropReason::BadIpv4Header),
        (v6[..40].to_vec(), DropReason::TruncatedIpv6),
        (v6[..v6.len() - 1].to_vec(), DropReason::BadIpv6Header),
        (bad_tcp, DropReason::BadTcpHeader),
        (short_udp, DropReason::TruncatedL4),
    ];
    let (mut frames, reasons): (Vec<Vec<u8>>, Vec<DropReason>) = cases.into_iter().unzip();
    // A good frame in the middle of the batch is switched normally.
    frames.insert(3, frame(mac(C), BROADCAST));
    let mut metas: Vec<PacketMeta> = (0..frames.len()).map(|_| PacketMeta::new(1)).collect();
    sw.process(&mut frames, &mut metas, t(0));
    assert_eq!(metas.remove(3).verdict, Verdict::Flood);
    for (meta, reason) in metas.iter().zip(reasons) {
        assert_eq!(meta.verdict, Verdict::Drop(reason));
    }
    let learned: Vec<_> = sw.mac_table().iter().map(|e| e.mac).collect();
    assert_eq!(
        learned,
        vec![MacAddr(mac(C))],
        "malformed frames teach nothing"
    );
}

#[test]
fn batch_skips_decided_frames_and_sets_l3_offset() {
    let mut sw = switch();
    let mut frames = vec![
        frame(mac(A), BROADCAST),
        frame(mac(B), mac(A)),
        udp4_vlan(mac(C), mac(A), b"v"),
        frame(mac(0x55), mac(A)),
    ];
    let mut metas = vec![
        PacketMeta::new(1),
        PacketMeta::new(2),
        PacketMeta::new(3),
        PacketMeta::new(2),
    ];
    metas[3].verdict = Verdict::Drop(DropReason::Oversize);
    sw.process(&mut frames, &mut metas, t(0));
    assert_eq!(metas[0].verdict, Verdict::Flood);
    assert_eq!(
        metas[1].verdict,
        Verdict::Forward(1),
        "learned earlier in the same batch"
    );
    assert_eq!(metas[2].verdict, Verdict::Forward(1));
    assert_eq!(metas[2].l3_offset, 18);
    assert_eq!(metas[1].l3_offset, 14);
    assert_eq!(metas[3].verdict, Verdict::Drop(DropReason::Oversize));
    assert_eq!(
        sw.mac_table().len(),
        3,
        "the pre-dropped frame taught nothing"
    );
}

#[test]
fn stats_and_config_serialize() {
    let sw = switch();
    let json = serde_json::to_string(&sw.stats()).unwrap();
    assert_eq!(json, r#"{"learned":0,"moved":0,"table_full":0,"aged":0}"#);
    let cfg = L2Config::default();
    assert_eq!(cfg.aging_ns, 300_000_000_000);
}

mod batch_oracle {
    //! The forward stage remembers its last unicast decision within a batch;
    //! deciding the frames one batch each (no memory) is the oracle.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_batch_decides_as_frame_by_frame(
            frames in prop::collection::vec((1u16..=5, 0u8..4, 0u8..5), 1..64),
            warmup in prop::collection::vec((1u16..=5, 0u8..4), 0..8),
        ) {
            let mut batched = switch();
            let mut single = switch();
            // Some stations known beforehand, in both switches alike.
            for (port, s) in &warmup {
                send(&mut batched, *port, frame(mac(A + s), mac(B)), t(1));
                send(&mut single, *port, frame(mac(A + s), mac(B)), t(1));
            }
            // Destination 4 is broadcast; the others are stations that move
            // between ports (and networks) inside the batch.
            let built: Vec<(PortId, Vec<u8>)> = frames
                .iter()
                .map(|(port, s, d)| {
                    let dst = if *d == 4 { BROADCAST } else { mac(A + d) };
                    (*port, frame(mac(A + s), dst))
                })
                .collect();
            let mut batch: Vec<Vec<u8>> = built.iter().map(|(_, f)| f.clone()).collect();
            let mut metas: Vec<PacketMeta> = built.iter().map(|(p, _)| PacketMeta::new(*p)).collect();
            batched.process(&mut batch, &mut metas, t(2));
            for ((port, f), m) in built.iter().zip(&metas) {
                let one = send(&mut single, *port, f.clone(), t(2));
                prop_assert_eq!(one.verdict, m.verdict);
                prop_assert_eq!(one.domain, m.domain);
            }
        }
    }

    #[test]
    fn a_station_moving_inside_a_batch_is_not_served_from_memory() {
        let mut sw = switch();
        send(&mut sw, 2, frame(mac(B), mac(A)), t(1)); // B on port 2
        let mut batch = vec![
            frame(mac(A), mac(B)), // -> port 2
            frame(mac(B), mac(C)), // B moves to port 1
            frame(mac(A), mac(B)), // same MACs as the first: now SameSegment
        ];
        let mut metas = [PacketMeta::new(1); 3];
        sw.process(&mut batch, &mut metas, t(2));
        assert_eq!(metas[0].verdict, Verdict::Forward(2));
        assert_eq!(metas[2].verdict, Verdict::Drop(DropReason::SameSegment));
    }
}
