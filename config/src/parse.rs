//! From the located TOML tree to [`NodeConfig`]: shapes and types.
//!
//! This stage checks what serde would (unknown fields, wrong types, missing
//! required fields, values that do not parse) and records where each value
//! was written; semantic rules live in [`crate::validate`]. A field that fails
//! here is left at its default and marked failed, so later checks do not pile
//! on follow-up errors.

use std::fmt::Display;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::report::Report;
use crate::tree::{Entry, Fields, Kind, Node};
use crate::{
    ConntrackTimeouts, HostPortConfig, IdleMode, Ipv4Cidr, L4Protocol, Location, MacAddress,
    NetworkConfig, NodeConfig, PipelineMode, PortConfig, PortDriver, PortRange, PublishConfig,
    StaticNeighbour, SwitchConfig, UplinkConfig, XdpMode,
};

/// Builds the config from the document root, recording issues in `r`.
pub(crate) fn build(root: &Node, origin: &str, r: &mut Report) -> NodeConfig {
    let entries = match &root.kind {
        Kind::Table(entries) => entries.as_slice(),
        _ => &[],
    };
    let mut f = Fields::new("", root.loc, entries);
    let switch = match table(&mut f, "switch", r) {
        Some((loc, entries)) => build_switch(loc, entries, r),
        None => SwitchConfig::default(),
    };
    let uplink = table(&mut f, "uplink", r).map(|(loc, e)| build_uplink(loc, e, r));
    let host = table(&mut f, "host", r).map(|(loc, e)| build_host(loc, e, r));
    let mut networks = Vec::new();
    for (i, loc, e) in table_array(&mut f, "network", r) {
        networks.push(build_network(i, loc, e, r));
        r.network_index.push(i);
    }
    let mut ports = Vec::new();
    for (i, loc, e) in table_array(&mut f, "port", r) {
        ports.push(build_port(i, loc, e, r));
        r.port_index.push(i);
    }
    let conntrack = table(&mut f, "conntrack", r)
        .map(|(loc, e)| build_conntrack(loc, e, r))
        .unwrap_or_default();
    let mut publish = Vec::new();
    for (i, loc, e) in table_array(&mut f, "publish", r) {
        if let Some(p) = build_publish(i, loc, e, r) {
            publish.push(p);
        }
    }
    f.finish(r);
    NodeConfig {
        origin: origin.to_string(),
        switch,
        uplink,
        host,
        networks,
        ports,
        publish,
        conntrack,
        value_locations: Default::default(),
    }
}

fn build_switch(loc: Location, entries: &[Entry], r: &mut Report) -> SwitchConfig {
    let mut cfg = SwitchConfig::default();
    let mut f = Fields::new("switch", loc, entries);
    if let Some(workers) = workers(&mut f, r) {
        cfg.workers = workers;
    }
    if let Some(p) = string(&mut f, "control_socket", r) {
        cfg.control_socket = PathBuf::from(p);
    }
    if let Some(g) = string(&mut f, "control_group", r) {
        cfg.control_group = Some(g);
    }
    if let Some(v) = uint(&mut f, "mac_table_size", usize::MAX as u64, r) {
        cfg.mac_table_size = v as usize;
    }
    if let Some(v) = uint(&mut f, "mac_aging_secs", u64::MAX, r) {
        cfg.mac_aging_secs = v;
    }
    if let Some(v) = parsed::<XdpMode>(&mut f, "xdp_mode", r) {
        cfg.xdp_mode = v;
    }
    if let Some(v) = uint(&mut f, "stats_interval_secs", u64::MAX, r) {
        cfg.stats_interval_secs = v;
    }
    if let Some(v) = uint(&mut f, "burst_size", usize::MAX as u64, r) {
        cfg.burst_size = v as usize;
    }
    if let Some(v) = uint(&mut f, "ring_size", u32::MAX.into(), r) {
        cfg.ring_size = v as u32;
    }
    if let Some(v) = uint(&mut f, "umem_frames", u32::MAX.into(), r) {
        cfg.umem_frames = v as u32;
    }
    if let Some(v) = parsed::<PipelineMode>(&mut f, "pipeline", r) {
        cfg.pipeline = v;
    }
    if let Some(v) = parsed::<IdleMode>(&mut f, "idle", r) {
        cfg.idle = v;
    }
    if let Some(v) = uint(&mut f, "conntrack_size", usize::MAX as u64, r) {
        cfg.conntrack_size = v as usize;
    }
    f.finish(r);
    cfg
}

/// `switch.workers`: an array of core numbers. Element positions are
/// recorded as `switch.workers[i]` so duplicates can be pointed at.
fn workers(f: &mut Fields<'_>, r: &mut Report) -> Option<Vec<usize>> {
    let path = f.path_of("workers");
    let node = f.get("workers")?;
    r.record(&path, node.loc);
    let Kind::Array(items) = &node.kind else {
        type_error(&path, node, "an array of CPU core numbers", r);
        return None;
    };
    let mut cores = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        r.record(&format!("{path}[{i}]"), item.loc);
        match uint_value(&path, item, usize::MAX as u64, r) {
            Some(core) => cores.push(core as usize),
            None => ok = false,
        }
    }
    ok.then_some(cores)
}

fn build_uplink(loc: Location, entries: &[Entry], r: &mut Report) -> UplinkConfig {
    let mut f = Fields::new("uplink", loc, entries);
    let interface = required(&mut f, "interface", r, string);
    let address = required(&mut f, "address", r, cidr);
    let gateway = ipv4(&mut f, "gateway", r);
    let neighbours = table(&mut f, "neighbours", r)
        .map(|(_, entries)| static_neighbours(entries, r))
        .unwrap_or_default();
    let nat_ports = port_range(&mut f, "nat_ports", r).unwrap_or(UplinkConfig::DEFAULT_NAT_PORTS);
    f.finish(r);
    // Placeholders for missing required fields are safe: the field is marked
    // failed, so the validator skips it, and the config is rejected anyway.
    UplinkConfig {
        interface: interface.unwrap_or_default(),
        address: address.unwrap_or(Ipv4Cidr {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
        }),
        gateway,
        neighbours,
        nat_ports,
    }
}

fn build_conntrack(loc: Location, entries: &[Entry], r: &mut Report) -> ConntrackTimeouts {
    let mut f = Fields::new("conntrack", loc, entries);
    let t = ConntrackTimeouts {
        tcp_syn_sent: uint(&mut f, "tcp_syn_sent", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_syn_recv: uint(&mut f, "tcp_syn_recv", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_established: uint(&mut f, "tcp_established", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_fin_wait: uint(&mut f, "tcp_fin_wait", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_close_wait: uint(&mut f, "tcp_close_wait", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_last_ack: uint(&mut f, "tcp_last_ack", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_time_wait: uint(&mut f, "tcp_time_wait", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_close: uint(&mut f, "tcp_close", u64::from(u32::MAX), r).map(|v| v as u32),
        tcp_unacknowledged: uint(&mut f, "tcp_unacknowledged", u64::from(u32::MAX), r)
            .map(|v| v as u32),
        udp_unreplied: uint(&mut f, "udp_unreplied", u64::from(u32::MAX), r).map(|v| v as u32),
        udp_assured: uint(&mut f, "udp_assured", u64::from(u32::MAX), r).map(|v| v as u32),
        icmp: uint(&mut f, "icmp", u64::from(u32::MAX), r).map(|v| v as u32),
    };
    f.finish(r);
    t
}

/// A port (`8080`) or a range (`"8080-8090"`).
fn port_range(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<PortRange> {
    let path = f.path_of(key);
    let node = f.get(key)?;
    r.record(&path, node.loc);
    match &node.kind {
        Kind::Int(_) => {
            let port = uint_value(&path, node, u64::from(u16::MAX), r)? as u16;
            if port == 0 {
                r.error_at(&path, Some(node.loc), "port 0 cannot be used");
                return None;
            }
            Some(PortRange::single(port))
        }
        Kind::Str(text) => match text.parse() {
            Ok(range) => Some(range),
            Err(e) => {
                r.error_at(&path, Some(node.loc), e);
                None
            }
        },
        _ => {
            type_error(&path, node, "a port number or a \"first-last\" range", r);
            None
        }
    }
}

fn build_publish(
    i: usize,
    loc: Location,
    entries: &[Entry],
    r: &mut Report,
) -> Option<PublishConfig> {
    let mut f = Fields::new(format!("publish[{i}]"), loc, entries);
    let protocol = required(&mut f, "protocol", r, parsed::<L4Protocol>);
    let host_port = required(&mut f, "host_port", r, port_range);
    let host_address = ipv4(&mut f, "host_address", r);
    let address = required(&mut f, "address", r, ipv4);
    let port = uint(&mut f, "port", u64::from(u16::MAX), r).map(|p| p as u16);
    f.finish(r);
    let host_port = host_port?;
    Some(PublishConfig {
        protocol: protocol?,
        host_port,
        host_address,
        address: address?,
        port: port.unwrap_or(host_port.first),
        location: loc,
    })
}

fn build_host(loc: Location, entries: &[Entry], r: &mut Report) -> HostPortConfig {
    let mut f = Fields::new("host", loc, entries);
    let interface = string(&mut f, "interface", r);
    let address = required(&mut f, "address", r, cidr);
    let switch_address = ipv4(&mut f, "switch_address", r);
    f.finish(r);
    let address = address.unwrap_or(Ipv4Cidr {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
    });
    HostPortConfig {
        interface: interface.unwrap_or_else(|| HostPortConfig::DEFAULT_INTERFACE.to_string()),
        switch_address: switch_address
            .unwrap_or_else(|| HostPortConfig::default_switch_address(address)),
        address,
    }
}

/// `[uplink.neighbours]`: `"ip" = "mac"` entries.
fn static_neighbours(entries: &[Entry], r: &mut Report) -> Vec<StaticNeighbour> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let path = format!("uplink.neighbours.{}", entry.key);
        r.record(&path, entry.value.loc);
        let Ok(ip) = entry.key.parse::<Ipv4Addr>() else {
            r.error_at(
                &path,
                Some(entry.key_loc),
                format!(
                    "\"{}\" is not an IPv4 address (each key is a neighbour's address)",
                    entry.key
                ),
            );
            continue;
        };
        let Kind::Str(text) = &entry.value.kind else {
            type_error(&path, &entry.value, "a MAC address string", r);
            continue;
        };
        match text.parse::<MacAddress>() {
            Ok(mac) => out.push(StaticNeighbour { ip, mac }),
            Err(e) => r.error_at(&path, Some(entry.value.loc), e),
        }
    }
    out
}

fn build_network(i: usize, loc: Location, entries: &[Entry], r: &mut Report) -> NetworkConfig {
    let mut f = Fields::new(format!("network[{i}]"), loc, entries);
    let name = required(&mut f, "name", r, string);
    let subnet = cidr(&mut f, "subnet", r);
    let gateway = ipv4(&mut f, "gateway", r);
    let masquerade = boolean(&mut f, "masquerade", r).unwrap_or(false);
    let isolated = boolean(&mut f, "isolated", r).unwrap_or(true);
    let vni = uint(&mut f, "vni", u32::MAX.into(), r).map(|v| v as u32);
    let uplink = boolean(&mut f, "uplink", r).unwrap_or(false);
    f.finish(r);
    NetworkConfig {
        name: name.unwrap_or_default(),
        subnet,
        gateway,
        masquerade,
        isolated,
        vni,
        uplink,
        location: loc,
    }
}

fn build_port(i: usize, loc: Location, entries: &[Entry], r: &mut Report) -> PortConfig {
    let mut f = Fields::new(format!("port[{i}]"), loc, entries);
    let name = required(&mut f, "name", r, string);
    let driver = required(&mut f, "driver", r, parsed::<PortDriver>);
    let interface = string(&mut f, "interface", r);
    let interface_location = interface
        .as_ref()
        .and_then(|_| r.loc(&f.path_of("interface")));
    let socket = string(&mut f, "socket", r).map(PathBuf::from);
    let network = required(&mut f, "network", r, string);
    let xdp_mode = parsed::<XdpMode>(&mut f, "xdp_mode", r);
    f.finish(r);
    // Placeholders for missing or bad required fields keep the port's other
    // fields checked; the failed fields are skipped by the validator.
    PortConfig {
        name: name.unwrap_or_default(),
        driver: driver.unwrap_or(PortDriver::AfXdp),
        interface,
        socket,
        network: network.unwrap_or_default(),
        xdp_mode,
        location: loc,
        interface_location,
    }
}

// ---- typed getters ------------------------------------------------------

fn type_error(path: &str, node: &Node, want: &str, r: &mut Report) {
    r.error_at(
        path,
        Some(node.loc),
        format!("expected {want}, found {}", node.kind.type_name()),
    );
}

/// Runs `get` and reports a missing field at the table header.
fn required<'t, T>(
    f: &mut Fields<'t>,
    key: &'static str,
    r: &mut Report,
    get: impl FnOnce(&mut Fields<'t>, &'static str, &mut Report) -> Option<T>,
) -> Option<T> {
    let path = f.path_of(key);
    let value = get(f, key, r);
    if value.is_none() && r.loc(&path).is_none() {
        // Absent (a present-but-wrong value has a recorded location and an
        // issue of its own).
        r.error_at(path, Some(f.loc), format!("missing required field `{key}`"));
    }
    value
}

fn string(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<String> {
    let path = f.path_of(key);
    let node = f.get(key)?;
    r.record(&path, node.loc);
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        _ => {
            type_error(&path, node, "a string", r);
            None
        }
    }
}

fn boolean(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<bool> {
    let path = f.path_of(key);
    let node = f.get(key)?;
    r.record(&path, node.loc);
    match node.kind {
        Kind::Bool(b) => Some(b),
        _ => {
            type_error(&path, node, "a boolean (true or false)", r);
            None
        }
    }
}

fn uint(f: &mut Fields<'_>, key: &'static str, max: u64, r: &mut Report) -> Option<u64> {
    let path = f.path_of(key);
    let node = f.get(key)?;
    r.record(&path, node.loc);
    uint_value(&path, node, max, r)
}

/// A non-negative integer no larger than `max` (the target type's limit;
/// semantic ranges are the validator's job).
fn uint_value(path: &str, node: &Node, max: u64, r: &mut Report) -> Option<u64> {
    match node.kind {
        Kind::Int(i) if i < 0 => {
            r.error_at(
                path,
                Some(node.loc),
                format!("must not be negative, found {i}"),
            );
            None
        }
        Kind::Int(i) if i as u64 > max => {
            r.error_at(
                path,
                Some(node.loc),
                format!("{i} is out of range (at most {max})"),
            );
            None
        }
        Kind::Int(i) => Some(i as u64),
        _ => {
            type_error(path, node, "a non-negative integer", r);
            None
        }
    }
}

/// A string parsed with `FromStr`; the parse error becomes the message.
fn parsed<T>(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<T>
where
    T: FromStr,
    T::Err: Display,
{
    let path = f.path_of(key);
    let s = string(f, key, r)?;
    match s.parse() {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = r.loc(&path);
            r.error_at(path, loc, e.to_string());
            None
        }
    }
}

fn cidr(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<Ipv4Cidr> {
    parsed::<Ipv4Cidr>(f, key, r)
}

fn ipv4(f: &mut Fields<'_>, key: &'static str, r: &mut Report) -> Option<Ipv4Addr> {
    let path = f.path_of(key);
    let s = string(f, key, r)?;
    match s.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            let loc = r.loc(&path);
            let hint = if s.contains('/') {
                " (write the address without a prefix length)"
            } else {
                ""
            };
            r.error_at(
                path,
                loc,
                format!("\"{s}\" is not a valid IPv4 address{hint}"),
            );
            None
        }
    }
}

/// An optional section written as `[key]` (or `key = { ... }`).
fn table<'t>(
    f: &mut Fields<'t>,
    key: &'static str,
    r: &mut Report,
) -> Option<(Location, &'t [Entry])> {
    let path = f.path_of(key);
    let node = f.get(key)?;
    r.record(&path, node.loc);
    match &node.kind {
        Kind::Table(entries) => Some((node.loc, entries.as_slice())),
        Kind::Array(_) => {
            r.error_at(
                path,
                Some(node.loc),
                format!("expected a table (write [{key}] once), found an array"),
            );
            None
        }
        _ => {
            type_error(&path, node, &format!("a table ([{key}])"), r);
            None
        }
    }
}

/// A repeated section written as `[[key]]` (or an array of inline tables).
/// Elements that are not tables are reported and skipped; the others come
/// with their index in the file, which names them in field paths.
fn table_array<'t>(
    f: &mut Fields<'t>,
    key: &'static str,
    r: &mut Report,
) -> Vec<(usize, Location, &'t [Entry])> {
    let path = f.path_of(key);
    let Some(node) = f.get(key) else {
        return Vec::new();
    };
    r.record(&path, node.loc);
    match &node.kind {
        Kind::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match &item.kind {
                Kind::Table(entries) => Some((i, item.loc, entries.as_slice())),
                _ => {
                    type_error(&format!("{path}[{i}]"), item, "a table", r);
                    None
                }
            })
            .collect(),
        Kind::Table(_) => {
            r.error_at(
                path,
                Some(node.loc),
                format!("expected an array of tables (write [[{key}]], with double brackets), found a table"),
            );
            Vec::new()
        }
        _ => {
            type_error(&path, node, &format!("an array of tables ([[{key}]])"), r);
            Vec::new()
        }
    }
}
