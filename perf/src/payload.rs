//! The probe every generated frame carries in its UDP payload: a magic, the
//! measurement it belongs to, a sequence number and the CLOCK_MONOTONIC time
//! at which the generator handed it to the kernel.
//!
//! 16 bytes, so it fits the smallest frame (60 bytes without FCS leave 18
//! bytes of UDP payload). The sink reads it to compute one-way latency (both
//! ends run in this process and read the same clock), to count loss and
//! reordering by sequence number, and to ignore frames of earlier
//! measurements still in flight (`run` differs).
//!
//! Layout (network byte order): magic `u16` | run `u16` | seq `u32` | tx time ns `u64`.

/// Ethernet (14) + IPv4 without options (20) + UDP (8): where our frames'
/// UDP payload starts.
pub const UDP_PAYLOAD_OFFSET: usize = 14 + 20 + 8;

/// Offset of the UDP checksum field in our frames.
pub const UDP_CHECKSUM_OFFSET: usize = 14 + 20 + 6;

/// Bytes the probe takes at the start of the UDP payload.
pub const PROBE_LEN: usize = 16;

/// First two payload bytes of every probe ("SY").
pub const PROBE_MAGIC: u16 = 0x5359;

/// What one frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Which measurement (point) sent it; the sink counts only its own.
    pub run: u16,
    /// Position in the point's sending order, from 0.
    pub seq: u32,
    /// CLOCK_MONOTONIC ns when the generator queued it for transmission.
    pub tx_ns: u64,
}

impl Probe {
    /// Writes the probe into the first [`PROBE_LEN`] bytes of `payload`.
    /// Returns false (writing nothing) when `payload` is too short.
    pub fn encode(&self, payload: &mut [u8]) -> bool {
        let Some(out) = payload.get_mut(..PROBE_LEN) else {
            return false;
        };
        out[0..2].copy_from_slice(&PROBE_MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.run.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.tx_ns.to_be_bytes());
        true
    }

    /// Reads a probe from the start of a UDP payload; `None` when it is too
    /// short or does not start with [`PROBE_MAGIC`].
    pub fn decode(payload: &[u8]) -> Option<Probe> {
        let b = payload.get(..PROBE_LEN)?;
        if u16::from_be_bytes([b[0], b[1]]) != PROBE_MAGIC {
            return None;
        }
        Some(Probe {
            run: u16::from_be_bytes([b[2], b[3]]),
            seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            tx_ns: u64::from_be_bytes(b[8..16].try_into().ok()?),
        })
    }

    /// Writes the probe into a whole frame built by [`crate::frames`]
    /// (Ethernet, IPv4 without options, UDP).
    pub fn write_to_frame(&self, frame: &mut [u8]) -> bool {
        frame
            .get_mut(UDP_PAYLOAD_OFFSET..)
            .is_some_and(|payload| self.encode(payload))
    }

    /// Reads the probe of a received frame: checks it is IPv4 without
    /// options carrying UDP before looking at the payload, so unrelated
    /// traffic (ARP, anything the kernel sends) is never misread.
    pub fn read_from_frame(frame: &[u8]) -> Option<Probe> {
        if frame.len() < UDP_PAYLOAD_OFFSET + PROBE_LEN {
            return None;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let version_ihl = frame[14];
        let protocol = frame[14 + 9];
        if ethertype != 0x0800 || version_ihl != 0x45 || protocol != 17 {
            return None;
        }
        Probe::decode(&frame[UDP_PAYLOAD_OFFSET..])
    }
}

/// Turns a frame from [`crate::frames`] into a probe template: clears the
/// UDP checksum (0 means "none" over IPv4), since the payload changes with
/// every frame sent and recomputing the sum per frame would cost the
/// generator time the kernel's bridge never checks anyway.
pub fn make_template(frame: &mut [u8]) -> bool {
    match frame.get_mut(UDP_CHECKSUM_OFFSET..UDP_CHECKSUM_OFFSET + 2) {
        Some(sum) => {
            sum.fill(0);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{test_mac, udp_flows};

    #[test]
    fn probe_round_trips_through_bytes() {
        let probe = Probe {
            run: 0xbeef,
            seq: 0x0102_0304,
            tx_ns: 0x1122_3344_5566_7788,
        };
        let mut buf = [0u8; 18];
        assert!(probe.encode(&mut buf));
        assert_eq!(&buf[..2], &[0x53, 0x59]);
        assert_eq!(&buf[4..8], &[1, 2, 3, 4], "network byte order");
        assert_eq!(Probe::decode(&buf), Some(probe));
        assert_eq!(&buf[16..], &[0, 0], "nothing past the probe is touched");
    }

    #[test]
    fn short_or_foreign_payloads_are_refused() {
        let probe = Probe {
            run: 1,
            seq: 2,
            tx_ns: 3,
        };
        assert!(!probe.encode(&mut [0u8; PROBE_LEN - 1]));
        assert_eq!(Probe::decode(&[0u8; PROBE_LEN - 1]), None);
        assert_eq!(Probe::decode(&[0u8; PROBE_LEN]), None, "no magic");
    }

    #[test]
    fn probes_fit_the_smallest_frame_and_survive_a_parser() {
        for len in [60, 64, 512, 1514] {
            let mut frame = udp_flows(test_mac(1, 1), test_mac(2, 1), len, 1)
                .unwrap()
                .remove(0);
            assert!(make_template(&mut frame));
            let probe = Probe {
                run: 7,
                seq: u32::MAX,
                tx_ns: 123_456_789,
            };
            assert!(probe.write_to_frame(&mut frame));
            assert_eq!(frame.len(), len, "the probe never changes the size");
            assert_eq!(Probe::read_from_frame(&frame), Some(probe));
            let parsed = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
            let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
                panic!("not UDP");
            };
            assert_eq!(udp.checksum(), 0, "checksum cleared: none over IPv4");
            assert_eq!(Probe::decode(udp.payload()), Some(probe));
        }
    }

    #[test]
    fn non_udp_frames_are_not_misread() {
        let mut frame = udp_flows(test_mac(1, 1), test_mac(2, 1), 64, 1)
            .unwrap()
            .remove(0);
        Probe {
            run: 1,
            seq: 1,
            tx_ns: 1,
        }
        .write_to_frame(&mut frame);
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(Probe::read_from_frame(&arp), None);
        let mut tcp = frame.clone();
        tcp[14 + 9] = 6;
        assert_eq!(Probe::read_from_frame(&tcp), None);
        assert_eq!(Probe::read_from_frame(&frame[..50]), None);
    }
}
