//! The poll worker: one thread, pinned to one core, owning a frame pool, its
//! ports and its forwarding tables. Each loop turn receives a burst from every
//! port, runs each burst through the pipeline as one batch, queues the results
//! per output port, transmits every queue with one kick per port, and recycles
//! completed frames into the fill rings.
//!
//! Generic over the driver so the same loop runs over AF_XDP sockets in the
//! daemon and over in-memory ports in tests and benchmarks.
//!
//! With several workers, each one owns some (port, queue) sockets (see
//! [`crate::placement`]), keeps its own MAC table copy, and exchanges learn events
//! and handed-over frames with the others through the [`Fabric`]'s lock-free
//! queues, between bursts.

use crate::fabric::Fabric;
use crate::placement::TxRoute;
use crate::stats::{FdbEntry, WorkerCounters};
use std::sync::Arc;
use switchyard_drivers::{BatchFrames, FramePool, Port};
use switchyard_pipeline::{
    DomainId, DropReason, L2Switch, PacketMeta, PortCounters, PortId, Timestamp, Verdict, MAX_BURST,
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

/// One worker's pool, sockets, tables and reusable batch arrays.
pub struct Worker<P: Port> {
    pipeline: PipelineKind,
    index: usize,
    pool: P::Pool,
    /// The worker's own sockets ("ports" of the driver), each serving one global port.
    ports: Vec<P>,
    /// Global port of each socket.
    socket_port: Vec<PortId>,
    /// How to reach each global port for transmission.
    routes: Vec<TxRoute>,
    fabric: Option<Arc<Fabric>>,
    /// Counters per global port.
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
    /// A single worker over `ports` (index = PortId) drawing frames from `pool`.
    /// The L2 switch must already know each port's network.
    pub fn new(pool: P::Pool, ports: Vec<P>, l2: L2Switch, burst: usize) -> Self {
        let n = ports.len();
        let socket_port = (0..n as PortId).collect();
        let routes = (0..n).map(TxRoute::Local).collect();
        Self::with_placement(0, pool, ports, socket_port, routes, None, l2, burst)
    }

    /// Worker `index` of several: `sockets[i]` serves global port `socket_port[i]`,
    /// `routes[p]` says how to transmit on global port `p`, and `fabric` (when
    /// there is more than one worker) carries learn events and handed-over frames.
    #[allow(clippy::too_many_arguments)]
    pub fn with_placement(
        index: usize,
        pool: P::Pool,
        sockets: Vec<P>,
        socket_port: Vec<PortId>,
        routes: Vec<TxRoute>,
        fabric: Option<Arc<Fabric>>,
        mut l2: L2Switch,
        burst: usize,
    ) -> Self {
        let burst = burst.clamp(1, MAX_BURST);
        let n = routes.len();
        l2.publish_learning(fabric.as_ref().is_some_and(|f| f.workers() > 1));
        Worker {
            pipeline: PipelineKind::L2,
            index,
            pool,
            socket_port,
            routes,
            fabric,
            counters: vec![PortCounters::default(); n],
            l2,
            burst,
            rx: Vec::with_capacity(burst),
            metas: Vec::with_capacity(burst),
            // Worst case per loop: every socket's whole burst, plus a mailbox's worth
            // of handed-over frames, lands on one port.
            tx: (0..n)
                .map(|_| Vec::with_capacity(burst * (sockets.len() + 4)))
                .collect(),
            flood_targets: Vec::with_capacity(n),
            ports: sockets,
            stats: WorkerCounters::default(),
            last_sweep: Timestamp(0),
        }
    }

    /// Chooses the forwarding pipeline (the L2 switch unless told otherwise).
    pub fn set_pipeline(&mut self, pipeline: PipelineKind) {
        self.pipeline = pipeline;
    }

    /// Runs one loop turn; returns the number of frames received (from sockets
    /// and from other workers).
    pub fn poll_once(&mut self, now: Timestamp) -> usize {
        self.apply_learn_events();
        let mut received = 0;
        for socket in 0..self.ports.len() {
            received += self.receive_and_classify(socket, now);
        }
        received += self.take_handed_over();
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

    /// Applies what other workers learned (bounded per turn).
    fn apply_learn_events(&mut self) {
        let Some(fabric) = &self.fabric else { return };
        for _ in 0..MAX_BURST {
            let Some(event) = fabric.next_event(self.index) else {
                break;
            };
            self.l2.apply_learn_event(&event);
        }
    }

    /// Sends what this worker learned in the last batch to the other workers.
    fn publish_learn_events(&mut self) {
        if let Some(fabric) = &self.fabric {
            for event in self.l2.learn_events() {
                fabric.publish(self.index, *event);
            }
        }
        self.l2.clear_learn_events();
    }

    /// Moves frames other workers handed over into this worker's pool and onto
    /// their output port's queue (bounded per turn).
    fn take_handed_over(&mut self) -> usize {
        // Borrowed, not cloned: cloning the Arc each turn would bounce its
        // reference count's cache line between workers.
        let Some(fabric) = self.fabric.as_ref() else {
            return 0;
        };
        let mut taken = 0;
        while taken < self.burst * 4 {
            let Some(parcel) = fabric.next_parcel(self.index) else {
                break;
            };
            let port = parcel.port as usize;
            // Only the owner of a port is ever sent its frames (see placement).
            if matches!(self.routes.get(port), Some(TxRoute::Local(_))) {
                match self.pool.alloc_from(&parcel.buf[..parcel.len]) {
                    Some(handle) => self.tx[port].push(handle),
                    None => self.counters[port].count_drop(DropReason::NoFreeFrame),
                }
            }
            fabric.recycle(self.index, parcel);
            taken += 1;
        }
        self.stats.handed_in += taken as u64;
        taken
    }

    /// Receives one burst from socket `socket`, runs the pipeline over it and
    /// queues each frame on its output ports.
    fn receive_and_classify(&mut self, socket: usize, now: Timestamp) -> usize {
        self.rx.clear();
        let n = self.ports[socket].rx_burst(&mut self.pool, &mut self.rx, self.burst);
        if n == 0 {
            return 0;
        }
        let in_port = self.socket_port[socket];
        self.stats.rx_bursts += 1;
        self.stats.burst_sizes.record(n);
        self.metas.clear();
        let counters = &mut self.counters[in_port as usize];
        for handle in &self.rx {
            counters.count_rx(self.pool.data(handle).len());
            self.metas.push(PacketMeta::new(in_port));
        }
        match self.pipeline {
            PipelineKind::L2 => {
                let mut frames = BatchFrames {
                    pool: &mut self.pool,
                    handles: &mut self.rx,
                };
                self.l2.process(&mut frames, &mut self.metas, now);
                self.publish_learn_events();
            }
            PipelineKind::Empty => {
                let next = ((in_port as usize + 1) % self.routes.len()) as PortId;
                for meta in &mut self.metas {
                    meta.verdict = Verdict::Forward(next);
                }
            }
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

    /// Hands every non-empty per-port queue to its socket (one batch each), or to
    /// the worker that owns the port.
    fn transmit(&mut self) {
        for (out, queue) in self.tx.iter_mut().enumerate() {
            if queue.is_empty() {
                continue;
            }
            let counters = &mut self.counters[out];
            match self.routes[out] {
                TxRoute::Local(socket) => {
                    let result = self.ports[socket].tx_burst(&mut self.pool, queue);
                    counters.tx_packets += result.accepted as u64;
                    counters.tx_bytes += result.accepted_bytes as u64;
                    counters
                        .drops
                        .count_n(DropReason::TxRingFull, result.ring_full as u64);
                }
                TxRoute::Absent => {
                    for handle in queue.drain(..) {
                        counters.count_drop(DropReason::NoNetwork);
                        self.pool.free(handle);
                    }
                }
                TxRoute::Handoff(owner) => {
                    for handle in queue.drain(..) {
                        let sent = self.fabric.as_ref().is_some_and(|fabric| {
                            fabric.hand_off(owner, out as PortId, self.pool.data(&handle))
                        });
                        if sent {
                            self.stats.handed_out += 1;
                        } else {
                            counters.count_drop(DropReason::HandoffFull);
                        }
                        self.pool.free(handle);
                    }
                }
            }
        }
    }

    /// Kicks transmit rings, recycles completions and refills receive rings.
    fn service_ports(&mut self) {
        for (index, port) in self.ports.iter_mut().enumerate() {
            if let Err(error) = port.service(&mut self.pool) {
                self.counters[self.socket_port[index] as usize].count_drop(DropReason::TxError);
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

    /// Adds global port `port` at run time (between bursts): its sockets on this
    /// worker (possibly none), how to transmit on it, and its network. The sockets
    /// were opened elsewhere (the control thread) and get their receive buffers
    /// here. Growing the per-port arrays allocates: control path only.
    pub fn add_port(
        &mut self,
        port: PortId,
        domain: Option<DomainId>,
        sockets: Vec<P>,
        route: TxRoute,
    ) {
        let index = port as usize;
        if index >= self.routes.len() {
            let per_port = self.burst * (self.ports.len() + sockets.len() + 4);
            self.routes.resize(index + 1, TxRoute::Absent);
            self.counters.resize(index + 1, PortCounters::default());
            self.tx
                .resize_with(index + 1, || Vec::with_capacity(per_port));
        }
        // `route` names the new sockets from 0; they go after the existing ones.
        let route = match route {
            TxRoute::Local(k) => TxRoute::Local(self.ports.len() + k),
            other => other,
        };
        for mut socket in sockets {
            socket.adopt(&mut self.pool);
            self.ports.push(socket);
            self.socket_port.push(port);
        }
        // More sockets mean more frames per turn for any one port.
        let per_port = self.burst * (self.ports.len() + 4);
        for queue in &mut self.tx {
            if queue.capacity() < per_port {
                queue.reserve(per_port - queue.len());
            }
        }
        self.routes[index] = route;
        self.counters[index] = PortCounters::default();
        self.l2.set_port_domain(port, domain);
    }

    /// Removes global port `port` at run time: closes this worker's sockets on it
    /// (their frames return to the pool), forgets its MACs and drops what was
    /// queued for it. Returns the frames reclaimed from the closed sockets.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let index = port as usize;
        if index >= self.routes.len() {
            return 0;
        }
        self.routes[index] = TxRoute::Absent;
        self.l2.set_port_domain(port, None);
        for handle in self.tx[index].drain(..) {
            self.pool.free(handle);
        }
        let mut reclaimed = 0;
        let mut kept_ports = Vec::with_capacity(self.ports.len());
        let mut kept_socket_port = Vec::with_capacity(self.ports.len());
        for (mut socket, owner) in self.ports.drain(..).zip(self.socket_port.drain(..)) {
            if owner == port {
                socket.release(&mut self.pool);
                reclaimed += socket.close(&mut self.pool);
            } else {
                kept_ports.push(socket);
                kept_socket_port.push(owner);
            }
        }
        self.ports = kept_ports;
        self.socket_port = kept_socket_port;
        // Socket indices shifted: point every local route at its port's first socket.
        for (p, route) in self.routes.iter_mut().enumerate() {
            if let TxRoute::Local(_) = route {
                match self
                    .socket_port
                    .iter()
                    .position(|owner| *owner as usize == p)
                {
                    Some(socket) => *route = TxRoute::Local(socket),
                    None => *route = TxRoute::Absent,
                }
            }
        }
        reclaimed
    }

    /// Kernel-side drops per global port, summed over this worker's sockets
    /// (a syscall per socket: for reports, not the hot path).
    pub fn kernel_drops(&self) -> Vec<switchyard_drivers::KernelDrops> {
        let mut drops = vec![switchyard_drivers::KernelDrops::default(); self.routes.len()];
        for (socket, port) in self.ports.iter().zip(&self.socket_port) {
            if let Some(slot) = drops.get_mut(*port as usize) {
                slot.add(&socket.kernel_drops());
            }
        }
        drops
    }

    /// Descriptors to sleep on when idle (one per socket that has one).
    pub fn poll_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.ports.iter().filter_map(|p| p.poll_fd()).collect()
    }

    /// This worker's index among the switch's workers.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Global port served by each of the worker's sockets.
    pub fn socket_ports(&self) -> &[PortId] {
        &self.socket_port
    }

    /// Records the worker thread's CPU time for the stats.
    pub fn set_cpu_time(&mut self, cpu: std::time::Duration) {
        self.stats.cpu_ms = cpu.as_millis() as u64;
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

    /// The frame pool.
    pub fn pool(&self) -> &P::Pool {
        &self.pool
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
