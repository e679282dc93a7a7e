//! Frames waiting for their next hop's MAC: copies of routed frames, kept in a
//! fixed set of buffers owned by the router until the neighbour's ARP answer
//! comes (or the entry fails).
//!
//! Copies rather than the frames themselves: a held frame would pin a buffer
//! of the worker's pool (and of its port's UMEM) across bursts for up to the
//! neighbour table's retry time; copying the few frames of a connection's
//! first round trip costs nothing that matters and keeps the pool's
//! accounting per burst. The buffers are allocated once; a frame arriving
//! while all are taken, or too long for one, is dropped and counted by the
//! caller.

use crate::frame::{DomainId, PortId};

/// Buffers per router (a worker's): with [`crate::neighbour::QUEUE_PER_NEIGHBOUR`]
/// frames each, 32 next hops can be resolved at once with full queues.
pub const SLOTS: usize = 128;
/// Bytes per buffer: a 1500-byte MTU frame with its Ethernet header and a VLAN
/// tag, rounded up. Longer frames are not held.
pub const SLOT_BYTES: usize = 1536;

/// Index of a buffer; [`NO_SLOT`] stands for "no buffer was free".
pub type Slot = u16;
/// The handle given to the neighbour table when no buffer was free: the frame
/// was dropped, and releasing it frees nothing.
pub const NO_SLOT: Slot = Slot::MAX;

/// What a held frame needs when it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Bytes in the buffer.
    pub len: u16,
    /// The port it came in on (floods never go back there).
    pub in_port: PortId,
    /// The bridge domain it leaves in.
    pub domain: DomainId,
}

/// The buffers (see the module docs).
#[derive(Clone, Debug)]
pub struct Parking {
    bytes: Vec<u8>,
    held: Vec<Held>,
    free: Vec<Slot>,
}

impl Default for Parking {
    fn default() -> Self {
        Self::new()
    }
}

impl Parking {
    /// [`SLOTS`] free buffers.
    pub fn new() -> Self {
        Parking {
            bytes: vec![0; SLOTS * SLOT_BYTES],
            held: vec![Held::default(); SLOTS],
            free: (0..SLOTS as Slot).rev().collect(),
        }
    }

    /// Takes a free buffer, or [`NO_SLOT`].
    #[inline]
    pub fn take(&mut self) -> Slot {
        self.free.pop().unwrap_or(NO_SLOT)
    }

    /// Gives `slot` back (a no-op for [`NO_SLOT`]).
    #[inline]
    pub fn give_back(&mut self, slot: Slot) {
        if usize::from(slot) < SLOTS && self.free.len() < SLOTS {
            self.free.push(slot);
        }
    }

    /// Copies `frame` into `slot`; false (nothing kept) for [`NO_SLOT`] or a
    /// frame longer than [`SLOT_BYTES`].
    pub fn fill(&mut self, slot: Slot, frame: &[u8], in_port: PortId, domain: DomainId) -> bool {
        let s = usize::from(slot);
        if s >= SLOTS || frame.len() > SLOT_BYTES {
            return false;
        }
        self.bytes[s * SLOT_BYTES..s * SLOT_BYTES + frame.len()].copy_from_slice(frame);
        self.held[s] = Held {
            len: frame.len() as u16,
            in_port,
            domain,
        };
        true
    }

    /// The frame held in `slot` and what it needs, if `slot` is a buffer.
    pub fn get(&self, slot: Slot) -> Option<(Held, &[u8])> {
        let s = usize::from(slot);
        let held = *self.held.get(s)?;
        let start = s * SLOT_BYTES;
        Some((held, &self.bytes[start..start + usize::from(held.len)]))
    }

    /// Buffers free now.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_taken_filled_and_given_back() {
        let mut p = Parking::new();
        let s = p.take();
        assert!(p.fill(s, b"frame", 3, 4));
        let (held, bytes) = p.get(s).unwrap();
        assert_eq!((held.in_port, held.domain, bytes), (3, 4, &b"frame"[..]));
        assert!(!p.fill(s, &[0; SLOT_BYTES + 1], 0, 0), "too long");
        p.give_back(s);
        assert_eq!(p.free_slots(), SLOTS);
        let all: Vec<_> = (0..SLOTS).map(|_| p.take()).collect();
        assert!(all.iter().all(|&s| s != NO_SLOT));
        assert_eq!(p.take(), NO_SLOT, "exhausted");
        assert!(!p.fill(NO_SLOT, b"x", 0, 0));
        p.give_back(NO_SLOT);
        assert_eq!(p.free_slots(), 0);
    }
}
