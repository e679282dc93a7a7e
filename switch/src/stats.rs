//! Counters a running switch serves: per port, per worker, MAC table, FDB. Built
//! by the worker on request (between bursts), named and serialised by the control
//! thread: logged periodically, written to the stats file, printed on exit, and
//! later served by the control socket.

use serde::Serialize;
use switchyard_pipeline::{L2Stats, PortCounters};

/// Loop accounting of one worker.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WorkerCounters {
    /// Loop turns.
    pub loops: u64,
    /// Loop turns that received at least one frame.
    pub busy_loops: u64,
    /// Non-empty receive bursts.
    pub rx_bursts: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Transmit kicks the kernel refused.
    pub kick_errors: u64,
    /// Times the idle back-off slept.
    pub idle_sleeps: u64,
}

/// One MAC table entry as the worker reports it (indices, not names).
#[derive(Clone, Debug, Serialize)]
pub struct FdbEntry {
    /// Domain (network) index.
    pub domain: u16,
    /// The station's MAC.
    pub mac: String,
    /// Port index it was learned on.
    pub port: u16,
    /// Seconds since last seen.
    pub age_secs: u64,
}

/// What a worker reports when asked.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    /// Worker index.
    pub index: usize,
    /// Core it is pinned to.
    pub core: usize,
    /// Loop counters.
    pub counters: WorkerCounters,
    /// Counters per port, by port index.
    pub ports: Vec<PortCounters>,
    /// MAC learning counters.
    pub l2: L2Stats,
    /// MAC entries in the table.
    pub mac_entries: usize,
    /// MAC table capacity.
    pub mac_capacity: usize,
    /// The MAC table.
    pub fdb: Vec<FdbEntry>,
    /// Frames the UMEM (or pool) holds in all.
    pub frames_total: usize,
    /// Frames found at rest or in a port's rings.
    pub frames_accounted: usize,
    /// Whether the free list is free of duplicates (checked at the final report).
    pub free_list_unique: bool,
}

/// One port in the stats output.
#[derive(Clone, Debug, Serialize)]
pub struct PortStats {
    /// Port name from the config.
    pub name: String,
    /// Interface it drives.
    pub interface: String,
    /// Network it belongs to.
    pub network: String,
    /// Worker serving it.
    pub worker: usize,
    /// XDP mode in use.
    pub xdp_mode: String,
    /// Counters.
    #[serde(flatten)]
    pub counters: PortCounters,
}

/// One worker in the stats output.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerStats {
    /// Worker index.
    pub index: usize,
    /// Core it is pinned to.
    pub core: usize,
    /// Frames in the worker's UMEM.
    pub umem_frames_total: usize,
    /// Frames accounted for (free, fill ring, in transmission).
    pub umem_frames_accounted: usize,
    /// Whether the free list had no duplicate (double free).
    pub umem_free_list_unique: bool,
    /// Loop counters.
    #[serde(flatten)]
    pub counters: WorkerCounters,
}

/// MAC table summary in the stats output.
#[derive(Clone, Debug, Serialize)]
pub struct MacTableStats {
    /// Entries now.
    pub entries: usize,
    /// Maximum entries.
    pub capacity: usize,
    /// Learning counters.
    #[serde(flatten)]
    pub l2: L2Stats,
}

/// One FDB entry in the stats output, with names.
#[derive(Clone, Debug, Serialize)]
pub struct FdbStats {
    /// Network name.
    pub network: String,
    /// Station MAC.
    pub mac: String,
    /// Port name.
    pub port: String,
    /// Seconds since last seen.
    pub age_secs: u64,
}

/// The whole stats document.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// True for the last snapshot, written after the workers stopped.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Per port.
    pub ports: Vec<PortStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// MAC table summary.
    pub mac_table: MacTableStats,
    /// MAC table entries.
    pub fdb: Vec<FdbStats>,
}
