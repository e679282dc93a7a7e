//! `switchyard-perf`: Switchyard's benchmark harness (see the crate docs).
#![deny(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_perf::e2e::dataplane::{daemon_binary, DataplaneKind};
use switchyard_perf::e2e::{self, E2eOptions};
use switchyard_perf::micro::{self, MicroOptions};
use switchyard_perf::report;

/// Command line of the benchmark harness.
#[derive(Parser)]
#[command(
    name = "switchyard-perf",
    version,
    about = "Switchyard benchmarks: in-memory pipeline and end-to-end vs the Linux bridge"
)]
struct Cli {
    /// Directory for `<subcommand>-latest.json` (default: perf/results of the source tree).
    #[arg(long, global = true)]
    results_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// End-to-end forwarding between two veths: Linux bridge and Switchyard (needs root).
    E2e {
        /// Measuring time per (dataplane, frame size) point, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Untimed sending before each point, in seconds.
        #[arg(long, default_value_t = 0.5)]
        warmup: f64,
        /// Frame sizes in bytes: Ethernet header to payload, no FCS (60..=1514).
        #[arg(long, value_delimiter = ',', default_value = "64,1500")]
        sizes: Vec<usize>,
        /// Dataplanes to measure, in order.
        #[arg(long, value_delimiter = ',', default_value = "bridge,switchyard")]
        dataplanes: Vec<DataplaneKind>,
        /// Core the generator thread is pinned to.
        #[arg(long, default_value_t = 0)]
        generator_core: usize,
        /// Core the Switchyard worker is pinned to.
        #[arg(long, default_value_t = 1)]
        switch_core: usize,
        /// UDP flows (source ports) the generator cycles through.
        #[arg(long, default_value_t = 64)]
        flows: usize,
        /// Steer the bridge's work to --switch-core with RPS (true: both dataplanes
        /// get the same two cores; false: the bridge runs in softirq on the generator's core).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        bridge_rps: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard-perf: {error:#}");
            ExitCode::FAILURE
        }
    }
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
            let last_core = std::thread::available_parallelism()
                .map(|n| n.get() - 1)
                .unwrap_or(0);
            let options = MicroOptions {
                seconds,
                batches,
                flows,
                frame_size,
                core: Some(core.unwrap_or(last_core)),
            };
            let report = micro::run(options, &stop)?;
            report.print();
            let interrupted = report.interrupted || stop.load(Ordering::Relaxed);
            save(&results_dir, "pipeline", &report, interrupted)?;
            Ok(exit_code(interrupted, false))
        }
        Command::E2e {
            seconds,
            warmup,
            sizes,
            dataplanes,
            generator_core,
            switch_core,
            flows,
            bridge_rps,
        } => {
            let options = E2eOptions {
                seconds,
                warmup_seconds: warmup,
                sizes,
                dataplanes,
                generator_core,
                switch_core,
                flows,
                bridge_rps,
                switchyard_binary: daemon_binary(),
            };
            let report = e2e::run(options, Arc::clone(&stop))?;
            report.print();
            let interrupted = report.interrupted || stop.load(Ordering::Relaxed);
            save(&results_dir, "e2e", &report, interrupted)?;
            Ok(exit_code(interrupted, report.has_errors()))
        }
    }
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
