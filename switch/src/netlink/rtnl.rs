//! The rtnetlink requests, each run to completion on a current-thread tokio
//! runtime that lives for one call ([`run`]).
//!
//! The socket is opened inside [`run`], so when [`run`] is called from a
//! thread that entered a container's namespace (see `sys::in_netns`) every
//! request here acts on that namespace.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// Opens a netlink socket in the calling thread's namespace and runs `body`
/// with a handle on it, on a runtime private to this call, so callers stay
/// plain blocking code (the daemon's control thread has no runtime).
pub(crate) fn run<T, F, Fut>(body: F) -> io::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let driver = tokio::spawn(connection);
        let out = body(handle).await;
        driver.abort();
        Ok(out)
    })
}

/// Turns an rtnetlink error into the kernel's errno where there is one.
pub(crate) fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) if msg.code.is_some() => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// What the requests need to know about a link.
#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    pub index: u32,
    pub up: bool,
    pub kind: Option<String>,
    pub mac: Option<Vec<u8>>,
    pub mtu: Option<u32>,
}

impl LinkState {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut state = LinkState {
            index: msg.header.index,
            up: msg.header.flags.contains(LinkFlags::Up),
            kind: None,
            mac: None,
            mtu: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::Address(mac) => state.mac = Some(mac.clone()),
                LinkAttribute::Mtu(mtu) => state.mtu = Some(*mtu),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            state.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        state
    }
}

/// The link called `name`, or `None` when there is none (ENODEV).
pub(crate) async fn get_link(handle: &Handle, name: &str) -> io::Result<Option<LinkState>> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkState::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(err) => {
            let err = to_io(err);
            if err.raw_os_error() == Some(libc::ENODEV) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// What the veth pair is made of; see `ContainerLink`.
pub(crate) struct VethSpec<'a> {
    pub host_name: &'a str,
    pub peer_name: &'a str,
    pub peer_netns_fd: RawFd,
    pub peer_mac: [u8; 6],
    pub mtu: u32,
    pub queues: u32,
}

/// Creates the pair in one request, the peer born in its namespace under its
/// final name: the kernel creates both ends or neither, and the peer never
/// shows up in the host namespace under a temporary name.
pub(crate) async fn create_veth(
    handle: &Handle,
    spec: &VethSpec<'_>,
) -> Result<(), rtnetlink::Error> {
    let peer = LinkUnspec::new_with_name(spec.peer_name)
        .address(spec.peer_mac.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(spec.peer_netns_fd)
        .append_extra_attribute(LinkAttribute::NumTxQueues(spec.queues))
        .append_extra_attribute(LinkAttribute::NumRxQueues(spec.queues))
        .build();
    let message = LinkVeth::new(spec.host_name, spec.peer_name)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(spec.mtu)
        .append_extra_attribute(LinkAttribute::NumTxQueues(spec.queues))
        .append_extra_attribute(LinkAttribute::NumRxQueues(spec.queues))
        .build();
    handle.link().add(message).execute().await
}

pub(crate) async fn set_up(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
}

pub(crate) async fn delete(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    handle.link().del(index).execute().await
}

pub(crate) async fn add_address(
    handle: &Handle,
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), rtnetlink::Error> {
    handle
        .address()
        .add(index, IpAddr::V4(address), prefix_len)
        .execute()
        .await
}

pub(crate) async fn add_default_route(
    handle: &Handle,
    index: u32,
    gateway: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle.route().add(route).execute().await
}

/// Adds the route `destination/prefix_len` via `gateway` through link `index`
/// to the main table.
pub(crate) async fn add_route(
    handle: &Handle,
    index: u32,
    destination: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination, prefix_len)
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle.route().add(route).execute().await
}

/// Deletes the route `destination/prefix_len` via `gateway` through link
/// `index` from the main table.
pub(crate) async fn delete_route(
    handle: &Handle,
    index: u32,
    destination: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination, prefix_len)
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle.route().del(route).execute().await
}

/// The IPv4 addresses (with prefix length) on link `index`.
pub(crate) async fn ipv4_addresses(
    handle: &Handle,
    index: u32,
) -> Result<Vec<(Ipv4Addr, u8)>, rtnetlink::Error> {
    let mut found = Vec::new();
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(msg) = stream.try_next().await? {
        if msg.header.index != index {
            continue;
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS equals it
        // except on point-to-point links.
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let addr = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = local.or(addr) {
            found.push((ip, msg.header.prefix_len));
        }
    }
    Ok(found)
}

/// Gateways of the IPv4 default routes of the main table that leave through
/// link `index`.
pub(crate) async fn default_gateways(
    handle: &Handle,
    index: u32,
) -> Result<Vec<Ipv4Addr>, rtnetlink::Error> {
    let mut found = Vec::new();
    let mut stream = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = stream.try_next().await? {
        if let Some(gw) = default_gateway_of(&msg, index) {
            found.push(gw);
        }
    }
    Ok(found)
}

fn default_gateway_of(msg: &RouteMessage, index: u32) -> Option<Ipv4Addr> {
    if msg.header.destination_prefix_length != 0 {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut oif = None;
    let mut gateway = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(gw)) => gateway = Some(*gw),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || oif != Some(index) {
        return None;
    }
    gateway
}
