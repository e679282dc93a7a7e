//! Connection tracking in memory, from frames built by etherparse through the
//! parse stage to the table: the TCP handshake, data, FIN close, TIME_WAIT
//! reopened by a new SYN, RST; out-of-window and bad-flag segments INVALID;
//! UDP unreplied then assured with their timeouts; ICMP echo; ICMP errors
//! matched to the UDP or TCP flow they quote; a NAT-style entry with its own
//! reply tuple found from both sides; expiry with a budget; packets and
//! bytes counted each way, and the age.

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use switchyard_pipeline::conntrack::{
    quoted_tuple, ConntrackConfig, ConntrackError, ConntrackTable, Direction, DirectionCounters,
    FlowState, Invalid, Packet, RemoveReason, Removed, TcpFlags, TcpState, TimeoutClass, Track,
    Tuple,
};
use switchyard_pipeline::parse::parse_stage;
use switchyard_pipeline::{DropReason, PacketMeta, Timestamp, Verdict};

const A: [u8; 4] = [10, 1, 0, 5];
const B: [u8; 4] = [192, 0, 2, 80];
/// The NAT's outside address.
const N: [u8; 4] = [192, 0, 2, 10];
/// A router on the way.
const R: [u8; 4] = [10, 1, 0, 1];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// One TCP segment as a frame: `flags` from `TcpFlags`, `options` raw.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    payload: usize,
    options: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, window);
    if flags & TcpFlags::SYN != 0 {
        b = b.syn();
    }
    if flags & TcpFlags::ACK != 0 {
        b = b.ack(ack);
    }
    if flags & TcpFlags::FIN != 0 {
        b = b.fin();
    }
    if flags & TcpFlags::RST != 0 {
        b = b.rst();
    }
    if flags & TcpFlags::PSH != 0 {
        b = b.psh();
    }
    if flags & TcpFlags::URG != 0 {
        b = b.urg(0);
    }
    if !options.is_empty() {
        b = b.options_raw(options).unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x61; payload]).unwrap();
    out
}

fn udp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, b"query").unwrap();
    out
}

fn echo_frame(src: [u8; 4], dst: [u8; 4], id: u16, request: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64);
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let mut out = Vec::new();
    b.write(&mut out, b"ping").unwrap();
    out
}

/// An ICMP error from `src` to `dst` quoting the IPv4 header and first 8
/// bytes of `about` (a frame).
fn icmp_error(
    src: [u8; 4],
    dst: [u8; 4],
    kind: u8,
    code: u8,
    rest: [u8; 4],
    about: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(src, dst, 64)
        .icmpv4_raw(kind, code, rest);
    let mut out = Vec::new();
    b.write(&mut out, &about[14..14 + 28]).unwrap();
    out
}

/// The packet in `frame`, as the parse stage and conntrack read it.
fn classify(frame: &[u8]) -> Result<Option<Packet>, Invalid> {
    let mut frames = vec![frame.to_vec()];
    let mut metas = vec![PacketMeta::new(0)];
    parse_stage(&mut frames, &mut metas);
    assert_eq!(
        metas[0].verdict,
        Verdict::Pending,
        "the parse stage dropped it"
    );
    Packet::classify(&frames[0], &metas[0])
}

fn packet(frame: &[u8]) -> Packet {
    classify(frame).expect("readable").expect("tracked")
}

/// The IP length of the packet in `frame` (what the byte counters count).
fn ip_len(frame: &[u8]) -> u32 {
    let mut frames = vec![frame.to_vec()];
    let mut metas = vec![PacketMeta::new(0)];
    parse_stage(&mut frames, &mut metas);
    metas[0].ip_len()
}

struct Ct {
    table: ConntrackTable,
    removed: Vec<Removed>,
    now: Timestamp,
}

impl Ct {
    fn new() -> Ct {
        Ct::sized(1024)
    }

    fn sized(max_entries: usize) -> Ct {
        Ct {
            table: ConntrackTable::with_seed(
                ConntrackConfig {
                    max_entries,
                    ..ConntrackConfig::default()
                },
                1,
            ),
            removed: Vec::with_capacity(64),
            now: Timestamp::from_secs(1000),
        }
    }

    fn track(&mut self, frame: &[u8]) -> Track {
        let p = packet(frame);
        self.table
            .track(&p, ip_len(frame), self.now, &mut self.removed)
    }

    fn wait(&mut self, secs: u64) {
        self.now = Timestamp(self.now.0 + secs * 1_000_000_000);
    }

    fn entry(&self, track: Track) -> switchyard_pipeline::conntrack::ConntrackEntry {
        let (id, _) = track.entry().expect("an entry");
        self.table.get(id, self.now).expect("live")
    }
}

/// The client's side: A:40000 to B:22.
const CLIENT: ([u8; 4], u16) = (A, 40000);
const SERVER: ([u8; 4], u16) = (B, 22);
const F_SYN: u8 = TcpFlags::SYN;
const F_ACK: u8 = TcpFlags::ACK;
const F_FIN: u8 = TcpFlags::FIN;
const F_RST: u8 = TcpFlags::RST;
const F_PSH: u8 = TcpFlags::PSH;
/// SYN options: MSS 1460, SACK permitted, window scale 7.
const SYN_OPTIONS: [u8; 12] = [2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7, 1, 1];

/// A handshake from the client (ISN 1000) to the server (ISN 9000); returns
/// the entry's verdict for the SYN.
fn handshake(ct: &mut Ct) -> Track {
    let syn = ct.track(&tcp_frame(
        CLIENT,
        SERVER,
        F_SYN,
        1000,
        0,
        64240,
        0,
        &SYN_OPTIONS,
    ));
    let Track::New(id) = syn else {
        panic!("SYN: {syn:?}");
    };
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::SynSent));
    assert_eq!(
        ct.track(&tcp_frame(
            SERVER,
            CLIENT,
            F_SYN | F_ACK,
            9000,
            1001,
            65160,
            0,
            &SYN_OPTIONS
        )),
        Track::Existing {
            id,
            dir: Direction::Reply
        }
    );
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::SynRecv));
    assert!(!ct.entry(syn).assured);
    assert_eq!(
        ct.track(&tcp_frame(CLIENT, SERVER, F_ACK, 1001, 9001, 502, 0, &[])),
        Track::Existing {
            id,
            dir: Direction::Original
        }
    );
    syn
}

#[test]
fn tcp_handshake_data_close_and_time_wait_reopen() {
    let mut ct = Ct::new();
    let syn = handshake(&mut ct);
    let e = ct.entry(syn);
    assert_eq!(e.state, FlowState::Tcp(TcpState::Established));
    assert!(e.assured && e.seen_reply);
    assert_eq!(
        (e.class, e.expires_in_secs),
        (TimeoutClass::TcpEstablished, 432_000)
    );

    // 50,000 bytes from the server: more than its raw window (502) but
    // within the scaled one (502 << 7).
    let data = ct.track(&tcp_frame(
        SERVER,
        CLIENT,
        F_ACK | F_PSH,
        9001,
        1001,
        509,
        1400,
        &[],
    ));
    assert!(
        matches!(
            data,
            Track::Existing {
                dir: Direction::Reply,
                ..
            }
        ),
        "{data:?}"
    );
    let far = ct.track(&tcp_frame(
        SERVER,
        CLIENT,
        F_ACK | F_PSH,
        9001 + 48_000,
        1001,
        509,
        1400,
        &[],
    ));
    assert!(matches!(far, Track::Existing { .. }), "{far:?}");
    assert_eq!(ct.entry(syn).class, TimeoutClass::TcpUnacknowledged);
    assert_eq!(ct.entry(syn).expires_in_secs, 300);
    ct.track(&tcp_frame(
        CLIENT,
        SERVER,
        F_ACK,
        1001,
        9001 + 49_400,
        502,
        0,
        &[],
    ));
    assert_eq!(ct.entry(syn).class, TimeoutClass::TcpEstablished);

    // The client closes.
    let s = 9001 + 49_400;
    ct.track(&tcp_frame(
        CLIENT,
        SERVER,
        F_FIN | F_ACK,
        1001,
        s,
        502,
        0,
        &[],
    ));
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::FinWait));
    ct.track(&tcp_frame(SERVER, CLIENT, F_ACK, s, 1002, 509, 0, &[]));
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::CloseWait));
    ct.track(&tcp_frame(
        SERVER,
        CLIENT,
        F_FIN | F_ACK,
        s,
        1002,
        509,
        0,
        &[],
    ));
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::LastAck));
    ct.track(&tcp_frame(CLIENT, SERVER, F_ACK, 1002, s + 1, 502, 0, &[]));
    let e = ct.entry(syn);
    assert_eq!(e.state, FlowState::Tcp(TcpState::TimeWait));
    assert_eq!(
        (e.class, e.expires_in_secs),
        (TimeoutClass::TcpTimeWait, 120)
    );

    // A minute later the client reuses its port: a new connection.
    ct.wait(60);
    let reopen = ct.track(&tcp_frame(
        CLIENT,
        SERVER,
        F_SYN,
        500_000,
        0,
        64240,
        0,
        &SYN_OPTIONS,
    ));
    let Track::New(new_id) = reopen else {
        panic!("reopening SYN: {reopen:?}");
    };
    let (old_id, _) = syn.entry().unwrap();
    assert_ne!(new_id, old_id);
    assert!(ct.table.get(old_id, ct.now).is_none());
    assert_eq!(ct.removed.len(), 1);
    assert_eq!(
        (ct.removed[0].id, ct.removed[0].reason),
        (old_id, RemoveReason::Reopened)
    );
    assert_eq!(ct.entry(reopen).state, FlowState::Tcp(TcpState::SynSent));
    let stats = ct.table.stats();
    assert_eq!((stats.entries, stats.inserted, stats.reopened), (1, 2, 1));
}

#[test]
fn rst_in_window_closes() {
    let mut ct = Ct::new();
    let syn = handshake(&mut ct);
    // A reset far before anything the client acknowledged: INVALID.
    assert_eq!(
        ct.track(&tcp_frame(SERVER, CLIENT, F_RST, 100, 0, 0, 0, &[])),
        Track::Invalid(Invalid::TcpRst)
    );
    assert_eq!(ct.entry(syn).state, FlowState::Tcp(TcpState::Established));
    // The server's reset at its next sequence number.
    let rst = ct.track(&tcp_frame(SERVER, CLIENT, F_RST, 9001, 0, 0, 0, &[]));
    assert!(matches!(
        rst,
        Track::Existing {
            dir: Direction::Reply,
            ..
        }
    ));
    let e = ct.entry(syn);
    assert_eq!(e.state, FlowState::Tcp(TcpState::Close));
    assert_eq!((e.class, e.expires_in_secs), (TimeoutClass::TcpClose, 10));
    ct.wait(10);
    assert!(ct.table.get(syn.entry().unwrap().0, ct.now).is_none());
}

#[test]
fn out_of_window_and_bad_flags_are_invalid() {
    let mut ct = Ct::new();
    let syn = handshake(&mut ct);
    let before = ct.entry(syn);
    let cases = [
        // Beyond the server's window (65160 << 7 from 9001 is far, but the
        // client's is 502 << 7 = 64256 from 1001).
        (
            tcp_frame(CLIENT, SERVER, F_ACK, 1001 + 200_000, 9001, 502, 100, &[]),
            Invalid::TcpSeqOutOfWindow,
        ),
        // Acknowledging bytes the server never sent.
        (
            tcp_frame(CLIENT, SERVER, F_ACK, 1001, 9001 + 5000, 502, 0, &[]),
            Invalid::TcpAckOutOfWindow,
        ),
        // SYN and FIN together.
        (
            tcp_frame(CLIENT, SERVER, F_SYN | F_FIN, 1001, 0, 502, 0, &[]),
            Invalid::TcpFlags,
        ),
        // Christmas tree.
        (
            tcp_frame(
                CLIENT,
                SERVER,
                F_FIN | F_PSH | TcpFlags::URG,
                1001,
                0,
                502,
                0,
                &[],
            ),
            Invalid::TcpFlags,
        ),
        // A SYN-ACK from the client.
        (
            tcp_frame(CLIENT, SERVER, F_SYN | F_ACK, 1000, 9001, 502, 0, &[]),
            Invalid::TcpState,
        ),
    ];
    for (frame, reason) in &cases {
        let verdict = ct.track(frame);
        assert_eq!(verdict, Track::Invalid(*reason));
        assert_eq!(verdict.drop_reason(), Some(DropReason::CtInvalid));
    }
    assert_eq!(ct.entry(syn), before, "INVALID segments change nothing");
    // An ACK for a connection never opened creates nothing.
    let stray = tcp_frame((A, 40001), SERVER, F_ACK, 5, 5, 100, 0, &[]);
    assert_eq!(ct.track(&stray), Track::Invalid(Invalid::TcpNotSyn));
    let stats = ct.table.stats();
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.invalid.get(Invalid::TcpFlags), 2);
    assert_eq!(stats.invalid.get(Invalid::TcpNotSyn), 1);
    assert_eq!(stats.invalid.total(), cases.len() as u64 + 1);
    // The connection still tracks.
    assert!(matches!(
        ct.track(&tcp_frame(CLIENT, SERVER, F_ACK, 1001, 9001, 502, 10, &[])),
        Track::Existing { .. }
    ));
}

/// Accounting: each tracked packet's IP length counted its way, the first
/// packet included; INVALID segments and ICMP errors about the flow not
/// counted; the age from creation on the table's (here: the test's) clock,
/// however often the entry is refreshed.
#[test]
fn counters_and_age_follow_each_direction() {
    let mut ct = Ct::new();
    let created = ct.now;
    let syn = handshake(&mut ct);
    let id = syn.entry().unwrap().0;
    let e = ct.entry(syn);
    // SYN and SYN-ACK with 12 bytes of options (52 each), the ACK bare (40).
    assert_eq!((e.created, e.age_secs), (created, 0));
    assert_eq!(
        (e.counters.original.packets, e.counters.original.bytes),
        (2, 52 + 40)
    );
    assert_eq!((e.counters.reply.packets, e.counters.reply.bytes), (1, 52));

    ct.wait(7);
    let data = tcp_frame(SERVER, CLIENT, F_ACK | F_PSH, 9001, 1001, 509, 1400, &[]);
    assert_eq!(ip_len(&data), 1440);
    assert!(matches!(ct.track(&data), Track::Existing { .. }));
    ct.wait(3);
    let ack = tcp_frame(CLIENT, SERVER, F_ACK, 1001, 10_401, 502, 0, &[]);
    assert!(matches!(ct.track(&ack), Track::Existing { .. }));
    // Not the flow's: an INVALID segment, an ICMP error about it.
    let far = tcp_frame(CLIENT, SERVER, F_ACK, 1001 + 200_000, 9001, 502, 100, &[]);
    assert!(matches!(ct.track(&far), Track::Invalid(_)));
    let frag_needed = icmp_error(R, B, 3, 4, [0, 0, 0x05, 0x78], &data);
    assert!(matches!(ct.track(&frag_needed), Track::Related { .. }));

    let e = ct.table.get(id, ct.now).expect("live");
    assert_eq!((e.created, e.age_secs), (created, 10), "age since the SYN");
    assert_eq!(e.counters.get(Direction::Original).packets, 3);
    assert_eq!(e.counters.original.bytes, 52 + 40 + 40);
    assert_eq!(e.counters.get(Direction::Reply).packets, 2);
    assert_eq!(e.counters.reply.bytes, 52 + 1440);
    // A dump shows them (what `ctl conntrack --json` prints).
    let json = serde_json::to_value(e).unwrap();
    assert_eq!(json["age_secs"], 10);
    assert_eq!(json["counters"]["reply"]["bytes"], 52 + 1440);
    assert_eq!(json["counters"]["original"]["packets"], 3);

    // A NAT entry counts its first packet from insert, replies by update.
    let dns = udp_frame((A, 5353), (B, 53));
    let reply = Tuple::udp(ip(B), 53, ip(N), 1024);
    let Ok(Track::New(dns_id)) =
        ct.table
            .insert(&packet(&dns), reply, ip_len(&dns), ct.now, &mut ct.removed)
    else {
        panic!()
    };
    let back = udp_frame((B, 53), (N, 1024));
    for _ in 0..2 {
        assert_eq!(
            ct.table.update(
                dns_id,
                Direction::Reply,
                &packet(&back),
                ip_len(&back),
                ct.now,
                &mut ct.removed
            ),
            Ok(Track::Existing {
                id: dns_id,
                dir: Direction::Reply
            })
        );
    }
    let e = ct.table.get(dns_id, ct.now).unwrap();
    let udp_len = u64::from(ip_len(&dns));
    assert_eq!(
        e.counters.original,
        DirectionCounters {
            packets: 1,
            bytes: udp_len
        }
    );
    assert_eq!(
        e.counters.reply,
        DirectionCounters {
            packets: 2,
            bytes: 2 * udp_len
        }
    );
    assert_eq!((e.created, e.age_secs), (ct.now, 0));
}

#[test]
fn udp_is_unreplied_then_assured_with_their_timeouts() {
    let mut ct = Ct::new();
    let out = udp_frame((A, 5353), (B, 53));
    let back = udp_frame((B, 53), (A, 5353));
    let first = ct.track(&out);
    let Track::New(id) = first else {
        panic!("{first:?}")
    };
    let e = ct.entry(first);
    assert_eq!(
        (e.state, e.class, e.expires_in_secs),
        (FlowState::UdpUnreplied, TimeoutClass::UdpUnreplied, 30)
    );
    assert!(!e.assured);
    // Unanswered, it is gone after 30 s: the next datagram is a new flow.
    ct.wait(29);
    assert!(ct
        .table
        .lookup(&Tuple::udp(ip(A), 5353, ip(B), 53), ct.now)
        .is_some());
    ct.wait(1);
    assert!(ct
        .table
        .lookup(&Tuple::udp(ip(A), 5353, ip(B), 53), ct.now)
        .is_none());
    let again = ct.track(&out);
    assert!(matches!(again, Track::New(new) if new != id), "{again:?}");
    assert_eq!(
        ct.removed.last().map(|r| r.reason),
        Some(RemoveReason::Expired)
    );
    // Answered: assured, 120 s.
    assert!(matches!(
        ct.track(&back),
        Track::Existing {
            dir: Direction::Reply,
            ..
        }
    ));
    let e = ct.entry(again);
    assert_eq!(
        (e.state, e.class, e.expires_in_secs),
        (FlowState::UdpReplied, TimeoutClass::UdpAssured, 120)
    );
    assert!(e.assured);
    ct.wait(119);
    assert!(matches!(
        ct.track(&out),
        Track::Existing {
            dir: Direction::Original,
            ..
        }
    ));
    ct.wait(120);
    assert!(ct.table.get(again.entry().unwrap().0, ct.now).is_none());
}

#[test]
fn icmp_echo_request_creates_its_reply_matches() {
    let mut ct = Ct::new();
    let request = ct.track(&echo_frame(A, B, 77, true));
    let Track::New(id) = request else {
        panic!("{request:?}")
    };
    assert_eq!(
        ct.track(&echo_frame(B, A, 77, false)),
        Track::Existing {
            id,
            dir: Direction::Reply
        }
    );
    assert_eq!(ct.entry(request).state, FlowState::Icmp);
    assert_eq!(ct.entry(request).expires_in_secs, 30);
    assert!(!ct.entry(request).assured);
    // A reply to nothing, and the other side pinging with the same id.
    assert_eq!(
        ct.track(&echo_frame(B, A, 78, false)),
        Track::Invalid(Invalid::EchoReplyUnmatched)
    );
    assert!(matches!(ct.track(&echo_frame(B, A, 77, true)), Track::New(other) if other != id));
}

#[test]
fn icmp_errors_are_matched_to_the_flow_they_quote() {
    let mut ct = Ct::new();
    // A UDP flow: B answers with port unreachable.
    let udp = udp_frame((A, 5000), (B, 9999));
    let Track::New(udp_id) = ct.track(&udp) else {
        panic!()
    };
    let unreachable = icmp_error(B, A, 3, 3, [0; 4], &udp);
    assert_eq!(
        ct.track(&unreachable),
        Track::Related {
            id: udp_id,
            dir: Direction::Reply
        }
    );
    // A TCP connection: a router says a data segment needs fragmenting.
    let syn = handshake(&mut ct);
    let tcp_id = syn.entry().unwrap().0;
    let big = tcp_frame(CLIENT, SERVER, F_ACK | F_PSH, 1001, 9001, 502, 1400, &[]);
    ct.track(&big);
    let before = ct.table.get(tcp_id, ct.now).unwrap();
    ct.wait(5);
    let frag_needed = icmp_error(R, A, 3, 4, [0, 0, 0x05, 0x78], &big);
    assert_eq!(
        ct.track(&frag_needed),
        Track::Related {
            id: tcp_id,
            dir: Direction::Reply
        }
    );
    let after = ct.table.get(tcp_id, ct.now).unwrap();
    assert_eq!(
        (after.state, after.deadline),
        (before.state, before.deadline),
        "not refreshed"
    );
    // An error about the server's packets goes to the server: original way.
    let from_server = tcp_frame(SERVER, CLIENT, F_ACK, 9001, 2401, 509, 0, &[]);
    let time_exceeded = icmp_error(R, B, 11, 0, [0; 4], &from_server);
    assert_eq!(
        ct.track(&time_exceeded),
        Track::Related {
            id: tcp_id,
            dir: Direction::Original
        }
    );
    // Sent elsewhere than the quoted packet's source, or about no flow.
    let misdirected = icmp_error(B, [10, 1, 0, 99], 3, 3, [0; 4], &udp);
    assert_eq!(
        ct.track(&misdirected),
        Track::Invalid(Invalid::IcmpWrongDestination)
    );
    let unknown = icmp_error(B, A, 3, 3, [0; 4], &udp_frame((A, 5001), (B, 9999)));
    assert_eq!(ct.track(&unknown), Track::Invalid(Invalid::IcmpUnrelated));
    // A quote too short to hold the ports.
    let mut short = unreachable.clone();
    short.truncate(short.len() - 4);
    let ip_len = (short.len() - 14) as u16;
    short[16..18].copy_from_slice(&ip_len.to_be_bytes());
    short[24..26].copy_from_slice(&[0, 0]);
    let sum = switchyard_pipeline::checksum::ipv4_header_checksum(&short[14..34]);
    short[24..26].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(classify(&short), Err(Invalid::IcmpBadQuote));
    assert_eq!(ct.table.stats().related, 3);
}

#[test]
fn a_nat_entry_is_found_from_both_sides() {
    let mut ct = Ct::new();
    let inside = Tuple::tcp(ip(A), 40000, ip(B), 80);
    // Masquerade: the server sees N:61000.
    let outside_reply = Tuple::tcp(ip(B), 80, ip(N), 61000);
    let syn = packet(&tcp_frame(
        (A, 40000),
        (B, 80),
        F_SYN,
        1000,
        0,
        64240,
        0,
        &SYN_OPTIONS,
    ));
    let Ok(Track::New(id)) = ct
        .table
        .insert(&syn, outside_reply, 60, ct.now, &mut ct.removed)
    else {
        panic!()
    };
    assert_eq!(
        ct.table.lookup(&inside, ct.now),
        Some((id, Direction::Original))
    );
    assert_eq!(
        ct.table.lookup(&outside_reply, ct.now),
        Some((id, Direction::Reply))
    );
    // The untranslated inverse is nobody's.
    assert_eq!(ct.table.lookup(&inside.invert(), ct.now), None);
    // The server's SYN-ACK arrives addressed to the NAT.
    let synack = tcp_frame(
        (B, 80),
        (N, 61000),
        F_SYN | F_ACK,
        9000,
        1001,
        65160,
        0,
        &SYN_OPTIONS,
    );
    assert_eq!(
        ct.track(&synack),
        Track::Existing {
            id,
            dir: Direction::Reply
        }
    );
    // An ICMP error from the outside about the translated packet.
    let translated = tcp_frame((N, 61000), (B, 80), F_ACK, 1001, 9001, 502, 0, &[]);
    assert_eq!(
        ct.track(&icmp_error(R, N, 3, 4, [0, 0, 5, 0], &translated)),
        Track::Related {
            id,
            dir: Direction::Reply
        }
    );
    // A second flow may not take the same translated tuple.
    let other = packet(&tcp_frame((A, 40001), (B, 80), F_SYN, 1, 0, 100, 0, &[]));
    assert_eq!(
        ct.table
            .insert(&other, outside_reply, 60, ct.now, &mut ct.removed),
        Err(ConntrackError::TupleInUse(outside_reply))
    );
    assert_eq!(ct.table.len(), 1);

    // A UDP entry whose translation changes before its first reply.
    let dns = packet(&udp_frame((A, 5353), (B, 53)));
    let first = Tuple::udp(ip(B), 53, ip(N), 1024);
    let second = Tuple::udp(ip(B), 53, ip(N), 1025);
    let Ok(Track::New(dns_id)) = ct.table.insert(&dns, first, 28, ct.now, &mut ct.removed) else {
        panic!()
    };
    ct.table
        .set_reply(dns_id, second, ct.now, &mut ct.removed)
        .unwrap();
    assert_eq!(ct.table.lookup(&first, ct.now), None);
    assert_eq!(
        ct.table.lookup(&second, ct.now),
        Some((dns_id, Direction::Reply))
    );
    assert_eq!(
        ct.table
            .set_reply(dns_id, outside_reply, ct.now, &mut ct.removed),
        Err(ConntrackError::ProtocolMismatch)
    );
    assert!(matches!(
        ct.track(&udp_frame((B, 53), (N, 1025))),
        Track::Existing {
            dir: Direction::Reply,
            ..
        }
    ));
    assert_eq!(
        ct.table.set_reply(dns_id, first, ct.now, &mut ct.removed),
        Err(ConntrackError::AlreadyReplied)
    );
    let dump: Vec<_> = ct.table.entries(ct.now).collect();
    assert_eq!(dump.len(), 2);
    assert!(dump
        .iter()
        .any(|e| e.original == inside && e.reply == outside_reply));
}

#[test]
fn removed_handles_are_refused() {
    let mut ct = Ct::new();
    let udp = udp_frame((A, 1), (B, 2));
    let Track::New(id) = ct.track(&udp) else {
        panic!()
    };
    ct.table.remove(id, &mut ct.removed).unwrap();
    assert_eq!(ct.removed.len(), 1);
    assert_eq!(ct.removed[0].reason, RemoveReason::Removed);
    assert_eq!(
        ct.table.remove(id, &mut ct.removed),
        Err(ConntrackError::NoSuchEntry)
    );
    let p = packet(&udp);
    assert_eq!(
        ct.table
            .update(id, Direction::Original, &p, 28, ct.now, &mut ct.removed),
        Err(ConntrackError::NoSuchEntry)
    );
    // The slot is reused with a new generation: the old handle stays refused.
    let Track::New(new) = ct.track(&udp) else {
        panic!()
    };
    assert_eq!(new.index(), id.index());
    assert!(ct.table.get(id, ct.now).is_none());
    assert!(ct.table.get(new, ct.now).is_some());
}

#[test]
fn expiry_takes_a_budget_and_assured_entries_outlive_unreplied_ones() {
    let mut ct = Ct::new();
    for port in 0..10 {
        ct.track(&udp_frame((A, 1000 + port), (B, 53)));
    }
    for port in 0..5 {
        ct.track(&udp_frame((A, 2000 + port), (B, 53)));
        ct.track(&udp_frame((B, 53), (A, 2000 + port)));
    }
    ct.wait(1);
    let syn = handshake(&mut ct);
    assert_eq!(ct.table.len(), 16);
    let mut out = Vec::new();
    assert_eq!(ct.table.expire(ct.now, 100, &mut out), 0);
    assert_eq!(
        ct.table.next_deadline(),
        Some(Timestamp(ct.now.0 - 1_000_000_000 + 30_000_000_000))
    );

    // 30 s: the ten unreplied are due; three at a time.
    ct.wait(29);
    let mut calls = Vec::new();
    loop {
        let n = ct.table.expire(ct.now, 3, &mut out);
        calls.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(calls, [3, 3, 3, 1, 0]);
    assert!(out
        .iter()
        .all(|r| r.reason == RemoveReason::Expired && r.original.src_port < 2000));
    assert_eq!(ct.table.len(), 6);
    // 120 s: the replied ones go too; the connection stays for days.
    ct.wait(90);
    out.clear();
    assert_eq!(ct.table.expire(ct.now, 100, &mut out), 5);
    assert_eq!(ct.table.len(), 1);
    assert!(ct.table.get(syn.entry().unwrap().0, ct.now).is_some());
    ct.wait(432_000);
    assert_eq!(ct.table.expire(ct.now, 100, &mut out), 1);
    assert!(ct.table.is_empty());
    let stats = ct.table.stats();
    assert_eq!((stats.inserted, stats.expired), (16, 16));
}

#[test]
fn expiry_goes_most_overdue_first_and_survives_a_clock_going_back() {
    let mut ct = Ct::new();
    // An echo (30 s), then a UDP flow one second later (30 s): the echo is
    // due first, whatever the list order.
    ct.track(&echo_frame(A, B, 1, true));
    ct.wait(1);
    ct.track(&udp_frame((A, 1), (B, 2)));
    ct.wait(40);
    let mut out = Vec::new();
    assert_eq!(ct.table.expire(ct.now, 1, &mut out), 1);
    assert_eq!(out[0].original.protocol, 1);
    // A clock read that went back changes nothing (the table's own clock
    // does not go back).
    assert_eq!(ct.table.expire(Timestamp::from_secs(1), 1, &mut out), 1);
    assert!(ct.table.is_empty());
}

#[test]
fn a_full_table_of_assured_flows_refuses_new_ones() {
    let mut ct = Ct::sized(2);
    for port in [1, 2] {
        ct.track(&udp_frame((A, port), (B, 53)));
        ct.track(&udp_frame((B, 53), (A, port)));
    }
    let refused = ct.track(&udp_frame((A, 3), (B, 53)));
    assert_eq!(refused, Track::Full);
    assert_eq!(refused.drop_reason(), Some(DropReason::CtTableFull));
    assert_eq!(ct.table.stats().full, 1);
    // Once one is due, its slot is taken without waiting for expiry.
    ct.wait(120);
    assert!(matches!(
        ct.track(&udp_frame((A, 3), (B, 53))),
        Track::New(_)
    ));
    assert_eq!(
        ct.removed
            .iter()
            .filter(|r| r.reason == RemoveReason::Expired)
            .count(),
        1
    );
}

#[test]
fn untracked_packets_are_none() {
    let frag = {
        let mut f = udp_frame((A, 1), (B, 2));
        f[20] = 0x20; // more fragments
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = switchyard_pipeline::checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f
    };
    assert_eq!(classify(&frag), Ok(None));
    // Timestamp request: an ICMP message conntrack does not track.
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(A, B, 64)
        .icmpv4_raw(13, 0, [0; 4]);
    let mut ts = Vec::new();
    b.write(&mut ts, &[0; 12]).unwrap();
    assert_eq!(classify(&ts), Ok(None));
    // The quote helper on its own.
    let udp = udp_frame((A, 1), (B, 2));
    assert_eq!(
        quoted_tuple(&udp[14..42]),
        Ok(Tuple::udp(ip(A), 1, ip(B), 2))
    );
}
