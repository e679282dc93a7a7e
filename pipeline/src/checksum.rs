//! Completing partial TCP/UDP checksums.
//!
//! A container's veth hands TCP and UDP to us with `CHECKSUM_PARTIAL` offload:
//! the kernel expected the NIC to finish the checksum, so the field holds only
//! the folded, *not* complemented pseudo-header sum (Linux:
//! `th->check = ~tcp_v4_check(len, saddr, daddr, 0)`; the same for UDP and for
//! IPv6). Through AF_XDP nobody finishes it and the receiver drops the segment.
//!
//! Rule: compute the pseudo-header sum; if the checksum field equals its folded
//! value, recompute the full checksum and store it. Recomputing an
//! already-correct checksum yields the same value, so this cheap filter never
//! damages a good frame; only the rare frame whose correct checksum happens to
//! equal the folded pseudo sum pays for a recomputation.

use crate::wire::{ip_proto, L3Kind, ParsedFrame, TCP_CHECKSUM_OFFSET, UDP_CHECKSUM_OFFSET};

/// Adds `data` to a ones'-complement running sum (RFC 1071), unfolded.
///
/// Big-endian 32-bit words are added into a 64-bit accumulator: since
/// 2^16 ≡ 1 (mod 2^16 - 1) this folds to the same 16-bit sum as adding 16-bit
/// words, at half the additions, and cannot overflow for any IP-sized input.
/// Odd lengths are padded with a zero byte, as the RFC says.
#[inline]
pub fn sum_be_words(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        if let Some(w) = w.first_chunk::<4>() {
            acc += u64::from(u32::from_be_bytes(*w));
        }
    }
    let tail = words.remainder();
    let mut i = 0;
    while let Some(pair) = tail.get(i..).and_then(|t| t.first_chunk::<2>()) {
        acc += u64::from(u16::from_be_bytes(*pair));
        i += 2;
    }
    if let Some(&last) = tail.get(i) {
        acc += u64::from(last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits with end-around carry (not complemented).
/// Four fixed steps cover any `u64`, so there is no data-dependent loop.
#[inline]
pub fn fold(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff) + (sum >> 32); // < 2^33
    let s = (s & 0xffff) + (s >> 16); // < 2^17 + 2^16
    let s = (s & 0xffff) + (s >> 16); // <= 0x10001
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// [`sum_be_words`] for a fixed-size array whose length is a multiple of 4 (the
/// two addresses of a pseudo header): the length is a constant, so the loop
/// unrolls into a few loads and adds with no bounds checks.
#[inline]
fn sum_array<const N: usize>(bytes: &[u8; N]) -> u64 {
    let mut acc = 0u64;
    let mut i = 0;
    while i + 4 <= N {
        acc += u64::from(u32::from_be_bytes([
            bytes[i],
            bytes[i + 1],
            bytes[i + 2],
            bytes[i + 3],
        ]));
        i += 4;
    }
    acc
}

/// The unfolded TCP/UDP pseudo-header sum: both addresses (4 or 16 bytes each),
/// the protocol and the L4 length. The IPv4 and IPv6 pseudo headers fold to the
/// same sum for the same fields, so one function serves both.
#[inline]
pub fn pseudo_header_sum(src: &[u8], dst: &[u8], protocol: u8, l4_len: u32) -> u64 {
    let sum = sum_be_words(src, 0);
    let sum = sum_be_words(dst, sum);
    sum + u64::from(protocol) + u64::from(l4_len)
}

/// Updates a ones'-complement checksum for one 16-bit word of the covered data
/// changing from `old` to `new`, without summing the data again (RFC 1624,
/// eqn. 3: `HC' = ~(~HC + ~m + m')`). What routing needs for a TTL decrement
/// and the gateway for turning an echo request into a reply.
#[inline]
pub const fn incremental_update(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = (!checksum) as u32 + (!old) as u32 + new as u32;
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The IPv4 header checksum of `header` (its checksum field taken as zero).
#[inline]
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    // The words before and after the field (both splits at even offsets keep
    // the 16-bit word alignment the sum depends on).
    let before = header.get(..10).unwrap_or(header);
    let after = header.get(12..).unwrap_or(&[]);
    !fold(sum_be_words(after, sum_be_words(before, 0)))
}

/// Reads the big-endian u16 at `at`, if in range.
#[inline]
fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..)?.first_chunk::<2>()?;
    Some(u16::from_be_bytes(*b))
}

/// Writes `v` big-endian at `at`, if in range.
#[inline]
fn write_u16(bytes: &mut [u8], at: usize, v: u16) -> Option<()> {
    let b = bytes.get_mut(at..)?.first_chunk_mut::<2>()?;
    *b = v.to_be_bytes();
    Some(())
}

/// Completes the TCP or UDP checksum of `frame` in place if it holds only the
/// partial (pseudo-header) value; returns true if it rewrote the field.
///
/// `parsed` must come from [`crate::wire::parse_frame`] on the same bytes. The
/// L4 length is taken from the IP header (never the frame, which may carry
/// Ethernet padding); for UDP it is the UDP length field, which is what receivers
/// verify against and which equals the IP-derived length in every well-formed
/// datagram. Fragments and other protocols are left alone. Never panics: any
/// offset that does not fit leaves the frame unchanged.
pub fn complete_partial(frame: &mut [u8], parsed: &ParsedFrame) -> bool {
    complete_partial_inner(frame, parsed).unwrap_or(false)
}

fn complete_partial_inner(frame: &mut [u8], parsed: &ParsedFrame) -> Option<bool> {
    let l4 = parsed.l4?;
    if l4.fragment {
        return Some(false);
    }
    let (field_at, len) = match l4.protocol {
        ip_proto::TCP => (TCP_CHECKSUM_OFFSET, l4.len),
        ip_proto::UDP => {
            let udp_len = usize::from(read_u16(frame, l4.offset + 4)?);
            (UDP_CHECKSUM_OFFSET, udp_len.min(l4.len))
        }
        _ => return Some(false),
    };
    let l3 = usize::from(parsed.l3_offset);
    // Both addresses are contiguous in either header: sum them as one array.
    let addr_sum = match parsed.l3 {
        L3Kind::Ipv4 => sum_array::<8>(frame.get(l3 + 12..)?.first_chunk()?),
        L3Kind::Ipv6 => sum_array::<32>(frame.get(l3 + 8..)?.first_chunk()?),
        L3Kind::Other => return Some(false),
    };
    let pseudo = addr_sum + u64::from(l4.protocol) + len as u64;

    let segment = frame.get_mut(l4.offset..l4.offset + len)?;
    if read_u16(segment, field_at)? != fold(pseudo) {
        return Some(false);
    }
    write_u16(segment, field_at, 0)?;
    let mut full = !fold(sum_be_words(segment, pseudo));
    if l4.protocol == ip_proto::UDP && full == 0 {
        // 0 means "no checksum" in UDP; the computed value 0 is sent as all ones.
        full = 0xffff;
    }
    write_u16(segment, field_at, full)?;
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_be_words(&data, 0)), 0xddf2);
        // The same bytes with an odd tail.
        let odd = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6];
        assert_eq!(
            fold(sum_be_words(&odd, 0)),
            fold(0x0001 + 0xf203 + 0xf4f5 + 0xf600)
        );
    }

    #[test]
    fn word_sum_matches_16_bit_reference() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut reference = 0u64;
            for pair in data.chunks(2) {
                let hi = u64::from(pair[0]) << 8;
                let lo = pair.get(1).map_or(0, |&b| u64::from(b));
                reference += hi | lo;
            }
            assert_eq!(fold(sum_be_words(&data, 0)), fold(reference), "len {len}");
        }
    }
}
