//! The traffic generator: one thread inside the generator's namespace, pinned to
//! one core, blasting a fixed set of frames through a raw `AF_PACKET` socket
//! with `PACKET_QDISC_BYPASS` and `sendmmsg`, as fast as the kernel takes them.
//!
//! Offered load is what `sendmmsg` reports as sent: a frame the veth then drops
//! still counts as offered, so loss shows up where it happens.

use super::netns;
use crate::sys::{self, MmsgBatch, PacketSocket};
use anyhow::{bail, Context, Result};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames per `sendmmsg` call: large enough that the syscall cost is spread
/// thin, small enough that checking the clock between calls stays precise.
pub const SEND_BATCH: usize = 64;

/// What to send and for how long.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Namespace to send from.
    pub netns: String,
    /// Interface (inside that namespace) to send on.
    pub interface: String,
    /// Core to pin the sending thread to (`None`: leave it unpinned).
    pub core: Option<usize>,
    /// Frames to cycle through, sent in [`SEND_BATCH`]-sized `sendmmsg` calls.
    pub frames: Vec<Vec<u8>>,
    /// How long to send.
    pub duration: Duration,
    /// Upper bound on frames sent, whatever the duration (keeps the loop
    /// bounded in count too).
    pub max_frames: u64,
}

/// What the generator sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct GeneratorResult {
    /// Frames the kernel accepted.
    pub frames: u64,
    /// Bytes in those frames.
    pub bytes: u64,
    /// Time from the first to the end of the last send call.
    pub elapsed: Duration,
    /// Send calls that took nothing (ENOBUFS/EAGAIN: the device was busy).
    pub busy_calls: u64,
    /// Whether the core pinning succeeded.
    pub pinned: bool,
}

/// Sends `config.frames` in a loop for `config.duration` (or until `stop` is
/// set) and reports what the kernel accepted. Runs on its own thread in the
/// namespace; returns after at most the duration plus a second.
pub fn run(config: GeneratorConfig, stop: Arc<AtomicBool>) -> Result<GeneratorResult> {
    if config.frames.is_empty() {
        bail!("the generator needs at least one frame");
    }
    let timeout = config.duration + Duration::from_secs(5);
    let netns = config.netns.clone();
    netns::spawn_in(&netns, "syp-generator", move || send_loop(&config, &stop))?.join(timeout)
}

fn send_loop(config: &GeneratorConfig, stop: &AtomicBool) -> Result<GeneratorResult> {
    let pinned = match config.core {
        Some(id) => core_affinity::set_for_current(core_affinity::CoreId { id }),
        None => false,
    };
    let ifindex = sys::interface_index(&config.interface).with_context(|| {
        format!(
            "interface {} in namespace {}",
            config.interface, config.netns
        )
    })?;
    let socket =
        PacketSocket::open(ifindex).context("opening an AF_PACKET socket (needs CAP_NET_RAW)")?;
    socket
        .bypass_qdisc()
        .context("setting PACKET_QDISC_BYPASS")?;
    let batch_frames: Vec<Vec<u8>> = (0..SEND_BATCH)
        .map(|i| config.frames[i % config.frames.len()].clone())
        .collect();
    let mut batch = MmsgBatch::new(batch_frames);
    let batch_bytes: Vec<u64> = (0..batch.len())
        .map(|i| batch.frame_len(i) as u64)
        .collect();

    let mut result = GeneratorResult {
        pinned,
        ..Default::default()
    };
    let start = Instant::now();
    let deadline = start + config.duration;
    while result.frames < config.max_frames && !stop.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            break;
        }
        match batch.send(&socket) {
            Ok(sent) => {
                result.frames += sent as u64;
                result.bytes += batch_bytes[..sent].iter().sum::<u64>();
                if sent == 0 {
                    result.busy_calls += 1;
                }
            }
            Err(error) if is_transient(&error) => {
                result.busy_calls += 1;
                std::thread::yield_now();
            }
            Err(error) => return Err(error).context("sendmmsg"),
        }
    }
    result.elapsed = start.elapsed();
    Ok(result)
}

/// Errors that mean "the device is busy now", not "the setup is broken".
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

/// Sends `frames` once each, a few milliseconds apart, from `interface` in
/// namespace `netns`: teaches the dataplane where their source MAC lives.
pub fn send_few(netns: &str, interface: &str, frames: Vec<Vec<u8>>) -> Result<()> {
    let interface = interface.to_string();
    let label = format!("{netns}-learn");
    netns::spawn_in(netns, &label, move || {
        let ifindex =
            sys::interface_index(&interface).with_context(|| format!("interface {interface}"))?;
        let socket = PacketSocket::open(ifindex).context("opening an AF_PACKET socket")?;
        for frame in &frames {
            socket.send(frame).context("sending a learning frame")?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })?
    .join(Duration::from_secs(5))
}
