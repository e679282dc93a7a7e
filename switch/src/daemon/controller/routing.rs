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

    /// The NAT worker's counters and up to `limit` connections (`null` when
    /// no NAT is configured).
    pub(super) fn conntrack(&self, limit: usize) -> CtlResult<Value> {
        let Some(worker) = self.workers.get(crate::daemon::plan::NAT_WORKER) else {
            return Ok(Value::Null);
        };
        let (tx, rx) = channel::bounded(1);
        let limit = limit.min(100_000);
        if worker
            .commands
            .send(WorkerCommand::Conntrack { limit, done: tx })
            .is_err()
        {
            return Err(super::CtlError::new(
                crate::control::protocol::ErrorCode::SystemError,
                "the NAT worker is gone",
            ));
        }
        match rx.recv_timeout(NEIGHBOURS_WAIT) {
            Ok(dump) => Ok(serde_json::to_value(dump).unwrap_or(Value::Null)),
            Err(_) => Err(super::CtlError::new(
                crate::control::protocol::ErrorCode::SystemError,
                "the NAT worker did not answer within 1 s",
            )),
        }
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
