//! What workers share: learn events and handed-over frames, each through bounded,
//! lock-free queues (crossbeam `ArrayQueue`). No worker ever takes a lock or
//! touches another worker's tables or rings.
//!
//! Learning: every worker keeps its own copy of the MAC table and reads it without
//! any synchronisation. A worker that learns a new or moved station (or refreshes
//! one after a quarter of the aging time) pushes a [`LearnEvent`] into every other
//! worker's inbox; each worker applies its inbox between bursts. Copies agree
//! within a loop turn or two; until then a frame to a station only just learned
//! elsewhere is flooded, which is what a switch does for an unknown station anyway.
//! A full inbox drops the event (counted): the next frame from the station, or its
//! next periodic refresh, publishes it again. Safe Rust only: the queues do the
//! synchronisation, with release/acquire ordering on every push and pop.
//!
//! The same events also go to one observer inbox, which the control thread
//! drains into its own copy of the MAC table (`crate::fdb_copy`), so `ctl fdb`
//! never asks a worker to walk its table. A full observer inbox drops the event
//! (counted separately); the station's next refresh heals the copy.
//!
//! Handoff: a worker with no socket on a port copies the frame into a buffer from
//! the owning worker's spare pool and pushes it into that worker's mailbox; the
//! owner copies it into its UMEM and transmits it with its own frames. Buffers are
//! allocated once at start and only moved, so the path allocates nothing.

use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_pipeline::{LearnEvent, PortId};

/// Learn events waiting per worker before new ones are dropped.
const INBOX_CAPACITY: usize = 4096;
/// Learn events waiting for the control thread's FDB copy (2 MiB): drained
/// every 50 ms, so about 1.3 million new stations a second before any is lost.
pub const OBSERVER_CAPACITY: usize = 65536;
/// Frames waiting per worker mailbox.
const MAILBOX_CAPACITY: usize = 4096;
/// Bytes per handoff buffer: a whole UMEM frame.
pub const HANDOFF_FRAME_SIZE: usize = 4096;

/// A frame travelling from one worker to the owner of its output port.
#[derive(Debug)]
pub struct Parcel {
    /// Output port.
    pub port: PortId,
    /// Bytes used in `buf`.
    pub len: usize,
    /// The buffer (from the receiving worker's spare pool).
    pub buf: Box<[u8]>,
}

/// One worker's mailbox: parcels for it plus the spare buffers senders fill.
#[derive(Debug)]
struct Mailbox {
    parcels: ArrayQueue<Parcel>,
    spare: ArrayQueue<Box<[u8]>>,
}

/// Everything the workers of one switch share.
#[derive(Debug)]
pub struct Fabric {
    inboxes: Vec<ArrayQueue<LearnEvent>>,
    mailboxes: Vec<Mailbox>,
    learn_dropped: AtomicU64,
    observer: ArrayQueue<LearnEvent>,
    observer_dropped: AtomicU64,
}

impl Fabric {
    /// A fabric for `workers` workers; with `handoff` each gets a mailbox and its
    /// buffers (16 MiB per worker).
    pub fn new(workers: usize, handoff: bool) -> Self {
        let mailboxes = if handoff {
            (0..workers)
                .map(|_| {
                    let spare = ArrayQueue::new(MAILBOX_CAPACITY);
                    for _ in 0..MAILBOX_CAPACITY {
                        let _ = spare.push(vec![0u8; HANDOFF_FRAME_SIZE].into_boxed_slice());
                    }
                    Mailbox {
                        parcels: ArrayQueue::new(MAILBOX_CAPACITY),
                        spare,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Fabric {
            inboxes: (0..workers)
                .map(|_| ArrayQueue::new(INBOX_CAPACITY))
                .collect(),
            mailboxes,
            learn_dropped: AtomicU64::new(0),
            observer: ArrayQueue::new(OBSERVER_CAPACITY),
            observer_dropped: AtomicU64::new(0),
        }
    }

    /// True when workers hand frames to each other (then an idle worker must
    /// look at its mailbox often, since a handed-over frame cannot wake it).
    pub fn has_handoff(&self) -> bool {
        !self.mailboxes.is_empty()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Sends `event` from worker `from` to every other worker and the observer.
    pub fn publish(&self, from: usize, event: LearnEvent) {
        for (index, inbox) in self.inboxes.iter().enumerate() {
            if index != from && inbox.push(event).is_err() {
                self.learn_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.observer.push(event).is_err() {
            self.observer_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the next learn event for the observer (the control thread).
    pub fn next_observed(&self) -> Option<LearnEvent> {
        self.observer.pop()
    }

    /// Learn events the observer lost because its inbox was full.
    pub fn observer_dropped(&self) -> u64 {
        self.observer_dropped.load(Ordering::Relaxed)
    }

    /// Takes the next learn event for worker `to`.
    pub fn next_event(&self, to: usize) -> Option<LearnEvent> {
        self.inboxes[to].pop()
    }

    /// Learn events dropped because an inbox was full.
    pub fn learn_dropped(&self) -> u64 {
        self.learn_dropped.load(Ordering::Relaxed)
    }

    /// Hands `bytes` for `port` to worker `to`; false when its mailbox is full (or
    /// the frame is larger than a buffer), in which case the caller counts a drop.
    pub fn hand_off(&self, to: usize, port: PortId, bytes: &[u8]) -> bool {
        let Some(mailbox) = self.mailboxes.get(to) else {
            return false;
        };
        if bytes.len() > HANDOFF_FRAME_SIZE {
            return false;
        }
        let Some(mut buf) = mailbox.spare.pop() else {
            return false;
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        match mailbox.parcels.push(Parcel {
            port,
            len: bytes.len(),
            buf,
        }) {
            Ok(()) => true,
            Err(parcel) => {
                let _ = mailbox.spare.push(parcel.buf);
                false
            }
        }
    }

    /// Takes the next parcel for worker `to`.
    pub fn next_parcel(&self, to: usize) -> Option<Parcel> {
        self.mailboxes.get(to)?.parcels.pop()
    }

    /// Returns a parcel's buffer to worker `to`'s spare pool once copied out.
    pub fn recycle(&self, to: usize, parcel: Parcel) {
        if let Some(mailbox) = self.mailboxes.get(to) {
            let _ = mailbox.spare.push(parcel.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_pipeline::{MacAddr, Timestamp};

    #[test]
    fn events_reach_every_other_worker_once() {
        let fabric = Fabric::new(3, false);
        let event = LearnEvent {
            domain: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            port: 4,
            at: Timestamp(9),
        };
        fabric.publish(1, event);
        assert_eq!(fabric.next_event(0), Some(event));
        assert_eq!(fabric.next_event(2), Some(event));
        assert_eq!(fabric.next_event(1), None, "not back to the sender");
        assert_eq!(fabric.next_event(0), None);
        assert_eq!(fabric.next_observed(), Some(event), "and to the observer");
        assert_eq!(fabric.next_observed(), None);
    }

    #[test]
    fn full_inbox_drops_and_counts() {
        let fabric = Fabric::new(2, false);
        let event = LearnEvent {
            domain: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            port: 4,
            at: Timestamp(9),
        };
        for _ in 0..INBOX_CAPACITY + 5 {
            fabric.publish(0, event);
        }
        assert_eq!(fabric.learn_dropped(), 5);
        assert_eq!(fabric.observer_dropped(), 0);
        for _ in 0..OBSERVER_CAPACITY {
            fabric.publish(0, event);
        }
        assert_eq!(fabric.observer_dropped(), INBOX_CAPACITY as u64 + 5);
    }

    #[test]
    fn parcels_round_trip_and_buffers_are_recycled() {
        let fabric = Fabric::new(2, true);
        assert!(fabric.hand_off(1, 3, b"frame"));
        let parcel = fabric.next_parcel(1).expect("parcel");
        assert_eq!((parcel.port, &parcel.buf[..parcel.len]), (3, &b"frame"[..]));
        fabric.recycle(1, parcel);
        assert!(
            !fabric.hand_off(1, 3, &vec![0u8; HANDOFF_FRAME_SIZE + 1]),
            "oversize refused"
        );
        // Fill the mailbox: the next hand-off fails instead of blocking or allocating.
        let mut sent = 0;
        while fabric.hand_off(1, 0, b"x") {
            sent += 1;
        }
        assert_eq!(sent, MAILBOX_CAPACITY);
        assert!(
            !Fabric::new(2, false).hand_off(1, 0, b"x"),
            "no mailboxes without handoff"
        );
    }
}
