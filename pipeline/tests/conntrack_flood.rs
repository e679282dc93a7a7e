//! A flood of new flows does not cut established ones: an SSH-like TCP
//! connection and a few replied UDP flows keep tracking while far more new
//! SYNs and UDP datagrams from random addresses and ports than the table
//! holds pour in. New flows evict unassured ones (never the established or
//! replied), nothing panics, the counters add up, and a table holding only
//! assured flows refuses new ones (counted) while they keep working.

use std::net::Ipv4Addr;
use switchyard_pipeline::conntrack::{
    ConntrackConfig, ConntrackTable, Direction, Packet, RemoveReason, Removed, TcpFlags,
    TcpSegment, Track, Tuple,
};
use switchyard_pipeline::Timestamp;

const MAX: usize = 4096;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 22);
const ACK: u8 = TcpFlags::ACK;
const SYN: u8 = TcpFlags::SYN;

/// xorshift64*: random enough for source addresses and ports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

struct Ssh {
    tuple: Tuple,
    client_seq: u32,
    server_seq: u32,
}

impl Ssh {
    fn open(ct: &mut ConntrackTable, now: Timestamp, removed: &mut Vec<Removed>) -> Ssh {
        let tuple = Tuple::tcp(CLIENT, 50022, SERVER, 22);
        let back = tuple.invert();
        let steps = [
            (
                Packet::Tcp(tuple, TcpSegment::new(SYN, 100, 0, 64240, 0)),
                false,
            ),
            (
                Packet::Tcp(back, TcpSegment::new(SYN | ACK, 7000, 101, 65160, 0)),
                true,
            ),
            (
                Packet::Tcp(tuple, TcpSegment::new(ACK, 101, 7001, 64240, 0)),
                true,
            ),
        ];
        for (p, existing) in steps {
            let verdict = ct.track(&p, 60, now, removed);
            assert_eq!(
                matches!(verdict, Track::Existing { .. }),
                existing,
                "{verdict:?}"
            );
        }
        Ssh {
            tuple,
            client_seq: 101,
            server_seq: 7001,
        }
    }

    /// A keystroke and its echo, each acknowledging the other.
    fn exchange(&mut self, ct: &mut ConntrackTable, now: Timestamp, removed: &mut Vec<Removed>) {
        let key = TcpSegment::new(
            ACK | TcpFlags::PSH,
            self.client_seq,
            self.server_seq,
            64240,
            36,
        );
        self.client_seq += 36;
        let echo = TcpSegment::new(
            ACK | TcpFlags::PSH,
            self.server_seq,
            self.client_seq,
            65160,
            36,
        );
        self.server_seq += 36;
        let verdict = ct.track(&Packet::Tcp(self.tuple, key), 60, now, removed);
        assert!(
            matches!(
                verdict,
                Track::Existing {
                    dir: Direction::Original,
                    ..
                }
            ),
            "keystroke: {verdict:?}"
        );
        let verdict = ct.track(&Packet::Tcp(self.tuple.invert(), echo), 60, now, removed);
        assert!(
            matches!(
                verdict,
                Track::Existing {
                    dir: Direction::Reply,
                    ..
                }
            ),
            "echo: {verdict:?}"
        );
    }
}

fn table() -> ConntrackTable {
    ConntrackTable::with_seed(
        ConntrackConfig {
            max_entries: MAX,
            ..ConntrackConfig::default()
        },
        42,
    )
}

#[test]
fn a_flood_of_new_flows_does_not_cut_established_ones() {
    let mut ct = table();
    let mut removed = Vec::with_capacity(1024);
    let mut now = Timestamp::from_secs(100);
    let mut ssh = Ssh::open(&mut ct, now, &mut removed);
    // Ten replied UDP flows (assured).
    let dns: Vec<Tuple> = (0..10)
        .map(|i| Tuple::udp(CLIENT, 6000 + i, Ipv4Addr::new(192, 0, 2, 53), 53))
        .collect();
    for t in &dns {
        assert!(matches!(
            ct.track(&Packet::Udp(*t), 60, now, &mut removed),
            Track::New(_)
        ));
        assert!(matches!(
            ct.track(&Packet::Udp(t.invert()), 60, now, &mut removed),
            Track::Existing {
                dir: Direction::Reply,
                ..
            }
        ));
    }

    let mut rng = Rng(0x5eed);
    let flood = 50 * MAX;
    let mut new_flows = 0u64;
    for n in 0..flood {
        let r = rng.next();
        let src = Ipv4Addr::from(0x0a00_0000 | (r as u32 & 0x00ff_ffff));
        let port = (r >> 32) as u16 | 1024;
        let p = if n % 2 == 0 {
            Packet::Tcp(
                Tuple::tcp(src, port, SERVER, 80),
                TcpSegment::new(SYN, (r >> 16) as u32, 0, 1024, 0),
            )
        } else {
            Packet::Udp(Tuple::udp(src, port, SERVER, 53))
        };
        match ct.track(&p, 60, now, &mut removed) {
            Track::New(_) => new_flows += 1,
            // A random tuple may repeat one still tracked.
            Track::Existing { .. } => {}
            other => panic!("flood packet {n}: {other:?}"),
        }
        if n % 100 == 0 {
            now = Timestamp(now.0 + 1_000_000);
            ssh.exchange(&mut ct, now, &mut removed);
            if n % 10_000 == 0 {
                for t in &dns {
                    let verdict = ct.track(&Packet::Udp(*t), 60, now, &mut removed);
                    assert!(matches!(verdict, Track::Existing { .. }), "{verdict:?}");
                }
            }
        }
        assert!(ct.len() <= MAX);
        for r in removed.drain(..) {
            assert_eq!(r.reason, RemoveReason::EarlyDrop);
            assert_ne!(r.original, ssh.tuple);
            assert!(!dns.contains(&r.original));
        }
    }
    ssh.exchange(&mut ct, now, &mut removed);
    let stats = ct.stats();
    assert_eq!(stats.entries, MAX);
    assert_eq!(stats.full, 0);
    assert_eq!(stats.inserted, 1 + dns.len() as u64 + new_flows);
    assert_eq!(
        stats.entries as u64,
        stats.inserted - stats.expired - stats.early_dropped - stats.removed - stats.reopened
    );
    assert!(stats.early_dropped >= new_flows - MAX as u64);
    assert_eq!(stats.evictable, MAX - 1 - dns.len());
    assert_eq!(stats.invalid.total(), 0);
    eprintln!("{stats:?}");
}

#[test]
fn a_table_of_assured_flows_refuses_new_ones_and_keeps_working() {
    let mut ct = table();
    let mut removed = Vec::with_capacity(64);
    let now = Timestamp::from_secs(100);
    let mut ssh = Ssh::open(&mut ct, now, &mut removed);
    // Fill the rest with replied UDP flows.
    for i in 0..MAX - 1 {
        let t = Tuple::udp(CLIENT, 10_000 + i as u16, SERVER, 53);
        assert!(matches!(
            ct.track(&Packet::Udp(t), 60, now, &mut removed),
            Track::New(_)
        ));
        ct.track(&Packet::Udp(t.invert()), 60, now, &mut removed);
    }
    assert_eq!(ct.stats().evictable, 0);
    let mut rng = Rng(7);
    for _ in 0..10_000 {
        let r = rng.next();
        let syn = Packet::Tcp(
            Tuple::tcp(Ipv4Addr::from(r as u32), (r >> 32) as u16, SERVER, 80),
            TcpSegment::new(SYN, 1, 0, 1024, 0),
        );
        assert_eq!(ct.track(&syn, 60, now, &mut removed), Track::Full);
    }
    ssh.exchange(&mut ct, now, &mut removed);
    assert!(removed.is_empty());
    let stats = ct.stats();
    assert_eq!(
        (stats.full, stats.entries, stats.early_dropped),
        (10_000, MAX, 0)
    );
}
