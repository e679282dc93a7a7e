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
//! [`crate::placement`]), keeps its own MAC table copy and neighbour table, and
//! exchanges learn events, neighbour events and handed-over frames with the
//! others through the [`Fabric`]'s lock-free queues, between bursts. Neighbour
//! events another worker sent are applied at the start of a turn over an empty
//! batch, so the frames that waited for the neighbour leave in that turn even
//! when this worker receives nothing.
//!
//! Counters are published as they are counted (see [`crate::published`]): per
//! port where the worker counts, and the loop counters once per turn, so the
//! control thread reads them without ever asking the worker.

use crate::fabric::Fabric;
use crate::placement::TxRoute;
use crate::published::{PortCells, TableGauges, WorkerBoard};
use crate::stats::WorkerCounters;
use std::sync::Arc;
use switchyard_drivers::{BatchFrames, FramePool, Port};
use switchyard_pipeline::guard::PortBinding;
use switchyard_pipeline::neighbour::QUEUE_PER_NEIGHBOUR;
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, DomainId, DropReason, L2Switch, PacketMeta, PortCounters, PortId, StageReport,
    Timestamp, Verdict, MAX_BURST,
};

type Handle<P> = <<P as Port>::Pool as FramePool>::Handle;

/// Which forwarding decision the worker makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PipelineKind {
    /// The stage chain: parse, then L2 (learn, look up, forward or flood).
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
    /// Counters per global port, published as they are counted.
    counters: Vec<Arc<PortCells>>,
    /// Loop counters and gauges, published once per turn.
    board: Arc<WorkerBoard>,
    /// A histogram changed since the last publish.
    histograms_dirty: bool,
    /// Frames accounted for at the last audit (published as a gauge).
    frames_accounted: u64,
    last_audit: Timestamp,
    /// The pipeline's stages (the L2 switch among them).
    chain: Chain,
    burst: usize,
    /// The batch in hand: received frames, then frames stages originate
    /// (capacity `2 * burst`, reserved once).
    rx: Vec<Handle<P>>,
    /// One meta per frame of `rx`, sized `2 * burst` once and overwritten per burst.
    metas: Vec<PacketMeta>,
    /// Frames staged for each global port this turn, at most `burst` each: a
    /// full queue is handed to its socket at once (no kick: that waits for the
    /// end of the turn), so staging memory is O(ports), not O(ports^2).
    tx: Vec<Vec<Handle<P>>>,
    /// Global ports whose staging queue is non-empty: transmit visits only them.
    tx_dirty: Vec<usize>,
    /// Whether each global port is in `tx_dirty` (never listed twice).
    tx_marked: Vec<bool>,
    flood_targets: Vec<PortId>,
    stats: WorkerCounters,
    last_sweep: Timestamp,
    /// Polling state per socket, by socket index.
    slots: Vec<SocketSlot>,
    /// Sockets polled every turn: the busy ones. Idle ones wait in `idle`.
    polled: Vec<usize>,
    /// Sockets not polled that transmitted this turn or still await
    /// completions: serviced until their transmit ring is empty.
    tx_only: Vec<usize>,
    /// Where idle sockets wait to be woken by their first frame (`None`: the
    /// driver has no descriptors to wait on, so every socket stays polled).
    idle: Option<switchyard_drivers::sys::IdleSet>,
    /// Tokens of woken sockets (reused buffer).
    woken: Vec<u64>,
    /// The kernel's drop counters per socket, read a socket at a time.
    kernel_cache: Vec<switchyard_drivers::KernelDrops>,
    kernel_cursor: usize,
    last_wake_check: Timestamp,
}

/// Per-socket polling state.
#[derive(Clone, Copy, Debug, Default)]
struct SocketSlot {
    /// In `polled`.
    polled: bool,
    /// In `tx_only`.
    tx_listed: bool,
    /// Consecutive turns it received nothing.
    idle_turns: u32,
    /// When it was parked (worker clock, ns).
    parked_at: u64,
}

/// How often aged MAC entries are looked for: a slice of the table each time
/// (see [`SWEEP_SLICES`]), so a whole pass takes about a second of turns.
const SWEEP_INTERVAL_NS: u64 = 1_000_000;
/// A sweep pass is split into this many steps.
const SWEEP_SLICES: usize = 1000;
/// Empty polls after which a socket leaves the polled set. Below the back-off's
/// spin and yield turns, so every socket is parked before the worker sleeps.
const PARK_AFTER_IDLE_TURNS: u32 = 256;
/// How often a busy worker looks for parked sockets that received (an idle
/// worker sleeps on them and wakes at once).
const WAKE_CHECK_NS: u64 = 50_000;
/// The idle-set token of the worker's doorbell (socket tokens are indices).
const DOORBELL_TOKEN: u64 = u64::MAX;

/// A new idle set for worker `index`, watching its doorbell too, so frames other
/// workers hand it wake it from sleep. `None` if epoll is unavailable.
fn idle_set(index: usize, fabric: Option<&Fabric>) -> Option<switchyard_drivers::sys::IdleSet> {
    let mut set = switchyard_drivers::sys::IdleSet::new().ok()?;
    if let Some(fd) = fabric.and_then(|f| f.doorbell_fd(index)) {
        if let Err(error) = set.watch(fd, DOORBELL_TOKEN) {
            tracing::warn!(%error, "cannot watch the worker's doorbell; it will sleep short");
        }
    }
    Some(set)
}

/// How often the frame count (a walk over the sockets) is published.
const AUDIT_INTERVAL_NS: u64 = 100_000_000;

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
        // With a fabric someone listens: the other workers, and the control
        // thread's copy of the MAC table (see `crate::fdb_copy`).
        l2.publish_learning(fabric.is_some());
        let sockets_n = sockets.len();
        let idle = if sockets.iter().any(|s| s.poll_fd().is_some()) {
            idle_set(index, fabric.as_deref())
        } else {
            None
        };
        let mut worker = Worker {
            pipeline: PipelineKind::L2,
            index,
            pool,
            socket_port,
            routes,
            fabric,
            counters: (0..n).map(|_| Arc::new(PortCells::default())).collect(),
            board: Arc::new(WorkerBoard::default()),
            histograms_dirty: false,
            frames_accounted: 0,
            last_audit: Timestamp(0),
            chain: Chain::new(l2),
            burst,
            rx: Vec::with_capacity(2 * burst),
            metas: vec![PacketMeta::new(0); 2 * burst],
            tx: (0..n).map(|_| Vec::with_capacity(burst)).collect(),
            tx_dirty: Vec::with_capacity(n),
            tx_marked: vec![false; n],
            flood_targets: Vec::with_capacity(n),
            ports: sockets,
            stats: WorkerCounters::default(),
            last_sweep: Timestamp(0),
            slots: vec![
                SocketSlot {
                    polled: true,
                    ..SocketSlot::default()
                };
                sockets_n
            ],
            polled: (0..sockets_n).collect(),
            tx_only: Vec::with_capacity(sockets_n),
            idle,
            woken: Vec::with_capacity(64),
            kernel_cache: vec![Default::default(); sockets_n],
            kernel_cursor: 0,
            last_wake_check: Timestamp(0),
        };
        // Neighbours learned from ARP go to the other workers (see
        // `switchyard_pipeline::router`): only when there are some.
        let share = worker.fabric.as_ref().is_some_and(|f| f.workers() > 1);
        worker.chain.router.share_neighbours(share);
        worker.audit_and_publish();
        worker
    }

    /// Counts the frames (a walk over the sockets) and publishes everything:
    /// at creation and after port changes, so a reader never sees a gauge
    /// older than the worker's last change.
    fn audit_and_publish(&mut self) {
        self.frames_accounted = self.frames_accounted() as u64;
        self.publish();
    }

    /// Binds global port `port` to the station the switch assigned it (or
    /// unbinds it): its frames with another source MAC or IPv4 address are
    /// dropped and counted. Control path (between bursts).
    pub fn bind_port(&mut self, port: PortId, binding: Option<PortBinding>) {
        self.chain.bind_port(port, binding);
    }

    /// Gives bridge domain `domain` its routed network (or none): the switch
    /// answers ARP and ping for its gateway and routes to and from it.
    /// Control path (between bursts).
    pub fn set_network(&mut self, domain: DomainId, network: Option<RoutedNetwork>) {
        self.chain.set_network(domain, network);
    }

    /// Sends what no network covers to `via` in `domain` (the uplink's next
    /// hop), or nowhere.
    pub fn set_default_route(&mut self, route: Option<(DomainId, std::net::Ipv4Addr)>) {
        self.chain.router.set_default_route(route);
    }

    /// Gives the router a NAT engine (masquerade toward `uplink`, published
    /// ports), or none; returns the engine it had (the caller decides where
    /// it is freed: a conntrack table is large).
    pub fn set_nat(
        &mut self,
        nat: Option<Box<switchyard_pipeline::nat::engine::Nat>>,
        uplink: Option<DomainId>,
    ) -> Option<Box<switchyard_pipeline::nat::engine::Nat>> {
        self.chain.router.set_nat(nat, uplink)
    }

    /// Swaps in new published ports and the node addresses they listen on
    /// (between bursts; established flows keep their translation). False
    /// when the worker has no NAT engine to give them to.
    pub fn set_published(
        &mut self,
        published: Arc<switchyard_pipeline::nat::published::PublishedPorts>,
        node_addresses: &[std::net::Ipv4Addr],
    ) -> bool {
        match self.chain.router.nat_mut() {
            Some(nat) => {
                nat.set_published(published, node_addresses);
                true
            }
            None => false,
        }
    }

    /// The NAT engine's counters and up to `limit` of its connections, if
    /// this worker runs NAT (control requests only).
    /// With `subnet`, only connections with an address in it are copied
    /// (filtered here, so the copy never exceeds `limit`).
    pub fn conntrack_dump(
        &self,
        limit: usize,
        subnet: Option<switchyard_config::Ipv4Cidr>,
        now: Timestamp,
    ) -> Option<crate::stats::ConntrackDump> {
        let nat = self.chain.router.nat()?;
        let wanted = |e: &switchyard_pipeline::conntrack::ConntrackEntry| {
            subnet.is_none_or(|net| {
                [e.original.src, e.original.dst, e.reply.src, e.reply.dst]
                    .into_iter()
                    .any(|ip| net.contains(ip))
            })
        };
        Some(crate::stats::ConntrackDump {
            stats: nat.stats(),
            entries: nat
                .table()
                .entries(now)
                .filter(wanted)
                .take(limit)
                .collect(),
        })
    }

    /// The router's neighbour table, copied out (control requests only).
    pub fn neighbours(&self) -> Vec<switchyard_pipeline::neighbour::NeighbourEntry> {
        self.chain.router.neighbours().entries().collect()
    }

    /// Records a configured neighbour (never aged, never asked for).
    pub fn set_static_neighbour(
        &mut self,
        ip: std::net::Ipv4Addr,
        mac: switchyard_pipeline::MacAddr,
    ) {
        self.chain.router.set_static_neighbour(ip, Some(mac));
    }

    /// Chooses the forwarding pipeline (the L2 switch unless told otherwise).
    pub fn set_pipeline(&mut self, pipeline: PipelineKind) {
        self.pipeline = pipeline;
    }

    /// Runs one loop turn; returns the number of frames received (from sockets
    /// and from other workers). Its cost follows traffic: it polls the busy
    /// sockets, transmits on the ports that have frames, and services the
    /// sockets that did either; idle sockets cost nothing until they receive.
    pub fn poll_once(&mut self, now: Timestamp) -> usize {
        self.apply_learn_events();
        self.apply_neighbour_events(now);
        if now.saturating_since(self.last_wake_check) >= WAKE_CHECK_NS {
            self.last_wake_check = now;
            self.wake(std::time::Duration::ZERO, now);
        }
        let mut received = 0;
        let mut i = 0;
        while i < self.polled.len() {
            let socket = self.polled[i];
            let n = self.receive_and_classify(socket, now);
            received += n;
            let slot = &mut self.slots[socket];
            if n > 0 {
                slot.idle_turns = 0;
            } else {
                slot.idle_turns = slot.idle_turns.saturating_add(1);
                if slot.idle_turns >= PARK_AFTER_IDLE_TURNS && self.park(socket, now) {
                    self.polled.swap_remove(i);
                    continue;
                }
            }
            i += 1;
        }
        received += self.take_handed_over(now);
        self.transmit();
        self.service_ports();
        if now.saturating_since(self.last_sweep) >= SWEEP_INTERVAL_NS {
            let budget = self
                .chain
                .l2
                .mac_table()
                .slot_count()
                .div_ceil(SWEEP_SLICES);
            self.chain.l2.sweep_step(now, budget.max(64));
            self.refresh_kernel_drops();
            self.last_sweep = now;
            if now.saturating_since(self.last_audit) >= AUDIT_INTERVAL_NS {
                self.last_audit = now;
                self.frames_accounted = self.frames_accounted() as u64;
            }
        }
        self.stats.loops += 1;
        self.stats.polled_sockets = self.polled.len() as u64;
        if received > 0 {
            self.stats.busy_loops += 1;
            self.stats.rx_packets += received as u64;
        }
        self.publish();
        received
    }

    /// Publishes the loop counters and gauges for the control thread: a fixed
    /// number of stores, whatever the port count (histograms only when changed).
    #[inline]
    fn publish(&mut self) {
        let gauges = TableGauges {
            l2: self.chain.l2.stats(),
            mac_entries: self.chain.l2.mac_table().len() as u64,
            frames_accounted: self.frames_accounted,
        };
        let stages = std::mem::take(&mut self.histograms_dirty).then(|| self.chain.reports());
        self.board.publish(&self.stats, &gauges, stages.as_ref());
    }

    /// Moves `socket` out of the polled set to wait for its next frame in the
    /// idle set. Refused (false) while it has transmissions in flight or when
    /// there is nothing to wait on.
    fn park(&mut self, socket: usize, now: Timestamp) -> bool {
        let Some(idle) = self.idle.as_mut() else {
            return false;
        };
        let port = &mut self.ports[socket];
        if port.tx_pending() {
            return false;
        }
        let Some(fd) = port.poll_fd() else {
            return false;
        };
        // Armed after the last empty poll: epoll looks at the ring when arming,
        // so a frame that arrived in between still wakes it.
        if idle.arm(fd, socket as u64).is_err() {
            return false;
        }
        self.slots[socket].polled = false;
        self.slots[socket].parked_at = now.0;
        self.stats.parks += 1;
        true
    }

    /// Parks every polled socket that can be parked (the worker is about to
    /// sleep); those with transmissions in flight stay polled.
    fn park_all(&mut self, now: Timestamp) {
        let mut i = 0;
        while i < self.polled.len() {
            if self.park(self.polled[i], now) {
                self.polled.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Takes parked sockets that received back into the polled set, waiting
    /// up to `timeout` for one; returns how many woke.
    fn wake(&mut self, timeout: std::time::Duration, now: Timestamp) -> usize {
        let Some(idle) = self.idle.as_ref() else {
            return 0;
        };
        idle.wait(&mut self.woken, timeout);
        let mut woke = 0;
        let mut rung = false;
        for k in 0..self.woken.len() {
            if self.woken[k] == DOORBELL_TOKEN {
                rung = true;
                continue;
            }
            let socket = self.woken[k] as usize;
            // A stale token (socket indices shift when a port is removed) at
            // worst polls some socket once more than needed.
            if let Some(slot) = self.slots.get_mut(socket) {
                if !slot.polled {
                    slot.polled = true;
                    slot.idle_turns = 0;
                    let parked_ns = now.0.saturating_sub(slot.parked_at);
                    self.ports[socket].woke_after(parked_ns);
                    self.polled.push(socket);
                    woke += 1;
                }
            }
        }
        self.stats.wakes += woke as u64;
        if let Some(fabric) = &self.fabric {
            fabric.woke(self.index, rung);
        }
        woke
    }

    /// The worker's idle wait: parks every socket and sleeps until one of them
    /// receives or `timeout` passes. Without sockets to wait on, just sleeps.
    /// `now` is the worker clock before sleeping (a woken socket's idle time
    /// is measured from when it was parked, so sleeping adds at most `timeout`
    /// of error to it).
    pub fn sleep_idle(&mut self, timeout: std::time::Duration, now: Timestamp) {
        self.count_idle_sleep();
        if self.idle.is_none() {
            std::thread::sleep(timeout);
            return;
        }
        self.park_all(now);
        // From here on, other workers ring this one's doorbell when they hand
        // it frames; if some came meanwhile, it does not sleep at all.
        if let Some(fabric) = &self.fabric {
            if !fabric.going_to_sleep(self.index) {
                return;
            }
        }
        self.wake(timeout, now);
    }

    /// Applies what other workers learned (bounded per turn).
    fn apply_learn_events(&mut self) {
        let Some(fabric) = &self.fabric else { return };
        for _ in 0..MAX_BURST {
            let Some(event) = fabric.next_event(self.index) else {
                break;
            };
            self.chain.l2.apply_learn_event(&event);
        }
    }

    /// Sends what this worker learned in the last batch to the other workers.
    fn publish_learn_events(&mut self) {
        if let Some(fabric) = &self.fabric {
            for event in self.chain.l2.learn_events() {
                fabric.publish(self.index, *event);
            }
        }
        self.chain.l2.clear_learn_events();
    }

    /// Applies the neighbours other workers' routers learned (bounded per
    /// turn) over an empty batch, and queues the frames that waited for them
    /// like a received burst's. Costs one look at the inbox when it is empty.
    fn apply_neighbour_events(&mut self, now: Timestamp) {
        let Some(fabric) = self.fabric.as_deref() else {
            return;
        };
        if self.pipeline != PipelineKind::L2 {
            return;
        }
        self.rx.clear();
        let mut applied = 0;
        {
            let mut frames = BatchFrames {
                pool: &mut self.pool,
                handles: &mut self.rx,
            };
            let mut batch = Batch::new(&mut frames, &mut self.metas, now);
            // Room for every frame a neighbour can release, so none is
            // dropped for want of a meta; the rest wait for the next turn.
            while applied < MAX_BURST && batch.room() >= QUEUE_PER_NEIGHBOUR {
                let Some(event) = fabric.next_neighbour_event(self.index) else {
                    break;
                };
                self.chain.apply_neighbour_event(&mut batch, &event);
                applied += 1;
            }
        }
        if applied == 0 {
            return;
        }
        self.stats.neighbour_events_applied += applied as u64;
        self.count_late_drops();
        if !self.rx.is_empty() {
            self.histograms_dirty = true;
            self.dispatch();
        }
    }

    /// Counts the parked frames the router dropped since the last call (they
    /// left their batch long ago) on their ingress ports.
    fn count_late_drops(&mut self) {
        let counters = &mut self.counters;
        self.chain.router.drain_late_drops(|port, reason| {
            if let Some(c) = counters.get_mut(usize::from(port)) {
                c.count_drop(reason);
            }
        });
    }

    /// Sends the neighbours this worker's router learned in the last batch
    /// to the other workers, and wakes those that sleep.
    fn publish_neighbour_events(&mut self) {
        let events = self.chain.router.neighbour_events();
        if events.is_empty() {
            return;
        }
        if let Some(fabric) = &self.fabric {
            for event in events {
                let dropped = fabric.publish_neighbour(self.index, *event);
                self.stats.neighbour_events_sent += 1;
                self.stats.neighbour_events_dropped += dropped as u64;
            }
            for peer in (0..fabric.workers()).filter(|&w| w != self.index) {
                fabric.ring(peer);
            }
        }
        self.chain.router.clear_neighbour_events();
    }

    /// Moves frames other workers handed over into this worker's pool and onto
    /// their output port's queue, or, for frames handed over to be processed
    /// here (NAT), through the pipeline in batches (bounded per turn).
    fn take_handed_over(&mut self, now: Timestamp) -> usize {
        if self.fabric.is_none() {
            return 0;
        }
        let mut taken = 0;
        self.rx.clear();
        while taken < self.burst * 4 {
            let Some(parcel) = self
                .fabric
                .as_deref()
                .and_then(|f| f.next_parcel(self.index))
            else {
                break;
            };
            let port = parcel.port as usize;
            if parcel.process {
                // A frame another worker received, for this one's pipeline:
                // batched like a received burst.
                match self.pool.alloc_from(&parcel.buf[..parcel.len]) {
                    Some(handle) => {
                        let k = self.rx.len();
                        self.rx.push(handle);
                        self.metas[k] = PacketMeta::new(parcel.port);
                    }
                    None => {
                        if let Some(c) = self.counters.get_mut(port) {
                            c.count_drop(DropReason::NoFreeFrame);
                        }
                    }
                }
            } else if matches!(self.routes.get(port), Some(TxRoute::Local(_))) {
                // Only the owner of a port is ever sent its frames (see placement).
                match self.pool.alloc_from(&parcel.buf[..parcel.len]) {
                    Some(handle) => self.stage(port, handle),
                    None => self.counters[port].count_drop(DropReason::NoFreeFrame),
                }
            }
            if let Some(f) = self.fabric.as_deref() {
                f.recycle(self.index, parcel);
            }
            taken += 1;
            if self.rx.len() == self.burst {
                self.classify_received(now, true);
                self.rx.clear();
            }
        }
        if !self.rx.is_empty() {
            self.classify_received(now, true);
            self.rx.clear();
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
        self.histograms_dirty = true;
        let mut bytes = 0;
        for (handle, meta) in self.rx.iter().zip(self.metas.iter_mut()) {
            bytes += self.pool.data(handle).len() as u64;
            *meta = PacketMeta::new(in_port);
        }
        self.counters[in_port as usize].count_rx(self.rx.len() as u64, bytes);
        self.classify_received(now, false);
        n
    }

    /// Runs the pipeline over the batch in hand (`rx`, `metas` set) and
    /// queues each frame on its output ports. `handed_in`: frames another
    /// worker handed over to be processed here (never handed on).
    fn classify_received(&mut self, now: Timestamp, handed_in: bool) {
        let n = self.rx.len();
        match self.pipeline {
            PipelineKind::L2 => {
                let mut frames = BatchFrames {
                    pool: &mut self.pool,
                    handles: &mut self.rx,
                };
                let mut batch = Batch::new(&mut frames, &mut self.metas, now);
                if handed_in {
                    batch = batch.handed_in();
                }
                self.chain.run(&mut batch);
                self.publish_learn_events();
                self.publish_neighbour_events();
                self.count_late_drops();
            }
            PipelineKind::Empty => {
                for meta in &mut self.metas[..n] {
                    let next = ((meta.in_port as usize + 1) % self.routes.len()) as PortId;
                    meta.verdict = Verdict::Forward(next);
                }
            }
        }
        self.dispatch();
    }

    /// Queues each frame of the batch in hand (received frames, then any that
    /// stages originated) on its output ports by its verdict, or frees it.
    fn dispatch(&mut self) {
        for k in 0..self.rx.len() {
            let handle = self.rx[k];
            let meta = self.metas[k];
            let from = meta.in_port as usize;
            match meta.verdict {
                Verdict::Forward(out) => self.stage(out as usize, handle),
                Verdict::Flood => self.flood(meta.in_port, meta.domain, handle),
                Verdict::Drop(reason) => self.drop_frame(from, reason, handle),
                // Until the gateway and neighbour stages exist nothing takes
                // these further: counted drops, never silent.
                Verdict::ToGateway => self.drop_frame(from, DropReason::NoGateway, handle),
                Verdict::Routed { .. } => {
                    self.drop_frame(from, DropReason::UnresolvedNextHop, handle)
                }
                // Consumed by a stage: nothing to send, not a drop.
                Verdict::Local => self.pool.free(handle),
                Verdict::HandOff(worker) => {
                    let worker = usize::from(worker);
                    let sent = self.fabric.as_ref().is_some_and(|fabric| {
                        let sent = fabric.hand_off_to_process(
                            worker,
                            meta.in_port,
                            self.pool.data(&handle),
                        );
                        fabric.ring(worker);
                        sent
                    });
                    if sent {
                        self.stats.handed_out += 1;
                        self.pool.free(handle);
                    } else {
                        self.drop_frame(from, DropReason::HandoffFull, handle);
                    }
                }
                Verdict::Pending => {
                    // Every stage sets a verdict; reaching here is a pipeline bug.
                    // Never leak the frame: count it where an operator will look.
                    debug_assert!(false, "pipeline left a frame pending");
                    self.drop_frame(from, DropReason::NoNetwork, handle);
                }
            }
        }
    }

    /// Counts a drop on global port `port` (the ingress) and frees the frame.
    #[inline]
    fn drop_frame(&mut self, port: usize, reason: DropReason, handle: Handle<P>) {
        if let Some(counters) = self.counters.get_mut(port) {
            counters.count_drop(reason);
        }
        self.pool.free(handle);
    }

    /// Queues one frame for global port `out`; a queue that reaches a burst is
    /// handed to its port at once.
    #[inline]
    fn stage(&mut self, out: usize, handle: Handle<P>) {
        let Some(queue) = self.tx.get_mut(out) else {
            self.pool.free(handle);
            return;
        };
        if !self.tx_marked[out] {
            self.tx_marked[out] = true;
            self.tx_dirty.push(out);
        }
        queue.push(handle);
        if queue.len() >= self.burst {
            self.transmit_port(out);
        }
    }

    /// Queues a flooded frame on every port of its domain but the ingress:
    /// copies for all but the last, the original for the last.
    fn flood(&mut self, in_port: PortId, domain: DomainId, handle: Handle<P>) {
        self.flood_targets.clear();
        self.flood_targets.extend(
            self.chain
                .l2
                .flood_ports(domain)
                .iter()
                .copied()
                .filter(|p| *p != in_port),
        );
        let Some(&last) = self.flood_targets.last() else {
            self.pool.free(handle);
            return;
        };
        for t in 0..self.flood_targets.len() - 1 {
            let target = self.flood_targets[t];
            match self.pool.alloc() {
                Some(mut copy) => {
                    self.pool.copy_into(&handle, &mut copy);
                    self.stage(target as usize, copy);
                }
                None => {
                    // An originated flood has no ingress port (NO_PORT).
                    if let Some(counters) = self.counters.get_mut(in_port as usize) {
                        counters.count_drop(DropReason::NoFreeFrame);
                    }
                }
            }
        }
        self.stage(last as usize, handle);
    }

    /// Hands every non-empty staging queue to its socket (one batch each), or
    /// to the worker that owns the port. Visits only ports with frames.
    fn transmit(&mut self) {
        for k in 0..self.tx_dirty.len() {
            let out = self.tx_dirty[k];
            self.transmit_port(out);
            self.tx_marked[out] = false;
        }
        self.tx_dirty.clear();
    }

    /// Hands global port `out`'s staged frames on (its queue is left empty but
    /// stays in `tx_dirty` until the end of the turn: harmless).
    fn transmit_port(&mut self, out: usize) {
        let queue = &mut self.tx[out];
        if queue.is_empty() {
            return;
        }
        let counters = &self.counters[out];
        match self.routes[out] {
            TxRoute::Local(socket) => {
                let result = self.ports[socket].tx_burst(&mut self.pool, queue);
                counters.count_tx(result.accepted as u64, result.accepted_bytes as u64);
                counters.count_drops(DropReason::TxRingFull, result.ring_full as u64);
                // A parked socket that transmits is serviced (kicked and its
                // completions collected) until its ring is empty.
                let slot = &mut self.slots[socket];
                if !slot.polled && !slot.tx_listed && result.accepted > 0 {
                    slot.tx_listed = true;
                    self.tx_only.push(socket);
                }
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
                if let Some(fabric) = &self.fabric {
                    fabric.ring(owner);
                }
            }
        }
    }

    /// Kicks transmit rings, recycles completions and refills receive rings of
    /// the polled sockets and of parked sockets with transmissions in flight.
    fn service_ports(&mut self) {
        for k in 0..self.polled.len() {
            let socket = self.polled[k];
            self.service_socket(socket);
        }
        let mut k = 0;
        while k < self.tx_only.len() {
            let socket = self.tx_only[k];
            let slot = self.slots[socket];
            if !slot.polled {
                self.service_socket(socket);
            }
            if slot.polled || !self.ports[socket].tx_pending() {
                self.slots[socket].tx_listed = false;
                self.tx_only.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    fn service_socket(&mut self, socket: usize) {
        if let Err(error) = self.ports[socket].service(&mut self.pool) {
            self.counters[self.socket_port[socket] as usize].count_drop(DropReason::TxError);
            self.stats.kick_errors += 1;
            if self.stats.kick_errors.is_power_of_two() {
                tracing::warn!(%error, count = self.stats.kick_errors, "transmit kick failed");
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
        let cells = Arc::new(PortCells::default());
        self.add_port_published(port, domain, sockets, route, cells);
    }

    /// [`add_port`](Self::add_port) counting into `cells`, which the caller
    /// (the control thread) made and keeps, so it reads the new port's
    /// counters without asking the worker.
    pub fn add_port_published(
        &mut self,
        port: PortId,
        domain: Option<DomainId>,
        sockets: Vec<P>,
        route: TxRoute,
        cells: Arc<PortCells>,
    ) {
        let index = port as usize;
        if index >= self.routes.len() {
            let burst = self.burst;
            self.routes.resize(index + 1, TxRoute::Absent);
            self.counters
                .resize_with(index + 1, || Arc::new(PortCells::default()));
            self.tx.resize_with(index + 1, || Vec::with_capacity(burst));
            self.tx_marked.resize(index + 1, false);
            self.tx_dirty
                .reserve((index + 1).saturating_sub(self.tx_dirty.capacity()));
        }
        // `route` names the new sockets from 0; they go after the existing ones.
        let route = match route {
            TxRoute::Local(k) => TxRoute::Local(self.ports.len() + k),
            other => other,
        };
        for mut socket in sockets {
            socket.adopt(&mut self.pool);
            if self.idle.is_none() && socket.poll_fd().is_some() {
                self.idle = idle_set(self.index, self.fabric.as_deref());
            }
            // A new socket starts polled; it parks after its first idle turns.
            self.polled.push(self.ports.len());
            self.slots.push(SocketSlot {
                polled: true,
                ..SocketSlot::default()
            });
            self.ports.push(socket);
            self.socket_port.push(port);
        }
        self.tx_only
            .reserve(self.ports.len().saturating_sub(self.tx_only.capacity()));
        self.routes[index] = route;
        self.counters[index] = cells;
        self.chain.l2.set_port_domain(port, domain);
        self.audit_and_publish();
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
        self.chain.l2.set_port_domain(port, None);
        self.bind_port(port, None);
        for handle in self.tx[index].drain(..) {
            self.pool.free(handle);
        }
        let mut reclaimed = 0;
        let mut kept_ports = Vec::with_capacity(self.ports.len());
        let mut kept_socket_port = Vec::with_capacity(self.ports.len());
        let mut kept_cache = Vec::with_capacity(self.ports.len());
        self.kernel_cache
            .resize(self.ports.len(), Default::default());
        let cache = std::mem::take(&mut self.kernel_cache);
        for ((mut socket, owner), cached) in self
            .ports
            .drain(..)
            .zip(self.socket_port.drain(..))
            .zip(cache)
        {
            if owner == port {
                if let (Some(idle), Some(fd)) = (self.idle.as_mut(), socket.poll_fd()) {
                    idle.remove(fd);
                }
                socket.release(&mut self.pool);
                reclaimed += socket.close(&mut self.pool);
            } else {
                kept_ports.push(socket);
                kept_socket_port.push(owner);
                kept_cache.push(cached);
            }
        }
        self.ports = kept_ports;
        self.socket_port = kept_socket_port;
        self.kernel_cache = kept_cache;
        // Socket indices shifted: poll every socket again (each parks anew
        // after its idle turns); tokens armed before are at worst spurious.
        self.slots = vec![
            SocketSlot {
                polled: true,
                ..SocketSlot::default()
            };
            self.ports.len()
        ];
        self.polled = (0..self.ports.len()).collect();
        self.tx_only.clear();
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
        self.audit_and_publish();
        reclaimed
    }

    /// Kernel-side drops per global port, summed over this worker's sockets,
    /// as last read (see [`refresh_kernel_drops`](Self::refresh_kernel_drops)),
    /// from the published cells: a report costs no system call per socket.
    pub fn kernel_drops(&self) -> Vec<switchyard_drivers::KernelDrops> {
        self.counters.iter().map(|c| c.read_kernel()).collect()
    }

    /// Reads the kernel's drop counters of the next socket (one system call),
    /// round-robin: called about once a millisecond, a thousand sockets are
    /// all fresh within a second and no report stalls the worker on them.
    fn refresh_kernel_drops(&mut self) {
        if self.ports.is_empty() {
            return;
        }
        self.kernel_cache
            .resize(self.ports.len(), Default::default());
        let socket = self.kernel_cursor % self.ports.len();
        self.refresh_kernel_drops_of(socket);
        self.kernel_cursor = socket + 1;
    }

    /// Reads one socket's kernel drop counters and publishes what grew since
    /// the last read on its port's cells.
    fn refresh_kernel_drops_of(&mut self, socket: usize) {
        let fresh = self.ports[socket].kernel_drops();
        let old = std::mem::replace(&mut self.kernel_cache[socket], fresh);
        let delta = switchyard_drivers::KernelDrops {
            rx_dropped: fresh.rx_dropped.saturating_sub(old.rx_dropped),
            rx_ring_full: fresh.rx_ring_full.saturating_sub(old.rx_ring_full),
            rx_fill_ring_empty: fresh
                .rx_fill_ring_empty
                .saturating_sub(old.rx_fill_ring_empty),
            tx_invalid: fresh.tx_invalid.saturating_sub(old.tx_invalid),
        };
        if let Some(cells) = self.counters.get(self.socket_port[socket] as usize) {
            cells.add_kernel(&delta);
        }
    }

    /// Reads every socket's kernel drop counters now (final report, tests).
    pub fn refresh_all_kernel_drops(&mut self) {
        self.kernel_cache
            .resize(self.ports.len(), Default::default());
        for socket in 0..self.ports.len() {
            self.refresh_kernel_drops_of(socket);
        }
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
        self.publish();
    }

    /// Counts one idle sleep of the back-off (published before it sleeps).
    pub fn count_idle_sleep(&mut self) {
        self.stats.idle_sleeps += 1;
        self.publish();
    }

    /// Counters of every port, by PortId (read from the published cells).
    pub fn port_counters(&self) -> Vec<PortCounters> {
        self.counters.iter().map(|c| c.read()).collect()
    }

    /// The published counters of every port, by PortId: clones of these are
    /// what a reader on another thread keeps.
    pub fn published_ports(&self) -> &[Arc<PortCells>] {
        &self.counters
    }

    /// The published loop counters and gauges (see [`crate::published`]).
    pub fn board(&self) -> &Arc<WorkerBoard> {
        &self.board
    }

    /// The worker's loop counters.
    pub fn counters(&self) -> &WorkerCounters {
        &self.stats
    }

    /// The L2 switch (tables and their stats).
    pub fn l2(&self) -> &L2Switch {
        &self.chain.l2
    }

    /// Per-stage counters of the pipeline, in chain order.
    pub fn stage_reports(&self) -> Vec<StageReport> {
        self.chain.reports().to_vec()
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

    /// Records how long a turn that received took (loop-turn histogram),
    /// and publishes it.
    pub fn record_turn(&mut self, nanos: u64) {
        self.stats.turn_durations.record(nanos);
        self.histograms_dirty = true;
        self.publish();
    }

    /// Takes the ports out (to close them), leaving the worker empty.
    pub fn take_ports(&mut self) -> Vec<P> {
        self.tx.clear();
        self.tx_dirty.clear();
        self.polled.clear();
        self.tx_only.clear();
        self.slots.clear();
        std::mem::take(&mut self.ports)
    }
}
