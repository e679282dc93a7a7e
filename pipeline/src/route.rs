//! The IPv4 routing table: longest-prefix match from a destination address to
//! what the route says (a network, the uplink's next hop, ...).
//!
//! One hash map per prefix length in use, looked at from the longest length
//! down: a lookup costs one hash probe per distinct length (a node has a few:
//! its networks' /24s or /16s, the uplink's subnet, the default route), not per
//! route, so it stays flat however many networks there are. Built by the
//! control thread, read by the workers without locks (a whole new table is
//! published on change); lookups never allocate.

use crate::keyed_hash::KeyedState;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A route's prefix was not a valid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The length is over 32.
    #[error("prefix length {0} is longer than 32")]
    LengthTooLong(u8),
    /// The address has bits set past the prefix length (`10.0.0.1/24`).
    #[error("{addr}/{len} has host bits set (the network is {network}/{len})")]
    HostBitsSet {
        /// The address given.
        addr: Ipv4Addr,
        /// The prefix length given.
        len: u8,
        /// The network the prefix names.
        network: Ipv4Addr,
    },
}

/// The mask of a prefix length (0..=32).
#[inline]
pub fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Longest-prefix-match table from IPv4 prefixes to `T`; see the module docs.
#[derive(Clone, Debug)]
pub struct RouteTable<T> {
    /// Routes per prefix length, indexed by length.
    by_len: Vec<HashMap<u32, T, KeyedState>>,
    /// Lengths with at least one route, longest first.
    lengths: Vec<u8>,
    hasher: KeyedState,
}

impl<T: Clone> Default for RouteTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        let hasher = KeyedState::random();
        RouteTable {
            by_len: (0..=32).map(|_| HashMap::with_hasher(hasher)).collect(),
            lengths: Vec::new(),
            hasher,
        }
    }

    /// Adds or replaces the route for `prefix/len`; returns the one it replaced.
    pub fn insert(
        &mut self,
        prefix: Ipv4Addr,
        len: u8,
        target: T,
    ) -> Result<Option<T>, RouteError> {
        let key = Self::key(prefix, len)?;
        let previous = self.by_len[len as usize].insert(key, target);
        if !self.lengths.contains(&len) {
            self.lengths.push(len);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok(previous)
    }

    /// Removes the route for exactly `prefix/len`; returns it.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<Option<T>, RouteError> {
        let key = Self::key(prefix, len)?;
        let removed = self.by_len[len as usize].remove(&key);
        if self.by_len[len as usize].is_empty() {
            self.lengths.retain(|&l| l != len);
            // Give back the memory of a length no longer used.
            self.by_len[len as usize] = HashMap::with_hasher(self.hasher);
        }
        Ok(removed)
    }

    /// The route of the longest prefix that contains `dst`, with its length.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<(u8, &T)> {
        let addr = u32::from(dst);
        self.lengths.iter().find_map(|&len| {
            self.by_len[len as usize]
                .get(&(addr & prefix_mask(len)))
                .map(|t| (len, t))
        })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.lengths
            .iter()
            .map(|&l| self.by_len[l as usize].len())
            .sum()
    }

    /// True without routes.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Every route as (prefix, length, target), longest prefixes first (dumps).
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, &T)> + '_ {
        self.lengths.iter().flat_map(move |&len| {
            self.by_len[len as usize]
                .iter()
                .map(move |(&k, t)| (Ipv4Addr::from(k), len, t))
        })
    }

    fn key(prefix: Ipv4Addr, len: u8) -> Result<u32, RouteError> {
        if len > 32 {
            return Err(RouteError::LengthTooLong(len));
        }
        let addr = u32::from(prefix);
        let network = addr & prefix_mask(len);
        if network != addr {
            return Err(RouteError::HostBitsSet {
                addr: prefix,
                len,
                network: Ipv4Addr::from(network),
            });
        }
        Ok(network)
    }
}
