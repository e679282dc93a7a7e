//! `switchyard-perf scale`: what a node with a thousand containers costs.
//!
//! One daemon serves the topology's generator and sink (network `bench`, as
//! in the other scenarios) and N containers attached through its control
//! socket (network `scale`, its own address pool). In order:
//!
//! 1. N namespaces are made with one `ip -batch` (`netns add`, then IPv6 off
//!    in each), before the daemon starts, so they are not part of any figure.
//! 2. With only the two traffic ports: the idle daemon's CPU, then the busy
//!    pair's throughput (64 B, unpaced, the L2 saturation point of the `e2e`
//!    runs), then the memory snapshot "before".
//! 3. N attaches, one request per line on one connection to the control
//!    socket, timed from writing the request to reading the reply: the
//!    daemon's work only (veth, addresses, XDP, sockets), no client process
//!    start-up as with `switchyard ctl`.
//! 4. With N + 2 ports: memory "after", idle CPU, the busy pair again.
//! 5. The daemon stops, the namespaces are deleted by name (one `ip
//!    -batch`), which deletes the containers' veths; any host end still
//!    there after a bounded wait is deleted by name too.
//!
//! The containers' network is separate from the traffic pair's, so no frame
//! of the pair is ever flooded to them: the figure is what N *idle* ports
//! cost the busy ones (polling, parking, memory), not the cost of flooding.

use super::cmd;
use super::dataplane::{ContainerNetwork, Daemon, DaemonSettings};
use super::topology::{self, interface_exists, Topology, NS_INTERFACE, PREFIX};
use super::traffic::{Rig, RigConfig, RunIds};
use super::{first_line, is_root, sleep_unless_stopped, E2eOptions, Point, PointContext};
use crate::cpu::{Interference, Snapshot};
use crate::machine::Machine;
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_switch::control::protocol::{AttachRequest, Reply, Request};

/// Name of the containers' network in the daemon's config.
pub const CONTAINER_NETWORK: &str = "scale";

/// First address of the containers' subnets (198.18.0.0/15 is the
/// benchmarking range); the subnet grows towards 198.18.127.255.
const SUBNET_BASE: [u8; 4] = [198, 18, 64, 0];

/// Shortest prefix the containers' subnet may have (16,381 containers).
const MIN_PREFIX: u32 = 18;

/// Most containers a run may attach.
pub const MAX_CONTAINERS: usize = 10_000;

/// Frame size of the pair's throughput points.
pub const FRAME_SIZE: usize = 64;

/// How long one attach may take before the run gives up on the rest.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// Time for the daemon to settle (ports parked) before idle CPU and memory
/// are read.
const SETTLE: Duration = Duration::from_millis(1500);

/// Options of the `scale` benchmark.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleOptions {
    /// Containers to attach.
    pub containers: usize,
    /// The short profile was chosen.
    pub quick: bool,
    /// Idle CPU measuring time, per port count.
    pub idle_seconds: f64,
    /// Sending time per throughput point.
    pub step_seconds: f64,
    /// Throughput points per port count (the median is reported).
    pub repeats: usize,
    /// Untimed sending before the first point of each port count.
    pub warmup_seconds: f64,
    /// Core of the generator.
    pub generator_core: usize,
    /// Core of the sink.
    pub sink_core: usize,
    /// Cores of the daemon's workers.
    pub switch_cores: Vec<usize>,
    /// Limit on the whole attach phase, seconds.
    pub attach_deadline_seconds: f64,
    /// The daemon binary.
    pub switchyard_binary: PathBuf,
}

impl ScaleOptions {
    /// The profile defaults: `containers` unset means 1,000 (quick: 100).
    pub fn profile(quick: bool, containers: Option<usize>, binary: PathBuf) -> Self {
        let pick = |q: f64, full: f64| if quick { q } else { full };
        let containers = containers.unwrap_or(if quick { 100 } else { 1000 });
        ScaleOptions {
            containers,
            quick,
            idle_seconds: pick(2.0, 5.0),
            step_seconds: pick(0.5, 2.0),
            repeats: if quick { 2 } else { 3 },
            warmup_seconds: pick(0.1, 0.3),
            generator_core: 0,
            sink_core: 0,
            switch_cores: vec![1],
            attach_deadline_seconds: default_attach_deadline(containers),
            switchyard_binary: binary,
        }
    }

    /// Checks the options before anything is created.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CONTAINERS).contains(&self.containers) {
            bail!("--containers must be in 1..={MAX_CONTAINERS}");
        }
        for (name, value) in [
            ("--idle-seconds", self.idle_seconds),
            ("--step-seconds", self.step_seconds),
        ] {
            if !(value > 0.0 && value <= 600.0) {
                bail!("{name} must be in (0, 600]");
            }
        }
        if !(0.0..=60.0).contains(&self.warmup_seconds) {
            bail!("--warmup must be in [0, 60]");
        }
        if !(1..=20).contains(&self.repeats) {
            bail!("--repeats must be in 1..=20");
        }
        if !(self.attach_deadline_seconds > 0.0 && self.attach_deadline_seconds <= 7200.0) {
            bail!("--attach-deadline must be in (0, 7200] seconds");
        }
        if self.switch_cores.is_empty() {
            bail!("--switch-cores needs at least one core");
        }
        let cores = crate::sys::online_cpus();
        let all = self
            .switch_cores
            .iter()
            .chain([&self.generator_core, &self.sink_core]);
        if let Some(core) = all.into_iter().find(|c| **c >= cores) {
            bail!(
                "core {core} does not exist: this machine has cores 0..{}",
                cores - 1
            );
        }
        Ok(())
    }

    /// About how long the run takes, for the progress estimate.
    pub fn planned_seconds(&self) -> f64 {
        let n = self.containers as f64;
        let point = self.step_seconds + super::POINT_OVERHEAD_S;
        let per_count = SETTLE.as_secs_f64()
            + self.idle_seconds
            + self.warmup_seconds
            + super::POINT_OVERHEAD_S
            + point * self.repeats as f64;
        PLAN_NETNS_S * n
            + super::DAEMON_START_S
            + 2.0 * per_count
            + PLAN_ATTACH_S * n
            + PLAN_TEARDOWN_S * n
            + 2.0
    }

    /// The e2e options the shared point code reads (flows, cores).
    fn e2e_options(&self) -> E2eOptions {
        E2eOptions {
            scenarios: Vec::new(),
            dataplanes: vec![super::DataplaneKind::Switchyard],
            sizes: vec![FRAME_SIZE],
            latency_sizes: Vec::new(),
            latency_loads_pct: Vec::new(),
            sweep_fractions: Vec::new(),
            step_seconds: self.step_seconds,
            latency_seconds: self.step_seconds,
            warmup_seconds: self.warmup_seconds,
            tcp_seconds: 1.0,
            tcp_streams: Vec::new(),
            idle_seconds: self.idle_seconds,
            idle_modes: vec!["backoff".to_string()],
            switch_idle: "backoff".to_string(),
            generator_core: self.generator_core,
            sink_core: self.sink_core,
            switch_cores: self.switch_cores.clone(),
            bridge_rps: false,
            switch_napi_cores: Vec::new(),
            flows: 64,
            mac_pairs: Vec::new(),
            mac_pairs_size: FRAME_SIZE,
            routed_sizes: Vec::new(),
            routed_flows: Vec::new(),
            nat_flows: Vec::new(),
            switchyard_binary: self.switchyard_binary.clone(),
        }
    }
}

/// Planned seconds per namespace made (two `ip` operations in a batch).
const PLAN_NETNS_S: f64 = 0.03;
/// Planned seconds per attach.
const PLAN_ATTACH_S: f64 = 0.1;
/// Planned seconds per container torn down (daemon exit, netns deletion).
const PLAN_TEARDOWN_S: f64 = 0.03;

/// The default limit on the attach phase: a minute plus a second per container.
pub fn default_attach_deadline(containers: usize) -> f64 {
    60.0 + containers as f64
}

/// The containers' subnet and gateway for `containers` addresses: the
/// smallest prefix whose pool (all but network, broadcast and gateway) holds
/// them, from [`SUBNET_BASE`]. `None` when more than a /18 would be needed.
pub fn subnet_for(containers: usize) -> Option<(String, String)> {
    let needed = containers as u64 + 3;
    let host_bits = (64 - (needed - 1).leading_zeros()).max(2);
    let prefix = 32 - host_bits;
    if prefix < MIN_PREFIX {
        return None;
    }
    let [a, b, c, d] = SUBNET_BASE;
    Some((
        format!("{a}.{b}.{c}.{d}/{prefix}"),
        format!("{a}.{b}.{c}.{}", d + 1),
    ))
}

/// Nearest-rank percentile of sorted `values` (`p` in 0..=100); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The middle value (mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Attach latency over all attaches, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachSummary {
    /// Attaches that succeeded.
    pub count: usize,
    /// Sum of all attach times, seconds.
    pub total_seconds: f64,
    /// Wall-clock time of the whole attach phase, seconds.
    pub wall_seconds: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median of the first 10 % of attaches (the fewest ports).
    pub first_tenth_p50_ms: f64,
    /// Median of the last 10 % (the most ports).
    pub last_tenth_p50_ms: f64,
    /// Least-squares slope of attach time over the port count, ms per 100
    /// ports: ~0 when attaching does not slow down as ports are added.
    pub slope_ms_per_100_ports: f64,
}

impl AttachSummary {
    /// Sums up attach times in order (index i = the (i+1)-th port).
    pub fn from_ms(times: &[f64], wall_seconds: f64) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let tenth = (times.len() / 10).max(1);
        let n = times.len() as f64;
        let total: f64 = times.iter().sum();
        let mean_x = (n - 1.0) / 2.0;
        let mean_y = total / n;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, y) in times.iter().enumerate() {
            let dx = i as f64 - mean_x;
            sxy += dx * (y - mean_y);
            sxx += dx * dx;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Some(AttachSummary {
            count: times.len(),
            total_seconds: total / 1e3,
            wall_seconds,
            p50_ms: percentile(&sorted, 50.0)?,
            p90_ms: percentile(&sorted, 90.0)?,
            p99_ms: percentile(&sorted, 99.0)?,
            max_ms: *sorted.last()?,
            mean_ms: mean_y,
            first_tenth_p50_ms: median(&times[..tenth])?,
            last_tenth_p50_ms: median(&times[times.len() - tenth..])?,
            slope_ms_per_100_ports: slope * 100.0,
        })
    }

    /// Last tenth's median over the first tenth's: 1 = flat.
    pub fn growth(&self) -> Option<f64> {
        (self.first_tenth_p50_ms > 0.0).then(|| self.last_tenth_p50_ms / self.first_tenth_p50_ms)
    }
}

/// Memory figures of `/proc/<pid>/status`, in kB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcStatus {
    /// Resident set.
    pub vm_rss_kb: u64,
    /// Peak resident set.
    pub vm_hwm_kb: u64,
    /// mlock()ed.
    pub vm_lck_kb: u64,
    /// Pinned by the kernel (an AF_XDP UMEM's pages).
    pub vm_pin_kb: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads the fields of [`ProcStatus`] from `/proc/<pid>/status` text
/// (missing ones stay 0; `None` when there is no VmRSS at all).
pub fn parse_status(text: &str) -> Option<ProcStatus> {
    let mut status = ProcStatus::default();
    let mut seen_rss = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = || -> Option<u64> { value.split_whitespace().next()?.parse().ok() };
        match key {
            "VmRSS" => {
                status.vm_rss_kb = number()?;
                seen_rss = true;
            }
            "VmHWM" => status.vm_hwm_kb = number().unwrap_or(0),
            "VmLck" => status.vm_lck_kb = number().unwrap_or(0),
            "VmPin" => status.vm_pin_kb = number().unwrap_or(0),
            "Threads" => status.threads = number().unwrap_or(0),
            _ => {}
        }
    }
    seen_rss.then_some(status)
}

/// The kernel's memory counters of `/proc/meminfo` that ports move, in kB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMemory {
    /// Slab (reclaimable and not).
    pub slab_kb: u64,
    /// Unreclaimable slab.
    pub sunreclaim_kb: u64,
    /// vmalloc in use (AF_XDP rings are vmalloc'ed).
    pub vmalloc_used_kb: u64,
    /// Per-CPU allocations (a veth's per-CPU stats).
    pub percpu_kb: u64,
    /// MemAvailable.
    pub mem_available_kb: u64,
}

impl KernelMemory {
    /// Slab + VmallocUsed: the figure divided per port.
    pub fn slab_vmalloc_kb(&self) -> u64 {
        self.slab_kb + self.vmalloc_used_kb
    }
}

/// Reads [`KernelMemory`] from `/proc/meminfo` text (`None` without Slab or VmallocUsed).
pub fn parse_meminfo(text: &str) -> Option<KernelMemory> {
    let mut m = KernelMemory::default();
    let (mut slab, mut vmalloc) = (false, false);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        match key {
            "Slab" => {
                m.slab_kb = kb;
                slab = true;
            }
            "SUnreclaim" => m.sunreclaim_kb = kb,
            "VmallocUsed" => {
                m.vmalloc_used_kb = kb;
                vmalloc = true;
            }
            "Percpu" => m.percpu_kb = kb,
            "MemAvailable" => m.mem_available_kb = kb,
            _ => {}
        }
    }
    (slab && vmalloc).then_some(m)
}

/// The daemon's and the kernel's memory at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySnapshot {
    /// Ports the daemon served then.
    pub ports: usize,
    /// The daemon's `/proc/<pid>/status`.
    pub daemon: ProcStatus,
    /// `/proc/meminfo`.
    pub kernel: KernelMemory,
    /// UMEM frames of all workers (`umem_frames_total` of the daemon's live
    /// stats), when the control socket answered.
    #[serde(default)]
    pub umem_frames: Option<u64>,
}

impl MemorySnapshot {
    fn take(daemon: &Daemon, pid: u32, ports: usize) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        Ok(MemorySnapshot {
            ports,
            daemon: parse_status(&status)
                .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?,
            kernel: parse_meminfo(&meminfo)
                .ok_or_else(|| anyhow!("no Slab/VmallocUsed in /proc/meminfo"))?,
            umem_frames: daemon.live_stats().ok().as_ref().and_then(umem_frames),
        })
    }
}

/// Sum of `umem_frames_total` over a stats document's workers.
pub fn umem_frames(stats: &serde_json::Value) -> Option<u64> {
    stats
        .get("workers")?
        .as_array()?
        .iter()
        .map(|w| w.get("umem_frames_total").and_then(|v| v.as_u64()))
        .sum()
}

/// The kernel's memory per AF_XDP socket per UMEM frame, measured with
/// `drivers/examples/socket_memory.rs` (the buffer pool's per-frame array).
pub const KERNEL_BYTES_PER_UMEM_FRAME: f64 = 128.0;

/// What the attached ports added, per port, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryPerPort {
    /// Ports added between the snapshots.
    pub ports_added: usize,
    /// Daemon VmRSS growth per port.
    pub daemon_rss_bytes: f64,
    /// Daemon VmLck growth per port.
    pub daemon_lck_bytes: f64,
    /// Daemon VmPin growth per port.
    pub daemon_pin_bytes: f64,
    /// Kernel Slab + VmallocUsed growth per port (veth pair, AF_XDP
    /// sockets and rings; anything else on the machine moves it too).
    pub kernel_bytes: f64,
    /// Kernel Slab growth alone, per port.
    pub kernel_slab_bytes: f64,
    /// Kernel VmallocUsed growth alone, per port.
    pub kernel_vmalloc_bytes: f64,
    /// Kernel Percpu growth per port (not in `kernel_bytes`).
    pub kernel_percpu_bytes: f64,
    /// SUnreclaim + VmallocUsed growth per port: leaves out the reclaimable
    /// slab (dentry and inode caches) that a compile next door moves.
    #[serde(default)]
    pub kernel_unreclaimable_bytes: f64,
    /// What the sockets alone should cost per port: one socket per worker
    /// queue, [`KERNEL_BYTES_PER_UMEM_FRAME`] per frame of the UMEM, with
    /// the UMEM frames of the "after" snapshot (one worker: its frames).
    #[serde(default)]
    pub expected_socket_bytes: Option<f64>,
}

impl MemoryPerPort {
    /// The per-port growth from `before` to `after`.
    pub fn between(before: &MemorySnapshot, after: &MemorySnapshot) -> Option<Self> {
        let added = after.ports.checked_sub(before.ports).filter(|n| *n > 0)?;
        let per = |a: u64, b: u64| (b as f64 - a as f64) * 1024.0 / added as f64;
        Some(MemoryPerPort {
            ports_added: added,
            daemon_rss_bytes: per(before.daemon.vm_rss_kb, after.daemon.vm_rss_kb),
            daemon_lck_bytes: per(before.daemon.vm_lck_kb, after.daemon.vm_lck_kb),
            daemon_pin_bytes: per(before.daemon.vm_pin_kb, after.daemon.vm_pin_kb),
            kernel_bytes: per(
                before.kernel.slab_vmalloc_kb(),
                after.kernel.slab_vmalloc_kb(),
            ),
            kernel_slab_bytes: per(before.kernel.slab_kb, after.kernel.slab_kb),
            kernel_vmalloc_bytes: per(before.kernel.vmalloc_used_kb, after.kernel.vmalloc_used_kb),
            kernel_percpu_bytes: per(before.kernel.percpu_kb, after.kernel.percpu_kb),
            kernel_unreclaimable_bytes: per(
                before.kernel.sunreclaim_kb + before.kernel.vmalloc_used_kb,
                after.kernel.sunreclaim_kb + after.kernel.vmalloc_used_kb,
            ),
            expected_socket_bytes: after
                .umem_frames
                .map(|f| f as f64 * KERNEL_BYTES_PER_UMEM_FRAME),
        })
    }
}

/// The idle daemon's CPU use with some ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleCpu {
    /// Ports the daemon served.
    pub ports: usize,
    /// Measuring time.
    pub seconds: f64,
    /// The worker threads' CPU time (`/proc/<pid>/task/*/schedstat` of the
    /// `sy-worker-*` threads, nanoseconds), % of one core, summed over workers.
    pub workers_pct: Option<f64>,
    /// The whole daemon's (every thread's schedstat), % of one core.
    pub daemon_pct: Option<f64>,
    /// Worker threads found.
    pub worker_threads: usize,
    /// Others' CPU meanwhile.
    pub interference: Option<Interference>,
}

/// Idle CPU target: under this share of one core.
pub const IDLE_TARGET_PCT: f64 = 2.0;

/// Whether a thread name is one of the daemon's poll workers.
pub fn is_worker_thread(comm: &str) -> bool {
    comm.trim_end().starts_with("sy-worker")
}

/// CPU time in nanoseconds from `/proc/<pid>/task/<tid>/schedstat` text
/// (its first field, the scheduler's sum_exec_runtime): exact, where
/// `stat`'s utime/stime count 10 ms ticks, too coarse for 1 % over seconds.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// CPU nanoseconds of `pid`'s threads: (worker threads, all threads,
/// worker count).
fn thread_cpu_ns(pid: u32) -> Option<(u64, u64, usize)> {
    let dir = format!("/proc/{pid}/task");
    let (mut workers, mut all, mut count) = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).ok()? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| parse_schedstat(&s))
        else {
            continue;
        };
        all += ns;
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if is_worker_thread(&comm) {
            workers += ns;
            count += 1;
        }
    }
    Some((workers, all, count))
}

fn measure_idle(pid: u32, ports: usize, options: &ScaleOptions, stop: &AtomicBool) -> IdleCpu {
    let before_ns = thread_cpu_ns(pid);
    let before = Snapshot::take(Some(pid), &options.switch_cores);
    let start = Instant::now();
    sleep_unless_stopped(Duration::from_secs_f64(options.idle_seconds), stop);
    let seconds = start.elapsed().as_secs_f64();
    let after_ns = thread_cpu_ns(pid);
    let after = Snapshot::take(Some(pid), &options.switch_cores);
    let pct = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / seconds.max(1e-9) * 100.0;
    let (workers_pct, daemon_pct, worker_threads) = match (before_ns, after_ns) {
        (Some((wa, aa, _)), Some((wb, ab, n))) => {
            ((n > 0).then(|| pct(wa, wb)), Some(pct(aa, ab)), n)
        }
        // Without schedstat: the whole process from /proc/<pid>/stat ticks.
        _ => (None, before.daemon_pct(&after, seconds), 0),
    };
    IdleCpu {
        ports,
        seconds,
        workers_pct,
        daemon_pct,
        worker_threads,
        interference: before.interference(&after, seconds),
    }
}

/// The busy pair's throughput with some idle ports next to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairThroughput {
    /// Ports the daemon served besides the pair.
    pub idle_ports: usize,
    /// The unpaced 64 B points.
    pub points: Vec<Point>,
    /// Median delivered Mpps over the points.
    pub median_mpps: Option<f64>,
}

impl PairThroughput {
    fn summarize(idle_ports: usize, points: Vec<Point>) -> Self {
        let rates: Vec<f64> = points.iter().map(|p| p.delivered_mpps).collect();
        PairThroughput {
            idle_ports,
            median_mpps: median(&rates),
            points,
        }
    }

    /// Any point had others take more than 10 % of a core.
    pub fn noisy(&self) -> bool {
        self.points
            .iter()
            .any(|p| p.interference.is_some_and(|i| i.is_noisy()))
    }
}

/// Throughput ratio target: with N idle ports at least this share of the rate without.
pub const THROUGHPUT_TARGET_RATIO: f64 = 0.9;

/// How the teardown went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    /// Namespaces this run made.
    pub namespaces: usize,
    /// Namespaces still there at the end (should be 0).
    pub namespaces_left: usize,
    /// Container host veths still there after the namespaces went and
    /// deleted by name.
    pub host_veths_deleted: usize,
    /// Seconds the teardown took.
    pub seconds: f64,
}

/// The `scale` result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleReport {
    /// When the run started (Unix seconds).
    pub unix_time: u64,
    /// Where it ran.
    pub machine: Machine,
    /// How it was set up.
    pub options: ScaleOptions,
    /// How the attaches were made.
    pub attach_method: String,
    /// The containers' subnet.
    pub subnet: String,
    /// Seconds the `ip -batch` making the namespaces took.
    pub netns_seconds: f64,
    /// Containers attached.
    pub attached: usize,
    /// Attach latency summary.
    pub attach: Option<AttachSummary>,
    /// Every attach time in order, ms.
    pub attach_ms: Vec<f64>,
    /// Memory with the pair only.
    pub memory_before: Option<MemorySnapshot>,
    /// Memory with the pair and the containers.
    pub memory_after: Option<MemorySnapshot>,
    /// The difference per attached port.
    pub memory_per_port: Option<MemoryPerPort>,
    /// Idle CPU with the pair only, then with the containers too.
    pub idle: Vec<IdleCpu>,
    /// The pair's throughput without, then with the idle containers.
    pub throughput: Vec<PairThroughput>,
    /// Median with N idle ports over median without.
    pub throughput_ratio: Option<f64>,
    /// The daemon's worker counters (parks, wakes, UMEM frames...): from
    /// its final stats, else from its live stats just before it was stopped.
    pub workers: Option<serde_json::Value>,
    /// How long the daemon took to exit after SIGTERM.
    #[serde(default)]
    pub daemon_stop_seconds: Option<f64>,
    /// How the teardown went.
    pub cleanup: Cleanup,
    /// What went wrong.
    pub errors: Vec<String>,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// Ctrl-C or SIGTERM cut it short.
    pub interrupted: bool,
}

impl ScaleReport {
    /// True when something failed.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// The `ip -batch` text making `names` with IPv6 off in each.
pub fn netns_add_batch(names: &[String]) -> String {
    let mut batch = String::new();
    for name in names {
        batch.push_str(&format!("netns add {name}\n"));
    }
    for name in names {
        batch.push_str(&format!(
            "netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
             net.ipv6.conf.default.disable_ipv6=1\n"
        ));
    }
    batch
}

/// The `ip -batch` text deleting `names`.
pub fn netns_del_batch(names: &[String]) -> String {
    names.iter().map(|n| format!("netns del {n}\n")).collect()
}

/// The containers' namespace names: `syp<id>-c<i>`.
pub fn container_names(id: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{PREFIX}{id}-c{i}")).collect()
}

/// The containers' namespaces and host veths; deleted (by name) on drop.
struct Containers {
    batch_file: PathBuf,
    namespaces: Vec<String>,
    host_interfaces: Vec<String>,
    done: Option<Cleanup>,
}

impl Containers {
    /// Makes the namespaces with one `ip -batch` (recorded before it runs,
    /// so a half-done batch is still cleaned up).
    fn create(id: &str, count: usize) -> Result<(Self, f64)> {
        let names = container_names(id, count);
        let batch_file = std::env::temp_dir().join(format!("{PREFIX}{id}-netns.batch"));
        let containers = Containers {
            batch_file,
            namespaces: names,
            host_interfaces: Vec::new(),
            done: None,
        };
        std::fs::write(
            &containers.batch_file,
            netns_add_batch(&containers.namespaces),
        )
        .with_context(|| format!("writing {}", containers.batch_file.display()))?;
        let timeout = Duration::from_secs(30) + Duration::from_millis(50) * count as u32;
        let start = Instant::now();
        let file = containers.batch_file.to_string_lossy().to_string();
        cmd::run_timeout("ip", &["-batch", &file], timeout)?;
        Ok((containers, start.elapsed().as_secs_f64()))
    }

    /// Deletes the namespaces (their veths go with them), then any host
    /// end still present after a bounded wait. Runs once.
    fn remove(&mut self) -> Cleanup {
        if let Some(done) = &self.done {
            return done.clone();
        }
        let start = Instant::now();
        let count = self.namespaces.len();
        let existing: Vec<String> = self
            .namespaces
            .iter()
            .filter(|n| super::netns::netns_path(n).exists())
            .cloned()
            .collect();
        if !existing.is_empty() {
            let timeout = Duration::from_secs(30) + Duration::from_millis(50) * count as u32;
            let written = std::fs::write(&self.batch_file, netns_del_batch(&existing));
            let file = self.batch_file.to_string_lossy().to_string();
            let batch = written
                .map_err(anyhow::Error::from)
                .and_then(|()| cmd::run_timeout("ip", &["-force", "-batch", &file], timeout));
            if let Err(error) = batch {
                eprintln!("switchyard-perf: clean-up: {error:#}");
            }
        }
        // One by one for whatever the batch left.
        for name in &self.namespaces {
            if super::netns::netns_path(name).exists() {
                cmd::cleanup("ip", &["netns", "del", name]);
            }
        }
        // A namespace's veths go when the kernel destroys it, a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.host_interfaces.iter().any(|i| interface_exists(i)) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut deleted = 0;
        for interface in &self.host_interfaces {
            if interface_exists(interface) {
                cmd::cleanup("ip", &["link", "del", interface]);
                deleted += 1;
            }
        }
        let _ = std::fs::remove_file(&self.batch_file);
        let cleanup = Cleanup {
            namespaces: count,
            namespaces_left: self
                .namespaces
                .iter()
                .filter(|n| super::netns::netns_path(n).exists())
                .count(),
            host_veths_deleted: deleted,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.done = Some(cleanup.clone());
        cleanup
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One connection to the daemon's control socket, one request per line.
struct ControlConnection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl ControlConnection {
    fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        stream.set_read_timeout(Some(ATTACH_TIMEOUT))?;
        stream.set_write_timeout(Some(ATTACH_TIMEOUT))?;
        Ok(ControlConnection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends `request`, waits for its reply line; the result or the daemon's error.
    fn call(&mut self, request: &Request) -> Result<serde_json::Value> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            bail!("the daemon closed the control connection");
        }
        let reply: Reply = serde_json::from_str(reply.trim_end())
            .with_context(|| format!("malformed reply {:?}", reply.trim_end()))?;
        match (reply.ok, reply.error) {
            (true, _) => Ok(reply.result.unwrap_or(serde_json::Value::Null)),
            (false, Some(error)) => bail!("{:?}: {}", error.code, error.message),
            (false, None) => bail!("error reply without a body"),
        }
    }
}

/// Attaches every container, timing each; stops at the first failure, the
/// deadline or Ctrl-C. Returns the times (ms) and the wall-clock seconds.
fn attach_all(
    daemon: &Daemon,
    containers: &mut Containers,
    options: &ScaleOptions,
    stop: &AtomicBool,
    progress: &mut Progress,
    errors: &mut Vec<String>,
) -> (Vec<f64>, f64) {
    let mut times = Vec::with_capacity(containers.namespaces.len());
    let start = Instant::now();
    let mut connection = match ControlConnection::connect(daemon.control_socket()) {
        Ok(c) => c,
        Err(error) => {
            errors.push(format!("attach: {error:#}"));
            return (times, 0.0);
        }
    };
    let deadline = start + Duration::from_secs_f64(options.attach_deadline_seconds);
    let n = containers.namespaces.len();
    let chunk = (n / 10).max(1);
    let names = containers.namespaces.clone();
    for (i, name) in names.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if Instant::now() >= deadline {
            errors.push(format!(
                "attach: only {i} of {n} attaches within {:.0} s (--attach-deadline)",
                options.attach_deadline_seconds
            ));
            break;
        }
        if i % chunk == 0 {
            progress.step(
                &format!("attach {}..{} of {n}", i + 1, (i + chunk).min(n)),
                PLAN_ATTACH_S * chunk.min(n - i) as f64,
            );
        }
        let request = Request::Attach(AttachRequest {
            netns: format!("/run/netns/{name}"),
            network: CONTAINER_NETWORK.to_string(),
            name: None,
            ip: None,
            mac: None,
            ifname: None,
            port_mappings: Vec::new(),
        });
        let t = Instant::now();
        let result = connection.call(&request);
        let elapsed_ms = t.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(value) => {
                times.push(elapsed_ms);
                if let Some(interface) = value.get("interface").and_then(|v| v.as_str()) {
                    containers.host_interfaces.push(interface.to_string());
                }
            }
            Err(error) => {
                errors.push(format!("attach {} of {n} ({name}): {error:#}", i + 1));
                break;
            }
        }
        if (i + 1) % chunk == 0 || i + 1 == n {
            let mut sorted = times.clone();
            sorted.sort_by(f64::total_cmp);
            progress.log(&format!(
                "  {} attached, p50 {:.1} ms so far, last {:.1} ms",
                times.len(),
                percentile(&sorted, 50.0).unwrap_or(0.0),
                elapsed_ms
            ));
        }
    }
    (times, start.elapsed().as_secs_f64())
}

/// The pair's 64 B unpaced points with the daemon as it is.
fn pair_points(
    ctx: &mut PointContext<'_>,
    idle_ports: usize,
    options: &ScaleOptions,
    progress: &mut Progress,
) -> Result<PairThroughput> {
    ctx.teach_sink_mac()?;
    if options.warmup_seconds > 0.0 {
        progress.step(
            &format!("pair, {idle_ports} idle ports: warm-up"),
            options.warmup_seconds + super::POINT_OVERHEAD_S,
        );
        ctx.measure(FRAME_SIZE, None, options.warmup_seconds)?;
    }
    let mut points = Vec::new();
    for r in 0..options.repeats {
        progress.step(
            &format!(
                "pair, {idle_ports} idle ports: point {}/{}",
                r + 1,
                options.repeats
            ),
            options.step_seconds + super::POINT_OVERHEAD_S,
        );
        let point = ctx.measure(FRAME_SIZE, None, options.step_seconds)?;
        progress.log(&format!(
            "  pair with {idle_ports} idle ports: offered {:.3}, delivered {:.3} Mpps, loss {:.2} %",
            point.offered_mpps, point.delivered_mpps, point.probes.loss_pct
        ));
        points.push(point);
    }
    Ok(PairThroughput::summarize(idle_ports, points))
}

/// Runs the benchmark (see the module docs). Fails only when it cannot
/// start; later failures are in the report's `errors`.
pub fn run(
    options: ScaleOptions,
    machine: Machine,
    stop: Arc<AtomicBool>,
    progress: &mut Progress,
) -> Result<ScaleReport> {
    options.validate()?;
    if !is_root() {
        bail!("scale creates namespaces and veths and attaches XDP programs: run it as root");
    }
    if !options.switchyard_binary.is_file() {
        bail!(
            "no switchyard binary at {} (build it with `cargo build --release -p switchyard-switch` \
             or set SWITCHYARD_BIN)",
            options.switchyard_binary.display()
        );
    }
    let (subnet, gateway) = subnet_for(options.containers)
        .ok_or_else(|| anyhow!("no subnet for {} containers", options.containers))?;
    switchyard_drivers::afxdp::xdp_program::quiet_library_logs();
    let started = Instant::now();
    topology::remove_stale();
    let topology = Topology::create()?;
    let mut report = ScaleReport {
        unix_time: crate::report::unix_time(),
        machine,
        options: options.clone(),
        attach_method: "direct: JSON `attach` requests, one per line, on one connection to the \
                        daemon's Unix control socket; time from writing a request to reading \
                        its reply"
            .to_string(),
        subnet: subnet.clone(),
        netns_seconds: 0.0,
        attached: 0,
        attach: None,
        attach_ms: Vec::new(),
        memory_before: None,
        memory_after: None,
        memory_per_port: None,
        idle: Vec::new(),
        throughput: Vec::new(),
        throughput_ratio: None,
        workers: None,
        daemon_stop_seconds: None,
        cleanup: Cleanup::default(),
        errors: Vec::new(),
        seconds: 0.0,
        interrupted: false,
    };

    progress.step(
        &format!("{} namespaces (ip -batch)", options.containers),
        PLAN_NETNS_S * options.containers as f64,
    );
    // Declared before the daemon: dropped after it, so the daemon has let
    // go of the ports when their namespaces are deleted.
    let (mut containers, netns_seconds) = Containers::create(&topology.id, options.containers)
        .with_context(|| format!("creating {} namespaces", options.containers))?;
    report.netns_seconds = netns_seconds;
    progress.log(&format!(
        "{} namespaces in {netns_seconds:.1} s; topology {} -> {}",
        options.containers, topology.gen.netns, topology.sink.netns
    ));

    progress.step("starting the daemon", super::DAEMON_START_S);
    let settings = DaemonSettings {
        workers: options.switch_cores.clone(),
        pipeline: "l2".to_string(),
        idle: "backoff".to_string(),
        napi_cores: None,
        mac_table_size: crate::macs::DEFAULT_MAC_TABLE_SIZE,
        container_network: Some(ContainerNetwork {
            name: CONTAINER_NETWORK.to_string(),
            subnet,
            gateway,
        }),
        routed: None,
    };
    let mut daemon = Daemon::start(&topology, &options.switchyard_binary, &settings, &stop)?;
    let pid = daemon
        .pid()
        .ok_or_else(|| anyhow!("the daemon has no PID"))?;
    measure_phases(
        &mut report,
        &topology,
        &daemon,
        pid,
        &mut containers,
        &options,
        &stop,
        progress,
    );

    progress.step(
        "stopping the daemon, deleting the namespaces",
        PLAN_TEARDOWN_S * options.containers as f64,
    );
    // The worker counters now: the final stats may not come (see below).
    if let Ok(stats) = daemon.live_stats() {
        report.workers = stats.get("workers").cloned();
    }
    let stop_timeout = Duration::from_secs(10) + Duration::from_millis(20) * report.attached as u32;
    let stopping = Instant::now();
    let stopped = daemon.stop_within(stop_timeout);
    report.daemon_stop_seconds = Some(stopping.elapsed().as_secs_f64());
    match stopped {
        Ok(stats) => {
            if let Some(workers) = stats.get("workers") {
                report.workers = Some(workers.clone());
            }
        }
        Err(error) => {
            // The log tail's last line says why (the first is the exit status).
            let text = format!("{error:#}");
            let why = text.lines().last().unwrap_or("").trim();
            report.errors.push(format!(
                "stopping switchyard with {} ports took {:.1} s and failed: {why}",
                report.attached + 2,
                stopping.elapsed().as_secs_f64()
            ));
        }
    }
    drop(daemon);
    report.cleanup = containers.remove();
    if report.cleanup.namespaces_left > 0 {
        report.errors.push(format!(
            "{} namespaces could not be deleted",
            report.cleanup.namespaces_left
        ));
    }
    drop(containers);
    drop(topology);
    report.seconds = started.elapsed().as_secs_f64();
    report.interrupted = stop.load(Ordering::Relaxed);
    Ok(report)
}

/// Steps 2-4 of the module docs; failures go into `report.errors`.
#[allow(clippy::too_many_arguments)]
fn measure_phases(
    report: &mut ScaleReport,
    topology: &Topology,
    daemon: &Daemon,
    pid: u32,
    containers: &mut Containers,
    options: &ScaleOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
) {
    let e2e_options = options.e2e_options();
    let rig_config = RigConfig {
        gen_netns: topology.gen.netns.clone(),
        sink_netns: topology.sink.netns.clone(),
        interface: NS_INTERFACE.to_string(),
        gen_core: Some(options.generator_core),
        sink_core: Some(options.sink_core),
    };
    let mut rig = match Rig::start(&rig_config, stop) {
        Ok(rig) => Some(rig),
        Err(error) => {
            report.errors.push(format!("traffic rig: {error:#}"));
            None
        }
    };
    let mut ids = RunIds::default();

    // With the pair only.
    progress.step(
        "idle CPU, 2 ports",
        SETTLE.as_secs_f64() + options.idle_seconds,
    );
    sleep_unless_stopped(SETTLE, stop);
    let idle = measure_idle(pid, 2, options, stop);
    progress.log(&describe_idle(&idle));
    report.idle.push(idle);
    let throughput = |rig: &mut Option<Rig>,
                      ids: &mut RunIds,
                      idle_ports: usize,
                      progress: &mut Progress,
                      report: &mut ScaleReport| {
        let Some(rig) = rig.as_mut() else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut ctx = PointContext {
            rig,
            topology,
            options: &e2e_options,
            daemon: Some(daemon),
            bridge: None,
            ids,
            stop,
            mac_pairs: None,
            routed: None,
        };
        match pair_points(&mut ctx, idle_ports, options, progress) {
            Ok(t) => report.throughput.push(t),
            Err(error) => {
                progress.log(&format!(
                    "pair with {idle_ports} idle ports: {}",
                    first_line(&format!("{error:#}"))
                ));
                report
                    .errors
                    .push(format!("throughput, {idle_ports} idle ports: {error:#}"));
            }
        }
    };
    throughput(&mut rig, &mut ids, 0, progress, report);
    match MemorySnapshot::take(daemon, pid, 2) {
        Ok(m) => report.memory_before = Some(m),
        Err(error) => report.errors.push(format!("memory before: {error:#}")),
    }

    // The containers.
    if !stop.load(Ordering::Relaxed) {
        let (times, wall) = attach_all(
            daemon,
            containers,
            options,
            stop,
            progress,
            &mut report.errors,
        );
        report.attached = times.len();
        report.attach = AttachSummary::from_ms(&times, wall);
        report.attach_ms = times;
        if let Some(a) = &report.attach {
            progress.log(&format!(
                "{} attaches in {:.1} s: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; first 10 % p50 {:.2} ms, last 10 % p50 {:.2} ms",
                a.count, a.wall_seconds, a.p50_ms, a.p99_ms, a.max_ms, a.first_tenth_p50_ms, a.last_tenth_p50_ms
            ));
        }
    }
    if stop.load(Ordering::Relaxed) || report.attached == 0 {
        return;
    }
    let ports = report.attached + 2;
    progress.step(
        &format!("idle CPU, {ports} ports"),
        SETTLE.as_secs_f64() + options.idle_seconds,
    );
    sleep_unless_stopped(SETTLE, stop);
    match MemorySnapshot::take(daemon, pid, ports) {
        Ok(m) => report.memory_after = Some(m),
        Err(error) => report.errors.push(format!("memory after: {error:#}")),
    }
    if let (Some(a), Some(b)) = (&report.memory_before, &report.memory_after) {
        report.memory_per_port = MemoryPerPort::between(a, b);
    }
    let idle = measure_idle(pid, ports, options, stop);
    progress.log(&describe_idle(&idle));
    report.idle.push(idle);
    throughput(&mut rig, &mut ids, report.attached, progress, report);
    if let [without, with, ..] = report.throughput.as_slice() {
        if let (Some(a), Some(b)) = (without.median_mpps, with.median_mpps) {
            report.throughput_ratio = (a > 0.0).then(|| b / a);
        }
    }
}

fn describe_idle(idle: &IdleCpu) -> String {
    let pct = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
    format!(
        "  idle with {} ports: workers {} %, daemon {} % of one core",
        idle.ports,
        pct(idle.workers_pct),
        pct(idle.daemon_pct)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 90.0), Some(90.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10.0));
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn attach_summary_sees_growth_with_the_port_count() {
        // Flat: 2 ms each.
        let flat = AttachSummary::from_ms(&[2.0; 50], 0.2).unwrap();
        assert_eq!(flat.count, 50);
        assert!((flat.total_seconds - 0.1).abs() < 1e-12);
        assert_eq!(flat.p50_ms, 2.0);
        assert_eq!(flat.growth(), Some(1.0));
        assert!(flat.slope_ms_per_100_ports.abs() < 1e-9);
        // Linear: 1 ms + 0.01 ms per port already there.
        let times: Vec<f64> = (0..1000).map(|i| 1.0 + 0.01 * i as f64).collect();
        let grow = AttachSummary::from_ms(&times, 10.0).unwrap();
        assert!((grow.slope_ms_per_100_ports - 1.0).abs() < 1e-9);
        assert!((grow.first_tenth_p50_ms - 1.495).abs() < 1e-9);
        assert!((grow.last_tenth_p50_ms - 10.495).abs() < 1e-9);
        assert!(grow.growth().unwrap() > 7.0);
        assert_eq!(grow.max_ms, times[999]);
        assert_eq!(grow.p99_ms, times[989]);
        assert!(AttachSummary::from_ms(&[], 0.0).is_none());
        // Fewer than ten: the tenths are the first and last attach.
        let few = AttachSummary::from_ms(&[1.0, 5.0, 3.0], 0.1).unwrap();
        assert_eq!((few.first_tenth_p50_ms, few.last_tenth_p50_ms), (1.0, 3.0));
    }

    #[test]
    fn proc_status_memory_is_read() {
        let text = "Name:\tswitchyard\nUmask:\t0022\nState:\tS (sleeping)\n\
                    VmPeak:\t 1000 kB\nVmSize:\t  900 kB\nVmLck:\t      16 kB\nVmPin:\t    8192 kB\n\
                    VmHWM:\t   30000 kB\nVmRSS:\t   28000 kB\nRssAnon:\t 20000 kB\nThreads:\t5\n";
        let s = parse_status(text).unwrap();
        assert_eq!(
            s,
            ProcStatus {
                vm_rss_kb: 28_000,
                vm_hwm_kb: 30_000,
                vm_lck_kb: 16,
                vm_pin_kb: 8192,
                threads: 5
            }
        );
        assert!(parse_status("Name:\tx\n").is_none());
        // The real file of this process parses.
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_status(&own).unwrap().vm_rss_kb > 0);
    }

    #[test]
    fn meminfo_counters_are_read() {
        let text = "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    5000000 kB\n\
                    Slab:             300000 kB\nSReclaimable:     200000 kB\nSUnreclaim:       100000 kB\n\
                    VmallocTotal:   34359738367 kB\nVmallocUsed:       40000 kB\nPercpu:            5000 kB\n\
                    HugePages_Total:       0\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.slab_kb, 300_000);
        assert_eq!(m.sunreclaim_kb, 100_000);
        assert_eq!(m.vmalloc_used_kb, 40_000);
        assert_eq!(m.percpu_kb, 5000);
        assert_eq!(m.mem_available_kb, 5_000_000);
        assert_eq!(m.slab_vmalloc_kb(), 340_000);
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_none());
        let own = std::fs::read_to_string("/proc/meminfo").unwrap();
        assert!(parse_meminfo(&own).unwrap().slab_kb > 0);
    }

    #[test]
    fn memory_per_port_divides_the_growth() {
        let snap = |ports, rss, pin, slab, vmalloc| MemorySnapshot {
            ports,
            umem_frames: Some(16_384),
            daemon: ProcStatus {
                vm_rss_kb: rss,
                vm_pin_kb: pin,
                ..ProcStatus::default()
            },
            kernel: KernelMemory {
                slab_kb: slab,
                vmalloc_used_kb: vmalloc,
                ..KernelMemory::default()
            },
        };
        let before = snap(2, 10_000, 8192, 100_000, 20_000);
        let after = snap(1002, 12_000, 8192, 150_000, 70_000);
        let m = MemoryPerPort::between(&before, &after).unwrap();
        assert_eq!(m.ports_added, 1000);
        assert!((m.daemon_rss_bytes - 2048.0).abs() < 1e-9);
        assert_eq!(m.daemon_pin_bytes, 0.0);
        assert!((m.kernel_bytes - 102_400.0).abs() < 1e-9);
        assert!((m.kernel_slab_bytes - 51_200.0).abs() < 1e-9);
        assert_eq!(m.kernel_unreclaimable_bytes, m.kernel_vmalloc_bytes);
        assert_eq!(m.expected_socket_bytes, Some(16_384.0 * 128.0));
        // Shrinking counters give negative figures, not a panic.
        let less = snap(1002, 9000, 8192, 90_000, 20_000);
        assert!(MemoryPerPort::between(&before, &less).unwrap().kernel_bytes < 0.0);
        assert!(MemoryPerPort::between(&after, &before).is_none());
    }

    #[test]
    fn subnets_hold_the_containers_and_the_gateway() {
        assert_eq!(
            subnet_for(1000),
            Some(("198.18.64.0/22".to_string(), "198.18.64.1".to_string()))
        );
        // 1,021 = 1,024 minus network, broadcast and gateway.
        assert_eq!(subnet_for(1021).unwrap().0, "198.18.64.0/22");
        assert_eq!(subnet_for(1022).unwrap().0, "198.18.64.0/21");
        assert_eq!(subnet_for(1).unwrap().0, "198.18.64.0/30");
        assert_eq!(subnet_for(50).unwrap().0, "198.18.64.0/26");
        assert!(subnet_for(MAX_CONTAINERS).is_some());
        assert!(subnet_for(20_000).is_none());
    }

    #[test]
    fn batches_make_and_delete_the_named_namespaces() {
        let names = container_names("1f", 3);
        assert_eq!(names, ["syp1f-c0", "syp1f-c1", "syp1f-c2"]);
        let add = netns_add_batch(&names);
        let lines: Vec<&str> = add.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "netns add syp1f-c0");
        assert_eq!(
            lines[3],
            "netns exec syp1f-c0 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
             net.ipv6.conf.default.disable_ipv6=1"
        );
        assert_eq!(
            netns_del_batch(&names),
            "netns del syp1f-c0\nnetns del syp1f-c1\nnetns del syp1f-c2\n"
        );
    }

    #[test]
    fn umem_frames_add_up_over_workers() {
        let stats = serde_json::json!({"workers": [
            {"umem_frames_total": 16384}, {"umem_frames_total": 4096}
        ]});
        assert_eq!(umem_frames(&stats), Some(20_480));
        assert_eq!(umem_frames(&serde_json::json!({"workers": [{}]})), None);
        assert_eq!(umem_frames(&serde_json::json!({})), None);
    }

    #[test]
    fn schedstat_gives_nanoseconds() {
        assert_eq!(
            parse_schedstat("183478183 9281775 383\n"),
            Some(183_478_183)
        );
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
        let own = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        assert!(parse_schedstat(&own).is_some());
    }

    #[test]
    fn worker_threads_are_told_apart() {
        assert!(is_worker_thread("sy-worker-0\n"));
        assert!(is_worker_thread("sy-worker-12"));
        assert!(!is_worker_thread("sy-control"));
        assert!(!is_worker_thread("switchyard"));
    }

    #[test]
    fn the_plan_fits_and_quick_is_shorter() {
        let binary = PathBuf::from("/nonexistent/switchyard");
        let full = ScaleOptions::profile(false, None, binary.clone());
        assert_eq!(full.containers, 1000);
        assert_eq!(full.idle_seconds, 5.0);
        let quick = ScaleOptions::profile(true, None, binary.clone());
        assert_eq!(quick.containers, 100);
        assert!(quick.planned_seconds() < full.planned_seconds());
        assert!(full.planned_seconds() < 600.0, "{}", full.planned_seconds());
        let fifty = ScaleOptions::profile(true, Some(50), binary);
        assert_eq!(fifty.containers, 50);
        assert_eq!(fifty.attach_deadline_seconds, 110.0);
        if crate::sys::online_cpus() >= 2 {
            full.validate().unwrap();
            fifty.validate().unwrap();
        }
        let mut bad = fifty.clone();
        bad.containers = 0;
        assert!(bad.validate().is_err());
        bad.containers = MAX_CONTAINERS + 1;
        assert!(bad.validate().is_err());
        let mut bad = fifty.clone();
        bad.repeats = 0;
        assert!(bad.validate().is_err());
        let mut bad = fifty;
        bad.idle_seconds = 0.0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn attach_requests_are_the_protocol_s_lines() {
        let request = Request::Attach(AttachRequest {
            netns: "/run/netns/syp1f-c0".to_string(),
            network: CONTAINER_NETWORK.to_string(),
            name: None,
            ip: None,
            mac: None,
            ifname: None,
            port_mappings: Vec::new(),
        });
        let line = serde_json::to_string(&request).unwrap();
        assert!(line.starts_with("{\"cmd\":\"attach\""), "{line}");
        assert_eq!(
            switchyard_switch::control::protocol::decode_request(line.as_bytes()).unwrap(),
            request
        );
    }
}
