//! A poll worker's thread: pin to its core, open its sockets from its own UMEM,
//! say it is ready (handing the control thread its published counters), then
//! poll until told to stop, taking port changes between bursts. Stats are never
//! asked for: the control thread reads what the worker publishes (see
//! [`crate::published`]); only the stop request gets a final report.

use super::plan::SwitchPlan;
use crate::backoff::{Backoff, Wait};
use crate::fabric::Fabric;
use crate::placement::{TxRoute, WorkerPlacement};
use crate::published::{PortCells, WorkerBoard};
use crate::stats::WorkerReport;
use crate::worker::Worker;
use crossbeam::channel::{self, Receiver, Sender};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use switchyard_config::IdleMode;
use switchyard_drivers::afxdp::{
    AttachMode, Redirect, UmemHandle, UmemPool, XdpPort, XdpPortConfig,
};
use switchyard_drivers::{sys, PortError};
use switchyard_pipeline::guard::PortBinding;
use switchyard_pipeline::nat::engine::Nat;
use switchyard_pipeline::nat::published::PublishedPorts;
use switchyard_pipeline::neighbour::NeighbourEntry;
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{DomainId, L2Switch, PortId, Timestamp};
use tracing::warn;

/// Longest idle sleep in ppoll() when only the worker's own sockets can bring
/// work: frames wake it at once, so this only bounds how soon it takes a port
/// change or the stop request (stats are read without it).
const IDLE_POLL_MAX_SLEEP: Duration = Duration::from_millis(10);

/// What one worker is to run.
pub struct WorkerSpec {
    /// Worker index.
    pub index: usize,
    /// Core to pin to.
    pub core: usize,
    /// Its sockets and transmit routes.
    pub placement: WorkerPlacement,
    /// XDP mode per global port.
    pub modes: Vec<AttachMode>,
    /// The switch plan.
    pub plan: Arc<SwitchPlan>,
    /// What workers share.
    pub fabric: Arc<Fabric>,
    /// The clock epoch all workers share (learn events carry times).
    pub epoch: Instant,
    /// Interface whose queue `index` anchors this worker's UMEM (see
    /// `UmemPool::set_anchor`).
    pub anchor: Option<String>,
    /// The daemon's XDP program, already attached to every port's interface;
    /// each socket is steered into by it.
    pub redirect: Arc<Redirect>,
}

/// Messages from the control thread, read between bursts.
pub enum WorkerCommand {
    /// Drain, send a final report, close the sockets and exit.
    Stop(Sender<WorkerReport>),
    /// Add a port at run time: this worker's sockets on it (bound by the control
    /// thread on this worker's UMEM; maybe none) and how to reach it.
    AddPort {
        /// Global port index.
        port: PortId,
        /// Its bridge domain.
        domain: DomainId,
        /// This worker's sockets on it.
        sockets: Vec<XdpPort>,
        /// Transmit route; `Local(k)` names the k-th of `sockets`.
        route: TxRoute,
        /// Where the worker counts the port (the control thread reads it).
        cells: Arc<PortCells>,
        /// The port's network as the gateway and router see it (if it has
        /// a subnet and a gateway), set for its domain.
        network: Option<RoutedNetwork>,
        /// The station the port is bound to (attached containers): frames with
        /// another source are dropped.
        binding: Option<PortBinding>,
        /// Answered when done.
        done: Sender<()>,
    },
    /// Remove a port at run time; answers with the frames reclaimed.
    RemovePort {
        /// Global port index.
        port: PortId,
        /// Answered when done.
        done: Sender<usize>,
    },
    /// Copy out the router's neighbour table (`ctl neighbours`: on request
    /// only, a few thousand entries at most).
    Neighbours(Sender<Vec<NeighbourEntry>>),
    /// Copy out the NAT engine's counters and up to `limit` connections
    /// (`ctl conntrack`; `None` from a worker without the engine).
    Conntrack {
        /// Most entries copied.
        limit: usize,
        /// Only entries with an address in this subnet (`--network`).
        subnet: Option<switchyard_config::Ipv4Cidr>,
        /// Answered with the copy.
        done: Sender<Option<crate::stats::ConntrackDump>>,
    },
    /// Swap in new published ports, built whole on the control thread (the
    /// worker never sees a half-made table), and the node addresses they
    /// listen on. The control thread keeps its own reference to the table,
    /// so the one the worker lets go is never freed here. Answers false if
    /// the worker has no NAT engine.
    SetPublished {
        /// The new table.
        published: Arc<PublishedPorts>,
        /// The node's addresses.
        node_addresses: Arc<[Ipv4Addr]>,
        /// Answered when done.
        done: Sender<bool>,
    },
    /// Turn NAT on (or off) at run time, for the first published port of a
    /// switch started without NAT: each worker gets an engine made on the
    /// control thread (its conntrack table is allocated there). Answers
    /// with the engine it replaced, so that is freed on the control thread
    /// too.
    SetNat {
        /// The engine, or none.
        nat: Option<Box<Nat>>,
        /// The uplink's domain (where masquerade applies).
        uplink: Option<DomainId>,
        /// Answered when done.
        done: Sender<Option<Box<Nat>>>,
    },
}

/// A socket that failed to open, by global port index.
#[derive(Debug)]
pub struct OpenError {
    /// Global port index.
    pub port: usize,
    /// What went wrong.
    pub error: PortError,
}

/// A running worker.
pub struct WorkerHandle {
    /// Worker index.
    pub index: usize,
    /// Core it is pinned to.
    pub core: usize,
    /// Commands to it.
    pub commands: Sender<WorkerCommand>,
    /// Its UMEM, for binding hot-plugged sockets on the control thread.
    pub umem: UmemHandle,
    /// Frames in its UMEM (admission of hot-plugged ports).
    pub frames: usize,
    /// Its thread.
    pub thread: JoinHandle<()>,
    /// Its kernel thread id (its CPU time is read from /proc by the control
    /// thread), if it could be found.
    pub thread_id: Option<u32>,
    /// Its published loop counters and gauges.
    pub board: Arc<WorkerBoard>,
    /// Its published counters of each port, by global port index (`None`:
    /// never a port).
    pub ports: Vec<Option<Arc<PortCells>>>,
    /// The (global port, queue) pairs it has sockets on, kept by the control
    /// thread as ports come and go.
    pub sockets: Vec<(usize, u32)>,
    /// Most entries its MAC table holds.
    pub mac_capacity: usize,
}

impl WorkerHandle {
    /// A report built from what the worker published, without asking it:
    /// answers at once whatever the worker is doing.
    pub fn read_report(&self) -> WorkerReport {
        let board = self.board.read();
        let mut counters = board.counters;
        if let Some(cpu) = self.thread_id.and_then(sys::thread_cpu_time_of) {
            counters.cpu_ms = cpu.as_millis() as u64;
        }
        let cells = self.ports.iter();
        WorkerReport {
            index: self.index,
            core: self.core,
            counters,
            ports: cells
                .clone()
                .map(|c| c.as_ref().map(|c| c.read()).unwrap_or_default())
                .collect(),
            l2: board.gauges.l2,
            mac_entries: board.gauges.mac_entries as usize,
            mac_capacity: self.mac_capacity,
            frames_total: self.frames,
            frames_accounted: board.gauges.frames_accounted as usize,
            // Checked at the final report only.
            free_list_unique: true,
            sockets: self.sockets.clone(),
            kernel_drops: cells
                .map(|c| c.as_ref().map(|c| c.read_kernel()).unwrap_or_default())
                .collect(),
            stages: board
                .stages
                .iter()
                .zip(switchyard_pipeline::chain::Chain::NAMES)
                .map(|(counters, name)| switchyard_pipeline::stage::StageReport {
                    name,
                    counters: *counters,
                })
                .collect(),
        }
    }
}

/// How long the control thread waits for a worker to answer the stop request.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells every worker to stop and collects their final reports; `None` if any
/// did not answer in time.
pub fn stop_all(workers: &[WorkerHandle]) -> Option<Vec<WorkerReport>> {
    // One deadline for all workers: a stuck one costs REPORT_TIMEOUT once.
    let deadline = Instant::now() + REPORT_TIMEOUT;
    let replies: Vec<_> = workers
        .iter()
        .map(|w| {
            let (tx, rx) = channel::bounded(1);
            // Bounded even when a stuck worker's command channel is full.
            w.commands
                .send_deadline(WorkerCommand::Stop(tx), deadline)
                .ok()
                .map(|_| rx)
        })
        .collect();
    replies
        .into_iter()
        .zip(workers)
        .map(|(rx, worker)| {
            let mut report = rx?.recv_deadline(deadline).ok()?;
            // Before the join: the thread still exists while it closes sockets.
            if let Some(cpu) = worker.thread_id.and_then(sys::thread_cpu_time_of) {
                report.counters.cpu_ms = cpu.as_millis() as u64;
            }
            Some(report)
        })
        .collect()
}

/// What a worker hands the control thread once its sockets are open.
struct Ready {
    umem: UmemHandle,
    frames: usize,
    thread_id: Option<u32>,
    board: Arc<WorkerBoard>,
    ports: Vec<Arc<PortCells>>,
    mac_capacity: usize,
}

/// Starts a worker and waits until its sockets are open (or failed).
pub fn spawn(spec: WorkerSpec) -> Result<WorkerHandle, OpenError> {
    let (commands, command_rx) = channel::bounded(4);
    let (ready_tx, ready_rx) = channel::bounded(1);
    let (index, core) = (spec.index, spec.core);
    let sockets = spec
        .placement
        .sockets
        .iter()
        .map(|s| (s.port, s.queue))
        .collect();
    let thread = std::thread::Builder::new()
        .name(format!("sy-worker-{}", spec.index))
        .spawn(move || run(spec, command_rx, ready_tx))
        .map_err(|e| OpenError {
            port: 0,
            error: PortError::Invalid(format!("cannot start a worker thread: {e}")),
        })?;
    match ready_rx.recv() {
        Ok(Ok(ready)) => Ok(WorkerHandle {
            index,
            core,
            commands,
            umem: ready.umem,
            frames: ready.frames,
            thread,
            thread_id: ready.thread_id,
            board: ready.board,
            ports: ready.ports.into_iter().map(Some).collect(),
            sockets,
            mac_capacity: ready.mac_capacity,
        }),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => {
            let _ = thread.join();
            Err(OpenError {
                port: 0,
                error: PortError::Invalid("the worker thread ended during setup".into()),
            })
        }
    }
}

fn run(
    spec: WorkerSpec,
    commands: Receiver<WorkerCommand>,
    ready: Sender<Result<Ready, OpenError>>,
) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: spec.core }) {
        warn!(core = spec.core, "could not pin the worker to its core");
    }
    let mut worker = match open(&spec) {
        Ok(worker) => worker,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let _ = ready.send(Ok(Ready {
        umem: worker.pool().umem_handle(),
        frames: worker.frames_total(),
        thread_id: sys::current_thread_id(),
        board: Arc::clone(worker.board()),
        ports: worker.published_ports().to_vec(),
        mac_capacity: worker.l2().mac_table().capacity(),
    }));

    let epoch = spec.epoch;
    let now = || Timestamp(epoch.elapsed().as_nanos() as u64);
    // Frames wake a worker sleeping on its sockets, and handed-over frames
    // ring its doorbell; only without doorbells do the sleeps stay short.
    let max_sleep = if spec.fabric.has_handoff() && !spec.fabric.wakes_sleepers() {
        crate::backoff::MAX_SLEEP
    } else {
        IDLE_POLL_MAX_SLEEP
    };
    let mut backoff = Backoff::with_max_sleep(max_sleep);
    loop {
        let start = now();
        let received = worker.poll_once(start);
        if received > 0 {
            worker.record_turn(now().saturating_since(start));
        }
        match commands.try_recv() {
            Ok(WorkerCommand::Stop(reply)) => {
                worker.drain();
                let final_report = final_report(&spec, &mut worker);
                // Answer first: closing a thousand sockets takes the kernel
                // seconds, and the control thread joins this thread anyway.
                let _ = reply.send(final_report);
                close(worker);
                return;
            }
            Ok(WorkerCommand::AddPort {
                port,
                domain,
                sockets,
                route,
                cells,
                network,
                binding,
                done,
            }) => {
                worker.set_network(domain, network);
                worker.bind_port(port, binding);
                worker.add_port_published(port, Some(domain), sockets, route, cells);
                let _ = done.send(());
            }
            Ok(WorkerCommand::RemovePort { port, done }) => {
                let reclaimed = worker.remove_port(port);
                let _ = done.send(reclaimed);
            }
            Ok(WorkerCommand::Conntrack {
                limit,
                subnet,
                done,
            }) => {
                let _ = done.send(worker.conntrack_dump(limit, subnet, now()));
            }
            Ok(WorkerCommand::Neighbours(done)) => {
                let _ = done.send(worker.neighbours());
            }
            Ok(WorkerCommand::SetPublished {
                published,
                node_addresses,
                done,
            }) => {
                let _ = done.send(worker.set_published(published, &node_addresses));
            }
            Ok(WorkerCommand::SetNat { nat, uplink, done }) => {
                let _ = done.send(worker.set_nat(nat, uplink));
            }
            Err(channel::TryRecvError::Empty) => {}
            Err(channel::TryRecvError::Disconnected) => {
                close(worker);
                return;
            }
        }
        if spec.plan.idle == IdleMode::BusyPoll {
            std::hint::spin_loop();
            continue;
        }
        match backoff.after_turn(received) {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
            Wait::Sleep(duration) => worker.sleep_idle(duration, now()),
        }
    }
}

/// Creates the worker's UMEM and opens its sockets in order.
fn open(spec: &WorkerSpec) -> Result<Worker<XdpPort>, OpenError> {
    let plan = &spec.plan;
    let ring = plan.ring_size;
    let fill_size = plan.fill_max();
    let sockets = spec.placement.sockets.len() as u32;
    // Every socket's minimum, a busy socket's rings and the reserve.
    let needed = plan.frames_needed(sockets as usize) as u32;
    let frames = plan.umem_frames.max(needed.next_power_of_two());
    let mut pool = UmemPool::new(frames, fill_size, fill_size)
        .map_err(|error| OpenError { port: 0, error })?;
    pool.set_reserve(plan.reserve());
    pool.set_burst_allowance(SwitchPlan::BURST_ALLOWANCE);
    if let Some(anchor) = &spec.anchor {
        let config = XdpPortConfig {
            interface: anchor.clone(),
            queue: spec.index as u32,
            mode: AttachMode::Generic,
            ring_size: ring,
            fill_min: 0,
            fill_burst: 0,
            fill_max: 0,
            redirect: None,
            busy_retry: Duration::from_secs(3),
        };
        let socket = XdpPort::open_unfilled(pool.umem(), &config).map_err(|error| OpenError {
            port: usize::MAX,
            error,
        })?;
        pool.set_anchor(socket);
    }
    let mut opened = Vec::with_capacity(spec.placement.sockets.len());
    for socket in &spec.placement.sockets {
        let port = &plan.ports[socket.port];
        let config = XdpPortConfig {
            interface: port.interface.clone(),
            queue: socket.queue,
            mode: spec.modes[socket.port],
            ring_size: ring,
            fill_min: SwitchPlan::FILL_MIN,
            fill_burst: SwitchPlan::FILL_BURST,
            fill_max: fill_size,
            redirect: Some(Arc::clone(&spec.redirect)),
            busy_retry: Duration::from_secs(3),
        };
        match XdpPort::open(&mut pool, &config) {
            Ok(xsk) => opened.push(xsk),
            Err(error) => {
                return Err(OpenError {
                    port: socket.port,
                    error,
                })
            }
        }
    }
    let mut l2 = L2Switch::new(plan.l2);
    for (index, port) in plan.ports.iter().enumerate() {
        l2.set_port_domain(index as PortId, Some(port.domain));
    }
    let socket_port = spec
        .placement
        .sockets
        .iter()
        .map(|s| s.port as PortId)
        .collect();
    let mut worker = Worker::with_placement(
        spec.index,
        pool,
        opened,
        socket_port,
        spec.placement.tx.clone(),
        Some(Arc::clone(&spec.fabric)),
        l2,
        plan.burst,
    );
    worker.set_pipeline(plan.pipeline);
    for (domain, network) in plan.networks.iter().enumerate() {
        worker.set_network(domain as DomainId, *network);
    }
    if let Some(nat) = &plan.nat {
        // Every worker its own engine (see `NatPlan`).
        let _ = worker.set_nat(Some(Box::new(nat.engine(spec.index))), nat.uplink_domain);
    }
    if let Some(host) = &plan.host {
        worker.set_static_neighbour(host.neighbour.0, host.neighbour.1);
    }
    if let Some(uplink) = &plan.uplink {
        worker.set_default_route(uplink.next_hop.map(|via| (uplink.domain, via)));
        for &(ip, mac) in &uplink.neighbours {
            worker.set_static_neighbour(ip, mac);
        }
    }
    Ok(worker)
}

/// Closes the sockets and releases the UMEM. XDP programs are detached by the
/// control thread once every worker has closed (they are per interface).
fn close(mut worker: Worker<XdpPort>) {
    drop(worker.take_ports());
}

/// The report a stopping worker sends: like the published one, plus what
/// only the worker can check (every socket's kernel counters, the free list).
fn final_report(spec: &WorkerSpec, worker: &mut Worker<XdpPort>) -> WorkerReport {
    if let Some(cpu) = sys::thread_cpu_time() {
        worker.set_cpu_time(cpu);
    }
    worker.refresh_all_kernel_drops();
    WorkerReport {
        index: spec.index,
        core: spec.core,
        counters: *worker.counters(),
        ports: worker.port_counters(),
        l2: worker.l2().stats(),
        mac_entries: worker.l2().mac_table().len(),
        mac_capacity: worker.l2().mac_table().capacity(),
        frames_total: worker.frames_total(),
        frames_accounted: worker.frames_accounted(),
        free_list_unique: worker.free_list_is_unique(),
        sockets: spec
            .placement
            .sockets
            .iter()
            .map(|s| (s.port, s.queue))
            .collect(),
        kernel_drops: worker.kernel_drops(),
        stages: worker.stage_reports(),
    }
}
