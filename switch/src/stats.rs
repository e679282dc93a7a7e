//! Counters a running switch serves: per port, per worker, MAC table, FDB.
//! Published by the workers as they count (`crate::published`), the FDB kept
//! by the control thread (`crate::fdb_copy`); named and serialised by the
//! control thread only: logged periodically, written to the stats file,
//! printed on exit, and served by the control socket.

use serde::Serialize;
use switchyard_pipeline::{L2Stats, PortCounters, StageReport};

/// Loop accounting of one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
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
    /// Frames handed to another worker (it owns the output port).
    pub handed_out: u64,
    /// Frames taken over from other workers.
    pub handed_in: u64,
    /// CPU time the worker thread has used, in milliseconds.
    pub cpu_ms: u64,
    /// Sizes of non-empty receive bursts.
    pub burst_sizes: BurstHistogram,
    /// Times a socket left the polled set to wait for traffic.
    pub parks: u64,
    /// Times a waiting socket received and was polled again.
    pub wakes: u64,
    /// Sockets polled every turn at the end of the last turn (the others
    /// wait for traffic): the loop's cost follows this, not the port count.
    pub polled_sockets: u64,
    /// How long the turns that received took: a stall shows here (as in VPP's
    /// `show runtime` or OVS's `pmd-perf-show`).
    pub turn_durations: TurnHistogram,
    /// Neighbours its router learned from ARP and sent to the other workers
    /// (one per event, whatever the number of peers).
    pub neighbour_events_sent: u64,
    /// Neighbours other workers learned that it applied.
    pub neighbour_events_applied: u64,
    /// Neighbour events it could not send because a peer's inbox was full
    /// (one per full peer); that peer asks for the neighbour itself.
    pub neighbour_events_dropped: u64,
}

/// Loop-turn durations in power-of-two buckets from under 1 µs to 16 ms and
/// more, one add per busy turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnHistogram {
    buckets: [u64; 16],
}

impl TurnHistogram {
    /// Bucket labels, in order.
    pub const LABELS: [&'static str; 16] = [
        "<1us",
        "1-2us",
        "2-4us",
        "4-8us",
        "8-16us",
        "16-32us",
        "32-64us",
        "64-128us",
        "128-256us",
        "256-512us",
        "0.5-1ms",
        "1-2ms",
        "2-4ms",
        "4-8ms",
        "8-16ms",
        ">=16ms",
    ];

    /// Counts one turn of `nanos` nanoseconds.
    #[inline]
    pub fn record(&mut self, nanos: u64) {
        let micros = nanos / 1000;
        let bucket = if micros == 0 {
            0
        } else {
            (u64::BITS - micros.leading_zeros()) as usize
        };
        self.buckets[bucket.min(15)] += 1;
    }

    /// Count per bucket.
    pub fn buckets(&self) -> &[u64; 16] {
        &self.buckets
    }

    /// A histogram with these counts (read back from published cells).
    pub fn from_buckets(buckets: [u64; 16]) -> Self {
        TurnHistogram { buckets }
    }
}

impl Serialize for TurnHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(16))?;
        for (label, count) in Self::LABELS.iter().zip(self.buckets.iter()) {
            map.serialize_entry(label, count)?;
        }
        map.end()
    }
}

/// Receive burst sizes in power-of-two buckets: 1, 2-3, 4-7, ... 128-255, 256.
/// Shows whether the worker runs near idle (bursts of 1) or near saturation
/// (full bursts), at the cost of one add per burst.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstHistogram {
    buckets: [u64; 9],
}

impl BurstHistogram {
    /// Bucket labels, in order.
    pub const LABELS: [&'static str; 9] = [
        "1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", "256",
    ];

    /// Counts one burst of `n` frames (n >= 1).
    #[inline]
    pub fn record(&mut self, n: usize) {
        let bucket = (usize::BITS - 1 - n.max(1).leading_zeros()) as usize;
        self.buckets[bucket.min(8)] += 1;
    }

    /// Count per bucket.
    pub fn buckets(&self) -> &[u64; 9] {
        &self.buckets
    }

    /// A histogram with these counts (read back from published cells).
    pub fn from_buckets(buckets: [u64; 9]) -> Self {
        BurstHistogram { buckets }
    }
}

impl Serialize for BurstHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(9))?;
        for (label, count) in Self::LABELS.iter().zip(self.buckets.iter()) {
            map.serialize_entry(label, count)?;
        }
        map.end()
    }
}

/// One MAC table entry, by indices (the control thread's copy lists these;
/// names are looked up when the document is made).
#[derive(Clone, Debug, Serialize)]
pub struct FdbEntry {
    /// Domain (network) index.
    pub domain: u16,
    /// The station's MAC (formatted on the control thread, never by the worker).
    #[serde(serialize_with = "serialize_display")]
    pub mac: switchyard_pipeline::MacAddr,
    /// Port index it was learned on.
    pub port: u16,
    /// Seconds since last seen.
    pub age_secs: u64,
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// One worker's counters by indices: read from what it published, or its
/// final report when it stops.
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
    /// Frames the UMEM (or pool) holds in all.
    pub frames_total: usize,
    /// Frames found at rest or in a port's rings.
    pub frames_accounted: usize,
    /// Whether the free list is free of duplicates (checked at the final report).
    pub free_list_unique: bool,
    /// The (global port, queue) pairs this worker has sockets on.
    pub sockets: Vec<(usize, u32)>,
    /// Drops the kernel counted, per global port.
    pub kernel_drops: Vec<switchyard_drivers::KernelDrops>,
    /// Per-stage pipeline counters, in chain order.
    pub stages: Vec<StageReport>,
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
    /// Drops inside the kernel's AF_XDP rings, before the switch saw the frame.
    pub kernel_drops: switchyard_drivers::KernelDrops,
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
    /// Sockets as "port:queue".
    pub sockets: Vec<String>,
    /// Loop counters.
    #[serde(flatten)]
    pub counters: WorkerCounters,
    /// This worker's per-stage pipeline counters, in chain order.
    pub stages: Vec<StageReport>,
}

/// MAC table summary in the stats output.
#[derive(Clone, Debug, Serialize)]
pub struct MacTableStats {
    /// Entries now.
    pub entries: usize,
    /// Maximum entries.
    pub capacity: usize,
    /// Learn events between workers dropped because an inbox was full.
    pub learn_events_dropped: u64,
    /// Learn events the control thread's FDB copy lost because its inbox was
    /// full (the copy heals at each station's next refresh).
    pub observer_events_dropped: u64,
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
    /// Per-stage pipeline counters summed over the workers, in chain order
    /// (VPP's per-node counters: frames in, out by verdict, drops by reason).
    pub stages: Vec<StageReport>,
}

/// Sums the workers' per-stage counters by stage name, in chain order.
pub fn sum_stages<'a>(workers: impl IntoIterator<Item = &'a [StageReport]>) -> Vec<StageReport> {
    let mut total: Vec<StageReport> = Vec::new();
    for stages in workers {
        for stage in stages {
            match total.iter_mut().find(|t| t.name == stage.name) {
                Some(t) => t.counters.add(&stage.counters),
                None => total.push(*stage),
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::{sum_stages, BurstHistogram, TurnHistogram};
    use switchyard_pipeline::{StageCounters, StageReport};

    #[test]
    fn stage_counters_sum_over_workers_by_name_in_chain_order() {
        let stage = |name, frames_in| StageReport {
            name,
            counters: StageCounters {
                frames_in,
                ..StageCounters::default()
            },
        };
        let w0 = [stage("parse", 3), stage("l2", 2)];
        let w1 = [stage("parse", 10), stage("l2", 7)];
        let total = sum_stages([&w0[..], &w1[..]]);
        assert_eq!(total.len(), 2);
        assert_eq!((total[0].name, total[0].counters.frames_in), ("parse", 13));
        assert_eq!((total[1].name, total[1].counters.frames_in), ("l2", 9));
        let json = serde_json::to_value(total[1]).unwrap();
        assert_eq!(json["name"], "l2");
        assert_eq!(json["frames_in"], 9);
        assert_eq!(json["drops"]["no_gateway"], 0);
    }

    #[test]
    fn turn_durations_land_in_power_of_two_microsecond_buckets() {
        let mut h = TurnHistogram::default();
        for nanos in [0, 999, 1_000, 1_999, 2_000, 3_999, 1_000_000, 20_000_000] {
            h.record(nanos);
        }
        let b = h.buckets();
        assert_eq!(b[0], 2, "<1us");
        assert_eq!(b[1], 2, "1-2us");
        assert_eq!(b[2], 2, "2-4us");
        assert_eq!(b[10], 1, "1000 us lies in 512-1023 us");
        assert_eq!(b[15], 1, ">=16ms");
    }

    #[test]
    fn burst_sizes_land_in_power_of_two_buckets() {
        let mut h = BurstHistogram::default();
        for n in [1, 2, 3, 4, 64, 127, 128, 255, 256, 300] {
            h.record(n);
        }
        assert_eq!(h.buckets(), &[1, 2, 1, 0, 0, 0, 2, 2, 2]);
    }
}

/// What `ctl conntrack` shows of one worker's connection table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConntrackDump {
    /// The engine's counters (the table's included).
    pub stats: switchyard_pipeline::nat::engine::NatStats,
    /// Connections, up to the requested limit.
    pub entries: Vec<switchyard_pipeline::conntrack::ConntrackEntry>,
}
