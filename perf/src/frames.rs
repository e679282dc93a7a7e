//! Test frames: UDP over IPv4 over Ethernet, built with etherparse so every
//! header and checksum is right and a receiver never drops them as malformed.
//!
//! A frame's size here is the number of bytes handed to the kernel (Ethernet
//! header through payload, no FCS: veths carry none), so 64 means a 64-byte
//! buffer and 1514 a full 1500-byte-MTU frame.

use anyhow::{bail, Result};
use etherparse::PacketBuilder;

/// Smallest frame accepted: the Ethernet minimum without FCS.
pub const MIN_FRAME_LEN: usize = 60;

/// Largest frame accepted: Ethernet header plus a 1500-byte MTU.
pub const MAX_FRAME_LEN: usize = 1514;

/// Ethernet + IPv4 + UDP headers; the rest of a frame is UDP payload.
const HEADERS_LEN: usize = 14 + 20 + 8;

/// A locally administered unicast MAC (`02:53:59:<tag>:<index>`), so test
/// stations never collide with real hardware addresses.
pub const fn test_mac(tag: u8, index: u16) -> [u8; 6] {
    [0x02, 0x53, 0x59, tag, (index >> 8) as u8, index as u8]
}

/// Endpoints of one UDP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: [u8; 4],
    /// IPv4 destination.
    pub dst_ip: [u8; 4],
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port (the discard port: nothing answers it).
    pub dst_port: u16,
}

/// Builds one frame of exactly `len` bytes for `flow`.
pub fn udp_frame(flow: &Flow, len: usize) -> Result<Vec<u8>> {
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
        bail!("frame size {len} is outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN} bytes (Ethernet without FCS)");
    }
    let payload: Vec<u8> = (0..len - HEADERS_LEN).map(|i| i as u8).collect();
    let builder = PacketBuilder::ethernet2(flow.src_mac, flow.dst_mac)
        .ipv4(flow.src_ip, flow.dst_ip, 64)
        .udp(flow.src_port, flow.dst_port);
    let mut frame = Vec::with_capacity(len);
    builder.write(&mut frame, &payload)?;
    debug_assert_eq!(frame.len(), len);
    Ok(frame)
}

/// `count` frames of `len` bytes from `src_mac` to `dst_mac` that differ in their
/// UDP source port, so hash-based paths (RPS, conntrack later) see `count` flows.
pub fn udp_flows(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    len: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>> {
    (0..count)
        .map(|i| {
            let flow = Flow {
                src_mac,
                dst_mac,
                src_ip: [10, 83, 0, 1],
                dst_ip: [10, 83, 0, 2],
                src_port: 10_000 + (i % 50_000) as u16,
                dst_port: 9,
            };
            udp_frame(&flow, len)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_requested_size_and_parse() {
        for len in [MIN_FRAME_LEN, 64, 1500, MAX_FRAME_LEN] {
            let frames = udp_flows(test_mac(1, 1), test_mac(2, 1), len, 3).unwrap();
            for frame in &frames {
                assert_eq!(frame.len(), len);
                let parsed = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
                assert!(matches!(
                    parsed.transport,
                    Some(etherparse::TransportSlice::Udp(_))
                ));
            }
            assert_ne!(frames[0], frames[1], "flows differ");
        }
    }

    #[test]
    fn sizes_outside_ethernet_are_refused() {
        let flow = Flow {
            src_mac: test_mac(1, 1),
            dst_mac: test_mac(2, 1),
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: 1,
            dst_port: 9,
        };
        assert!(udp_frame(&flow, 59).is_err());
        assert!(udp_frame(&flow, 1515).is_err());
    }
}
