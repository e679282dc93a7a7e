//! `switchyard ctl`: the control socket's command-line client. Human-readable
//! tables by default, the daemon's JSON with `--json`.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchyard_switch::control::client;
use switchyard_switch::control::protocol::{AttachRequest, PortMapping, PublishRequest, Request};

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
    /// NAT's connection table: counters, then one line per connection
    /// (translation, state, age, packets and bytes each way).
    Conntrack {
        /// Most connections listed (per worker).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only connections with an address in this network.
        #[arg(long)]
        network: Option<String>,
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
        /// Publish a port to the container, as `docker run -p` does:
        /// `[HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]`; repeatable. Removed
        /// with the container.
        #[arg(short = 'p', long = "publish", value_parser = parse_mapping)]
        publish: Vec<PortMapping>,
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
    /// Publish a node port to a container (destination NAT), e.g.
    /// `publish tcp 8080 web/c1:80`.
    Publish {
        /// `tcp` or `udp`.
        protocol: String,
        /// The node's port or range (`8080`, `8080-8090`).
        host_port: String,
        /// `NETWORK/PORTNAME:PORT` (an attached container; its detach
        /// removes the rule) or `ADDRESS:PORT`.
        target: String,
        /// Only for traffic to this node address (default: any of them).
        #[arg(long)]
        host_address: Option<String>,
    },
    /// Remove a published port (`unpublish tcp 8080`).
    Unpublish {
        /// `tcp` or `udp`.
        protocol: String,
        /// The rule's node port or range, as published.
        host_port: String,
    },
    /// Published ports, with where each came from and its owner.
    Published,
}

/// `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTOCOL]`, as `docker run -p` writes a
/// port mapping.
fn parse_mapping(text: &str) -> std::result::Result<PortMapping, String> {
    let (ports, protocol) = match text.split_once('/') {
        Some((ports, protocol)) => (ports, protocol.to_string()),
        None => (text, "tcp".to_string()),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [host, container] => (None, *host, *container),
        [ip, host, container] => (Some(ip.to_string()), *host, *container),
        _ => {
            return Err(format!(
                "{text:?} is not [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp] (e.g. 8080:80)"
            ))
        }
    };
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{text:?}: {p:?} is not a port (1-65535)"))
    };
    Ok(PortMapping {
        host_port: port(host)?,
        container_port: port(container)?,
        protocol,
        host_ip,
    })
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
        CtlCommand::Conntrack { limit, network } => Request::Conntrack {
            limit: Some(*limit),
            network: network.clone(),
        },
        CtlCommand::Version => Request::Version,
        CtlCommand::Attach {
            netns,
            network,
            name,
            ip,
            mac,
            ifname,
            publish,
        } => Request::Attach(AttachRequest {
            netns: netns.clone(),
            network: network.clone(),
            name: name.clone(),
            ip: ip.clone(),
            mac: mac.clone(),
            ifname: Some(ifname.clone()),
            port_mappings: publish.clone(),
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
        CtlCommand::Publish {
            protocol,
            host_port,
            target,
            host_address,
        } => Request::Publish(PublishRequest {
            protocol: protocol.clone(),
            host_port: host_port.clone(),
            target: target.clone(),
            host_address: host_address.clone(),
        }),
        CtlCommand::Unpublish {
            protocol,
            host_port,
        } => Request::Unpublish {
            protocol: protocol.clone(),
            host_port: host_port.clone(),
        },
        CtlCommand::Published => Request::Published,
    };
    let result =
        client::call(socket, &request, Duration::from_secs(60)).context("switchyard ctl")?;
    if json || matches!(command, CtlCommand::Stats) {
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
        CtlCommand::Published => print_table(&result, PUBLISHED_COLUMNS),
        CtlCommand::Conntrack { .. } => {
            for line in conntrack_lines(&result) {
                println!("{line}");
            }
        }
        CtlCommand::Publish { .. } => {
            println!("published {}", rule_line(&result));
        }
        CtlCommand::Unpublish { .. } => {
            println!("unpublished {}", rule_line(&result["unpublished"]));
        }
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

/// The columns of `ctl published`.
const PUBLISHED_COLUMNS: &[&str] = &[
    "protocol",
    "host_port",
    "host_address",
    "target",
    "address",
    "port",
    "origin",
    "owner",
];

/// One rule as a line: `tcp 8080 -> web/c1:80 (198.18.94.10:80)`.
fn rule_line(rule: &Value) -> String {
    let at = match rule.get("host_address").and_then(Value::as_str) {
        Some(a) => format!("{a}:"),
        None => String::new(),
    };
    format!(
        "{} {at}{} -> {} ({}:{})",
        cell(rule.get("protocol")),
        cell(rule.get("host_port")),
        cell(rule.get("target")),
        cell(rule.get("address")),
        cell(rule.get("port")),
    )
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
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    for line in table_lines(&headers, rows) {
        println!("{line}");
    }
}

/// `rows` under `headers`, columns padded to their widest cell.
fn table_lines(headers: &[String], rows: Vec<Vec<String>>) -> Vec<String> {
    let widths: Vec<usize> = headers
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
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    std::iter::once(line(headers))
        .chain(rows.iter().map(|r| line(r)))
        .collect()
}

/// The columns of `ctl conntrack`: packets and bytes are `original/reply`.
const CONNTRACK_COLUMNS: &[&str] = &[
    "WORKER", "PROTO", "ORIGINAL", "REPLY", "STATE", "ASSURED", "AGE", "EXPIRES", "PACKETS",
    "BYTES",
];

/// `ctl conntrack` as text: a line of totals, then one line per connection
/// (its original tuple as the client sent it, its reply tuple as replies
/// carry it, which shows the translation), or a line saying NAT is off.
fn conntrack_lines(result: &Value) -> Vec<String> {
    if result.is_null() {
        return vec!["no NAT configured: no connection table".to_string()];
    }
    let stats = &result["stats"];
    let ct = &stats["conntrack"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let entries = result["entries"].as_array().map_or(&[][..], Vec::as_slice);
    let mut lines = vec![format!(
        "{} of {} connections ({} listed); masqueraded {}, published {}, hairpin {}, \
         early drops {}, full {}, invalid {}, ports exhausted {}",
        n(&ct["entries"]),
        n(&ct["max_entries"]),
        entries.len(),
        n(&stats["masqueraded"]),
        n(&stats["published"]),
        n(&stats["hairpin"]),
        n(&ct["early_dropped"]),
        n(&ct["full"]),
        ct["invalid"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>()),
        n(&stats["ports_exhausted"]),
    )];
    if entries.is_empty() {
        return lines;
    }
    let rows = entries
        .iter()
        .map(|e| {
            let counters = &e["counters"];
            let each_way = |field: &str, show: fn(u64) -> String| {
                format!(
                    "{}/{}",
                    show(n(&counters["original"][field])),
                    show(n(&counters["reply"][field]))
                )
            };
            vec![
                cell(e.get("worker")),
                protocol_name(&e["original"]),
                tuple_text(&e["original"]),
                tuple_text(&e["reply"]),
                state_text(&e["state"]),
                if e["assured"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
                e["age_secs"].as_u64().map_or("-".into(), duration_text),
                e["expires_in_secs"]
                    .as_u64()
                    .map_or("-".into(), duration_text),
                each_way("packets", |p| p.to_string()),
                each_way("bytes", bytes_text),
            ]
        })
        .collect();
    let headers: Vec<String> = CONNTRACK_COLUMNS.iter().map(|c| c.to_string()).collect();
    lines.extend(table_lines(&headers, rows));
    lines
}

fn protocol_name(tuple: &Value) -> String {
    match tuple["protocol"].as_u64() {
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(1) => "icmp".into(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

/// `src:port -> dst:port`; ICMP echo as `src -> dst id N`.
fn tuple_text(tuple: &Value) -> String {
    let (src, dst) = (cell(tuple.get("src")), cell(tuple.get("dst")));
    let port = |k: &str| tuple[k].as_u64().unwrap_or(0);
    if tuple["protocol"].as_u64() == Some(1) {
        let id = port("src_port").max(port("dst_port"));
        return format!("{src} -> {dst} id {id}");
    }
    format!("{src}:{} -> {dst}:{}", port("src_port"), port("dst_port"))
}

/// TCP's state as Linux names it; UDP replied or not; ICMP echo.
fn state_text(state: &Value) -> String {
    match state {
        Value::Object(m) => m
            .get("tcp")
            .map_or_else(|| state.to_string(), |s| cell(Some(s))),
        Value::String(s) => match s.as_str() {
            "udp_unreplied" => "UNREPLIED".into(),
            "udp_replied" => "REPLIED".into(),
            "icmp" => "ECHO".into(),
            other => other.to_string(),
        },
        other => cell(Some(other)),
    }
}

/// `45s`, `12m03s`, `3h07m`, `5d02h`: the two largest units.
fn duration_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Bytes in binary units to three significant digits or so (`812`, `1.5K`,
/// `2.0M`, `14G`).
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_read_as_docker_writes_them() {
        let m = parse_mapping("8080:80").unwrap();
        assert_eq!(
            (
                m.host_port,
                m.container_port,
                m.protocol.as_str(),
                m.host_ip
            ),
            (8080, 80, "tcp", None)
        );
        let m = parse_mapping("192.0.2.10:5353:53/udp").unwrap();
        assert_eq!(
            (m.host_port, m.container_port, m.protocol.as_str()),
            (5353, 53, "udp")
        );
        assert_eq!(m.host_ip.as_deref(), Some("192.0.2.10"));
        for bad in ["8080", "0:80", "8080:x", "a:b:c:d", "8080:70000"] {
            assert!(parse_mapping(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conntrack_prints_a_line_per_connection() {
        let result = serde_json::json!({
            "stats": {
                "masqueraded": 1, "published": 0, "hairpin": 0, "ports_exhausted": 0,
                "conntrack": {
                    "entries": 2, "max_entries": 262144, "early_dropped": 0, "full": 0,
                    "invalid": { "tcp_flags": 2, "malformed": 1 }
                }
            },
            "entries": [
                {
                    "worker": 1,
                    "original": { "protocol": 6, "src": "10.1.0.5", "dst": "203.0.113.9",
                                  "src_port": 40000, "dst_port": 80 },
                    "reply": { "protocol": 6, "src": "203.0.113.9", "dst": "192.0.2.10",
                               "src_port": 80, "dst_port": 1024 },
                    "state": { "tcp": "ESTABLISHED" }, "assured": true,
                    "age_secs": 3725, "expires_in_secs": 431_999,
                    "counters": { "original": { "packets": 12, "bytes": 2_200_000 },
                                  "reply": { "packets": 10, "bytes": 800 } }
                },
                {
                    "worker": 0,
                    "original": { "protocol": 1, "src": "10.1.0.6", "dst": "203.0.113.9",
                                  "src_port": 7, "dst_port": 0 },
                    "reply": { "protocol": 1, "src": "203.0.113.9", "dst": "192.0.2.10",
                               "src_port": 0, "dst_port": 1025 },
                    "state": "icmp", "assured": false,
                    "age_secs": 4, "expires_in_secs": 26,
                    "counters": { "original": { "packets": 1, "bytes": 84 },
                                  "reply": { "packets": 0, "bytes": 0 } }
                }
            ]
        });
        let lines = conntrack_lines(&result);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("2 of 262144 connections (2 listed)"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("invalid 3"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("WORKER  PROTO  ORIGINAL"),
            "{}",
            lines[1]
        );
        let tcp: Vec<&str> = lines[2]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            tcp,
            [
                "1",
                "tcp",
                "10.1.0.5:40000 -> 203.0.113.9:80",
                "203.0.113.9:80 -> 192.0.2.10:1024",
                "ESTABLISHED",
                "yes",
                "1h02m",
                "4d23h",
                "12/10",
                "2.1M/800"
            ]
        );
        assert!(
            lines[3].contains("10.1.0.6 -> 203.0.113.9 id 7"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains("ECHO"), "{}", lines[3]);
        assert_eq!(
            conntrack_lines(&Value::Null),
            ["no NAT configured: no connection table"]
        );
    }

    #[test]
    fn durations_and_sizes_read_at_a_glance() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(59), "59s");
        assert_eq!(duration_text(60), "1m00s");
        assert_eq!(duration_text(86_400 + 7200), "1d02h");
        assert_eq!(bytes_text(1023), "1023");
        assert_eq!(bytes_text(1536), "1.5K");
        assert_eq!(bytes_text(20 << 20), "20M");
    }

    #[test]
    fn a_rule_prints_as_one_line() {
        let rule = serde_json::json!({
            "protocol": "tcp", "host_port": "8080", "host_address": null,
            "target": "web/c1:80", "address": "10.0.0.5", "port": 80,
        });
        assert_eq!(rule_line(&rule), "tcp 8080 -> web/c1:80 (10.0.0.5:80)");
    }
}
