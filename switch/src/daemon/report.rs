//! Turning worker reports into the named stats document: written to the stats
//! file, logged periodically, printed as a table on exit.

use super::plan::SwitchPlan;
use crate::stats::{FdbStats, MacTableStats, PortStats, Snapshot, WorkerReport, WorkerStats};
use std::path::Path;
use switchyard_drivers::afxdp::AttachMode;
use switchyard_pipeline::PortCounters;
use tracing::info;

/// Merges the workers' reports: port counters summed over workers, the MAC table
/// as worker 0 holds it (every worker has a copy).
pub fn snapshot(
    plan: &SwitchPlan,
    modes: &[AttachMode],
    reports: &[WorkerReport],
    learn_dropped: u64,
    is_final: bool,
) -> Snapshot {
    let ports = plan
        .ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut counters = PortCounters::default();
            for report in reports {
                if let Some(c) = report.ports.get(i) {
                    counters.add(c);
                }
            }
            PortStats {
                name: port.name.clone(),
                interface: port.interface.clone(),
                network: port.network.clone(),
                worker: reports
                    .iter()
                    .find(|r| r.sockets.iter().any(|s| s.0 == i))
                    .map_or(0, |r| r.index),
                xdp_mode: modes.get(i).map_or("", |m| m.name()).to_string(),
                counters,
            }
        })
        .collect();
    let network_of_domain = |domain: u16| {
        plan.ports
            .iter()
            .find(|p| p.domain == domain)
            .map(|p| p.network.clone())
            .unwrap_or_default()
    };
    let first = reports.first();
    Snapshot {
        is_final,
        ports,
        workers: reports
            .iter()
            .map(|r| WorkerStats {
                index: r.index,
                core: r.core,
                umem_frames_total: r.frames_total,
                umem_frames_accounted: r.frames_accounted,
                umem_free_list_unique: r.free_list_unique,
                sockets: r
                    .sockets
                    .iter()
                    .map(|(port, queue)| format!("{}:{queue}", plan.ports[*port].name))
                    .collect(),
                counters: r.counters,
            })
            .collect(),
        mac_table: MacTableStats {
            entries: first.map_or(0, |r| r.mac_entries),
            capacity: first.map_or(0, |r| r.mac_capacity),
            learn_events_dropped: learn_dropped,
            l2: first.map(|r| r.l2).unwrap_or_default(),
        },
        fdb: first
            .map(|r| {
                r.fdb
                    .iter()
                    .map(|e| FdbStats {
                        network: network_of_domain(e.domain),
                        mac: e.mac.clone(),
                        port: plan
                            .ports
                            .get(e.port as usize)
                            .map(|p| p.name.clone())
                            .unwrap_or_default(),
                        age_secs: e.age_secs,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Writes the document to `path` atomically (write, then rename).
pub fn write_atomically(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// One log line per port and per worker.
pub fn log_summary(snap: &Snapshot) {
    for port in &snap.ports {
        let c = &port.counters;
        info!(port = %port.name, rx = c.rx_packets, tx = c.tx_packets, drops = c.drops.total(), "port counters");
    }
    for worker in &snap.workers {
        let c = &worker.counters;
        info!(
            worker = worker.index,
            loops = c.loops,
            busy = c.busy_loops,
            idle_sleeps = c.idle_sleeps,
            cpu_ms = c.cpu_ms,
            "worker counters"
        );
    }
    info!(entries = snap.mac_table.entries, "mac table");
}

/// The exit table on stdout.
pub fn print_final(snap: &Snapshot) {
    println!(
        "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
        "port", "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "drops"
    );
    for port in &snap.ports {
        let c = &port.counters;
        println!(
            "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            port.name,
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.drops.total()
        );
        for (reason, count) in c.drops.nonzero() {
            println!("{:<16}   drop {}: {}", "", reason.name(), count);
        }
    }
    for worker in &snap.workers {
        let c = &worker.counters;
        println!(
            "worker {} (core {}): {} loops, {} busy, {} idle sleeps, {} frames received, {} ms CPU; \
             UMEM frames accounted {}/{}",
            worker.index,
            worker.core,
            c.loops,
            c.busy_loops,
            c.idle_sleeps,
            c.rx_packets,
            c.cpu_ms,
            worker.umem_frames_accounted,
            worker.umem_frames_total
        );
    }
}
