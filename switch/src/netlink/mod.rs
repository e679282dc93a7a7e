//! Container veths over netlink: what `attach`, CNI ADD/CHECK/DEL and detach
//! do to the kernel.
//!
//! A container is attached by a veth pair: the host end stays in the daemon's
//! namespace, where the workers open AF_XDP sockets on it, one per queue; the
//! other end lives in the container's namespace as its `eth0` with the MAC,
//! MTU, address and default route the network gives it.
//!
//! # Why rtnetlink
//! The requests go over rtnetlink (never by running `ip`), through the
//! `rtnetlink` crate of the rust-netlink project: it is the most used and the
//! most actively kept Rust netlink stack (the same packet crates serve
//! `netlink-packet-route` users such as youki and nmstate), it has typed
//! builders for veth, addresses and routes, and its errors carry the kernel's
//! errno. It is async on tokio; every public function here is synchronous and
//! runs its requests on a current-thread runtime private to the call
//! ([`rtnl::run`]), so the daemon's control thread needs no runtime (and the
//! functions must not be called from inside an async runtime: tokio refuses
//! a nested `block_on`). `neli` is synchronous but leaves the route/link
//! attribute layout to the caller.
//!
//! # How a link is made
//! 1. One `RTM_NEWLINK` creates the pair with the peer born directly in the
//!    container namespace (`IFLA_NET_NS_FD` in the peer's attributes) under
//!    its final name, with its MAC, the MTU and `queues` TX/RX queues on both
//!    ends. The kernel makes both ends or neither, and the peer is never
//!    visible in the host namespace.
//! 2. Host end: IPv6 off (no link-local address or router solicitations that
//!    the switch would have to forward), then up.
//! 3. In the namespace, from a short-lived thread that entered it with `setns`
//!    ([`sys::in_netns`]): TX checksum and segmentation offloads (TSO, GSO,
//!    ...) off on the container end, by feature name with `ETHTOOL_SFEATURES`
//!    (AF_XDP forwards frames as they are, so partial checksums and 64 KB
//!    super-frames would reach the receiver unfinished, see AFXDP-NOTES),
//!    `lo` up, the address, the link up, the default route via the gateway.
//!
//! Any failure after step 1 deletes the pair again (deleting the host end
//! takes the peer with it), so a failed attach leaves nothing behind.

mod rtnl;
mod sys;

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// A network namespace as a container runtime names it: a bind-mounted file
/// (`/run/netns/NAME`, a CNI `CNI_NETNS` path) or a process whose namespace
/// it is (Docker gives a PID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsRef {
    /// A namespace file, e.g. `/run/netns/c1` or `/proc/42/ns/net`.
    Path(PathBuf),
    /// The namespace of this process, reached through `/proc/PID/ns/net`.
    Pid(u32),
}

impl NetnsRef {
    /// The file that refers to the namespace.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(path) => path.clone(),
            NetnsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// Opens the namespace once, so every step of an operation acts on the
    /// same namespace even if the process exits or the name is rebound
    /// meanwhile.
    fn open(&self) -> Result<File, NetlinkError> {
        File::open(self.path()).map_err(|source| NetlinkError::Netns {
            netns: self.to_string(),
            source,
        })
    }
}

/// Digits are a PID, anything else a path, as `--netns` and the CNI
/// plugin accept both.
impl FromStr for NetnsRef {
    type Err = NetlinkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid("network namespace", s, "empty"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(NetnsRef::Pid)
                .map_err(|_| invalid("network namespace", s, "PID out of range"));
        }
        Ok(NetnsRef::Path(PathBuf::from(s)))
    }
}

/// Shows the namespace file (`/proc/PID/ns/net` for a PID), which is what
/// error messages need; it parses back to the same namespace.
impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// Everything needed to attach one container: the veth pair and the
/// container end's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLink {
    /// Host end, stays in the daemon's namespace (at most 15 bytes).
    pub host_name: String,
    /// The container's namespace.
    pub netns: NetnsRef,
    /// Name inside the namespace, e.g. `eth0`.
    pub ifname: String,
    /// The container end's MAC.
    pub mac: [u8; 6],
    /// MTU of both ends, e.g. 1500 (native XDP on veth refuses above ~3506).
    pub mtu: u32,
    /// The container's address.
    pub address: Ipv4Addr,
    /// Prefix length of the network.
    pub prefix_len: u8,
    /// Default route via it when `Some`.
    pub gateway: Option<Ipv4Addr>,
    /// TX and RX queues on both ends: one per poll worker, so every worker
    /// binds its own queue.
    pub queues: u32,
}

impl ContainerLink {
    /// Refuses what the kernel would refuse halfway, before anything exists.
    fn validate(&self) -> Result<(), NetlinkError> {
        check_ifname("host end name", &self.host_name)?;
        check_ifname("container interface name", &self.ifname)?;
        if self.mac[0] & 1 != 0 {
            return Err(invalid("MAC", &fmt_mac(&self.mac), "multicast bit set"));
        }
        if self.mac == [0; 6] {
            return Err(invalid("MAC", &fmt_mac(&self.mac), "all zero"));
        }
        if !(68..=65535).contains(&self.mtu) {
            return Err(invalid("MTU", &self.mtu.to_string(), "not in 68..=65535"));
        }
        if self.prefix_len > 32 {
            return Err(invalid(
                "prefix length",
                &self.prefix_len.to_string(),
                "above 32",
            ));
        }
        if !(1..=4096).contains(&self.queues) {
            return Err(invalid(
                "queue count",
                &self.queues.to_string(),
                "not in 1..=4096",
            ));
        }
        Ok(())
    }
}

/// What went wrong, naming the object and the step, so a CNI error or a
/// `ctl attach` reply is actionable as it stands.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// An argument the kernel would refuse (checked before any change).
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace could not be opened (no such file, process gone).
    #[error("opening network namespace {netns}: {source}")]
    Netns {
        /// The namespace as given.
        netns: String,
        /// The error from open(2).
        #[source]
        source: io::Error,
    },
    /// The host end's name is taken: another container's port or a stale
    /// one; it is left alone.
    #[error("interface {name} already exists in the daemon's namespace")]
    Exists {
        /// The name.
        name: String,
    },
    /// A kernel request failed; `step` says which, on what.
    #[error("{step}: {source}")]
    Step {
        /// E.g. "adding default route via 10.0.0.1 on eth0 in /run/netns/c1".
        step: String,
        /// The kernel's error (errno where it gave one).
        #[source]
        source: io::Error,
    },
    /// CNI CHECK: the container end is not as configured.
    #[error("{ifname} in {netns}: {problem}")]
    Mismatch {
        /// The namespace.
        netns: String,
        /// The interface inside it.
        ifname: String,
        /// What differs.
        problem: String,
    },
    /// `delete_link` was pointed at a link that is not a veth; deleting it
    /// could cut the node off, so it is refused.
    #[error("{name} is not a veth (kind {kind}): not deleting it")]
    NotVeth {
        /// The link.
        name: String,
        /// Its kind, as the kernel reports it.
        kind: String,
    },
}

impl NetlinkError {
    /// The errno behind the error, if the kernel gave one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NetlinkError::Netns { source, .. } | NetlinkError::Step { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> NetlinkError {
    NetlinkError::Invalid {
        what,
        value: value.to_string(),
        reason,
    }
}

fn step_err(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    move |err| NetlinkError::Step {
        step: step.into(),
        source: rtnl::to_io(err),
    }
}

fn io_step(step: impl Into<String>) -> impl FnOnce(io::Error) -> NetlinkError {
    move |source| NetlinkError::Step {
        step: step.into(),
        source,
    }
}

fn check_ifname(what: &'static str, name: &str) -> Result<(), NetlinkError> {
    if name.is_empty() {
        return Err(invalid(what, name, "empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(invalid(what, name, "longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid(what, name, "not a valid interface name"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(invalid(what, name, "contains '/', ':', NUL or whitespace"));
    }
    Ok(())
}

fn fmt_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The link called `name`, which must exist (ENODEV otherwise), for the
/// steps that act on a link this module just made or was named.
async fn existing_link(h: &rtnetlink::Handle, name: &str) -> Result<rtnl::LinkState, NetlinkError> {
    rtnl::get_link(h, name)
        .await
        .map_err(io_step(format!("looking up {name}")))?
        .ok_or_else(|| NetlinkError::Step {
            step: format!("looking up {name}"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })
}

/// Runs netlink requests in the calling thread's namespace; `what` names the
/// namespace for the error when no socket could be opened.
fn with_netlink<T, F, Fut>(what: &str, body: F) -> Result<T, NetlinkError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T, NetlinkError>>,
{
    rtnl::run(body).map_err(io_step(format!("opening a netlink socket in {what}")))?
}

/// Runs `f` in the namespace `netns` (opened as `file`), on its own thread.
fn in_netns<T: Send>(
    netns: &NetnsRef,
    file: &File,
    f: impl FnOnce() -> Result<T, NetlinkError> + Send,
) -> Result<T, NetlinkError> {
    sys::in_netns(file, f).map_err(io_step(format!("entering network namespace {netns}")))?
}

const HOST_NS: &str = "the daemon's namespace";

/// Deletes the pair again unless disarmed, also when a step panics.
struct Rollback<'a> {
    host_name: &'a str,
    index: u32,
    armed: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let index = self.index;
        let done = rtnl::run(|h| async move { rtnl::delete(&h, index).await });
        match done {
            Ok(Ok(())) => {
                tracing::debug!(host = self.host_name, "attach failed; veth removed again")
            }
            Ok(Err(err)) => tracing::warn!(
                host = self.host_name,
                error = %rtnl::to_io(err),
                "attach failed and removing its veth failed too"
            ),
            Err(err) => tracing::warn!(
                host = self.host_name,
                error = %err,
                "attach failed and removing its veth failed too"
            ),
        }
    }
}

/// Creates and configures the veth pair of one container (see the module
/// doc for the steps). All or nothing: on any failure the pair is removed
/// again and the error names the step that failed. An existing interface
/// called `host_name` is an error ([`NetlinkError::Exists`]) and is left as
/// it is.
pub fn create_container_link(link: &ContainerLink) -> Result<(), NetlinkError> {
    link.validate()?;
    let netns_file = link.netns.open()?;
    let netns = &link.netns;
    let host = link.host_name.as_str();
    let ifname = link.ifname.as_str();

    let spec = rtnl::VethSpec {
        host_name: host,
        peer_name: ifname,
        peer_netns_fd: netns_file.as_raw_fd(),
        peer_mac: link.mac,
        mtu: link.mtu,
        queues: link.queues,
    };
    let host_index = with_netlink(HOST_NS, |h| async move {
        let lookup = format!("looking up {host}");
        if rtnl::get_link(&h, host)
            .await
            .map_err(io_step(lookup))?
            .is_some()
        {
            return Err(NetlinkError::Exists {
                name: host.to_string(),
            });
        }
        rtnl::create_veth(&h, &spec)
            .await
            .map_err(step_err(format!(
                "creating veth {host} with peer {ifname} in {netns}"
            )))?;
        let created = rtnl::get_link(&h, host)
            .await
            .map_err(io_step(format!("looking up {host} after creating it")))?;
        created.map(|l| l.index).ok_or_else(|| NetlinkError::Step {
            step: format!("looking up {host} after creating it"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })
    })?;
    let mut rollback = Rollback {
        host_name: host,
        index: host_index,
        armed: true,
    };

    disable_ipv6(host)?;
    with_netlink(HOST_NS, |h| async move {
        rtnl::set_up(&h, host_index)
            .await
            .map_err(step_err(format!("bringing {host} up")))
    })?;

    in_netns(netns, &netns_file, || configure_container_end(link))?;

    rollback.armed = false;
    tracing::info!(
        host,
        ifname,
        %netns,
        address = %link.address,
        prefix_len = link.prefix_len,
        "container link created"
    );
    Ok(())
}

/// IPv6 off on the host end (a sysctl of the daemon's namespace, which is the
/// calling thread's). A kernel without IPv6 has nothing to turn off.
fn disable_ipv6(host: &str) -> Result<(), NetlinkError> {
    if !Path::new("/proc/sys/net/ipv6").exists() {
        return Ok(());
    }
    let path = format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6");
    std::fs::write(&path, b"1").map_err(io_step(format!("disabling IPv6 on {host} ({path})")))
}

/// Step 3 of [`create_container_link`]; runs on a thread inside the
/// container's namespace.
fn configure_container_end(link: &ContainerLink) -> Result<(), NetlinkError> {
    let netns = &link.netns;
    let ifname = link.ifname.as_str();
    let ethtool = sys::EthtoolSocket::open()
        .map_err(io_step(format!("opening an ethtool socket in {netns}")))?;
    let turned_off = ethtool
        .disable_features(ifname, sys::unfinished_tx_offload)
        .map_err(io_step(format!(
            "turning TX checksum and segmentation offloads off on {ifname} in {netns}"
        )))?;
    tracing::debug!(%netns, ifname, features = ?turned_off, "offloads off");
    let address = link.address;
    let prefix_len = link.prefix_len;
    let gateway = link.gateway;
    with_netlink(&netns.to_string(), |h| async move {
        let lo = rtnl::get_link(&h, "lo")
            .await
            .map_err(io_step(format!("looking up lo in {netns}")))?;
        if let Some(lo) = lo {
            if !lo.up {
                rtnl::set_up(&h, lo.index)
                    .await
                    .map_err(step_err(format!("bringing lo up in {netns}")))?;
            }
        }
        let index = rtnl::get_link(&h, ifname)
            .await
            .map_err(io_step(format!("looking up {ifname} in {netns}")))?
            .ok_or_else(|| NetlinkError::Step {
                step: format!("looking up {ifname} in {netns}"),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            })?
            .index;
        rtnl::add_address(&h, index, address, prefix_len)
            .await
            .map_err(step_err(format!(
                "adding {address}/{prefix_len} to {ifname} in {netns}"
            )))?;
        rtnl::set_up(&h, index)
            .await
            .map_err(step_err(format!("bringing {ifname} up in {netns}")))?;
        if let Some(gateway) = gateway {
            rtnl::add_default_route(&h, index, gateway)
                .await
                .map_err(step_err(format!(
                    "adding default route via {gateway} on {ifname} in {netns}"
                )))?;
        }
        Ok(())
    })
}

/// Removes the host end `host_name` and with it the container end: detach
/// and CNI DEL. `Ok(false)` when there was no such link, so a repeated
/// detach (or a DEL after the namespace is gone, which already took the
/// pair) is not an error. Refuses links that are not veths.
pub fn delete_link(host_name: &str) -> Result<bool, NetlinkError> {
    check_ifname("host end name", host_name)?;
    with_netlink(HOST_NS, |h| async move {
        let Some(link) = rtnl::get_link(&h, host_name)
            .await
            .map_err(io_step(format!("looking up {host_name}")))?
        else {
            return Ok(false);
        };
        match link.kind.as_deref() {
            Some("veth") => {}
            other => {
                return Err(NetlinkError::NotVeth {
                    name: host_name.to_string(),
                    kind: other.unwrap_or("none").to_string(),
                })
            }
        }
        match rtnl::delete(&h, link.index).await.map_err(rtnl::to_io) {
            Ok(()) => Ok(true),
            // Gone in between (its namespace was destroyed, say): same outcome.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(source) => Err(NetlinkError::Step {
                step: format!("deleting veth {host_name}"),
                source,
            }),
        }
    })
}

/// Creates a veth pair `name`/`peer` in the daemon's own namespace, both ends
/// up, with `queues` queues, and no addresses or routes: the AF_XDP anchor.
///
/// Why it exists: libxdp makes the first socket of a UMEM use the UMEM's own
/// descriptor, and every later socket shares the UMEM through that descriptor.
/// If the first socket's interface disappears (its container was detached), all
/// later binds on that UMEM fail (EBADF). So each worker binds its first socket
/// to its queue of this pair, which lives exactly as long as the daemon and
/// never carries traffic.
pub fn create_anchor_pair(name: &str, peer: &str, queues: u32) -> Result<(), NetlinkError> {
    check_ifname("anchor name", name)?;
    check_ifname("anchor peer name", peer)?;
    let own_ns = File::open("/proc/self/ns/net").map_err(|source| NetlinkError::Step {
        step: "opening the daemon's namespace".to_string(),
        source,
    })?;
    let fd = own_ns.as_raw_fd();
    with_netlink(HOST_NS, |h| async move {
        let spec = rtnl::VethSpec {
            host_name: name,
            peer_name: peer,
            peer_netns_fd: fd,
            peer_mac: [0x02, 0x53, 0xff, 0x00, 0x00, 0x01],
            mtu: 1500,
            queues: queues.max(1),
        };
        rtnl::create_veth(&h, &spec)
            .await
            .map_err(|e| NetlinkError::Step {
                step: format!("creating anchor veth {name}"),
                source: rtnl::to_io(e),
            })?;
        for end in [name, peer] {
            let link = existing_link(&h, end).await?;
            rtnl::set_up(&h, link.index)
                .await
                .map_err(|e| NetlinkError::Step {
                    step: format!("bringing {end} up"),
                    source: rtnl::to_io(e),
                })?;
        }
        Ok(())
    })
}

/// Creates the host port's veth pair `host_end`/`switch_end` in the daemon's
/// namespace: `host_end` gets `address/prefix_len`, both ends IPv6 off and
/// up. Either both ends end up configured or the pair is deleted again.
pub fn create_host_pair(
    host_end: &str,
    switch_end: &str,
    address: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), NetlinkError> {
    check_ifname("host port name", host_end)?;
    check_ifname("host port peer name", switch_end)?;
    let own_ns = File::open("/proc/self/ns/net").map_err(|source| NetlinkError::Step {
        step: "opening the daemon's namespace".to_string(),
        source,
    })?;
    let fd = own_ns.as_raw_fd();
    let index = with_netlink(HOST_NS, |h| async move {
        let spec = rtnl::VethSpec {
            host_name: host_end,
            peer_name: switch_end,
            peer_netns_fd: fd,
            peer_mac: [0x02, 0x53, 0xfe, 0x00, 0x00, 0x01],
            mtu: 1500,
            queues: 1,
        };
        rtnl::create_veth(&h, &spec)
            .await
            .map_err(step_err(format!("creating the host port veth {host_end}")))?;
        let link = existing_link(&h, host_end).await?;
        Ok(link.index)
    })?;
    let mut rollback = Rollback {
        host_name: host_end,
        index,
        armed: true,
    };
    for end in [host_end, switch_end] {
        disable_ipv6(end)?;
    }
    with_netlink(HOST_NS, |h| async move {
        rtnl::add_address(&h, index, address, prefix_len)
            .await
            .map_err(step_err(format!(
                "adding {address}/{prefix_len} to {host_end}"
            )))?;
        for end in [host_end, switch_end] {
            let link = existing_link(&h, end).await?;
            rtnl::set_up(&h, link.index)
                .await
                .map_err(step_err(format!("bringing {end} up")))?;
        }
        Ok(())
    })?;
    rollback.armed = false;
    Ok(())
}

/// Adds (`add`) or deletes the route to `destination/prefix_len` via
/// `gateway` through `interface` in the daemon's namespace. Deleting a route
/// that is gone already is not an error.
pub fn set_route(
    interface: &str,
    destination: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
    add: bool,
) -> Result<(), NetlinkError> {
    check_ifname("route interface", interface)?;
    with_netlink(HOST_NS, |h| async move {
        let link = existing_link(&h, interface).await?;
        let step = format!(
            "{} the route to {destination}/{prefix_len} via {gateway} dev {interface}",
            if add { "adding" } else { "deleting" }
        );
        let result = if add {
            rtnl::add_route(&h, link.index, destination, prefix_len, gateway).await
        } else {
            rtnl::delete_route(&h, link.index, destination, prefix_len, gateway).await
        };
        match result.map_err(rtnl::to_io) {
            Ok(()) => Ok(()),
            Err(e) if !add && e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(source) => Err(NetlinkError::Step { step, source }),
        }
    })
}

/// Whether an interface called `host_name` exists in the daemon's namespace
/// (any kind). A failing lookup counts as absent.
pub fn link_exists(host_name: &str) -> bool {
    if check_ifname("host end name", host_name).is_err() {
        return false;
    }
    with_netlink(HOST_NS, |h| async move {
        rtnl::get_link(&h, host_name)
            .await
            .map_err(io_step(format!("looking up {host_name}")))
    })
    .is_ok_and(|link| link.is_some())
}

/// CNI CHECK: `ifname` exists in `netns` and is up, carries
/// `address/prefix_len`, and (when `gateway` is `Some`) the main table has a
/// default route via `gateway` through it. Anything missing is a
/// [`NetlinkError::Mismatch`] saying what.
pub fn verify_container_link(
    netns: &NetnsRef,
    ifname: &str,
    address: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetlinkError> {
    check_ifname("container interface name", ifname)?;
    let file = netns.open()?;
    let mismatch = |problem: String| NetlinkError::Mismatch {
        netns: netns.to_string(),
        ifname: ifname.to_string(),
        problem,
    };
    in_netns(netns, &file, || {
        with_netlink(&netns.to_string(), |h| async move {
            let link = rtnl::get_link(&h, ifname)
                .await
                .map_err(io_step(format!("looking up {ifname} in {netns}")))?
                .ok_or_else(|| mismatch("no such interface".to_string()))?;
            if !link.up {
                return Err(mismatch("interface is down".to_string()));
            }
            let addresses = rtnl::ipv4_addresses(&h, link.index)
                .await
                .map_err(step_err(format!(
                    "listing addresses of {ifname} in {netns}"
                )))?;
            if !addresses.contains(&(address, prefix_len)) {
                let have: Vec<String> = addresses
                    .iter()
                    .map(|(ip, len)| format!("{ip}/{len}"))
                    .collect();
                return Err(mismatch(format!(
                    "address {address}/{prefix_len} missing (has [{}])",
                    have.join(", ")
                )));
            }
            if let Some(gateway) = gateway {
                let gateways = rtnl::default_gateways(&h, link.index)
                    .await
                    .map_err(step_err(format!("listing routes in {netns}")))?;
                if !gateways.contains(&gateway) {
                    return Err(mismatch(format!(
                        "no default route via {gateway} through {ifname}"
                    )));
                }
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerLink {
        ContainerLink {
            host_name: "sy-c1p".into(),
            netns: NetnsRef::Path("/run/netns/c1".into()),
            ifname: "eth0".into(),
            mac: [0x02, 0, 0, 0, 0, 1],
            mtu: 1500,
            address: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            queues: 2,
        }
    }

    #[test]
    fn netns_ref_parses_pids_and_paths() {
        assert_eq!("1234".parse::<NetnsRef>().unwrap(), NetnsRef::Pid(1234));
        assert_eq!(
            "/run/netns/c1".parse::<NetnsRef>().unwrap(),
            NetnsRef::Path("/run/netns/c1".into())
        );
        assert_eq!(
            "c1".parse::<NetnsRef>().unwrap(),
            NetnsRef::Path("c1".into())
        );
        assert!("".parse::<NetnsRef>().is_err());
        assert!("99999999999".parse::<NetnsRef>().is_err());
        assert_eq!(NetnsRef::Pid(7).to_string(), "/proc/7/ns/net");
        assert_eq!(
            NetnsRef::Pid(7)
                .to_string()
                .parse::<NetnsRef>()
                .unwrap()
                .path(),
            NetnsRef::Pid(7).path()
        );
    }

    #[test]
    fn validation_catches_what_the_kernel_would_refuse() {
        assert!(sample().validate().is_ok());
        let cases: [fn(&mut ContainerLink); 9] = [
            |l| l.host_name = "a-very-long-name-x".into(),
            |l| l.host_name = String::new(),
            |l| l.ifname = "eth/0".into(),
            |l| l.ifname = "eth 0".into(),
            |l| l.mac = [1, 0, 0, 0, 0, 1],
            |l| l.mac = [0; 6],
            |l| l.mtu = 40,
            |l| l.prefix_len = 33,
            |l| l.queues = 0,
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut link = sample();
            change(&mut link);
            assert!(
                matches!(link.validate(), Err(NetlinkError::Invalid { .. })),
                "case {i} passed validation"
            );
        }
    }

    #[test]
    fn errors_name_object_and_step() {
        let err = NetlinkError::Step {
            step: "adding default route via 10.0.0.1 on eth0 in /run/netns/c1".into(),
            source: io::Error::from_raw_os_error(libc::ENETUNREACH),
        };
        let text = err.to_string();
        assert!(text.starts_with("adding default route via 10.0.0.1 on eth0 in /run/netns/c1: "));
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH));
        let err = invalid(
            "host end name",
            "a-very-long-name-x",
            "longer than 15 bytes",
        );
        assert_eq!(
            err.to_string(),
            "invalid host end name \"a-very-long-name-x\": longer than 15 bytes"
        );
    }
}
