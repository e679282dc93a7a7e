//! `switchyard ctl`: the control socket's command-line client. Human-readable
//! tables by default, the daemon's JSON with `--json`.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchyard_switch::control::client;
use switchyard_switch::control::protocol::{AttachRequest, Request};

/// Default control socket path (the config's default too).
pub const DEFAULT_SOCKET: &str = "/run/switchyard/ctl.sock";

/// What `switchyard ctl` can ask.
#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Ports with interface, network, MAC, address and counters.
    Ports,
    /// Learned MAC addresses.
    Fdb {
        /// Only this network.
        #[arg(long)]
        network: Option<String>,
    },
    /// All counters (ports, workers, MAC table) as JSON.
    Stats,
    /// The routing table.
    Routes,
    /// The neighbour (ARP) tables of the workers.
    Neighbours,
    /// NAT's connection table (as JSON).
    Conntrack {
        /// Most connections listed.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Daemon and protocol version.
    Version,
    /// Create a veth into a container's namespace and attach it.
    Attach {
        /// The container's namespace: a path (/run/netns/NAME) or a PID.
        #[arg(long)]
        netns: String,
        /// Network to join.
        #[arg(long)]
        network: String,
        /// Port name (default: from the namespace).
        #[arg(long)]
        name: Option<String>,
        /// Address (default: next free one of the network).
        #[arg(long)]
        ip: Option<String>,
        /// MAC of the container's interface (default: generated).
        #[arg(long)]
        mac: Option<String>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
    },
    /// Detach an attached container: removes its port and veth.
    Detach {
        /// Port name.
        name: String,
    },
    /// Add an existing interface as an AF_XDP port.
    AddPort {
        /// Port name.
        #[arg(long)]
        name: String,
        /// Interface.
        #[arg(long)]
        interface: String,
        /// Network to join.
        #[arg(long)]
        network: String,
    },
    /// Remove a port added with add-port.
    DelPort {
        /// Port name.
        name: String,
    },
    /// Re-read the config file and apply the difference.
    Reload,
}

/// Runs one ctl command against the socket and prints the answer.
pub fn run(socket: &Path, json: bool, command: CtlCommand) -> Result<()> {
    let request = match &command {
        CtlCommand::Ports => Request::Ports,
        CtlCommand::Fdb { network } => Request::Fdb {
            network: network.clone(),
        },
        CtlCommand::Stats => Request::Stats,
        CtlCommand::Routes => Request::Routes,
        CtlCommand::Neighbours => Request::Neighbours,
        CtlCommand::Conntrack { limit } => Request::Conntrack {
            limit: Some(*limit),
        },
        CtlCommand::Version => Request::Version,
        CtlCommand::Attach {
            netns,
            network,
            name,
            ip,
            mac,
            ifname,
        } => Request::Attach(AttachRequest {
            netns: netns.clone(),
            network: network.clone(),
            name: name.clone(),
            ip: ip.clone(),
            mac: mac.clone(),
            ifname: Some(ifname.clone()),
        }),
        CtlCommand::Detach { name } => Request::Detach { name: name.clone() },
        CtlCommand::AddPort {
            name,
            interface,
            network,
        } => Request::AddPort {
            name: name.clone(),
            interface: interface.clone(),
            network: network.clone(),
        },
        CtlCommand::DelPort { name } => Request::DelPort { name: name.clone() },
        CtlCommand::Reload => Request::Reload,
    };
    let result =
        client::call(socket, &request, Duration::from_secs(60)).context("switchyard ctl")?;
    if json || matches!(command, CtlCommand::Stats | CtlCommand::Conntrack { .. }) {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    match command {
        CtlCommand::Ports => print_table(
            &result,
            &[
                "name",
                "interface",
                "network",
                "origin",
                "mac",
                "address",
                "xdp_mode",
                "rx_packets",
                "tx_packets",
                "drops",
            ],
        ),
        CtlCommand::Fdb { .. } => print_table(&result, &["network", "mac", "port", "age_secs"]),
        CtlCommand::Routes => print_table(
            &result,
            &["destination", "network", "via", "source", "isolated"],
        ),
        CtlCommand::Neighbours => print_table(&result, &["worker", "ip", "mac", "state"]),
        CtlCommand::Attach { .. } => {
            let field = |k: &str| {
                result
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string()
            };
            println!(
                "attached {} as {} in {} ({}): {} {} via {}",
                field("name"),
                field("ifname"),
                field("netns"),
                field("interface"),
                field("mac"),
                field("address"),
                field("gateway")
            );
        }
        _ => println!("{}", serde_json::to_string(&result)?),
    }
    Ok(())
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn print_table(rows: &Value, columns: &[&str]) {
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| columns.iter().map(|c| cell(row.get(*c))).collect())
                .collect()
        })
        .unwrap_or_default();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect())
    );
    for row in rows {
        println!("{}", line(row));
    }
}

/// The socket to use: `--socket`, else the config's `control_socket`, else the default.
pub fn socket_path(socket: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(socket) = socket {
        return Ok(socket);
    }
    if let Some(config) = config {
        let config = switchyard_config::load(&config)
            .map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
        return Ok(config.switch.control_socket);
    }
    Ok(PathBuf::from(DEFAULT_SOCKET))
}
