//! The parse stage: the first stage of every burst. It validates each frame once
//! (so later stages may trust the offsets), records where L3 starts, and repairs
//! partial checksums from offloading senders before the frame goes anywhere.

use crate::checksum::complete_partial;
use crate::frame::{FrameStore, PacketMeta, Verdict};
use crate::wire::parse_frame;

/// Parses every `Pending` frame of a batch: a malformed frame becomes
/// `Verdict::Drop(reason)`; a good one gets its `l3_offset` set and any partial
/// TCP/UDP checksum completed in place.
///
/// `metas[i]` describes frame `i` of `frames`, which must hold at least
/// `metas.len()` frames. Frames already decided are skipped. No allocation.
pub fn parse_stage<F: FrameStore + ?Sized>(frames: &mut F, metas: &mut [PacketMeta]) {
    for (i, meta) in metas.iter_mut().enumerate() {
        if meta.verdict != Verdict::Pending {
            continue;
        }
        match parse_frame(frames.frame(i)) {
            Ok(parsed) => {
                meta.l3_offset = parsed.l3_offset;
                if parsed.l4.is_some() {
                    complete_partial(frames.frame_mut(i), &parsed);
                }
            }
            Err(reason) => meta.verdict = Verdict::Drop(reason),
        }
    }
}
