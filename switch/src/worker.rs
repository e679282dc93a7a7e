//! The poll worker: one thread, pinned to one core, owning a frame pool, its
//! ports and its forwarding tables. Each loop turn receives a burst from every
//! port, runs each burst through the pipeline as one batch, queues the results
//! per output port, transmits every queue with one kick per port, and recycles
//! completed frames into the fill rings.
//!
//! Generic over the driver so the same loop runs over AF_XDP sockets in the
//! daemon and over in-memory ports in tests and benchmarks.

use crate::stats::{FdbEntry, WorkerCounters};
use switchyard_drivers::{BatchFrames, FramePool, Port};
use switchyard_pipeline::{
    DropReason, L2Switch, PacketMeta, PortCounters, PortId, Timestamp, Verdict, MAX_BURST,
};

type Handle<P> = <<P as Port>::Pool as FramePool>::Handle;

/// Which forwarding decision the worker makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PipelineKind {
    /// The L2 switch: parse, learn, look up, forward or flood.
    #[default]
    L2,
    /// No lookups: port i's frames leave through port i+1 (mod the port count).
    /// Benchmarks compare it with `L2` to show what the pipeline costs.
    Empty,
}

/// One worker's pool, ports, tables and reusable batch arrays.
pub struct Worker<P: Port> {
    pipeline: PipelineKind,
    pool: P::Pool,
    ports: Vec<P>,
    counters: Vec<PortCounters>,
    l2: L2Switch,
    burst: usize,
    rx: Vec<Handle<P>>,
    metas: Vec<PacketMeta>,
    tx: Vec<Vec<Handle<P>>>,
    flood_targets: Vec<PortId>,
    stats: WorkerCounters,
    last_sweep: Timestamp,
}

/// How often aged MAC entries are swept out of the table.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

impl<P: Port> Worker<P> {
    /// A worker over `ports` (index = PortId) drawing frames from `pool`. The L2
    /// switch must already know each port's network.
    pub fn new(pool: P::Pool, ports: Vec<P>, l2: L2Switch, burst: usize) -> Self {
        let burst = burst.clamp(1, MAX_BURST);
        let n = ports.len();
        Worker {
            pipeline: PipelineKind::L2,
            pool,
            counters: vec![PortCounters::default(); n],
            l2,
            burst,
            rx: Vec::with_capacity(burst),
            metas: Vec::with_capacity(burst),
            // Worst case per loop: every port's whole burst lands on one port.
            tx: (0..n)
                .map(|_| Vec::with_capacity(burst * n.max(1)))
                .collect(),
            flood_targets: Vec::with_capacity(n),
            ports,
            stats: WorkerCounters::default(),
            last_sweep: Timestamp(0),
        }
    }

    /// Chooses the forwarding pipeline (the L2 switch unless told otherwise).
    pub fn set_pipeline(&mut self, pipeline: PipelineKind) {
        self.pipeline = pipeline;
    }

    /// Runs one loop turn; returns the number of frames received.
    pub fn poll_once(&mut self, now: Timestamp) -> usize {
        let mut received = 0;
        for in_port in 0..self.ports.len() {
            received += self.receive_and_classify(in_port as PortId, now);
        }
        self.transmit();
        self.service_ports();
        if now.saturating_since(self.last_sweep) >= SWEEP_INTERVAL_NS {
            self.l2.sweep(now);
            self.last_sweep = now;
        }
        self.stats.loops += 1;
        if received > 0 {
            self.stats.busy_loops += 1;
            self.stats.rx_packets += received as u64;
        }
        received
    }

    /// Receives one burst from `in_port`, runs the pipeline over it and queues
    /// each frame on its output ports.
    fn receive_and_classify(&mut self, in_port: PortId, now: Timestamp) -> usize {
        self.rx.clear();
        let n = self.ports[in_port as usize].rx_burst(&mut self.pool, &mut self.rx, self.burst);
        if n == 0 {
            return 0;
        }
        self.stats.rx_bursts += 1;
        self.metas.clear();
        let counters = &mut self.counters[in_port as usize];
        for handle in &self.rx {
            counters.count_rx(self.pool.data(handle).len());
            self.metas.push(PacketMeta::new(in_port));
        }
        {
            let mut frames = BatchFrames {
                pool: &mut self.pool,
                handles: &mut self.rx,
            };
            self.l2.process(&mut frames, &mut self.metas, now);
        }
        for (handle, meta) in self.rx.iter().zip(self.metas.iter()) {
            match meta.verdict {
                Verdict::Forward(out) => self.tx[out as usize].push(*handle),
                Verdict::Flood => {
                    self.flood_targets.clear();
                    self.flood_targets.extend(
                        self.l2
                            .flood_ports(meta.domain)
                            .iter()
                            .copied()
                            .filter(|p| *p != in_port),
                    );
                    flood(
                        &mut self.pool,
                        &mut self.tx,
                        &self.flood_targets,
                        *handle,
                        &mut self.counters[in_port as usize],
                    );
                }
                Verdict::Drop(reason) => {
                    self.counters[in_port as usize].count_drop(reason);
                    self.pool.free(*handle);
                }
                Verdict::Pending => {
                    // Every stage sets a verdict; reaching here is a pipeline bug.
                    // Never leak the frame: count it where an operator will look.
                    debug_assert!(false, "pipeline left a frame pending");
                    self.counters[in_port as usize].count_drop(DropReason::NoNetwork);
                    self.pool.free(*handle);
                }
            }
        }
        n
    }

    /// Hands every non-empty per-port queue to its port (one batch each).
    fn transmit(&mut self) {
        for (out, queue) in self.tx.iter_mut().enumerate() {
            if queue.is_empty() {
                continue;
            }
            let result = self.ports[out].tx_burst(&mut self.pool, queue);
            let counters = &mut self.counters[out];
            counters.tx_packets += result.accepted as u64;
            counters.tx_bytes += result.accepted_bytes as u64;
            counters
                .drops
                .count_n(DropReason::TxRingFull, result.ring_full as u64);
        }
    }

    /// Kicks transmit rings, recycles completions and refills receive rings.
    fn service_ports(&mut self) {
        for (index, port) in self.ports.iter_mut().enumerate() {
            if let Err(error) = port.service(&mut self.pool) {
                self.counters[index].count_drop(DropReason::TxError);
                self.stats.kick_errors += 1;
                if self.stats.kick_errors.is_power_of_two() {
                    tracing::warn!(%error, count = self.stats.kick_errors, "transmit kick failed");
                }
            }
        }
    }

    /// Stops receiving and waits (bounded) for transmitted frames to complete, so
    /// the frame audit after it sees every frame at rest.
    pub fn drain(&mut self) {
        for port in &mut self.ports {
            port.release(&mut self.pool);
        }
    }

    /// Frames at rest in the pool plus frames the ports hold; equals
    /// [`frames_total`](Self::frames_total) between loop turns unless a frame leaked.
    pub fn frames_accounted(&self) -> usize {
        self.pool.free_count() + self.ports.iter().map(|p| p.frames_held()).sum::<usize>()
    }

    /// Frames the pool was created with.
    pub fn frames_total(&self) -> usize {
        self.pool.total()
    }

    /// True when the free list holds no frame twice.
    pub fn free_list_is_unique(&self) -> bool {
        self.pool.free_list_is_unique()
    }

    /// Counts one idle sleep of the back-off.
    pub fn count_idle_sleep(&mut self) {
        self.stats.idle_sleeps += 1;
    }

    /// Counters of every port, by PortId.
    pub fn port_counters(&self) -> &[PortCounters] {
        &self.counters
    }

    /// The worker's loop counters.
    pub fn counters(&self) -> &WorkerCounters {
        &self.stats
    }

    /// The L2 switch (tables and their stats).
    pub fn l2(&self) -> &L2Switch {
        &self.l2
    }

    /// The ports, by PortId (tests inject and inspect frames through them).
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// The ports, by PortId.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    /// Takes the ports out (to close them), leaving the worker empty.
    pub fn take_ports(&mut self) -> Vec<P> {
        self.tx.clear();
        std::mem::take(&mut self.ports)
    }

    /// The MAC table as stats entries (domain index, MAC, port index, age).
    pub fn fdb(&self, now: Timestamp) -> Vec<FdbEntry> {
        self.l2
            .mac_table()
            .iter()
            .map(|entry| FdbEntry {
                domain: entry.domain,
                mac: entry.mac.to_string(),
                port: entry.port,
                age_secs: now.saturating_since(entry.last_seen) / 1_000_000_000,
            })
            .collect()
    }
}

/// Queues one flooded frame on every target: copies for all but the last, the
/// original for the last; frees it when there is no target.
fn flood<Pool: FramePool>(
    pool: &mut Pool,
    tx: &mut [Vec<Pool::Handle>],
    targets: &[PortId],
    handle: Pool::Handle,
    ingress: &mut PortCounters,
) {
    let Some((&last, rest)) = targets.split_last() else {
        pool.free(handle);
        return;
    };
    for &target in rest {
        match pool.alloc() {
            Some(mut copy) => {
                pool.copy_into(&handle, &mut copy);
                tx[target as usize].push(copy);
            }
            None => ingress.count_drop(DropReason::NoFreeFrame),
        }
    }
    tx[last as usize].push(handle);
}
