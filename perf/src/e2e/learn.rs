//! Teaching a dataplane where a station lives: a few frames sent from the
//! station's namespace through a raw `AF_PACKET` socket (the kernel's own
//! path, independent of the AF_XDP rig, so it works whatever socket holds
//! the interface's queue).

use super::netns;
use crate::sys::{self, PacketSocket};
use anyhow::{Context, Result};
use std::time::Duration;

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

/// Frames [`send_many`] sends back to back before it pauses.
pub const BURST: usize = 64;

/// The pause after each burst: short enough that 100,000 stations are taught
/// in well under a second, long enough that the receiving dataplane's rings
/// (a veth's 256-entry XDP ring, an AF_XDP RX ring) never overflow.
const BURST_PAUSE: Duration = Duration::from_micros(100);

/// Sends `template` `count` times from `interface` in namespace `netns`,
/// copy `i` with source MAC `source(i)`, in bursts of [`BURST`]: teaches
/// the dataplane `count` stations behind that port at once. Returns the
/// frames sent (the socket may refuse some when the link is busy; every
/// refusal is retried once after a pause).
pub fn send_many(
    netns: &str,
    interface: &str,
    mut template: Vec<u8>,
    count: usize,
    source: impl Fn(usize) -> [u8; 6] + Send + 'static,
) -> Result<usize> {
    if template.len() < 14 {
        anyhow::bail!("a learning frame needs an Ethernet header");
    }
    let interface = interface.to_string();
    let label = format!("{netns}-learn");
    // Bounded: each burst pauses ~0.1 ms, each frame costs a few µs.
    let limit = Duration::from_secs(10) + BURST_PAUSE * (count / BURST) as u32 * 20;
    netns::spawn_in(netns, &label, move || {
        let ifindex =
            sys::interface_index(&interface).with_context(|| format!("interface {interface}"))?;
        let socket = PacketSocket::open(ifindex).context("opening an AF_PACKET socket")?;
        let mut sent = 0;
        for i in 0..count {
            template[6..12].copy_from_slice(&source(i));
            if socket.send(&template).is_err() {
                std::thread::sleep(BURST_PAUSE * 10);
                if socket.send(&template).is_err() {
                    continue;
                }
            }
            sent += 1;
            if (i + 1) % BURST == 0 {
                std::thread::sleep(BURST_PAUSE);
            }
        }
        Ok(sent)
    })?
    .join(limit)
}
