//! NAT's rewriting on random frames: `rewrite` and `rewrite_icmp_error` with
//! the frame's own header offsets (or random ones) must never panic, whatever
//! the frame claims about its lengths.
//!
//! Input: `[selector, 12 bytes of endpoints, frame..]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use switchyard_pipeline::nat::rewrite::{rewrite, rewrite_icmp_error, Endpoints};

fuzz_target!(|data: &[u8]| {
    let Some((head, frame)) = data.split_first_chunk::<13>() else {
        return;
    };
    let to = Endpoints {
        src: Ipv4Addr::new(head[1], head[2], head[3], head[4]),
        dst: Ipv4Addr::new(head[5], head[6], head[7], head[8]),
        sport: u16::from_be_bytes([head[9], head[10]]),
        dport: u16::from_be_bytes([head[11], head[12]]),
    };
    let mut bytes = frame.to_vec();
    let l3 = 14;
    let (l4, protocol) = if head[0] & 8 == 0 {
        // What the frame says (IHL, protocol).
        let ihl = bytes.get(l3).map_or(5, |b| usize::from(b & 0x0f));
        (l3 + 4 * ihl, bytes.get(l3 + 9).copied().unwrap_or(6))
    } else {
        (usize::from(head[9]), head[10])
    };
    let _ = if head[0] & 1 == 0 {
        rewrite(&mut bytes, l3, l4, protocol, head[0] & 2 == 0, to)
    } else {
        rewrite_icmp_error(
            &mut bytes,
            l3,
            l4,
            (head[0] & 16 == 0).then_some(to.src),
            to.dst,
            to,
        )
    };
});
