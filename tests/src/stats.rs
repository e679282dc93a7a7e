//! The daemon's stats file, parsed.
//!
//! Typed so that a renamed or missing field fails loudly in one place; the optional
//! parts carry `#[serde(default)]` so the daemon may add fields without breaking tests.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One snapshot of the stats file.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    /// True only in the last write, made on exit.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Per-port counters.
    pub ports: Vec<PortStats>,
    /// Per-worker state, including UMEM frame accounting.
    #[serde(default)]
    pub workers: Vec<WorkerStats>,
    /// MAC table totals.
    #[serde(default)]
    pub mac_table: Option<MacTableStats>,
    /// The learned forwarding entries.
    #[serde(default)]
    pub fdb: Vec<FdbEntry>,
    /// The whole document, for fields not modelled here and for failure messages.
    #[serde(skip)]
    pub raw: Value,
}

/// Counters of one switch port.
#[derive(Debug, Clone, Deserialize)]
pub struct PortStats {
    /// Port name from the config (the host's name in these tests).
    pub name: String,
    /// The interface the port is attached to.
    pub interface: String,
    /// The network (L2 domain) of the port.
    pub network: String,
    /// The worker polling it.
    #[serde(default)]
    pub worker: Option<u64>,
    /// XDP attach mode ("native"/"generic"/...).
    #[serde(default)]
    pub xdp_mode: Option<String>,
    /// Frames received from the interface.
    pub rx_packets: u64,
    /// Bytes received from the interface.
    pub rx_bytes: u64,
    /// Frames sent on the interface.
    pub tx_packets: u64,
    /// Bytes sent on the interface.
    pub tx_bytes: u64,
    /// Dropped frames by reason.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Drops inside the kernel's AF_XDP rings (rx_dropped, rx_ring_full,
    /// rx_fill_ring_empty, tx_invalid), where reported.
    #[serde(default)]
    pub kernel_drops: Option<BTreeMap<String, u64>>,
}

/// State of one poll worker.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerStats {
    /// Worker index.
    pub index: u64,
    /// CPU core it is pinned to.
    #[serde(default)]
    pub core: Option<u64>,
    /// Frames in the worker's UMEM.
    pub umem_frames_total: u64,
    /// Frames the worker can account for (fill, rx, batches, tx, completion, free list).
    pub umem_frames_accounted: u64,
    /// Whether the free list held no frame twice (a double free), where reported.
    #[serde(default)]
    pub umem_free_list_unique: Option<bool>,
    /// Loop turns.
    #[serde(default)]
    pub loops: u64,
    /// Loop turns that found frames.
    #[serde(default)]
    pub busy_loops: u64,
    /// Idle back-off sleeps.
    #[serde(default)]
    pub idle_sleeps: u64,
    /// Frames received from sockets.
    #[serde(default)]
    pub rx_packets: u64,
    /// Frames handed to the worker owning the output port.
    #[serde(default)]
    pub handed_out: u64,
    /// Frames taken over from other workers.
    #[serde(default)]
    pub handed_in: u64,
    /// Worker thread CPU time.
    #[serde(default)]
    pub cpu_ms: u64,
    /// Sockets as "port:queue".
    #[serde(default)]
    pub sockets: Vec<String>,
}

/// MAC table totals.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MacTableStats {
    /// Entries now in the table.
    pub entries: u64,
    /// Table capacity.
    pub capacity: u64,
    /// Learn events.
    pub learned: u64,
    /// Station moves.
    pub moved: u64,
    /// Learns refused because the table was full.
    pub table_full: u64,
    /// Entries aged out.
    pub aged: u64,
}

/// One learned MAC.
#[derive(Debug, Clone, Deserialize)]
pub struct FdbEntry {
    /// Network the entry belongs to.
    pub network: String,
    /// The MAC address.
    pub mac: String,
    /// Port name it was learned on.
    pub port: String,
    /// Seconds since last seen.
    #[serde(default)]
    pub age_secs: Option<f64>,
}

impl Stats {
    /// Parses a stats document.
    pub fn parse(text: &str) -> Result<Stats, String> {
        let raw: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let mut stats: Stats = serde_json::from_value(raw.clone())
            .map_err(|e| format!("unexpected stats shape: {e}"))?;
        stats.raw = raw;
        Ok(stats)
    }

    /// The port named `name`; panics listing the known ports otherwise.
    #[track_caller]
    pub fn port(&self, name: &str) -> &PortStats {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| {
                let names: Vec<_> = self.ports.iter().map(|p| p.name.as_str()).collect();
                panic!("no port {name:?} in stats (ports: {names:?})")
            })
    }

    /// Total drops of a port (all reasons).
    pub fn port_drops(&self, name: &str) -> u64 {
        self.port(name).drops.values().sum()
    }

    /// The FDB entry for `mac` in `network`, if learned.
    pub fn fdb_entry(&self, network: &str, mac: &str) -> Option<&FdbEntry> {
        self.fdb
            .iter()
            .find(|e| e.network == network && e.mac.eq_ignore_ascii_case(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let text = r#"{"final": true,
          "ports": [{"name":"h1","interface":"syt0001h1","network":"red","worker":0,"xdp_mode":"native",
                     "rx_packets":5,"rx_bytes":500,"tx_packets":4,"tx_bytes":400,
                     "drops":{"runt":1,"same_segment":2}}],
          "workers": [{"index":0,"core":1,"umem_frames_total":8192,"umem_frames_accounted":8192,"extra":1}],
          "mac_table": {"entries":2,"capacity":4096,"learned":2,"moved":0,"table_full":0,"aged":0},
          "fdb": [{"network":"red","mac":"02:00:00:00:00:01","port":"h1","age_secs":0}],
          "future_field": 3}"#;
        let s = Stats::parse(text).unwrap();
        assert!(s.is_final);
        assert_eq!(s.port("h1").tx_packets, 4);
        assert_eq!(s.port_drops("h1"), 3);
        assert_eq!(s.workers[0].umem_frames_total, 8192);
        assert_eq!(s.mac_table.as_ref().unwrap().capacity, 4096);
        assert!(s.fdb_entry("red", "02:00:00:00:00:01").is_some());
        assert_eq!(s.raw["future_field"], 3);
    }

    #[test]
    fn optional_parts_may_be_missing() {
        let text = r#"{"final": false, "ports": [{"name":"h1","interface":"x","network":"red",
            "rx_packets":0,"rx_bytes":0,"tx_packets":0,"tx_bytes":0}]}"#;
        let s = Stats::parse(text).unwrap();
        assert!(s.workers.is_empty() && s.fdb.is_empty() && s.mac_table.is_none());
    }

    #[test]
    fn missing_required_fields_are_errors() {
        assert!(Stats::parse(r#"{"ports": []}"#).is_err());
        assert!(Stats::parse("{").is_err());
    }
}
