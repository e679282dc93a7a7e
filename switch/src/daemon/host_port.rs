//! The host port (`[host]`): the node's own stack reaching its containers, as
//! a Docker host reaches its containers through `docker0`.
//!
//! The daemon makes a veth pair in its namespace: the *host end*
//! (`[host] interface`, default `switchyard0`) carries `[host] address` and,
//! for every routed network, a route to its subnet via the switch's address
//! on the link; the *switch end* (`sy_h` + the anchor's hex digits) is an
//! AF_XDP port in a network of the switch's own (`host`), open to every
//! network like the uplink. Host-to-container traffic is routed by the
//! switch like any other.
//!
//! Restart safety, as for the anchor: the pair's names are recorded next to
//! the control socket (`<control_socket>.host`) before the pair is made, under
//! the anchor's lock; the next start of the same daemon deletes exactly the
//! recorded pair. An existing interface with the host end's name that the
//! record does not name is someone else's: the daemon refuses to start
//! rather than take or delete it. Stopping deletes the pair (its routes go
//! with it).

use crate::netlink;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use switchyard_config::{HostPortConfig, Ipv4Cidr};
use tracing::{info, warn};

/// Prefix of the switch end's name (after the anchor's `sy_a`/`sy_b`).
const SWITCH_END_PREFIX: &str = "sy_h";

/// Path of the host port record.
pub fn record_path(control_socket: &Path) -> PathBuf {
    let mut name = control_socket
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".host");
    control_socket.with_file_name(name)
}

/// The switch end's name for the anchor `anchor` (`sy_a<hex>` -> `sy_h<hex>`).
pub fn switch_end_name(anchor: &str) -> String {
    let hex = anchor.get(4..).unwrap_or(anchor);
    format!("{SWITCH_END_PREFIX}{hex}")
}

/// The host port pair of this daemon; drop deletes it and its record.
pub struct HostPort {
    /// The end in the host's stack, addressed.
    pub host_end: String,
    /// The end the switch drives.
    pub switch_end: String,
    /// The host end's address.
    pub address: Ipv4Cidr,
    /// The switch's address on the link (the host's next hop).
    pub switch_address: Ipv4Addr,
    /// The host end's MAC (a static neighbour of the switch).
    pub host_mac: [u8; 6],
    /// Subnets routed through the switch end now.
    routes: Vec<Ipv4Cidr>,
    record_path: PathBuf,
}

impl HostPort {
    /// Removes what a previous run of this daemon recorded, then makes the
    /// pair. Must run while the anchor's lock is held (one daemon per
    /// control socket).
    pub fn create(control_socket: &Path, anchor: &str, config: &HostPortConfig) -> Result<Self> {
        let record_path = record_path(control_socket);
        remove_recorded(&record_path);
        let host_end = config.interface.clone();
        let switch_end = switch_end_name(anchor);
        if netlink::link_exists(&host_end) {
            bail!(
                "host.interface: interface {host_end:?} already exists and this daemon did not \
                 make it; the host port is a veth the daemon creates: choose another name or \
                 remove that interface"
            );
        }
        std::fs::write(&record_path, format!("{host_end}\n{switch_end}\n"))
            .with_context(|| format!("writing the host port record {}", record_path.display()))?;
        if let Err(error) = netlink::create_host_pair(
            &host_end,
            &switch_end,
            config.address.addr,
            config.address.prefix_len,
        ) {
            let _ = std::fs::remove_file(&record_path);
            return Err(error).with_context(|| format!("creating the host port {host_end}"));
        }
        let host_mac = switchyard_drivers::sys::interface_mac(&host_end).unwrap_or([0; 6]);
        info!(host_end = %host_end, switch_end = %switch_end, address = %config.address, "host port created");
        Ok(HostPort {
            host_end,
            switch_end,
            address: config.address,
            switch_address: config.switch_address,
            host_mac,
            routes: Vec::new(),
            record_path,
        })
    }

    /// Makes the host's routes through the switch exactly `subnets` (the
    /// routed networks' subnets): adds the missing ones, deletes the others.
    /// A route that cannot be added is logged and left out; the host port
    /// still serves the rest.
    pub fn sync_routes(&mut self, subnets: &[Ipv4Cidr]) {
        let stale: Vec<Ipv4Cidr> = self
            .routes
            .iter()
            .filter(|r| !subnets.contains(r))
            .copied()
            .collect();
        for subnet in stale {
            if let Err(error) = netlink::set_route(
                &self.host_end,
                subnet.network(),
                subnet.prefix_len,
                self.switch_address,
                false,
            ) {
                warn!(%error, %subnet, "could not delete a host route");
            }
            self.routes.retain(|r| *r != subnet);
        }
        for subnet in subnets {
            if self.routes.contains(subnet) {
                continue;
            }
            match netlink::set_route(
                &self.host_end,
                subnet.network(),
                subnet.prefix_len,
                self.switch_address,
                true,
            ) {
                Ok(()) => self.routes.push(*subnet),
                Err(error) => warn!(%error, %subnet, "could not add a host route to a network"),
            }
        }
    }
}

impl Drop for HostPort {
    fn drop(&mut self) {
        match netlink::delete_link(&self.host_end) {
            Ok(_) => {
                let _ = std::fs::remove_file(&self.record_path);
            }
            Err(error) => {
                warn!(%error, host_end = %self.host_end, "could not delete the host port; the next start will")
            }
        }
    }
}

/// Deletes the pair a previous run recorded, if it is still there.
fn remove_recorded(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let mut names = text.lines();
    let (Some(host_end), Some(switch_end)) = (names.next(), names.next()) else {
        return;
    };
    if !switch_end.starts_with(SWITCH_END_PREFIX) {
        warn!(record = %path.display(), "ignoring a host port record that names no host port");
        return;
    }
    // Deleting either end takes the pair; a veth check guards the rest.
    match netlink::delete_link(switch_end) {
        Ok(true) => info!(%host_end, "removed the host port a previous run left behind"),
        Ok(false) => {}
        Err(error) => warn!(%error, %host_end, "could not remove the previous run's host port"),
    }
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_end_is_named_after_the_anchor() {
        assert_eq!(switch_end_name("sy_a0123abcd"), "sy_h0123abcd");
        assert!(switch_end_name("sy_a0123abcd").len() <= 15);
        assert_eq!(
            record_path(Path::new("/run/switchyard/ctl.sock")),
            Path::new("/run/switchyard/ctl.sock.host")
        );
    }
}
