//! `switchyard-perf pipeline`: in-memory micro-benchmarks, no I/O.
//!
//! Measures what one core can do per stage of the chain (the parse stage, the
//! L2 stage, the whole chain) and for the poll worker's loop over two
//! in-memory ports, with known-unicast traffic between learned MACs; and the
//! routed path: the router stage alone and the whole chain over frames from
//! network A to its gateway, routed to an uplink-like network's static
//! neighbour. Each stage
//! runs through its `Stage` implementation over a `Batch`, as the worker runs
//! it (counters included). The traffic cycles through `--flows` station pairs
//! spread over as many prepared batches as it takes, so 4,096 flows really
//! touch 8,192 MACs. These are upper bounds: the real dataplane adds the
//! driver and the kernel (see `e2e`).
//!
//! Each case warms up, sizes a chunk of iterations to about a millisecond,
//! then times chunks until its time is up (bounded in count too). The median
//! chunk is the headline: on a shared machine a compile in the background
//! inflates the mean but rarely the median; the best chunk shows the floor.

use crate::frames::{test_mac, udp_flows};
use crate::machine::Machine;
use anyhow::{bail, ensure, Result};
use serde::Serialize;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_drivers::{BatchFrames, FramePool};
use switchyard_pipeline::router::RoutedNetwork;
use switchyard_pipeline::{
    Batch, Chain, Gateway, GatewayStage, L2Config, L2Switch, MacAddr, PacketMeta, ParseStage,
    PortId, Stage, Timestamp, Verdict, MAX_BURST,
};
use switchyard_switch::worker::Worker;

/// How the micro-benchmarks are set up.
#[derive(Clone, Debug, Serialize)]
pub struct MicroOptions {
    /// Measuring time per case.
    pub seconds: f64,
    /// Batch sizes to measure (frames per stage call / per port per loop turn).
    pub batches: Vec<usize>,
    /// Station pairs: flow i goes from MAC a_i on port 0 to MAC b_i on port 1.
    pub flows: usize,
    /// Frame size in bytes (Ethernet without FCS).
    pub frame_size: usize,
    /// Core the benchmark thread is pinned to (`None`: not pinned).
    pub core: Option<usize>,
}

impl MicroOptions {
    /// About how long a run takes: every case per batch size, each with its
    /// warm-up (a quarter of its time, at most 0.2 s) and set-up.
    pub fn planned_seconds(&self) -> f64 {
        let per_case = self.seconds + (self.seconds / 4.0).min(0.2) + 0.05;
        (CASE_NAMES.len() * self.batches.len()) as f64 * per_case
    }
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// What was measured: `parse` (the parse stage), `l2_forward` (the L2
    /// stage), `pipeline` (the whole chain), `gw_echo` / `gw_arp` (the gateway
    /// responder answering echo requests in place / ARP requests with
    /// originated replies), `router` (the router stage alone over a routed
    /// batch), `routed` (the whole chain over a routed batch) or `worker`.
    pub case: &'static str,
    /// Frames per stage call (per port per loop turn for `worker`).
    pub batch: usize,
    /// Packets processed while timing.
    pub packets: u64,
    /// Time spent timing.
    pub seconds: f64,
    /// Timed chunks (each about a millisecond).
    pub chunks: usize,
    /// Median chunk, ns per packet: the headline number.
    pub ns_per_packet_median: f64,
    /// Fastest chunk, ns per packet.
    pub ns_per_packet_best: f64,
    /// 99th-percentile (slow) chunk, ns per packet.
    pub ns_per_packet_p99: f64,
    /// All packets over all timed time, ns per packet.
    pub ns_per_packet_mean: f64,
    /// Millions of packets per second on one core, from the median.
    pub mpps_per_core: f64,
}

/// The `pipeline` result document.
#[derive(Clone, Debug, Serialize)]
pub struct MicroReport {
    /// Always "pipeline".
    pub subcommand: &'static str,
    /// When the run started (Unix seconds).
    pub unix_time: u64,
    /// Where it ran.
    pub machine: Machine,
    /// How it was set up.
    pub options: MicroOptions,
    /// Whether pinning to `options.core` worked.
    pub pinned: bool,
    /// One entry per (case, batch).
    pub results: Vec<CaseResult>,
    /// True when Ctrl-C (or SIGTERM) cut the run short.
    pub interrupted: bool,
}

impl MicroReport {
    /// Prints the results table.
    pub fn print(&self) {
        println!();
        println!(
            "{:<11} {:>6} {:>14} {:>12} {:>11} {:>14}",
            "case", "batch", "ns/pkt median", "ns/pkt best", "ns/pkt p99", "Mpps/core"
        );
        for r in &self.results {
            println!(
                "{:<11} {:>6} {:>14.2} {:>12.2} {:>11.2} {:>14.2}",
                r.case,
                r.batch,
                r.ns_per_packet_median,
                r.ns_per_packet_best,
                r.ns_per_packet_p99,
                r.mpps_per_core
            );
        }
        println!(
            "{}-byte frames, {} flows, known unicast; router / routed = frames from network A \
             through its gateway to an uplink-like network's static neighbour (each iteration \
             restores the rewritten frames: a copy each, included); worker = poll loop over 2 \
             in-memory ports (includes copying each frame into the pool)",
            self.options.frame_size, self.options.flows
        );
    }
}

/// Upper bound on iterations per case, whatever the time: keeps a case bounded
/// in count even if the clock misbehaves.
const MAX_ITERATIONS: u64 = 2_000_000_000;

/// Target length of one timed chunk.
const CHUNK: Duration = Duration::from_millis(1);

/// One benchmark case: sets up its state, checks it, times it.
type Bench = fn(&MicroOptions, usize, &AtomicBool) -> Result<Timing>;

/// Every case, in the order a run measures them (per batch size).
pub const CASE_NAMES: [&str; 8] = [
    "parse",
    "l2_forward",
    "pipeline",
    "gw_echo",
    "gw_arp",
    "router",
    "routed",
    "worker",
];

const CASES: [(&str, Bench); 8] = [
    (CASE_NAMES[0], bench_parse),
    (CASE_NAMES[1], bench_forward),
    (CASE_NAMES[2], bench_pipeline),
    (CASE_NAMES[3], bench_gateway_echo),
    (CASE_NAMES[4], bench_gateway_arp),
    (CASE_NAMES[5], bench_router),
    (CASE_NAMES[6], bench_routed),
    (CASE_NAMES[7], bench_worker),
];

/// Runs every case for every batch size.
pub fn run(options: MicroOptions, stop: &AtomicBool) -> Result<MicroReport> {
    ensure!(
        options.seconds > 0.0 && options.seconds <= 600.0,
        "--seconds must be in (0, 600]"
    );
    ensure!(
        options.flows >= 1 && options.flows <= 4096,
        "--flows must be in 1..=4096"
    );
    for &batch in &options.batches {
        ensure!(
            (1..=MAX_BURST).contains(&batch),
            "batch {batch} is outside 1..={MAX_BURST}"
        );
    }
    let machine = Machine::detect();
    machine.print();
    let pinned = options
        .core
        .is_some_and(|id| core_affinity::set_for_current(core_affinity::CoreId { id }));
    let unix_time = crate::report::unix_time();
    let mut results = Vec::new();
    'outer: for &batch in &options.batches {
        for (case, bench) in CASES {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            let timing = bench(&options, batch, stop)?;
            let result = timing.result(case, batch);
            eprintln!(
                "  {case:<10} batch {batch:>3}: {:.2} ns/pkt, {:.2} Mpps/core",
                result.ns_per_packet_median, result.mpps_per_core
            );
            results.push(result);
        }
    }
    Ok(MicroReport {
        subcommand: "pipeline",
        unix_time,
        machine,
        options,
        pinned,
        results,
        interrupted: stop.load(Ordering::Relaxed),
    })
}

/// Station `i` on port 0 (`a`) and its peer on port 1 (`b`).
fn station(side: u8, i: usize) -> [u8; 6] {
    test_mac(side, i as u16)
}

/// `batch` frames from port `from`'s stations to the other side's, flows
/// `first..first + batch` (mod the flow count).
fn batch_frames_from(
    options: &MicroOptions,
    batch: usize,
    from: PortId,
    first: usize,
) -> Result<Vec<Vec<u8>>> {
    let (src, dst) = if from == 0 {
        (0xa0, 0xb0)
    } else {
        (0xb0, 0xa0)
    };
    let mut frames = Vec::with_capacity(batch);
    for i in 0..batch {
        let flow = (first + i) % options.flows;
        frames.extend(udp_flows(
            station(src, flow),
            station(dst, flow),
            options.frame_size,
            1,
        )?);
    }
    Ok(frames)
}

/// `batch` frames from port `from`, cycling through the flows from flow 0.
fn batch_frames(options: &MicroOptions, batch: usize, from: PortId) -> Result<Vec<Vec<u8>>> {
    batch_frames_from(options, batch, from, 0)
}

/// Batches from port 0 that together cover every flow: a case cycles through
/// them, so a run with many flows touches all of their MACs.
fn batch_sets(options: &MicroOptions, batch: usize) -> Result<Vec<Vec<Vec<u8>>>> {
    (0..options.flows.div_ceil(batch).max(1))
        .map(|set| batch_frames_from(options, batch, 0, set * batch))
        .collect()
}

/// Fresh metas for a batch received on `port`.
fn fresh_metas(batch: usize, port: PortId) -> Vec<PacketMeta> {
    vec![PacketMeta::new(port); batch]
}

/// A switch with ports 0 and 1 in one domain that has learned every station of
/// both sides (so port 0's traffic is known unicast to port 1).
fn learned_switch(options: &MicroOptions, batch: usize) -> Result<L2Switch> {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(0));
    l2.set_port_domain(1, Some(0));
    let now = Timestamp::from_secs(1);
    for port in [1, 0] {
        let mut frames = batch_frames(options, options.flows.max(batch), port)?;
        let mut metas = fresh_metas(frames.len(), port);
        l2.process(&mut frames, &mut metas, now);
    }
    Ok(l2)
}

/// Checks that every frame of port 0's batch is forwarded to port 1.
fn check_unicast(metas: &[PacketMeta]) -> Result<()> {
    if let Some(meta) = metas.iter().find(|m| m.verdict != Verdict::Forward(1)) {
        bail!(
            "expected known unicast to port 1, the pipeline said {:?}",
            meta.verdict
        );
    }
    Ok(())
}

fn bench_parse(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut sets = batch_sets(options, batch)?;
    let mut metas = fresh_metas(batch, 0);
    let mut stage = ParseStage::new();
    let now = Timestamp::from_secs(2);
    for frames in &mut sets {
        metas.fill(PacketMeta::new(0));
        stage.process(&mut Batch::new(frames, &mut metas, now));
        if let Some(meta) = metas.iter().find(|m| m.verdict != Verdict::Pending) {
            bail!(
                "the parse stage rejected a benchmark frame: {:?}",
                meta.verdict
            );
        }
    }
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        metas.fill(PacketMeta::new(0));
        let count = sets.len();
        let frames = &mut sets[set];
        set = (set + 1) % count;
        stage.process(&mut Batch::new(black_box(frames), &mut metas, now));
        black_box(&metas);
        batch
    }))
}

fn bench_forward(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut l2 = learned_switch(options, batch)?;
    let mut sets = batch_sets(options, batch)?;
    let now = Timestamp::from_secs(2);
    // Each set's metas as the parse stage leaves them.
    let mut parsed = Vec::with_capacity(sets.len());
    for frames in &mut sets {
        let mut metas = fresh_metas(batch, 0);
        ParseStage::new().process(&mut Batch::new(frames, &mut metas, now));
        let mut check = metas.clone();
        Stage::process(&mut l2, &mut Batch::new(frames, &mut check, now));
        check_unicast(&check)?;
        parsed.push(metas);
    }
    let mut metas = fresh_metas(batch, 0);
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        // Restoring the parsed metas costs a small memcpy per batch, included.
        metas.copy_from_slice(&parsed[set]);
        let count = sets.len();
        let frames = &mut sets[set];
        set = (set + 1) % count;
        Stage::process(&mut l2, &mut Batch::new(black_box(frames), &mut metas, now));
        black_box(&metas);
        batch
    }))
}

fn bench_pipeline(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut chain = Chain::new(learned_switch(options, batch)?);
    let mut sets = batch_sets(options, batch)?;
    let mut metas = fresh_metas(batch, 0);
    let now = Timestamp::from_secs(2);
    for frames in &mut sets {
        metas.fill(PacketMeta::new(0));
        chain.run(&mut Batch::new(frames, &mut metas, now));
        check_unicast(&metas)?;
    }
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        metas.fill(PacketMeta::new(0));
        let count = sets.len();
        let frames = &mut sets[set];
        set = (set + 1) % count;
        chain.run(&mut Batch::new(black_box(frames), &mut metas, now));
        black_box(&metas);
        batch
    }))
}

fn bench_worker(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(0));
    l2.set_port_domain(1, Some(0));
    // Each port replays every flow, a burst at a time.
    let replay = options.flows.div_ceil(batch).max(1) * batch;
    let ports = vec![
        MemPort::replaying(batch_frames(options, replay, 0)?),
        MemPort::replaying(batch_frames(options, replay, 1)?),
    ];
    // Room for both ports' bursts in flight plus flood copies while learning.
    let frames = (4 * batch).next_power_of_two().max(1024) as u32;
    let pool = MemPool::new(frames, 2048);
    let mut worker = Worker::new(pool, ports, l2, batch);
    let start = Instant::now();
    let now = || Timestamp(1_000_000_000 + start.elapsed().as_nanos() as u64);
    // Two passes over the replayed frames teach the switch every station of
    // both sides.
    for _ in 0..2 * replay / batch {
        worker.poll_once(now());
    }
    let learned = worker.l2().mac_table().len();
    let stations = 2 * options.flows;
    ensure!(
        learned == stations,
        "the worker learned {learned} MACs, expected {stations}"
    );
    let tx_before: u64 = worker.ports().iter().map(|p| p.tx_count).sum();
    let timing = time_case(options.seconds, stop, || worker.poll_once(black_box(now())));
    let tx: u64 = worker.ports().iter().map(|p| p.tx_count).sum::<u64>() - tx_before;
    let drops: u64 = worker.port_counters().iter().map(|c| c.drops.total()).sum();
    ensure!(drops == 0, "the worker dropped {drops} frames");
    // Every received frame left exactly once: no flood copies, so known unicast.
    let received = timing.packets + timing.warmup_packets;
    ensure!(
        tx == received,
        "the worker sent {tx} frames for {received} received (flooding?)"
    );
    Ok(timing)
}

/// The gateway of the benchmarks' network (domain 0).
const GATEWAY: Gateway = Gateway {
    ip: std::net::Ipv4Addr::new(10, 83, 0, 1),
    mac: MacAddr([0x02, 0x53, 0x59, 0, 0, 1]),
};

/// A chain whose domain 0 has the benchmark gateway, and the responder for it.
fn gateway_setup() -> (Chain, GatewayStage) {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(0));
    l2.set_port_domain(1, Some(0));
    l2.set_domain_gateway(0, Some(GATEWAY.mac));
    let mut gw = GatewayStage::new();
    gw.set_gateway(0, Some(GATEWAY));
    (Chain::new(l2), gw)
}

/// Echo requests to the gateway from `flows` different hosts (MAC and IPv4),
/// padded to the frame size.
fn echo_requests(options: &MicroOptions, batch: usize, first: usize) -> Result<Vec<Vec<u8>>> {
    let payload = vec![0x5a; options.frame_size.saturating_sub(42)];
    (0..batch)
        .map(|i| {
            let host = (first + i) % options.flows;
            let b = etherparse::PacketBuilder::ethernet2(station(0xa0, host), GATEWAY.mac.0)
                .ipv4(
                    [10, 84, (host >> 8) as u8, host as u8],
                    GATEWAY.ip.octets(),
                    64,
                )
                .icmpv4_echo_request(host as u16, 1);
            let mut frame = Vec::with_capacity(b.size(payload.len()));
            b.write(&mut frame, &payload)?;
            Ok(frame)
        })
        .collect()
}

/// ARP requests for the gateway address from `flows` different hosts.
fn arp_requests(options: &MicroOptions, batch: usize, first: usize) -> Vec<Vec<u8>> {
    (0..batch)
        .map(|i| {
            let host = (first + i) % options.flows;
            let mac = station(0xa0, host);
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&mac);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&[10, 84, (host >> 8) as u8, host as u8]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&GATEWAY.ip.octets());
            f.resize(options.frame_size.max(60), 0);
            f
        })
        .collect()
}

/// The gateway answering echo requests in place. Each iteration first restores
/// the requests and their metas as parse + L2 leave them (a copy of each frame
/// and meta, included in the time).
fn bench_gateway_echo(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let (mut chain, mut gw) = gateway_setup();
    let now = Timestamp::from_secs(2);
    let sets: Vec<Vec<Vec<u8>>> = (0..options.flows.div_ceil(batch).max(1))
        .map(|set| echo_requests(options, batch, set * batch))
        .collect::<Result<_>>()?;
    let mut parsed = Vec::with_capacity(sets.len());
    for frames in &sets {
        let mut frames = frames.clone();
        let mut metas = fresh_metas(batch, 0);
        chain.run(&mut Batch::new(&mut frames, &mut metas, now));
        ensure!(
            metas.iter().all(|m| m.verdict == Verdict::ToGateway),
            "echo requests did not reach the gateway"
        );
        gw.process(&mut Batch::new(&mut frames, &mut metas, now));
        ensure!(
            metas.iter().all(|m| m.verdict == Verdict::Forward(0)),
            "the gateway did not answer every echo request"
        );
        parsed.push(fresh_metas(batch, 0));
        let last = parsed.len() - 1;
        let mut fresh = sets[last].clone();
        chain.run(&mut Batch::new(&mut fresh, &mut parsed[last], now));
    }
    let mut frames = sets[0].clone();
    let mut metas = fresh_metas(batch, 0);
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        for (frame, pristine) in frames.iter_mut().zip(&sets[set]) {
            frame.copy_from_slice(pristine);
        }
        metas.copy_from_slice(&parsed[set]);
        set = (set + 1) % sets.len();
        gw.process(&mut Batch::new(black_box(&mut frames), &mut metas, now));
        black_box(&metas);
        batch
    }))
}

/// The gateway answering ARP requests with replies originated into frames of
/// an in-memory pool (no allocation). Each iteration receives the requests into
/// the pool (a copy each, as the in-memory driver does), restores their metas,
/// runs the stage and frees every frame, all included in the time.
fn bench_gateway_arp(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let (mut chain, mut gw) = gateway_setup();
    let now = Timestamp::from_secs(2);
    let sets: Vec<Vec<Vec<u8>>> = (0..options.flows.div_ceil(batch).max(1))
        .map(|set| arp_requests(options, batch, set * batch))
        .collect();
    let mut parsed = Vec::with_capacity(sets.len());
    for frames in &sets {
        let mut frames = frames.clone();
        let mut metas = fresh_metas(batch, 0);
        chain.run(&mut Batch::new(&mut frames, &mut metas, now));
        ensure!(
            metas.iter().all(|m| m.verdict == Verdict::Flood),
            "ARP requests were not flooded by L2"
        );
        parsed.push(metas);
    }
    let mut pool = MemPool::new((4 * batch) as u32, 2048);
    let mut handles = Vec::with_capacity(2 * batch);
    let mut metas = vec![PacketMeta::new(0); 2 * batch];
    let mut set = 0;
    let mut check = true;
    let mut failure = None;
    let timing = time_case(options.seconds, stop, || {
        for frame in &sets[set] {
            if let Some(h) = pool.alloc_from(frame) {
                handles.push(h);
            }
        }
        metas[..batch].copy_from_slice(&parsed[set]);
        set = (set + 1) % sets.len();
        let mut frames = BatchFrames {
            pool: &mut pool,
            handles: &mut handles,
        };
        gw.process(&mut Batch::new(&mut frames, &mut metas, now));
        if check {
            check = false;
            if handles.len() != 2 * batch {
                failure = Some(handles.len());
            }
        }
        black_box(&metas);
        for h in handles.drain(..) {
            pool.free(h);
        }
        batch
    });
    if let Some(n) = failure {
        bail!(
            "the gateway originated {} replies for {batch} requests",
            n - batch
        );
    }
    Ok(timing)
}

/// Network A of the routed cases (domain 0, port 0): the containers' side.
const NET_A: RoutedNetwork = RoutedNetwork {
    domain: 0,
    subnet: Ipv4Addr::new(10, 83, 1, 0),
    prefix_len: 24,
    gateway: Gateway {
        ip: Ipv4Addr::new(10, 83, 1, 1),
        mac: MacAddr([0x02, 0x53, 0x59, 0, 1, 1]),
    },
    // Isolated, as networks are by default: the uplink is open to it.
    isolated: true,
    open: false,
    mtu: 1500,
    masquerade: false,
};

/// The uplink-like network of the routed cases (domain 1, port 1).
const NET_UP: RoutedNetwork = RoutedNetwork {
    domain: 1,
    subnet: Ipv4Addr::new(10, 83, 2, 0),
    prefix_len: 24,
    gateway: Gateway {
        ip: Ipv4Addr::new(10, 83, 2, 10),
        mac: MacAddr([0x02, 0x53, 0x59, 0, 2, 10]),
    },
    // Open to every network, as the daemon's uplink network is.
    isolated: false,
    open: true,
    mtu: 1500,
    masquerade: false,
};

/// The routed frames' destination: a static neighbour behind port 1.
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 83, 2, 1);

/// Its MAC.
const OUTSIDE_MAC: [u8; 6] = [0x02, 0x53, 0x59, 0xc0, 0, 1];

/// A chain routing network A (port 0) to the uplink-like network (port 1),
/// with the outside host a static neighbour whose port the L2 table knows.
fn routed_chain() -> Result<Chain> {
    let mut l2 = L2Switch::new(L2Config::default());
    l2.set_port_domain(0, Some(NET_A.domain));
    l2.set_port_domain(1, Some(NET_UP.domain));
    let mut chain = Chain::new(l2);
    chain.set_network(NET_A.domain, Some(NET_A));
    chain.set_network(NET_UP.domain, Some(NET_UP));
    chain
        .router
        .set_static_neighbour(OUTSIDE_IP, Some(MacAddr(OUTSIDE_MAC)));
    // One frame from the outside host teaches the L2 table its port.
    let mut frames = udp_flows(OUTSIDE_MAC, NET_UP.gateway.mac.0, 64, 1)?;
    let mut metas = fresh_metas(1, 1);
    chain.run(&mut Batch::new(
        &mut frames,
        &mut metas,
        Timestamp::from_secs(1),
    ));
    Ok(chain)
}

/// `batch` frames from network A's stations to the outside host through A's
/// gateway, flows `first..` (station MAC, source address and ports per flow).
fn routed_frames(options: &MicroOptions, batch: usize, first: usize) -> Result<Vec<Vec<u8>>> {
    (0..batch)
        .map(|i| {
            let flow = (first + i) % options.flows;
            let host = 2 + (flow % 250) as u8;
            crate::frames::udp_frame(
                &crate::frames::Flow {
                    src_mac: station(0xa0, flow),
                    dst_mac: NET_A.gateway.mac.0,
                    src_ip: [10, 83, 1, host],
                    dst_ip: OUTSIDE_IP.octets(),
                    src_port: 10_000 + (flow % 50_000) as u16,
                    dst_port: 9,
                },
                options.frame_size,
            )
        })
        .collect()
}

/// Routed batches covering every flow (see [`batch_sets`]).
fn routed_sets(options: &MicroOptions, batch: usize) -> Result<Vec<Vec<Vec<u8>>>> {
    (0..options.flows.div_ceil(batch).max(1))
        .map(|set| routed_frames(options, batch, set * batch))
        .collect()
}

/// Checks that every frame of a routed batch left for port 1, rewritten.
fn check_routed(frames: &[Vec<u8>], metas: &[PacketMeta]) -> Result<()> {
    if let Some(meta) = metas.iter().find(|m| m.verdict != Verdict::Forward(1)) {
        bail!(
            "expected routed frames to port 1, the chain said {:?}",
            meta.verdict
        );
    }
    if let Some(frame) = frames
        .iter()
        .find(|f| f[..6] != OUTSIDE_MAC || f[6..12] != NET_UP.gateway.mac.0 || f[22] != 63)
    {
        bail!("a routed frame was not rewritten: {:02x?}", &frame[..24]);
    }
    Ok(())
}

/// The router stage alone. Each iteration restores the frames (the router
/// rewrote their MACs and TTL) and their metas as parse, L2 and the gateway
/// stage leave them: a copy of each frame and meta, included in the time
/// (as in `gw_echo`).
fn bench_router(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut chain = routed_chain()?;
    let now = Timestamp::from_secs(2);
    let sets = routed_sets(options, batch)?;
    let mut parsed = Vec::with_capacity(sets.len());
    for pristine in &sets {
        let mut frames = pristine.clone();
        let mut metas = fresh_metas(batch, 0);
        chain.run(&mut Batch::new(&mut frames, &mut metas, now));
        check_routed(&frames, &metas)?;
        // The metas as the router finds them: parse + L2 + gateway only.
        let mut frames = pristine.clone();
        let mut metas = fresh_metas(batch, 0);
        {
            let mut b = Batch::new(&mut frames, &mut metas, now);
            Stage::process(&mut chain.parse, &mut b);
            Stage::process(&mut chain.l2, &mut b);
            Stage::process(&mut chain.gateway, &mut b);
        }
        ensure!(
            metas.iter().all(|m| m.verdict == Verdict::ToGateway),
            "routed frames did not reach the router as ToGateway"
        );
        parsed.push(metas);
    }
    let mut frames = sets[0].clone();
    let mut metas = fresh_metas(batch, 0);
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        for (frame, pristine) in frames.iter_mut().zip(&sets[set]) {
            frame.copy_from_slice(pristine);
        }
        metas.copy_from_slice(&parsed[set]);
        set = (set + 1) % sets.len();
        let mut b = Batch::new(black_box(&mut frames), &mut metas, now);
        chain.router.route(&chain.l2, &mut b);
        black_box(&metas);
        batch
    }))
}

/// The whole chain (parse, L2, gateway, router) over routed batches; each
/// iteration restores the frames first (a copy each, included in the time).
fn bench_routed(options: &MicroOptions, batch: usize, stop: &AtomicBool) -> Result<Timing> {
    let mut chain = routed_chain()?;
    let now = Timestamp::from_secs(2);
    let sets = routed_sets(options, batch)?;
    for pristine in &sets {
        let mut frames = pristine.clone();
        let mut metas = fresh_metas(batch, 0);
        chain.run(&mut Batch::new(&mut frames, &mut metas, now));
        check_routed(&frames, &metas)?;
    }
    let mut frames = sets[0].clone();
    let mut metas = fresh_metas(batch, 0);
    let mut set = 0;
    Ok(time_case(options.seconds, stop, || {
        for (frame, pristine) in frames.iter_mut().zip(&sets[set]) {
            frame.copy_from_slice(pristine);
        }
        metas.fill(PacketMeta::new(0));
        set = (set + 1) % sets.len();
        chain.run(&mut Batch::new(black_box(&mut frames), &mut metas, now));
        black_box(&metas);
        batch
    }))
}

/// Raw timing of one case.
struct Timing {
    /// ns per packet of each timed chunk.
    chunk_ns_per_packet: Vec<f64>,
    /// Packets processed while timing.
    packets: u64,
    /// Packets processed while warming up.
    warmup_packets: u64,
    /// Time spent timing.
    elapsed: Duration,
}

impl Timing {
    fn result(&self, case: &'static str, batch: usize) -> CaseResult {
        let mut sorted = self.chunk_ns_per_packet.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let median = at(0.5);
        CaseResult {
            case,
            batch,
            packets: self.packets,
            seconds: self.elapsed.as_secs_f64(),
            chunks: sorted.len(),
            ns_per_packet_median: median,
            ns_per_packet_best: at(0.0),
            ns_per_packet_p99: at(0.99),
            ns_per_packet_mean: self.elapsed.as_nanos() as f64 / self.packets.max(1) as f64,
            mpps_per_core: if median > 0.0 { 1e3 / median } else { 0.0 },
        }
    }
}

/// Warms up, sizes ~1 ms chunks, then times chunks of `iteration` (which
/// processes one batch and returns how many packets it handled) for `seconds`.
fn time_case(seconds: f64, stop: &AtomicBool, mut iteration: impl FnMut() -> usize) -> Timing {
    let budget = Duration::from_secs_f64(seconds);
    let warmup = (budget / 4).min(Duration::from_millis(200));
    let mut iterations = 0u64;
    let mut warmup_packets = 0u64;
    let warm_start = Instant::now();
    while iterations < MAX_ITERATIONS && warm_start.elapsed() < warmup {
        for _ in 0..16 {
            warmup_packets += iteration() as u64;
        }
        iterations += 16;
    }
    let per_iteration = warm_start.elapsed().as_secs_f64() / iterations.max(1) as f64;
    let chunk_iterations =
        ((CHUNK.as_secs_f64() / per_iteration.max(1e-9)) as u64).clamp(1, 1_000_000);

    let mut chunks = Vec::new();
    let mut packets = 0u64;
    let start = Instant::now();
    let mut timed_iterations = 0u64;
    while start.elapsed() < budget
        && timed_iterations < MAX_ITERATIONS
        && !stop.load(Ordering::Relaxed)
    {
        let chunk_start = Instant::now();
        let mut chunk_packets = 0u64;
        for _ in 0..chunk_iterations {
            chunk_packets += iteration() as u64;
        }
        let ns = chunk_start.elapsed().as_nanos() as f64;
        timed_iterations += chunk_iterations;
        packets += chunk_packets;
        if chunk_packets > 0 {
            chunks.push(ns / chunk_packets as f64);
        }
    }
    Timing {
        chunk_ns_per_packet: chunks,
        packets,
        warmup_packets,
        elapsed: start.elapsed(),
    }
}
