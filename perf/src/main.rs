//! `switchyard-perf`: Switchyard's benchmark harness (see the crate docs).
#![deny(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_perf::e2e::dataplane::{daemon_binary, DataplaneKind};
use switchyard_perf::e2e::node_scale::{self, ScaleOptions, ScaleReport};
use switchyard_perf::e2e::{self, E2eOptions, E2eReport, Scenario};
use switchyard_perf::machine::Machine;
use switchyard_perf::micro::{self, MicroOptions, MicroReport};
use switchyard_perf::progress::Progress;
use switchyard_perf::{report, sys};

/// Command line of the benchmark harness.
#[derive(Parser)]
#[command(
    name = "switchyard-perf",
    version,
    about = "Switchyard benchmarks: in-memory pipeline and end-to-end vs the Linux bridge"
)]
struct Cli {
    /// Directory for `<subcommand>-latest.json` and the plots (default:
    /// perf/results of the source tree).
    #[arg(long, global = true)]
    results_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything: pipeline micro-benchmarks, then every end-to-end scenario
    /// (needs root). About 4 minutes on a 2-core VM, 1.5 with --quick.
    Run {
        #[command(flatten)]
        e2e: E2eArgs,
        /// Measuring time per micro-benchmark case, in seconds [default: 0.5; quick: 0.1].
        #[arg(long)]
        pipeline_seconds: Option<f64>,
    },
    /// In-memory micro-benchmarks of the pipeline stages and the poll worker (no I/O, no root).
    Pipeline {
        /// Measuring time per benchmark case, in seconds.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Batch sizes (frames per stage call; per port per loop turn for the worker).
        #[arg(long, value_delimiter = ',', default_value = "64,256")]
        batches: Vec<usize>,
        /// Station pairs the traffic cycles through.
        #[arg(long, default_value_t = 64)]
        flows: usize,
        /// Frame size in bytes (Ethernet without FCS).
        #[arg(long, default_value_t = 64)]
        frame_size: usize,
        /// Core to pin the benchmark thread to (default: the last core).
        #[arg(long)]
        core: Option<usize>,
    },
    /// End-to-end scenarios through the Linux bridge and Switchyard with an
    /// AF_XDP generator and sink (needs root).
    E2e {
        #[command(flatten)]
        e2e: E2eArgs,
    },
    /// Node scale: N containers attached through the control socket: attach
    /// latency, memory per port, idle CPU and a busy pair's throughput with
    /// N idle ports next to it (needs root). ~4 minutes for 1,000 on a 2-core VM.
    Scale {
        #[command(flatten)]
        scale: ScaleArgs,
    },
    /// Prints the tables of a saved `run`/`e2e` result again and rewrites its
    /// plots (into --results-dir, named after the saved subcommand).
    Report {
        /// The JSON file, e.g. perf/results/run-latest.json.
        file: PathBuf,
    },
}

/// The part of a saved result document `report` needs.
#[derive(serde::Deserialize)]
struct SavedDocument {
    subcommand: String,
    e2e: Option<E2eReport>,
}

/// Options of the end-to-end scenarios; unset ones take the default of the
/// chosen profile (full or --quick).
#[derive(Args, Clone)]
struct E2eArgs {
    /// ~1 minute instead of ~5: two paced sweep points, shorter points and tests.
    #[arg(long)]
    quick: bool,
    /// Scenarios: throughput, latency, macs, routed, nat, tcp, idle [default: all but nat].
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<Scenario>>,
    /// Dataplanes, in order [default: bridge,switchyard,switchyard-empty].
    #[arg(long, value_delimiter = ',')]
    dataplanes: Option<Vec<DataplaneKind>>,
    /// Frame sizes of the throughput sweep, Ethernet without FCS (60..=1514) [default: 64,512,1500].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Frame sizes of the latency scenario [default: 64].
    #[arg(long, value_delimiter = ',')]
    latency_sizes: Option<Vec<usize>>,
    /// Latency loads, % of each dataplane's saturation rate [default: 10,50,90].
    #[arg(long, value_delimiter = ',')]
    loads: Option<Vec<f64>>,
    /// Paced sweep points as fractions of the generator's unpaced rate
    /// [default: 0.25,0.5,0.75,0.9; quick: 0.5,0.9].
    #[arg(long, value_delimiter = ',')]
    fractions: Option<Vec<f64>>,
    /// Sending time per sweep point, seconds [default: 2; quick: 0.5].
    #[arg(long)]
    step_seconds: Option<f64>,
    /// Sending time per latency point, seconds [default: 3; quick: 1].
    #[arg(long)]
    latency_seconds: Option<f64>,
    /// Untimed sending before each frame size, seconds [default: 0.3; quick: 0.1].
    #[arg(long)]
    warmup: Option<f64>,
    /// iperf3 test length, seconds (whole) [default: 3; quick: 1].
    #[arg(long)]
    tcp_seconds: Option<f64>,
    /// iperf3 parallel streams, one test per value [default: 1,4].
    #[arg(long, value_delimiter = ',')]
    tcp_streams: Option<Vec<usize>>,
    /// Idle measuring time per idle mode, seconds [default: 3; quick: 1.5].
    #[arg(long)]
    idle_seconds: Option<f64>,
    /// Idle modes to measure [default: backoff,busy-poll].
    #[arg(long, value_delimiter = ',')]
    idle_modes: Option<Vec<String>>,
    /// The daemon's `idle` setting while traffic runs (the idle scenario
    /// measures both modes regardless).
    #[arg(long, default_value = "backoff")]
    switch_idle: String,
    /// Core of the generator and the iperf3 client.
    #[arg(long, default_value_t = 0)]
    generator_core: usize,
    /// Core of the sink and the iperf3 server. On the generator's core (the
    /// default) one thread serves both sockets.
    #[arg(long, default_value_t = 0)]
    sink_core: usize,
    /// Cores of Switchyard's workers (`workers = [...]`); the bridge is steered
    /// there with RPS.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    switch_cores: Vec<usize>,
    /// Steer the bridge's work to --switch-cores with RPS. false (default): the
    /// bridge runs as Docker and CNI deploy it, in softirq on the sending
    /// core (the generator's); true: RPS hands it to the switch's cores.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    bridge_rps: bool,
    /// Cores for the kernel's receive work on Switchyard's ports (veth NAPI:
    /// XDP program, copy into the UMEM), as pinned NAPI threads [default:
    /// none, i.e. softirq on the generator's core, where the kernel puts it].
    /// On a 2-core machine the only other core is the worker's, where the
    /// NAPI thread and the worker would share one core.
    #[arg(long, value_delimiter = ',')]
    switch_napi_cores: Vec<usize>,
    /// UDP flows (source ports) the generator cycles through.
    #[arg(long, default_value_t = 64)]
    flows: usize,
    /// MAC pair counts of the macs scenario (distinct source/destination
    /// stations, all learned; the daemon's MAC table is raised to fit the largest).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,100000")]
    mac_pairs: Vec<usize>,
    /// Frame size of the macs scenario (Ethernet without FCS).
    #[arg(long, default_value_t = 64)]
    mac_pairs_size: usize,
    /// Frame sizes of the routed scenario (Ethernet without FCS).
    #[arg(long, value_delimiter = ',', default_value = "64,1500")]
    routed_sizes: Vec<usize>,
    /// Flow counts (distinct UDP port pairs) of the routed scenario.
    #[arg(long, value_delimiter = ',', default_value = "1,10000")]
    routed_flows: Vec<usize>,
    /// Flow counts (distinct UDP port pairs) of the nat scenario's masquerade
    /// and DNAT points (DNAT spreads them over 1,000 published ports).
    #[arg(long, value_delimiter = ',', default_value = "1,10000")]
    nat_flows: Vec<usize>,
}

impl E2eArgs {
    fn options(self) -> E2eOptions {
        let q = self.quick;
        let pick = |quick: f64, full: f64| if q { quick } else { full };
        E2eOptions {
            scenarios: self.scenarios.unwrap_or_else(|| Scenario::ALL.to_vec()),
            dataplanes: self
                .dataplanes
                .unwrap_or_else(|| DataplaneKind::ALL.to_vec()),
            sizes: self.sizes.unwrap_or_else(|| vec![64, 512, 1500]),
            latency_sizes: self.latency_sizes.unwrap_or_else(|| vec![64]),
            latency_loads_pct: self.loads.unwrap_or_else(|| vec![10.0, 50.0, 90.0]),
            sweep_fractions: self.fractions.unwrap_or_else(|| {
                if q {
                    vec![0.5, 0.9]
                } else {
                    vec![0.25, 0.5, 0.75, 0.9]
                }
            }),
            step_seconds: self.step_seconds.unwrap_or(pick(0.5, 2.0)),
            latency_seconds: self.latency_seconds.unwrap_or(pick(1.0, 3.0)),
            warmup_seconds: self.warmup.unwrap_or(pick(0.1, 0.3)),
            tcp_seconds: self.tcp_seconds.unwrap_or(pick(1.0, 3.0)),
            tcp_streams: self.tcp_streams.unwrap_or_else(|| vec![1, 4]),
            idle_seconds: self.idle_seconds.unwrap_or(pick(1.5, 3.0)),
            idle_modes: self
                .idle_modes
                .unwrap_or_else(|| vec!["backoff".to_string(), "busy-poll".to_string()]),
            switch_idle: self.switch_idle,
            generator_core: self.generator_core,
            sink_core: self.sink_core,
            switch_cores: self.switch_cores,
            bridge_rps: self.bridge_rps,
            switch_napi_cores: self.switch_napi_cores,
            flows: self.flows,
            mac_pairs: self.mac_pairs,
            mac_pairs_size: self.mac_pairs_size,
            routed_sizes: self.routed_sizes,
            routed_flows: self.routed_flows,
            nat_flows: self.nat_flows,
            switchyard_binary: daemon_binary(),
        }
    }
}

/// Options of `scale`; unset ones take the chosen profile's default.
#[derive(Args, Clone)]
struct ScaleArgs {
    /// Shorter: 100 containers unless --containers says otherwise, 2 s idle,
    /// two 0.5 s throughput points per port count.
    #[arg(long)]
    quick: bool,
    /// Containers to attach [default: 1000; quick: 100].
    #[arg(long)]
    containers: Option<usize>,
    /// Idle CPU measuring time per port count, seconds [default: 5; quick: 2].
    #[arg(long)]
    idle_seconds: Option<f64>,
    /// Sending time per throughput point, seconds [default: 2; quick: 0.5].
    #[arg(long)]
    step_seconds: Option<f64>,
    /// Throughput points per port count; the median is reported [default: 3; quick: 2].
    #[arg(long)]
    repeats: Option<usize>,
    /// Untimed sending before the points, seconds [default: 0.3; quick: 0.1].
    #[arg(long)]
    warmup: Option<f64>,
    /// Limit on the whole attach phase, seconds [default: 60 + 1 per container].
    #[arg(long)]
    attach_deadline: Option<f64>,
    /// Core of the generator.
    #[arg(long, default_value_t = 0)]
    generator_core: usize,
    /// Core of the sink.
    #[arg(long, default_value_t = 0)]
    sink_core: usize,
    /// Cores of the daemon's workers.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    switch_cores: Vec<usize>,
}

impl ScaleArgs {
    fn options(self) -> ScaleOptions {
        let mut o = ScaleOptions::profile(self.quick, self.containers, daemon_binary());
        if let Some(v) = self.idle_seconds {
            o.idle_seconds = v;
        }
        if let Some(v) = self.step_seconds {
            o.step_seconds = v;
        }
        if let Some(v) = self.repeats {
            o.repeats = v;
        }
        if let Some(v) = self.warmup {
            o.warmup_seconds = v;
        }
        if let Some(v) = self.attach_deadline {
            o.attach_deadline_seconds = v;
        }
        o.generator_core = self.generator_core;
        o.sink_core = self.sink_core;
        o.switch_cores = self.switch_cores;
        o
    }
}

/// The JSON document of `scale`.
#[derive(Serialize)]
struct ScaleDocument<'a> {
    subcommand: &'static str,
    machine: &'a Machine,
    scale: &'a ScaleReport,
}

/// The JSON document every subcommand but `pipeline` writes.
#[derive(Serialize)]
struct RunDocument<'a> {
    subcommand: &'static str,
    machine: &'a Machine,
    pipeline: Option<&'a MicroReport>,
    e2e: Option<&'a E2eReport>,
}

fn main() -> ExitCode {
    // Warnings (a plot that could not be drawn) by default; RUST_LOG=debug
    // shows every step.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard-perf: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn last_core() -> usize {
    sys::online_cpus() - 1
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Ctrl-C and SIGTERM only raise a flag: every loop checks it, stops, and the
    // clean-up (namespaces, veths, bridge, daemon) runs on the way out.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let results_dir = cli.results_dir.unwrap_or_else(report::default_results_dir);
    match cli.command {
        Command::Pipeline {
            seconds,
            batches,
            flows,
            frame_size,
            core,
        } => {
            let options = MicroOptions {
                seconds,
                batches,
                flows,
                frame_size,
                core: Some(core.unwrap_or_else(last_core)),
            };
            let report = micro::run(options, &stop)?;
            report.print();
            let interrupted = report.interrupted || stop.load(Ordering::Relaxed);
            save(&results_dir, "pipeline", &report, interrupted)?;
            Ok(exit_code(interrupted, false))
        }
        Command::E2e { e2e } => run_all("e2e", e2e, None, &results_dir, stop),
        Command::Scale { scale } => run_scale(scale, &results_dir, stop),
        Command::Report { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let saved: SavedDocument = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a run/e2e result", file.display()))?;
            let e2e = saved
                .e2e
                .ok_or_else(|| anyhow::anyhow!("{} has no end-to-end results", file.display()))?;
            print!("{}", e2e::report::render(&e2e));
            e2e.machine.print();
            let prefix = if saved.subcommand == "e2e" {
                "e2e"
            } else {
                "run"
            };
            for path in e2e::report::write_plots(&e2e, &results_dir, prefix)? {
                println!("plot: {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            e2e,
            pipeline_seconds,
        } => {
            let seconds = pipeline_seconds.unwrap_or(if e2e.quick { 0.1 } else { 0.5 });
            run_all("run", e2e, Some(seconds), &results_dir, stop)
        }
    }
}

/// The end-to-end scenarios, preceded by the micro-benchmarks when
/// `pipeline_seconds` is set: tables, JSON and plots.
fn run_all(
    subcommand: &'static str,
    args: E2eArgs,
    pipeline_seconds: Option<f64>,
    results_dir: &Path,
    stop: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let options = args.options();
    options.validate()?;
    let machine = Machine::detect();
    if pipeline_seconds.is_none() {
        // (The micro-benchmarks print it themselves.)
        machine.print();
    }
    let micro_options = pipeline_seconds.map(|seconds| MicroOptions {
        seconds,
        batches: vec![64, 256],
        flows: 64,
        frame_size: 64,
        core: Some(last_core()),
    });
    let micro_planned = micro_options
        .as_ref()
        .map_or(0.0, MicroOptions::planned_seconds);
    let mut progress = Progress::new(micro_planned + options.planned_seconds());
    let pipeline = match micro_options {
        Some(micro_options) => {
            progress.step("pipeline micro-benchmarks", micro_planned);
            // They print their own lines; keep the status line out of them.
            progress.finish();
            // The micro-benchmarks pin this thread; what it starts later (the
            // daemon, `ip`, iperf3) must not inherit that.
            let affinity = sys::current_affinity()?;
            let report = micro::run(micro_options, &stop);
            sys::set_affinity(0, &affinity)?;
            Some(report?)
        }
        None => None,
    };
    let e2e = if stop.load(Ordering::Relaxed) {
        None
    } else {
        Some(e2e::run(
            options,
            machine.clone(),
            Arc::clone(&stop),
            &mut progress,
        )?)
    };
    progress.finish();
    if let Some(pipeline) = &pipeline {
        println!("\nPipeline micro-benchmarks (in memory, one core)");
        pipeline.print();
    }
    let mut failed = false;
    if let Some(e2e) = &e2e {
        print!("{}", e2e::report::render(e2e));
        println!("run took {}", switchyard_perf::progress::clock(e2e.seconds));
        failed = e2e.has_errors();
    }
    machine.print();
    let interrupted = stop.load(Ordering::Relaxed)
        || pipeline.as_ref().is_some_and(|p| p.interrupted)
        || e2e.as_ref().is_some_and(|e| e.interrupted);
    let document = RunDocument {
        subcommand,
        machine: &machine,
        pipeline: pipeline.as_ref(),
        e2e: e2e.as_ref(),
    };
    save(results_dir, subcommand, &document, interrupted)?;
    if let (Some(e2e), false) = (&e2e, interrupted) {
        for path in e2e::report::write_plots(e2e, results_dir, subcommand)? {
            println!("plot: {}", path.display());
        }
    }
    Ok(exit_code(interrupted, failed))
}

/// The `scale` benchmark: tables, JSON and the attach plot.
fn run_scale(args: ScaleArgs, results_dir: &Path, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    let options = args.options();
    options.validate()?;
    let machine = Machine::detect();
    machine.print();
    let mut progress = Progress::new(options.planned_seconds());
    let report = node_scale::run(options, machine.clone(), Arc::clone(&stop), &mut progress);
    progress.finish();
    let report = report?;
    print!("{}", e2e::node_scale_report::render(&report));
    println!(
        "run took {}",
        switchyard_perf::progress::clock(report.seconds)
    );
    machine.print();
    let interrupted = report.interrupted || stop.load(Ordering::Relaxed);
    let document = ScaleDocument {
        subcommand: "scale",
        machine: &machine,
        scale: &report,
    };
    save(results_dir, "scale", &document, interrupted)?;
    if !interrupted {
        for path in e2e::node_scale_report::write_plots(&report, results_dir)? {
            println!("plot: {}", path.display());
        }
    }
    Ok(exit_code(interrupted, report.has_errors()))
}

/// Writes the result document, except after an interruption: a cut-short run
/// must not replace the last complete one.
fn save<T: serde::Serialize>(
    dir: &std::path::Path,
    subcommand: &str,
    document: &T,
    interrupted: bool,
) -> Result<()> {
    if interrupted {
        println!("interrupted: results not saved");
    } else {
        let path = report::write_latest(dir, subcommand, document)?;
        println!("results: {}", path.display());
    }
    Ok(())
}

/// 130 when interrupted (as shells report Ctrl-C), 1 when something failed.
fn exit_code(interrupted: bool, failed: bool) -> ExitCode {
    if interrupted {
        ExitCode::from(130)
    } else if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> E2eOptions {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Run { e2e, .. } | Command::E2e { e2e } => e2e.options(),
            _ => panic!("not a run"),
        }
    }

    #[test]
    fn the_default_run_fits_five_minutes_and_quick_under_two() {
        let full = options(&["switchyard-perf", "run"]);
        // (The default cores 0 and 1 exist only on machines with two or more.)
        let two_cores = sys::online_cpus() >= 2;
        if two_cores {
            full.validate().unwrap();
        }
        let micro = MicroOptions {
            seconds: 0.5,
            batches: vec![64, 256],
            flows: 64,
            frame_size: 64,
            core: None,
        }
        .planned_seconds();
        assert!(
            full.planned_seconds() + micro < 300.0,
            "{}",
            full.planned_seconds()
        );
        let quick = options(&["switchyard-perf", "run", "--quick"]);
        if two_cores {
            quick.validate().unwrap();
        }
        // Under two minutes, as the name says (the routed scenario took it
        // past 100 s).
        assert!(
            quick.planned_seconds() < 120.0,
            "{}",
            quick.planned_seconds()
        );
        assert!(quick.step_seconds < full.step_seconds);
        assert_eq!(full.mac_pairs, vec![1, 1000, 100_000]);
        eprintln!(
            "planned: full {:.0} s, quick {:.0} s",
            full.planned_seconds(),
            quick.planned_seconds()
        );
    }

    #[test]
    fn switch_cores_become_workers_and_options_override_the_profile() {
        let o = options(&[
            "switchyard-perf",
            "e2e",
            "--quick",
            "--switch-cores",
            "1,2,3",
            "--sizes",
            "64",
            "--step-seconds",
            "4",
            "--dataplanes",
            "bridge,switchyard-empty",
        ]);
        assert_eq!(o.switch_cores, vec![1, 2, 3]);
        assert_eq!(o.sizes, vec![64]);
        assert_eq!(o.step_seconds, 4.0);
        assert_eq!(
            o.dataplanes,
            vec![DataplaneKind::Bridge, DataplaneKind::SwitchyardEmpty]
        );
        assert_eq!(o.scenarios, Scenario::ALL.to_vec());
        assert!(Cli::try_parse_from(["switchyard-perf", "e2e", "--dataplanes", "ovs"]).is_err());
    }

    #[test]
    fn results_saved_before_the_macs_scenario_still_load() {
        let text = include_str!("../results/run-latest.json");
        let saved: SavedDocument = serde_json::from_str(text).unwrap();
        let e2e = saved.e2e.unwrap();
        assert!(e2e.options.mac_pairs.is_empty());
        assert_eq!(e2e.options.mac_pairs_size, 64);
        assert!(e2e.runs.iter().all(|r| r.mac_scale.is_empty()));
    }

    #[test]
    fn the_saved_nat_run_loads_and_renders() {
        let text = include_str!("../results/nat/e2e-latest.json");
        let saved: SavedDocument = serde_json::from_str(text).unwrap();
        let e2e = saved.e2e.unwrap();
        assert_eq!(e2e.options.scenarios, vec![Scenario::Routed, Scenario::Nat]);
        let nat: Vec<_> = e2e.runs.iter().filter_map(|r| r.nat.as_ref()).collect();
        assert_eq!(nat.len(), 2, "kernel and switchyard");
        for run in &nat {
            assert_eq!(
                run.points.len(),
                5,
                "(masquerade, dnat) x 2 flow counts + new flows"
            );
        }
        let text = e2e::report::render(&e2e);
        assert!(text.contains("NAT targets"), "{text}");
        assert!(text.contains("kernel nft"), "{text}");
    }

    #[test]
    fn the_saved_routed_run_loads_and_renders() {
        let text = include_str!("../results/routed/e2e-latest.json");
        let saved: SavedDocument = serde_json::from_str(text).unwrap();
        let e2e = saved.e2e.unwrap();
        assert_eq!(e2e.options.scenarios, vec![Scenario::Routed]);
        let routed: Vec<_> = e2e.runs.iter().filter_map(|r| r.routed.as_ref()).collect();
        assert_eq!(routed.len(), 2, "kernel router and switchyard");
        for run in &routed {
            assert_eq!(
                run.points.len(),
                8,
                "2 sizes x 2 flow counts x (l2, routed)"
            );
            assert!(run.gateway_mac.is_some());
        }
        let text = e2e::report::render(&e2e);
        assert!(text.contains("Routed targets"), "{text}");
    }

    #[test]
    fn scale_options_parse_with_their_profiles() {
        let scale = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Scale { scale } => scale.options(),
            _ => panic!("not scale"),
        };
        let full = scale(&["switchyard-perf", "scale"]);
        assert_eq!(full.containers, 1000);
        assert_eq!(full.repeats, 3);
        assert_eq!(full.switch_cores, vec![1]);
        let quick = scale(&["switchyard-perf", "scale", "--quick"]);
        assert_eq!(quick.containers, 100);
        assert!(quick.idle_seconds < full.idle_seconds);
        let o = scale(&[
            "switchyard-perf",
            "scale",
            "--quick",
            "--containers",
            "50",
            "--idle-seconds",
            "3",
            "--repeats",
            "4",
            "--attach-deadline",
            "99",
            "--switch-cores",
            "1",
        ]);
        assert_eq!(o.containers, 50);
        assert_eq!(o.idle_seconds, 3.0);
        assert_eq!(o.repeats, 4);
        assert_eq!(o.attach_deadline_seconds, 99.0);
        assert!(o.quick);
        assert!(Cli::try_parse_from(["switchyard-perf", "scale", "--containers", "x"]).is_err());
        if sys::online_cpus() >= 2 {
            let zero = scale(&["switchyard-perf", "scale", "--containers", "0"]);
            assert!(zero.validate().is_err());
        }
    }

    #[test]
    fn routed_options_parse_and_are_checked() {
        let full = options(&["switchyard-perf", "run"]);
        assert!(full.scenarios.contains(&Scenario::Routed));
        assert_eq!(full.routed_sizes, vec![64, 1500]);
        assert_eq!(full.routed_flows, vec![1, 10_000]);
        let o = options(&[
            "switchyard-perf",
            "e2e",
            "--scenarios",
            "routed",
            "--dataplanes",
            "bridge,switchyard",
            "--routed-sizes",
            "128",
            "--routed-flows",
            "1,50000",
        ]);
        assert_eq!(o.scenarios, vec![Scenario::Routed]);
        assert_eq!(o.routed_sizes, vec![128]);
        assert_eq!(o.routed_flows, vec![1, 50_000]);
        let plan = o.planned_seconds();
        assert!(plan > 10.0 && plan < 60.0, "{plan}");
        if sys::online_cpus() >= 2 {
            o.validate().unwrap();
            let many = options(&["switchyard-perf", "e2e", "--routed-flows", "50001"]);
            assert!(many.validate().is_err());
            let none = options(&["switchyard-perf", "e2e", "--routed-flows", "0"]);
            assert!(none.validate().is_err());
            let tiny = options(&["switchyard-perf", "e2e", "--routed-sizes", "59"]);
            assert!(tiny.validate().is_err());
        }
    }

    #[test]
    fn mac_pairs_parse_and_are_checked() {
        let o = options(&[
            "switchyard-perf",
            "e2e",
            "--scenarios",
            "macs",
            "--mac-pairs",
            "1,50000",
            "--mac-pairs-size",
            "128",
        ]);
        assert_eq!(o.scenarios, vec![Scenario::Macs]);
        assert_eq!(o.mac_pairs, vec![1, 50_000]);
        assert_eq!(o.mac_pairs_size, 128);
        let plan = o.planned_seconds();
        assert!(plan > 0.0 && plan < 60.0, "{plan}");
        if sys::online_cpus() >= 2 {
            o.validate().unwrap();
            let zero = options(&["switchyard-perf", "e2e", "--mac-pairs", "0"]);
            assert!(zero.validate().is_err());
            let huge = options(&["switchyard-perf", "e2e", "--mac-pairs", "600000"]);
            assert!(huge.validate().is_err());
            let tiny = options(&["switchyard-perf", "e2e", "--mac-pairs-size", "40"]);
            assert!(tiny.validate().is_err());
        }
        assert!(Cli::try_parse_from(["switchyard-perf", "e2e", "--mac-pairs", "x"]).is_err());
    }
}
