//! The control thread's own copy of the MAC table, fed by the learn events the
//! workers already publish to each other (see [`crate::fabric`]), so `ctl fdb`
//! and the stats file list stations without any worker walking its table.
//!
//! Why a copy fed by events rather than a snapshot the worker publishes bit by
//! bit: the events exist anyway (every new, moved and periodically refreshed
//! station), so the worker's extra cost is one more queue push per event and
//! nothing per turn; a published snapshot would cost the worker a budgeted walk
//! of its table every turn and a second table's worth of shared memory, and be
//! up to a pass (a second) stale. The copy is what any other worker knows: it
//! is kept by the same rules (a [`MacTable`] of the same size and aging time,
//! fed with [`MacTable::apply_learned`], so a newer sighting always wins
//! whichever worker reports it).
//!
//! What it shows, and how exactly:
//! - New stations and moves: at the next drain (every 50 ms, and before every
//!   `fdb`/`stats` answer), since both are published at once.
//! - Aging: a station that keeps talking is republished once per refresh
//!   period (a quarter of the aging time, at least a second), so the copy's
//!   last sighting lies in the same refresh period as the learning worker's;
//!   `age_secs` can read up to one period high, and a silent station leaves the
//!   copy when its last published sighting ages out: when the workers that only
//!   heard of it through events forget it too, at most one period before the
//!   learning worker does.
//! - Port removal: the control thread removes the port from every worker, then
//!   drains what they published before, then forgets the port's stations here,
//!   so no event from before the removal can bring one back (ports are reused).
//! - A full observer inbox drops events (counted in the stats as
//!   `observer_events_dropped`): the station is missing or stale here until its
//!   next refresh or move republishes it, then the copy is right again.

use crate::fabric::Fabric;
use crate::stats::FdbEntry;
use switchyard_pipeline::{DomainId, L2Config, LearnEvent, MacTable, PortId, Timestamp};

/// Events applied per drain at most, so one drain never holds the control
/// thread long while workers keep publishing (the rest waits for the next).
const DRAIN_LIMIT: usize = 1 << 20;

/// The control thread's MAC table copy (see the module docs).
#[derive(Clone, Debug)]
pub struct FdbCopy {
    table: MacTable,
}

impl FdbCopy {
    /// An empty copy sized and aged like the workers' tables.
    pub fn new(config: L2Config) -> Self {
        FdbCopy {
            table: MacTable::new(config.max_entries, config.aging_ns),
        }
    }

    /// Applies one learn event (a newer sighting already here wins).
    pub fn apply(&mut self, event: &LearnEvent) {
        self.table
            .apply_learned(event.domain, event.mac, event.port, event.at);
    }

    /// Applies every event waiting in `fabric`'s observer inbox (bounded);
    /// returns how many.
    pub fn drain(&mut self, fabric: &Fabric) -> usize {
        let mut applied = 0;
        while applied < DRAIN_LIMIT {
            let Some(event) = fabric.next_observed() else {
                break;
            };
            self.apply(&event);
            applied += 1;
        }
        applied
    }

    /// Forgets every station on `port` (after the workers removed it and the
    /// inbox was drained).
    pub fn remove_port(&mut self, port: PortId) {
        self.table.remove_port(port);
    }

    /// Forgets every station of `domain` (network removed).
    pub fn remove_domain(&mut self, domain: DomainId) {
        self.table.remove_domain(domain);
    }

    /// Stations now, with ages (expired ones are dropped first).
    pub fn entries(&mut self, now: Timestamp) -> Vec<FdbEntry> {
        self.table.sweep(now);
        self.table
            .iter()
            .map(|entry| FdbEntry {
                domain: entry.domain,
                mac: entry.mac,
                port: entry.port,
                age_secs: now.saturating_since(entry.last_seen) / 1_000_000_000,
            })
            .collect()
    }

    /// The table itself (tests compare it with a worker's).
    pub fn table(&self) -> &MacTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_pipeline::MacAddr;

    fn event(mac: u8, port: PortId, secs: u64) -> LearnEvent {
        LearnEvent {
            domain: 0,
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
            port,
            at: Timestamp::from_secs(secs),
        }
    }

    #[test]
    fn learns_moves_ages_and_forgets_ports() {
        let mut copy = FdbCopy::new(L2Config {
            max_entries: 64,
            aging_ns: 10_000_000_000,
        });
        copy.apply(&event(1, 3, 1));
        copy.apply(&event(2, 4, 1));
        copy.apply(&event(1, 5, 2)); // moved
        copy.apply(&event(1, 3, 1)); // a late, older event does not undo the move
        let mut e = copy.entries(Timestamp::from_secs(3));
        e.sort_by_key(|e| e.mac.0);
        assert_eq!(
            e.iter()
                .map(|e| (e.mac.0[5], e.port, e.age_secs))
                .collect::<Vec<_>>(),
            vec![(1, 5, 1), (2, 4, 2)]
        );
        copy.remove_port(4);
        assert_eq!(copy.entries(Timestamp::from_secs(3)).len(), 1);
        assert!(
            copy.entries(Timestamp::from_secs(13)).is_empty(),
            "aged out"
        );
    }
}
