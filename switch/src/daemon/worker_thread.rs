//! A poll worker's thread: pin to its core, open its sockets from its own UMEM,
//! say it is ready, then poll until told to stop, answering stats requests
//! between bursts.

use super::plan::SwitchPlan;
use crate::backoff::{Backoff, Wait};
use crate::fabric::Fabric;
use crate::placement::{TxRoute, WorkerPlacement};
use crate::stats::WorkerReport;
use crate::worker::Worker;
use crossbeam::channel::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use switchyard_config::IdleMode;
use switchyard_drivers::afxdp::{
    AttachMode, Redirect, UmemHandle, UmemPool, XdpPort, XdpPortConfig,
};
use switchyard_drivers::{sys, PortError};
use switchyard_pipeline::{DomainId, L2Switch, PortId, Timestamp};
use tracing::warn;

/// Longest idle sleep in ppoll() when only the worker's own sockets can bring
/// work: frames wake it at once, so this only bounds stats and shutdown latency.
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
    /// Send a report of the counters; with `fdb` also the MAC table (a walk of
    /// the whole table: only when someone asked for it).
    Report {
        /// Where to send it.
        reply: Sender<WorkerReport>,
        /// Include the FDB.
        fdb: bool,
    },
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
    /// Commands to it.
    pub commands: Sender<WorkerCommand>,
    /// Its UMEM, for binding hot-plugged sockets on the control thread.
    pub umem: UmemHandle,
    /// Frames in its UMEM (admission of hot-plugged ports).
    pub frames: usize,
    /// Its thread.
    pub thread: JoinHandle<()>,
}

/// How long the control thread waits for a worker to answer a report request.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks every worker for a report (with `stop`: its final report, after which it
/// exits); `None` if any did not answer in time.
pub fn ask_all(workers: &[WorkerHandle], stop: bool, fdb: bool) -> Option<Vec<WorkerReport>> {
    // One deadline for all workers: a stuck one costs REPORT_TIMEOUT once.
    let deadline = Instant::now() + REPORT_TIMEOUT;
    let replies: Vec<_> = workers
        .iter()
        .map(|w| {
            let (tx, rx) = channel::bounded(1);
            let command = if stop {
                WorkerCommand::Stop(tx)
            } else {
                WorkerCommand::Report { reply: tx, fdb }
            };
            // Bounded even when a stuck worker's command channel is full.
            w.commands.send_deadline(command, deadline).ok().map(|_| rx)
        })
        .collect();
    replies
        .into_iter()
        .map(|rx| rx?.recv_deadline(deadline).ok())
        .collect()
}

/// Starts a worker and waits until its sockets are open (or failed).
pub fn spawn(spec: WorkerSpec) -> Result<WorkerHandle, OpenError> {
    let (commands, command_rx) = channel::bounded(4);
    let (ready_tx, ready_rx) = channel::bounded(1);
    let thread = std::thread::Builder::new()
        .name(format!("sy-worker-{}", spec.index))
        .spawn(move || run(spec, command_rx, ready_tx))
        .map_err(|e| OpenError {
            port: 0,
            error: PortError::Invalid(format!("cannot start a worker thread: {e}")),
        })?;
    match ready_rx.recv() {
        Ok(Ok((umem, frames))) => Ok(WorkerHandle {
            commands,
            umem,
            frames,
            thread,
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
    ready: Sender<Result<(UmemHandle, usize), OpenError>>,
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
    let _ = ready.send(Ok((worker.pool().umem_handle(), worker.frames_total())));

    let epoch = spec.epoch;
    let now = || Timestamp(epoch.elapsed().as_nanos() as u64);
    // Frames wake a worker sleeping on its sockets; handed-over frames from
    // other workers do not, so with handoff the sleeps stay short.
    let max_sleep = if spec.fabric.has_handoff() {
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
            Ok(WorkerCommand::Report { reply, fdb }) => {
                let _ = reply.send(report(&spec, &mut worker, now(), false, fdb));
            }
            Ok(WorkerCommand::Stop(reply)) => {
                worker.drain();
                let final_report = report(&spec, &mut worker, now(), true, true);
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
                done,
            }) => {
                worker.add_port(port, Some(domain), sockets, route);
                let _ = done.send(());
            }
            Ok(WorkerCommand::RemovePort { port, done }) => {
                let reclaimed = worker.remove_port(port);
                let _ = done.send(reclaimed);
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
    if let Some(anchor) = &spec.anchor {
        let config = XdpPortConfig {
            interface: anchor.clone(),
            queue: spec.index as u32,
            mode: AttachMode::Generic,
            ring_size: ring,
            fill_min: 0,
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
    Ok(worker)
}

/// Closes the sockets and releases the UMEM. XDP programs are detached by the
/// control thread once every worker has closed (they are per interface).
fn close(mut worker: Worker<XdpPort>) {
    drop(worker.take_ports());
}

fn report(
    spec: &WorkerSpec,
    worker: &mut Worker<XdpPort>,
    now: Timestamp,
    audit: bool,
    with_fdb: bool,
) -> WorkerReport {
    if let Some(cpu) = sys::thread_cpu_time() {
        worker.set_cpu_time(cpu);
    }
    if audit {
        // The final report reads every socket's kernel counters; the others
        // use what the worker read a socket per millisecond.
        worker.refresh_all_kernel_drops();
    }
    WorkerReport {
        index: spec.index,
        core: spec.core,
        counters: *worker.counters(),
        ports: worker.port_counters().to_vec(),
        l2: worker.l2().stats(),
        mac_entries: worker.l2().mac_table().len(),
        mac_capacity: worker.l2().mac_table().capacity(),
        fdb: if with_fdb {
            worker.fdb(now)
        } else {
            Vec::new()
        },
        frames_total: worker.frames_total(),
        frames_accounted: worker.frames_accounted(),
        free_list_unique: !audit || worker.free_list_is_unique(),
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
