//! The conntrack table against a brute-force reference (a `Vec` of entries
//! scanned linearly, the same rules written as directly as possible) over
//! random sequences of UDP datagrams both ways, ICMP echo requests and
//! replies, TCP SYNs and complete handshakes, NAT inserts with their own
//! reply tuples, reply changes, removals, time passing and budgeted expiry,
//! in a table small enough to be full most of the time: every verdict, every
//! removal reported (and its order), every lookup, the counters and the dump
//! (with each entry's age and its packets and bytes each way) agree.
//!
//! The rules: an entry lives until `last packet + its class's timeout`; a
//! packet for an entry past that finds it gone (removed as expired); a new
//! flow in a full table takes the slot of the most overdue expired entry,
//! else evicts the least recently seen evictable one (ties: lower class,
//! then least recently refreshed), else is refused; expiry removes the most
//! overdue first.

use proptest::prelude::*;
use std::net::Ipv4Addr;
use switchyard_pipeline::conntrack::{
    ConntrackConfig, ConntrackError, ConntrackTable, Direction, EntryId, Invalid, Packet,
    RemoveReason, Removed, TcpFlags, TcpSegment, TimeoutClass, Timeouts, Track, Tuple,
    REFRESH_GRANULARITY,
};
use switchyard_pipeline::Timestamp;

const MAX: usize = 6;
const NAT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const SEC: u64 = 1_000_000_000;

fn addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + n % 3)
}

fn port(n: u8) -> u16 {
    1 + u16::from(n % 3)
}

#[derive(Clone, Copy, Debug)]
struct Flow(u8, u8, u8, u8);

impl Flow {
    fn udp(self) -> Tuple {
        Tuple::udp(addr(self.0), port(self.1), addr(self.2), port(self.3))
    }
    fn tcp(self) -> Tuple {
        Tuple::tcp(addr(self.0), port(self.1), addr(self.2), port(self.3))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Udp(Flow),
    Echo {
        src: u8,
        dst: u8,
        id: u8,
        request: bool,
    },
    Syn(Flow),
    Connect(Flow),
    Nat {
        flow: Flow,
        nat_port: u8,
    },
    SetReply {
        pick: usize,
        nat_port: u8,
    },
    Remove {
        pick: usize,
    },
    Lookup {
        flow: Flow,
        protocol: u8,
    },
    Wait {
        secs: u64,
    },
    WaitMs {
        ms: u64,
    },
    Expire {
        budget: usize,
    },
}

fn flow() -> impl Strategy<Value = Flow> {
    (0u8..3, 0u8..3, 0u8..3, 0u8..3).prop_map(|(a, b, c, d)| Flow(a, b, c, d))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => flow().prop_map(Op::Udp),
        2 => (0u8..3, 0u8..3, 0u8..3, any::<bool>())
            .prop_map(|(src, dst, id, request)| Op::Echo { src, dst, id, request }),
        2 => flow().prop_map(Op::Syn),
        2 => flow().prop_map(Op::Connect),
        2 => (flow(), 0u8..4).prop_map(|(flow, nat_port)| Op::Nat { flow, nat_port }),
        1 => (any::<usize>(), 0u8..4).prop_map(|(pick, nat_port)| Op::SetReply { pick, nat_port }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (flow(), prop_oneof![Just(6u8), Just(17u8), Just(1u8)])
            .prop_map(|(flow, protocol)| Op::Lookup { flow, protocol }),
        3 => prop_oneof![Just(0u64), 0u64..5, 25u64..35, 100u64..130].prop_map(|secs| Op::Wait { secs }),
        1 => (0u64..3_000).prop_map(|ms| Op::WaitMs { ms }),
        2 => (0usize..4).prop_map(|budget| Op::Expire { budget }),
    ]
}

fn nat_reply(original: &Tuple, nat_port: u8) -> Tuple {
    Tuple::udp(
        original.dst,
        original.dst_port,
        NAT,
        1000 + u16::from(nat_port),
    )
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Udp,
    EchoRequest,
    EchoReply,
    TcpSyn,
}

#[derive(Clone, Debug)]
struct RefEntry {
    id: Option<EntryId>,
    original: Tuple,
    reply: Tuple,
    class: TimeoutClass,
    last_seen: u64,
    seq: u64,
    seen_reply: bool,
    /// When it was created.
    created: u64,
    /// (packets, bytes), original then reply.
    counters: [(u64, u64); 2],
}

#[derive(Default, Debug)]
struct Model {
    entries: Vec<RefEntry>,
    now: u64,
    seq: u64,
    removed: Vec<Removed>,
    inserted: u64,
    expired: u64,
    early_dropped: u64,
    removed_count: u64,
    full: u64,
    invalid: u64,
}

fn timeout(class: TimeoutClass) -> u64 {
    u64::from(Timeouts::LINUX.secs(class)) * SEC
}

impl Model {
    fn deadline(e: &RefEntry) -> u64 {
        e.last_seen + timeout(e.class)
    }

    fn live(&self, e: &RefEntry) -> bool {
        Self::deadline(e) > self.now
    }

    fn find(&self, t: &Tuple) -> Option<(usize, Direction)> {
        self.entries.iter().enumerate().find_map(|(i, e)| {
            if e.original == *t {
                Some((i, Direction::Original))
            } else if e.reply == *t {
                Some((i, Direction::Reply))
            } else {
                None
            }
        })
    }

    fn remove(&mut self, i: usize, reason: RemoveReason) {
        let e = self.entries.remove(i);
        match reason {
            RemoveReason::Expired => self.expired += 1,
            RemoveReason::EarlyDrop => self.early_dropped += 1,
            RemoveReason::Removed => self.removed_count += 1,
            RemoveReason::Reopened => unreachable!(),
        }
        self.removed.push(Removed {
            id: e.id.expect("ids are learnt at creation"),
            original: e.original,
            reply: e.reply,
            reason,
        });
    }

    /// A packet refreshes entry `i` under `class`: unless it is still in
    /// that class and was refreshed less than the granularity ago.
    fn touch(&mut self, i: usize, class: TimeoutClass) {
        let e = &self.entries[i];
        if e.class == class && self.now - e.last_seen < REFRESH_GRANULARITY {
            return;
        }
        self.seq += 1;
        let (now, seq) = (self.now, self.seq);
        let e = &mut self.entries[i];
        e.class = class;
        e.last_seen = now;
        e.seq = seq;
    }

    fn invalid(&mut self, reason: Invalid) -> Track {
        self.invalid += 1;
        Track::Invalid(reason)
    }

    fn most_overdue(&self) -> Option<usize> {
        (0..self.entries.len())
            .filter(|&i| !self.live(&self.entries[i]))
            .min_by_key(|&i| {
                let e = &self.entries[i];
                (Self::deadline(e), e.class.index(), e.seq)
            })
    }

    fn oldest_evictable(&self) -> Option<usize> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].class.evictable())
            .min_by_key(|&i| {
                let e = &self.entries[i];
                (e.last_seen, e.class.index(), e.seq)
            })
    }

    /// A new entry; its id is learnt from the table's answer (`None` stands
    /// for `New` with that id).
    fn create(
        &mut self,
        kind: Kind,
        original: Tuple,
        reply: Tuple,
        bytes: u32,
    ) -> Result<Option<Track>, ConntrackError> {
        let class = match kind {
            Kind::Udp => TimeoutClass::UdpUnreplied,
            Kind::EchoRequest => TimeoutClass::Icmp,
            Kind::TcpSyn => TimeoutClass::TcpSynSent,
            Kind::EchoReply => return Ok(Some(self.invalid(Invalid::EchoReplyUnmatched))),
        };
        for t in [original, reply] {
            if let Some((i, _)) = self.find(&t) {
                if self.live(&self.entries[i]) {
                    return Err(ConntrackError::TupleInUse(t));
                }
                self.remove(i, RemoveReason::Expired);
            }
        }
        if self.entries.len() == MAX {
            if let Some(i) = self.most_overdue() {
                self.remove(i, RemoveReason::Expired);
            } else if let Some(i) = self.oldest_evictable() {
                self.remove(i, RemoveReason::EarlyDrop);
            } else {
                self.full += 1;
                return Ok(Some(Track::Full));
            }
        }
        self.seq += 1;
        self.entries.push(RefEntry {
            id: None,
            original,
            reply,
            class,
            last_seen: self.now,
            seq: self.seq,
            seen_reply: false,
            created: self.now,
            counters: [(1, u64::from(bytes)), (0, 0)],
        });
        self.inserted += 1;
        Ok(None)
    }

    /// Counts a packet of `bytes` going `dir` on entry `i`.
    fn count(&mut self, i: usize, dir: Direction, bytes: u32) {
        let c = &mut self.entries[i].counters[usize::from(dir == Direction::Reply)];
        c.0 += 1;
        c.1 += u64::from(bytes);
    }

    fn track(&mut self, kind: Kind, tuple: Tuple, bytes: u32) -> Option<Track> {
        if let Some((i, dir)) = self.find(&tuple) {
            if self.live(&self.entries[i]) {
                self.count(i, dir, bytes);
                let e = &mut self.entries[i];
                let id = e.id.unwrap();
                if dir == Direction::Reply {
                    e.seen_reply = true;
                }
                let class = match kind {
                    Kind::Udp if e.seen_reply => TimeoutClass::UdpAssured,
                    Kind::Udp => TimeoutClass::UdpUnreplied,
                    Kind::EchoRequest | Kind::EchoReply => TimeoutClass::Icmp,
                    Kind::TcpSyn => unreachable!("SYNs are only sent for new tuples"),
                };
                self.touch(i, class);
                return Some(Track::Existing { id, dir });
            }
            self.remove(i, RemoveReason::Expired);
        }
        match self.create(kind, tuple, tuple.invert(), bytes) {
            Ok(t) => t,
            Err(_) => Some(self.invalid(Invalid::TupleClash)),
        }
    }

    fn lookup(&self, t: &Tuple) -> Option<(EntryId, Direction)> {
        let (i, dir) = self.find(t)?;
        let e = &self.entries[i];
        self.live(e).then(|| (e.id.unwrap(), dir))
    }
}

struct Harness {
    table: ConntrackTable,
    model: Model,
    removed: Vec<Removed>,
    /// Packets sent so far (each gets its own length).
    sent: u32,
}

impl Harness {
    fn now(&self) -> Timestamp {
        Timestamp(self.model.now)
    }

    /// The next packet's IP length: 20 to 1500, varying.
    fn bytes(&mut self) -> u32 {
        self.sent += 1;
        20 + self.sent.wrapping_mul(2_654_435_761) % 1481
    }

    /// Compares a verdict; on New, teaches the model the table's id.
    fn agree(&mut self, got: Track, want: Option<Track>) -> Result<(), TestCaseError> {
        match (got, want) {
            (Track::New(id), None) => {
                prop_assert!(
                    self.model.entries.iter().all(|e| e.id != Some(id)),
                    "id {id:?} reused while live"
                );
                let last = self.model.entries.last_mut().unwrap();
                prop_assert!(last.id.is_none());
                last.id = Some(id);
            }
            (got, want) => prop_assert_eq!(Some(got), want),
        }
        Ok(())
    }

    fn track(&mut self, kind: Kind, tuple: Tuple, p: Packet) -> Result<Track, TestCaseError> {
        let bytes = self.bytes();
        let got = self.table.track(&p, bytes, self.now(), &mut self.removed);
        let want = self.model.track(kind, tuple, bytes);
        self.agree(got, want)?;
        Ok(got)
    }

    fn pick(&self, pick: usize) -> Option<usize> {
        (!self.model.entries.is_empty()).then(|| pick % self.model.entries.len())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now();
        match *op {
            Op::Udp(f) => {
                let t = f.udp();
                self.track(Kind::Udp, t, Packet::Udp(t))?;
            }
            Op::Echo {
                src,
                dst,
                id,
                request,
            } => {
                let id = 1 + u16::from(id);
                if request {
                    let t = Tuple::echo_request(addr(src), addr(dst), id);
                    self.track(Kind::EchoRequest, t, Packet::EchoRequest(t))?;
                } else {
                    let t = Tuple::echo_reply(addr(src), addr(dst), id);
                    self.track(Kind::EchoReply, t, Packet::EchoReply(t))?;
                }
            }
            Op::Syn(f) | Op::Connect(f) => {
                let t = f.tcp();
                // Only new tuples, and no connection to itself (its
                // SYN-ACK would carry the SYN's own tuple).
                if t == t.invert()
                    || self.model.lookup(&t).is_some()
                    || self.model.lookup(&t.invert()).is_some()
                {
                    return Ok(());
                }
                let syn = Packet::Tcp(t, TcpSegment::new(TcpFlags::SYN, 100, 0, 1000, 0));
                let first = self.track(Kind::TcpSyn, t, syn)?;
                if let (Op::Connect(_), Track::New(id)) = (op, first) {
                    let ack = TcpFlags::ACK;
                    let synack = Packet::Tcp(
                        t.invert(),
                        TcpSegment::new(TcpFlags::SYN | ack, 900, 101, 1000, 0),
                    );
                    let synack_bytes = self.bytes();
                    let got = self
                        .table
                        .track(&synack, synack_bytes, now, &mut self.removed);
                    prop_assert_eq!(
                        got,
                        Track::Existing {
                            id,
                            dir: Direction::Reply
                        }
                    );
                    let third = Packet::Tcp(t, TcpSegment::new(ack, 101, 901, 1000, 0));
                    let third_bytes = self.bytes();
                    let got = self
                        .table
                        .track(&third, third_bytes, now, &mut self.removed);
                    prop_assert_eq!(
                        got,
                        Track::Existing {
                            id,
                            dir: Direction::Original
                        }
                    );
                    let i = self.model.find(&t).unwrap().0;
                    self.model.count(i, Direction::Reply, synack_bytes);
                    self.model.count(i, Direction::Original, third_bytes);
                    self.model.entries[i].seen_reply = true;
                    self.model.touch(i, TimeoutClass::TcpEstablished);
                }
            }
            Op::Nat { flow, nat_port } => {
                let t = flow.udp();
                let reply = nat_reply(&t, nat_port);
                let bytes = self.bytes();
                let got = self
                    .table
                    .insert(&Packet::Udp(t), reply, bytes, now, &mut self.removed);
                let want = self.model.create(Kind::Udp, t, reply, bytes);
                match (got, want) {
                    (Ok(got), Ok(want)) => self.agree(got, want)?,
                    (got, want) => prop_assert_eq!(got.map(Some), want),
                }
            }
            Op::SetReply { pick, nat_port } => {
                let Some(i) = self.pick(pick) else {
                    return Ok(());
                };
                let e = self.model.entries[i].clone();
                let reply = nat_reply(&e.original, nat_port);
                let got = self
                    .table
                    .set_reply(e.id.unwrap(), reply, now, &mut self.removed);
                let want = if !self.model.live(&e) {
                    self.model.remove(i, RemoveReason::Expired);
                    Err(ConntrackError::NoSuchEntry)
                } else if e.seen_reply {
                    Err(ConntrackError::AlreadyReplied)
                } else if reply.protocol != e.original.protocol {
                    Err(ConntrackError::ProtocolMismatch)
                } else if reply == e.reply {
                    Ok(())
                } else {
                    let mut result = Ok(());
                    if reply != e.original {
                        if let Some((j, _)) = self.model.find(&reply) {
                            if self.model.live(&self.model.entries[j]) {
                                result = Err(ConntrackError::TupleInUse(reply));
                            } else {
                                self.model.remove(j, RemoveReason::Expired);
                            }
                        }
                    }
                    if result.is_ok() {
                        let i = self.model.find(&e.original).unwrap().0;
                        self.model.entries[i].reply = reply;
                    }
                    result
                };
                prop_assert_eq!(got, want);
            }
            Op::Remove { pick } => {
                let Some(i) = self.pick(pick) else {
                    return Ok(());
                };
                let id = self.model.entries[i].id.unwrap();
                prop_assert_eq!(self.table.remove(id, &mut self.removed), Ok(()));
                self.model.remove(i, RemoveReason::Removed);
                prop_assert_eq!(
                    self.table.remove(id, &mut self.removed),
                    Err(ConntrackError::NoSuchEntry)
                );
            }
            Op::Lookup { flow, protocol } => {
                let t = Tuple {
                    protocol,
                    ..flow.udp()
                };
                prop_assert_eq!(self.table.lookup(&t, now), self.model.lookup(&t));
            }
            Op::Wait { secs } => self.model.now += secs * SEC,
            Op::WaitMs { ms } => self.model.now += ms * 1_000_000,
            Op::Expire { budget } => {
                let n = self.table.expire(now, budget, &mut self.removed);
                let mut want = 0;
                while want < budget {
                    let Some(i) = self.model.most_overdue() else {
                        break;
                    };
                    self.model.remove(i, RemoveReason::Expired);
                    want += 1;
                }
                prop_assert_eq!(n, want);
            }
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<(), TestCaseError> {
        prop_assert_eq!(&self.removed, &self.model.removed);
        self.removed.clear();
        self.model.removed.clear();
        let m = &self.model;
        let s = self.table.stats();
        prop_assert_eq!(s.entries, m.entries.len());
        prop_assert_eq!(
            (
                s.inserted,
                s.expired,
                s.early_dropped,
                s.removed,
                s.full,
                s.invalid.total()
            ),
            (
                m.inserted,
                m.expired,
                m.early_dropped,
                m.removed_count,
                m.full,
                m.invalid
            )
        );
        prop_assert_eq!(
            s.evictable,
            m.entries.iter().filter(|e| e.class.evictable()).count()
        );
        let mut dump: Vec<_> = self
            .table
            .entries(self.now())
            .map(|e| {
                (
                    e.id,
                    e.original,
                    e.reply,
                    e.class,
                    e.deadline.0,
                    e.seen_reply,
                    (e.created.0, e.age_secs),
                    [
                        (e.counters.original.packets, e.counters.original.bytes),
                        (e.counters.reply.packets, e.counters.reply.bytes),
                    ],
                )
            })
            .collect();
        dump.sort();
        let mut want: Vec<_> = m
            .entries
            .iter()
            .filter(|e| m.live(e))
            .map(|e| {
                (
                    e.id.unwrap(),
                    e.original,
                    e.reply,
                    e.class,
                    Model::deadline(e),
                    e.seen_reply,
                    (e.created, (m.now - e.created) / SEC),
                    e.counters,
                )
            })
            .collect();
        want.sort();
        prop_assert_eq!(dump, want);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_table_follows_the_reference(ops in prop::collection::vec(op(), 1..150)) {
        let mut h = Harness {
            table: ConntrackTable::with_seed(
                ConntrackConfig { max_entries: MAX, timeouts: Timeouts::LINUX },
                3,
            ),
            model: Model { now: 1000 * SEC, ..Model::default() },
            removed: Vec::new(),
            sent: 0,
        };
        for op in &ops {
            h.run(op)?;
            prop_assert!(h.table.len() <= MAX);
        }
    }
}

/// A connection established at `now` between 10.0.0.1:1000 and 10.0.0.2:80
/// (client ISN 100, server ISN 5000, windows 1000 unscaled).
fn established(now: Timestamp) -> (ConntrackTable, Tuple) {
    let mut ct = ConntrackTable::with_seed(
        ConntrackConfig {
            max_entries: 4,
            timeouts: Timeouts::LINUX,
        },
        5,
    );
    let t = Tuple::tcp(addr(0), 1000, addr(1), 80);
    let ack = TcpFlags::ACK;
    for p in [
        Packet::Tcp(t, TcpSegment::new(TcpFlags::SYN, 100, 0, 1000, 0)),
        Packet::Tcp(
            t.invert(),
            TcpSegment::new(TcpFlags::SYN | ack, 5000, 101, 1000, 0),
        ),
        Packet::Tcp(t, TcpSegment::new(ack, 101, 5001, 1000, 0)),
    ] {
        ct.track(&p, 60, now, &mut Vec::new());
    }
    (ct, t)
}

proptest! {
    /// Any segment, any flags, sequence and ack near or far from the
    /// connection's: never a panic, and an INVALID one changes nothing.
    #[test]
    fn invalid_segments_change_nothing(
        segments in prop::collection::vec(
            (any::<bool>(), any::<u8>(), -300_000i64..300_000, -300_000i64..300_000,
             any::<u16>(), 0u32..3000, any::<bool>()),
            1..60,
        )
    ) {
        let now = Timestamp::from_secs(50);
        let (mut ct, t) = established(now);
        let mut removed = Vec::new();
        let (mut cseq, mut sseq) = (101u32, 5001u32);
        for (reply, flags, dseq, dack, window, len, in_step) in segments {
            let (tuple, seq, ack) = if reply {
                (t.invert(), sseq, cseq)
            } else {
                (t, cseq, sseq)
            };
            // Half the time exactly in step, else anywhere around.
            let (seq, ack) = if in_step {
                (seq, ack)
            } else {
                (seq.wrapping_add(dseq as u32), ack.wrapping_add(dack as u32))
            };
            let segment = TcpSegment::new(flags, seq, ack, window, len);
            let before: Vec<_> = ct.entries(now).collect();
            let bytes = 40 + len;
            let verdict = ct.track(&Packet::Tcp(tuple, segment), bytes, now, &mut removed);
            if let Track::Invalid(_) = verdict {
                let after: Vec<_> = ct.entries(now).collect();
                prop_assert_eq!(before, after);
            } else if let Track::Existing { id, dir } = verdict {
                // Counted once, its way only.
                let was = before.iter().find(|e| e.id == id).expect("it was there");
                let is = ct.get(id, now).expect("still there");
                let (c, w) = (is.counters.get(dir), was.counters.get(dir));
                prop_assert_eq!((c.packets, c.bytes), (w.packets + 1, w.bytes + u64::from(bytes)));
                prop_assert_eq!(
                    is.counters.get(dir.opposite()),
                    was.counters.get(dir.opposite())
                );
                prop_assert_eq!(is.created, was.created);
            }
            if !matches!(verdict, Track::Invalid(_)) && in_step {
                let end = segment.end();
                if reply { sseq = end } else { cseq = end }
            }
            prop_assert!(ct.len() <= 4);
            let s = ct.stats();
            prop_assert_eq!(
                s.entries as u64,
                s.inserted - s.expired - s.early_dropped - s.removed - s.reopened
            );
        }
    }

    /// Frames of every tracked kind with random bytes changed anywhere: the
    /// parse stage and conntrack never panic.
    #[test]
    fn mangled_frames_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        kind in 0usize..4,
    ) {
        use etherparse::PacketBuilder;
        let base = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            64,
        );
        let mut frame = Vec::new();
        match kind {
            0 => base.tcp(1, 2, 3, 4).syn().write(&mut frame, &[0; 16]),
            1 => base.udp(1, 2).write(&mut frame, &[0; 16]),
            2 => base.icmpv4_echo_request(7, 1).write(&mut frame, &[0; 16]),
            _ => base.icmpv4_raw(3, 3, [0; 4]).write(
                &mut frame,
                &[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, 0, 2, 0, 1, 0, 8, 0, 0],
            ),
        }
        .unwrap();
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let mut frames = vec![frame];
        let mut metas = vec![switchyard_pipeline::PacketMeta::new(0)];
        switchyard_pipeline::parse::parse_stage(&mut frames, &mut metas);
        let mut ct = ConntrackTable::with_seed(
            ConntrackConfig { max_entries: 2, timeouts: Timeouts::LINUX },
            9,
        );
        if let Ok(Some(p)) = Packet::classify(&frames[0], &metas[0]) {
            let now = Timestamp::from_secs(1);
            let mut removed = Vec::new();
            let _ = ct.track(&p, 60, now, &mut removed);
            let _ = ct.track(&p, 60, now, &mut removed);
        }
    }
}
