//! Which worker serves which (port, queue), and how each worker reaches every
//! port for transmission.
//!
//! Worker `w` of `W` binds the queues `j` of a port with `j % W == w`, so the
//! queues of a multi-queue port (a veth made with several queues, a NIC with RSS)
//! are spread over the workers and no queue is ever bound twice. Every worker binds
//! queue 0 of every port (0 % W == 0 only for worker 0, which is why worker 0 also
//! settles the XDP mode of every interface before the others start). A worker
//! transmits on a port through its own socket when it binds one of the port's
//! queues; otherwise it hands frames to the worker that owns queue `w % q` through
//! a bounded queue. So no two workers ever share a ring.

/// How a worker sends frames out of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxRoute {
    /// Through the worker's own socket with this index in its socket list.
    Local(usize),
    /// Handed over to this worker, which owns a queue of the port.
    Handoff(usize),
    /// No such port (removed, or never added): frames for it are dropped.
    Absent,
}

/// One socket a worker opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketPlan {
    /// Global port index.
    pub port: usize,
    /// Queue id on the port's interface.
    pub queue: u32,
}

/// The sockets and transmit routes of one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlacement {
    /// Sockets to open, in order (their index is what [`TxRoute::Local`] names).
    pub sockets: Vec<SocketPlan>,
    /// Transmit route per global port.
    pub tx: Vec<TxRoute>,
}

/// Places `queues[p]` queues of each port `p` on `workers` workers.
pub fn place(workers: usize, queues: &[u32]) -> Vec<WorkerPlacement> {
    let workers = workers.max(1);
    (0..workers)
        .map(|w| {
            let mut sockets = Vec::new();
            let mut tx = Vec::with_capacity(queues.len());
            for (port, &count) in queues.iter().enumerate() {
                let count = count.max(1);
                let first = sockets.len();
                for queue in (w as u32..count).step_by(workers) {
                    sockets.push(SocketPlan { port, queue });
                }
                tx.push(if sockets.len() > first {
                    TxRoute::Local(first)
                } else {
                    TxRoute::Handoff(w % count as usize)
                });
            }
            WorkerPlacement { sockets, tx }
        })
        .collect()
}

/// True when some worker hands frames to another (so mailboxes are needed).
pub fn needs_handoff(placements: &[WorkerPlacement]) -> bool {
    placements
        .iter()
        .any(|p| p.tx.iter().any(|r| matches!(r, TxRoute::Handoff(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_queue_ports_are_owned_by_worker_zero() {
        let p = place(2, &[1, 1]);
        assert_eq!(
            p[0].sockets,
            vec![
                SocketPlan { port: 0, queue: 0 },
                SocketPlan { port: 1, queue: 0 }
            ]
        );
        assert_eq!(p[0].tx, vec![TxRoute::Local(0), TxRoute::Local(1)]);
        assert!(p[1].sockets.is_empty());
        assert_eq!(p[1].tx, vec![TxRoute::Handoff(0), TxRoute::Handoff(0)]);
        assert!(needs_handoff(&p));
    }

    #[test]
    fn queues_spread_over_workers() {
        let p = place(2, &[2, 4]);
        assert_eq!(
            p[1].sockets,
            vec![
                SocketPlan { port: 0, queue: 1 },
                SocketPlan { port: 1, queue: 1 },
                SocketPlan { port: 1, queue: 3 }
            ]
        );
        assert_eq!(p[1].tx, vec![TxRoute::Local(0), TxRoute::Local(1)]);
        assert!(!needs_handoff(&p));
    }

    proptest! {
        /// Every queue is bound exactly once, every worker can reach every port, and a
        /// handoff always targets a worker that owns a queue of that port.
        #[test]
        fn every_queue_once_every_port_reachable(workers in 1usize..17, queues in proptest::collection::vec(1u32..9, 1..6)) {
            let placements = place(workers, &queues);
            prop_assert_eq!(placements.len(), workers);
            for (port, &count) in queues.iter().enumerate() {
                for queue in 0..count {
                    let socket = SocketPlan { port, queue };
                    let owners = placements.iter().filter(|p| p.sockets.contains(&socket)).count();
                    prop_assert_eq!(owners, 1);
                }
                for p in &placements {
                    match p.tx[port] {
                        TxRoute::Local(s) => prop_assert_eq!(p.sockets[s].port, port),
                        TxRoute::Handoff(owner) => {
                            prop_assert!(owner < workers);
                            prop_assert!(placements[owner].sockets.iter().any(|s| s.port == port));
                        }
                        TxRoute::Absent => prop_assert!(false, "every port is reachable"),
                    }
                }
                let queue_zero = SocketPlan { port, queue: 0 };
                prop_assert!(placements[0].sockets.contains(&queue_zero));
            }
        }
    }
}
