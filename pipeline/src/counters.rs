//! Per-port traffic counters, kept by the worker that owns the port and served as
//! stats (logs now, the control socket later).

use crate::drop_reason::{DropCounters, DropReason};
use serde::Serialize;

/// Packets and bytes in each direction plus drops by reason, for one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PortCounters {
    /// Frames received from the port.
    pub rx_packets: u64,
    /// Bytes received from the port.
    pub rx_bytes: u64,
    /// Frames transmitted to the port.
    pub tx_packets: u64,
    /// Bytes transmitted to the port.
    pub tx_bytes: u64,
    /// Frames dropped that arrived on (or were bound for) this port, by reason.
    pub drops: DropCounters,
}

impl PortCounters {
    /// Counts one received frame of `len` bytes.
    #[inline]
    pub fn count_rx(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }

    /// Counts one transmitted frame of `len` bytes.
    #[inline]
    pub fn count_tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }

    /// Counts one drop.
    #[inline]
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.count(reason);
    }

    /// Adds another port's counters (aggregation across workers).
    pub fn add(&mut self, other: &PortCounters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.drops.add(&other.drops);
    }
}
