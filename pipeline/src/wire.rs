//! Zero-copy header views over untrusted frame bytes, in the style of
//! smoltcp-wire: each view checks every length it relies on once, in
//! `new_checked`, and holds fixed-size array references afterwards, so no
//! accessor can index out of bounds or panic whatever the bytes are.
//!
//! [`parse_frame`] walks Ethernet, up to two VLAN tags, IPv4/IPv6 and the
//! TCP/UDP header and maps every malformation to a [`DropReason`], so bad frames
//! are dropped and counted at the door instead of confusing later stages.

use crate::drop_reason::DropReason;
use crate::mac::MacAddr;

/// EtherType values the parser understands.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP (passed through as non-IP).
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol / IPv6 next-header numbers the parser understands.
pub mod ip_proto {
    /// IPv6 hop-by-hop options extension header.
    pub const HOPOPT: u8 = 0;
    /// ICMP (for IPv4).
    pub const ICMP: u8 = 1;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// IPv6 destination options extension header.
    pub const IPV6_OPTS: u8 = 60;
}

/// Length of an Ethernet II header.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q/802.1ad tag (TCI plus the next EtherType).
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of a TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Most VLAN tags the parser looks through (802.1ad outer plus 802.1Q inner).
pub const MAX_VLAN_TAGS: u8 = 2;
/// Most IPv6 extension headers walked before the next header is taken as opaque,
/// so a crafted chain cannot make parsing cost unbounded.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

#[inline]
const fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// The Ethernet II header of a frame.
#[derive(Clone, Copy, Debug)]
pub struct EthernetHeader<'a> {
    header: &'a [u8; ETH_HEADER_LEN],
    payload: &'a [u8],
}

impl<'a> EthernetHeader<'a> {
    /// Views `frame`'s Ethernet header; fewer than 14 bytes is a runt.
    #[inline]
    pub fn new_checked(frame: &'a [u8]) -> Result<Self, DropReason> {
        let (header, payload) = frame.split_first_chunk().ok_or(DropReason::Runt)?;
        Ok(EthernetHeader { header, payload })
    }

    /// Destination MAC: what forwarding looks up.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        let h = self.header;
        MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]])
    }

    /// Source MAC: what learning records.
    #[inline]
    pub fn src(&self) -> MacAddr {
        let h = self.header;
        MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]])
    }

    /// The outer EtherType (possibly a VLAN TPID).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.header[12], self.header[13])
    }

    /// Bytes after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// One 802.1Q/802.1ad tag as it follows a VLAN TPID.
#[derive(Clone, Copy, Debug)]
pub struct VlanTag<'a> {
    tag: &'a [u8; VLAN_TAG_LEN],
    payload: &'a [u8],
}

impl<'a> VlanTag<'a> {
    /// Views the tag at the start of `bytes`; a cut tag is `TruncatedVlan`.
    #[inline]
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, DropReason> {
        let (tag, payload) = bytes.split_first_chunk().ok_or(DropReason::TruncatedVlan)?;
        Ok(VlanTag { tag, payload })
    }

    /// The 12-bit VLAN id.
    #[inline]
    pub fn vid(&self) -> u16 {
        be16(self.tag[0], self.tag[1]) & 0x0fff
    }

    /// The EtherType of what follows the tag.
    #[inline]
    pub fn inner_ethertype(&self) -> u16 {
        be16(self.tag[2], self.tag[3])
    }

    /// Bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// An IPv4 header whose lengths were checked against the bytes at hand.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Header<'a> {
    fixed: &'a [u8; IPV4_MIN_HEADER_LEN],
    header_len: usize,
    payload: &'a [u8],
}

impl<'a> Ipv4Header<'a> {
    /// Views the IPv4 header at the start of `bytes` (the L3 part of a frame).
    ///
    /// Checks: at least 20 bytes and the IHL's worth (`TruncatedIpv4`), version 4,
    /// IHL >= 5, `ihl*4 <= total_len <= bytes.len()` (`BadIpv4Header`). Bytes past
    /// `total_len` (Ethernet padding) are ignored.
    #[inline]
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, DropReason> {
        let fixed: &[u8; IPV4_MIN_HEADER_LEN] =
            bytes.first_chunk().ok_or(DropReason::TruncatedIpv4)?;
        if fixed[0] >> 4 != 4 {
            return Err(DropReason::BadIpv4Header);
        }
        let header_len = usize::from(fixed[0] & 0x0f) * 4;
        if header_len < IPV4_MIN_HEADER_LEN {
            return Err(DropReason::BadIpv4Header);
        }
        if header_len > bytes.len() {
            return Err(DropReason::TruncatedIpv4);
        }
        let total_len = usize::from(be16(fixed[2], fixed[3]));
        if total_len < header_len || total_len > bytes.len() {
            return Err(DropReason::BadIpv4Header);
        }
        let payload = bytes
            .get(header_len..total_len)
            .ok_or(DropReason::BadIpv4Header)?;
        Ok(Ipv4Header {
            fixed,
            header_len,
            payload,
        })
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The total length field: header plus payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.fixed[2], self.fixed[3])
    }

    /// The protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.fixed[9]
    }

    /// True if this is any fragment (more-fragments set or a non-zero offset):
    /// its payload is not a whole L4 segment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.fixed[6], self.fixed[7]) & 0x3fff != 0
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 4] {
        let h = self.fixed;
        [h[12], h[13], h[14], h[15]]
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 4] {
        let h = self.fixed;
        [h[16], h[17], h[18], h[19]]
    }

    /// The payload as bounded by `total_len` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// A fixed IPv6 header whose payload length was checked against the bytes at hand.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Header<'a> {
    fixed: &'a [u8; IPV6_HEADER_LEN],
    payload: &'a [u8],
}

impl<'a> Ipv6Header<'a> {
    /// Views the IPv6 header at the start of `bytes`: fewer than 40 bytes is
    /// `TruncatedIpv6`; a wrong version or a payload length beyond the bytes is
    /// `BadIpv6Header`.
    #[inline]
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, DropReason> {
        let (fixed, rest): (&[u8; IPV6_HEADER_LEN], _) =
            bytes.split_first_chunk().ok_or(DropReason::TruncatedIpv6)?;
        if fixed[0] >> 4 != 6 {
            return Err(DropReason::BadIpv6Header);
        }
        let payload_len = usize::from(be16(fixed[4], fixed[5]));
        let payload = rest.get(..payload_len).ok_or(DropReason::BadIpv6Header)?;
        Ok(Ipv6Header { fixed, payload })
    }

    /// The payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.fixed[4], self.fixed[5])
    }

    /// The first next-header value (an extension header or the L4 protocol).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.fixed[6]
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 16] {
        addr16(self.fixed, 8)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 16] {
        addr16(self.fixed, 24)
    }

    /// The payload as bounded by the payload length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Copies the 16-byte address at `start` out of a fixed IPv6 header (callers
/// pass the constant offsets 8 and 24, always in range).
#[inline]
fn addr16(header: &[u8; IPV6_HEADER_LEN], start: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    if let Some(s) = header.get(start..start + 16) {
        a.copy_from_slice(s);
    }
    a
}

/// Where the upper-layer header of an IPv6 packet starts, after its extension
/// headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6UpperLayer {
    /// The final next-header value (the L4 protocol, or an extension header
    /// beyond [`MAX_IPV6_EXT_HEADERS`] left opaque).
    pub protocol: u8,
    /// Offset of the upper-layer header inside the IPv6 payload.
    pub offset: usize,
    /// True if a fragment header says this is not a whole datagram.
    pub fragment: bool,
}

/// Walks the hop-by-hop, routing, destination-options and fragment extension
/// headers of an IPv6 payload; an extension header cut short by the payload
/// length is `BadIpv6Header`.
pub fn ipv6_upper_layer(next_header: u8, payload: &[u8]) -> Result<Ipv6UpperLayer, DropReason> {
    let mut protocol = next_header;
    let mut offset = 0usize;
    let mut fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let ext = payload.get(offset..).unwrap_or(&[]);
        match protocol {
            ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => {
                let [next, len_units] = *ext.first_chunk().ok_or(DropReason::BadIpv6Header)?;
                let len = (usize::from(len_units) + 1) * 8;
                if len > ext.len() {
                    return Err(DropReason::BadIpv6Header);
                }
                protocol = next;
                offset += len;
            }
            ip_proto::IPV6_FRAG => {
                let h: &[u8; 8] = ext.first_chunk().ok_or(DropReason::BadIpv6Header)?;
                // Offset (13 bits) and M flag: anything but 0/0 is a real fragment.
                if be16(h[2], h[3]) & 0xfff9 != 0 {
                    fragment = true;
                }
                protocol = h[0];
                offset += 8;
            }
            _ => break,
        }
    }
    Ok(Ipv6UpperLayer {
        protocol,
        offset,
        fragment,
    })
}

/// A TCP header whose data offset was checked against the L4 length.
#[derive(Clone, Copy, Debug)]
pub struct TcpHeader<'a> {
    fixed: &'a [u8; TCP_MIN_HEADER_LEN],
}

impl<'a> TcpHeader<'a> {
    /// Views the TCP header at the start of `l4` (the segment as bounded by the IP
    /// length): under 20 bytes or a header beyond `l4` is `TruncatedL4`, a data
    /// offset below 5 is `BadTcpHeader`.
    #[inline]
    pub fn new_checked(l4: &'a [u8]) -> Result<Self, DropReason> {
        let fixed: &[u8; TCP_MIN_HEADER_LEN] = l4.first_chunk().ok_or(DropReason::TruncatedL4)?;
        let header_len = usize::from(fixed[12] >> 4) * 4;
        if header_len < TCP_MIN_HEADER_LEN {
            return Err(DropReason::BadTcpHeader);
        }
        if header_len > l4.len() {
            return Err(DropReason::TruncatedL4);
        }
        Ok(TcpHeader { fixed })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.fixed[0], self.fixed[1])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.fixed[2], self.fixed[3])
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.fixed[12] >> 4) * 4
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed[16], self.fixed[17])
    }
}

/// Offset of the checksum field inside a TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;
/// Offset of the checksum field inside a UDP header.
pub const UDP_CHECKSUM_OFFSET: usize = 6;

/// A UDP header whose length field was checked against the L4 length.
#[derive(Clone, Copy, Debug)]
pub struct UdpHeader<'a> {
    fixed: &'a [u8; UDP_HEADER_LEN],
}

impl<'a> UdpHeader<'a> {
    /// Views the UDP header at the start of `l4`: under 8 bytes or a length field
    /// beyond `l4` is `TruncatedL4`; a length field below 8 is `BadUdpHeader`. A
    /// length field shorter than `l4` is accepted (receivers trim to it).
    #[inline]
    pub fn new_checked(l4: &'a [u8]) -> Result<Self, DropReason> {
        let fixed: &[u8; UDP_HEADER_LEN] = l4.first_chunk().ok_or(DropReason::TruncatedL4)?;
        let len = usize::from(be16(fixed[4], fixed[5]));
        if len < UDP_HEADER_LEN {
            return Err(DropReason::BadUdpHeader);
        }
        if len > l4.len() {
            return Err(DropReason::TruncatedL4);
        }
        Ok(UdpHeader { fixed })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.fixed[0], self.fixed[1])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.fixed[2], self.fixed[3])
    }

    /// The length field: header plus data.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.fixed[4], self.fixed[5])
    }

    /// True if the length field says no data (a bare header); never true for a
    /// length below the header, which `new_checked` rejects.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == UDP_HEADER_LEN
    }

    /// The checksum field (0 over IPv4 means "none").
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.fixed[6], self.fixed[7])
    }
}

/// Which network layer a frame carries, so later stages know how to read the
/// bytes at `l3_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Kind {
    /// Not IP (ARP, LLC, unknown EtherTypes): forwarded at L2 only.
    Other,
    /// IPv4, header checked.
    Ipv4,
    /// IPv6, fixed and extension headers checked.
    Ipv6,
}

/// Where the L4 segment of an IP packet sits in the frame, so checksum
/// completion, ACLs and NAT find it without re-parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Info {
    /// IP protocol number (IPv4 protocol or final IPv6 next header).
    pub protocol: u8,
    /// Offset of the L4 header from the start of the frame.
    pub offset: usize,
    /// L4 length as given by the IP header (padding excluded).
    pub len: usize,
    /// True for IP fragments: the L4 header was not validated (it may be absent)
    /// and the segment is not whole.
    pub fragment: bool,
}

/// What [`parse_frame`] learned about a frame: offsets for later stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedFrame {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// Number of VLAN tags looked through (0..=2).
    pub vlan_count: u8,
    /// VLAN id of the outer tag (0 when untagged).
    pub vlan_id: u16,
    /// The EtherType after the VLAN tags.
    pub ethertype: u16,
    /// Offset of the L3 header (after Ethernet and VLAN tags); at most 22.
    pub l3_offset: u16,
    /// Which L3 header sits at `l3_offset`.
    pub l3: L3Kind,
    /// The L4 segment, for IPv4 and IPv6 only.
    pub l4: Option<L4Info>,
}

/// Checks the L4 header lengths of TCP and UDP; other protocols and fragments
/// pass unchecked.
#[inline]
fn check_l4(protocol: u8, l4: &[u8], fragment: bool) -> Result<(), DropReason> {
    if fragment {
        return Ok(());
    }
    match protocol {
        ip_proto::TCP => TcpHeader::new_checked(l4).map(|_| ()),
        ip_proto::UDP => UdpHeader::new_checked(l4).map(|_| ()),
        _ => Ok(()),
    }
}

/// Parses an untrusted frame down to its L4 header. Never panics; every
/// malformation is returned as the [`DropReason`] to count it under.
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame, DropReason> {
    let eth = EthernetHeader::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    let mut l3_offset = ETH_HEADER_LEN;
    let mut vlan_count = 0u8;
    let mut vlan_id = 0u16;
    while vlan_count < MAX_VLAN_TAGS
        && (ethertype == ethertype::VLAN || ethertype == ethertype::QINQ)
    {
        let tag = VlanTag::new_checked(rest)?;
        if vlan_count == 0 {
            vlan_id = tag.vid();
        }
        ethertype = tag.inner_ethertype();
        rest = tag.payload();
        l3_offset += VLAN_TAG_LEN;
        vlan_count += 1;
    }

    let (l3, l4) = match ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Header::new_checked(rest)?;
            let fragment = ip.is_fragment();
            check_l4(ip.protocol(), ip.payload(), fragment)?;
            let l4 = L4Info {
                protocol: ip.protocol(),
                offset: l3_offset + ip.header_len(),
                len: ip.payload().len(),
                fragment,
            };
            (L3Kind::Ipv4, Some(l4))
        }
        ethertype::IPV6 => {
            let ip = Ipv6Header::new_checked(rest)?;
            let upper = ipv6_upper_layer(ip.next_header(), ip.payload())?;
            let segment = ip.payload().get(upper.offset..).unwrap_or(&[]);
            check_l4(upper.protocol, segment, upper.fragment)?;
            let l4 = L4Info {
                protocol: upper.protocol,
                offset: l3_offset + IPV6_HEADER_LEN + upper.offset,
                len: segment.len(),
                fragment: upper.fragment,
            };
            (L3Kind::Ipv6, Some(l4))
        }
        _ => (L3Kind::Other, None),
    };

    Ok(ParsedFrame {
        dst: eth.dst(),
        src: eth.src(),
        vlan_count,
        vlan_id,
        ethertype,
        // At most 14 + 2 * 4 = 22: the cast cannot truncate.
        l3_offset: l3_offset as u16,
        l3,
        l4,
    })
}
