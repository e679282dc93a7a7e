//! Conntrack allocates nothing per packet: after the table is built (slab,
//! index and expiry links at their bounds) tracking an established TCP flow,
//! a flood of new SYN and UDP flows that evicts, ICMP echo and errors, NAT
//! inserts and reply changes, and budgeted expiry run under a counting
//! global allocator without one allocation, as long as the caller's
//! `removed` vector has room for what one round reports (own test binary:
//! the allocator is global). The NAT engineer's worker-level test
//! (`switch/tests/no_alloc*.rs`) covers the same once the stage is wired.

use std::net::Ipv4Addr;
use switchyard_pipeline::conntrack::{
    ConntrackConfig, ConntrackTable, Packet, TcpFlags, TcpSegment, Track, Tuple,
};
use switchyard_pipeline::Timestamp;

/// The counting allocator the switch's no-allocation tests use (one copy:
/// counts per thread).
#[path = "../../switch/tests/common/mod.rs"]
mod counting;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 22);
const NAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

#[test]
fn tracking_allocates_nothing() {
    let mut ct = ConntrackTable::new(ConntrackConfig {
        max_entries: 2048,
        ..ConntrackConfig::default()
    });
    let mut removed = Vec::with_capacity(4096);
    let mut expired = Vec::with_capacity(64);
    let ssh = Tuple::tcp(CLIENT, 50022, SERVER, 22);
    let mut now = Timestamp::from_secs(10);
    let ack = TcpFlags::ACK;
    for (t, seg) in [
        (ssh, TcpSegment::new(TcpFlags::SYN, 100, 0, 64240, 0)),
        (
            ssh.invert(),
            TcpSegment::new(TcpFlags::SYN | ack, 7000, 101, 65160, 0),
        ),
        (ssh, TcpSegment::new(ack, 101, 7001, 64240, 0)),
    ] {
        ct.track(&Packet::Tcp(t, seg), 60, now, &mut removed);
    }

    let before = counting::allocations();
    let (mut cseq, mut sseq) = (101u32, 7001u32);
    let mut state = 99u64;
    for round in 0..200u32 {
        removed.clear();
        expired.clear();
        for _ in 0..64 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let src = Ipv4Addr::from((state >> 32) as u32);
            let port = (state >> 16) as u16;
            ct.track(
                &Packet::Tcp(
                    Tuple::tcp(src, port, SERVER, 80),
                    TcpSegment::new(TcpFlags::SYN, 1, 0, 512, 0),
                ),
                60,
                now,
                &mut removed,
            );
            ct.track(
                &Packet::Udp(Tuple::udp(src, port, SERVER, 53)),
                60,
                now,
                &mut removed,
            );
        }
        let key = TcpSegment::new(ack, cseq, sseq, 64240, 36);
        cseq += 36;
        assert!(matches!(
            ct.track(&Packet::Tcp(ssh, key), 60, now, &mut removed),
            Track::Existing { .. }
        ));
        let echo = TcpSegment::new(ack, sseq, cseq, 65160, 36);
        sseq += 36;
        ct.track(&Packet::Tcp(ssh.invert(), echo), 60, now, &mut removed);
        // ICMP echo both ways, and an error about the SSH flow.
        let ping = Tuple::echo_request(CLIENT, SERVER, round as u16);
        ct.track(&Packet::EchoRequest(ping), 60, now, &mut removed);
        ct.track(&Packet::EchoReply(ping.invert()), 60, now, &mut removed);
        let error = Packet::IcmpError {
            outer_dst: CLIENT,
            quoted: ssh,
        };
        assert!(matches!(
            ct.track(&error, 60, now, &mut removed),
            Track::Related { .. }
        ));
        // A NAT entry, retranslated before its reply.
        let inside = Tuple::udp(CLIENT, 20_000 + round as u16, SERVER, 123);
        let reply = Tuple::udp(SERVER, 123, NAT, 30_000 + round as u16);
        if let Ok(Track::New(id)) = ct.insert(&Packet::Udp(inside), reply, 60, now, &mut removed) {
            let moved = Tuple::udp(SERVER, 123, NAT, 40_000 + round as u16);
            let _ = ct.set_reply(id, moved, now, &mut removed);
            let _ = ct.lookup(&moved, now);
        }
        ct.expire(now, 16, &mut expired);
        let _ = ct.stats();
        now = Timestamp(now.0 + 2_000_000_000);
    }
    let after = counting::allocations();
    assert_eq!(
        after - before,
        0,
        "conntrack allocated {} times",
        after - before
    );
    assert!(ct.stats().early_dropped > 0 && ct.stats().expired > 0);
}
