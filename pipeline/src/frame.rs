//! The batch model shared by every stage: frames live in a [`FrameStore`] the
//! driver owns; stages only see indices into it plus one [`PacketMeta`] each.
//! Stages may rewrite, resize and originate frames through the store.

use crate::drop_reason::DropReason;
use std::net::Ipv4Addr;

/// Index of a port inside one switch instance (dense, small, cheap to copy).
pub type PortId = u16;

/// The `in_port` of a frame the switch sends of its own accord, answering no
/// port (an ARP request): floods leave out no port of the domain, and drops
/// are counted nowhere but in the stage.
pub const NO_PORT: PortId = PortId::MAX;

/// Index of a bridge domain (one per configured network).
pub type DomainId = u16;

/// Largest burst a port is asked for; drivers size their arrays from it.
pub const MAX_BURST: usize = 256;

/// Most frames one batch can hold: a full burst plus as many frames originated
/// by stages (at most one reply per received frame). Workers size their batch
/// arrays to it once.
pub const MAX_BATCH: usize = 2 * MAX_BURST;

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

/// Bytes every frame store lets a stage push in front of a received frame
/// ([`FrameStore::push_head`]): room for an outer Ethernet + IPv4 + UDP + VXLAN
/// header (50 bytes) with space to spare. Drivers guarantee at least this much
/// for frames up to their MTU; [`FrameStore::headroom`] says what one frame has.
pub const MIN_HEADROOM: usize = 128;
const _: () = assert!(MIN_HEADROOM >= 64, "VXLAN alone pushes 50 bytes");

/// Why a frame store could not resize or originate a frame. A stage that gets
/// one drops the frame and counts the matching [`DropReason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not enough room before the frame's first byte for the bytes to push.
    #[error("not enough headroom")]
    NoHeadroom,
    /// Not enough room after the frame's last byte (or its buffer) for the new length.
    #[error("not enough tailroom")]
    NoTailroom,
    /// The frame is shorter than the bytes to remove.
    #[error("frame shorter than the bytes to remove")]
    TooShort,
    /// No free frame in the pool, or the batch is at its capacity.
    #[error("no free frame to originate into")]
    NoFreeFrame,
}

impl FrameError {
    /// The drop reason a stage counts when this error costs it a frame.
    pub const fn drop_reason(self) -> DropReason {
        match self {
            FrameError::NoHeadroom | FrameError::NoTailroom | FrameError::TooShort => {
                DropReason::NoFrameRoom
            }
            FrameError::NoFreeFrame => DropReason::NoFreeFrame,
        }
    }
}

/// Access to the frames of a batch, so stages are generic over where bytes live
/// (UMEM frames in the AF_XDP driver, pool frames in the in-memory driver, plain
/// vectors in tests).
///
/// Besides reading and rewriting bytes in place, a stage can change a frame's
/// length at either end (push or pull a header, trim or extend the tail) and
/// take a fresh frame from the worker's pool to originate a reply into. Stores
/// backed by a driver pool never allocate for any of this.
pub trait FrameStore {
    /// Number of frames in the batch (received plus originated so far).
    fn frame_count(&self) -> usize;
    /// Bytes of frame `index` (its current length).
    fn frame(&self, index: usize) -> &[u8];
    /// Mutable bytes of frame `index`, for in-place rewrites such as checksum completion.
    fn frame_mut(&mut self, index: usize) -> &mut [u8];
    /// Bytes [`push_head`](Self::push_head) can add to frame `index` now.
    fn headroom(&self, index: usize) -> usize;
    /// Bytes [`set_len`](Self::set_len) can add at the tail of frame `index` now.
    fn tailroom(&self, index: usize) -> usize;
    /// Grows frame `index` by `n` bytes at its head (an encapsulation header); the
    /// new bytes come first and their contents are undefined until written.
    fn push_head(&mut self, index: usize, n: usize) -> Result<(), FrameError>;
    /// Removes `n` bytes from the head of frame `index` (decapsulation).
    fn pull_head(&mut self, index: usize, n: usize) -> Result<(), FrameError>;
    /// Sets frame `index`'s length, cutting or extending its tail; extended
    /// bytes are undefined until written.
    fn set_len(&mut self, index: usize, len: usize) -> Result<(), FrameError>;
    /// Appends a fresh, empty frame taken from the pool to the batch and returns
    /// its index (always the previous [`frame_count`](Self::frame_count)). Give it
    /// bytes with [`set_len`](Self::set_len) and [`frame_mut`](Self::frame_mut).
    fn originate(&mut self) -> Result<usize, FrameError>;
}

/// Plain vectors as a frame store, for tests, fuzzing and benchmarks: pushing,
/// extending and originating allocate here (driver stores never do), and every
/// frame has [`MIN_HEADROOM`] of (simulated) headroom.
impl FrameStore for Vec<Vec<u8>> {
    fn frame_count(&self) -> usize {
        self.len()
    }
    fn frame(&self, index: usize) -> &[u8] {
        &self[index]
    }
    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self[index]
    }
    fn headroom(&self, _index: usize) -> usize {
        MIN_HEADROOM
    }
    fn tailroom(&self, index: usize) -> usize {
        VEC_FRAME_CAPACITY.saturating_sub(self[index].len())
    }
    fn push_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        vec_push_head(&mut self[index], n)
    }
    fn pull_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        vec_pull_head(&mut self[index], n)
    }
    fn set_len(&mut self, index: usize, len: usize) -> Result<(), FrameError> {
        vec_set_len(&mut self[index], len)
    }
    fn originate(&mut self) -> Result<usize, FrameError> {
        self.push(Vec::new());
        Ok(self.len() - 1)
    }
}

/// A fixed slice of vectors: as `Vec<Vec<u8>>`, except that it cannot grow, so
/// originating fails with [`FrameError::NoFreeFrame`].
impl FrameStore for [Vec<u8>] {
    fn frame_count(&self) -> usize {
        self.len()
    }
    fn frame(&self, index: usize) -> &[u8] {
        &self[index]
    }
    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self[index]
    }
    fn headroom(&self, _index: usize) -> usize {
        MIN_HEADROOM
    }
    fn tailroom(&self, index: usize) -> usize {
        VEC_FRAME_CAPACITY.saturating_sub(self[index].len())
    }
    fn push_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        vec_push_head(&mut self[index], n)
    }
    fn pull_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        vec_pull_head(&mut self[index], n)
    }
    fn set_len(&mut self, index: usize, len: usize) -> Result<(), FrameError> {
        vec_set_len(&mut self[index], len)
    }
    fn originate(&mut self) -> Result<usize, FrameError> {
        Err(FrameError::NoFreeFrame)
    }
}

/// Largest frame the vector stores let a stage build (a 4 KiB buffer less the
/// headroom, like the drivers').
const VEC_FRAME_CAPACITY: usize = 4096 - MIN_HEADROOM;

fn vec_push_head(frame: &mut Vec<u8>, n: usize) -> Result<(), FrameError> {
    if n > MIN_HEADROOM {
        return Err(FrameError::NoHeadroom);
    }
    if frame.len() + n > VEC_FRAME_CAPACITY + MIN_HEADROOM {
        return Err(FrameError::NoTailroom);
    }
    frame.splice(0..0, std::iter::repeat_n(0u8, n));
    Ok(())
}

fn vec_pull_head(frame: &mut Vec<u8>, n: usize) -> Result<(), FrameError> {
    if n > frame.len() {
        return Err(FrameError::TooShort);
    }
    frame.drain(..n);
    Ok(())
}

fn vec_set_len(frame: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    if len > VEC_FRAME_CAPACITY {
        return Err(FrameError::NoTailroom);
    }
    frame.resize(len, 0);
    Ok(())
}

/// What the pipeline decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet decided: the next stage must look at it.
    Pending,
    /// Send out of exactly this port (its L2 header is final).
    Forward(PortId),
    /// Send out of every other port of the frame's domain (never the ingress port).
    Flood,
    /// Drop and count under this reason on the ingress port.
    Drop(DropReason),
    /// Addressed to the network's gateway (its MAC, or ARP for its address):
    /// the gateway/route stages take it from here. Until those stages exist the
    /// worker drops it as `no_gateway`.
    ToGateway,
    /// Consumed by the switch itself (an ARP reply it asked for, a frame it
    /// answered by originating another): nothing to send, the buffer is freed
    /// without counting a drop.
    Local,
    /// Routed: leaves through `port` once it has a new L2 header for `next_hop`
    /// (the neighbour stage writes it and turns this into `Forward`). Reaching
    /// the worker unresolved it is dropped as `unresolved_next_hop`.
    Routed {
        /// Egress port.
        port: PortId,
        /// IPv4 address whose MAC the new L2 header needs (the destination
        /// itself on a connected network, else the gateway toward it).
        next_hop: Ipv4Addr,
    },
    /// To be processed by worker `n` instead (NAT runs on one worker, which
    /// must see every packet of its flows): the frame is handed over as it
    /// was received, and that worker runs the chain over it.
    HandOff(u16),
}

impl Verdict {
    /// True while no stage has decided the frame.
    #[inline]
    pub const fn is_pending(&self) -> bool {
        matches!(self, Verdict::Pending)
    }
}

/// Which network layer a frame carries (mirrors [`crate::wire::L3Kind`]).
pub use crate::wire::L3Kind;

/// Per-frame metadata carried between stages; one per frame of the batch, reused
/// from burst to burst (no allocation per packet). The parse stage fills in what
/// it found once, so no later stage parses the frame again; fields a frame does
/// not have stay zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Port the frame arrived on (for an originated frame: the port whose frame
    /// it answers).
    pub in_port: PortId,
    /// Bridge domain of the ingress port, filled in by the L2 stage.
    pub domain: DomainId,
    /// The decision so far.
    pub verdict: Verdict,
    /// The EtherType after any VLAN tags.
    pub ethertype: u16,
    /// Number of VLAN tags looked through (0..=2).
    pub vlan_count: u8,
    /// VLAN id of the outer tag, 0 when untagged.
    pub vlan_id: u16,
    /// Offset of the L3 header (after Ethernet and any VLAN tags), filled by parsing.
    pub l3_offset: u16,
    /// Which L3 header sits at `l3_offset`.
    pub l3: L3Kind,
    /// Offset of the L4 header from the start of the frame (0 without IP).
    pub l4_offset: u16,
    /// L4 length as bounded by the IP header (padding excluded).
    pub l4_len: u16,
    /// IP protocol (IPv4 protocol or final IPv6 next header), 0 without IP.
    pub protocol: u8,
    /// True for IP fragments: no L4 fields were read.
    pub fragment: bool,
    /// IPv4 source address (unspecified for other frames).
    pub src_ip: Ipv4Addr,
    /// IPv4 destination address (unspecified for other frames).
    pub dst_ip: Ipv4Addr,
    /// TCP/UDP source port.
    pub src_port: u16,
    /// TCP/UDP destination port.
    pub dst_port: u16,
    /// ICMPv4 type and code (when `protocol` is ICMP and 4 bytes were present).
    pub icmp_type: u8,
    /// ICMPv4 code.
    pub icmp_code: u8,
    /// ICMPv4 echo identifier (echo request/reply only).
    pub icmp_id: u16,
    /// Hash of the flow (addresses, protocol, ports; the MACs for non-IP), for
    /// spreading flows and keying flow tables. Not symmetric, and neither the
    /// VLAN nor the domain is in it (flow tables key on the domain themselves).
    pub flow_hash: u32,
}

impl PacketMeta {
    /// The IP packet's length, header included (the IPv4 total length as
    /// parsing bounded it, padding excluded), 0 without IP: what
    /// conntrack's byte counters count, read from the offsets without
    /// touching the frame.
    #[inline]
    pub const fn ip_len(&self) -> u32 {
        if self.l4_offset < self.l3_offset {
            return 0;
        }
        (self.l4_offset - self.l3_offset) as u32 + self.l4_len as u32
    }

    /// A fresh meta for a frame received on `in_port`.
    pub const fn new(in_port: PortId) -> Self {
        PacketMeta {
            in_port,
            domain: 0,
            verdict: Verdict::Pending,
            ethertype: 0,
            vlan_count: 0,
            vlan_id: 0,
            l3_offset: 0,
            l3: L3Kind::Other,
            l4_offset: 0,
            l4_len: 0,
            protocol: 0,
            fragment: false,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::UNSPECIFIED,
            src_port: 0,
            dst_port: 0,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            flow_hash: 0,
        }
    }
}
