//! Published ports at run time: `publish`, `unpublish`, `published`, the port
//! mappings of an attach, and the swap that hands the workers a new table.
//!
//! Every change is checked as the config checks a `[[publish]]` table
//! (`switchyard_config::check_publish`: node address, routed target, range,
//! no overlap with any rule, named), then a whole new table is built here and
//! sent to the NAT worker (the one holding the connection table), which
//! swaps it in between bursts; the registry changes only once it has it. A
//! switch started without NAT turns it on with the first published port (the
//! engine built here, conntrack table included, so a worker never
//! allocates; the other workers then hand the NAT worker what they route).

use super::{Controller, CtlError, CtlResult, WORKER_REPLY_TIMEOUT};
use crate::control::protocol::{ErrorCode, PortMapping, PublishRequest, PublishedInfo};
use crate::daemon::publish::{self, PublishEntry, PublishOrigin, Target};
use crate::daemon::worker_thread::WorkerCommand;
use crossbeam::channel::{self, Sender};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use switchyard_config::{
    check_publish, Ipv4Cidr, NodeConfig, PortRange, PublishIssue, PublishScope,
};
use switchyard_pipeline::nat::published::PublishedPorts;
use tracing::{info, warn};

impl Controller {
    /// `publish`: a node port to an attached container's port or an address.
    pub(super) fn publish(&mut self, request: PublishRequest) -> CtlResult<PublishedInfo> {
        let invalid = |m: String| CtlError::new(ErrorCode::InvalidArgument, m);
        let protocol = publish::protocol(&request.protocol).map_err(invalid)?;
        let host_port: PortRange = request
            .host_port
            .parse()
            .map_err(|e| invalid(format!("host_port: {e}")))?;
        let host_address = request
            .host_address
            .as_deref()
            .map(|a| {
                a.parse::<Ipv4Addr>()
                    .map_err(|_| invalid(format!("host_address {a:?} is not an IPv4 address")))
            })
            .transpose()?;
        let target: Target = request
            .target
            .parse()
            .map_err(|e: publish::TargetError| invalid(e.to_string()))?;
        let (address, port, owner) = match target {
            Target::Address { address, port } => (address, port, None),
            Target::Port {
                network,
                name,
                port,
            } => (self.container_address(&network, &name)?, port, Some(name)),
        };
        let entry = PublishEntry {
            protocol,
            host_port,
            host_address,
            address,
            port,
            target: request.target,
            origin: PublishOrigin::Ctl,
            owner,
            config_index: None,
        };
        self.check_entry(&entry, &self.published)?;
        let mut rules = self.published.clone();
        rules.push(entry.clone());
        self.apply_published(rules)?;
        info!(rule = %entry, address = %entry.address, "port published");
        self.save_state();
        Ok(entry.info())
    }

    /// `unpublish`: removes a run-time rule, named by protocol and range.
    pub(super) fn unpublish(
        &mut self,
        protocol: &str,
        host_port: &str,
    ) -> CtlResult<PublishedInfo> {
        let invalid = |m: String| CtlError::new(ErrorCode::InvalidArgument, m);
        let protocol = publish::protocol(protocol).map_err(invalid)?;
        let host_port: PortRange = host_port
            .parse()
            .map_err(|e| invalid(format!("host_port: {e}")))?;
        let Some(index) = self
            .published
            .iter()
            .position(|e| e.protocol == protocol && e.host_port == host_port)
        else {
            return Err(
                match self
                    .published
                    .iter()
                    .find(|e| e.protocol == protocol && e.host_port.overlaps(&host_port))
                {
                    Some(e) => invalid(format!(
                        "{protocol} {host_port} is not a rule of its own: {} publishes {} {}; \
                     unpublish that",
                        e, e.protocol, e.host_port
                    )),
                    None => CtlError::new(
                        ErrorCode::NotFound,
                        format!("{protocol} {host_port} is not published"),
                    ),
                },
            );
        };
        let entry = &self.published[index];
        if entry.origin == PublishOrigin::Config {
            return Err(invalid(format!(
                "{protocol} {host_port} comes from {entry}: remove it there and reload"
            )));
        }
        let mut rules = self.published.clone();
        let entry = rules.remove(index);
        self.apply_published(rules)?;
        info!(rule = %entry, "port unpublished");
        self.save_state();
        Ok(entry.info())
    }

    /// `published`: every rule, config ones first.
    pub(super) fn published_info(&self) -> Vec<PublishedInfo> {
        self.published.iter().map(PublishEntry::info).collect()
    }

    /// The rules of an attach's port mappings for container port `name` at
    /// `address` in `network`, each checked against the running rules and
    /// the mappings before it; nothing is applied.
    pub(super) fn mapping_entries(
        &self,
        mappings: &[PortMapping],
        name: &str,
        network: &str,
        address: Ipv4Addr,
    ) -> CtlResult<Vec<PublishEntry>> {
        let mut entries: Vec<PublishEntry> = Vec::with_capacity(mappings.len());
        for m in mappings {
            let (protocol, host_port, host_address, port) =
                publish::mapping(m).map_err(|e| CtlError::new(ErrorCode::InvalidArgument, e))?;
            let entry = PublishEntry {
                protocol,
                host_port,
                host_address,
                address,
                port,
                target: format!("{network}/{name}:{port}"),
                origin: PublishOrigin::Attach,
                owner: Some(name.to_string()),
                config_index: None,
            };
            let others: Vec<PublishEntry> =
                self.published.iter().chain(&entries).cloned().collect();
            self.check_entry(&entry, &others).map_err(|e| {
                CtlError::new(
                    e.code,
                    format!(
                        "port mapping {}:{}/{}: {}",
                        m.host_port, m.container_port, m.protocol, e.message
                    ),
                )
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Removes the rules port `name` owns (its detach), if it has any. A
    /// worker that does not take the new table keeps the old one until the
    /// next change; the registry forgets the rules anyway (their port is
    /// gone).
    pub(super) fn drop_owned_rules(&mut self, name: &str) {
        if !self
            .published
            .iter()
            .any(|e| e.owner.as_deref() == Some(name))
        {
            return;
        }
        let rules: Vec<PublishEntry> = self
            .published
            .iter()
            .filter(|e| e.owner.as_deref() != Some(name))
            .cloned()
            .collect();
        if let Err(error) = self.apply_published(rules.clone()) {
            warn!(port = name, error = %error.message, "its published ports stay in a worker until the next change");
            self.published = rules;
        } else {
            info!(port = name, "its published ports were removed");
        }
    }

    /// Re-applies the run-time rules a previous run recorded: each still
    /// checked (its owner re-adopted, no overlap with the config file as it
    /// is now), then one swap.
    pub(super) fn readopt_published(&mut self, recorded: Vec<PublishEntry>) {
        let mut rules = self.published.clone();
        for mut entry in recorded {
            if entry.origin == PublishOrigin::Config {
                continue;
            }
            if let Some(owner) = &entry.owner {
                match self
                    .port_index(owner)
                    .and_then(|i| self.ports[i].as_ref())
                    .and_then(|p| p.address())
                {
                    Some((address, _)) => entry.address = address,
                    None => {
                        warn!(rule = %entry, "not re-applied: its port is gone");
                        continue;
                    }
                }
            }
            match self.check_entry(&entry, &rules) {
                Ok(()) => rules.push(entry),
                Err(error) => warn!(rule = %entry, error = %error.message, "not re-applied"),
            }
        }
        let count = rules.len() - self.published.len();
        if count == 0 {
            return;
        }
        match self.apply_published(rules) {
            Ok(()) => info!(
                rules = count,
                "published ports re-applied from the state file"
            ),
            Err(error) => warn!(error = %error.message, "published ports not re-applied"),
        }
    }

    /// The published ports a reload to `new` makes: its `[[publish]]`
    /// tables, then the run-time rules, each of these checked against the
    /// new networks and the rules before it (a conflict refuses the reload,
    /// naming both); `None` when the tables did not change.
    pub(super) fn reloaded_rules(&self, new: &NodeConfig) -> CtlResult<Option<Vec<PublishEntry>>> {
        let mut rules: Vec<PublishEntry> = new
            .publish
            .iter()
            .enumerate()
            .map(|(i, p)| PublishEntry::from_config(i, p))
            .collect();
        let unchanged = rules.iter().eq(self
            .published
            .iter()
            .filter(|e| e.origin == PublishOrigin::Config));
        let subnets = switchyard_config::routed_subnets(&new.networks);
        let scope = PublishScope {
            node_addresses: &self.plan.node_addresses,
            routed_subnets: &subnets,
        };
        for entry in self
            .published
            .iter()
            .filter(|e| e.origin != PublishOrigin::Config)
        {
            let specs: Vec<_> = rules.iter().map(PublishEntry::spec).collect();
            let issues = check_publish(&entry.spec(), scope, rules.iter().zip(&specs));
            if !issues.is_empty() {
                let why = issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(CtlError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "publish: the run-time rule {entry} would not fit the new config ({why}); \
                         unpublish it (or detach its port) first (nothing was changed)"
                    ),
                ));
            }
            rules.push(entry.clone());
        }
        Ok((!unchanged).then_some(rules))
    }

    /// The address of attached container port `name` of `network`.
    fn container_address(&self, network: &str, name: &str) -> CtlResult<Ipv4Addr> {
        if self.network(network).is_none() {
            return Err(CtlError::new(
                ErrorCode::NotFound,
                format!("network {network:?} does not exist"),
            ));
        }
        let port = self
            .port_index(name)
            .and_then(|i| self.ports[i].as_ref())
            .ok_or_else(|| {
                CtlError::new(ErrorCode::NotFound, format!("port {name:?} does not exist"))
            })?;
        if port.network != network {
            return Err(CtlError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "port {name:?} is in network {:?}, not {network:?}",
                    port.network
                ),
            ));
        }
        port.address().map(|(ip, _)| ip).ok_or_else(|| {
            CtlError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "port {name:?} is not an attached container (it has no address): \
                     publish to ADDRESS:PORT"
                ),
            )
        })
    }

    /// The subnets published ports may forward into now: routed networks'
    /// (a gateway, not the switch's own, not flat).
    fn routed_subnets(&self) -> Vec<Ipv4Cidr> {
        self.networks
            .iter()
            .flatten()
            .filter(|n| !n.builtin && n.lan.is_none() && n.gateway.is_some())
            .filter_map(|n| n.subnet)
            .collect()
    }

    /// Checks `entry` as the config checks a `[[publish]]` table, against
    /// `others` (an overlap names the rule it hits: `already_exists`).
    fn check_entry(&self, entry: &PublishEntry, others: &[PublishEntry]) -> CtlResult<()> {
        let subnets = self.routed_subnets();
        let scope = PublishScope {
            node_addresses: &self.plan.node_addresses,
            routed_subnets: &subnets,
        };
        let specs: Vec<_> = others.iter().map(PublishEntry::spec).collect();
        let issues = check_publish(&entry.spec(), scope, others.iter().zip(&specs));
        if issues.is_empty() {
            return Ok(());
        }
        let code = if issues
            .iter()
            .any(|i| matches!(i, PublishIssue::Taken { .. }))
        {
            ErrorCode::AlreadyExists
        } else {
            ErrorCode::InvalidArgument
        };
        let message = issues
            .iter()
            .map(|i| format!("{}: {i}", i.field()))
            .collect::<Vec<_>>()
            .join("; ");
        Err(CtlError::new(code, message))
    }

    /// Makes `rules` the published ports: builds their table here, hands it
    /// to every worker's NAT engine (turning NAT on first if the switch has
    /// none) and waits; the registry changes only if all took it, else the
    /// old table (or no NAT) is restored.
    pub(super) fn apply_published(&mut self, rules: Vec<PublishEntry>) -> CtlResult<()> {
        let table = publish::table(&rules)
            .map_err(|e| CtlError::new(ErrorCode::InvalidArgument, e.to_string()))?;
        let table = Arc::new(table);
        if self.nat_installed {
            let node = Arc::clone(&self.node_addresses);
            let all = 0..self.workers.len();
            let took = self.ask_workers(all.clone(), |done| WorkerCommand::SetPublished {
                published: Arc::clone(&table),
                node_addresses: Arc::clone(&node),
                done,
            });
            if !took.is_some_and(|all| all.into_iter().all(|had_nat| had_nat)) {
                // Commands are taken in order: a late worker ends up with the
                // old table too.
                let old = Arc::clone(&self.published_table);
                let _ = self.ask_workers(all, |done| WorkerCommand::SetPublished {
                    published: Arc::clone(&old),
                    node_addresses: Arc::clone(&node),
                    done,
                });
                warn!("a worker did not take the new published ports in time; restored");
                return Err(CtlError::new(
                    ErrorCode::Internal,
                    "a worker did not take the new published ports in time; nothing was changed",
                ));
            }
        } else if !table.is_empty() {
            self.install_nat(&table)?;
        }
        self.published = rules;
        // The old table is freed here, not on a worker.
        self.published_table = table;
        Ok(())
    }

    /// Turns NAT on for a switch started without it: every worker gets its
    /// engine with `table` (made here, conntrack table included). All or
    /// nothing: if one does not take it, all are turned off again.
    fn install_nat(&mut self, table: &Arc<PublishedPorts>) -> CtlResult<()> {
        let plan = self.plan.live_nat(&self.config, Arc::clone(table));
        let mut engines: Vec<Option<Box<_>>> = (0..self.workers.len())
            .map(|w| Some(Box::new(plan.engine(w))))
            .collect();
        let mut next = 0;
        let took = self
            .ask_workers(0..self.workers.len(), |done| {
                let nat = engines.get_mut(next).and_then(Option::take);
                next += 1;
                WorkerCommand::SetNat {
                    nat,
                    uplink: plan.uplink_domain,
                    done,
                }
            })
            .is_some();
        if !took {
            // The engines out again (they come back here to be freed).
            let _ = self.ask_workers(0..self.workers.len(), |done| WorkerCommand::SetNat {
                nat: None,
                uplink: None,
                done,
            });
            warn!("a worker did not take NAT in time; turned off again");
            return Err(CtlError::new(
                ErrorCode::Internal,
                "a worker did not take NAT in time; nothing was changed",
            ));
        }
        self.nat_installed = true;
        info!(
            conntrack_size = plan.conntrack_size,
            workers = self.workers.len(),
            "NAT turned on for published ports"
        );
        Ok(())
    }

    /// Sends each of workers `which` the command `make` builds around its
    /// reply channel and collects the replies, with one deadline for all (a
    /// stuck worker costs [`WORKER_REPLY_TIMEOUT`] once); `None` if any did
    /// not answer.
    fn ask_workers<T>(
        &self,
        which: impl IntoIterator<Item = usize>,
        mut make: impl FnMut(Sender<T>) -> WorkerCommand,
    ) -> Option<Vec<T>> {
        let deadline = Instant::now() + WORKER_REPLY_TIMEOUT;
        let waits: Vec<_> = which
            .into_iter()
            .map(|w| {
                let worker = self.workers.get(w)?;
                let (done, wait) = channel::bounded(1);
                worker
                    .commands
                    .send_deadline(make(done), deadline)
                    .ok()
                    .map(|_| wait)
            })
            .collect();
        // Every reply is waited for (to the one deadline) before deciding, so
        // a worker answering after a slow one still gets its reply taken
        // (what it hands back, e.g. a replaced engine, is freed here, not on
        // the worker).
        let replies: Vec<Option<T>> = waits
            .into_iter()
            .map(|wait| wait.and_then(|w| w.recv_deadline(deadline).ok()))
            .collect();
        replies.into_iter().collect()
    }
}
