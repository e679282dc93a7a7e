//! `switchyard`: a userspace packet switch with AF_XDP poll-mode I/O.

mod ctl;
mod daemon;

use switchyard_switch::{
    backoff, control, fabric, fdb_copy, netlink, placement, published, stats, worker,
};

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Large allocations (each worker's conntrack table, hundreds of MiB at the
/// bound) on transparent huge pages: a TLB entry per 2 MiB of the table
/// instead of per 4 KiB (see `switchyard_mem`).
#[global_allocator]
static ALLOC: switchyard_mem::HugePageAlloc = switchyard_mem::HugePageAlloc::new();

/// Command line of the switchyard binary.
#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Userspace packet switch with AF_XDP poll-mode I/O"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch described by a config file until SIGINT/SIGTERM.
    Run {
        /// The node config (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Write counters as JSON here when ready, every stats interval and on exit.
        #[arg(long)]
        stats_file: Option<PathBuf>,
    },
    /// Validate a config file without touching the system.
    Check {
        /// The node config (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Talk to a running daemon over its control socket.
    Ctl {
        /// Control socket (default: the config's, else /run/switchyard/ctl.sock).
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Read the control socket path from this config file.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Print the daemon's JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: ctl::CtlCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run { config, stats_file } => daemon::run(&config, stats_file.as_deref()),
        Command::Check { config } => daemon::check(&config),
        Command::Ctl {
            socket,
            config,
            json,
            command,
        } => ctl::socket_path(socket, config).and_then(|socket| ctl::run(&socket, json, command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard: {error:#}");
            ExitCode::FAILURE
        }
    }
}
