//! Containers: attach (veth over netlink, address from the pool, MAC from the
//! address), detach, and CNI CHECK.

use super::{check_name, Controller, CtlError, CtlResult, Origin, PortEntry};
use crate::control::protocol::{AttachRequest, AttachResult, ErrorCode};
use crate::daemon::address_pool::AddressPool;
use crate::netlink::{self, ContainerLink, NetnsRef};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use switchyard_config::Ipv4Cidr;
use switchyard_pipeline::MacAddr;
use tracing::{info, warn};

impl Controller {
    pub(super) fn attach(&mut self, request: AttachRequest) -> CtlResult<AttachResult> {
        let invalid = |m: String| CtlError::new(ErrorCode::InvalidArgument, m);
        let netns: NetnsRef = request
            .netns
            .parse()
            .map_err(|e| invalid(format!("netns {:?}: {e}", request.netns)))?;
        let network = self.network(&request.network).cloned().ok_or_else(|| {
            CtlError::new(
                ErrorCode::NotFound,
                format!("network {:?} does not exist", request.network),
            )
        })?;
        if network.builtin {
            return Err(invalid(format!(
                "network {:?} is the switch's own (the uplink's or the host port's); containers attach to a [[network]]",
                request.network
            )));
        }
        let name = match &request.name {
            Some(name) => {
                check_name(name)?;
                if self.port_index(name).is_some() {
                    return Err(CtlError::new(
                        ErrorCode::AlreadyExists,
                        format!("port {name:?} already exists"),
                    ));
                }
                name.clone()
            }
            None => self.derive_name(&netns),
        };
        let ifname = request.ifname.clone().unwrap_or_else(|| "eth0".to_string());
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ', ':']) {
            return Err(invalid(format!(
                "ifname {ifname:?} is not a valid Linux interface name"
            )));
        }
        // Address: from the request (checked against the pool) or the next free one.
        let used = self.used_addresses(&network.name);
        let (address, prefix_len) = match (&request.ip, network.subnet) {
            (Some(ip), Some(subnet)) => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| invalid(format!("ip {ip:?} is not an IPv4 address")))?;
                let ip = AddressPool::new(subnet, network.gateway, &used)
                    .claim(ip)
                    .map_err(|e| invalid(format!("ip: {e}")))?;
                (ip, network.lan.map_or(subnet.prefix_len, |(len, _)| len))
            }
            (None, Some(subnet)) => {
                let ip = AddressPool::new(subnet, network.gateway, &used)
                    .allocate()
                    .map_err(|e| {
                        CtlError::new(
                            ErrorCode::PoolExhausted,
                            format!("network {:?}: {e}", network.name),
                        )
                    })?;
                (ip, network.lan.map_or(subnet.prefix_len, |(len, _)| len))
            }
            (Some(ip), None) => {
                let cidr: Ipv4Cidr = ip.parse().map_err(|_| {
                    invalid(format!(
                        "network {:?} has no subnet: give ip as address/prefix",
                        network.name
                    ))
                })?;
                if used.contains(&cidr.addr) {
                    return Err(invalid(format!("ip: {} is already in use", cidr.addr)));
                }
                (cidr.addr, cidr.prefix_len)
            }
            (None, None) => {
                return Err(invalid(format!(
                    "network {:?} has no subnet to take an address from: give --ip address/prefix",
                    network.name
                )))
            }
        };
        let mac = match &request.mac {
            Some(text) => {
                let mac: MacAddr = text
                    .parse()
                    .map_err(|e| invalid(format!("mac {text:?}: {e}")))?;
                if !mac.is_valid_source() {
                    return Err(invalid(format!("mac {text} is not a unicast address")));
                }
                self.check_mac_free(&network.name, mac)
                    .map_err(|why| invalid(format!("mac {mac}: {why}")))?;
                mac
            }
            None => self.derive_mac(&network.name, address),
        };
        // Port mappings are checked before anything is made: a refused one
        // fails the attach with nothing to undo.
        let mappings =
            self.mapping_entries(&request.port_mappings, &name, &network.name, address)?;
        let host_name = self.derive_host_name(&name);
        let link = ContainerLink {
            host_name: host_name.clone(),
            netns,
            ifname: ifname.clone(),
            mac: mac.0,
            mtu: 1500,
            address,
            prefix_len,
            gateway: network.gateway,
            queues: self.workers.len() as u32,
        };
        netlink::create_container_link(&link).map_err(netlink_error)?;
        let entry = PortEntry {
            name: name.clone(),
            interface: host_name.clone(),
            network: network.name.clone(),
            origin: Origin::Attach,
            mac: Some(mac.to_string()),
            address: Some(format!("{address}/{prefix_len}")),
            netns: Some(request.netns.clone()),
            ifname: Some(ifname.clone()),
        };
        let index = match self.add_live_port(entry, self.config.switch.xdp_mode) {
            Ok(index) => index,
            Err(error) => {
                let _ = netlink::delete_link(&host_name);
                return Err(error);
            }
        };
        if !mappings.is_empty() {
            let mut rules = self.published.clone();
            rules.extend(mappings);
            if let Err(error) = self.apply_published(rules) {
                // All or nothing: the port goes again.
                let _ = self.remove_live_port(index);
                let _ = netlink::delete_link(&host_name);
                return Err(error);
            }
            info!(port = %name, mappings = request.port_mappings.len(), "port mappings published");
        }
        self.save_state();
        Ok(AttachResult {
            name,
            interface: host_name,
            ifname,
            mac: mac.to_string(),
            address: format!("{address}/{prefix_len}"),
            gateway: network.gateway.map(|g| g.to_string()),
            network: network.name,
            netns: request.netns,
        })
    }

    pub(super) fn detach(&mut self, name: &str) -> CtlResult<()> {
        let index = self.port_index(name).ok_or_else(|| {
            CtlError::new(ErrorCode::NotFound, format!("port {name:?} does not exist"))
        })?;
        if self.ports[index].as_ref().map(|p| p.origin) != Some(Origin::Attach) {
            return Err(CtlError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "port {name:?} was not attached with attach (use del-port, or the config file)"
                ),
            ));
        }
        // Its published ports first: nothing is forwarded to a gone container.
        self.drop_owned_rules(name);
        let entry = self.remove_live_port(index)?;
        if let Err(error) = netlink::delete_link(&entry.interface) {
            warn!(%error, interface = %entry.interface, "could not delete the veth");
        }
        self.save_state();
        Ok(())
    }

    pub(super) fn check(&self, name: &str, netns: &str, ifname: Option<&str>) -> CtlResult<()> {
        let entry = self
            .port_index(name)
            .and_then(|i| self.ports[i].as_ref())
            .ok_or_else(|| {
                CtlError::new(ErrorCode::NotFound, format!("port {name:?} does not exist"))
            })?;
        let (address, prefix_len) = entry.address().ok_or_else(|| {
            CtlError::new(
                ErrorCode::InvalidArgument,
                format!("port {name:?} is not an attached container"),
            )
        })?;
        let netns: NetnsRef = netns.parse().map_err(|e| {
            CtlError::new(ErrorCode::InvalidArgument, format!("netns {netns:?}: {e}"))
        })?;
        let ifname = ifname.or(entry.ifname.as_deref()).unwrap_or("eth0");
        let gateway = self.network(&entry.network).and_then(|n| n.gateway);
        netlink::verify_container_link(&netns, ifname, address, prefix_len, gateway).map_err(|e| {
            match e {
                netlink::NetlinkError::Netns { .. } => {
                    CtlError::new(ErrorCode::NotFound, e.to_string())
                }
                other => CtlError::new(ErrorCode::CheckFailed, other.to_string()),
            }
        })
    }

    pub(super) fn derive_name(&self, netns: &NetnsRef) -> String {
        let base: String = match netns {
            NetnsRef::Pid(pid) => format!("pid{pid}"),
            NetnsRef::Path(path) => path
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
                        .take(24)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let base = if base.is_empty() {
            "c".to_string()
        } else {
            base
        };
        (0..)
            .map(|n| {
                if n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|candidate| self.port_index(candidate).is_none())
            .unwrap_or(base)
    }

    /// Why an explicitly requested `mac` cannot be used in `network`: two
    /// stations with one MAC in a bridge domain (or one posing as the
    /// gateway) would steal each other's frames.
    fn check_mac_free(&self, network: &str, mac: MacAddr) -> Result<(), String> {
        let text = mac.to_string();
        if let Some(port) = self
            .ports
            .iter()
            .flatten()
            .find(|p| p.network == network && p.mac.as_deref() == Some(text.as_str()))
        {
            return Err(format!(
                "already used by port {:?} of network {network:?}",
                port.name
            ));
        }
        if crate::daemon::plan::gateway_mac(network) == mac {
            return Err(format!("is the gateway's MAC of network {network:?}"));
        }
        Ok(())
    }

    /// The MAC of a container is derived from its address, as Docker does: a
    /// container that later gets a detached container's address also gets its MAC,
    /// so neighbours' ARP caches stay right and it is reachable at once.
    pub(super) fn derive_mac(&self, network: &str, address: Ipv4Addr) -> MacAddr {
        let taken: HashSet<String> = self
            .ports
            .iter()
            .flatten()
            .filter(|p| p.network == network)
            .filter_map(|p| p.mac.clone())
            .collect();
        let [a, b, c, d] = address.octets();
        // Locally administered, unicast: 02:53 ("S") then the IPv4 address; should
        // an explicitly chosen MAC already hold that, perturb the second byte.
        (0x53u8..=0xff)
            .map(|second| MacAddr([0x02, second, a, b, c, d]))
            .find(|mac| !taken.contains(&mac.to_string()))
            .unwrap_or(MacAddr([0x02, 0x53, a, b, c, d]))
    }

    pub(super) fn derive_host_name(&self, name: &str) -> String {
        (0u32..)
            .map(|salt| format!("sy{:08x}", fnv1a(name.as_bytes(), salt)))
            .find(|candidate| {
                !netlink::link_exists(candidate)
                    && !self
                        .ports
                        .iter()
                        .flatten()
                        .any(|p| &p.interface == candidate)
            })
            .unwrap_or_else(|| "sy-fallback".to_string())
    }
}

/// A missing namespace is the caller's mistake (`not_found`); a refused bad
/// argument is `invalid_argument`; the rest is the system's (`system_error`).
fn netlink_error(error: netlink::NetlinkError) -> CtlError {
    let code = match &error {
        netlink::NetlinkError::Netns { .. } => ErrorCode::NotFound,
        netlink::NetlinkError::Invalid { .. } => ErrorCode::InvalidArgument,
        netlink::NetlinkError::Exists { .. } => ErrorCode::AlreadyExists,
        _ => ErrorCode::SystemError,
    };
    CtlError::new(code, error.to_string())
}

/// FNV-1a, for short stable names and MACs derived from port names.
fn fnv1a(bytes: &[u8], salt: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5 ^ salt;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}
