//! `switchyard run` and `switchyard check`: turn a config into running workers,
//! serve their counters, and shut down cleanly on SIGINT/SIGTERM (sockets closed,
//! XDP programs detached, frames audited).
//!
//! Start-up order matters: stale XDP programs are detached once, before any
//! socket exists; worker 0 (which binds queue 0 of every port) starts first and
//! settles each interface's XDP mode, falling back from native to generic with a
//! fresh UMEM where `auto` allows; the other workers then bind their queues in the
//! settled modes. A failure anywhere stops what started and detaches everything.

mod access;
mod address_pool;
mod anchor;
mod controller;
mod host_port;
mod plan;
mod publish;
mod report;
mod server;
mod support;
mod worker_thread;

use crate::fabric::Fabric;
use crate::stats::Snapshot;
use anchor::Anchor;
use anyhow::{anyhow, bail, Context, Result};
use controller::Controller;
use host_port::HostPort;
use plan::SwitchPlan;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_config::{ConfigError, ConfigIssue, NodeConfig};
use switchyard_drivers::afxdp::{xdp_program, AttachMode, Redirect, XdpModeChoice};
use switchyard_drivers::sys;
use tracing::{info, warn};
use worker_thread::{WorkerHandle, WorkerSpec};

/// Sockets the daemon's XDP program can steer into (all ports, queues and
/// workers together): 1,000 containers on 16 workers fit.
const REDIRECT_CAPACITY: u32 = 16_384;

/// Loads a config and rejects what this build cannot run, without touching the system.
pub(crate) fn load_checked(path: &Path) -> Result<NodeConfig> {
    let config = switchyard_config::load(path).map_err(|e| anyhow!("invalid config:\n{e}"))?;
    let mut issues = support::unsupported_issues(&config);
    if let Err(issue) = control_access(&config) {
        issues.push(issue);
    }
    if !issues.is_empty() {
        bail!(
            "invalid config:\n{}",
            ConfigError::new(config.origin.clone(), issues)
        );
    }
    Ok(config)
}

/// Who may use the control socket per `[switch] control_group`; an unknown
/// group is an issue at its value.
fn control_access(config: &NodeConfig) -> Result<server::Access, ConfigIssue> {
    let Some(name) = &config.switch.control_group else {
        return Ok(server::Access::default());
    };
    let field = "switch.control_group";
    access::group_id(name)
        .map(|gid| server::Access {
            group: Some((name.clone(), gid)),
        })
        .map_err(|e| ConfigIssue::new(config.location_of(field), field.to_string(), e.to_string()))
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

/// Interfaces the config names that do not exist, each at its place in the file.
fn interface_issues(config: &NodeConfig) -> Vec<ConfigIssue> {
    let mut issues: Vec<ConfigIssue> = config
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, port)| {
            let interface = port.interface.as_ref()?;
            sys::interface_index(interface).is_none().then(|| {
                ConfigIssue::new(
                    port.interface_location.or(Some(port.location)),
                    format!("port[{i}].interface"),
                    format!("interface {interface:?} does not exist"),
                )
            })
        })
        .collect();
    if let Some(up) = &config.uplink {
        if sys::interface_index(&up.interface).is_none() {
            issues.push(ConfigIssue::new(
                config
                    .location_of("uplink.interface")
                    .or(config.location_of("uplink")),
                "uplink.interface".to_string(),
                format!("interface {:?} does not exist", up.interface),
            ));
        }
    }
    issues
}

/// Worker cores the config names that this machine does not offer.
fn core_issues(config: &NodeConfig) -> Vec<ConfigIssue> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    config
        .switch
        .workers
        .iter()
        .filter(|core| !cores.iter().any(|c| c.id == **core))
        .map(|core| {
            ConfigIssue::new(
                None,
                "switch.workers".to_string(),
                format!(
                    "core {core} is not available (this machine offers cores 0..{})",
                    cores.len()
                ),
            )
        })
        .collect()
}

/// Fails with every issue, in the located form `switchyard check` uses.
fn fail_on(config: &NodeConfig, issues: Vec<ConfigIssue>) -> Result<()> {
    if issues.is_empty() {
        Ok(())
    } else {
        bail!(
            "cannot run this config here:\n{}",
            ConfigError::new(config.origin.clone(), issues)
        )
    }
}

/// Checks that every configured interface exists (config reload).
pub(crate) fn check_interfaces(config: &NodeConfig) -> Result<()> {
    fail_on(config, interface_issues(config))
}

/// Checks what the config needs from the system (interfaces, cores), reporting
/// all problems at once.
fn check_system(config: &NodeConfig) -> Result<()> {
    let mut issues = interface_issues(config);
    issues.extend(core_issues(config));
    fail_on(config, issues)
}

/// Moves this (main) thread, and so every thread it starts later (control
/// socket, clients, netlink helpers), off the workers' cores when the machine
/// has others, as OVS and VPP keep their main threads off PMD cores. Workers
/// pin themselves to their own core. With no core left over nothing changes.
fn keep_off_worker_cores(worker_cores: &[usize]) {
    let others: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .filter(|c| !worker_cores.contains(c))
        .collect();
    if others.is_empty() {
        warn!("every core runs a worker: control threads share the workers' cores");
        return;
    }
    match sys::set_affinity(0, &others) {
        Ok(()) => info!(cores = ?others, "control threads kept off the worker cores"),
        Err(error) => warn!(%error, "could not keep control threads off the worker cores"),
    }
}

/// Removes programs a crashed run left on the ports' interfaces; refuses an
/// interface with anyone else's XDP program (start).
fn detach_stale_all(plan: &SwitchPlan) -> Result<()> {
    for port in &plan.ports {
        if let Some(ifindex) = sys::interface_index(&port.interface) {
            xdp_program::detach_stale(&port.interface, ifindex)
                .with_context(|| format!("port {:?}", port.name))?;
        }
    }
    Ok(())
}

/// Attaches the daemon's program to `interface` in the first mode `choice`
/// allows that the driver accepts (native first for `auto`); returns the mode.
pub(crate) fn attach_program(
    redirect: &Redirect,
    interface: &str,
    choice: XdpModeChoice,
) -> std::result::Result<AttachMode, String> {
    let ifindex = sys::interface_index(interface)
        .ok_or_else(|| format!("interface {interface:?} does not exist"))?;
    let modes: &[AttachMode] = match choice {
        XdpModeChoice::Auto => &[AttachMode::Native, AttachMode::Generic],
        XdpModeChoice::Native => &[AttachMode::Native],
        XdpModeChoice::Generic => &[AttachMode::Generic],
    };
    let mut errors = Vec::new();
    let mut looked = false;
    for &mode in modes {
        let mut result = redirect.attach(ifindex, mode);
        // Some program is there already (in this mode or the other). Only then
        // look at what it is (a query dumps every link, so it is not done on
        // every attach): a crashed run's program is removed and the attach
        // retried once; anyone else's is refused by name and left alone.
        if !looked
            && matches!(
                result.as_ref().map_err(|e| e.errno),
                Err(libc::EBUSY | libc::EEXIST)
            )
        {
            looked = true;
            xdp_program::detach_stale(interface, ifindex).map_err(|e| e.to_string())?;
            result = redirect.attach(ifindex, mode);
        }
        match result {
            Ok(()) => {
                if !errors.is_empty() {
                    warn!(interface, errors = %errors.join("; "), "native XDP failed; falling back to generic mode");
                }
                return Ok(mode);
            }
            Err(error) => errors.push(format!("{} mode: {error}", mode.name())),
        }
    }
    Err(format!("cannot attach XDP: {}", errors.join("; ")))
}

/// Detaches the daemon's own program from every port's interface (exit and
/// failure paths); never anyone else's.
fn detach_ours(plan: &SwitchPlan, modes: &[AttachMode], redirect: &Redirect) {
    for (port, mode) in plan.ports.iter().zip(modes) {
        if let Some(ifindex) = sys::interface_index(&port.interface) {
            if let Err(error) = redirect.detach(ifindex, *mode) {
                warn!(interface = %port.interface, %error, "could not detach our XDP program");
            }
        }
    }
}

/// Workers started, with the XDP modes the ports got and what they share.
struct Running {
    workers: Vec<WorkerHandle>,
    modes: Vec<AttachMode>,
    fabric: Arc<Fabric>,
    placements: Vec<crate::placement::WorkerPlacement>,
    /// The workers' clock epoch.
    epoch: Instant,
}

/// Attaches the program to every port (settling each one's mode), then starts
/// the workers, which only bind sockets.
fn start_workers(
    plan: &Arc<SwitchPlan>,
    anchor: Option<&str>,
    redirect: &Arc<Redirect>,
) -> Result<Running> {
    let epoch = Instant::now();
    let mut modes = Vec::with_capacity(plan.ports.len());
    for port in &plan.ports {
        match attach_program(redirect, &port.interface, port.mode) {
            Ok(mode) => modes.push(mode),
            Err(error) => {
                detach_ours(plan, &modes, redirect);
                bail!(
                    "port {:?} (interface {}): {error}",
                    port.name,
                    port.interface
                );
            }
        }
    }
    let placements = plan.placements(&modes);
    // Mailboxes whenever there are several workers: a port added at run time
    // may need frames handed over even if no configured port does. Their
    // buffers are touched only when used, and a doorbell wakes a sleeping
    // owner, so they cost nothing until then.
    let fabric = Arc::new(Fabric::new(plan.cores.len(), plan.cores.len() > 1));
    let spec = |index: usize| WorkerSpec {
        index,
        core: plan.cores[index],
        placement: placements[index].clone(),
        modes: modes.clone(),
        plan: Arc::clone(plan),
        fabric: Arc::clone(&fabric),
        epoch,
        anchor: anchor.map(str::to_string),
        redirect: Arc::clone(redirect),
    };
    let mut workers = Vec::with_capacity(plan.cores.len());
    for index in 0..plan.cores.len() {
        match worker_thread::spawn(spec(index)) {
            Ok(handle) => workers.push(handle),
            Err(failure) => {
                stop_workers(workers);
                detach_ours(plan, &modes, redirect);
                let Some(port) = plan.ports.get(failure.port) else {
                    bail!(
                        "worker {index}: binding the AF_XDP anchor: {}",
                        failure.error
                    );
                };
                bail!(
                    "worker {index}: port {:?} (interface {}): {}",
                    port.name,
                    port.interface,
                    failure.error
                );
            }
        }
    }
    Ok(Running {
        workers,
        modes,
        fabric,
        placements,
        epoch,
    })
}

/// Stops workers without waiting for reports (failure paths).
fn stop_workers(workers: Vec<WorkerHandle>) {
    let _ = worker_thread::stop_all(&workers);
    for w in workers {
        let _ = w.thread.join();
    }
}

/// `switchyard run`: starts the workers and the control socket, serves stats and
/// requests until SIGINT/SIGTERM (SIGHUP reloads the config), then shuts down.
pub fn run(path: &Path, stats_file: Option<&Path>) -> Result<()> {
    let config = load_checked(path)?;
    let access = control_access(&config).map_err(|issue| {
        anyhow!(
            "invalid config:\n{}",
            ConfigError::new(config.origin.clone(), vec![issue])
        )
    })?;
    let missing = sys::missing_capabilities();
    if !missing.is_empty() {
        bail!(
            "switchyard run must run as root, or with CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF, \
             to attach XDP programs and open AF_XDP sockets; missing: {}",
            missing.join(", ")
        );
    }
    check_system(&config)?;
    xdp_program::quiet_library_logs();

    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("installing SIGHUP")?;

    // The anchor first: its lock makes this the only daemon on this control
    // socket, which the host port's record relies on.
    let anchor = Anchor::create(&config.switch.control_socket, config.switch.workers.len())?;
    let host_port = config
        .host
        .as_ref()
        .map(|host| HostPort::create(&config.switch.control_socket, &anchor.name, host))
        .transpose()?;
    let plan = Arc::new(SwitchPlan::from_config(&config, host_port.as_ref()));
    keep_off_worker_cores(&plan.cores);
    detach_stale_all(&plan)?;
    let redirect =
        Arc::new(Redirect::load(REDIRECT_CAPACITY).context("loading the XDP redirect program")?);
    let running = start_workers(&plan, Some(&anchor.name), &redirect)?;
    let control_socket = config.switch.control_socket.clone();
    let interval = Duration::from_secs(config.switch.stats_interval_secs);
    let mut controller = Controller::new(
        path.to_path_buf(),
        config,
        Arc::clone(&plan),
        running.workers,
        running.modes,
        running.fabric,
        &running.placements,
        Arc::clone(&redirect),
        running.epoch,
    );
    if let Some(host_port) = host_port {
        controller.set_host_port(host_port);
    }
    controller.readopt();
    let controller = Arc::new(Mutex::new(controller));
    let server = match server::start(&control_socket, access, Arc::clone(&controller)) {
        Ok(server) => server,
        Err(error) => {
            lock(&controller).shutdown();
            return Err(error);
        }
    };
    let write_stats = |snap: &Snapshot| {
        if let Some(path) = stats_file {
            if let Err(error) = report::write_atomically(path, snap) {
                warn!(%error, path = %path.display(), "cannot write the stats file");
            }
        }
    };
    let snap = lock(&controller).snapshot(false, stats_file.is_some());
    write_stats(&snap);
    info!(
        ports = lock(&controller).port_count(),
        workers = plan.cores.len(),
        cores = ?plan.cores,
        control_socket = %control_socket.display(),
        "switchyard ready"
    );

    let mut next_stats = Instant::now() + interval;
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        {
            let mut controller = lock(&controller);
            if controller.worker_died() {
                failure = Some(anyhow!("a worker thread stopped unexpectedly"));
                break;
            }
            // Keeps the observer inbox from filling between fdb requests.
            controller.observe_learning();
        }
        if reload.swap(false, Ordering::Relaxed) {
            match lock(&controller).reload() {
                Ok(summary) => info!(%summary, "SIGHUP: config reloaded"),
                Err(error) => warn!(?error, "SIGHUP: reload refused; the running config stays"),
            }
        }
        if !interval.is_zero() && Instant::now() >= next_stats {
            next_stats += interval;
            // The FDB only goes to the stats file: without one, the periodic
            // report does not list the table copy.
            let snap = lock(&controller).snapshot(false, stats_file.is_some());
            report::log_summary(&snap);
            write_stats(&snap);
        }
    }

    info!("stopping");
    drop(server);
    let (snap, reports) = lock(&controller).shutdown();
    drop(anchor);
    if let Some(error) = failure {
        return Err(error);
    }
    let snap = snap.ok_or_else(|| anyhow!("a worker did not report on stop"))?;
    write_stats(&snap);
    report::print_final(&snap);
    for r in &reports {
        if r.frames_accounted != r.frames_total || !r.free_list_unique {
            bail!(
                "frame audit failed on worker {}: {} of {} UMEM frames accounted for, free list unique: {}",
                r.index,
                r.frames_accounted,
                r.frames_total,
                r.free_list_unique
            );
        }
    }
    Ok(())
}

/// Locks the controller; a poisoned lock (a panic while holding it) is taken over
/// rather than propagated, so shutdown still detaches everything.
fn lock(controller: &Mutex<Controller>) -> std::sync::MutexGuard<'_, Controller> {
    controller
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
