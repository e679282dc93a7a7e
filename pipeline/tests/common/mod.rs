//! Frame builders shared by the integration tests (etherparse does the encoding,
//! so the pipeline is checked against an independent implementation).
#![allow(dead_code)]

use etherparse::PacketBuilder;

/// A locally administered unicast MAC ending in `n`.
pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

pub const BROADCAST: [u8; 6] = [0xff; 6];
pub const MULTICAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];

pub const V4_SRC: [u8; 4] = [172, 30, 0, 2];
pub const V4_DST: [u8; 4] = [172, 30, 0, 3];
pub const V6_SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const V6_DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];

/// Ethernet + IPv4 + UDP with a correct checksum.
pub fn udp4(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(V4_SRC, V4_DST, 64)
        .udp(5000, 53);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet + IPv4 + TCP with a correct checksum.
pub fn tcp4(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(V4_SRC, V4_DST, 64)
        .tcp(40000, 80, 1234, 65535)
        .ack(99)
        .psh();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet + IPv6 + UDP with a correct checksum.
pub fn udp6(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv6(V6_SRC, V6_DST, 64)
        .udp(5000, 53);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet + IPv6 + TCP with a correct checksum.
pub fn tcp6(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv6(V6_SRC, V6_DST, 64)
        .tcp(40000, 80, 1234, 65535)
        .syn();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet + one 802.1Q tag + IPv4 + UDP.
pub fn udp4_vlan(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .single_vlan(42.try_into().unwrap())
        .ipv4(V4_SRC, V4_DST, 64)
        .udp(5000, 53);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet + two VLAN tags + IPv6 + TCP.
pub fn tcp6_qinq(src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .double_vlan(100.try_into().unwrap(), 42.try_into().unwrap())
        .ipv6(V6_SRC, V6_DST, 64)
        .tcp(40000, 80, 1, 1000);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// An ARP-ethertype frame (non-IP), padded to the Ethernet minimum.
pub fn arp(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut out = Vec::with_capacity(60);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&0x0806u16.to_be_bytes());
    out.resize(60, 0);
    out
}

/// Any valid frame from `src` to `dst`, for switching tests.
pub fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    udp4(src, dst, b"hello")
}

/// Reads the big-endian u16 at `at`.
pub fn get16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

/// Writes the big-endian u16 at `at`.
pub fn put16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
