//! Many UDP flows at once: the port pairs the `routed` scenario cycles
//! through.
//!
//! The generator's UMEM holds a few thousand frames, loaded from templates,
//! so templates alone cannot make 10,000 flows. [`PortFlows`] gives `count`
//! distinct UDP source/destination port pairs instead: flow *i* goes from
//! port `10000 + i` to port `60000 + i mod 5000`, and frame *k* of a point
//! uses flow *k mod count*, so consecutive frames never share a flow (for
//! `count` > 1) and every flow is seen once per `count` frames. The generator
//! writes the four port bytes into each frame as it stamps the probe; the
//! templates' UDP checksum is zero (none, see [`crate::payload`]), so no
//! checksum changes.
//!
//! With `count` = 1 every frame gets the same ports, written all the same,
//! so 1 and 10,000 flows cost the generator the same.

use crate::payload::UDP_CHECKSUM_OFFSET;
use anyhow::{bail, Result};

/// Most flows: source ports `10000..60000`.
pub const MAX_FLOWS: usize = 50_000;

/// Source port of flow 0.
const FIRST_SOURCE_PORT: u16 = 10_000;

/// Destination port of flow 0; destinations repeat every [`DESTINATIONS`].
const FIRST_DESTINATION_PORT: u16 = 60_000;

/// Distinct destination ports.
const DESTINATIONS: usize = 5_000;

/// Offset of the UDP source port in our frames (Ethernet + IPv4 without options).
const UDP_PORTS_OFFSET: usize = UDP_CHECKSUM_OFFSET - 6;

/// `count` UDP port pairs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortFlows {
    count: usize,
}

impl PortFlows {
    /// Flows 0..`count`; fails outside 1..=[`MAX_FLOWS`].
    pub fn new(count: usize) -> Result<Self> {
        if !(1..=MAX_FLOWS).contains(&count) {
            bail!("flows must be in 1..={MAX_FLOWS}, not {count}");
        }
        Ok(PortFlows { count })
    }

    /// How many flows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The flow frame `seq` of a point uses.
    #[inline]
    pub fn index(&self, seq: u64) -> usize {
        (seq % self.count as u64) as usize
    }

    /// Flow `index`'s source and destination ports.
    #[inline]
    pub fn ports(index: usize) -> (u16, u16) {
        (
            FIRST_SOURCE_PORT + (index % MAX_FLOWS) as u16,
            FIRST_DESTINATION_PORT + (index % DESTINATIONS) as u16,
        )
    }

    /// Writes flow `index`'s ports into the UDP header of `frame`; false
    /// (writing nothing) when it is too short.
    #[inline]
    pub fn write(&self, frame: &mut [u8], index: usize) -> bool {
        let Some(ports) = frame.get_mut(UDP_PORTS_OFFSET..UDP_PORTS_OFFSET + 4) else {
            return false;
        };
        let (source, destination) = Self::ports(index);
        ports[..2].copy_from_slice(&source.to_be_bytes());
        ports[2..].copy_from_slice(&destination.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn frames_cycle_through_distinct_port_pairs() {
        let flows = PortFlows::new(10_000).unwrap();
        let mut frame = crate::frames::udp_flows([2; 6], [4; 6], 64, 1)
            .unwrap()
            .remove(0);
        assert!(crate::payload::make_template(&mut frame));
        let mut pairs = HashSet::new();
        for seq in 0..30_000u64 {
            let i = flows.index(seq);
            assert!(flows.write(&mut frame, i));
            let parsed = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
            let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
                panic!("not UDP any more");
            };
            assert_eq!(
                (udp.source_port(), udp.destination_port()),
                PortFlows::ports(i)
            );
            assert_eq!(udp.checksum(), 0, "no checksum to update");
            pairs.insert((udp.source_port(), udp.destination_port()));
            if seq > 0 {
                assert_ne!(flows.index(seq - 1), i);
            }
        }
        assert_eq!(pairs.len(), 10_000);
        assert!(!flows.write(&mut [0u8; 37], 0));
    }

    #[test]
    fn bounds_are_checked_and_ports_stay_in_range() {
        assert!(PortFlows::new(0).is_err());
        assert!(PortFlows::new(MAX_FLOWS + 1).is_err());
        let one = PortFlows::new(1).unwrap();
        assert_eq!(one.index(12_345), 0);
        assert_eq!(PortFlows::ports(0), (10_000, 60_000));
        assert_eq!(PortFlows::ports(MAX_FLOWS - 1), (59_999, 64_999));
    }
}
