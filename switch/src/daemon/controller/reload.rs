//! Config reload: re-read the file and apply only the difference.
//!
//! Networks keep their identity by name: a network's bridge domain (its slot in
//! `networks`, which the workers know its ports by) never changes while it
//! exists, whatever the order of `[[network]]`s in the file; a changed subnet or
//! gateway is updated in place. A reload that would move an attached container
//! out of its network (its network removed, or readdressed under it) is refused
//! before anything changes.

use super::{Controller, CtlError, CtlResult, NetworkEntry, Origin, PortEntry};
use crate::control::protocol::ErrorCode;
use std::collections::HashSet;
use switchyard_config::NodeConfig;
use switchyard_pipeline::DomainId;
use tracing::info;

impl Controller {
    /// Re-reads the config file and applies the difference: networks and config
    /// ports added, removed or changed; ports that did not change are not touched.
    /// A file with errors changes nothing.
    pub fn reload(&mut self) -> CtlResult<serde_json::Value> {
        let new = crate::daemon::load_checked(&self.config_path)
            .map_err(|e| CtlError::new(ErrorCode::InvalidConfig, format!("{e:#}")))?;
        crate::daemon::check_interfaces(&new)
            .map_err(|e| CtlError::new(ErrorCode::InvalidConfig, format!("{e:#}")))?;
        // Networks that disappear must not keep ports that stay, and a network
        // with attached containers keeps its addressing (their addresses and
        // routes were configured inside the containers from it).
        let new_networks: HashSet<&str> = new.networks.iter().map(|n| n.name.as_str()).collect();
        // Isolation is set in every worker's router when a network's first port
        // arrives; changing it under ports would leave them with the old rule.
        for (index, fresh) in new.networks.iter().enumerate() {
            let Some(old) = self.network(&fresh.name) else {
                continue;
            };
            if old.isolated == fresh.isolated {
                continue;
            }
            if let Some(port) = self
                .ports
                .iter()
                .flatten()
                .find(|p| p.network == fresh.name)
            {
                return Err(CtlError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "network[{index}].isolated: network {:?} has ports (port {:?}); its \
                         isolation changes with a restart, or once it has none (nothing was \
                         changed)",
                        fresh.name, port.name
                    ),
                ));
            }
        }
        // A network whose masquerade differs from what the workers' NAT was
        // made with (a new network counts as not masquerading before).
        let masquerade_changed = new.networks.iter().any(|fresh| {
            let was = self
                .config
                .networks
                .iter()
                .any(|n| n.name == fresh.name && n.masquerade);
            was != fresh.masquerade
        });
        for (section, differs) in [
            ("uplink", new.uplink != self.config.uplink),
            ("host", new.host != self.config.host),
            // Set in each worker's router as a network's first port arrives.
            ("masquerade", masquerade_changed),
            ("conntrack", new.conntrack != self.config.conntrack),
        ] {
            if differs {
                return Err(CtlError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "{section}: [{section}] changes take a restart (its port, addresses and \
                         routes are set up at start; nothing was changed)"
                    ),
                ));
            }
        }
        // Which network is the uplink's LAN is fixed at start (the uplink
        // port's bridge domain).
        for (index, fresh) in new.networks.iter().enumerate() {
            let was = self
                .config
                .networks
                .iter()
                .any(|n| n.name == fresh.name && n.uplink);
            if was != fresh.uplink {
                return Err(CtlError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "network[{index}].uplink: which network is the uplink's LAN changes \
                         with a restart (nothing was changed)"
                    ),
                ));
            }
        }
        for port in self
            .ports
            .iter()
            .flatten()
            .filter(|p| matches!(p.origin, Origin::Attach | Origin::AddPort))
        {
            if !new_networks.contains(port.network.as_str()) {
                return Err(CtlError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "network {:?} is removed but port {:?} is still attached to it; \
                         detach it first (nothing was changed)",
                        port.network, port.name
                    ),
                ));
            }
            if port.origin != Origin::Attach {
                continue;
            }
            let (Some(old), Some((index, fresh))) = (
                self.network(&port.network),
                new.networks
                    .iter()
                    .enumerate()
                    .find(|(_, n)| n.name == port.network),
            ) else {
                continue;
            };
            for (field, differs) in [
                ("subnet", old.subnet != fresh.subnet),
                ("gateway", old.gateway != fresh.gateway),
            ] {
                if differs {
                    return Err(CtlError::new(
                        ErrorCode::InvalidConfig,
                        format!(
                            "network[{index}].{field}: network {:?} has attached containers \
                             (port {:?}, {}); its {field} cannot change under them: detach them \
                             first (nothing was changed)",
                            port.network,
                            port.name,
                            port.address.as_deref().unwrap_or("no address"),
                        ),
                    ));
                }
            }
        }
        // [[publish]] changes apply live; run-time rules must still fit.
        let publish_rules = self.reloaded_rules(&new)?;
        let wanted: Vec<PortEntry> = new
            .ports
            .iter()
            .map(|p| PortEntry {
                name: p.name.clone(),
                interface: p.interface.clone().unwrap_or_default(),
                network: p.network.clone(),
                origin: Origin::Config,
                mac: None,
                address: None,
                netns: None,
                ifname: None,
            })
            .collect();
        // Ports of a network that goes away are removed (the file cannot keep a
        // port in an undefined network, so that is always a wanted change).
        let removed_network = |name: &str| !new_networks.contains(name);
        let to_remove: Vec<usize> = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.as_ref()?)))
            .filter(|(_, p)| p.origin == Origin::Config)
            .filter(|(_, p)| !wanted.contains(p) || removed_network(&p.network))
            .map(|(i, _)| i)
            .collect();
        let to_add: Vec<PortEntry> = wanted
            .iter()
            .filter(|w| !self.ports.iter().flatten().any(|p| p == *w))
            .cloned()
            .collect();
        // Apply: the published ports (the one step a worker can refuse, so
        // first: nothing else has changed if it fails), remove ports, then
        // networks, add networks, then ports.
        let publish_changed = publish_rules.is_some();
        if let Some(rules) = publish_rules {
            self.apply_published(rules)
                .map_err(|e| CtlError::new(e.code, format!("publish: {}", e.message)))?;
        }
        let mut removed = Vec::new();
        for index in to_remove {
            removed.push(self.remove_live_port(index)?.name);
        }
        // By name: a kept network stays in its slot (its bridge domain) with its
        // new addressing; only a removed network frees its slot.
        for (domain, slot) in self.networks.iter_mut().enumerate() {
            if let Some(network) = slot.as_mut().filter(|n| !n.builtin) {
                match new.networks.iter().find(|n| n.name == network.name) {
                    Some(fresh) => {
                        network.subnet = fresh.subnet;
                        network.gateway = fresh.gateway;
                        network.isolated = fresh.isolated;
                    }
                    None => {
                        *slot = None;
                        self.fdb.remove_domain(domain as DomainId);
                    }
                }
            }
        }
        for network in &new.networks {
            if self.network(&network.name).is_none() {
                let entry = Some(NetworkEntry {
                    name: network.name.clone(),
                    subnet: network.subnet,
                    gateway: network.gateway,
                    isolated: network.isolated,
                    masquerade: network.masquerade,
                    builtin: false,
                    lan: None,
                });
                match self.networks.iter().position(Option::is_none) {
                    Some(free) => self.networks[free] = entry,
                    None => self.networks.push(entry),
                }
            }
        }
        let mut added = Vec::new();
        for entry in to_add {
            let mode = new
                .ports
                .iter()
                .find(|p| p.name == entry.name)
                .map_or(new.switch.xdp_mode, |p| p.effective_xdp_mode(&new.switch));
            match self.add_live_port(entry.clone(), mode) {
                Ok(_) => added.push(entry.name),
                Err(error) => {
                    // Undo this reload's additions so the switch is not half-changed.
                    for name in &added {
                        if let Some(index) = self.port_index(name) {
                            let _ = self.remove_live_port(index);
                        }
                    }
                    return Err(CtlError::new(
                        error.code,
                        format!("port {:?}: {} (the reload was rolled back; removed ports stay removed)", entry.name, error.message),
                    ));
                }
            }
        }
        let deferred = changed_settings(&self.config, &new);
        self.config = new;
        self.sync_host_routes();
        info!(
            ?added,
            ?removed,
            ?deferred,
            publish_changed,
            "config reloaded"
        );
        Ok(serde_json::json!({
            "added": added,
            "removed": removed,
            "publish_changed": publish_changed,
            "needs_restart": deferred,
        }))
    }
}

/// `[switch]` settings that differ and only take effect on restart.
fn changed_settings(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let (a, b) = (&old.switch, &new.switch);
    let mut changed = Vec::new();
    macro_rules! cmp {
        ($($field:ident),*) => { $( if a.$field != b.$field { changed.push(stringify!($field)); } )* };
    }
    cmp!(
        workers,
        control_socket,
        mac_table_size,
        mac_aging_secs,
        burst_size,
        ring_size,
        umem_frames,
        pipeline,
        idle
    );
    changed
}
