//! The control thread's FDB copy against the worker's own MAC table, after
//! random sequences of learning, station moves, aging and port removal (with
//! the port index reused, as the daemon does), driven through a real worker
//! over in-memory ports and the fabric's observer inbox.
//!
//! What the copy promises (see `switchyard_switch::fdb_copy`): every station
//! it lists is live in the worker's table on the same port, its last sighting
//! is in the same refresh period as the worker's, and every station the
//! worker has seen within the aging time minus that period is listed.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::{DomainId, L2Config, L2Switch, LearnEvent, MacAddr, PortId, Timestamp};
use switchyard_switch::fabric::{Fabric, OBSERVER_CAPACITY};
use switchyard_switch::fdb_copy::FdbCopy;
use switchyard_switch::placement::TxRoute;
use switchyard_switch::worker::Worker;

const SEC: u64 = 1_000_000_000;
const AGING: u64 = 8 * SEC;
/// The worker republishes a refreshed station once per this period.
const PERIOD: u64 = AGING / 4;
/// Port p is in domain DOMAINS[p].
const DOMAINS: [DomainId; 4] = [0, 0, 1, 1];

#[derive(Clone, Debug)]
enum Op {
    /// Station `station` sends a broadcast from port `port` (learn or move).
    Send { station: u8, port: PortId },
    /// Time passes (aging), in milliseconds.
    Advance { millis: u64 },
    /// The port is removed and added back under the same index.
    Replug { port: PortId },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 0u16..4).prop_map(|(station, port)| Op::Send { station, port }),
        3 => (0u64..5_000).prop_map(|millis| Op::Advance { millis }),
        1 => (0u16..4).prop_map(|port| Op::Replug { port }),
    ]
}

fn frame(station: u8) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, station + 1], [0xff; 6])
        .ipv4([10, 0, 0, station + 1], [10, 0, 0, 255], 64)
        .udp(1000, 2000);
    let mut frame = Vec::with_capacity(builder.size(4));
    builder.write(&mut frame, &[0u8; 4]).unwrap();
    frame
}

struct Rig {
    worker: Worker<MemPort>,
    fabric: Arc<Fabric>,
    copy: FdbCopy,
    now: u64,
}

impl Rig {
    fn new() -> Self {
        let config = L2Config {
            max_entries: 64,
            aging_ns: AGING,
        };
        let mut l2 = L2Switch::new(config);
        for (port, domain) in DOMAINS.iter().enumerate() {
            l2.set_port_domain(port as PortId, Some(*domain));
        }
        let fabric = Arc::new(Fabric::new(1, false));
        let ports = DOMAINS.iter().map(|_| MemPort::new()).collect();
        let worker = Worker::with_placement(
            0,
            MemPool::new(256, 2048),
            ports,
            (0..DOMAINS.len() as PortId).collect(),
            (0..DOMAINS.len()).map(TxRoute::Local).collect(),
            Some(Arc::clone(&fabric)),
            l2,
            32,
        );
        Rig {
            worker,
            fabric,
            copy: FdbCopy::new(config),
            now: SEC,
        }
    }

    fn turn(&mut self) {
        self.now += 1_000;
        self.worker.poll_once(Timestamp(self.now));
        for port in self.worker.ports_mut() {
            port.outbound.clear();
        }
    }

    /// Index of the socket serving global port `port` (they move on removal).
    fn socket_of(&self, port: PortId) -> usize {
        self.worker
            .socket_ports()
            .iter()
            .position(|p| *p == port)
            .expect("every port has a socket")
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send { station, port } => {
                let socket = self.socket_of(port);
                self.worker.ports_mut()[socket]
                    .inbound
                    .push_back(frame(station));
                self.turn();
            }
            Op::Advance { millis } => {
                self.now += millis * 1_000_000;
                self.turn();
            }
            Op::Replug { port } => {
                // As the control thread does: the worker removes the port,
                // then the copy drains what came before and forgets the port.
                self.worker.remove_port(port);
                self.copy.drain(&self.fabric);
                self.copy.remove_port(port);
                self.worker.add_port(
                    port,
                    Some(DOMAINS[port as usize]),
                    vec![MemPort::new()],
                    TxRoute::Local(0),
                );
                self.turn();
            }
        }
        self.copy.drain(&self.fabric);
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let now = Timestamp(self.now);
        let worker: HashMap<(DomainId, MacAddr), (PortId, u64)> = self
            .worker
            .l2()
            .mac_table()
            .iter()
            .filter(|e| now.saturating_since(e.last_seen) <= AGING)
            .map(|e| ((e.domain, e.mac), (e.port, e.last_seen.0)))
            .collect();
        let listed = self.copy.entries(now);
        let copy: HashMap<(DomainId, MacAddr), (PortId, u64)> = self
            .copy
            .table()
            .iter()
            .map(|e| ((e.domain, e.mac), (e.port, e.last_seen.0)))
            .collect();
        prop_assert_eq!(listed.len(), copy.len());
        for (key, (port, seen)) in &copy {
            let Some((worker_port, worker_seen)) = worker.get(key) else {
                return Err(TestCaseError::fail(format!(
                    "{key:?} listed on port {port} but not live in the worker"
                )));
            };
            prop_assert_eq!(port, worker_port, "{:?} on the worker's port", key);
            prop_assert!(
                seen <= worker_seen,
                "{:?}: never newer than the worker",
                key
            );
            prop_assert_eq!(
                seen / PERIOD,
                worker_seen / PERIOD,
                "{:?}: last sighting in the worker's refresh period",
                key
            );
        }
        for (key, (_, worker_seen)) in &worker {
            if self.now - (worker_seen / PERIOD) * PERIOD <= AGING {
                prop_assert!(
                    copy.contains_key(key),
                    "{:?} live in the worker (seen {}) but missing",
                    key,
                    worker_seen
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn copy_follows_the_workers_table(ops in proptest::collection::vec(op(), 1..80)) {
        let mut rig = Rig::new();
        for op in &ops {
            rig.apply(op);
            rig.check()?;
        }
    }
}

/// A full observer inbox loses events (counted); the copy is missing the
/// station until its next refresh is published, then right again.
#[test]
fn a_full_observer_inbox_is_counted_and_heals_on_refresh() {
    let mut rig = Rig::new();
    let filler = LearnEvent {
        domain: 9,
        mac: MacAddr([2, 9, 9, 9, 9, 9]),
        port: 0,
        at: Timestamp(SEC),
    };
    // From worker 0 of 1: only the observer gets them.
    for _ in 0..OBSERVER_CAPACITY {
        rig.fabric.publish(0, filler);
    }
    assert_eq!(rig.fabric.observer_dropped(), 0);
    rig.apply(&Op::Send {
        station: 1,
        port: 0,
    });
    assert_eq!(rig.fabric.observer_dropped(), 1, "the new station was lost");
    let station = (0, MacAddr([2, 0, 0, 0, 0, 2]));
    let listed = |rig: &mut Rig| {
        let now = Timestamp(rig.now);
        rig.copy
            .entries(now)
            .iter()
            .any(|e| (e.domain, e.mac) == station)
    };
    assert!(!listed(&mut rig), "missing while its event is lost");
    // The next refresh period: the station's next frame is published again.
    rig.apply(&Op::Advance {
        millis: PERIOD / 1_000_000,
    });
    rig.apply(&Op::Send {
        station: 1,
        port: 0,
    });
    assert!(listed(&mut rig), "healed by the refresh");
    assert_eq!(rig.fabric.observer_dropped(), 1);
}
