//! The index of every entry's tuples: one open-addressing table (linear
//! probing, backward-shift deletion, so no tombstones and never a rehash)
//! allocated once at its bound, keyed by a secret-keyed hash of the tuple.
//!
//! A slot holds 32 bits of the key's hash and the value (entry index and
//! direction); the tuple itself is compared in the entry, which a hit reads
//! anyway. Slots are at least twice the most keys, so probes stay short
//! (about 1.5 slots for a hit, 2.5 for a miss at the bound) and one slot is
//! always empty, which ends every probe. Keys are secret per table (as in
//! `crate::mac_table`), so a sender cannot pick tuples that pile up in one
//! probe chain.

use super::key::Tuple;
use crate::keyed_hash::KeyHasher;

/// An empty slot's value.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u32,
    value: u32,
}

const FREE: Slot = Slot {
    hash: 0,
    value: EMPTY,
};

/// Tuple hash -> value, at most `max_keys` of them.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    slots: Box<[Slot]>,
    mask: usize,
    max_keys: usize,
    len: usize,
    hasher: KeyHasher,
}

impl Index {
    /// An index for at most `max_keys` keys (at most 2^31), allocated now.
    pub(crate) fn new(max_keys: usize, hasher: KeyHasher) -> Self {
        let slots = (max_keys.max(1) * 2).next_power_of_two();
        Index {
            slots: vec![FREE; slots].into_boxed_slice(),
            mask: slots - 1,
            max_keys: max_keys.max(1),
            len: 0,
            hasher,
        }
    }

    /// Bytes the index allocates for `max_keys` keys.
    pub(crate) fn bytes_for(max_keys: usize) -> usize {
        (max_keys.max(1) * 2).next_power_of_two() * std::mem::size_of::<Slot>()
    }

    /// The hash of `tuple` under this index's secret keys.
    #[inline]
    pub(crate) fn hash(&self, tuple: &Tuple) -> u32 {
        let (a, b) = tuple.words();
        self.hasher.hash(self.hasher.hash(a) ^ b) as u32
    }

    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value under `hash` for which `is_match` holds (it compares the
    /// tuple in the entry the value names).
    #[inline]
    pub(crate) fn find(&self, hash: u32, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot.value == EMPTY {
                return None;
            }
            if slot.hash == hash && is_match(slot.value) {
                return Some(slot.value);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Hints the CPU to fetch the slot `hash`'s probe starts at (a batch's
    /// lookups prefetch their slots before any of them reads one).
    #[inline]
    pub(crate) fn prefetch(&self, hash: u32) {
        switchyard_mem::prefetch(&self.slots[hash as usize & self.mask]);
    }

    /// The first value under `hash` (its tuple not compared): the entry a
    /// lookup of a tuple with this hash most likely ends at, to prefetch.
    #[inline]
    pub(crate) fn candidate(&self, hash: u32) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Adds `value` under `hash` (the caller checked the tuple is absent).
    /// False, and nothing added, when the index holds `max_keys` already.
    pub(crate) fn insert(&mut self, hash: u32, value: u32) -> bool {
        if self.len >= self.max_keys || value == EMPTY {
            return false;
        }
        let mut i = hash as usize & self.mask;
        while self.slots[i].value != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Slot { hash, value };
        self.len += 1;
        true
    }

    /// Removes the slot holding exactly `value` under `hash`, shifting the
    /// rest of its probe run back so that no tombstone is left.
    pub(crate) fn remove(&mut self, hash: u32, value: u32) -> bool {
        let mask = self.mask;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.value == EMPTY {
                return false;
            }
            if slot.value == value && slot.hash == hash {
                break;
            }
            i = (i + 1) & mask;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let slot = self.slots[j];
            if slot.value == EMPTY {
                break;
            }
            let home = slot.hash as usize & mask;
            // The slot may fill the hole if its home is not after the hole
            // on the way to it (cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = FREE;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn tuple(n: u32) -> Tuple {
        Tuple::udp(
            Ipv4Addr::from(n),
            (n % 7) as u16,
            Ipv4Addr::new(10, 0, 0, 1),
            53,
        )
    }

    #[test]
    fn matches_a_map_under_churn() {
        // A tiny index with a bad (constant-heavy) key set: long runs that
        // wrap around the end, removed from the middle.
        let mut index = Index::new(24, KeyHasher::from_seed(7));
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut state = 12345u64;
        for step in 0..20_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (state >> 33) as u32 % 40;
            let t = tuple(n);
            let h = index.hash(&t);
            let found = index.find(h, |v| v == n);
            assert_eq!(found, model.get(&n).copied(), "step {step}");
            if found.is_some() {
                assert!(index.remove(h, n));
                model.remove(&n);
            } else if index.insert(h, n) {
                model.insert(n, n);
            } else {
                assert_eq!(model.len(), 24);
            }
            assert_eq!(index.len(), model.len());
        }
    }
}
