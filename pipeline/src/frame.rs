//! The batch model shared by every stage: frames live in a [`FrameStore`] the
//! driver owns; stages only see indices into it plus one [`PacketMeta`] each.

use crate::drop_reason::DropReason;

/// Index of a port inside one switch instance (dense, small, cheap to copy).
pub type PortId = u16;

/// Index of a bridge domain (one per configured network).
pub type DomainId = u16;

/// Largest batch a stage is ever handed; drivers size their arrays from it.
pub const MAX_BURST: usize = 256;

/// Monotonic time in nanoseconds, passed in by the caller so stages stay free of
/// clock syscalls (one clock read per burst, not per packet). Serializes as the
/// bare nanosecond count (fdb dumps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from whole seconds (handy in tests).
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs * 1_000_000_000)
    }

    /// Nanoseconds elapsed since `earlier`, zero if the clock went backwards.
    pub const fn saturating_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Access to the frames of a batch, so stages are generic over where bytes live
/// (UMEM frames in the AF_XDP driver, plain vectors in tests and benches).
pub trait FrameStore {
    /// Bytes of frame `index` (its current length).
    fn frame(&self, index: usize) -> &[u8];
    /// Mutable bytes of frame `index`, for in-place rewrites such as checksum completion.
    fn frame_mut(&mut self, index: usize) -> &mut [u8];
}

impl FrameStore for [Vec<u8>] {
    fn frame(&self, index: usize) -> &[u8] {
        &self[index]
    }
    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self[index]
    }
}

impl FrameStore for Vec<Vec<u8>> {
    fn frame(&self, index: usize) -> &[u8] {
        &self[index]
    }
    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self[index]
    }
}

/// What the pipeline decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet decided: the next stage must look at it.
    Pending,
    /// Send out of exactly this port.
    Forward(PortId),
    /// Send out of every other port of the frame's domain (never the ingress port).
    Flood,
    /// Drop and count under this reason on the ingress port.
    Drop(DropReason),
}

/// Per-frame metadata carried between stages; one per frame of the batch, reused
/// from burst to burst (no allocation per packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Port the frame arrived on.
    pub in_port: PortId,
    /// Bridge domain of the ingress port, filled in by the L2 stage.
    pub domain: DomainId,
    /// Offset of the L3 header (after Ethernet and any VLAN tags), filled by parsing.
    pub l3_offset: u16,
    /// The decision so far.
    pub verdict: Verdict,
}

impl PacketMeta {
    /// A fresh meta for a frame received on `in_port`.
    pub const fn new(in_port: PortId) -> Self {
        PacketMeta {
            in_port,
            domain: 0,
            l3_offset: 0,
            verdict: Verdict::Pending,
        }
    }
}
