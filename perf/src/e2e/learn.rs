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
