//! The one list of reasons a frame is dropped anywhere in Switchyard, counted per
//! port so an operator can tell a malformed sender from a full ring.

use serde::ser::{Serialize, SerializeMap, Serializer};

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was dropped. Every drop in the switch is counted under one of these.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case name used in stats output.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
        }
    };
}

drop_reasons! {
    Runt => "runt", "Shorter than an Ethernet header (14 bytes).";
    TruncatedVlan => "truncated_vlan", "A VLAN tag announced but cut short.";
    TruncatedIpv4 => "truncated_ipv4", "IPv4 ethertype but fewer bytes than the IPv4 header needs.";
    BadIpv4Header => "bad_ipv4_header", "IPv4 header with a wrong version, IHL below 5 or total length beyond the frame.";
    TruncatedIpv6 => "truncated_ipv6", "IPv6 ethertype but fewer bytes than the fixed IPv6 header.";
    BadIpv6Header => "bad_ipv6_header", "IPv6 header with a wrong version, a payload length beyond the frame or an extension header cut short.";
    TruncatedL4 => "truncated_l4", "TCP/UDP header cut short by the frame or IP length.";
    BadTcpHeader => "bad_tcp_header", "TCP data offset below 5 (a header shorter than 20 bytes is impossible).";
    BadUdpHeader => "bad_udp_header", "UDP length field below the 8-byte header.";
    InvalidSourceMac => "invalid_source_mac", "Source MAC is multicast/broadcast or all zeros: never a real station.";
    NoNetwork => "no_network", "The ingress port belongs to no network.";
    SameSegment => "same_segment", "Destination was learned on the ingress port itself: never sent back out.";
    Oversize => "oversize", "Larger than the port's frame buffer.";
    NoFreeFrame => "no_free_frame", "No free buffer to copy a flooded frame into.";
    TxRingFull => "tx_ring_full", "The output port's transmit ring had no room.";
    TxError => "tx_error", "The kernel refused the transmit kick.";
    HandoffFull => "handoff_full", "The worker owning the output port had no room to take the frame over.";
    NoFrameRoom => "no_frame_room", "A stage had to grow the frame (push a header, build a reply) beyond its buffer's headroom or tailroom.";
    NoGateway => "no_gateway", "Addressed to the network's gateway, which no stage answers yet in this build.";
    UnresolvedNextHop => "unresolved_next_hop", "Routed, but no stage gave it the next hop's L2 header.";
    SpoofedSourceMac => "spoofed_source_mac", "From a port bound to a station (an attached container) with another Ethernet source or ARP sender MAC.";
    SpoofedSourceIp => "spoofed_source_ip", "From a port bound to a station with another IPv4 source or ARP sender address.";
    TruncatedArp => "truncated_arp", "An ARP frame from a guarded port too short to check its sender.";
    NoRoute => "no_route", "Sent to the gateway for an address no network (or route) covers.";
    Isolated => "isolated", "Routed between two networks of which at least one is isolated (the default).";
    TtlExpired => "ttl_expired", "Its TTL ran out at the gateway (answered with ICMP time exceeded).";
    NatPortsExhausted => "nat_ports_exhausted", "A new flow to masquerade found no free source port in the range for its destination.";
    MtuExceeded => "mtu_exceeded", "Routed, but longer than the egress network's MTU: answered with ICMP fragmentation-needed when DF is set; the switch does not fragment.";
    CtInvalid => "ct_invalid", "Conntrack marked it INVALID (out of window, bad flags, no connection for a non-SYN, ...), as Linux would.";
    CtTableFull => "ct_table_full", "A new flow found the conntrack table full with nothing evictable.";
}

/// One counter per [`DropReason`]; a plain array so counting is one add.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl DropCounters {
    /// Counts one drop.
    #[inline]
    pub fn count(&mut self, reason: DropReason) {
        self.counts[reason as usize] += 1;
    }

    /// Counts `n` drops of one reason.
    #[inline]
    pub fn count_n(&mut self, reason: DropReason, n: u64) {
        self.counts[reason as usize] += n;
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another set of counters into this one (aggregating workers).
    pub fn add(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// Non-zero reasons with their counts, for logs.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

impl Serialize for DropCounters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(DropReason::COUNT))?;
        for reason in DropReason::ALL {
            map.serialize_entry(reason.name(), &self.get(*reason))?;
        }
        map.end()
    }
}
