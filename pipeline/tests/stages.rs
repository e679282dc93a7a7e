//! Each stage on its own and the chain, in memory: what the parse stage records,
//! what the L2 stage decides and counts, the gateway hand-off, and the frame
//! store operations stages rely on (resizing, originating) with a custom stage.

mod common;

use common::*;
use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use switchyard_pipeline::wire::L3Kind;
use switchyard_pipeline::{
    Batch, Chain, DropReason, FrameError, FrameStore, L2Config, L2Switch, MacAddr, PacketMeta,
    ParseStage, Stage, StageCounters, Timestamp, Verdict, MIN_HEADROOM,
};

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// Ports 1, 2, 3 in domain 7.
fn l2() -> L2Switch {
    let mut sw = L2Switch::new(L2Config::default());
    for p in [1, 2, 3] {
        sw.set_port_domain(p, Some(7));
    }
    sw
}

fn icmp_echo(src: [u8; 6], dst: [u8; 6], id: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(V4_SRC, V4_DST, 64)
        .icmpv4_echo_request(id, 1);
    let mut out = Vec::new();
    b.write(&mut out, b"ping").unwrap();
    out
}

fn arp(src: [u8; 6]) -> Vec<u8> {
    let mut f = BROADCAST.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0; 28]);
    f
}

/// Runs the parse stage over `frames` on port 1.
fn parse(frames: &mut Vec<Vec<u8>>) -> (Vec<PacketMeta>, StageCounters) {
    let mut metas = vec![PacketMeta::new(1); frames.len()];
    let mut stage = ParseStage::new();
    stage.process(&mut Batch::new(frames, &mut metas, t(1)));
    (metas, *stage.counters())
}

#[test]
fn parse_stage_records_l3_and_l4_fields() {
    let mut frames = vec![
        udp4(mac(1), mac(2), b"x"),
        tcp4(mac(1), mac(2), b"y"),
        udp4_vlan(mac(1), mac(2), b"z"),
        icmp_echo(mac(1), mac(2), 0x1234),
        udp6(mac(1), mac(2), b"v6"),
        arp(mac(1)),
    ];
    let (m, counters) = parse(&mut frames);
    let v4 = (Ipv4Addr::from(V4_SRC), Ipv4Addr::from(V4_DST));

    assert_eq!(m[0].verdict, Verdict::Pending);
    assert_eq!(
        (m[0].l3, m[0].l3_offset, m[0].l4_offset),
        (L3Kind::Ipv4, 14, 34)
    );
    assert_eq!((m[0].src_ip, m[0].dst_ip), v4);
    assert_eq!(
        (m[0].protocol, m[0].src_port, m[0].dst_port),
        (17, 5000, 53)
    );
    assert_eq!(m[0].l4_len, 9);

    assert_eq!(
        (m[1].protocol, m[1].src_port, m[1].dst_port),
        (6, 40000, 80)
    );

    assert_eq!(
        (m[2].vlan_count, m[2].vlan_id, m[2].ethertype),
        (1, 42, 0x0800)
    );
    assert_eq!((m[2].l3_offset, m[2].l4_offset), (18, 38));

    assert_eq!((m[3].protocol, m[3].icmp_type, m[3].icmp_code), (1, 8, 0));
    assert_eq!(m[3].icmp_id, 0x1234);
    assert_eq!((m[3].src_port, m[3].dst_port), (0, 0));

    assert_eq!(
        (m[4].l3, m[4].protocol, m[4].l4_offset),
        (L3Kind::Ipv6, 17, 54)
    );
    assert_eq!(
        m[4].src_ip,
        Ipv4Addr::UNSPECIFIED,
        "IPv4 fields only for IPv4"
    );

    assert_eq!(
        (m[5].l3, m[5].ethertype, m[5].l4_offset),
        (L3Kind::Other, 0x0806, 0)
    );

    // Different flows hash differently; the VLAN tag is not part of the flow
    // (frames 0 and 2 carry the same 5-tuple).
    assert_eq!(m[0].flow_hash, m[2].flow_hash);
    let hashes: std::collections::HashSet<u32> = m.iter().map(|m| m.flow_hash).collect();
    assert_eq!(hashes.len(), m.len() - 1);
    assert_eq!(counters.frames_in, 6);
    assert_eq!(counters.passed, 6);
    assert_eq!(counters.dropped, 0);
}

#[test]
fn parse_stage_flow_hash_depends_on_the_five_tuple_only() {
    // Same addresses and ports, different MACs and payload: same flow.
    let mut frames = vec![udp4(mac(1), mac(2), b"a"), udp4(mac(3), mac(4), b"bbbb")];
    let (m, _) = parse(&mut frames);
    assert_eq!(m[0].flow_hash, m[1].flow_hash);
    let mut other = vec![tcp4(mac(1), mac(2), b"a")];
    let (o, _) = parse(&mut other);
    assert_ne!(o[0].flow_hash, m[0].flow_hash);
}

#[test]
fn parse_stage_drops_malformed_frames_and_counts_them_by_reason() {
    let mut short_ip = udp4(mac(1), mac(2), b"payload");
    short_ip.truncate(14 + 10);
    let mut frames = vec![vec![0u8; 5], short_ip, udp4(mac(1), mac(2), b"ok")];
    let (m, counters) = parse(&mut frames);
    assert_eq!(m[0].verdict, Verdict::Drop(DropReason::Runt));
    assert_eq!(m[1].verdict, Verdict::Drop(DropReason::TruncatedIpv4));
    assert_eq!(m[2].verdict, Verdict::Pending);
    assert_eq!(
        (counters.frames_in, counters.passed, counters.dropped),
        (3, 1, 2)
    );
    assert_eq!(counters.drops.get(DropReason::Runt), 1);
    assert_eq!(counters.drops.get(DropReason::TruncatedIpv4), 1);
}

#[test]
fn parse_stage_skips_frames_already_decided() {
    let mut frames = vec![vec![0u8; 3]];
    let mut metas = vec![PacketMeta::new(1)];
    metas[0].verdict = Verdict::Forward(2);
    let mut stage = ParseStage::new();
    stage.process(&mut Batch::new(&mut frames, &mut metas, t(1)));
    assert_eq!(metas[0].verdict, Verdict::Forward(2));
    assert_eq!(stage.counters().frames_in, 0);
}

#[test]
fn l2_stage_counts_every_decision() {
    let mut sw = l2();
    // 2 speaks (learned, flooded), then 1 -> 2 (forwarded), 1 -> 1's own MAC
    // learned on 1 (same segment), and a frame from a port without a network.
    let mut frames = vec![
        udp4(mac(2), BROADCAST, b"hi"),
        udp4(mac(1), mac(2), b"to 2"),
        udp4(mac(1), mac(1), b"self"),
    ];
    let mut metas = vec![PacketMeta::new(2), PacketMeta::new(1), PacketMeta::new(1)];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    ParseStage::new().process(&mut batch);
    Stage::process(&mut sw, &mut batch);
    let verdicts: Vec<_> = batch.metas().iter().map(|m| m.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Flood,
            Verdict::Forward(2),
            Verdict::Drop(DropReason::SameSegment)
        ]
    );
    let c = sw.counters();
    assert_eq!(
        (c.frames_in, c.flooded, c.forwarded, c.dropped),
        (3, 1, 1, 1)
    );
    assert_eq!(c.drops.get(DropReason::SameSegment), 1);

    let mut frames = vec![udp4(mac(5), mac(2), b"x")];
    let mut metas = vec![PacketMeta::new(9)];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    ParseStage::new().process(&mut batch);
    Stage::process(&mut sw, &mut batch);
    assert_eq!(
        batch.metas()[0].verdict,
        Verdict::Drop(DropReason::NoNetwork)
    );
    assert_eq!(sw.counters().drops.get(DropReason::NoNetwork), 1);
}

#[test]
fn frames_to_the_gateway_mac_go_to_the_gateway_after_learning() {
    let gateway = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
    let mut sw = l2();
    sw.set_domain_gateway(7, Some(gateway));
    assert_eq!(sw.domain_gateway(7), Some(gateway));
    assert_eq!(sw.domain_gateway(8), None);
    let mut frames = vec![
        udp4(mac(1), gateway.0, b"out"),
        udp4(mac(1), gateway.0, b"out again"),
    ];
    let mut metas = vec![PacketMeta::new(1); 2];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    ParseStage::new().process(&mut batch);
    Stage::process(&mut sw, &mut batch);
    assert!(batch
        .metas()
        .iter()
        .all(|m| m.verdict == Verdict::ToGateway));
    assert_eq!(batch.metas()[0].domain, 7);
    assert_eq!(sw.counters().to_gateway, 2);
    // The sender was still learned, so replies find it.
    assert_eq!(sw.mac_table().lookup(7, MacAddr(mac(1)), t(1)), Some(1));
    // Without a gateway the same frame is unknown unicast: flooded.
    sw.set_domain_gateway(7, None);
    let mut frames = vec![udp4(mac(1), gateway.0, b"out")];
    let mut metas = vec![PacketMeta::new(1)];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    ParseStage::new().process(&mut batch);
    Stage::process(&mut sw, &mut batch);
    assert_eq!(batch.metas()[0].verdict, Verdict::Flood);
}

#[test]
fn the_chain_runs_parse_then_l2_and_reports_both() {
    let mut chain = Chain::new(l2());
    let mut frames = vec![
        udp4(mac(2), BROADCAST, b"hello"),
        vec![1, 2, 3],
        udp4(mac(1), mac(2), b"to 2"),
    ];
    let mut metas = vec![PacketMeta::new(2), PacketMeta::new(1), PacketMeta::new(1)];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    chain.run(&mut batch);
    let verdicts: Vec<_> = batch.metas().iter().map(|m| m.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Flood,
            Verdict::Drop(DropReason::Runt),
            Verdict::Forward(2)
        ]
    );
    let [parse, guard, l2, gateway, _router] = chain.reports();
    assert_eq!(
        (parse.name, guard.name, l2.name, gateway.name),
        ("parse", "guard", "l2", "gateway")
    );
    assert_eq!(guard.counters.frames_in, 0, "no port is bound");
    assert_eq!(gateway.counters.frames_in, 0, "no network has a gateway");
    assert_eq!((parse.counters.frames_in, parse.counters.passed), (3, 2));
    assert_eq!(l2.counters.frames_in, parse.counters.passed);
    assert_eq!((l2.counters.flooded, l2.counters.forwarded), (1, 1));
    // The L2 stage read the metadata the parse stage left.
    assert_eq!(batch.metas()[2].l4_offset, 34);
    let json = serde_json::to_value(parse).unwrap();
    assert_eq!(json["name"], "parse");
    assert_eq!(json["drops"]["runt"], 1);
}

#[test]
fn a_batch_with_nothing_pending_skips_the_l2_stage() {
    let mut chain = Chain::new(l2());
    let mut frames = vec![vec![0u8; 4]];
    let mut metas = vec![PacketMeta::new(1)];
    chain.run(&mut Batch::new(&mut frames, &mut metas, t(1)));
    assert_eq!(chain.reports()[2].counters.frames_in, 0);
}

/// A stage that answers every pending UDP frame by originating a copy of it
/// with a VXLAN-sized header pushed in front (as a reply or an encapsulation
/// would), and consumes the original.
#[derive(Default)]
struct Echo {
    counters: StageCounters,
}

impl Stage for Echo {
    const NAME: &'static str = "echo";

    fn process<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        let received = batch.len();
        for i in 0..received {
            let meta = batch.metas()[i];
            if !meta.verdict.is_pending() || meta.protocol != 17 {
                continue;
            }
            let verdict = match batch.originate(meta.in_port) {
                Ok(new) => {
                    let frames = batch.frames_mut();
                    let len = frames.frame(i).len();
                    frames.set_len(new, len).unwrap();
                    let (src, dst) = (i, new);
                    let bytes: [u8; 64] = frames.frame(src)[..64].try_into().unwrap();
                    frames.frame_mut(dst)[..64].copy_from_slice(&bytes);
                    frames.push_head(dst, 50).unwrap();
                    frames.frame_mut(dst)[..50].fill(0xee);
                    batch.metas_mut()[new].verdict = Verdict::Forward(meta.in_port);
                    self.counters.originated += 1;
                    self.counters.record_out(&Verdict::Forward(meta.in_port));
                    Verdict::Local
                }
                Err(e) => Verdict::Drop(e.drop_reason()),
            };
            batch.metas_mut()[i].verdict = verdict;
            self.counters.record(&verdict);
        }
    }

    fn counters(&self) -> &StageCounters {
        &self.counters
    }
}

#[test]
fn a_stage_originates_frames_into_the_batch_and_resizes_them() {
    let mut frames = vec![udp4(mac(1), mac(2), &[7u8; 40]), arp(mac(1))];
    let original = frames[0].clone();
    // Room for one originated frame.
    let mut metas = vec![PacketMeta::new(3); 3];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    assert_eq!(batch.len(), 2);
    ParseStage::new().process(&mut batch);
    let mut echo = Echo::default();
    echo.process(&mut batch);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.metas()[0].verdict, Verdict::Local);
    assert_eq!(batch.metas()[1].verdict, Verdict::Pending, "ARP untouched");
    assert_eq!(batch.metas()[2].verdict, Verdict::Forward(3));
    assert_eq!(batch.metas()[2].in_port, 3);
    let reply = batch.frames().frame(2);
    assert_eq!(reply.len(), original.len() + 50);
    assert!(reply[..50].iter().all(|b| *b == 0xee));
    assert_eq!(&reply[50..114], &original[..64]);
    assert_eq!((echo.counters().originated, echo.counters().local), (1, 1));

    // A batch with no spare meta cannot originate: the frame is dropped and
    // counted instead.
    let mut frames = vec![udp4(mac(1), mac(2), b"x")];
    let mut metas = vec![PacketMeta::new(3)];
    let mut batch = Batch::new(&mut frames, &mut metas, t(1));
    ParseStage::new().process(&mut batch);
    let mut echo = Echo::default();
    echo.process(&mut batch);
    assert_eq!(
        batch.metas()[0].verdict,
        Verdict::Drop(DropReason::NoFreeFrame)
    );
    assert_eq!(echo.counters().drops.get(DropReason::NoFreeFrame), 1);
}

#[test]
fn a_fixed_slice_store_cannot_originate() {
    let mut frames = [udp4(mac(1), mac(2), b"x")];
    let mut metas = [PacketMeta::new(1); 2];
    let mut batch = Batch::new(&mut frames[..], &mut metas, t(1));
    assert_eq!(batch.originate(1), Err(FrameError::NoFreeFrame));
    assert_eq!(batch.len(), 1);
}

#[test]
fn vector_stores_resize_frames_at_both_ends_within_their_room() {
    let mut frames = vec![vec![1u8, 2, 3, 4]];
    assert_eq!(frames.headroom(0), MIN_HEADROOM);
    frames.push_head(0, 2).unwrap();
    frames.frame_mut(0)[..2].copy_from_slice(&[8, 9]);
    assert_eq!(frames.frame(0), [8, 9, 1, 2, 3, 4]);
    frames.pull_head(0, 3).unwrap();
    assert_eq!(frames.frame(0), [2, 3, 4]);
    FrameStore::set_len(&mut frames, 0, 2).unwrap();
    assert_eq!(frames.frame(0), [2, 3]);
    assert_eq!(
        frames.push_head(0, MIN_HEADROOM + 1),
        Err(FrameError::NoHeadroom)
    );
    assert_eq!(frames.pull_head(0, 3), Err(FrameError::TooShort));
    assert_eq!(
        FrameStore::set_len(&mut frames, 0, 1 << 20),
        Err(FrameError::NoTailroom)
    );
    assert_eq!(
        FrameError::NoHeadroom.drop_reason(),
        DropReason::NoFrameRoom
    );
}

#[test]
fn a_meta_fits_one_cache_line() {
    // Stages walk metas in order; more than 64 bytes each would cost a second
    // cache line per frame.
    let size = std::mem::size_of::<PacketMeta>();
    assert!(size <= 64, "PacketMeta is {size} bytes");
}
