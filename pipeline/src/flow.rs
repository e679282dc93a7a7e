//! The flow hash the parse stage stores in every [`crate::PacketMeta`]: one
//! cheap, well-mixed 32-bit value per frame, so flow tables (conntrack, NAT),
//! load spreading and sampling never hash the headers again.

use std::net::Ipv4Addr;

/// Mixes two 64-bit key words into 32 bits (a multiply-xorshift finaliser, as
/// in splitmix64): every input bit affects every output bit.
#[inline]
pub const fn mix(k1: u64, k2: u64) -> u32 {
    let mut h = k1 ^ k2.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h ^ (h >> 32)) as u32
}

/// The flow hash of an IPv4 5-tuple (ports 0 for protocols without ports;
/// ICMP echo uses its identifier as the source port). Direction matters: the
/// reply of a flow hashes differently.
#[inline]
pub const fn ipv4_flow_hash(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    src_port: u16,
    dst_port: u16,
) -> u32 {
    let k1 =
        ((u32::from_be_bytes(src.octets()) as u64) << 32) | u32::from_be_bytes(dst.octets()) as u64;
    let k2 = ((protocol as u64) << 32) | ((src_port as u64) << 16) | dst_port as u64;
    mix(k1, k2)
}

/// The flow hash of an IPv6 flow: both addresses folded to 64 bits each, then
/// as for IPv4.
#[inline]
pub fn ipv6_flow_hash(
    src: &[u8; 16],
    dst: &[u8; 16],
    protocol: u8,
    src_port: u16,
    dst_port: u16,
) -> u32 {
    let fold = |a: &[u8; 16]| {
        let (hi, lo) = a.split_at(8);
        let hi: [u8; 8] = hi.try_into().unwrap_or([0; 8]);
        let lo: [u8; 8] = lo.try_into().unwrap_or([0; 8]);
        u64::from_be_bytes(hi) ^ u64::from_be_bytes(lo).rotate_left(17)
    };
    let k1 = fold(src) ^ fold(dst).rotate_left(32);
    let k2 = (1u64 << 56) | (u64::from(protocol) << 32) | (u64::from(src_port) << 16);
    mix(k1, k2 | u64::from(dst_port))
}

/// The flow hash of a non-IP frame: its two MACs and EtherType.
#[inline]
pub fn l2_flow_hash(macs: &[u8; 12], ethertype: u16) -> u32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3] = *macs;
    let k1 = u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
    let k2 = (2u64 << 56)
        | (u64::from(u32::from_be_bytes([b0, b1, b2, b3])) << 16)
        | u64::from(ethertype);
    mix(k1, k2)
}
