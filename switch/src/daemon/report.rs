//! Turning worker reports into the named stats document: written to the stats
//! file, logged periodically, printed as a table on exit.

use crate::stats::{
    FdbEntry, FdbStats, MacTableStats, PortStats, Snapshot, WorkerReport, WorkerStats,
};
use std::path::Path;
use switchyard_pipeline::PortCounters;
use tracing::info;

/// A port as the stats document names it.
#[derive(Clone, Debug)]
pub struct PortView {
    /// Port name.
    pub name: String,
    /// Interface it drives.
    pub interface: String,
    /// Network name.
    pub network: String,
    /// XDP mode in use.
    pub mode: &'static str,
}

/// Merges the workers' reports: port counters summed over workers, the MAC
/// table counters as worker 0 holds them (every worker has a copy), and `fdb`
/// (the control thread's copy of the table). `ports` and `networks` are indexed
/// by port and domain id; `None` marks a free slot.
pub fn snapshot(
    ports: &[Option<PortView>],
    networks: &[Option<String>],
    reports: &[WorkerReport],
    fdb: &[FdbEntry],
    learn_dropped: u64,
    observer_dropped: u64,
    is_final: bool,
) -> Snapshot {
    let port_stats = ports
        .iter()
        .enumerate()
        .filter_map(|(i, port)| {
            let port = port.as_ref()?;
            let mut counters = PortCounters::default();
            let mut kernel_drops = switchyard_drivers::KernelDrops::default();
            for report in reports {
                if let Some(c) = report.ports.get(i) {
                    counters.add(c);
                }
                if let Some(k) = report.kernel_drops.get(i) {
                    kernel_drops.add(k);
                }
            }
            Some(PortStats {
                name: port.name.clone(),
                interface: port.interface.clone(),
                network: port.network.clone(),
                worker: reports
                    .iter()
                    .find(|r| r.sockets.iter().any(|s| s.0 == i))
                    .map_or(0, |r| r.index),
                xdp_mode: port.mode.to_string(),
                counters,
                kernel_drops,
            })
        })
        .collect();
    let port_name = |index: usize| {
        ports
            .get(index)
            .and_then(|p| p.as_ref())
            .map(|p| p.name.clone())
    };
    let first = reports.first();
    Snapshot {
        is_final,
        ports: port_stats,
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
                    .map(|(port, queue)| {
                        format!("{}:{queue}", port_name(*port).unwrap_or_default())
                    })
                    .collect(),
                counters: r.counters,
                stages: r.stages.clone(),
            })
            .collect(),
        mac_table: MacTableStats {
            entries: first.map_or(0, |r| r.mac_entries),
            capacity: first.map_or(0, |r| r.mac_capacity),
            learn_events_dropped: learn_dropped,
            observer_events_dropped: observer_dropped,
            l2: first.map(|r| r.l2).unwrap_or_default(),
        },
        fdb: fdb
            .iter()
            .filter_map(|e| {
                let port = ports.get(e.port as usize)?.as_ref()?;
                let network = networks.get(e.domain as usize)?.clone()?;
                // A station is listed only under its port's own network.
                (port.network == network).then(|| FdbStats {
                    network,
                    mac: e.mac.to_string(),
                    port: port.name.clone(),
                    age_secs: e.age_secs,
                })
            })
            .collect(),
        stages: crate::stats::sum_stages(reports.iter().map(|r| r.stages.as_slice())),
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
        let k = &port.kernel_drops;
        if *k != switchyard_drivers::KernelDrops::default() {
            println!(
                "{:<16}   kernel: rx_dropped {}, rx_ring_full {}, rx_fill_ring_empty {}, tx_invalid {}",
                "", k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty, k.tx_invalid
            );
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
