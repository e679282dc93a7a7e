//! The MAC learning table: (bridge domain, MAC) -> port, with aging.
//!
//! It is a fixed-size open-addressing table (linear probing, backward-shift
//! deletion, so no tombstones) allocated once in [`MacTable::new`]: learning and
//! lookup never allocate, never rehash and never grow, whatever a sender does.
//! Slots are twice the entry limit (load <= 50 %), so a probe almost always ends
//! in the first or second slot.
//!
//! Keys are hashed once per operation with a randomly keyed folded multiply
//! (the construction of foldhash/ahash's fallback): a few cycles, and since the
//! keys are secret per table a sender cannot choose MACs that pile up in one
//! probe chain. SipHash (std's `RandomState`) would cost several times more per
//! packet for no gain at this table's bounded size.

use crate::frame::{DomainId, PortId, Timestamp};
use crate::keyed_hash::KeyHasher;
use crate::mac::MacAddr;
use serde::Serialize;

/// What [`MacTable::learn`] did, so the caller can count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new (or aged-out) address was recorded.
    New,
    /// Known on the same port: its age was reset.
    Refreshed {
        /// When the address had been seen before this frame.
        previous: Timestamp,
    },
    /// Known on another port: the station moved and is re-learned at once.
    Moved {
        /// The port it was learned on before.
        from: PortId,
    },
    /// The table is full of live entries: the address was not learned (its
    /// frames are flooded instead).
    TableFull,
}

/// One learned address, as an fdb dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FdbEntry {
    /// Bridge domain the address was learned in.
    pub domain: DomainId,
    /// The station's MAC.
    pub mac: MacAddr,
    /// Port the station sits behind.
    pub port: PortId,
    /// When a frame from it was last seen.
    pub last_seen: Timestamp,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: u64,
    last_seen: u64,
    port: PortId,
    used: bool,
}

/// Packs a domain and a MAC into one word: domain in the top 16 bits.
#[cfg(test)]
#[inline]
fn pack(domain: DomainId, mac: MacAddr) -> u64 {
    pack_u64(domain, mac.to_u64())
}

/// Packs a domain and a MAC word (low 48 bits) into one key.
#[inline]
fn pack_u64(domain: DomainId, mac: u64) -> u64 {
    (u64::from(domain) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
fn unpack(key: u64) -> (DomainId, MacAddr) {
    ((key >> 48) as DomainId, MacAddr::from_u64(key))
}

/// Bounded, aging map (domain, MAC) -> port; see the module docs for the layout.
///
/// Semantics: an entry older than `aging_ns` is expired and behaves as absent for
/// [`lookup`](Self::lookup) and [`learn`](Self::learn), but keeps its slot (and
/// counts in [`len`](Self::len)) until [`sweep`](Self::sweep) removes it or a new
/// address replaces it while the table is full.
#[derive(Clone, Debug)]
pub struct MacTable {
    slots: Box<[Slot]>,
    mask: usize,
    len: usize,
    max_entries: usize,
    aging_ns: u64,
    hasher: KeyHasher,
    aged: u64,
    /// Where the incremental sweep goes on (see [`sweep_step`](Self::sweep_step)).
    sweep_cursor: usize,
}

impl MacTable {
    /// Largest entry limit honoured. Slots are allocated up front (2 per entry,
    /// 24 bytes each), so this caps the table at 48 MiB; larger requests are
    /// clamped and [`capacity`](Self::capacity) reports the effective limit.
    pub const MAX_CAPACITY: usize = 1 << 20;

    /// A table for at most `max_entries` addresses (clamped to
    /// [`MAX_CAPACITY`](Self::MAX_CAPACITY)) that forgets an address `aging_ns`
    /// after its last frame. Allocates all its memory now; hash keys are random.
    pub fn new(max_entries: usize, aging_ns: u64) -> Self {
        Self::with_hasher(max_entries, aging_ns, KeyHasher::random())
    }

    /// Like [`new`](Self::new) but with hash keys derived from `seed`, for
    /// reproducible tests and benchmarks. Do not use it on live traffic: known keys
    /// let a sender pick colliding MACs.
    pub fn with_seed(max_entries: usize, aging_ns: u64, seed: u64) -> Self {
        Self::with_hasher(max_entries, aging_ns, KeyHasher::from_seed(seed))
    }

    fn with_hasher(max_entries: usize, aging_ns: u64, hasher: KeyHasher) -> Self {
        let max_entries = max_entries.min(Self::MAX_CAPACITY);
        // At least one slot always stays empty, which ends every probe.
        let slots = (max_entries * 2).next_power_of_two().max(16);
        MacTable {
            slots: vec![Slot::default(); slots].into_boxed_slice(),
            mask: slots - 1,
            sweep_cursor: 0,
            len: 0,
            max_entries,
            aging_ns,
            hasher,
            aged: 0,
        }
    }

    /// Most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The aging time in nanoseconds.
    pub fn aging_ns(&self) -> u64 {
        self.aging_ns
    }

    /// Entries removed or replaced because they aged out, since creation (for
    /// stats).
    pub fn aged_total(&self) -> u64 {
        self.aged
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (self.hasher.hash(key) as usize) & self.mask
    }

    #[inline]
    fn is_expired(&self, slot: &Slot, now: Timestamp) -> bool {
        now.saturating_since(Timestamp(slot.last_seen)) > self.aging_ns
    }

    /// Records that `mac` was seen as a source on `port` in `domain` at `now`.
    ///
    /// A known live address is refreshed, or moved at once if it shows up on
    /// another port. A new address takes a free slot; when the table is full it
    /// replaces an expired entry on its probe path if there is one, and is
    /// otherwise not learned (`TableFull`). One hash, no allocation.
    #[inline]
    pub fn learn(
        &mut self,
        domain: DomainId,
        mac: MacAddr,
        port: PortId,
        now: Timestamp,
    ) -> LearnOutcome {
        self.learn_packed(domain, mac.to_u64(), port, now)
    }

    /// Applies what another worker learned: like [`learn`](Self::learn), except that
    /// a live local entry seen more recently than `at` is kept, so a delayed event
    /// never undoes a newer local observation (a station that moved back).
    pub fn apply_learned(
        &mut self,
        domain: DomainId,
        mac: MacAddr,
        port: PortId,
        at: Timestamp,
    ) -> LearnOutcome {
        let key = pack_u64(domain, mac.to_u64());
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if !slot.used {
                break;
            }
            if slot.key == key {
                if slot.last_seen > at.0 && !self.is_expired(&slot, at) {
                    return LearnOutcome::Refreshed {
                        previous: Timestamp(slot.last_seen),
                    };
                }
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.learn(domain, mac, port, at)
    }

    /// [`learn`](Self::learn) with the MAC as [`MacAddr::to_u64`] gives it, so the
    /// L2 stage can read addresses straight from the header as words.
    #[inline]
    pub(crate) fn learn_packed(
        &mut self,
        domain: DomainId,
        mac: u64,
        port: PortId,
        now: Timestamp,
    ) -> LearnOutcome {
        let key = pack_u64(domain, mac);
        let mut i = self.home(key);
        let mut expired_on_path: Option<usize> = None;
        loop {
            let slot = self.slots[i];
            if !slot.used {
                break;
            }
            if slot.key == key {
                let expired = self.is_expired(&slot, now);
                let entry = &mut self.slots[i];
                let outcome = if expired {
                    self.aged += 1;
                    LearnOutcome::New
                } else if entry.port == port {
                    LearnOutcome::Refreshed {
                        previous: Timestamp(entry.last_seen),
                    }
                } else {
                    LearnOutcome::Moved { from: entry.port }
                };
                entry.port = port;
                entry.last_seen = now.0;
                return outcome;
            }
            if expired_on_path.is_none() && self.is_expired(&slot, now) {
                expired_on_path = Some(i);
            }
            i = (i + 1) & self.mask;
        }
        let target = if self.len < self.max_entries {
            self.len += 1;
            i
        } else if let Some(old) = expired_on_path {
            // Overwriting keeps the slot occupied, so other probe chains through it
            // stay intact; the new key is reachable since `old` is on its path.
            self.aged += 1;
            old
        } else {
            return LearnOutcome::TableFull;
        };
        self.slots[target] = Slot {
            key,
            last_seen: now.0,
            port,
            used: true,
        };
        LearnOutcome::New
    }

    /// The port `mac` was last seen on in `domain`, unless unknown or expired.
    /// One hash, no allocation, no mutation (readers never write).
    #[inline]
    pub fn lookup(&self, domain: DomainId, mac: MacAddr, now: Timestamp) -> Option<PortId> {
        self.lookup_packed(domain, mac.to_u64(), now)
    }

    /// [`lookup`](Self::lookup) with the MAC as a word (see `learn_packed`).
    #[inline]
    pub(crate) fn lookup_packed(
        &self,
        domain: DomainId,
        mac: u64,
        now: Timestamp,
    ) -> Option<PortId> {
        let key = pack_u64(domain, mac);
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            if !slot.used {
                return None;
            }
            if slot.key == key {
                return (!self.is_expired(slot, now)).then_some(slot.port);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes every expired entry; returns how many. Run it periodically off the
    /// packet path (it walks every slot).
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        let aging_ns = self.aging_ns;
        let removed = self.retain(|s| now.saturating_since(Timestamp(s.last_seen)) <= aging_ns);
        self.aged += removed as u64;
        removed
    }

    /// Sweeps the next `budget` slots (from where the last step stopped) for
    /// expired entries; returns how many it removed. The worker calls it a
    /// little every turn, so aging never stalls a turn the way walking the whole
    /// table at once would. An entry that the backward shift of a removal moves
    /// behind the cursor is caught on the next pass.
    pub fn sweep_step(&mut self, now: Timestamp, budget: usize) -> usize {
        let aging_ns = self.aging_ns;
        let mut removed = 0;
        let mut scanned = 0;
        let mut guard = 0;
        while scanned < budget.min(self.slots.len()) && guard < 2 * self.slots.len() {
            guard += 1;
            let i = self.sweep_cursor & self.mask;
            let slot = self.slots[i];
            if slot.used && now.saturating_since(Timestamp(slot.last_seen)) > aging_ns {
                self.remove_at(i);
                removed += 1;
                // Slot i may now hold an entry shifted back from later in its
                // chain: look at it again.
                continue;
            }
            self.sweep_cursor = (i + 1) & self.mask;
            scanned += 1;
        }
        self.aged += removed as u64;
        removed
    }

    /// Slots in the table (the sweep's full pass).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Forgets every address learned on `port` (port removed or moved to another
    /// network); returns how many.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        self.retain(|s| s.port != port)
    }

    /// Forgets every address of `domain` (network deleted); returns how many.
    pub fn remove_domain(&mut self, domain: DomainId) -> usize {
        self.retain(|s| unpack(s.key).0 != domain)
    }

    /// Every held entry (expired ones not yet swept included), in no particular
    /// order, for an fdb dump.
    pub fn iter(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        self.slots.iter().filter(|s| s.used).map(|s| {
            let (domain, mac) = unpack(s.key);
            FdbEntry {
                domain,
                mac,
                port: s.port,
                last_seen: Timestamp(s.last_seen),
            }
        })
    }

    /// Keeps only entries for which `keep` is true; returns how many it removed.
    ///
    /// The walk starts at an empty slot so that no probe chain wraps past the
    /// start: backward-shift deletion then only moves entries from slots not yet
    /// visited into the current one, which is re-examined.
    fn retain(&mut self, mut keep: impl FnMut(&Slot) -> bool) -> usize {
        let n = self.slots.len();
        let Some(start) = self.slots.iter().position(|s| !s.used) else {
            return 0; // Unreachable: load never exceeds 50 %.
        };
        let mut removed = 0;
        let mut step = 0;
        while step < n {
            let i = (start + step) & self.mask;
            let slot = self.slots[i];
            if slot.used && !keep(&slot) {
                self.remove_at(i);
                removed += 1;
                // Re-examine slot i: an entry from later in the chain may now sit here.
            } else {
                step += 1;
            }
        }
        removed
    }

    /// Empties slot `hole` and shifts later entries of its probe chain back so
    /// every key stays reachable from its home slot without tombstones.
    fn remove_at(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let slot = self.slots[j];
            if !slot.used {
                break;
            }
            let home = self.home(slot.key);
            // The entry may fill the hole iff the hole lies on its path home..=j.
            let home_to_j = j.wrapping_sub(home) & self.mask;
            let hole_to_j = j.wrapping_sub(hole) & self.mask;
            if home_to_j >= hole_to_j {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGING: u64 = 10;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn applied_events_never_undo_a_newer_local_entry() {
        let mut t = MacTable::new(8, 1_000);
        assert_eq!(t.learn(1, mac(1), 3, Timestamp(500)), LearnOutcome::New);
        // A remote worker saw the station on port 4 earlier: stale, ignored.
        t.apply_learned(1, mac(1), 4, Timestamp(400));
        assert_eq!(t.lookup(1, mac(1), Timestamp(500)), Some(3));
        // A newer remote sighting on port 4 moves it.
        assert_eq!(
            t.apply_learned(1, mac(1), 4, Timestamp(600)),
            LearnOutcome::Moved { from: 3 }
        );
        assert_eq!(t.lookup(1, mac(1), Timestamp(600)), Some(4));
        // Unknown stations are learned as usual.
        assert_eq!(
            t.apply_learned(1, mac(2), 5, Timestamp(600)),
            LearnOutcome::New
        );
    }

    #[test]
    fn learn_lookup_refresh_move() {
        let mut t = MacTable::new(8, AGING);
        let t0 = Timestamp(100);
        assert_eq!(t.learn(1, mac(1), 3, t0), LearnOutcome::New);
        assert_eq!(t.lookup(1, mac(1), t0), Some(3));
        assert_eq!(t.lookup(2, mac(1), t0), None, "domains are separate");
        assert_eq!(
            t.learn(1, mac(1), 3, Timestamp(105)),
            LearnOutcome::Refreshed { previous: t0 }
        );
        assert_eq!(
            t.learn(1, mac(1), 4, Timestamp(106)),
            LearnOutcome::Moved { from: 3 }
        );
        assert_eq!(t.lookup(1, mac(1), Timestamp(106)), Some(4));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn aging_and_sweep() {
        let mut t = MacTable::new(8, AGING);
        t.learn(0, mac(1), 1, Timestamp(0));
        assert_eq!(t.lookup(0, mac(1), Timestamp(AGING)), Some(1));
        assert_eq!(t.lookup(0, mac(1), Timestamp(AGING + 1)), None);
        assert_eq!(t.len(), 1, "expired entries stay until swept");
        assert_eq!(t.sweep(Timestamp(AGING + 1)), 1);
        assert!(t.is_empty());
        assert_eq!(t.aged_total(), 1);
        // Re-learning an expired entry counts as new.
        t.learn(0, mac(2), 1, Timestamp(0));
        assert_eq!(t.learn(0, mac(2), 2, Timestamp(50)), LearnOutcome::New);
    }

    #[test]
    fn full_table_stops_learning() {
        let mut t = MacTable::new(2, AGING);
        assert_eq!(t.learn(0, mac(1), 1, Timestamp(0)), LearnOutcome::New);
        assert_eq!(t.learn(0, mac(2), 1, Timestamp(0)), LearnOutcome::New);
        assert_eq!(t.learn(0, mac(3), 1, Timestamp(0)), LearnOutcome::TableFull);
        assert_eq!(t.lookup(0, mac(3), Timestamp(0)), None);
        // Known addresses still refresh and move when full.
        assert_eq!(
            t.learn(0, mac(1), 2, Timestamp(1)),
            LearnOutcome::Moved { from: 1 }
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.capacity(), 2);
    }

    #[test]
    fn full_table_replaces_expired_entry_on_probe_path() {
        let mut t = MacTable::with_seed(1, AGING, 42);
        t.learn(0, mac(1), 1, Timestamp(0));
        let home = t.home(pack(0, mac(1)));
        // Find another address with the same home slot.
        let other = (2..=255u8)
            .map(mac)
            .find(|m| t.home(pack(0, *m)) == home)
            .expect("some address shares the home slot");
        assert_eq!(t.learn(0, other, 2, Timestamp(5)), LearnOutcome::TableFull);
        let later = Timestamp(AGING + 1);
        assert_eq!(t.learn(0, other, 2, later), LearnOutcome::New);
        assert_eq!(t.lookup(0, other, later), Some(2));
        assert_eq!(t.lookup(0, mac(1), Timestamp(0)), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.aged_total(), 1);
    }

    #[test]
    fn remove_port_and_domain() {
        let mut t = MacTable::new(16, AGING);
        for n in 0..10u8 {
            t.learn(u16::from(n % 2), mac(n), u16::from(n % 3), Timestamp(0));
        }
        let on_port0 = t.iter().filter(|e| e.port == 0).count();
        assert_eq!(t.remove_port(0), on_port0);
        assert!(t.iter().all(|e| e.port != 0));
        let in_domain1 = t.iter().filter(|e| e.domain == 1).count();
        assert_eq!(t.remove_domain(1), in_domain1);
        assert!(t.iter().all(|e| e.domain != 1));
        for e in t.iter() {
            assert_eq!(t.lookup(e.domain, e.mac, Timestamp(0)), Some(e.port));
        }
    }

    #[test]
    fn capacity_is_clamped_and_zero_works() {
        let t = MacTable::new(usize::MAX, AGING);
        assert_eq!(t.capacity(), MacTable::MAX_CAPACITY);
        let mut z = MacTable::new(0, AGING);
        assert_eq!(z.learn(0, mac(1), 1, Timestamp(0)), LearnOutcome::TableFull);
        assert_eq!(z.lookup(0, mac(1), Timestamp(0)), None);
    }

    #[test]
    fn sequential_macs_spread_over_slots() {
        // Typical locally administered MACs differ in the last bytes only; the keyed
        // hash must still spread them so probes stay short.
        let mut t = MacTable::with_seed(4096, AGING, 7);
        for n in 0..4096u64 {
            let m = MacAddr::from_u64(0x0200_0000_0000 | n);
            assert_eq!(t.learn(0, m, 1, Timestamp(0)), LearnOutcome::New);
        }
        let mut total_probe = 0usize;
        for s in t.slots.iter().enumerate().filter(|(_, s)| s.used) {
            let home = t.home(s.1.key);
            total_probe += s.0.wrapping_sub(home) & t.mask;
        }
        let mean = total_probe as f64 / 4096.0;
        assert!(mean < 2.0, "mean displacement {mean}");
    }
}
