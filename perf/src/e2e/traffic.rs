//! The AF_XDP traffic rig: a generator socket on the generator namespace's
//! veth and a sink socket on the sink namespace's, held for a whole
//! dataplane's UDP measurements.
//!
//! The generator paces by rate ([`crate::pacing`]): each batch of due frames
//! gets its probes (run, sequence number, CLOCK_MONOTONIC send time) stamped
//! in place, goes on the TX ring and leaves with one kick. The sink feeds
//! every probe to [`ProbeStats`]: one clock read per received batch gives the
//! one-way latency of each frame in it.
//!
//! Two layouts:
//! - **One thread** (generator and sink on the same core, the default): one
//!   thread owns both sockets and polls the sink's RX ring between the
//!   generator's batches and while it waits for the pacer, as hardware
//!   traffic generators (TRex, pktgen-DPDK) serve RX and TX from one core.
//!   Two busy threads on one core would share it by time slices, so a frame
//!   could wait a whole slice (milliseconds) in the sink's ring and the
//!   generator would lose the core at random.
//! - **Two threads** (different cores): the sink sleeps in poll() until
//!   frames arrive and runs at SCHED_FIFO so it is served at once.
//!
//! One point: the sink is armed with the point's run id, the generator sends
//! for the point's duration, in-flight frames get a moment to land, the sink
//! is stopped and both report. Every wait is bounded, and the threads exit
//! when the rig is dropped.

use super::netns::{self, NsThread};
use crate::flows::PortFlows;
use crate::latency::ProbeStats;
use crate::macs::MacPairs;
use crate::pacing::Pacer;
use crate::payload::{self, Probe};
use crate::sys;
use crate::xsk::{AttachMode, SocketStats, XskRx, XskTx};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames per kick at most: the kernel transmits at most 32 frames per
/// copy-mode `sendto` (its TX budget), so a larger batch would need a
/// second kick.
pub const MAX_TX_BATCH: usize = 32;

/// The generator's UMEM: frames in flight at most (TX ring + completions).
const GEN_FRAMES: u32 = 4096;

/// TX and completion ring entries of the generator.
const GEN_RING: u32 = 2048;

/// The sink's UMEM, fill ring and RX ring: the AF_XDP notes found that
/// fewer than ~4k frames on the fill ring drop frames on short preemptions.
const SINK_FRAMES: u32 = 4096;

/// How long the sink sleeps in poll() at most before looking for commands.
const SINK_POLL_MS: i32 = 1;

/// Waits above this are slept (with 1 ns timer slack); shorter ones yield.
const SLEEP_THRESHOLD_NS: u64 = 50_000;

/// How long a rig thread waits for its next command before it gives up.
const IDLE_LIMIT: Duration = Duration::from_secs(900);

/// Time given to frames still in rings and queues after the generator stops.
pub const DRAIN: Duration = Duration::from_millis(150);

/// Where the rig runs and on which cores.
#[derive(Clone, Debug)]
pub struct RigConfig {
    /// Namespace of the generator.
    pub gen_netns: String,
    /// Namespace of the sink.
    pub sink_netns: String,
    /// Interface (the same name in both namespaces).
    pub interface: String,
    /// Core of the generator thread.
    pub gen_core: Option<usize>,
    /// Core of the sink thread.
    pub sink_core: Option<usize>,
}

/// What to send for one point.
#[derive(Clone, Debug)]
pub struct PointSpec {
    /// Run id stamped into every probe (the sink ignores other ids).
    pub run: u16,
    /// One template per flow (see [`payload::make_template`]), all one size.
    pub templates: Vec<Vec<u8>>,
    /// Frames per second; `None` sends as fast as the socket takes them.
    pub rate_pps: Option<f64>,
    /// Sending time.
    pub duration: Duration,
    /// Upper bound on frames, whatever the duration.
    pub max_frames: u64,
    /// Rewrite each frame's MACs to cycle through these pairs (frame *k*
    /// gets pair *k mod count*); `None` keeps the templates' MACs.
    pub mac_pairs: Option<MacPairs>,
    /// Rewrite each frame's UDP ports to cycle through these flows (frame
    /// *k* gets flow *k mod count*); `None` keeps the templates' ports.
    pub port_flows: Option<PortFlows>,
}

/// What the generator did during one point.
#[derive(Clone, Debug, Default)]
pub struct GenResult {
    /// Frames put on the TX ring (offered).
    pub sent: u64,
    /// Bytes in those frames.
    pub sent_bytes: u64,
    /// From the first send to the end of the last.
    pub elapsed: Duration,
    /// TX kicks (sendto calls).
    pub kicks: u64,
    /// Frames the pacer skipped because the generator fell behind the rate.
    pub skipped: u64,
    /// Loop turns that found no free frame or ring slot, or the kernel
    /// still working off the last batch.
    pub stalls: u64,
    /// Most frames seen waiting on the TX ring after a kick (the
    /// generator's own queue; it adds no more while a batch is waiting).
    pub max_tx_pending: usize,
    /// Frames not back from the kernel after the final drain.
    pub unfinished: usize,
    /// Whether pinning to its core worked.
    pub pinned: bool,
    /// Kernel counters of the generator's socket during the point.
    pub socket: SocketStats,
}

/// What the sink saw during one point.
#[derive(Debug)]
pub struct SinkResult {
    /// Probes, latency, loss and order.
    pub probes: ProbeStats,
    /// Frames received (any, including foreign ones).
    pub frames: u64,
    /// Kernel counters of the sink's socket during the point.
    pub socket: SocketStats,
    /// Most frames seen waiting on the sink's RX ring (the sink's own queue).
    pub max_rx_backlog: usize,
}

enum GenCommand {
    Run(PointSpec),
}

enum SinkCommand {
    Arm { run: u16, max_frames: u64 },
    Stop,
}

enum SinkReply {
    Armed,
    Done(Box<SinkResult>),
}

/// The running rig: its thread(s) and what they answer.
pub struct Rig {
    threads: RigThreads,
    sink_mode: AttachMode,
    sink_fifo: Option<bool>,
}

/// The two layouts (see the module docs).
enum RigThreads {
    One {
        commands: Option<Sender<PointSpec>>,
        replies: Receiver<Result<(GenResult, SinkResult)>>,
        thread: Option<NsThread<()>>,
    },
    Two {
        gen_tx: Option<Sender<GenCommand>>,
        gen_rx: Receiver<Result<GenResult>>,
        sink_tx: Option<Sender<SinkCommand>>,
        sink_rx: Receiver<Result<SinkReply>>,
        gen_thread: Option<NsThread<()>>,
        sink_thread: Option<NsThread<()>>,
    },
}

impl Rig {
    /// Starts the rig and opens its sockets (the sink attaches its XDP
    /// program to its interface): one thread when the generator and the
    /// sink share a core, else two. Fails if either socket cannot open.
    pub fn start(config: &RigConfig, stop: &Arc<AtomicBool>) -> Result<Rig> {
        if config.gen_core.is_some() && config.gen_core == config.sink_core {
            Self::start_one_thread(config, stop)
        } else {
            Self::start_two_threads(config, stop)
        }
    }

    fn start_one_thread(config: &RigConfig, stop: &Arc<AtomicBool>) -> Result<Rig> {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let cfg = config.clone();
        let stop = Arc::clone(stop);
        // Enters the sink's namespace first (the sink's socket and XDP
        // program), then the generator's for its socket; a bound socket keeps
        // its device whatever namespace its thread is in afterwards.
        let thread = netns::spawn_in(&config.sink_netns, "syp-rig", move || {
            one_thread(&cfg, cmd_rx, reply_tx, ready_tx, &stop)
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(sink_mode)) => Ok(Rig {
                threads: RigThreads::One {
                    commands: Some(cmd_tx),
                    replies: reply_rx,
                    thread: Some(thread),
                },
                sink_mode,
                sink_fifo: None,
            }),
            Ok(Err(error)) => {
                let _ = thread.join(Duration::from_secs(5));
                Err(error)
            }
            Err(_) => {
                let error = thread
                    .join(Duration::from_secs(5))
                    .err()
                    .unwrap_or_else(|| anyhow!("the rig thread did not start"));
                Err(error.context("starting the traffic rig"))
            }
        }
    }

    fn start_two_threads(config: &RigConfig, stop: &Arc<AtomicBool>) -> Result<Rig> {
        let (sink_cmd_tx, sink_cmd_rx) = mpsc::channel();
        let (sink_reply_tx, sink_reply_rx) = mpsc::channel();
        let (sink_ready_tx, sink_ready_rx) = mpsc::channel();
        let interface = config.interface.clone();
        let core = config.sink_core;
        let sink_thread = netns::spawn_in(&config.sink_netns, "syp-sink", move || {
            sink_thread(&interface, core, sink_cmd_rx, sink_reply_tx, sink_ready_tx)
        })?;
        let ready = sink_ready_rx.recv_timeout(Duration::from_secs(10));
        let (sink_mode, sink_fifo) = match ready {
            Ok(Ok(ready)) => ready,
            Ok(Err(error)) => {
                let _ = sink_thread.join(Duration::from_secs(5));
                return Err(error.context("opening the sink's AF_XDP socket"));
            }
            Err(_) => {
                let error = sink_thread
                    .join(Duration::from_secs(5))
                    .err()
                    .unwrap_or_else(|| anyhow!("the sink did not start"));
                return Err(error.context("starting the sink"));
            }
        };

        let (gen_cmd_tx, gen_cmd_rx) = mpsc::channel();
        let (gen_reply_tx, gen_reply_rx) = mpsc::channel();
        let (gen_ready_tx, gen_ready_rx) = mpsc::channel();
        let interface = config.interface.clone();
        let core = config.gen_core;
        let stop = Arc::clone(stop);
        let gen_thread = netns::spawn_in(&config.gen_netns, "syp-generator", move || {
            gen_thread(
                &interface,
                core,
                gen_cmd_rx,
                gen_reply_tx,
                gen_ready_tx,
                &stop,
            )
        })?;
        let mut rig = Rig {
            threads: RigThreads::Two {
                gen_tx: Some(gen_cmd_tx),
                gen_rx: gen_reply_rx,
                sink_tx: Some(sink_cmd_tx),
                sink_rx: sink_reply_rx,
                gen_thread: Some(gen_thread),
                sink_thread: Some(sink_thread),
            },
            sink_mode,
            sink_fifo: Some(sink_fifo),
        };
        match gen_ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(rig),
            Ok(Err(error)) => Err(error.context("opening the generator's AF_XDP socket")),
            Err(_) => {
                let error = match &mut rig.threads {
                    RigThreads::Two { gen_thread, .. } => gen_thread
                        .take()
                        .and_then(|t| t.join(Duration::from_secs(5)).err()),
                    RigThreads::One { .. } => None,
                }
                .unwrap_or_else(|| anyhow!("the generator did not start"));
                Err(error.context("starting the generator"))
            }
        }
    }

    /// The XDP mode of the sink's program.
    pub fn sink_mode(&self) -> AttachMode {
        self.sink_mode
    }

    /// Whether the sink got real-time priority (`None`: one thread serves
    /// generator and sink, so there is nothing to preempt).
    pub fn sink_fifo(&self) -> Option<bool> {
        self.sink_fifo
    }

    /// Measures one point: arm the sink, send, let in-flight frames land,
    /// stop the sink.
    pub fn measure(&mut self, spec: PointSpec) -> Result<(GenResult, SinkResult)> {
        match &mut self.threads {
            RigThreads::One {
                commands, replies, ..
            } => {
                let commands = commands.as_ref().ok_or_else(|| anyhow!("rig stopped"))?;
                let limit = spec.duration + Duration::from_secs(10);
                commands
                    .send(spec)
                    .map_err(|_| anyhow!("the rig thread has exited"))?;
                match replies.recv_timeout(limit) {
                    Ok(result) => result,
                    Err(_) => bail!("the rig did not finish a point within {limit:?}"),
                }
            }
            RigThreads::Two {
                gen_tx,
                gen_rx,
                sink_tx,
                sink_rx,
                ..
            } => {
                let sink = sink_tx.as_ref().ok_or_else(|| anyhow!("rig stopped"))?;
                let gen = gen_tx.as_ref().ok_or_else(|| anyhow!("rig stopped"))?;
                sink.send(SinkCommand::Arm {
                    run: spec.run,
                    max_frames: spec.max_frames,
                })
                .map_err(|_| anyhow!("the sink thread has exited"))?;
                match sink_rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(Ok(SinkReply::Armed)) => {}
                    Ok(Ok(SinkReply::Done(_))) => bail!("the sink answered out of turn"),
                    Ok(Err(error)) => return Err(error.context("sink")),
                    Err(_) => bail!("the sink did not arm within 5 s"),
                }
                let limit = spec.duration + Duration::from_secs(10);
                gen.send(GenCommand::Run(spec))
                    .map_err(|_| anyhow!("the generator thread has exited"))?;
                let generated = match gen_rx.recv_timeout(limit) {
                    Ok(result) => result.context("generator"),
                    Err(_) => Err(anyhow!("the generator did not finish within {limit:?}")),
                };
                std::thread::sleep(DRAIN);
                // Stop the sink whatever the generator did, so it is ready for
                // the next point (or for shutdown).
                sink.send(SinkCommand::Stop)
                    .map_err(|_| anyhow!("the sink thread has exited"))?;
                let received = match sink_rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(Ok(SinkReply::Done(result))) => *result,
                    Ok(Ok(SinkReply::Armed)) => bail!("the sink answered out of turn"),
                    Ok(Err(error)) => return Err(error.context("sink")),
                    Err(_) => bail!("the sink did not stop within 5 s"),
                };
                Ok((generated?, received))
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Closing the command channels ends the threads' loops.
        let threads = match &mut self.threads {
            RigThreads::One {
                commands, thread, ..
            } => {
                commands.take();
                vec![(thread.take(), "rig")]
            }
            RigThreads::Two {
                gen_tx,
                sink_tx,
                gen_thread,
                sink_thread,
                ..
            } => {
                gen_tx.take();
                sink_tx.take();
                vec![
                    (gen_thread.take(), "generator"),
                    (sink_thread.take(), "sink"),
                ]
            }
        };
        for (thread, what) in threads {
            if let Some(thread) = thread {
                if let Err(error) = thread.join(Duration::from_secs(10)) {
                    eprintln!("switchyard-perf: {what} thread: {error:#}");
                }
            }
        }
    }
}

/// The one-thread layout: opens the sink's socket (in the sink's namespace,
/// where the thread starts), then the generator's in its namespace, and
/// measures points until the command channel closes.
fn one_thread(
    config: &RigConfig,
    commands: Receiver<PointSpec>,
    replies: Sender<Result<(GenResult, SinkResult)>>,
    ready: Sender<Result<AttachMode>>,
    stop: &AtomicBool,
) -> Result<()> {
    let pinned = pin(config.gen_core);
    let _ = sys::set_timer_slack_ns(1);
    let mut rx = match XskRx::open(&config.interface, SINK_FRAMES) {
        Ok(socket) => socket,
        Err(error) => {
            let _ = ready.send(Err(error.context("opening the sink's AF_XDP socket")));
            return Ok(());
        }
    };
    let entered = std::fs::File::open(netns::netns_path(&config.gen_netns))
        .and_then(|ns| sys::setns_net(&ns))
        .with_context(|| format!("entering network namespace {}", config.gen_netns));
    let opened = entered.and_then(|()| {
        XskTx::open(&config.interface, GEN_FRAMES, GEN_RING)
            .context("opening the generator's AF_XDP socket")
    });
    let mut tx = match opened {
        Ok(socket) => socket,
        Err(error) => {
            let _ = ready.send(Err(error));
            return Ok(());
        }
    };
    let _ = ready.send(Ok(rx.mode()));
    serve(&commands, &replies, |spec| {
        measure_one_thread(&mut tx, &mut rx, &spec, stop).map(|mut r| {
            r.0.pinned = pinned;
            r
        })
    })
}

/// Answers each command with `handle`'s result until the command channel
/// closes (or the reply channel does); fails after [`IDLE_LIMIT`] without
/// a command, so a forgotten thread ends by itself.
fn serve<C, R>(
    commands: &Receiver<C>,
    replies: &Sender<R>,
    mut handle: impl FnMut(C) -> R,
) -> Result<()> {
    loop {
        match commands.recv_timeout(IDLE_LIMIT) {
            Ok(command) => {
                if replies.send(handle(command)).is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => bail!("no command for {IDLE_LIMIT:?}"),
        }
    }
}

/// One point in the one-thread layout: send while polling the sink, then
/// keep polling it while in-flight frames land.
fn measure_one_thread(
    tx: &mut XskTx,
    rx: &mut XskRx,
    spec: &PointSpec,
    stop: &AtomicBool,
) -> Result<(GenResult, SinkResult)> {
    let mut session = SinkSession::arm(rx, spec.run, spec.max_frames);
    let before = rx.stats();
    let generated = send_point(tx, spec, stop, Some((&mut *rx, &mut session)))?;
    let until = Instant::now() + DRAIN;
    while Instant::now() < until {
        session.poll(rx);
    }
    Ok((generated, session.finish(rx, &before)))
}

fn pin(core: Option<usize>) -> bool {
    core.is_some_and(|id| core_affinity::set_for_current(core_affinity::CoreId { id }))
}

fn gen_thread(
    interface: &str,
    core: Option<usize>,
    commands: Receiver<GenCommand>,
    replies: Sender<Result<GenResult>>,
    ready: Sender<Result<()>>,
    stop: &AtomicBool,
) -> Result<()> {
    let pinned = pin(core);
    // Short sleeps between batches must end on time, not up to 50 µs late.
    let _ = sys::set_timer_slack_ns(1);
    let mut socket = match XskTx::open(interface, GEN_FRAMES, GEN_RING) {
        Ok(socket) => socket,
        Err(error) => {
            let _ = ready.send(Err(error));
            return Ok(());
        }
    };
    let _ = ready.send(Ok(()));
    serve(&commands, &replies, |GenCommand::Run(spec)| {
        send_point(&mut socket, &spec, stop, None).map(|mut r| {
            r.pinned = pinned;
            r
        })
    })
}

/// The generator's sending loop for one point.
///
/// With `sink` (the one-thread layout) the sink's ring is polled every turn,
/// and waits for the pacer spin on it instead of sleeping.
fn send_point(
    socket: &mut XskTx,
    spec: &PointSpec,
    stop: &AtomicBool,
    mut sink: Option<(&mut XskRx, &mut SinkSession)>,
) -> Result<GenResult> {
    if spec.max_frames > u64::from(u32::MAX) {
        bail!("a point may send at most 2^32 frames (sequence numbers are 32-bit)");
    }
    socket.drain(Duration::from_secs(1));
    socket.load_templates(&spec.templates)?;
    let frame_len = spec.templates[0].len() as u64;
    let stats_before = socket.stats();
    let kicks_before = socket.kicks();
    let mut result = GenResult::default();
    let start = sys::monotonic_ns();
    let deadline = start + spec.duration.as_nanos() as u64;
    let mut pacer = Pacer::new(spec.rate_pps, start, MAX_TX_BATCH);
    let mut seq: u64 = 0;
    // Bounded by the deadline; the turn count bounds it too should the clock
    // stall. A turn reads the clock at least twice (>= 20 ns), so one turn per
    // 10 ns of the point never ends a point early, even when the one-thread
    // layout spins on the sink instead of sleeping.
    let max_turns = spec
        .max_frames
        .saturating_mul(64)
        .max(spec.duration.as_nanos() as u64 / 10)
        .max(1 << 24);
    for _ in 0..max_turns {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some((rx, session)) = sink.as_mut() {
            session.poll(rx);
        }
        let now = sys::monotonic_ns();
        if now >= deadline || seq >= spec.max_frames {
            break;
        }
        let due = pacer.due(now).min((spec.max_frames - seq) as usize);
        if due == 0 {
            let wait = pacer.wait_ns(now).min(deadline - now);
            if sink.is_some() {
                // One thread serves both: spin on the sink's ring.
                continue;
            }
            if wait > SLEEP_THRESHOLD_NS {
                std::thread::sleep(Duration::from_nanos(wait - SLEEP_THRESHOLD_NS / 2));
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        // The kernel has not taken the last batch yet: kick again instead of
        // queueing more (frames waiting here would count as latency).
        let pending = socket.tx_pending();
        if pending >= MAX_TX_BATCH {
            socket.kick()?;
            result.stalls += 1;
            result.max_tx_pending = result.max_tx_pending.max(socket.tx_pending());
            continue;
        }
        let tx_ns = sys::monotonic_ns();
        let run = spec.run;
        let first = seq as u32;
        let pairs = spec.mac_pairs;
        let flows = spec.port_flows;
        let sent = socket.send(due, |k, frame| {
            let probe = Probe {
                run,
                seq: first.wrapping_add(k as u32),
                tx_ns,
            };
            probe.write_to_frame(frame);
            if let Some(pairs) = &pairs {
                pairs.write(frame, pairs.index(seq + k as u64));
            }
            if let Some(flows) = &flows {
                flows.write(frame, flows.index(seq + k as u64));
            }
        })?;
        if sent == 0 {
            result.stalls += 1;
            std::thread::yield_now();
        }
        result.max_tx_pending = result.max_tx_pending.max(socket.tx_pending());
        pacer.sent(sent);
        seq += sent as u64;
    }
    result.elapsed = Duration::from_nanos(sys::monotonic_ns() - start);
    result.sent = seq;
    result.sent_bytes = seq * frame_len;
    result.skipped = pacer.skipped();
    result.unfinished = match sink {
        Some((rx, session)) => {
            let deadline = Instant::now() + Duration::from_millis(500);
            while socket.in_flight() > 0 && Instant::now() < deadline {
                let _ = socket.kick();
                socket.reclaim();
                session.poll(rx);
            }
            socket.in_flight()
        }
        None => socket.drain(Duration::from_millis(500)),
    };
    result.kicks = socket.kicks() - kicks_before;
    result.socket = socket.stats().since(&stats_before);
    Ok(result)
}

fn sink_thread(
    interface: &str,
    core: Option<usize>,
    commands: Receiver<SinkCommand>,
    replies: Sender<Result<SinkReply>>,
    ready: Sender<Result<(AttachMode, bool)>>,
) -> Result<()> {
    pin(core);
    let fifo = sys::set_fifo_priority(10).is_ok();
    let mut socket = match XskRx::open(interface, SINK_FRAMES) {
        Ok(socket) => socket,
        Err(error) => {
            let _ = ready.send(Err(error));
            return Ok(());
        }
    };
    let _ = ready.send(Ok((socket.mode(), fifo)));
    loop {
        match commands.recv_timeout(IDLE_LIMIT) {
            Ok(SinkCommand::Arm { run, max_frames }) => {
                let result = receive_point(&mut socket, run, max_frames, &commands, &replies);
                match result {
                    Ok(Some(done)) => {
                        if replies.send(Ok(SinkReply::Done(Box::new(done)))).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(error) => {
                        let _ = replies.send(Err(error));
                        return Ok(());
                    }
                }
            }
            Ok(SinkCommand::Stop) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => bail!("no command for {IDLE_LIMIT:?}"),
        }
    }
}

/// Longest a point's reception may last (the generator's own limit is
/// shorter): bounds the sink's loop in time whatever the main thread does.
const SINK_SESSION_LIMIT: Duration = Duration::from_secs(700);

/// The sink's receiving loop for one point; `None` when the rig is shutting down.
fn receive_point(
    socket: &mut XskRx,
    run: u16,
    max_frames: u64,
    commands: &Receiver<SinkCommand>,
    replies: &Sender<Result<SinkReply>>,
) -> Result<Option<SinkResult>> {
    let mut session = SinkSession::arm(socket, run, max_frames);
    let before = socket.stats();
    if replies.send(Ok(SinkReply::Armed)).is_err() {
        return Ok(None);
    }
    let deadline = Instant::now() + SINK_SESSION_LIMIT;
    loop {
        match commands.try_recv() {
            Ok(SinkCommand::Stop) => break,
            Ok(SinkCommand::Arm { .. }) => bail!("armed twice"),
            Err(mpsc::TryRecvError::Disconnected) => return Ok(None),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if Instant::now() >= deadline {
            bail!("the point did not end within {SINK_SESSION_LIMIT:?}");
        }
        if session.poll(socket) == 0 {
            socket.wait(SINK_POLL_MS)?;
        }
    }
    Ok(Some(session.finish(socket, &before)))
}

/// The sink's bookkeeping for one point, whichever thread polls its socket.
struct SinkSession {
    probes: ProbeStats,
    frames: u64,
    max_rx_backlog: usize,
}

impl SinkSession {
    /// Discards whatever is still in the ring (it belongs to an earlier
    /// point) and starts counting `run`'s probes.
    fn arm(socket: &mut XskRx, run: u16, max_frames: u64) -> Self {
        let mut stale = 0;
        while stale < 1 << 20 {
            let n = socket.recv(|_| {});
            if n == 0 {
                break;
            }
            stale += n;
        }
        SinkSession {
            probes: ProbeStats::new(run, max_frames),
            frames: 0,
            max_rx_backlog: 0,
        }
    }

    /// Takes what the RX ring holds; returns how many frames.
    fn poll(&mut self, socket: &mut XskRx) -> usize {
        self.max_rx_backlog = self.max_rx_backlog.max(socket.rx_backlog());
        // One clock read per batch: the frames were all in the ring by now.
        let rx_ns = sys::monotonic_ns();
        let probes = &mut self.probes;
        let n = socket.recv(|frame| probes.record(Probe::read_from_frame(frame), rx_ns));
        self.frames += n as u64;
        n
    }

    fn finish(self, socket: &XskRx, before: &SocketStats) -> SinkResult {
        SinkResult {
            probes: self.probes,
            frames: self.frames,
            socket: socket.stats().since(before),
            max_rx_backlog: self.max_rx_backlog,
        }
    }
}

/// Builds the templates of one point: `flows` UDP flows from `src` to `dst`
/// of `size` bytes, with their UDP checksums cleared for the probe.
pub fn templates(src: [u8; 6], dst: [u8; 6], size: usize, flows: usize) -> Result<Vec<Vec<u8>>> {
    let mut frames = crate::frames::udp_flows(src, dst, size, flows.max(1))?;
    for frame in &mut frames {
        if !payload::make_template(frame) {
            bail!("frame of {size} bytes is too short for a probe");
        }
    }
    Ok(frames)
}

/// A run id for each point, so the sink can ignore stragglers of the last one.
#[derive(Debug, Default)]
pub struct RunIds(u16);

impl RunIds {
    /// The next id (wraps after 65536 points, far more than a run measures).
    pub fn next_id(&mut self) -> u16 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// Frames a point may send at most: the rate plus 10 % (unpaced: 20 Mpps, more
/// than one core's AF_XDP copy-mode TX reaches), plus a batch.
pub fn max_frames(rate_pps: Option<f64>, duration: Duration) -> u64 {
    let rate = rate_pps.map_or(20e6, |r| r * 1.1);
    ((rate * duration.as_secs_f64()) as u64 + MAX_TX_BATCH as u64).min(u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bounds_follow_the_rate() {
        assert_eq!(
            max_frames(Some(100_000.0), Duration::from_secs(2)),
            220_000 + 32
        );
        assert_eq!(max_frames(None, Duration::from_secs(1)), 20_000_000 + 32);
        assert_eq!(
            max_frames(Some(1e12), Duration::from_secs(600)),
            u64::from(u32::MAX)
        );
    }

    #[test]
    fn run_ids_change_every_point() {
        let mut ids = RunIds::default();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
    }
}
