//! Many stations at once: the MAC pairs the `macs` scenario cycles through.
//!
//! With one source/destination pair every frame hits the switch's one-entry
//! forwarding cache and the same MAC table slot, so a run says nothing about
//! a node with many containers. [`MacPairs`] gives `count` distinct pairs:
//! pair *i* goes from generator station *i* to sink station *i*, and frame
//! *k* of a point uses pair *k mod count*, so consecutive frames never share
//! a pair (for `count` > 1) and every station is seen once per `count`
//! frames. The MACs are computed from the index (no table to miss in), and
//! the generator writes them into each frame as it stamps the probe: 12
//! bytes, not covered by any checksum.

use anyhow::{bail, Result};

/// Most pairs a scenario may use: two stations per pair must fit the
/// switch's largest MAC table (2^20 entries) with room to spare.
pub const MAX_PAIRS: usize = 500_000;

/// `[switch] mac_table_size` of a config written without the scenario.
pub const DEFAULT_MAC_TABLE_SIZE: usize = 65_536;

/// Station index bits: three MAC bytes.
const INDEX_LIMIT: usize = 1 << 24;

/// Which end of a pair a station sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Behind the generator's port (the frames' sources).
    Generator,
    /// Behind the sink's port (the frames' destinations).
    Sink,
}

impl Side {
    fn tag(self) -> u8 {
        match self {
            Side::Generator => 0x01,
            Side::Sink => 0x02,
        }
    }
}

/// Station `index` of `side`: `02:5a:<side>:<index, 3 bytes>`, locally
/// administered unicast and distinct from the topology's own MACs
/// (`02:53:59:..`), so no real interface ever answers or collides.
pub fn station_mac(side: Side, index: usize) -> [u8; 6] {
    debug_assert!(index < INDEX_LIMIT);
    let i = index as u32;
    [
        0x02,
        0x5a,
        side.tag(),
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]
}

/// `count` source/destination pairs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacPairs {
    count: usize,
}

impl MacPairs {
    /// Pairs 0..`count`; fails outside 1..=[`MAX_PAIRS`].
    pub fn new(count: usize) -> Result<Self> {
        if !(1..=MAX_PAIRS).contains(&count) {
            bail!("MAC pairs must be in 1..={MAX_PAIRS}, not {count}");
        }
        Ok(MacPairs { count })
    }

    /// How many pairs.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The pair frame `seq` of a point uses.
    #[inline]
    pub fn index(&self, seq: u64) -> usize {
        (seq % self.count as u64) as usize
    }

    /// Writes pair `index`'s destination and source MACs into the Ethernet
    /// header of `frame`; false (writing nothing) when it is too short.
    #[inline]
    pub fn write(&self, frame: &mut [u8], index: usize) -> bool {
        let Some(header) = frame.get_mut(..12) else {
            return false;
        };
        header[..6].copy_from_slice(&station_mac(Side::Sink, index));
        header[6..].copy_from_slice(&station_mac(Side::Generator, index));
        true
    }

    /// The MAC table a switch needs to hold every station of these pairs
    /// (two per pair) at most half full beside a few others: the default
    /// size, or the next power of two above twice the stations.
    pub fn mac_table_size(&self) -> usize {
        DEFAULT_MAC_TABLE_SIZE.max((2 * self.count + 1024).next_power_of_two())
    }
}

/// The table size a daemon needs for the largest of `counts` (the default
/// when there are none).
pub fn mac_table_size_for(counts: &[usize]) -> usize {
    counts
        .iter()
        .filter_map(|&n| MacPairs::new(n).ok())
        .map(|p| p.mac_table_size())
        .max()
        .unwrap_or(DEFAULT_MAC_TABLE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn stations_are_distinct_local_unicast_and_not_the_topologys() {
        let mut seen = HashSet::new();
        for side in [Side::Generator, Side::Sink] {
            for i in (0..MAX_PAIRS).step_by(997).chain([MAX_PAIRS - 1]) {
                let mac = station_mac(side, i);
                assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
                assert_ne!(mac[..3], [0x02, 0x53, 0x59], "topology prefix");
                assert!(seen.insert(mac), "{mac:02x?} twice");
            }
        }
        assert_eq!(station_mac(Side::Sink, 0x01_02_03), [2, 0x5a, 2, 1, 2, 3]);
    }

    #[test]
    fn frames_cycle_through_every_pair() {
        let pairs = MacPairs::new(1000).unwrap();
        let mut frame = crate::frames::udp_flows([0; 6], [0; 6], 64, 1)
            .unwrap()
            .remove(0);
        let mut sources = HashSet::new();
        for seq in 0..3000u64 {
            let i = pairs.index(seq);
            assert!(pairs.write(&mut frame, i));
            assert_eq!(frame[..6], station_mac(Side::Sink, i));
            sources.insert(<[u8; 6]>::try_from(&frame[6..12]).unwrap());
            if seq > 0 {
                assert_ne!(pairs.index(seq - 1), i, "consecutive frames differ");
            }
        }
        assert_eq!(sources.len(), 1000);
        // The rest of the frame still parses as the UDP frame it was.
        let parsed = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        assert!(matches!(
            parsed.transport,
            Some(etherparse::TransportSlice::Udp(_))
        ));
        assert!(!pairs.write(&mut [0u8; 11], 0));
    }

    #[test]
    fn one_pair_repeats_and_bounds_are_checked() {
        let one = MacPairs::new(1).unwrap();
        assert_eq!(one.index(0), 0);
        assert_eq!(one.index(12345), 0);
        assert!(MacPairs::new(0).is_err());
        assert!(MacPairs::new(MAX_PAIRS + 1).is_err());
    }

    #[test]
    fn the_table_is_raised_only_when_the_stations_need_it() {
        assert_eq!(MacPairs::new(1).unwrap().mac_table_size(), 65_536);
        assert_eq!(MacPairs::new(1000).unwrap().mac_table_size(), 65_536);
        // 100,000 pairs are 200,000 stations: past the default 65,536.
        assert_eq!(MacPairs::new(100_000).unwrap().mac_table_size(), 262_144);
        assert!(MacPairs::new(MAX_PAIRS).unwrap().mac_table_size() <= 1 << 20);
        assert_eq!(mac_table_size_for(&[1, 100_000, 1000]), 262_144);
        assert_eq!(mac_table_size_for(&[]), 65_536);
    }
}
