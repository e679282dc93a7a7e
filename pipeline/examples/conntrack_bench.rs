//! Micro-benchmark of conntrack per packet, timed as `switchyard-perf
//! pipeline` times its cases (perf/src/micro.rs): warm up, size chunks of
//! iterations to about a millisecond, time chunks for the case's budget and
//! report the median chunk (a background compile on a shared machine
//! inflates the mean, rarely the median), the best and the 99th percentile.
//! One iteration is a batch of 256 packets.
//!
//! An example, not a test (a timing, not a check: tests never time); run it
//! optimised: `cargo run --release -p switchyard-pipeline --example
//! conntrack_bench` (`CT_BENCH_SECS` sets the seconds per case, default 1).
//!
//! Cases, each with 1,000 and 100,000 established flows in a table of the
//! default size (262,144), visited in a scattered order so that the large
//! case misses the caches as live traffic would:
//! - `lookup`: the index alone (tuple -> entry, direction), read-only;
//! - `tcp_track`: `track` of in-window TCP data and its ACK, both directions
//!   (window tracking, state machine; data and ACK alternate the entry
//!   between two timeout classes, so every packet moves it between lists);
//! - `udp_track`: `track` of replied UDP both ways, each flow seen again
//!   within the refresh granularity (busy flows: the entry keeps its place);
//! - `udp_track_move`: the same with the clock 2 s further every batch, so
//!   every packet moves its entry to its list's tail (the worst case);
//! - `udp_new_full`: a new UDP flow per packet into a full table of
//!   unreplied flows (each evicts the oldest: the flood path).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use switchyard_pipeline::conntrack::{
    ConntrackConfig, ConntrackTable, Packet, Removed, TcpFlags, TcpSegment, Timeouts, Track, Tuple,
};
use switchyard_pipeline::Timestamp;

const BATCH: usize = 256;
const CHUNK: Duration = Duration::from_millis(1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

fn client(i: usize) -> Tuple {
    Tuple::tcp(
        Ipv4Addr::from(0x0a00_0000 | (i as u32 >> 8)),
        1024 + (i & 0xff) as u16,
        SERVER,
        443,
    )
}

/// Flow `k` of a scattered walk over `n` flows (a stride coprime with `n`).
fn scattered(k: usize, n: usize) -> usize {
    (k.wrapping_mul(40_503)) % n
}

struct Timing {
    median: f64,
    best: f64,
    p99: f64,
}

/// micro.rs's `time_case`: `iteration` handles one batch and returns its
/// packet count.
fn time_case(mut iteration: impl FnMut() -> usize) -> Timing {
    let secs: f64 = std::env::var("CT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let warmup = (budget / 4).min(Duration::from_millis(200));
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < warmup {
        for _ in 0..16 {
            iteration();
        }
        iterations += 16;
    }
    let per_iteration = start.elapsed().as_secs_f64() / iterations.max(1) as f64;
    let chunk = ((CHUNK.as_secs_f64() / per_iteration.max(1e-9)) as u64).clamp(1, 1_000_000);
    let mut chunks = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        let mut packets = 0u64;
        for _ in 0..chunk {
            packets += iteration() as u64;
        }
        chunks.push(t.elapsed().as_nanos() as f64 / packets.max(1) as f64);
    }
    chunks.sort_by(f64::total_cmp);
    let at = |q: f64| chunks[((chunks.len() as f64 - 1.0) * q).round() as usize];
    Timing {
        median: at(0.5),
        best: at(0.0),
        p99: at(0.99),
    }
}

fn report(case: &str, flows: usize, t: Timing) {
    println!(
        "{case:<14} {flows:>7} {:>14.1} {:>12.1} {:>11.1} {:>10.2}",
        t.median,
        t.best,
        t.p99,
        1e3 / t.median
    );
}

/// The default size; timeouts long enough that no flow expires while the
/// clock races ahead.
fn table() -> ConntrackTable {
    let day = 86_400 * 10;
    let timeouts = Timeouts {
        tcp_established: day,
        tcp_unacknowledged: day,
        udp_assured: day,
        udp_unreplied: day,
        ..Timeouts::LINUX
    };
    ConntrackTable::with_seed(
        ConntrackConfig {
            timeouts,
            ..ConntrackConfig::default()
        },
        11,
    )
}

/// `n` established TCP connections; returns the table and each flow's next
/// client and server sequence numbers.
fn established(n: usize, now: Timestamp) -> (ConntrackTable, Vec<(u32, u32)>) {
    let mut ct = table();
    let mut removed = Vec::with_capacity(16);
    let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
    for i in 0..n {
        let t = client(i);
        let steps = [
            Packet::Tcp(t, TcpSegment::new(syn, 1000, 0, 65535, 0)),
            Packet::Tcp(t.invert(), TcpSegment::new(syn | ack, 5000, 1001, 65535, 0)),
            Packet::Tcp(t, TcpSegment::new(ack, 1001, 5001, 65535, 0)),
        ];
        for p in steps {
            assert!(!matches!(
                ct.track(&p, 64, now, &mut removed),
                Track::Invalid(_) | Track::Full
            ));
        }
    }
    assert_eq!(ct.len(), n);
    (ct, vec![(1001, 5001); n])
}

fn bench_lookup(n: usize) -> Timing {
    let now = Timestamp::from_secs(10);
    let (ct, _) = established(n, now);
    let mut k = 0usize;
    time_case(|| {
        for _ in 0..BATCH {
            let i = scattered(k, n);
            k += 1;
            let t = if k & 1 == 0 {
                client(i)
            } else {
                client(i).invert()
            };
            black_box(ct.lookup(black_box(&t), now));
        }
        BATCH
    })
}

fn bench_tcp(n: usize) -> Timing {
    let now = Timestamp::from_secs(10);
    let (mut ct, mut seqs) = established(n, now);
    let mut removed: Vec<Removed> = Vec::with_capacity(2 * BATCH);
    let mut k = 0usize;
    let ack = TcpFlags::ACK;
    let mut bad = 0usize;
    let timing = time_case(|| {
        for _ in 0..BATCH / 2 {
            let i = scattered(k, n);
            k += 1;
            let t = client(i);
            let (c, s) = seqs[i];
            let data = Packet::Tcp(t, TcpSegment::new(ack | TcpFlags::PSH, c, s, 512, 100));
            let reply = Packet::Tcp(
                t.invert(),
                TcpSegment::new(ack, s, c.wrapping_add(100), 512, 0),
            );
            seqs[i] = (c.wrapping_add(100), s);
            for p in [data, reply] {
                if !matches!(ct.track(&p, 64, now, &mut removed), Track::Existing { .. }) {
                    bad += 1;
                }
            }
        }
        removed.clear();
        BATCH
    });
    assert_eq!(bad, 0, "segments not tracked as existing");
    timing
}

/// UDP both ways over `n` replied flows, the clock `step` further per batch.
fn bench_udp(n: usize, step: u64) -> Timing {
    let mut now = Timestamp::from_secs(10);
    let mut ct = table();
    let mut removed: Vec<Removed> = Vec::with_capacity(2 * BATCH);
    let udp = |i: usize| Tuple {
        protocol: 17,
        ..client(i)
    };
    for i in 0..n {
        ct.track(&Packet::Udp(udp(i)), 64, now, &mut removed);
        ct.track(&Packet::Udp(udp(i).invert()), 64, now, &mut removed);
    }
    let mut k = 0usize;
    let mut bad = 0usize;
    let timing = time_case(|| {
        for _ in 0..BATCH {
            let i = scattered(k, n);
            k += 1;
            let t = if k & 1 == 0 { udp(i) } else { udp(i).invert() };
            if !matches!(
                ct.track(&Packet::Udp(t), 64, now, &mut removed),
                Track::Existing { .. }
            ) {
                bad += 1;
            }
        }
        removed.clear();
        now = Timestamp(now.0 + step);
        BATCH
    });
    assert_eq!(bad, 0);
    timing
}

fn bench_new_full() -> Timing {
    let now = Timestamp::from_secs(10);
    let mut ct = table();
    let max = ct.config().max_entries;
    let mut removed: Vec<Removed> = Vec::with_capacity(2 * BATCH);
    let mut next = 0u32;
    let mut fresh = move || {
        next = next.wrapping_add(1);
        Tuple::udp(
            Ipv4Addr::from(0x0b00_0000 | (next >> 8)),
            (next & 0xff) as u16,
            SERVER,
            53,
        )
    };
    for _ in 0..max {
        ct.track(&Packet::Udp(fresh()), 64, now, &mut removed);
        removed.clear();
    }
    assert_eq!(ct.len(), max);
    let mut bad = 0usize;
    let timing = time_case(|| {
        for _ in 0..BATCH {
            if !matches!(
                ct.track(&Packet::Udp(fresh()), 64, now, &mut removed),
                Track::New(_)
            ) {
                bad += 1;
            }
        }
        removed.clear();
        BATCH
    });
    assert_eq!(bad, 0);
    assert!(ct.stats().early_dropped > 0);
    timing
}

fn main() {
    if cfg!(debug_assertions) {
        println!("(debug build: numbers are not meaningful; use --release)");
    }
    println!(
        "{:<14} {:>7} {:>14} {:>12} {:>11} {:>10}",
        "case", "flows", "ns/pkt median", "ns/pkt best", "ns/pkt p99", "Mpps/core"
    );
    for n in [1_000, 100_000] {
        report("lookup", n, bench_lookup(n));
        report("tcp_track", n, bench_tcp(n));
        report("udp_track", n, bench_udp(n, 1_000));
        report("udp_track_move", n, bench_udp(n, 2_000_000_000));
    }
    report(
        "udp_new_full",
        ConntrackConfig::DEFAULT_ENTRIES,
        bench_new_full(),
    );
}
