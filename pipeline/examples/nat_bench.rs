//! Micro-benchmark of the NAT engine per packet on real frames, timed as
//! `conntrack_bench` times its cases (warm-up, ~1 ms chunks, the median
//! chunk reported with the best and the 99th percentile). One iteration is a
//! batch of 256 packets.
//!
//! An example, not a test: `cargo run --release -p switchyard-pipeline
//! --example nat_bench` (`NAT_BENCH_SECS` sets the seconds per case,
//! default 1; `NAT_BENCH_FLOWS=1,1000` the flow counts; `NAT_BENCH_PREFETCH=0`
//! skips the batch prefetch the router does, `NAT_BENCH_HUGEPAGES=0` leaves the
//! table on plain pages).
//!
//! Each packet is a 64-byte Ethernet/IPv4/UDP frame with a correct UDP
//! checksum, built into a batch slot, parsed by the parse stage (which fills
//! the metadata the router hands the engine) and given to the engine as the
//! router does: [`Nat::before_routing`], then [`Nat::masquerade`] for a
//! packet it left untouched. The frame preparation alone (build + parse) is
//! timed as its own case, and the NAT stage's cost is the difference.
//!
//! Cases, at 1, 1,000, 100,000 and 1,000,000 established flows (the table
//! sized to hold them, at least the default 262,144 entries), flows visited
//! in a scattered order so the large cases miss the caches as live traffic
//! would:
//! - `prepare`: build + parse only (the baseline subtracted below);
//! - `masquerade`: container -> outside on flows masqueraded before timing
//!   (lookup, UDP state, source address and port rewritten, checksums);
//! - `dnat`: outside -> one of 1,000 published ports -> container, flows
//!   created before timing (destination rewritten);
//! - `masq_new`: a new masqueraded flow per packet into a full table (port
//!   choice, insert, early drop of the oldest unreplied flow): what a new
//!   connection costs the engine.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_pipeline::checksum::{fold, ipv4_header_checksum, pseudo_header_sum, sum_be_words};
use switchyard_pipeline::conntrack::{ConntrackConfig, Timeouts};
use switchyard_pipeline::nat::engine::{Before, Masquerade, Nat};
use switchyard_pipeline::nat::published::{Protocol, PublishRule, PublishedPorts};
use switchyard_pipeline::{parse_stage, PacketMeta, Timestamp};

/// Large allocations (the conntrack table) on transparent huge pages, as in
/// the daemon; `NAT_BENCH_HUGEPAGES=0` leaves them on plain pages.
#[global_allocator]
static ALLOC: switchyard_mem::HugePageAlloc = switchyard_mem::HugePageAlloc::new();

/// False with `NAT_BENCH_PREFETCH=0`: the batch's lookups not prefetched.
fn prefetching() -> bool {
    std::env::var("NAT_BENCH_PREFETCH").map_or(true, |v| v != "0")
}

const BATCH: usize = 256;
const CHUNK: Duration = Duration::from_millis(1);
const FRAME_LEN: usize = 64;
/// The node's uplink address (masquerade source, published ports' address).
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The container published ports lead to.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 2);
/// First published port; [`PUBLISHED`] ports from it.
const FIRST_PUBLISHED: u16 = 20_000;
/// Published ports.
const PUBLISHED: usize = 1_000;

/// The addresses and ports of one packet.
#[derive(Clone, Copy)]
struct Flow {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
}

/// Masqueraded flow `i`: 16 flows per container, to 65,536 destinations on
/// port 443 (so the masquerade ports never run out, whatever the count).
fn masq_flow(i: usize) -> Flow {
    let i = i as u32;
    Flow {
        src: Ipv4Addr::from(0x0a40_0000 | (i >> 4)),
        dst: Ipv4Addr::from(0xc612_0000 | (i.wrapping_mul(2_654_435_761) >> 16)),
        sport: 40_000 + (i & 15) as u16,
        dport: 443,
    }
}

/// Outside client `i` to published port `i mod 1,000` (1 flow: one port).
fn dnat_flow(i: usize) -> Flow {
    let i = i as u32;
    Flow {
        src: Ipv4Addr::from(0xcb00_0000 | (i >> 6)),
        dst: NODE,
        sport: 1024 + (i & 63) as u16,
        dport: FIRST_PUBLISHED + (i as usize % PUBLISHED) as u16,
    }
}

/// Writes `flow` as a 64-byte UDP frame into `frame`, checksums correct.
fn build(frame: &mut Vec<u8>, flow: Flow) {
    frame.clear();
    frame.resize(FRAME_LEN, 0);
    frame[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (FRAME_LEN - 14) as u16;
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&flow.src.octets());
    ip[16..20].copy_from_slice(&flow.dst.octets());
    let sum = ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = ip_len - 20;
    let udp = &mut frame[34..];
    udp[0..2].copy_from_slice(&flow.sport.to_be_bytes());
    udp[2..4].copy_from_slice(&flow.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let pseudo = pseudo_header_sum(
        &flow.src.octets(),
        &flow.dst.octets(),
        17,
        u32::from(udp_len),
    );
    let mut sum = !fold(sum_be_words(&frame[34..34 + usize::from(udp_len)], pseudo));
    if sum == 0 {
        sum = 0xffff;
    }
    frame[40..42].copy_from_slice(&sum.to_be_bytes());
}

/// Flow `k` of a scattered walk over `n` flows (a stride coprime with `n`
/// for every count used here).
fn scattered(k: usize, n: usize) -> usize {
    (k.wrapping_mul(40_503)) % n
}

struct Timing {
    median: f64,
    best: f64,
    p99: f64,
}

/// `conntrack_bench`'s `time_case`: `iteration` handles one batch and
/// returns its packet count.
fn time_case(mut iteration: impl FnMut() -> usize) -> Timing {
    let secs: f64 = std::env::var("NAT_BENCH_SECS")
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

/// An engine with a table for `flows` (at least the default size), long
/// timeouts (the clock stands still anyway), masquerade to [`NODE`] and
/// [`PUBLISHED`] UDP ports published to [`SERVER`].
fn engine(flows: usize) -> Nat {
    let day = 86_400 * 10;
    let timeouts = Timeouts {
        udp_assured: day,
        udp_unreplied: day,
        ..Timeouts::LINUX
    };
    let max_entries = (flows + flows / 4).max(ConntrackConfig::DEFAULT_ENTRIES);
    let mut nat = Nat::new(ConntrackConfig {
        max_entries,
        timeouts,
    });
    nat.set_masquerade(Some(Masquerade {
        address: NODE,
        first_port: 1024,
        last_port: 65_535,
    }));
    let mut published = PublishedPorts::new();
    published
        .add(PublishRule {
            protocol: Protocol::Udp,
            host_first: FIRST_PUBLISHED,
            host_last: FIRST_PUBLISHED + PUBLISHED as u16 - 1,
            host_address: None,
            address: SERVER,
            port: FIRST_PUBLISHED,
        })
        .expect("the published range is valid");
    nat.set_published(Arc::new(published), &[NODE]);
    nat
}

/// Frames and metas of one batch.
struct Slots {
    frames: Vec<Vec<u8>>,
    metas: Vec<PacketMeta>,
}

impl Slots {
    fn new() -> Self {
        Slots {
            frames: (0..BATCH).map(|_| Vec::with_capacity(FRAME_LEN)).collect(),
            metas: vec![PacketMeta::new(0); BATCH],
        }
    }

    /// Builds and parses one batch of the flows `flow(k)`, k from `*next`.
    fn prepare(&mut self, next: &mut usize, flow: &impl Fn(usize) -> Flow) {
        for (frame, meta) in self.frames.iter_mut().zip(&mut self.metas) {
            build(frame, flow(*next));
            *next += 1;
            *meta = PacketMeta::new(0);
        }
        parse_stage(&mut self.frames, &mut self.metas);
    }
}

/// What the router does with one packet: before routing, then masquerade
/// for one it left alone (`from_container`: it left a masquerading network).
#[inline]
fn route(
    nat: &mut Nat,
    frame: &mut [u8],
    meta: &mut PacketMeta,
    from_container: bool,
    now: Timestamp,
) -> bool {
    match nat.before_routing(frame, meta, from_container, now) {
        Before::Translated => true,
        Before::Untouched if from_container => {
            matches!(nat.masquerade(frame, meta, now), Before::Translated)
        }
        _ => false,
    }
}

/// Establishes `n` flows of `flow` in `nat` (each sent once, as the router
/// would).
fn warm(nat: &mut Nat, n: usize, flow: &impl Fn(usize) -> Flow, from_container: bool) {
    let now = Timestamp::from_secs(10);
    let mut slots = Slots::new();
    let mut next = 0usize;
    while next < n {
        let start = next;
        slots.prepare(&mut next, &|k| flow(k % n));
        for (j, (frame, meta)) in slots.frames.iter_mut().zip(&mut slots.metas).enumerate() {
            if start + j < n {
                assert!(
                    route(nat, frame, meta, from_container, now),
                    "not translated"
                );
            }
        }
    }
}

/// The process's anonymous memory on huge pages, KiB (Linux).
fn huge_kib() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Build + parse only, over `n` flows.
fn bench_prepare(n: usize) -> Timing {
    let mut slots = Slots::new();
    let mut k = 0usize;
    time_case(|| {
        slots.prepare(&mut k, &|k| masq_flow(scattered(k, n)));
        black_box(&slots.metas);
        BATCH
    })
}

/// Established flows of `flow` over `n`, through the engine.
fn bench_established(n: usize, flow: impl Fn(usize) -> Flow, from_container: bool) -> Timing {
    let prefetch = prefetching();
    let mut nat = engine(n);
    warm(&mut nat, n, &flow, from_container);
    let created = nat.stats();
    if let Some(kib) = huge_kib() {
        println!("  ({} MiB of the process on huge pages)", kib >> 10);
    }
    let now = Timestamp::from_secs(11);
    let mut slots = Slots::new();
    let mut k = 0usize;
    let mut bad = 0usize;
    let timing = time_case(|| {
        slots.prepare(&mut k, &|k| flow(scattered(k, n)));
        if prefetch {
            nat.prefetch(&slots.metas);
        }
        for (frame, meta) in slots.frames.iter_mut().zip(&mut slots.metas) {
            if !route(&mut nat, frame, meta, from_container, now) {
                bad += 1;
            }
        }
        BATCH
    });
    assert_eq!(bad, 0, "packets not translated");
    let after = nat.stats();
    assert_eq!(
        (after.masqueraded, after.published),
        (created.masqueraded, created.published),
        "established flows only: no flow may be created while timing"
    );
    assert_eq!(nat.table().len(), n);
    timing
}

/// A new masqueraded flow per packet into a full table.
fn bench_masq_new() -> Timing {
    let prefetch = prefetching();
    let mut nat = engine(0);
    let max = nat.table().config().max_entries;
    warm(&mut nat, max, &masq_flow, true);
    assert_eq!(nat.table().len(), max);
    let now = Timestamp::from_secs(11);
    let mut slots = Slots::new();
    let mut next = max;
    let mut bad = 0usize;
    let timing = time_case(|| {
        slots.prepare(&mut next, &masq_flow);
        if prefetch {
            nat.prefetch(&slots.metas);
        }
        for (frame, meta) in slots.frames.iter_mut().zip(&mut slots.metas) {
            if !route(&mut nat, frame, meta, true, now) {
                bad += 1;
            }
        }
        BATCH
    });
    assert_eq!(bad, 0, "new flows not masqueraded");
    assert!(nat.stats().conntrack.early_dropped > 0);
    timing
}

fn main() {
    if cfg!(debug_assertions) {
        println!("(debug build: numbers are not meaningful; use --release)");
    }
    let huge = std::env::var("NAT_BENCH_HUGEPAGES").map_or(true, |v| v != "0");
    ALLOC.set_huge_pages(huge);
    println!(
        "huge pages: {}, prefetch: {}",
        if huge { "asked" } else { "off" },
        if prefetching() { "on" } else { "off" }
    );
    let counts: Vec<usize> = std::env::var("NAT_BENCH_FLOWS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1_000, 100_000, 1_000_000]);
    println!(
        "{:<12} {:>9} {:>14} {:>12} {:>11} {:>16}",
        "case", "flows", "ns/pkt median", "ns/pkt best", "ns/pkt p99", "NAT ns/pkt (net)"
    );
    let row = |case: &str, flows: usize, t: &Timing, base: Option<&Timing>| {
        let net = base.map_or("-".to_string(), |b| format!("{:.1}", t.median - b.median));
        println!(
            "{case:<12} {flows:>9} {:>14.1} {:>12.1} {:>11.1} {net:>16}",
            t.median, t.best, t.p99
        );
    };
    for &n in &counts {
        let base = bench_prepare(n);
        row("prepare", n, &base, None);
        let masq = bench_established(n, masq_flow, true);
        row("masquerade", n, &masq, Some(&base));
        let dnat = bench_established(n, dnat_flow, false);
        row("dnat", n, &dnat, Some(&base));
    }
    let base = bench_prepare(1_000);
    let new = bench_masq_new();
    row(
        "masq_new",
        ConntrackConfig::DEFAULT_ENTRIES,
        &new,
        Some(&base),
    );
}
