//! Untrusted bytes through `parse_frame`, the parse stage's metadata and
//! partial-checksum completion: must never panic, offsets must stay inside the
//! frame, the stage must agree with `parse_frame`, and completion must be
//! idempotent and produce a checksum that verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_pipeline::checksum::{complete_partial, fold, pseudo_header_sum, sum_be_words};
use switchyard_pipeline::parse_frame;
use switchyard_pipeline::wire::{ip_proto, L3Kind};
use switchyard_pipeline::{Batch, PacketMeta, ParseStage, Stage, Timestamp, Verdict};

fuzz_target!(|data: &[u8]| {
    // The parse stage: same accept/reject as parse_frame, metadata in range.
    let mut frames = vec![data.to_vec()];
    let mut metas = [PacketMeta::new(0)];
    ParseStage::new().process(&mut Batch::new(&mut frames, &mut metas, Timestamp(0)));
    let meta = metas[0];
    assert_eq!(frames[0].len(), data.len());
    match parse_frame(data) {
        Err(reason) => assert_eq!(meta.verdict, Verdict::Drop(reason)),
        Ok(parsed) => {
            assert_eq!(meta.verdict, Verdict::Pending);
            assert_eq!(meta.l3_offset, parsed.l3_offset);
            assert_eq!(meta.l3, parsed.l3);
            assert!(usize::from(meta.l4_offset) + usize::from(meta.l4_len) <= data.len());
            if let Some(l4) = parsed.l4 {
                assert_eq!(usize::from(meta.l4_offset), l4.offset);
                assert_eq!(meta.protocol, l4.protocol);
            }
        }
    }

    let Ok(parsed) = parse_frame(data) else {
        return;
    };
    assert!(usize::from(parsed.l3_offset) <= data.len());
    let Some(l4) = parsed.l4 else {
        return;
    };
    assert!(l4.offset + l4.len <= data.len());

    let mut frame = data.to_vec();
    if complete_partial(&mut frame, &parsed) {
        // The completed checksum verifies: pseudo header + segment sums to 0xffff.
        let l3 = usize::from(parsed.l3_offset);
        let (src, dst) = match parsed.l3 {
            L3Kind::Ipv4 => (&frame[l3 + 12..l3 + 16], &frame[l3 + 16..l3 + 20]),
            L3Kind::Ipv6 => (&frame[l3 + 8..l3 + 24], &frame[l3 + 24..l3 + 40]),
            L3Kind::Other => unreachable!("no L4 without IP"),
        };
        let len = if l4.protocol == ip_proto::UDP {
            usize::from(u16::from_be_bytes([
                frame[l4.offset + 4],
                frame[l4.offset + 5],
            ]))
        } else {
            l4.len
        };
        let pseudo = pseudo_header_sum(src, dst, l4.protocol, len as u32);
        let total = fold(sum_be_words(&frame[l4.offset..l4.offset + len], pseudo));
        assert!(
            total == 0xffff || total == 0,
            "completed checksum does not verify"
        );
        // Completing again changes nothing.
        let again = frame.clone();
        complete_partial(&mut frame, &parsed);
        assert_eq!(frame, again);
    }
});
