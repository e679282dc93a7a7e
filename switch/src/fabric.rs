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
//! Neighbours: each worker's router has its own neighbour table, and an ARP
//! answer lands on whichever worker owns the receiving queue, often not the
//! one whose frames wait for it. A router that learns a neighbour from an ARP
//! frame addressed to the switch emits a [`NeighbourEvent`]
//! (`switchyard_pipeline::router` says which frames and why); the worker pushes
//! it into every other worker's neighbour inbox after the batch, and rings
//! their doorbells (a no-op for a worker that is awake). Each worker applies
//! its inbox at the start of its next loop turn: the entry is confirmed and the
//! frames parked for it are sent from an empty batch, traffic or not. The
//! inboxes are bounded: a full one drops the event and the sender counts it
//! (`neighbour_events_dropped`), never waits; the peer is then no worse off
//! than without sharing (it asks again on its next retry, a second later, and
//! that answer is shared again). Events from one worker arrive in order; from
//! several they may interleave, which is harmless because each carries the time
//! it was learned and a table keeps whichever answer is newest. There are only
//! as many events as ARP frames to the switch's addresses, a handful a second.
//!
//! Handoff: a worker with no socket on a port copies the frame into a buffer from
//! the owning worker's spare pool and pushes it into that worker's mailbox; the
//! owner copies it into its UMEM and transmits it with its own frames. Buffers are
//! allocated once at start and only moved, so the path allocates nothing.
//!
//! Waking: an owner that goes to sleep (its sockets parked in epoll) would not
//! see parcels until its sleep ends, so each mailbox has a doorbell (an
//! eventfd in the owner's epoll set) and an `asleep` flag. The owner sets the
//! flag, then looks at its mailbox once more before sleeping; a sender, after
//! pushing a port's batch, rings the doorbell only if the flag was set. A
//! sequentially consistent fence on each side (store flag, fence, look at the
//! queue / push, fence, look at the flag) means either the owner sees the
//! parcel before sleeping or the sender sees the flag and rings: no parcel
//! waits out a sleep, and ringing costs a system call only when the owner
//! really sleeps, never per packet. The same doorbell and check cover the
//! neighbour inbox, so a sleeping worker's parked frames leave as soon as
//! another worker learns their next hop. (Where no eventfd could be made,
//! idle workers sleep at most `crate::backoff::MAX_SLEEP`, 1 ms: harmless
//! next to the second a neighbour's request is retried after.) (Learn events do not ring: a MAC
//! learned elsewhere only spares a flood, and an idle worker applies them
//! within its longest sleep.)

use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use switchyard_drivers::sys::EventFd;
use switchyard_pipeline::{LearnEvent, NeighbourEvent, PortId};

/// Learn events waiting per worker before new ones are dropped.
const INBOX_CAPACITY: usize = 4096;
/// Learn events waiting for the control thread's FDB copy (2 MiB): drained
/// every 50 ms, so about 1.3 million new stations a second before any is lost.
pub const OBSERVER_CAPACITY: usize = 65536;
/// Neighbour events waiting per worker before new ones are dropped: far more
/// than the ARP answers a worker could be waiting for at once (its parking
/// buffers hold frames for 32 next hops with full queues).
const NEIGHBOUR_INBOX_CAPACITY: usize = 1024;
/// Frames waiting per worker mailbox.
const MAILBOX_CAPACITY: usize = 4096;
/// Bytes per handoff buffer: a whole UMEM frame.
pub const HANDOFF_FRAME_SIZE: usize = 4096;

/// A frame travelling from one worker to the owner of its output port.
#[derive(Debug)]
pub struct Parcel {
    /// Output port (a frame to transmit), or the port it was received on (a
    /// frame to process, `process` set).
    pub port: PortId,
    /// The receiver runs the pipeline over it as if it had received it on
    /// `port` (NAT's worker), instead of transmitting it there.
    pub process: bool,
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
    /// Rung by a sender that finds the owner asleep (`None` if no eventfd
    /// could be made: then the owner must not sleep long, see
    /// [`Fabric::wakes_sleepers`]).
    doorbell: Option<EventFd>,
    /// The owner is (about to be) asleep and wants its doorbell rung.
    asleep: AtomicBool,
}

/// Everything the workers of one switch share.
#[derive(Debug)]
pub struct Fabric {
    inboxes: Vec<ArrayQueue<LearnEvent>>,
    neighbour_inboxes: Vec<ArrayQueue<NeighbourEvent>>,
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
                        doorbell: EventFd::new().ok(),
                        asleep: AtomicBool::new(false),
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
            neighbour_inboxes: (0..workers)
                .map(|_| ArrayQueue::new(NEIGHBOUR_INBOX_CAPACITY))
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

    /// True when a sleeping worker is woken by frames handed to it (every
    /// mailbox has its doorbell), so idle workers may sleep long.
    pub fn wakes_sleepers(&self) -> bool {
        self.mailboxes.iter().all(|m| m.doorbell.is_some())
    }

    /// The descriptor worker `to` watches while it sleeps: readable when its
    /// doorbell was rung.
    pub fn doorbell_fd(&self, to: usize) -> Option<std::os::fd::RawFd> {
        Some(self.mailboxes.get(to)?.doorbell.as_ref()?.as_raw_fd())
    }

    /// Worker `me` is about to sleep: from now on senders ring its doorbell.
    /// False (and the flag is withdrawn) when parcels or neighbour events
    /// already wait, so it must not sleep.
    pub fn going_to_sleep(&self, me: usize) -> bool {
        let Some(mailbox) = self.mailboxes.get(me) else {
            return true;
        };
        mailbox.asleep.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let neighbours_waiting = self
            .neighbour_inboxes
            .get(me)
            .is_some_and(|inbox| !inbox.is_empty());
        if mailbox.parcels.is_empty() && !neighbours_waiting {
            true
        } else {
            mailbox.asleep.store(false, Ordering::Relaxed);
            false
        }
    }

    /// Worker `me` is awake again; `rung` says its doorbell was among the
    /// descriptors that woke it (then it is drained).
    pub fn woke(&self, me: usize, rung: bool) {
        if let Some(mailbox) = self.mailboxes.get(me) {
            mailbox.asleep.store(false, Ordering::Relaxed);
            if rung {
                if let Some(doorbell) = &mailbox.doorbell {
                    doorbell.drain();
                }
            }
        }
    }

    /// Wakes worker `to` if it sleeps; called once after handing it a port's
    /// batch of frames or a batch's neighbour events (a fence and a load when
    /// it is awake).
    pub fn ring(&self, to: usize) {
        let Some(mailbox) = self.mailboxes.get(to) else {
            return;
        };
        fence(Ordering::SeqCst);
        if mailbox.asleep.load(Ordering::Relaxed) && mailbox.asleep.swap(false, Ordering::Relaxed) {
            if let Some(doorbell) = &mailbox.doorbell {
                doorbell.ring();
            }
        }
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

    /// Sends `event` from worker `from` to every other worker's neighbour
    /// inbox, ringing none (see [`ring`](Self::ring)); returns how many
    /// inboxes were full and dropped it (the caller counts them).
    pub fn publish_neighbour(&self, from: usize, event: NeighbourEvent) -> usize {
        let mut dropped = 0;
        for (index, inbox) in self.neighbour_inboxes.iter().enumerate() {
            if index != from && inbox.push(event).is_err() {
                dropped += 1;
            }
        }
        dropped
    }

    /// Takes the next neighbour event for worker `to`.
    pub fn next_neighbour_event(&self, to: usize) -> Option<NeighbourEvent> {
        self.neighbour_inboxes.get(to)?.pop()
    }

    /// Hands `bytes` for `port` to worker `to`; false when its mailbox is full (or
    /// the frame is larger than a buffer), in which case the caller counts a drop.
    pub fn hand_off(&self, to: usize, port: PortId, bytes: &[u8]) -> bool {
        self.hand_off_parcel(to, port, false, bytes)
    }

    /// Gives worker `to` a copy of `bytes` received on `in_port`, to run
    /// through its pipeline (NAT runs on one worker); false when its mailbox
    /// is full.
    pub fn hand_off_to_process(&self, to: usize, in_port: PortId, bytes: &[u8]) -> bool {
        self.hand_off_parcel(to, in_port, true, bytes)
    }

    fn hand_off_parcel(&self, to: usize, port: PortId, process: bool, bytes: &[u8]) -> bool {
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
            process,
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

    /// Whether `fd` is readable right now.
    fn rung(fd: std::os::fd::RawFd) -> bool {
        let mut fds = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        switchyard_drivers::sys::wait_readable(&mut fds, std::time::Duration::ZERO);
        fds[0].revents & libc::POLLIN != 0
    }

    #[test]
    fn a_sleeping_owner_is_rung_once_and_an_awake_one_never() {
        let fabric = Fabric::new(2, true);
        assert!(fabric.wakes_sleepers());
        let bell = fabric.doorbell_fd(1).expect("doorbell");
        // Awake: handing over costs no system call and rings nothing.
        assert!(fabric.hand_off(1, 3, b"a"));
        fabric.ring(1);
        assert!(!rung(bell), "rang an awake worker");
        // Parcels already waiting: the owner must not sleep.
        assert!(!fabric.going_to_sleep(1));
        fabric.ring(1);
        assert!(!rung(bell), "the flag was withdrawn");
        let parcel = fabric.next_parcel(1).expect("parcel");
        fabric.recycle(1, parcel);
        // Asleep with an empty mailbox: the next batch rings, once.
        assert!(fabric.going_to_sleep(1));
        assert!(fabric.hand_off(1, 3, b"b"));
        fabric.ring(1);
        assert!(rung(bell), "a sleeping owner was not woken");
        fabric.woke(1, true);
        assert!(!rung(bell), "drained on waking");
        fabric.ring(1);
        assert!(!rung(bell), "rang again after waking");
    }

    fn neighbour(n: u8) -> NeighbourEvent {
        NeighbourEvent {
            domain: 1,
            ip: std::net::Ipv4Addr::new(192, 0, 2, n),
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            at: Timestamp(u64::from(n)),
        }
    }

    #[test]
    fn neighbour_events_reach_every_other_worker_in_order_and_overflow_is_counted() {
        let fabric = Fabric::new(3, true);
        assert_eq!(fabric.publish_neighbour(1, neighbour(1)), 0);
        assert_eq!(fabric.publish_neighbour(1, neighbour(2)), 0);
        for to in [0, 2] {
            assert_eq!(fabric.next_neighbour_event(to), Some(neighbour(1)));
            assert_eq!(fabric.next_neighbour_event(to), Some(neighbour(2)));
            assert_eq!(fabric.next_neighbour_event(to), None);
        }
        assert_eq!(
            fabric.next_neighbour_event(1),
            None,
            "not back to the sender"
        );
        assert_eq!(fabric.next_neighbour_event(9), None, "no such worker");
        // Full inboxes drop (one per full peer) instead of blocking.
        for _ in 0..NEIGHBOUR_INBOX_CAPACITY {
            assert_eq!(fabric.publish_neighbour(0, neighbour(3)), 0);
        }
        assert_eq!(fabric.publish_neighbour(0, neighbour(4)), 2);
        assert_eq!(fabric.next_neighbour_event(1), Some(neighbour(3)));
        assert_eq!(
            fabric.publish_neighbour(0, neighbour(4)),
            1,
            "room at 1 again"
        );
        assert!(fabric.next_observed().is_none(), "not learn events");
    }

    #[test]
    fn a_worker_with_neighbour_events_waiting_does_not_sleep_and_a_sleeping_one_is_rung() {
        let fabric = Fabric::new(2, true);
        let bell = fabric.doorbell_fd(1).expect("doorbell");
        fabric.publish_neighbour(0, neighbour(1));
        assert!(!fabric.going_to_sleep(1), "an event waits");
        fabric.ring(1);
        assert!(!rung(bell), "the flag was withdrawn");
        assert!(fabric.next_neighbour_event(1).is_some());
        assert!(fabric.going_to_sleep(1));
        fabric.publish_neighbour(0, neighbour(2));
        fabric.ring(1);
        assert!(rung(bell), "a sleeping worker was not woken for an event");
        fabric.woke(1, true);
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
