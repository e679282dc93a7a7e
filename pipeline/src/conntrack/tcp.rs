//! The fields of a TCP segment conntrack needs, read from the frame once at
//! the L4 offset with every bound checked: flags, sequence and
//! acknowledgement numbers, window, payload length, and the options that
//! window tracking uses (window scale and SACK-permitted on SYNs, the
//! highest SACK block edge on any segment).

use crate::frame::PacketMeta;

/// The TCP flag byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer valid.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// True if every bit of `bits` is set.
    #[inline]
    pub const fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    /// True if the combination is one a TCP sends (Linux's
    /// `tcp_valid_flags`, PSH, ECE and CWR allowed with any): SYN, SYN-ACK,
    /// RST, RST-ACK, FIN-ACK, ACK, each with or without URG where it makes
    /// sense. NULL, FIN without ACK, SYN-FIN, SYN-RST and "Christmas tree"
    /// segments are not.
    pub const fn valid(self) -> bool {
        const SYN: u8 = TcpFlags::SYN;
        const ACK: u8 = TcpFlags::ACK;
        const RST: u8 = TcpFlags::RST;
        const FIN: u8 = TcpFlags::FIN;
        const URG: u8 = TcpFlags::URG;
        let f = self.0 & !(TcpFlags::PSH | TcpFlags::ECE | TcpFlags::CWR);
        f == SYN
            || f == SYN | URG
            || f == SYN | ACK
            || f == RST
            || f == RST | ACK
            || f == FIN | ACK
            || f == FIN | ACK | URG
            || f == ACK
            || f == ACK | URG
    }
}

/// Why a TCP header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpParseError {
    /// Fewer bytes than a TCP header (20 bytes, or what its data offset says).
    #[error("TCP header cut short")]
    Truncated,
    /// A data offset below 5 words.
    #[error("TCP data offset below 5")]
    BadDataOffset,
}

/// What conntrack reads from one TCP segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSegment {
    /// Its flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK).
    pub ack: u32,
    /// Advertised window, unscaled as on the wire.
    pub window: u16,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// True if the header carries options (Linux resets a direction's
    /// window-scale and SACK state from a SYN only when it has some).
    pub has_options: bool,
    /// Window scale option of a SYN (clamped to 14, RFC 7323); `None` on
    /// other segments or when absent.
    pub wscale: Option<u8>,
    /// SACK-permitted option of a SYN.
    pub sack_permitted: bool,
    /// Highest right edge of the SACK blocks, if the segment has any.
    pub sack: Option<u32>,
}

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WINDOW: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TIMESTAMP: u8 = 8;
/// Largest window shift (RFC 7323).
pub const MAX_WSCALE: u8 = 14;

impl TcpSegment {
    /// A segment with these fields and no options (tests, tools).
    pub const fn new(flags: u8, seq: u32, ack: u32, window: u16, payload_len: u32) -> Self {
        TcpSegment {
            flags: TcpFlags(flags),
            seq,
            ack,
            window,
            payload_len,
            has_options: false,
            wscale: None,
            sack_permitted: false,
            sack: None,
        }
    }

    /// Reads a segment from `l4`: the TCP header and payload exactly, as the
    /// IP header bounds them (trailing Ethernet padding excluded).
    pub fn parse(l4: &[u8]) -> Result<TcpSegment, TcpParseError> {
        let Some(h) = l4.first_chunk::<20>() else {
            return Err(TcpParseError::Truncated);
        };
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < 20 {
            return Err(TcpParseError::BadDataOffset);
        }
        let Some(options) = l4.get(20..header_len) else {
            return Err(TcpParseError::Truncated);
        };
        let flags = TcpFlags(h[13]);
        let mut segment = TcpSegment {
            flags,
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            window: u16::from_be_bytes([h[14], h[15]]),
            payload_len: (l4.len() - header_len) as u32,
            has_options: !options.is_empty(),
            wscale: None,
            sack_permitted: false,
            sack: None,
        };
        segment.read_options(options);
        Ok(segment)
    }

    /// Reads the segment of frame `meta` describes (its L4 offset and
    /// length as the parse stage found them).
    pub fn from_frame(frame: &[u8], meta: &PacketMeta) -> Result<TcpSegment, TcpParseError> {
        let start = usize::from(meta.l4_offset);
        let end = start + usize::from(meta.l4_len);
        Self::parse(frame.get(start..end).ok_or(TcpParseError::Truncated)?)
    }

    /// Walks the options as Linux's `tcp_options` and `tcp_sack` do: stops
    /// at the end-of-list option, a length below 2 or an option running past
    /// the header.
    fn read_options(&mut self, options: &[u8]) {
        // The common case on established flows: only timestamps.
        if options.len() == 12 && options[..4] == [OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10] {
            return;
        }
        let syn = self.flags.has(TcpFlags::SYN);
        let mut at = 0;
        while let Some(&kind) = options.get(at) {
            match kind {
                OPT_EOL => return,
                OPT_NOP => at += 1,
                _ => {
                    let Some(&len) = options.get(at + 1) else {
                        return;
                    };
                    let len = usize::from(len);
                    let Some(body) = options.get(at + 2..at + len.max(2)) else {
                        return;
                    };
                    if len < 2 {
                        return;
                    }
                    match (kind, len) {
                        (OPT_WINDOW, 3) if syn => {
                            self.wscale = Some(body[0].min(MAX_WSCALE));
                        }
                        (OPT_SACK_PERM, 2) if syn => self.sack_permitted = true,
                        (OPT_SACK, _) if len >= 10 && (len - 2) % 8 == 0 => {
                            for block in body.chunks_exact(8) {
                                let right =
                                    u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                                self.sack = Some(match self.sack {
                                    Some(s) if !super::tcp_conn::after(right, s) => s,
                                    _ => right,
                                });
                            }
                        }
                        _ => {}
                    }
                    at += len;
                }
            }
        }
    }

    /// The sequence number after this segment: payload, SYN and FIN each
    /// take sequence space.
    #[inline]
    pub const fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(self.flags.has(TcpFlags::SYN) as u32)
            .wrapping_add(self.flags.has(TcpFlags::FIN) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, options: &[u8], payload: usize) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0..2].copy_from_slice(&1234u16.to_be_bytes());
        h[2..4].copy_from_slice(&80u16.to_be_bytes());
        h[4..8].copy_from_slice(&1000u32.to_be_bytes());
        h[8..12].copy_from_slice(&2000u32.to_be_bytes());
        h[12] = ((20 + options.len()) / 4 * 16) as u8;
        h[13] = flags;
        h[14..16].copy_from_slice(&512u16.to_be_bytes());
        h.extend_from_slice(options);
        h.resize(h.len() + payload, 0xab);
        h
    }

    #[test]
    fn reads_fields_and_syn_options() {
        // MSS, SACK-permitted, timestamps, NOP, window scale 15 (clamped).
        let options = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 15,
        ];
        let s = TcpSegment::parse(&header(TcpFlags::SYN, &options, 0)).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.window, s.payload_len),
            (1000, 2000, 512, 0)
        );
        assert_eq!(s.wscale, Some(14));
        assert!(s.sack_permitted && s.has_options);
        assert_eq!(s.end(), 1001);
        // Not a SYN: the window scale means nothing and is not read.
        let s = TcpSegment::parse(&header(TcpFlags::ACK, &options, 10)).unwrap();
        assert_eq!(
            (s.wscale, s.sack_permitted, s.payload_len),
            (None, false, 10)
        );
        assert_eq!(s.end(), 1010);
    }

    #[test]
    fn reads_the_highest_sack_edge() {
        let mut options = vec![1, 1, 5, 26];
        for (l, r) in [(10u32, 20u32), (u32::MAX - 5, 3), (30, 40)] {
            options.extend_from_slice(&l.to_be_bytes());
            options.extend_from_slice(&r.to_be_bytes());
        }
        let s = TcpSegment::parse(&header(TcpFlags::ACK, &options, 0)).unwrap();
        assert_eq!(s.sack, Some(40));
    }

    #[test]
    fn refuses_short_headers_and_survives_bad_options() {
        assert_eq!(TcpSegment::parse(&[0; 19]), Err(TcpParseError::Truncated));
        let mut h = header(TcpFlags::ACK, &[], 0);
        h[12] = 0x40;
        assert_eq!(TcpSegment::parse(&h), Err(TcpParseError::BadDataOffset));
        h[12] = 0x60;
        assert_eq!(TcpSegment::parse(&h), Err(TcpParseError::Truncated));
        // Options whose lengths lie: read up to the lie, no panic.
        for options in [
            [3u8, 0, 0, 0],
            [3, 1, 0, 0],
            [3, 200, 0, 0],
            [5, 3, 0, 0],
            [1, 1, 1, 3],
        ] {
            let s = TcpSegment::parse(&header(TcpFlags::SYN, &options, 0)).unwrap();
            assert_eq!(s.sack, None);
        }
    }

    #[test]
    fn valid_flag_combinations_are_linux_s() {
        use TcpFlags as F;
        for ok in [
            F::SYN,
            F::SYN | F::ACK,
            F::SYN | F::ECE | F::CWR,
            F::ACK | F::PSH,
            F::FIN | F::ACK,
            F::RST,
            F::RST | F::ACK,
            F::ACK | F::URG,
        ] {
            assert!(TcpFlags(ok).valid(), "{ok:#x}");
        }
        for bad in [
            0,
            F::FIN,
            F::SYN | F::FIN,
            F::SYN | F::RST,
            F::FIN | F::PSH | F::URG,
            F::RST | F::FIN | F::ACK,
            0x3f,
        ] {
            assert!(!TcpFlags(bad).valid(), "{bad:#x}");
        }
    }
}
