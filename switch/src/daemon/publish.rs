//! Published ports as the control thread keeps them: every rule with where it
//! came from (the config file, `ctl publish`, an attach's port mappings) and
//! the port that owns it; the targets `ctl publish` accepts and the CNI
//! `portMappings` shape, read into rules; and the dataplane table built from
//! the rules (a fresh one for every change, swapped into the workers whole).

use crate::control::protocol::{PortMapping, PublishedInfo};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use switchyard_config::{L4Protocol, PortRange, PublishConfig, PublishSpec};
use switchyard_pipeline::nat::published::{Protocol, PublishError, PublishRule, PublishedPorts};

/// Where a published port came from: it decides how it goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishOrigin {
    /// A `[[publish]]` table: changed by editing the file and reloading.
    Config,
    /// `ctl publish`: removed with `ctl unpublish` (or its owner's detach).
    Ctl,
    /// An attach's port mappings (CNI's `portMappings`): removed with the port.
    Attach,
}

impl PublishOrigin {
    /// The name `published` shows.
    pub fn name(self) -> &'static str {
        match self {
            PublishOrigin::Config => "config",
            PublishOrigin::Ctl => "ctl",
            PublishOrigin::Attach => "attach",
        }
    }
}

/// One published port or range (see the module docs). Run-time ones
/// (`ctl`, `attach`) are kept in the state file as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishEntry {
    /// `tcp` or `udp`.
    pub protocol: L4Protocol,
    /// The node's port or range.
    pub host_port: PortRange,
    /// Only for traffic to this node address.
    #[serde(default)]
    pub host_address: Option<Ipv4Addr>,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The container's first port.
    pub port: u16,
    /// The target as given (`web/c1:80`, `10.0.0.5:80`).
    pub target: String,
    /// Where it came from.
    pub origin: PublishOrigin,
    /// The port whose removal removes it.
    #[serde(default)]
    pub owner: Option<String>,
    /// Its `[[publish]]` index, for config rules (named so in messages).
    #[serde(skip)]
    pub config_index: Option<usize>,
}

impl PublishEntry {
    /// The `index`-th `[[publish]]` table of the config.
    pub fn from_config(index: usize, p: &PublishConfig) -> Self {
        PublishEntry {
            protocol: p.protocol,
            host_port: p.host_port,
            host_address: p.host_address,
            address: p.address,
            port: p.port,
            target: format!("{}:{}", p.address, p.port),
            origin: PublishOrigin::Config,
            owner: None,
            config_index: Some(index),
        }
    }

    /// The rule as the checks see it.
    pub fn spec(&self) -> PublishSpec {
        PublishSpec {
            protocol: self.protocol,
            host_port: self.host_port,
            host_address: self.host_address,
            address: self.address,
            port: self.port,
        }
    }

    /// The rule as the workers look it up.
    pub fn rule(&self) -> PublishRule {
        PublishRule {
            protocol: match self.protocol {
                L4Protocol::Tcp => Protocol::Tcp,
                L4Protocol::Udp => Protocol::Udp,
            },
            host_first: self.host_port.first,
            host_last: self.host_port.last,
            host_address: self.host_address,
            address: self.address,
            port: self.port,
        }
    }

    /// Its row in `published`.
    pub fn info(&self) -> PublishedInfo {
        PublishedInfo {
            protocol: self.protocol.to_string(),
            host_port: self.host_port.to_string(),
            host_address: self.host_address.map(|a| a.to_string()),
            address: self.address.to_string(),
            port: self.port,
            target: self.target.clone(),
            origin: self.origin.name().to_string(),
            owner: self.owner.clone(),
        }
    }
}

impl fmt::Display for PublishEntry {
    /// How an overlap names the rule it hits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.origin, self.config_index, &self.owner) {
            (PublishOrigin::Config, Some(i), _) => write!(f, "publish[{i}] of the config file"),
            (PublishOrigin::Attach, _, Some(owner)) => write!(
                f,
                "a port mapping of port {owner:?} ({} {} to {})",
                self.protocol, self.host_port, self.target
            ),
            _ => write!(
                f,
                "`publish {} {} {}`",
                self.protocol, self.host_port, self.target
            ),
        }
    }
}

/// The dataplane's table of `entries` (validated: only a table of more rules
/// than it can number fails).
pub fn table<'a>(
    entries: impl IntoIterator<Item = &'a PublishEntry>,
) -> Result<PublishedPorts, PublishError> {
    let mut table = PublishedPorts::new();
    for entry in entries {
        table.add(entry.rule())?;
    }
    Ok(table)
}

/// Where `ctl publish` forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `ADDRESS:PORT`: an address in a routed network.
    Address {
        /// The container's address.
        address: Ipv4Addr,
        /// Its first port.
        port: u16,
    },
    /// `NETWORK/PORTNAME:PORT`: an attached container's port (which then
    /// owns the rule).
    Port {
        /// Its network.
        network: String,
        /// Its port name.
        name: String,
        /// The container's first port.
        port: u16,
    },
}

/// Why a target did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No `:PORT` at the end.
    #[error(
        "target {0:?} has no port: write NETWORK/PORTNAME:PORT (e.g. web/c1:80) or ADDRESS:PORT"
    )]
    NoPort(String),
    /// The port is not 1-65535.
    #[error("target {0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    /// The part before the port is neither form.
    #[error("target {0:?} is neither NETWORK/PORTNAME:PORT (e.g. web/c1:80) nor ADDRESS:PORT")]
    BadForm(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (left, port) = s
            .rsplit_once(':')
            .ok_or_else(|| TargetError::NoPort(s.to_string()))?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(TargetError::BadPort(s.to_string())),
        };
        if let Ok(address) = left.parse::<Ipv4Addr>() {
            return Ok(Target::Address { address, port });
        }
        let name_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        match left.split_once('/') {
            Some((network, name)) if name_ok(network) && name_ok(name) => Ok(Target::Port {
                network: network.to_string(),
                name: name.to_string(),
                port,
            }),
            _ => Err(TargetError::BadForm(s.to_string())),
        }
    }
}

/// Reads `tcp`/`udp` in any case (CNI runtimes write either).
pub fn protocol(text: &str) -> Result<L4Protocol, String> {
    text.to_ascii_lowercase().parse()
}

/// A port mapping of an attach as a rule's protocol, node port, node
/// address and container port; the reason if it cannot be one.
pub fn mapping(m: &PortMapping) -> Result<(L4Protocol, PortRange, Option<Ipv4Addr>, u16), String> {
    let protocol = protocol(&m.protocol)?;
    if m.host_port == 0 || m.container_port == 0 {
        return Err(format!(
            "port mapping {}:{}/{}: ports are 1-65535",
            m.host_port, m.container_port, m.protocol
        ));
    }
    let host_address = match m.host_ip.as_deref().map(str::trim) {
        None | Some("") | Some("0.0.0.0") => None,
        Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
            format!("port mapping hostIP {ip:?}: only IPv4 node addresses can be published")
        })?),
    };
    Ok((
        protocol,
        PortRange::single(m.host_port),
        host_address,
        m.container_port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_both_forms() {
        assert_eq!(
            "web/c1:80".parse(),
            Ok(Target::Port {
                network: "web".into(),
                name: "c1".into(),
                port: 80
            })
        );
        assert_eq!(
            "10.0.0.5:8080".parse(),
            Ok(Target::Address {
                address: Ipv4Addr::new(10, 0, 0, 5),
                port: 8080
            })
        );
        for (bad, want) in [
            ("web/c1", "has no port"),
            ("10.0.0.5", "has no port"),
            ("web/c1:0", "the port must be"),
            ("web/c1:65536", "the port must be"),
            ("web/c1:http", "the port must be"),
            ("c1:80", "neither"),
            ("web/:80", "neither"),
            ("/c1:80", "neither"),
            ("web/c 1:80", "neither"),
            ("10.0.0.300:80", "neither"),
            (":80", "neither"),
        ] {
            let e = bad.parse::<Target>().unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    fn m(host: u16, container: u16, protocol: &str, ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: host,
            container_port: container,
            protocol: protocol.into(),
            host_ip: ip.map(str::to_string),
        }
    }

    #[test]
    fn cni_port_mappings_read_as_rules() {
        let any = mapping(&m(8080, 80, "TCP", Some(""))).unwrap();
        assert_eq!(any, (L4Protocol::Tcp, PortRange::single(8080), None, 80));
        let one = mapping(&m(9090, 90, "udp", Some("192.0.2.10"))).unwrap();
        assert_eq!(one.2, Some(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(mapping(&m(1, 2, "tcp", Some("0.0.0.0"))).unwrap().2, None);
        for (bad, want) in [
            (m(8080, 80, "sctp", None), "unknown protocol"),
            (m(0, 80, "tcp", None), "1-65535"),
            (m(8080, 0, "tcp", None), "1-65535"),
            (m(8080, 80, "tcp", Some("::")), "only IPv4"),
        ] {
            let e = mapping(&bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        // The CNI shape, as runtimes write it (protocol optional).
        let list: Vec<PortMapping> = serde_json::from_str(
            r#"[{"hostPort":8080,"containerPort":80},
                {"hostPort":9090,"containerPort":90,"protocol":"udp","hostIP":"127.0.0.1"}]"#,
        )
        .unwrap();
        assert_eq!(
            list,
            [
                m(8080, 80, "tcp", None),
                m(9090, 90, "udp", Some("127.0.0.1"))
            ]
        );
    }

    #[test]
    fn entries_name_themselves_and_build_one_table() {
        let config: PublishConfig = {
            let text = "[uplink]\ninterface = \"e\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"web\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\n[[publish]]\nprotocol = \"tcp\"\nhost_port = \"8080-8081\"\naddress = \"10.0.0.5\"\nport = 80\n";
            switchyard_config::parse_str(text, "n.toml")
                .unwrap()
                .publish[0]
                .clone()
        };
        let from_file = PublishEntry::from_config(0, &config);
        assert_eq!(from_file.to_string(), "publish[0] of the config file");
        let live = PublishEntry {
            protocol: L4Protocol::Udp,
            host_port: PortRange::single(53),
            host_address: None,
            address: Ipv4Addr::new(10, 0, 0, 6),
            port: 53,
            target: "web/dns:53".into(),
            origin: PublishOrigin::Ctl,
            owner: Some("dns".into()),
            config_index: None,
        };
        assert_eq!(live.to_string(), "`publish udp 53 web/dns:53`");
        let mapped = PublishEntry {
            origin: PublishOrigin::Attach,
            ..live.clone()
        };
        assert_eq!(
            mapped.to_string(),
            "a port mapping of port \"dns\" (udp 53 to web/dns:53)"
        );
        let t = table([&from_file, &live]).unwrap();
        let node = Ipv4Addr::new(192, 0, 2, 10);
        assert_eq!(
            t.lookup(6, node, 8081),
            Some((Ipv4Addr::new(10, 0, 0, 5), 81))
        );
        assert_eq!(
            t.lookup(17, node, 53),
            Some((Ipv4Addr::new(10, 0, 0, 6), 53))
        );
        // The state file keeps run-time rules as they are (no config index).
        let text = serde_json::to_string(&live).unwrap();
        let back: PublishEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, live);
        assert_eq!(live.info().origin, "ctl");
    }
}
