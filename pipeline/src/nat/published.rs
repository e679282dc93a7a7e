//! The published ports: which node port forwards to which container port
//! (destination NAT for new connections, as `docker run -p` sets up).
//!
//! A direct index per protocol (65,536 slots of a rule number each, 128 KiB
//! per protocol) makes the lookup one load whatever the number of rules; the
//! control thread builds a new table for every change and the worker swaps
//! it in between bursts, so the worker never sees a half-made table.

use crate::keyed_hash::KeyedState;
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// An L4 protocol ports are published for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::wire::ip_proto::TCP,
            Protocol::Udp => crate::wire::ip_proto::UDP,
        }
    }

    /// The protocol of IP protocol number `n`, if ports are published for it.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            crate::wire::ip_proto::TCP => Some(Protocol::Tcp),
            crate::wire::ip_proto::UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// One published port or range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PublishRule {
    /// Its protocol.
    pub protocol: Protocol,
    /// The node's first port.
    pub host_first: u16,
    /// The node's last port (`host_first` for one port).
    pub host_last: u16,
    /// Only for traffic to this node address (else to any of them).
    pub host_address: Option<Ipv4Addr>,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The container's port for `host_first` (ranges map one to one).
    pub port: u16,
}

/// Why a rule could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Port 0, a reversed range, or a target range past 65535.
    #[error("invalid port range")]
    BadRange,
    /// A port of the range is already published (for that protocol).
    #[error("{0} is already published")]
    Taken(u16),
    /// More rules than the index can number.
    #[error("too many published ports")]
    TooMany,
}

const NONE: u16 = u16::MAX;

/// The published ports of a node (see the module docs).
#[derive(Clone, Debug)]
pub struct PublishedPorts {
    rules: Vec<PublishRule>,
    /// Rule number per port, per protocol (TCP, UDP); `NONE` for none.
    index: [Vec<u16>; 2],
    /// Every container endpoint some rule maps to (protocol, address, port
    /// packed by [`target_key`]): how a worker tells a published flow's
    /// reply from a container's own flow (`super::owner`).
    targets: HashSet<u64, KeyedState>,
}

/// One word for a container endpoint of `protocol`.
fn target_key(protocol: u8, address: Ipv4Addr, port: u16) -> u64 {
    (u64::from(protocol) << 48) | (u64::from(u32::from(address)) << 16) | u64::from(port)
}

impl Default for PublishedPorts {
    fn default() -> Self {
        Self::new()
    }
}

impl PublishedPorts {
    /// No published port.
    pub fn new() -> Self {
        PublishedPorts {
            rules: Vec::new(),
            index: [vec![NONE; 65_536], vec![NONE; 65_536]],
            targets: HashSet::with_hasher(KeyedState::random()),
        }
    }

    fn slot(protocol: Protocol) -> usize {
        match protocol {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
        }
    }

    /// Adds `rule` (control path). Ports are unique per protocol whatever the
    /// host address (one node-wide index).
    pub fn add(&mut self, rule: PublishRule) -> Result<(), PublishError> {
        if rule.host_first == 0
            || rule.host_first > rule.host_last
            || rule.port == 0
            || u32::from(rule.port) + u32::from(rule.host_last - rule.host_first) > 65_535
        {
            return Err(PublishError::BadRange);
        }
        if self.rules.len() >= usize::from(NONE) {
            return Err(PublishError::TooMany);
        }
        let index = &mut self.index[Self::slot(rule.protocol)];
        if let Some(p) = (rule.host_first..=rule.host_last).find(|&p| index[usize::from(p)] != NONE)
        {
            return Err(PublishError::Taken(p));
        }
        let n = self.rules.len() as u16;
        for p in rule.host_first..=rule.host_last {
            index[usize::from(p)] = n;
            let target = rule.port + (p - rule.host_first);
            self.targets
                .insert(target_key(rule.protocol.number(), rule.address, target));
        }
        self.rules.push(rule);
        Ok(())
    }

    /// Where a new connection to `dst:port` over `protocol` goes, if that
    /// port is published for `dst`: the container's address and port.
    #[inline]
    pub fn lookup(&self, protocol: u8, dst: Ipv4Addr, port: u16) -> Option<(Ipv4Addr, u16)> {
        let protocol = Protocol::from_number(protocol)?;
        let n = self.index[Self::slot(protocol)][usize::from(port)];
        let rule = self.rules.get(usize::from(n))?;
        if rule.host_address.is_some_and(|a| a != dst) {
            return None;
        }
        Some((rule.address, rule.port + (port - rule.host_first)))
    }

    /// True when `address:port` over `protocol` is the container end of a
    /// published port (its packets may be replies of published flows).
    #[inline]
    pub fn is_target(&self, protocol: u8, address: Ipv4Addr, port: u16) -> bool {
        !self.targets.is_empty() && self.targets.contains(&target_key(protocol, address, port))
    }

    /// True when `port` over `protocol` is published for any node address
    /// (translated source ports avoid these).
    #[inline]
    pub fn is_published_port(&self, protocol: u8, port: u16) -> bool {
        Protocol::from_number(protocol)
            .is_some_and(|p| self.index[Self::slot(p)][usize::from(port)] != NONE)
    }

    /// Every rule, in the order added.
    pub fn rules(&self) -> &[PublishRule] {
        &self.rules
    }

    /// True without rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(first: u16, last: u16, port: u16) -> PublishRule {
        PublishRule {
            protocol: Protocol::Tcp,
            host_first: first,
            host_last: last,
            host_address: None,
            address: Ipv4Addr::new(10, 0, 0, 5),
            port,
        }
    }

    #[test]
    fn ranges_map_one_to_one_and_never_overlap() {
        let mut p = PublishedPorts::new();
        p.add(rule(8080, 8090, 80)).unwrap();
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        assert_eq!(
            p.lookup(6, ip, 8080),
            Some((Ipv4Addr::new(10, 0, 0, 5), 80))
        );
        assert_eq!(
            p.lookup(6, ip, 8085),
            Some((Ipv4Addr::new(10, 0, 0, 5), 85))
        );
        assert_eq!(p.lookup(6, ip, 8091), None);
        assert_eq!(p.lookup(17, ip, 8080), None, "UDP is another table");
        assert_eq!(p.add(rule(8090, 8095, 90)), Err(PublishError::Taken(8090)));
        assert_eq!(p.add(rule(100, 200, 65500)), Err(PublishError::BadRange));
        let mut only = rule(9000, 9000, 90);
        only.host_address = Some(Ipv4Addr::new(192, 0, 2, 11));
        p.add(only).unwrap();
        assert_eq!(p.lookup(6, ip, 9000), None, "for another node address");
        let web = Ipv4Addr::new(10, 0, 0, 5);
        assert!(p.is_target(6, web, 80) && p.is_target(6, web, 90));
        assert!(!p.is_target(6, web, 91) && !p.is_target(17, web, 80));
        assert!(p.is_published_port(6, 8085) && !p.is_published_port(17, 8085));
    }
}
