//! `ctl routes` and `ctl neighbours`: the routing table as the control thread
//! knows it (it set every route), and the workers' neighbour tables, which
//! only the workers hold (entries learned from ARP are per worker).

use super::{Controller, CtlResult};
use crate::daemon::plan::UPLINK;
use crate::daemon::worker_thread::WorkerCommand;
use crossbeam::channel;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::warn;

/// How long `ctl neighbours` waits for each worker's copy: a worker answers
/// between two bursts, so only a stuck one takes longer.
const NEIGHBOURS_WAIT: Duration = Duration::from_secs(1);

impl Controller {
    /// One row per route: each routed network's connected subnet (the
    /// gateway address as the source of what the switch sends there), then
    /// the uplink's default route.
    pub(super) fn routes(&self) -> CtlResult<Value> {
        let mut rows = Vec::new();
        for network in self.networks.iter().flatten() {
            let (Some(subnet), Some(gateway)) = (network.subnet, network.gateway) else {
                continue;
            };
            // A flat network is the uplink's LAN: its route is the LAN's
            // prefix, its source the node's address there.
            let (destination, source) = match network.lan {
                Some((prefix_len, node)) => (
                    switchyard_config::Ipv4Cidr {
                        addr: node,
                        prefix_len,
                    }
                    .trunc(),
                    node,
                ),
                None => (subnet.trunc(), gateway),
            };
            rows.push(json!({
                "destination": destination.to_string(),
                "network": network.name,
                "via": null,
                "source": source.to_string(),
                "isolated": network.isolated && !network.builtin && network.lan.is_none(),
            }));
        }
        if let Some(uplink) = &self.config.uplink {
            if let Some(next_hop) = uplink.gateway {
                rows.push(json!({
                    "destination": "0.0.0.0/0",
                    "network": UPLINK,
                    "via": next_hop.to_string(),
                    "source": uplink.address.addr.to_string(),
                    "isolated": false,
                }));
            }
        }
        Ok(Value::Array(rows))
    }

    /// NAT's counters, summed over the workers and per worker, and up to
    /// `limit` connections of each worker (`null` when no NAT is
    /// configured); with `network`, only connections with an address in
    /// that network's subnet.
    pub(super) fn conntrack(&self, limit: usize, network: Option<&str>) -> CtlResult<Value> {
        let subnet = match network {
            None => None,
            Some(name) => match self.network(name).and_then(|n| n.subnet) {
                Some(subnet) => Some(subnet),
                None => {
                    return Err(super::CtlError::new(
                        crate::control::protocol::ErrorCode::NotFound,
                        format!("network: {name:?} is not a routed network"),
                    ))
                }
            },
        };
        let limit = limit.min(100_000);
        let mut pending = Vec::with_capacity(self.workers.len());
        for worker in &self.workers {
            let (tx, rx) = channel::bounded(1);
            let sent = worker
                .commands
                .send(WorkerCommand::Conntrack {
                    limit,
                    subnet,
                    done: tx,
                })
                .is_ok();
            pending.push((worker.index, sent.then_some(rx)));
        }
        let mut total = switchyard_pipeline::nat::engine::NatStats::default();
        let mut per_worker = Vec::new();
        let mut entries = Vec::new();
        let mut any = false;
        for (index, rx) in pending {
            let dump = match rx.map(|rx| rx.recv_timeout(NEIGHBOURS_WAIT)) {
                Some(Ok(dump)) => dump,
                _ => {
                    return Err(super::CtlError::new(
                        crate::control::protocol::ErrorCode::SystemError,
                        format!("worker {index} did not answer within 1 s"),
                    ))
                }
            };
            let Some(dump) = dump else { continue };
            any = true;
            total.add(&dump.stats);
            per_worker.push(json!({ "worker": index, "stats": dump.stats }));
            for entry in dump.entries {
                let mut row = serde_json::to_value(entry).unwrap_or(Value::Null);
                if let Some(map) = row.as_object_mut() {
                    map.insert("worker".into(), json!(index));
                }
                entries.push(row);
            }
        }
        if !any {
            return Ok(Value::Null);
        }
        Ok(json!({ "stats": total, "workers": per_worker, "entries": entries }))
    }

    /// Every worker's neighbour entries, one row each with the worker's
    /// index; a worker that does not answer within [`NEIGHBOURS_WAIT`] gets a
    /// row saying so instead of holding up the reply.
    pub(super) fn neighbours(&self) -> CtlResult<Value> {
        let mut pending = Vec::with_capacity(self.workers.len());
        for worker in &self.workers {
            let (tx, rx) = channel::bounded(1);
            let sent = worker.commands.send(WorkerCommand::Neighbours(tx)).is_ok();
            pending.push((worker.index, sent.then_some(rx)));
        }
        let mut rows = Vec::new();
        for (index, rx) in pending {
            match rx.map(|rx| rx.recv_timeout(NEIGHBOURS_WAIT)) {
                Some(Ok(entries)) => {
                    for e in entries {
                        rows.push(json!({
                            "worker": index,
                            "ip": e.ip.to_string(),
                            "mac": e.mac.to_string(),
                            "state": e.state,
                        }));
                    }
                }
                _ => {
                    warn!(worker = index, "worker did not send its neighbour table");
                    rows.push(json!({ "worker": index, "state": "not_answering" }));
                }
            }
        }
        Ok(Value::Array(rows))
    }
}
