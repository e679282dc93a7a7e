//! A randomly keyed folded-multiply hash for the switch's tables (the
//! construction of foldhash/ahash's fallback): a few cycles per key, and since
//! the keys are secret per table a sender cannot choose addresses that pile up
//! in one probe chain. SipHash (std's `RandomState`) would cost several times
//! more per packet for no gain at these tables' bounded sizes.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Secret multiply keys of one table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    /// Keys from the process's random source.
    pub(crate) fn random() -> Self {
        let s = RandomState::new();
        KeyHasher {
            k0: s.hash_one(0x5377_6974_6368_7961u64),
            k1: s.hash_one(0x7264_4d61_6354_6162u64) | 1,
        }
    }

    /// Keys from `seed` (reproducible tests).
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut state = seed;
        KeyHasher {
            k0: splitmix64(&mut state),
            k1: splitmix64(&mut state) | 1,
        }
    }

    /// The hash of one 64-bit key.
    #[inline]
    pub(crate) fn hash(&self, key: u64) -> u64 {
        let p = u128::from(key ^ self.k0) * u128::from(self.k1);
        (p as u64) ^ ((p >> 64) as u64)
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// [`KeyHasher`] as a `std` hash builder, for `HashMap`s keyed by one integer
/// (IPv4 addresses, prefixes): the map is allocated at its bound up front, so
/// lookups and inserts on the hot path neither allocate nor pay for SipHash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedState(KeyHasher);

impl KeyedState {
    /// Fresh secret keys.
    pub(crate) fn random() -> Self {
        KeyedState(KeyHasher::random())
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedWordHasher;
    fn build_hasher(&self) -> KeyedWordHasher {
        KeyedWordHasher {
            keys: self.0,
            acc: 0,
        }
    }
}

/// One hashing pass of [`KeyedState`]: folds each written word into the
/// accumulator with the secret multiply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedWordHasher {
    keys: KeyHasher,
    acc: u64,
}

impl Hasher for KeyedWordHasher {
    fn finish(&self) -> u64 {
        self.acc
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.acc = self.keys.hash(self.acc.rotate_left(5) ^ n);
    }
}
