//! Untrusted bytes through `parse_frame` and partial-checksum completion: must
//! never panic, offsets must stay inside the frame, and completion must be
//! idempotent and produce a checksum that verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_pipeline::checksum::{complete_partial, fold, pseudo_header_sum, sum_be_words};
use switchyard_pipeline::parse_frame;
use switchyard_pipeline::wire::{ip_proto, L3Kind};

fuzz_target!(|data: &[u8]| {
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
