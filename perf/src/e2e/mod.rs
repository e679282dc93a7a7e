//! `switchyard-perf e2e`: named scenarios end to end through each dataplane
//! on one topology (two namespaces, two veths), with the same AF_XDP
//! generator and sink and the same cores, so the Linux bridge baseline,
//! Switchyard and Switchyard's empty pipeline differ only in the dataplane.
//!
//! Scenarios, per dataplane in turn:
//! - `throughput`: per frame size, the offered load is swept up to and past
//!   saturation (one unpaced point gives the generator's capacity, paced
//!   points at fractions of it); delivered Mpps and Gbit/s, loss.
//! - `latency`: one-way latency percentiles at shares (10/50/90 %) of the
//!   saturation rate that dataplane reached; loss and reordering.
//! - `macs`: the L2 path with 1, 1,000 and 100,000 source/destination MAC
//!   pairs (see [`mac_scale`]): whether the MAC table's cost stays flat as the
//!   node's station count grows.
//! - `routed`: container -> gateway -> uplink -> outside with 1 and 10,000
//!   flows (see [`routed`]): Switchyard's router against the kernel's IP
//!   forwarding behind a bridge, and against the same dataplane's L2 rate.
//! - `nat`: masquerade (container -> outside), DNAT over 1,000 published
//!   ports (outside -> container) and new flows per second (see [`nat`]):
//!   Switchyard's NAT against the kernel's nftables rules on the `routed`
//!   topology. Not in a default run (`--scenarios nat`).
//! - `tcp`: iperf3 with 1 and 4 streams between the namespaces, MTU 1500.
//! - `idle`: the daemon with no traffic, `idle = "backoff"` and
//!   `idle = "busy-poll"`: its CPU use from `/proc/<pid>/stat`.

pub mod cmd;
pub mod dataplane;
pub mod kernel_router;
pub mod learn;
pub mod mac_report;
pub mod mac_scale;
pub mod nat;
pub mod netns;
pub mod node_scale;
pub mod node_scale_report;
pub mod report;
pub mod routed;
pub mod routed_report;
pub mod tcp;
pub mod topology;
pub mod traffic;

use crate::cpu::{Interference, Snapshot};
use crate::frames::{self, MAX_FRAME_LEN, MIN_FRAME_LEN};
use crate::latency::{self, ProbeSummary};
use crate::machine::Machine;
use crate::progress::Progress;
use crate::stalls::{self, CoreStalls};
use crate::xsk::SocketStats;
use anyhow::{bail, Result};
use dataplane::{Bridge, Daemon, DaemonSettings, DataplaneKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology::{Topology, NS_INTERFACE};
use traffic::{PointSpec, Rig, RigConfig, RunIds};

/// A named part of the end-to-end run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Offered-load sweep per frame size.
    Throughput,
    /// Latency percentiles at shares of the saturation rate.
    Latency,
    /// The L2 path with many learned MAC pairs.
    Macs,
    /// Container -> gateway -> uplink -> outside, against the kernel's
    /// forwarding and the L2 path.
    Routed,
    /// Masquerade, published ports and new flows, against the kernel's
    /// nftables NAT (only when asked for).
    Nat,
    /// iperf3 TCP streams.
    Tcp,
    /// The idle daemon's CPU use per idle mode.
    Idle,
}

impl Scenario {
    /// The scenarios of a default run, in the order it measures them.
    pub const ALL: [Scenario; 6] = [
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::Macs,
        Scenario::Routed,
        Scenario::Tcp,
        Scenario::Idle,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
            Scenario::Macs => "macs",
            Scenario::Routed => "routed",
            Scenario::Nat => "nat",
            Scenario::Tcp => "tcp",
            Scenario::Idle => "idle",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "all" {
            bail!("use the scenario names: throughput,latency,macs,routed,nat,tcp,idle");
        }
        Scenario::ALL
            .into_iter()
            .chain([Scenario::Nat])
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown scenario {s:?} (throughput, latency, macs, routed, nat, tcp or idle)"
                )
            })
    }
}

/// How the end-to-end run is set up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct E2eOptions {
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Dataplanes, measured in this order.
    pub dataplanes: Vec<DataplaneKind>,
    /// Frame sizes of the throughput sweep (Ethernet without FCS).
    pub sizes: Vec<usize>,
    /// Frame sizes of the latency scenario.
    pub latency_sizes: Vec<usize>,
    /// Loads of the latency scenario, in percent of the saturation rate.
    pub latency_loads_pct: Vec<f64>,
    /// Paced sweep points as fractions of the generator's unpaced rate.
    pub sweep_fractions: Vec<f64>,
    /// Sending time per sweep point.
    pub step_seconds: f64,
    /// Sending time per latency point.
    pub latency_seconds: f64,
    /// Untimed sending before each frame size.
    pub warmup_seconds: f64,
    /// iperf3 test length.
    pub tcp_seconds: f64,
    /// iperf3 parallel streams, one test each.
    pub tcp_streams: Vec<usize>,
    /// Measuring time per idle mode.
    pub idle_seconds: f64,
    /// Idle modes to measure.
    pub idle_modes: Vec<String>,
    /// The daemon's idle mode while the traffic scenarios run.
    pub switch_idle: String,
    /// Core of the generator (and the iperf3 client).
    pub generator_core: usize,
    /// Core of the sink (and the iperf3 server).
    pub sink_core: usize,
    /// Cores of Switchyard's workers; the bridge is steered there with RPS.
    pub switch_cores: Vec<usize>,
    /// Steer the bridge to `switch_cores` with RPS (see [`Bridge::attach`]).
    pub bridge_rps: bool,
    /// Cores for the kernel's receive work on Switchyard's ports (the veth
    /// NAPI poll: XDP program and copy into the UMEM), run as pinned NAPI
    /// threads (see [`Daemon::start`]); empty: softirq on the sending core.
    pub switch_napi_cores: Vec<usize>,
    /// UDP flows (source ports) the generator cycles through.
    pub flows: usize,
    /// MAC pair counts of the `macs` scenario, one measurement each.
    #[serde(default)]
    pub mac_pairs: Vec<usize>,
    /// Frame size of the `macs` scenario.
    #[serde(default = "mac_scale::default_frame_size")]
    pub mac_pairs_size: usize,
    /// Frame sizes of the `routed` scenario.
    #[serde(default = "routed::default_sizes")]
    pub routed_sizes: Vec<usize>,
    /// Flow counts (UDP port pairs) of the `routed` scenario.
    #[serde(default = "routed::default_flows")]
    pub routed_flows: Vec<usize>,
    /// Flow counts (UDP port pairs) of the `nat` scenario.
    #[serde(default = "nat::default_flows")]
    pub nat_flows: Vec<usize>,
    /// The daemon binary.
    pub switchyard_binary: PathBuf,
}

impl E2eOptions {
    /// Checks the options before anything is created.
    pub fn validate(&self) -> Result<()> {
        let sizes = self
            .sizes
            .iter()
            .chain(&self.latency_sizes)
            .chain(&self.routed_sizes);
        for &size in sizes.chain([&self.mac_pairs_size]) {
            if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&size) {
                bail!("frame size {size} is outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN} (Ethernet without FCS)");
            }
        }
        for (name, value) in [
            ("--step-seconds", self.step_seconds),
            ("--latency-seconds", self.latency_seconds),
            ("--tcp-seconds", self.tcp_seconds),
            ("--idle-seconds", self.idle_seconds),
        ] {
            if !(value > 0.0 && value <= 600.0) {
                bail!("{name} must be in (0, 600]");
            }
        }
        if !(0.0..=60.0).contains(&self.warmup_seconds) {
            bail!("--warmup must be in [0, 60]");
        }
        if self
            .sweep_fractions
            .iter()
            .any(|f| !(*f > 0.0 && *f <= 1.0))
        {
            bail!("sweep fractions must be in (0, 1]");
        }
        if self
            .latency_loads_pct
            .iter()
            .any(|l| !(*l > 0.0 && *l <= 100.0))
        {
            bail!("latency loads must be in (0, 100] percent");
        }
        if self.switch_cores.is_empty() {
            bail!("--switch-cores needs at least one core");
        }
        let cores = crate::sys::online_cpus();
        let all = self
            .switch_cores
            .iter()
            .chain(&self.switch_napi_cores)
            .chain([&self.generator_core, &self.sink_core]);
        if let Some(core) = all.into_iter().find(|c| **c >= cores) {
            bail!(
                "core {core} does not exist: this machine has cores 0..{}",
                cores - 1
            );
        }
        if !(1..=4096).contains(&self.flows) {
            bail!("--flows must be in 1..=4096");
        }
        for &n in &self.mac_pairs {
            crate::macs::MacPairs::new(n).map_err(|e| anyhow::anyhow!("--mac-pairs: {e}"))?;
        }
        if self.runs(Scenario::Macs) && self.mac_pairs.is_empty() {
            bail!("the macs scenario needs at least one --mac-pairs count");
        }
        for &n in &self.routed_flows {
            crate::flows::PortFlows::new(n).map_err(|e| anyhow::anyhow!("--routed-flows: {e}"))?;
        }
        if self.runs(Scenario::Routed)
            && (self.routed_flows.is_empty() || self.routed_sizes.is_empty())
        {
            bail!("the routed scenario needs at least one --routed-sizes and one --routed-flows value");
        }
        for &n in &self.nat_flows {
            crate::flows::PortFlows::new(n).map_err(|e| anyhow::anyhow!("--nat-flows: {e}"))?;
        }
        if self.runs(Scenario::Nat) && self.nat_flows.is_empty() {
            bail!("the nat scenario needs at least one --nat-flows value");
        }
        for mode in self.idle_modes.iter().chain([&self.switch_idle]) {
            if mode != "backoff" && mode != "busy-poll" {
                bail!("idle mode {mode:?} is not backoff or busy-poll");
            }
        }
        Ok(())
    }

    fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// Whether a scenario needs the AF_XDP generator and sink.
    fn runs_udp(&self) -> bool {
        [
            Scenario::Throughput,
            Scenario::Latency,
            Scenario::Macs,
            Scenario::Routed,
            Scenario::Nat,
        ]
        .iter()
        .any(|s| self.runs(*s))
    }

    /// About how long the run takes, for the progress estimate.
    pub fn planned_seconds(&self) -> f64 {
        let point = |seconds: f64| seconds + POINT_OVERHEAD_S;
        let mut per_dataplane = 0.0;
        if self.runs(Scenario::Throughput) {
            per_dataplane += self.sizes.len() as f64
                * (point(self.warmup_seconds)
                    + point(self.step_seconds) * (1 + self.sweep_fractions.len()) as f64);
        }
        if self.runs(Scenario::Latency) {
            per_dataplane += self.latency_sizes.len() as f64
                * self.latency_loads_pct.len() as f64
                * point(self.latency_seconds);
        }
        if self.runs(Scenario::Macs) {
            per_dataplane += self
                .mac_pairs
                .iter()
                .map(|&n| mac_scale::planned_seconds(n, self.warmup_seconds, self.step_seconds))
                .sum::<f64>();
        }
        if self.runs(Scenario::Tcp) {
            per_dataplane += self.tcp_streams.len() as f64 * (self.tcp_seconds.round() + 1.0);
        }
        let starts = self
            .dataplanes
            .iter()
            .filter(|d| d.pipeline().is_some())
            .count();
        let mut total =
            per_dataplane * self.dataplanes.len() as f64 + starts as f64 * DAEMON_START_S + 1.0;
        if self.runs(Scenario::Routed) {
            let routing = self
                .dataplanes
                .iter()
                .filter(|d| routed::routes(**d))
                .count();
            total += routing as f64 * routed::planned_seconds(self);
        }
        if self.runs(Scenario::Nat) {
            let routing = self
                .dataplanes
                .iter()
                .filter(|d| routed::routes(**d))
                .count();
            total += routing as f64 * nat::planned_seconds(self);
        }
        if self.runs(Scenario::Idle) {
            total += self.idle_modes.len() as f64
                * (DAEMON_START_S + IDLE_SETTLE.as_secs_f64() + self.idle_seconds);
        }
        total
    }
}

/// Planned extra time per point: drain, sink arming, template loading.
const POINT_OVERHEAD_S: f64 = 0.3;

/// Planned time to start and stop the daemon.
const DAEMON_START_S: f64 = 2.0;

/// Seconds the stall probe spins on each core.
const STALL_PROBE_S: f64 = 2.0;

/// Time the idle daemon gets to reach its idle state before measuring.
const IDLE_SETTLE: Duration = Duration::from_millis(700);

/// Loss above which a point counts as past saturation for the "no-drop" rate.
pub const NO_DROP_LOSS_PCT: f64 = 0.1;

/// One measured point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// Frame size in bytes (Ethernet without FCS).
    pub frame_size: usize,
    /// Rate asked of the generator; `None` for the unpaced point.
    pub target_mpps: Option<f64>,
    /// Sending time.
    pub seconds: f64,
    /// Frames the generator put on its TX ring.
    pub offered_frames: u64,
    /// Offered rate.
    pub offered_mpps: f64,
    /// Distinct probes the sink received.
    pub delivered_frames: u64,
    /// Delivered rate.
    pub delivered_mpps: f64,
    /// Delivered frame bytes as Gbit/s (no preamble, gap or FCS).
    pub delivered_gbps: f64,
    /// Loss, reordering and one-way latency.
    pub probes: ProbeSummary,
    /// Frames the sink's own socket dropped (counted in the loss, but the
    /// sink's fault, not the dataplane's).
    pub sink_socket: SocketStats,
    /// Frames the pacer skipped: the generator could not keep the rate.
    pub generator_skipped: u64,
    /// TX kicks.
    pub generator_kicks: u64,
    /// Frames the generator's socket had not completed after the point.
    pub generator_unfinished: usize,
    /// Whether the generator was pinned to its core.
    pub generator_pinned: bool,
    /// Most frames waiting on the generator's TX ring after a kick.
    pub generator_max_tx_pending: usize,
    /// Most frames waiting on the sink's RX ring when it looked: a deep
    /// backlog means the sink, not the dataplane, held frames back.
    pub sink_max_rx_backlog: usize,
    /// The daemon's CPU use over the point, % of one core (Switchyard only).
    pub daemon_cpu_pct: Option<f64>,
    /// CPU other processes and the hypervisor took during the point.
    pub interference: Option<Interference>,
    /// How busy the switch cores were (every kind of work on them), % of
    /// one core, over `wall_seconds`: with the delivered frames, the
    /// dataplane's Mpps per core.
    pub switch_cores_busy_pct: Option<f64>,
    /// How busy every online core was (generator, dataplane, sink and
    /// anything else), % of one core, over `wall_seconds`: with the
    /// delivered frames, CPU time per packet.
    #[serde(default)]
    pub cores_busy_pct: Option<f64>,
    /// Time the CPU figures cover: sending plus the drain after it.
    pub wall_seconds: f64,
}

/// The offered-load sweep of one frame size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sweep {
    /// Frame size.
    pub frame_size: usize,
    /// Points, by offered rate.
    pub points: Vec<Point>,
    /// Highest delivered rate of the sweep: the saturation rate.
    pub saturation_mpps: f64,
    /// Delivered Gbit/s at that point.
    pub saturation_gbps: f64,
    /// Highest offered rate delivered with at most [`NO_DROP_LOSS_PCT`] loss.
    pub no_drop_mpps: Option<f64>,
    /// True when even the unpaced generator lost (almost) nothing: the
    /// generator, not the dataplane, was the limit.
    pub generator_bound: bool,
    /// Delivered Mpps per busy switch core at the saturation point: what
    /// the dataplane does per core of work even when the generator, not the
    /// dataplane, set the rate.
    pub mpps_per_switch_core: Option<f64>,
}

/// A latency point: a share of the saturation rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Share of the saturation rate, in percent.
    pub load_pct: f64,
    /// The saturation rate it is a share of.
    pub saturation_mpps: f64,
    /// The measurement.
    pub point: Point,
}

/// Everything measured for one dataplane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataplaneRun {
    /// The dataplane.
    pub dataplane: DataplaneKind,
    /// Throughput sweeps, per frame size.
    pub sweeps: Vec<Sweep>,
    /// Latency points.
    pub latency: Vec<LatencyPoint>,
    /// The `macs` scenario, per MAC pair count.
    #[serde(default)]
    pub mac_scale: Vec<mac_scale::MacScale>,
    /// The `routed` scenario: the L2 reference and the routed points.
    #[serde(default)]
    pub routed: Option<routed::RoutedRun>,
    /// The `nat` scenario: masquerade, DNAT and new-flow points.
    #[serde(default)]
    pub nat: Option<nat::NatRun>,
    /// iperf3 results.
    pub tcp: Vec<tcp::TcpResult>,
    /// Whether the dataplane had learned the sink's MAC on the sink port
    /// (`None`: not checked).
    pub sink_mac_learned: Option<bool>,
    /// XDP mode of the sink's program.
    pub sink_xdp_mode: Option<crate::xsk::AttachMode>,
    /// Whether the sink thread got SCHED_FIFO.
    pub sink_fifo: Option<bool>,
    /// What went wrong (the run goes on with the next scenario).
    pub errors: Vec<String>,
    /// Scenarios left out on purpose, and why.
    pub notes: Vec<String>,
    /// The daemon's final stats (ports, workers, MAC table), for Switchyard.
    pub daemon_stats: Option<serde_json::Value>,
}

impl DataplaneRun {
    /// The sweep of `size`, if measured.
    pub fn sweep(&self, size: usize) -> Option<&Sweep> {
        self.sweeps.iter().find(|s| s.frame_size == size)
    }
}

/// The idle daemon's CPU use in one idle mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleRun {
    /// `idle` setting.
    pub mode: String,
    /// Measuring time.
    pub seconds: f64,
    /// utime + stime over the measuring time, % of one core.
    pub cpu_pct: Option<f64>,
    /// The daemon's worker counters at exit.
    pub workers: Option<serde_json::Value>,
    /// CPU other processes and the hypervisor took meanwhile.
    pub interference: Option<Interference>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// The `e2e` result document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct E2eReport {
    /// When the run started (Unix seconds).
    pub unix_time: u64,
    /// Where it ran.
    pub machine: Machine,
    /// How it was set up.
    pub options: E2eOptions,
    /// Stalls of the traffic and switch cores, probed before the scenarios
    /// (see [`crate::stalls`]).
    #[serde(default)]
    pub core_stalls: Vec<CoreStalls>,
    /// Results per dataplane.
    pub runs: Vec<DataplaneRun>,
    /// Idle CPU per idle mode.
    pub idle: Vec<IdleRun>,
    /// Ratios between dataplanes (Switchyard/bridge, full/empty pipeline).
    pub ratios: Vec<report::Ratio>,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// True when Ctrl-C (or SIGTERM) cut the run short.
    pub interrupted: bool,
}

impl E2eReport {
    /// True when something failed.
    pub fn has_errors(&self) -> bool {
        self.runs.iter().any(|r| !r.errors.is_empty())
            || self.idle.iter().any(|i| i.error.is_some())
    }
}

/// Runs every scenario for every dataplane on one topology and returns the
/// report (failures are recorded in it and the run goes on). Returns an
/// error only when the run cannot start (options, privileges, topology).
pub fn run(
    options: E2eOptions,
    machine: Machine,
    stop: Arc<AtomicBool>,
    progress: &mut Progress,
) -> Result<E2eReport> {
    options.validate()?;
    if !is_root() {
        bail!(
            "e2e creates namespaces, veths and bridges and attaches XDP programs: run it as root"
        );
    }
    let needs_daemon =
        options.dataplanes.iter().any(|d| d.pipeline().is_some()) || options.runs(Scenario::Idle);
    if needs_daemon && !options.switchyard_binary.is_file() {
        bail!(
            "no switchyard binary at {} (build it with `cargo build --release -p switchyard-switch` \
             or set SWITCHYARD_BIN)",
            options.switchyard_binary.display()
        );
    }
    // libxdp and libbpf would print their harmless notices over the progress line.
    switchyard_drivers::afxdp::xdp_program::quiet_library_logs();
    let started = Instant::now();
    topology::remove_stale();
    let topology = Topology::create()?;
    progress.log(&format!(
        "topology: {} ({NS_INTERFACE}) -> {} | {} <- {} ({NS_INTERFACE}); generator core {}, sink core {}, switch cores {:?}",
        topology.gen.netns,
        topology.gen.host_interface,
        topology.sink.host_interface,
        topology.sink.netns,
        options.generator_core,
        options.sink_core,
        options.switch_cores,
    ));
    let mut core_stalls = Vec::new();
    if options.runs_udp() {
        let mut cores: Vec<usize> = std::iter::once(options.generator_core)
            .chain(options.switch_cores.iter().copied())
            .collect();
        cores.sort_unstable();
        cores.dedup();
        for core in cores {
            progress.step(&format!("core stall probe, core {core}"), STALL_PROBE_S);
            let stalls = stalls::probe(core, Duration::from_secs_f64(STALL_PROBE_S));
            progress.log(&stalls::describe(&stalls));
            core_stalls.push(stalls);
        }
    }
    let mut ids = RunIds::default();
    let mut runs = Vec::new();
    for &kind in &options.dataplanes {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        runs.push(run_dataplane(
            kind, &topology, &options, &stop, progress, &mut ids,
        ));
    }
    let mut idle = Vec::new();
    if options.runs(Scenario::Idle) {
        for mode in &options.idle_modes {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            progress.step(
                &format!("idle CPU, idle = {mode}"),
                DAEMON_START_S + options.idle_seconds,
            );
            let result = measure_idle(&topology, &options, mode, &stop);
            progress.log(&match (&result.cpu_pct, &result.error) {
                (_, Some(error)) => format!("idle {mode}: {}", first_line(error)),
                (Some(cpu), None) => format!("idle {mode}: daemon at {cpu:.1} % of one core"),
                (None, None) => format!("idle {mode}: no CPU figure"),
            });
            idle.push(result);
        }
    }
    drop(topology);
    let ratios = report::ratios(&runs);
    Ok(E2eReport {
        unix_time: crate::report::unix_time(),
        machine,
        options,
        core_stalls,
        runs,
        idle,
        ratios,
        seconds: started.elapsed().as_secs_f64(),
        interrupted: stop.load(Ordering::Relaxed),
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem: the effective one decides.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The dataplane while attached.
enum Attached {
    Bridge(Bridge),
    Switchyard(Daemon),
}

impl Attached {
    fn daemon(&self) -> Option<&Daemon> {
        match self {
            Attached::Switchyard(daemon) => Some(daemon),
            Attached::Bridge(_) => None,
        }
    }

    fn bridge(&self) -> Option<&Bridge> {
        match self {
            Attached::Bridge(bridge) => Some(bridge),
            Attached::Switchyard(_) => None,
        }
    }
}

fn daemon_settings(options: &E2eOptions, pipeline: &str, idle: &str) -> DaemonSettings {
    DaemonSettings {
        workers: options.switch_cores.clone(),
        pipeline: pipeline.to_string(),
        idle: idle.to_string(),
        napi_cores: (!options.switch_napi_cores.is_empty())
            .then(|| options.switch_napi_cores.clone()),
        mac_table_size: if options.runs(Scenario::Macs) {
            crate::macs::mac_table_size_for(&options.mac_pairs)
        } else {
            crate::macs::DEFAULT_MAC_TABLE_SIZE
        },
        container_network: None,
        routed: None,
    }
}

fn attach(
    kind: DataplaneKind,
    topology: &Topology,
    options: &E2eOptions,
    stop: &AtomicBool,
) -> Result<Attached> {
    match kind.pipeline() {
        None => {
            let steer_to = options
                .bridge_rps
                .then_some(options.switch_cores.as_slice());
            Bridge::attach(topology, steer_to).map(Attached::Bridge)
        }
        Some(pipeline) => Daemon::start(
            topology,
            &options.switchyard_binary,
            &daemon_settings(options, pipeline, &options.switch_idle),
            stop,
        )
        .map(Attached::Switchyard),
    }
}

/// Measures one dataplane: attach, UDP scenarios with the AF_XDP rig, TCP,
/// detach. Failures are recorded and the next scenario still runs.
fn run_dataplane(
    kind: DataplaneKind,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) -> DataplaneRun {
    let mut run = DataplaneRun {
        dataplane: kind,
        sweeps: Vec::new(),
        latency: Vec::new(),
        mac_scale: Vec::new(),
        routed: None,
        nat: None,
        tcp: Vec::new(),
        sink_mac_learned: None,
        sink_xdp_mode: None,
        sink_fifo: None,
        errors: Vec::new(),
        notes: Vec::new(),
        daemon_stats: None,
    };
    if kind.pipeline().is_some() {
        progress.step(&format!("{kind}: starting the daemon"), DAEMON_START_S);
    }
    let mut attached = match attach(kind, topology, options, stop) {
        Ok(attached) => attached,
        Err(error) => {
            progress.log(&format!(
                "{kind}: cannot attach: {}",
                first_line(&format!("{error:#}"))
            ));
            run.errors.push(format!("attach: {error:#}"));
            return run;
        }
    };
    if options.runs_udp() {
        udp_scenarios(&mut run, &attached, topology, options, stop, progress, ids);
        // TCP needs the sink's stack: no XDP program may steal its frames.
        topology.detach_xdp(&topology.sink);
    }
    let one_pair = options.runs(Scenario::Throughput) || options.runs(Scenario::Latency);
    if let (Attached::Bridge(bridge), true) = (&attached, one_pair) {
        run.sink_mac_learned = bridge
            .has_learned(&topology.sink.mac, &topology.sink.host_interface)
            .ok();
    }
    if options.runs(Scenario::Tcp) && !stop.load(Ordering::Relaxed) {
        if kind == DataplaneKind::SwitchyardEmpty {
            // The empty pipeline does not parse, so it cannot complete the
            // partial checksums the veths' TCP offload leaves: the receiver
            // would drop every segment.
            run.notes.push(
                "tcp skipped: the empty pipeline forwards frames untouched, and TCP from a veth \
                 carries partial (offloaded) checksums that only the L2 pipeline completes"
                    .to_string(),
            );
        } else {
            tcp_scenario(&mut run, topology, options, stop, progress);
        }
    }
    if let Attached::Switchyard(daemon) = &mut attached {
        match daemon.stop() {
            Ok(stats) => {
                if options.runs(Scenario::Throughput) || options.runs(Scenario::Latency) {
                    // The empty pipeline learns nothing; only the L2 one has an FDB.
                    if kind == DataplaneKind::Switchyard {
                        run.sink_mac_learned = Some(fdb_has(&stats, &topology.sink.mac, "sink"));
                    }
                }
                run.daemon_stats = Some(serde_json::json!({
                    "ports": stats.get("ports"),
                    "workers": stats.get("workers"),
                    "mac_table": stats.get("mac_table"),
                }));
            }
            Err(error) => run.errors.push(format!("stopping switchyard: {error:#}")),
        }
    }
    drop(attached);
    if options.runs(Scenario::Routed) && !stop.load(Ordering::Relaxed) {
        if routed::routes(kind) {
            routed::measure_routed(&mut run, topology, options, stop, progress, ids);
        } else {
            run.notes.push(
                "routed skipped: the empty pipeline forwards port to port and cannot route"
                    .to_string(),
            );
        }
    }
    if options.runs(Scenario::Nat) && routed::routes(kind) && !stop.load(Ordering::Relaxed) {
        nat::measure_nat(&mut run, topology, options, stop, progress, ids);
    }
    run
}

fn udp_scenarios(
    run: &mut DataplaneRun,
    attached: &Attached,
    topology: &Topology,
    options: &E2eOptions,
    stop: &Arc<AtomicBool>,
    progress: &mut Progress,
    ids: &mut RunIds,
) {
    let kind = run.dataplane;
    let config = RigConfig {
        gen_netns: topology.gen.netns.clone(),
        sink_netns: topology.sink.netns.clone(),
        interface: NS_INTERFACE.to_string(),
        gen_core: Some(options.generator_core),
        sink_core: Some(options.sink_core),
    };
    let mut rig = match Rig::start(&config, stop) {
        Ok(rig) => rig,
        Err(error) => {
            progress.log(&format!(
                "{kind}: traffic rig: {}",
                first_line(&format!("{error:#}"))
            ));
            run.errors.push(format!("traffic rig: {error:#}"));
            return;
        }
    };
    run.sink_xdp_mode = Some(rig.sink_mode());
    run.sink_fifo = rig.sink_fifo();
    let mut ctx = PointContext {
        rig: &mut rig,
        topology,
        options,
        daemon: attached.daemon(),
        bridge: attached.bridge(),
        ids,
        stop,
        mac_pairs: None,
        routed: None,
    };
    if options.runs(Scenario::Throughput) {
        for &size in &options.sizes {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match sweep(&mut ctx, kind, size, progress) {
                Ok(sweep) => run.sweeps.push(sweep),
                Err(error) => {
                    progress.log(&format!(
                        "{kind} {size} B: {}",
                        first_line(&format!("{error:#}"))
                    ));
                    run.errors.push(format!("throughput {size} B: {error:#}"));
                }
            }
        }
    }
    if options.runs(Scenario::Latency) {
        for &size in &options.latency_sizes {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let saturation = run.sweep(size).map(|s| s.saturation_mpps);
            match latency_points(&mut ctx, kind, size, saturation, progress) {
                Ok(points) => run.latency.extend(points),
                Err(error) => {
                    progress.log(&format!(
                        "{kind} latency {size} B: {}",
                        first_line(&format!("{error:#}"))
                    ));
                    run.errors.push(format!("latency {size} B: {error:#}"));
                }
            }
        }
    }
    if options.runs(Scenario::Macs) {
        for &count in &options.mac_pairs {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match mac_scale::measure(&mut ctx, kind, count, progress) {
                Ok(result) => run.mac_scale.push(result),
                Err(error) => {
                    progress.log(&format!(
                        "{kind} {count} MAC pairs: {}",
                        first_line(&format!("{error:#}"))
                    ));
                    run.errors.push(format!("macs, {count} pairs: {error:#}"));
                }
            }
        }
    }
    if options.runs(Scenario::Routed) && routed::routes(kind) && !stop.load(Ordering::Relaxed) {
        routed::measure_l2(&mut ctx, run, progress);
    }
}

/// What every point needs.
struct PointContext<'a> {
    rig: &'a mut Rig,
    topology: &'a Topology,
    options: &'a E2eOptions,
    daemon: Option<&'a Daemon>,
    bridge: Option<&'a Bridge>,
    ids: &'a mut RunIds,
    stop: &'a Arc<AtomicBool>,
    /// MAC pairs the generator cycles through (the `macs` scenario); `None`:
    /// the topology's one generator/sink pair.
    mac_pairs: Option<crate::macs::MacPairs>,
    /// The `routed` scenario's frames (addresses, destination MAC, port
    /// flows); `None`: the topology's pair with `options.flows` templates.
    routed: Option<routed::RoutedTraffic>,
}

impl PointContext<'_> {
    /// Teaches the dataplane where the sink lives: a few frames from the
    /// sink to the generator (flooded or forwarded, either way learned).
    fn teach_sink_mac(&self) -> Result<()> {
        let learn = frames::udp_flows(
            self.topology.sink.mac,
            self.topology.gen.mac,
            MIN_FRAME_LEN,
            3,
        )?;
        learn::send_few(&self.topology.sink.netns, NS_INTERFACE, learn)?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    /// Sends one point and sums it up.
    fn measure(&mut self, size: usize, rate_pps: Option<f64>, seconds: f64) -> Result<Point> {
        if self.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let templates = match &self.routed {
            Some(r) => match r.inbound {
                Some((src_ip, dst_ip)) => routed::templates_between(
                    self.topology.sink.mac,
                    r.dst_mac,
                    src_ip,
                    dst_ip,
                    size,
                )?,
                None => routed::templates(self.topology.gen.mac, r.dst_mac, size)?,
            },
            None => traffic::templates(
                self.topology.gen.mac,
                self.topology.sink.mac,
                size,
                self.options.flows,
            )?,
        };
        let duration = Duration::from_secs_f64(seconds);
        let spec = PointSpec {
            run: self.ids.next_id(),
            templates,
            rate_pps,
            duration,
            max_frames: traffic::max_frames(rate_pps, duration),
            mac_pairs: self.mac_pairs,
            port_flows: self.routed.map(|r| r.flows),
        };
        let pid = self.daemon.and_then(Daemon::pid);
        let cores = &self.options.switch_cores;
        let before = Snapshot::take(pid, cores);
        let wall = Instant::now();
        let (gen, sink) = self.rig.measure(spec)?;
        let wall = wall.elapsed().as_secs_f64();
        let after = Snapshot::take(pid, cores);
        if self.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let seconds = gen.elapsed.as_secs_f64().max(1e-9);
        let probes = sink.probes.summary(gen.sent);
        let delivered = probes.received;
        Ok(Point {
            frame_size: size,
            target_mpps: rate_pps.map(|r| r / 1e6),
            seconds,
            offered_frames: gen.sent,
            offered_mpps: gen.sent as f64 / seconds / 1e6,
            delivered_frames: delivered,
            delivered_mpps: delivered as f64 / seconds / 1e6,
            delivered_gbps: (delivered * size as u64) as f64 * 8.0 / seconds / 1e9,
            probes,
            sink_socket: sink.socket,
            generator_skipped: gen.skipped,
            generator_kicks: gen.kicks,
            generator_unfinished: gen.unfinished,
            generator_pinned: gen.pinned,
            generator_max_tx_pending: gen.max_tx_pending,
            sink_max_rx_backlog: sink.max_rx_backlog,
            daemon_cpu_pct: before.daemon_pct(&after, wall),
            interference: before.interference(&after, wall),
            switch_cores_busy_pct: before.switch_busy_pct(&after),
            cores_busy_pct: before.all_busy_pct(&after),
            wall_seconds: wall,
        })
    }
}

fn describe(kind: DataplaneKind, p: &Point) -> String {
    let target = match p.target_mpps {
        Some(t) => format!("{t:.3}"),
        None => "max".to_string(),
    };
    let p99 = p
        .probes
        .latency
        .map(|l| {
            format!(
                ", p50 {} µs, p99 {} µs",
                latency::format_us(l.p50_us),
                latency::format_us(l.p99_us)
            )
        })
        .unwrap_or_default();
    format!(
        "  {kind} {:>4} B target {target:>5} Mpps: offered {:.3}, delivered {:.3} Mpps ({:.2} Gbit/s), loss {:.2} %{p99} [tx pending {}, rx backlog {}]",
        p.frame_size, p.offered_mpps, p.delivered_mpps, p.delivered_gbps, p.probes.loss_pct,
        p.generator_max_tx_pending, p.sink_max_rx_backlog
    )
}

fn sweep(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    size: usize,
    progress: &mut Progress,
) -> Result<Sweep> {
    let options = ctx.options;
    ctx.teach_sink_mac()?;
    if options.warmup_seconds > 0.0 {
        progress.step(
            &format!("{kind} {size} B: warm-up"),
            options.warmup_seconds + POINT_OVERHEAD_S,
        );
        ctx.measure(size, None, options.warmup_seconds)?;
    }
    let steps = 1 + options.sweep_fractions.len();
    let planned = options.step_seconds + POINT_OVERHEAD_S;
    progress.step(
        &format!("{kind} {size} B: step 1/{steps}, unpaced"),
        planned,
    );
    let unpaced = ctx.measure(size, None, options.step_seconds)?;
    progress.log(&describe(kind, &unpaced));
    let capacity = unpaced.offered_mpps * 1e6;
    let mut points = vec![unpaced];
    for (i, fraction) in options.sweep_fractions.iter().enumerate() {
        let rate = capacity * fraction;
        progress.step(
            &format!(
                "{kind} {size} B: step {}/{steps}, {:.3} Mpps",
                i + 2,
                rate / 1e6
            ),
            planned,
        );
        let point = ctx.measure(size, Some(rate), options.step_seconds)?;
        progress.log(&describe(kind, &point));
        points.push(point);
    }
    Ok(summarize_sweep(size, points))
}

/// Orders a sweep's points by offered rate and finds its saturation and
/// no-drop rates.
pub fn summarize_sweep(size: usize, mut points: Vec<Point>) -> Sweep {
    let generator_bound = points
        .iter()
        .find(|p| p.target_mpps.is_none())
        .is_some_and(|p| p.probes.loss_pct < 1.0);
    points.sort_by(|a, b| a.offered_mpps.total_cmp(&b.offered_mpps));
    let best = points
        .iter()
        .max_by(|a, b| a.delivered_mpps.total_cmp(&b.delivered_mpps));
    let saturation_mpps = best.map_or(0.0, |p| p.delivered_mpps);
    let saturation_gbps = best.map_or(0.0, |p| p.delivered_gbps);
    // Frames per busy core-second over the same window the CPU covers.
    // None when the switch cores were mostly idle: the dataplane ran
    // elsewhere (the bridge in softirq on the sender's core).
    let mpps_per_switch_core = best.and_then(|p| {
        let busy_core_seconds = p.switch_cores_busy_pct? / 100.0 * p.wall_seconds;
        (busy_core_seconds > 0.1 * p.wall_seconds)
            .then(|| p.delivered_frames as f64 / busy_core_seconds / 1e6)
    });
    let no_drop_mpps = points
        .iter()
        .filter(|p| p.probes.loss_pct <= NO_DROP_LOSS_PCT && p.offered_frames > 0)
        .map(|p| p.offered_mpps)
        .max_by(f64::total_cmp);
    Sweep {
        frame_size: size,
        points,
        saturation_mpps,
        saturation_gbps,
        no_drop_mpps,
        generator_bound,
        mpps_per_switch_core,
    }
}

fn latency_points(
    ctx: &mut PointContext<'_>,
    kind: DataplaneKind,
    size: usize,
    saturation: Option<f64>,
    progress: &mut Progress,
) -> Result<Vec<LatencyPoint>> {
    let options = ctx.options;
    ctx.teach_sink_mac()?;
    let saturation = match saturation {
        Some(s) => s,
        None => {
            progress.step(
                &format!("{kind} {size} B: saturation for latency"),
                options.step_seconds + POINT_OVERHEAD_S,
            );
            let point = ctx.measure(size, None, options.step_seconds)?;
            progress.log(&describe(kind, &point));
            point.delivered_mpps
        }
    };
    if saturation <= 0.0 {
        bail!("nothing was delivered at full load: no saturation rate to take shares of");
    }
    let mut points = Vec::new();
    for &load in &options.latency_loads_pct {
        let rate = saturation * 1e6 * load / 100.0;
        progress.step(
            &format!(
                "{kind} {size} B: latency at {load:.0} % ({:.3} Mpps)",
                rate / 1e6
            ),
            options.latency_seconds + POINT_OVERHEAD_S,
        );
        let point = ctx.measure(size, Some(rate), options.latency_seconds)?;
        progress.log(&describe(kind, &point));
        points.push(LatencyPoint {
            load_pct: load,
            saturation_mpps: saturation,
            point,
        });
    }
    Ok(points)
}

fn tcp_scenario(
    run: &mut DataplaneRun,
    topology: &Topology,
    options: &E2eOptions,
    stop: &AtomicBool,
    progress: &mut Progress,
) {
    let kind = run.dataplane;
    let _addresses = match topology.add_addresses() {
        Ok(guard) => guard,
        Err(error) => {
            run.errors.push(format!("tcp: addresses: {error:#}"));
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("syp{}-tcp", topology.id));
    for &streams in &options.tcp_streams {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        progress.step(
            &format!("{kind}: TCP, {streams} stream(s)"),
            options.tcp_seconds.round() + 1.0,
        );
        match tcp::measure(
            topology,
            streams,
            options.tcp_seconds,
            options.generator_core,
            options.sink_core,
            &dir,
            stop,
        ) {
            Ok(result) => {
                progress.log(&format!(
                    "  {kind} TCP {streams} stream(s): {:.2} Gbit/s, {} retransmits",
                    result.gbps,
                    result
                        .retransmits
                        .map_or("?".to_string(), |r| r.to_string())
                ));
                run.tcp.push(result);
            }
            Err(error) => {
                progress.log(&format!(
                    "  {kind} TCP {streams} stream(s): {}",
                    first_line(&format!("{error:#}"))
                ));
                run.errors
                    .push(format!("tcp {streams} stream(s): {error:#}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the daemon in idle mode `mode`, lets it settle, and measures its
/// CPU use with no traffic.
fn measure_idle(
    topology: &Topology,
    options: &E2eOptions,
    mode: &str,
    stop: &AtomicBool,
) -> IdleRun {
    let mut result = IdleRun {
        mode: mode.to_string(),
        seconds: 0.0,
        cpu_pct: None,
        workers: None,
        interference: None,
        error: None,
    };
    let settings = daemon_settings(options, "l2", mode);
    let mut daemon = match Daemon::start(topology, &options.switchyard_binary, &settings, stop) {
        Ok(daemon) => daemon,
        Err(error) => {
            result.error = Some(format!("{error:#}"));
            return result;
        }
    };
    sleep_unless_stopped(IDLE_SETTLE, stop);
    let before = Snapshot::take(daemon.pid(), &options.switch_cores);
    let start = Instant::now();
    sleep_unless_stopped(Duration::from_secs_f64(options.idle_seconds), stop);
    let after = Snapshot::take(daemon.pid(), &options.switch_cores);
    result.seconds = start.elapsed().as_secs_f64();
    result.cpu_pct = before.daemon_pct(&after, result.seconds);
    result.interference = before.interference(&after, result.seconds);
    if result.cpu_pct.is_none() {
        result.error = Some("could not read the daemon's /proc/<pid>/stat".to_string());
    }
    match daemon.stop() {
        Ok(stats) => result.workers = stats.get("workers").cloned(),
        Err(error) => {
            result
                .error
                .get_or_insert(format!("stopping switchyard: {error:#}"));
        }
    }
    result
}

/// Sleeps `duration` in short steps, returning early on Ctrl-C.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// True when a switchyard stats document lists `mac` on port `port` in its FDB.
fn fdb_has(stats: &serde_json::Value, mac: &[u8; 6], port: &str) -> bool {
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    stats
        .get("fdb")
        .and_then(|f| f.as_array())
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e.get("mac")
                    .and_then(|m| m.as_str())
                    .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
                    && e.get("port").and_then(|p| p.as_str()) == Some(port)
            })
        })
}
