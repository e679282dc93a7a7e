//! `switchyard run` and `switchyard check`: turn a config into a running worker,
//! serve its counters, and shut down cleanly on SIGINT/SIGTERM (sockets closed,
//! XDP programs detached, frames audited).

use crate::backoff::{Backoff, Wait};
use crate::stats::{FdbStats, MacTableStats, PortStats, Snapshot, WorkerReport, WorkerStats};
use crate::worker::{PipelineKind, Worker};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam::channel::{self, Receiver, Sender};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_config::{ConfigError, ConfigIssue, NodeConfig, PipelineMode, PortDriver, XdpMode};
use switchyard_drivers::afxdp::{AttachMode, UmemPool, XdpModeChoice, XdpPort, XdpPortConfig};
use switchyard_drivers::sys;
use switchyard_drivers::PortError;
use switchyard_pipeline::{DomainId, L2Config, L2Switch, PortId, Timestamp};
use tracing::{info, warn};

/// Loads a config and rejects what this build cannot run, without touching the system.
fn load_checked(path: &Path) -> Result<NodeConfig> {
    let config = switchyard_config::load(path).map_err(|e| anyhow!("invalid config:\n{e}"))?;
    let unsupported: Vec<ConfigIssue> = config
        .ports
        .iter()
        .enumerate()
        .filter(|(_, port)| port.driver == PortDriver::VhostUser)
        .map(|(i, port)| {
            ConfigIssue::new(
                Some(port.location),
                format!("port[{i}].driver"),
                "the vhost-user driver is not available in this build yet; use \"af_xdp\"",
            )
        })
        .collect();
    if !unsupported.is_empty() {
        bail!(
            "invalid config:\n{}",
            ConfigError::new(config.origin.clone(), unsupported)
        );
    }
    Ok(config)
}

/// `switchyard check`: validates the file and prints a one-line summary.
pub fn check(path: &Path) -> Result<()> {
    let config = load_checked(path)?;
    println!(
        "{}: OK ({} network(s), {} port(s), {} worker core(s))",
        config.origin,
        config.networks.len(),
        config.ports.len(),
        config.switch.workers.len()
    );
    Ok(())
}

/// One port as the worker will run it.
#[derive(Clone, Debug)]
struct PortPlan {
    name: String,
    interface: String,
    network: String,
    domain: DomainId,
    mode: XdpModeChoice,
}

/// Everything a worker thread needs to build itself.
#[derive(Clone, Debug)]
struct WorkerPlan {
    index: usize,
    core: usize,
    ports: Vec<PortPlan>,
    ring_size: u32,
    umem_frames: u32,
    burst: usize,
    l2: L2Config,
    pipeline: PipelineKind,
}

/// Messages from the control thread to a worker, read between bursts.
enum WorkerCommand {
    /// Send a report of the counters.
    Report(Sender<WorkerReport>),
    /// Drain, send a final report, close the ports and exit.
    Stop(Sender<WorkerReport>),
}

fn mode_choice(mode: XdpMode) -> XdpModeChoice {
    match mode {
        XdpMode::Auto => XdpModeChoice::Auto,
        XdpMode::Native => XdpModeChoice::Native,
        XdpMode::Generic => XdpModeChoice::Generic,
    }
}

/// Checks what the config needs from the system (interfaces, cores), reporting
/// every problem at its place in the file.
fn check_system(config: &NodeConfig) -> Result<()> {
    let mut issues = Vec::new();
    for (i, port) in config.ports.iter().enumerate() {
        if let Some(interface) = &port.interface {
            if sys::interface_index(interface).is_none() {
                issues.push(ConfigIssue::new(
                    port.interface_location.or(Some(port.location)),
                    format!("port[{i}].interface"),
                    format!("interface {interface:?} does not exist"),
                ));
            }
        }
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for core in &config.switch.workers {
        if !cores.iter().any(|c| c.id == *core) {
            issues.push(ConfigIssue::new(
                None,
                "switch.workers".to_string(),
                format!(
                    "core {core} is not available (this machine offers cores 0..{})",
                    cores.len()
                ),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        bail!(
            "cannot run this config here:\n{}",
            ConfigError::new(config.origin.clone(), issues)
        )
    }
}

fn plan(config: &NodeConfig) -> WorkerPlan {
    let ports = config
        .ports
        .iter()
        .map(|port| PortPlan {
            name: port.name.clone(),
            interface: port.interface.clone().unwrap_or_default(),
            network: port.network.clone(),
            domain: config
                .networks
                .iter()
                .position(|n| n.name == port.network)
                .unwrap_or(0) as DomainId,
            mode: mode_choice(port.effective_xdp_mode(&config.switch)),
        })
        .collect();
    WorkerPlan {
        index: 0,
        core: config.switch.workers[0],
        ports,
        ring_size: config.switch.ring_size,
        umem_frames: config.switch.umem_frames,
        burst: config.switch.burst_size,
        l2: L2Config {
            max_entries: config.switch.mac_table_size,
            aging_ns: config.switch.mac_aging_secs.saturating_mul(1_000_000_000),
        },
        pipeline: match config.switch.pipeline {
            PipelineMode::L2 => PipelineKind::L2,
            PipelineMode::Empty => PipelineKind::Empty,
        },
    }
}

/// `switchyard run`: attaches the ports, forwards until a signal, then shuts down.
pub fn run(path: &Path, stats_file: Option<&Path>) -> Result<()> {
    let config = load_checked(path)?;
    let missing = sys::missing_capabilities();
    if !missing.is_empty() {
        bail!(
            "switchyard run must run as root, or with CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF, \
             to attach XDP programs and open AF_XDP sockets; missing: {}",
            missing.join(", ")
        );
    }
    check_system(&config)?;
    switchyard_drivers::afxdp::xdp_program::quiet_library_logs();
    if config.switch.workers.len() > 1 {
        warn!(
            cores = ?config.switch.workers,
            "this build runs one poll worker; using core {} only",
            config.switch.workers[0]
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let plan = plan(&config);
    let (command_tx, command_rx) = channel::bounded(4);
    let (ready_tx, ready_rx) = channel::bounded(1);
    let worker_plan = plan.clone();
    let handle = std::thread::Builder::new()
        .name(format!("sy-worker-{}", plan.index))
        .spawn(move || worker_thread(worker_plan, command_rx, ready_tx))
        .context("starting the worker thread")?;
    let modes: Vec<&'static str> = match ready_rx.recv() {
        Ok(Ok(modes)) => modes,
        Ok(Err(message)) => {
            let _ = handle.join();
            bail!("{message}");
        }
        Err(_) => {
            let _ = handle.join();
            bail!("the worker thread ended during setup");
        }
    };

    let write_stats = |snapshot: &Snapshot| {
        if let Some(path) = stats_file {
            if let Err(error) = write_atomically(path, snapshot) {
                warn!(%error, path = %path.display(), "cannot write the stats file");
            }
        }
    };
    let ask = |make: fn(Sender<WorkerReport>) -> WorkerCommand| -> Option<WorkerReport> {
        let (tx, rx) = channel::bounded(1);
        command_tx.send(make(tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(10)).ok()
    };

    if let Some(report) = ask(WorkerCommand::Report) {
        write_stats(&snapshot(&plan, &modes, &report, false));
    }
    info!(
        ports = plan.ports.len(),
        core = plan.core,
        "switchyard ready"
    );

    let interval = Duration::from_secs(config.switch.stats_interval_secs);
    let mut next_stats = Instant::now() + interval;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if handle.is_finished() {
            bail!("the worker thread stopped unexpectedly");
        }
        if !interval.is_zero() && Instant::now() >= next_stats {
            next_stats += interval;
            if let Some(report) = ask(WorkerCommand::Report) {
                let snap = snapshot(&plan, &modes, &report, false);
                log_summary(&snap);
                write_stats(&snap);
            }
        }
    }

    info!("stopping");
    let final_report = ask(WorkerCommand::Stop);
    let _ = handle.join();
    let report = final_report.ok_or_else(|| anyhow!("the worker did not report on stop"))?;
    let snap = snapshot(&plan, &modes, &report, true);
    write_stats(&snap);
    print_final(&snap);
    if report.frames_accounted != report.frames_total || !report.free_list_unique {
        bail!(
            "frame audit failed: {} of {} UMEM frames accounted for, free list unique: {}",
            report.frames_accounted,
            report.frames_total,
            report.free_list_unique
        );
    }
    Ok(())
}

/// The worker thread: pin, open ports, report readiness, poll until told to stop.
fn worker_thread(
    plan: WorkerPlan,
    commands: Receiver<WorkerCommand>,
    ready: Sender<std::result::Result<Vec<&'static str>, String>>,
) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: plan.core }) {
        warn!(core = plan.core, "could not pin the worker to its core");
    }
    let mut worker = match open_worker(&plan) {
        Ok(worker) => worker,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let modes = worker.ports().iter().map(|p| p.mode().name()).collect();
    let _ = ready.send(Ok(modes));

    let start = Instant::now();
    let now = || Timestamp(start.elapsed().as_nanos() as u64);
    let mut backoff = Backoff::default();
    loop {
        let received = worker.poll_once(now());
        match commands.try_recv() {
            Ok(WorkerCommand::Report(reply)) => {
                let _ = reply.send(report(&plan, &worker, now(), false));
            }
            Ok(WorkerCommand::Stop(reply)) => {
                worker.drain();
                let final_report = report(&plan, &worker, now(), true);
                close(&plan, worker);
                let _ = reply.send(final_report);
                return;
            }
            Err(channel::TryRecvError::Empty) => {}
            Err(channel::TryRecvError::Disconnected) => {
                close(&plan, worker);
                return;
            }
        }
        match backoff.after_turn(received) {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
            Wait::Sleep(duration) => {
                worker.count_idle_sleep();
                std::thread::sleep(duration);
            }
        }
    }
}

/// Opens the worker's ports, native XDP first where the config says `auto`.
/// A port whose native attach fails is downgraded to generic mode and the whole
/// setup is retried with a fresh UMEM (see [`XdpPort::open`] for why).
fn open_worker(plan: &WorkerPlan) -> std::result::Result<Worker<XdpPort>, String> {
    let mut modes: Vec<AttachMode> = plan
        .ports
        .iter()
        .map(|p| {
            if p.mode == XdpModeChoice::Generic {
                AttachMode::Generic
            } else {
                AttachMode::Native
            }
        })
        .collect();
    loop {
        match try_open_worker(plan, &modes) {
            Ok(worker) => return Ok(worker),
            Err((index, error)) => {
                let port = &plan.ports[index];
                if port.mode == XdpModeChoice::Auto && modes[index] == AttachMode::Native {
                    warn!(port = %port.name, interface = %port.interface, %error, "native XDP failed; falling back to generic mode");
                    modes[index] = AttachMode::Generic;
                    continue;
                }
                return Err(format!(
                    "port {:?} (interface {}): {error}",
                    port.name, port.interface
                ));
            }
        }
    }
}

/// Creates the UMEM and opens every port in the given modes; on failure closes
/// what was opened and says which port failed.
fn try_open_worker(
    plan: &WorkerPlan,
    modes: &[AttachMode],
) -> std::result::Result<Worker<XdpPort>, (usize, PortError)> {
    let ring = plan.ring_size;
    let fill_size = ring * 2;
    let n = plan.ports.len() as u32;
    // Every port's fill ring full, its TX ring full, and slack for the batches.
    let needed = n * (fill_size + ring) + n * plan.burst as u32 * 2;
    let frames = plan.umem_frames.max(needed.next_power_of_two());
    let mut pool = UmemPool::new(frames, fill_size, fill_size).map_err(|e| (0, e))?;
    let mut ports = Vec::with_capacity(plan.ports.len());
    for (index, port) in plan.ports.iter().enumerate() {
        let config = XdpPortConfig {
            interface: port.interface.clone(),
            queue: 0,
            mode: modes[index],
            ring_size: ring,
            fill_target: fill_size,
            busy_retry: Duration::from_secs(3),
        };
        match XdpPort::open(&mut pool, &config) {
            Ok(opened) => ports.push(opened),
            Err(error) => {
                drop(ports);
                drop(pool);
                for earlier in &plan.ports[..index] {
                    let _ = XdpPort::detach_program(&earlier.interface);
                }
                return Err((index, error));
            }
        }
    }
    let mut l2 = L2Switch::new(plan.l2);
    for (index, port) in plan.ports.iter().enumerate() {
        l2.set_port_domain(index as PortId, Some(port.domain));
    }
    let mut worker = Worker::new(pool, ports, l2, plan.burst);
    worker.set_pipeline(plan.pipeline);
    Ok(worker)
}

/// Closes the sockets, releases the UMEM and detaches the XDP programs.
fn close(plan: &WorkerPlan, mut worker: Worker<XdpPort>) {
    let ports = worker.take_ports();
    drop(ports);
    drop(worker);
    for port in &plan.ports {
        if let Err(error) = XdpPort::detach_program(&port.interface) {
            warn!(%error, "leaving an XDP program behind");
        }
    }
}

fn report(
    plan: &WorkerPlan,
    worker: &Worker<XdpPort>,
    now: Timestamp,
    audit: bool,
) -> WorkerReport {
    WorkerReport {
        index: plan.index,
        core: plan.core,
        counters: *worker.counters(),
        ports: worker.port_counters().to_vec(),
        l2: worker.l2().stats(),
        mac_entries: worker.l2().mac_table().len(),
        mac_capacity: worker.l2().mac_table().capacity(),
        fdb: worker.fdb(now),
        frames_total: worker.frames_total(),
        frames_accounted: worker.frames_accounted(),
        free_list_unique: !audit || worker.free_list_is_unique(),
    }
}

fn snapshot(plan: &WorkerPlan, modes: &[&str], report: &WorkerReport, is_final: bool) -> Snapshot {
    let network_of_domain = |domain: u16| {
        plan.ports
            .iter()
            .find(|p| p.domain == domain)
            .map(|p| p.network.clone())
            .unwrap_or_default()
    };
    Snapshot {
        is_final,
        ports: plan
            .ports
            .iter()
            .enumerate()
            .map(|(i, port)| PortStats {
                name: port.name.clone(),
                interface: port.interface.clone(),
                network: port.network.clone(),
                worker: plan.index,
                xdp_mode: modes.get(i).copied().unwrap_or("").to_string(),
                counters: report.ports.get(i).copied().unwrap_or_default(),
            })
            .collect(),
        workers: vec![WorkerStats {
            index: report.index,
            core: report.core,
            umem_frames_total: report.frames_total,
            umem_frames_accounted: report.frames_accounted,
            umem_free_list_unique: report.free_list_unique,
            counters: report.counters,
        }],
        mac_table: MacTableStats {
            entries: report.mac_entries,
            capacity: report.mac_capacity,
            l2: report.l2,
        },
        fdb: report
            .fdb
            .iter()
            .map(|e| FdbStats {
                network: network_of_domain(e.domain),
                mac: e.mac.clone(),
                port: plan
                    .ports
                    .get(e.port as usize)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                age_secs: e.age_secs,
            })
            .collect(),
    }
}

fn write_atomically(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

fn log_summary(snap: &Snapshot) {
    for port in &snap.ports {
        let c = &port.counters;
        info!(
            port = %port.name,
            rx = c.rx_packets,
            tx = c.tx_packets,
            drops = c.drops.total(),
            "port counters"
        );
    }
    info!(entries = snap.mac_table.entries, "mac table");
}

fn print_final(snap: &Snapshot) {
    println!(
        "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
        "port", "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "drops"
    );
    for port in &snap.ports {
        let c = &port.counters;
        println!(
            "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            port.name,
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.drops.total()
        );
        for (reason, count) in c.drops.nonzero() {
            println!("{:<16}   drop {}: {}", "", reason.name(), count);
        }
    }
    for worker in &snap.workers {
        println!(
            "worker {} (core {}): {} loops, {} busy, {} frames received; UMEM frames accounted {}/{}",
            worker.index,
            worker.core,
            worker.counters.loops,
            worker.counters.busy_loops,
            worker.counters.rx_packets,
            worker.umem_frames_accounted,
            worker.umem_frames_total
        );
    }
}
