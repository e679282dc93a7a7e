//! The rules a published port must follow, as pure checks: the config's
//! `[[publish]]` tables and the ports a running daemon publishes later
//! (`switchyard ctl publish`, attach and CNI port mappings) go through the
//! same [`check_publish`], so a rule the file would refuse is refused live
//! too, with the same words.

use std::fmt;
use std::net::Ipv4Addr;

use crate::{Ipv4Cidr, L4Protocol, PortRange};

/// A published port as the checks see it (where it came from aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSpec {
    /// `tcp` or `udp`.
    pub protocol: L4Protocol,
    /// The node's port or range.
    pub host_port: PortRange,
    /// Only for traffic to this node address (else to any of them).
    pub host_address: Option<Ipv4Addr>,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The container's first port.
    pub port: u16,
}

impl From<&crate::PublishConfig> for PublishSpec {
    fn from(p: &crate::PublishConfig) -> Self {
        PublishSpec {
            protocol: p.protocol,
            host_port: p.host_port,
            host_address: p.host_address,
            address: p.address,
            port: p.port,
        }
    }
}

/// What a rule is checked against: the node's addresses (the uplink's, the
/// host port's switch address) and the routed networks' subnets (networks
/// with a subnet and a gateway, flat ones excluded: their containers are on
/// the uplink's LAN and need no translation).
#[derive(Debug, Clone, Copy)]
pub struct PublishScope<'a> {
    /// Addresses published ports listen on.
    pub node_addresses: &'a [Ipv4Addr],
    /// Subnets a published port may forward into.
    pub routed_subnets: &'a [Ipv4Cidr],
}

/// Why a rule cannot be published. Each names the field it is about
/// ([`PublishIssue::field`]), so the config reports it at that value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishIssue {
    /// The node has no address to listen on.
    #[error(
        "a published port needs an address of the node to listen on: add [uplink] (or [host])"
    )]
    NoNodeAddress,
    /// `host_address` is not one of the node's addresses.
    #[error("{address} is not one of the node's addresses ({node:?}: the uplink's, the host port's switch address)")]
    NotNodeAddress {
        /// The address asked for.
        address: Ipv4Addr,
        /// The node's addresses.
        node: Vec<Ipv4Addr>,
    },
    /// The container's address is in no routed network.
    #[error("{0} is in no routed network's subnet (a [[network]] with subnet and gateway)")]
    NotRouted(Ipv4Addr),
    /// The container's ports (one per host port) run past 65535, or start at 0.
    #[error("{count} ports from {port} run past 65535")]
    PastEnd {
        /// Ports in the range.
        count: u32,
        /// The container's first port.
        port: u16,
    },
    /// A port of the range is published already (for that protocol).
    #[error("{protocol} {host_port} is already published by {by} ({protocol} {theirs})")]
    Taken {
        /// The rule's protocol.
        protocol: L4Protocol,
        /// The rule's range.
        host_port: PortRange,
        /// The rule holding it, as the caller names it (`publish[0]`, ...).
        by: String,
        /// That rule's range.
        theirs: PortRange,
    },
}

impl PublishIssue {
    /// The field of the rule the issue is about (`host_port`, `host_address`,
    /// `address`, `port`).
    pub fn field(&self) -> &'static str {
        match self {
            PublishIssue::NoNodeAddress | PublishIssue::Taken { .. } => "host_port",
            PublishIssue::NotNodeAddress { .. } => "host_address",
            PublishIssue::NotRouted(_) => "address",
            PublishIssue::PastEnd { .. } => "port",
        }
    }
}

/// The subnets of `networks` that published ports may forward into: those
/// with a gateway, flat ones (`uplink = true`) excluded.
pub fn routed_subnets(networks: &[crate::NetworkConfig]) -> Vec<Ipv4Cidr> {
    networks
        .iter()
        .filter(|n| !n.uplink && n.gateway.is_some())
        .filter_map(|n| n.subnet)
        .collect()
}

/// Every reason `rule` cannot be published in `scope` next to `existing`
/// (each with the name an overlap should give it); empty when it can. Ports
/// are unique per protocol node-wide, whatever the host address, as the
/// dataplane's one index per protocol keeps them; only the first overlap is
/// reported. Without a node address nothing else is checked.
pub fn check_publish<'a, N: fmt::Display>(
    rule: &PublishSpec,
    scope: PublishScope<'_>,
    existing: impl IntoIterator<Item = (N, &'a PublishSpec)>,
) -> Vec<PublishIssue> {
    if scope.node_addresses.is_empty() {
        return vec![PublishIssue::NoNodeAddress];
    }
    let mut issues = Vec::new();
    if let Some(a) = rule.host_address {
        if !scope.node_addresses.contains(&a) {
            issues.push(PublishIssue::NotNodeAddress {
                address: a,
                node: scope.node_addresses.to_vec(),
            });
        }
    }
    if !scope
        .routed_subnets
        .iter()
        .any(|s| s.contains(rule.address))
    {
        issues.push(PublishIssue::NotRouted(rule.address));
    }
    if u32::from(rule.port) + rule.host_port.len() - 1 > 65535 || rule.port == 0 {
        issues.push(PublishIssue::PastEnd {
            count: rule.host_port.len(),
            port: rule.port,
        });
    }
    if let Some((by, theirs)) = existing
        .into_iter()
        .find(|(_, q)| q.protocol == rule.protocol && q.host_port.overlaps(&rule.host_port))
    {
        issues.push(PublishIssue::Taken {
            protocol: rule.protocol,
            host_port: rule.host_port,
            by: by.to_string(),
            theirs: theirs.host_port,
        });
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(first: u16, last: u16, address: [u8; 4], port: u16) -> PublishSpec {
        PublishSpec {
            protocol: L4Protocol::Tcp,
            host_port: PortRange { first, last },
            host_address: None,
            address: Ipv4Addr::from(address),
            port,
        }
    }

    const NODE: [Ipv4Addr; 1] = [Ipv4Addr::new(192, 0, 2, 10)];

    fn subnets() -> Vec<Ipv4Cidr> {
        vec!["10.0.0.0/24".parse().unwrap()]
    }

    fn scope<'a>(node: &'a [Ipv4Addr], subnets: &'a [Ipv4Cidr]) -> PublishScope<'a> {
        PublishScope {
            node_addresses: node,
            routed_subnets: subnets,
        }
    }

    #[test]
    fn a_good_rule_passes_and_each_problem_is_named() {
        let subnets = subnets();
        let none: [(&str, &PublishSpec); 0] = [];
        let ok = spec(8080, 8090, [10, 0, 0, 5], 80);
        assert_eq!(check_publish(&ok, scope(&NODE, &subnets), none), []);

        let bad = PublishSpec {
            host_address: Some(Ipv4Addr::new(127, 0, 0, 1)),
            ..spec(100, 200, [10, 0, 1, 5], 65500)
        };
        let issues = check_publish(&bad, scope(&NODE, &subnets), none);
        let fields: Vec<_> = issues.iter().map(PublishIssue::field).collect();
        assert_eq!(fields, ["host_address", "address", "port"], "{issues:?}");
        assert!(issues[1].to_string().contains("10.0.1.5 is in no routed"));

        let issues = check_publish(&ok, scope(&[], &subnets), none);
        assert_eq!(issues, [PublishIssue::NoNodeAddress]);
    }

    #[test]
    fn an_overlap_names_the_rule_it_hits_and_protocols_are_apart() {
        let subnets = subnets();
        let held = spec(8085, 8085, [10, 0, 0, 6], 85);
        let existing = [("ctl publish tcp 8085", &held)];
        let issues = check_publish(
            &spec(8080, 8090, [10, 0, 0, 5], 80),
            scope(&NODE, &subnets),
            existing,
        );
        assert_eq!(
            issues.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["tcp 8080-8090 is already published by ctl publish tcp 8085 (tcp 8085)"]
        );
        let udp = PublishSpec {
            protocol: L4Protocol::Udp,
            ..spec(8085, 8085, [10, 0, 0, 5], 85)
        };
        assert_eq!(check_publish(&udp, scope(&NODE, &subnets), existing), []);
    }
}
