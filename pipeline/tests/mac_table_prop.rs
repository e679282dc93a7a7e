//! MacTable against a brute-force reference (a Vec of entries with the same
//! semantics) over random operation sequences.
//!
//! The one freedom the real table has: when full, a new address may replace an
//! expired entry if one sits on its probe path. The reference accepts either
//! outcome but checks that a replacement only ever evicts an expired entry.

use proptest::prelude::*;
use switchyard_pipeline::mac_table::LearnOutcome;
use switchyard_pipeline::{DomainId, MacAddr, MacTable, PortId, Timestamp};

const AGING: u64 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    domain: DomainId,
    mac: MacAddr,
    port: PortId,
    last_seen: u64,
}

#[derive(Debug)]
struct Reference {
    entries: Vec<Entry>,
    cap: usize,
    aged: u64,
}

impl Reference {
    fn expired(e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.last_seen) > AGING
    }

    fn find(&mut self, domain: DomainId, mac: MacAddr) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.domain == domain && e.mac == mac)
    }

    fn lookup(&self, domain: DomainId, mac: MacAddr, now: u64) -> Option<PortId> {
        self.entries
            .iter()
            .find(|e| e.domain == domain && e.mac == mac && !Self::expired(e, now))
            .map(|e| e.port)
    }

    /// Learns like the table; `real` is what the table answered and `real_set` its
    /// contents afterwards, used only to resolve the replacement freedom.
    fn learn(
        &mut self,
        domain: DomainId,
        mac: MacAddr,
        port: PortId,
        now: u64,
        real: LearnOutcome,
        real_set: &[Entry],
    ) -> LearnOutcome {
        if let Some(e) = self.find(domain, mac) {
            let outcome = if Self::expired(e, now) {
                LearnOutcome::New
            } else if e.port == port {
                LearnOutcome::Refreshed {
                    previous: switchyard_pipeline::Timestamp(e.last_seen),
                }
            } else {
                LearnOutcome::Moved { from: e.port }
            };
            e.port = port;
            e.last_seen = now;
            if outcome == LearnOutcome::New {
                self.aged += 1;
            }
            return outcome;
        }
        let new = Entry {
            domain,
            mac,
            port,
            last_seen: now,
        };
        if self.entries.len() < self.cap {
            self.entries.push(new);
            return LearnOutcome::New;
        }
        if real == LearnOutcome::New {
            // The table replaced something: it must have been expired.
            let gone: Vec<usize> = (0..self.entries.len())
                .filter(|&i| !real_set.contains(&self.entries[i]))
                .collect();
            assert_eq!(gone.len(), 1, "exactly one entry replaced");
            let victim = self.entries.remove(gone[0]);
            assert!(
                Self::expired(&victim, now),
                "replaced a live entry {victim:?}"
            );
            self.aged += 1;
            self.entries.push(new);
            return LearnOutcome::New;
        }
        LearnOutcome::TableFull
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(keep);
        before - self.entries.len()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Learn {
        domain: DomainId,
        mac: u8,
        port: PortId,
    },
    Lookup {
        domain: DomainId,
        mac: u8,
    },
    Advance(u64),
    Sweep,
    RemovePort(PortId),
    RemoveDomain(DomainId),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u16..3, 0u8..8, 0u16..4).prop_map(|(domain, mac, port)| Op::Learn { domain, mac, port }),
        3 => (0u16..3, 0u8..8).prop_map(|(domain, mac)| Op::Lookup { domain, mac }),
        4 => (0u64..=AGING).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => (0u16..4).prop_map(Op::RemovePort),
        1 => (0u16..3).prop_map(Op::RemoveDomain),
    ]
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn contents(t: &MacTable) -> Vec<Entry> {
    let mut v: Vec<Entry> = t
        .iter()
        .map(|e| Entry {
            domain: e.domain,
            mac: e.mac,
            port: e.port,
            last_seen: e.last_seen.0,
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_reference(
        cap in 0usize..10,
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut table = MacTable::with_seed(cap, AGING, seed);
        let mut reference = Reference { entries: Vec::new(), cap, aged: 0 };
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Learn { domain, mac: m, port } => {
                    let got = table.learn(domain, mac(m), port, Timestamp(now));
                    let set = contents(&table);
                    let want = reference.learn(domain, mac(m), port, now, got, &set);
                    prop_assert_eq!(got, want, "learn {:?}", op);
                }
                Op::Lookup { domain, mac: m } => {
                    prop_assert_eq!(
                        table.lookup(domain, mac(m), Timestamp(now)),
                        reference.lookup(domain, mac(m), now)
                    );
                }
                Op::Advance(dt) => now += dt,
                Op::Sweep => {
                    let removed = reference.retain(|e| !Reference::expired(e, now));
                    reference.aged += removed as u64;
                    prop_assert_eq!(table.sweep(Timestamp(now)), removed);
                }
                Op::RemovePort(p) => {
                    prop_assert_eq!(table.remove_port(p), reference.retain(|e| e.port != p));
                }
                Op::RemoveDomain(d) => {
                    prop_assert_eq!(table.remove_domain(d), reference.retain(|e| e.domain != d));
                }
            }
            let mut want = reference.entries.clone();
            want.sort();
            prop_assert_eq!(contents(&table), want);
            prop_assert_eq!(table.len(), reference.entries.len());
            prop_assert!(table.len() <= table.capacity());
            prop_assert_eq!(table.aged_total(), reference.aged);
            // Every key, present or not, looks up the same in both.
            for d in 0..3 {
                for m in 0..8 {
                    prop_assert_eq!(
                        table.lookup(d, mac(m), Timestamp(now)),
                        reference.lookup(d, mac(m), now)
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The incremental sweep against the whole-table sweep: a step removes only
    /// expired entries, never changes what a live entry looks up to, and two
    /// passes' worth of steps (any budgets) leave exactly what a full sweep
    /// leaves.
    #[test]
    fn incremental_sweep_matches_a_full_sweep(
        cap in 1usize..24,
        seed in any::<u64>(),
        learns in proptest::collection::vec((0u16..3, 0u8..16, 0u16..4, 0u64..3 * AGING), 1..60),
        budgets in proptest::collection::vec(1usize..9, 1..40),
        now in AGING..4 * AGING,
    ) {
        let mut table = MacTable::with_seed(cap, AGING, seed);
        let mut full = MacTable::with_seed(cap, AGING, seed);
        let mut sorted = learns.clone();
        sorted.sort_by_key(|l| l.3);
        for (domain, m, port, at) in sorted {
            table.learn(domain, mac(m), port, Timestamp(at));
            full.learn(domain, mac(m), port, Timestamp(at));
        }
        let before = contents(&table);
        full.sweep(Timestamp(now));
        let want = contents(&full);
        let mut scanned = 0;
        let mut k = 0;
        while scanned < 2 * table.slot_count() {
            let budget = budgets[k % budgets.len()];
            k += 1;
            table.sweep_step(Timestamp(now), budget);
            scanned += budget;
            let got = contents(&table);
            // Only expired entries ever leave.
            for e in &before {
                if now.saturating_sub(e.last_seen) <= AGING {
                    prop_assert!(got.contains(e), "live entry {:?} swept", e);
                    prop_assert_eq!(table.lookup(e.domain, e.mac, Timestamp(now)), Some(e.port));
                }
            }
        }
        prop_assert_eq!(contents(&table), want);
        prop_assert_eq!(table.aged_total(), full.aged_total());
    }
}
