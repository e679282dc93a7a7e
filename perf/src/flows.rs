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
//!
//! Two variants for the `nat` scenario: [`PortFlows::with_destinations`]
//! cycles the destination ports over fewer values (the published ports), and
//! [`PortFlows::fresh`] gives every frame a flow of its own (a new
//! connection per frame, 250 million pairs before any repeats), starting at
//! a point's own offset so no two points share a flow.

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
    destinations: usize,
    /// `Some(first)`: every frame a new flow, frame *k* flow `first + k`.
    fresh: Option<u64>,
}

/// Distinct pairs of [`PortFlows::fresh`]: every source port with every
/// destination port.
pub const FRESH_PAIRS: u64 = (MAX_FLOWS * DESTINATIONS) as u64;

impl PortFlows {
    /// Flows 0..`count`; fails outside 1..=[`MAX_FLOWS`].
    pub fn new(count: usize) -> Result<Self> {
        if !(1..=MAX_FLOWS).contains(&count) {
            bail!("flows must be in 1..={MAX_FLOWS}, not {count}");
        }
        Ok(PortFlows {
            count,
            destinations: DESTINATIONS,
            fresh: None,
        })
    }

    /// Flows 0..`count` whose destination ports cycle over the first
    /// `destinations` (flow *i* to `60000 + i mod destinations`): `count`
    /// flows over that many published ports. Fails outside
    /// 1..=[`MAX_FLOWS`] and 1..=5,000.
    pub fn with_destinations(count: usize, destinations: usize) -> Result<Self> {
        if !(1..=DESTINATIONS).contains(&destinations) {
            bail!("destination ports must be in 1..={DESTINATIONS}, not {destinations}");
        }
        Ok(PortFlows {
            destinations,
            ..Self::new(count)?
        })
    }

    /// A new flow per frame, frame *k* taking pair `first + k` (mod
    /// [`FRESH_PAIRS`]): source port `10000 + j mod 50000`, destination
    /// `60000 + (j / 50000) mod 5000`.
    pub fn fresh(first: u64) -> Self {
        PortFlows {
            count: MAX_FLOWS,
            destinations: DESTINATIONS,
            fresh: Some(first % FRESH_PAIRS),
        }
    }

    /// The first destination port flows go to, and how many there are.
    pub fn destination_ports(&self) -> (u16, usize) {
        (FIRST_DESTINATION_PORT, self.destinations)
    }

    /// How many flows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The flow frame `seq` of a point uses.
    #[inline]
    pub fn index(&self, seq: u64) -> usize {
        match self.fresh {
            Some(first) => ((first + seq) % FRESH_PAIRS) as usize,
            None => (seq % self.count as u64) as usize,
        }
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
        let (source, destination) = match self.fresh {
            Some(_) => (
                FIRST_SOURCE_PORT + (index % MAX_FLOWS) as u16,
                FIRST_DESTINATION_PORT + (index / MAX_FLOWS % DESTINATIONS) as u16,
            ),
            None => (
                FIRST_SOURCE_PORT + (index % MAX_FLOWS) as u16,
                FIRST_DESTINATION_PORT + (index % self.destinations) as u16,
            ),
        };
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
        assert!(PortFlows::with_destinations(10, 0).is_err());
        assert!(PortFlows::with_destinations(10, 5_001).is_err());
    }

    fn ports_of(flows: &PortFlows, seq: u64) -> (u16, u16) {
        let mut frame = crate::frames::udp_flows([2; 6], [4; 6], 64, 1)
            .unwrap()
            .remove(0);
        assert!(flows.write(&mut frame, flows.index(seq)));
        let off = UDP_PORTS_OFFSET;
        (
            u16::from_be_bytes([frame[off], frame[off + 1]]),
            u16::from_be_bytes([frame[off + 2], frame[off + 3]]),
        )
    }

    #[test]
    fn published_port_flows_and_fresh_flows() {
        let flows = PortFlows::with_destinations(10_000, 1_000).unwrap();
        let dsts: HashSet<u16> = (0..10_000).map(|s| ports_of(&flows, s).1).collect();
        assert_eq!(dsts.len(), 1_000);
        assert_eq!(dsts.iter().min(), Some(&60_000));
        assert_eq!(dsts.iter().max(), Some(&60_999));
        let fresh = PortFlows::fresh(7);
        let pairs: HashSet<(u16, u16)> = (0..120_000).map(|s| ports_of(&fresh, s)).collect();
        assert_eq!(pairs.len(), 120_000, "a new pair per frame");
        assert_eq!(ports_of(&fresh, 0), (10_007, 60_000));
        assert_eq!(ports_of(&fresh, 50_000 - 7), (10_000, 60_001));
    }
}
