//! The neighbour table against a plain reference model (a map scanned in full)
//! over random sequences of frames to resolve, answers, static entries,
//! removals and time passing: every decision, every released frame, every
//! request and every lookup agree, and the bounds hold throughout.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use switchyard_pipeline::neighbour::{
    NeighbourConfig, NeighbourDrop, NeighbourState, NeighbourTable, Resolve, QUEUE_PER_NEIGHBOUR,
};
use switchyard_pipeline::{MacAddr, Timestamp};

const CONFIG: NeighbourConfig = NeighbourConfig {
    max_entries: 6,
    max_unresolved: 3,
    reachable_ns: 10,
    retry_ns: 3,
    max_probes: 2,
};

#[derive(Clone, Debug)]
struct RefEntry {
    state: NeighbourState,
    mac: MacAddr,
    confirmed: u64,
    last_probe: u64,
    probes: u8,
    queue: Vec<u32>,
}

/// The model: same rules, written as directly as possible.
#[derive(Default, Debug)]
struct Model {
    entries: BTreeMap<u32, RefEntry>,
}

impl Model {
    fn unresolved(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.state == NeighbourState::Incomplete)
            .count()
    }

    fn resolve(&mut self, ip: u32, frame: u32, now: u64) -> Resolve<u32> {
        let c = CONFIG;
        if let Some(e) = self.entries.get_mut(&ip) {
            let due = now.saturating_sub(e.last_probe) >= c.retry_ns;
            return match e.state {
                NeighbourState::Static => Resolve::Ready {
                    mac: e.mac,
                    frame,
                    probe: false,
                },
                NeighbourState::Reachable | NeighbourState::Stale => {
                    if e.state == NeighbourState::Reachable
                        && now.saturating_sub(e.confirmed) >= c.reachable_ns
                    {
                        e.state = NeighbourState::Stale;
                    }
                    let probe = e.state == NeighbourState::Stale && due;
                    if probe {
                        e.last_probe = now;
                        e.probes = e.probes.saturating_add(1);
                    }
                    Resolve::Ready {
                        mac: e.mac,
                        frame,
                        probe,
                    }
                }
                NeighbourState::Incomplete => {
                    if e.queue.len() == QUEUE_PER_NEIGHBOUR {
                        return Resolve::Dropped {
                            frame,
                            reason: NeighbourDrop::QueueFull,
                        };
                    }
                    e.queue.push(frame);
                    let probe = due && e.probes < c.max_probes;
                    if probe {
                        e.last_probe = now;
                        e.probes += 1;
                    }
                    Resolve::Queued { probe }
                }
            };
        }
        if self.unresolved() >= c.max_unresolved || self.entries.len() >= c.max_entries {
            return Resolve::Dropped {
                frame,
                reason: NeighbourDrop::TableFull,
            };
        }
        self.entries.insert(
            ip,
            RefEntry {
                state: NeighbourState::Incomplete,
                mac: MacAddr([0; 6]),
                confirmed: now,
                last_probe: now,
                probes: 1,
                queue: vec![frame],
            },
        );
        Resolve::Queued { probe: true }
    }

    fn confirm(
        &mut self,
        ip: u32,
        mac: MacAddr,
        now: u64,
        create: bool,
        out: &mut Vec<u32>,
    ) -> bool {
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.state == NeighbourState::Static {
                return e.mac == mac;
            }
            out.append(&mut e.queue);
            e.state = NeighbourState::Reachable;
            e.mac = mac;
            e.confirmed = now;
            e.probes = 0;
            return true;
        }
        if !create || self.entries.len() >= CONFIG.max_entries {
            return false;
        }
        self.entries.insert(
            ip,
            RefEntry {
                state: NeighbourState::Reachable,
                mac,
                confirmed: now,
                last_probe: now,
                probes: 0,
                queue: Vec::new(),
            },
        );
        true
    }

    fn set_static(&mut self, ip: u32, mac: MacAddr, out: &mut Vec<u32>) -> bool {
        if let Some(e) = self.entries.get_mut(&ip) {
            out.append(&mut e.queue);
            e.state = NeighbourState::Static;
            e.mac = mac;
            e.probes = 0;
            return true;
        }
        if self.entries.len() >= CONFIG.max_entries {
            return false;
        }
        self.entries.insert(
            ip,
            RefEntry {
                state: NeighbourState::Static,
                mac,
                confirmed: 0,
                last_probe: 0,
                probes: 0,
                queue: Vec::new(),
            },
        );
        true
    }

    fn remove(&mut self, ip: u32, out: &mut Vec<u32>) -> bool {
        match self.entries.remove(&ip) {
            Some(mut e) => {
                out.append(&mut e.queue);
                true
            }
            None => false,
        }
    }

    fn sweep(&mut self, now: u64, out: &mut Vec<u32>, probes: &mut Vec<Ipv4Addr>) {
        let c = CONFIG;
        let mut gone = Vec::new();
        for (&ip, e) in self.entries.iter_mut() {
            let due = now.saturating_sub(e.last_probe) >= c.retry_ns;
            match e.state {
                NeighbourState::Static => {}
                NeighbourState::Incomplete if due => {
                    if e.probes >= c.max_probes {
                        gone.push(ip);
                    } else {
                        e.probes += 1;
                        e.last_probe = now;
                        probes.push(Ipv4Addr::from(ip));
                    }
                }
                NeighbourState::Incomplete => {}
                NeighbourState::Reachable => {
                    if now.saturating_sub(e.confirmed) >= c.reachable_ns {
                        e.state = NeighbourState::Stale;
                        e.probes = 0;
                    }
                }
                NeighbourState::Stale => {
                    let limit = c.reachable_ns + c.retry_ns * (u64::from(c.max_probes) + 1);
                    if now.saturating_sub(e.confirmed) >= limit {
                        gone.push(ip);
                    }
                }
            }
        }
        for ip in gone {
            let mut e = self.entries.remove(&ip).unwrap();
            out.append(&mut e.queue);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Resolve(u8),
    Confirm(u8, u8, bool),
    Static(u8, u8),
    Remove(u8),
    Sweep,
    Wait(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..10).prop_map(Op::Resolve),
        3 => (0u8..10, 0u8..3, any::<bool>()).prop_map(|(i, m, c)| Op::Confirm(i, m, c)),
        1 => (0u8..10, 0u8..3).prop_map(|(i, m)| Op::Static(i, m)),
        1 => (0u8..10).prop_map(Op::Remove),
        2 => Just(Op::Sweep),
        2 => (1u8..6).prop_map(Op::Wait),
    ]
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i)
}

fn sorted(mut v: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn table_agrees_with_the_reference(ops in prop::collection::vec(op(), 1..120)) {
        let mut table: NeighbourTable<u32> = NeighbourTable::new(CONFIG);
        let mut model = Model::default();
        let mut now = 0u64;
        let mut next_frame = 0u32;
        for op in ops {
            let (mut got, mut want) = (Vec::new(), Vec::new());
            match op {
                Op::Resolve(i) => {
                    next_frame += 1;
                    let a = table.resolve(ip(i), next_frame, Timestamp(now));
                    let b = model.resolve(u32::from(ip(i)), next_frame, now);
                    prop_assert_eq!(a, b, "resolve {}", ip(i));
                }
                Op::Confirm(i, m, create) => {
                    let mac = MacAddr([2, 0, 0, 0, 0, m]);
                    let a = table.confirm(ip(i), mac, Timestamp(now), create, &mut got);
                    let b = model.confirm(u32::from(ip(i)), mac, now, create, &mut want);
                    prop_assert_eq!(a, b, "confirm {}", ip(i));
                }
                Op::Static(i, m) => {
                    let mac = MacAddr([2, 0, 0, 0, 1, m]);
                    let a = table.set_static(ip(i), mac, &mut got).is_ok();
                    let b = model.set_static(u32::from(ip(i)), mac, &mut want);
                    prop_assert_eq!(a, b, "static {}", ip(i));
                }
                Op::Remove(i) => {
                    let a = table.remove(ip(i), &mut got);
                    let b = model.remove(u32::from(ip(i)), &mut want);
                    prop_assert_eq!(a, b);
                }
                Op::Sweep => {
                    let (mut pa, mut pb) = (Vec::new(), Vec::new());
                    table.sweep(Timestamp(now), &mut got, &mut pa);
                    model.sweep(now, &mut want, &mut pb);
                    prop_assert_eq!(sorted(pa), sorted(pb), "probes");
                    got.sort_unstable();
                    want.sort_unstable();
                }
                Op::Wait(d) => now += u64::from(d),
            }
            prop_assert_eq!(got, want, "released frames");
            for i in 0..10 {
                let want_mac = model.entries.get(&u32::from(ip(i)))
                    .filter(|e| e.state != NeighbourState::Incomplete)
                    .map(|e| e.mac);
                prop_assert_eq!(table.lookup(ip(i)), want_mac, "lookup {}", ip(i));
                prop_assert_eq!(table.state(ip(i)), model.entries.get(&u32::from(ip(i))).map(|e| e.state));
            }
            let stats = table.stats();
            prop_assert_eq!(stats.entries, model.entries.len());
            prop_assert_eq!(stats.unresolved, model.unresolved());
            prop_assert!(stats.entries <= CONFIG.max_entries);
            prop_assert!(stats.unresolved <= CONFIG.max_unresolved);
        }
    }

    /// Stepping through the table in small budgets does what one full sweep does.
    #[test]
    fn incremental_sweep_equals_a_full_one(
        setup in prop::collection::vec((0u8..10, 0u8..3), 0..12),
        budget in 1usize..4,
        at in 0u64..40,
    ) {
        let build = || {
            let mut t: NeighbourTable<u32> = NeighbourTable::new(CONFIG);
            let mut sink = Vec::new();
            for (k, &(i, kind)) in setup.iter().enumerate() {
                let now = Timestamp(k as u64);
                match kind {
                    0 => { let _ = t.resolve(ip(i), k as u32, now); }
                    1 => { t.confirm(ip(i), MacAddr([2, 0, 0, 0, 0, i]), now, true, &mut sink); }
                    _ => { let _ = t.set_static(ip(i), MacAddr([2, 0, 0, 0, 1, i]), &mut sink); }
                }
            }
            t
        };
        let (mut full, mut stepped) = (build(), build());
        let (mut fr, mut fp, mut sr, mut sp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        full.sweep(Timestamp(at), &mut fr, &mut fp);
        for _ in 0..CONFIG.max_entries.div_ceil(budget) {
            stepped.sweep_step(Timestamp(at), budget, &mut sr, &mut sp);
        }
        fr.sort_unstable();
        sr.sort_unstable();
        prop_assert_eq!(fr, sr);
        prop_assert_eq!(sorted(fp), sorted(sp));
        let mut a: Vec<_> = full.entries().collect();
        let mut b: Vec<_> = stepped.entries().collect();
        a.sort_by_key(|e| e.ip);
        b.sort_by_key(|e| e.ip);
        prop_assert_eq!(a, b);
    }
}

/// A flood of frames to thousands of unknown addresses never displaces a
/// resolved neighbour, and the table recovers once the flood's entries fail.
#[test]
fn a_flood_of_unknown_destinations_leaves_resolved_neighbours_alone() {
    let config = NeighbourConfig {
        max_entries: 64,
        max_unresolved: 16,
        ..NeighbourConfig::default()
    };
    let mut table: NeighbourTable<u32> = NeighbourTable::new(config);
    let mut released = Vec::new();
    let gw = Ipv4Addr::new(192, 0, 2, 1);
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 1]);
    assert!(matches!(
        table.resolve(gw, 0, Timestamp(0)),
        Resolve::Queued { probe: true }
    ));
    assert!(table.confirm(gw, gw_mac, Timestamp(1), false, &mut released));
    assert_eq!(released, vec![0]);
    let mut dropped = 0;
    for n in 0..10_000u32 {
        let dst = Ipv4Addr::from(0x0a00_0000 + n);
        if let Resolve::Dropped { reason, .. } = table.resolve(dst, n, Timestamp(2)) {
            assert_eq!(reason, NeighbourDrop::TableFull);
            dropped += 1;
        }
    }
    assert_eq!(dropped, 10_000 - 16);
    assert_eq!(table.stats().unresolved, 16);
    assert!(matches!(
        table.resolve(gw, 1, Timestamp(3)),
        Resolve::Ready { mac, .. } if mac == gw_mac
    ));
    // The flood's entries fail after their probes; their frames come back.
    let (mut freed, mut probes) = (Vec::new(), Vec::new());
    for s in 1..=5 {
        table.sweep(Timestamp::from_secs(s), &mut freed, &mut probes);
    }
    assert_eq!(freed.len(), 16);
    assert_eq!(table.stats().unresolved, 0);
    assert_eq!(table.stats().failed, 16);
    assert_eq!(table.lookup(gw), Some(gw_mac));
}
