//! Semantic checks on a [`NodeConfig`]: ranges, names, references and
//! conflicts. Pure functions of the config: nothing here looks at the system
//! (interfaces, cores, files), so `switchyard check` can run anywhere.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::report::Report;
use crate::{ConntrackTimeouts, Location, NetworkConfig, NodeConfig, PortDriver, SwitchConfig};

/// Longest network or port name.
pub(crate) const MAX_NAME_LEN: usize = 32;
/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub(crate) const MAX_IFNAME_LEN: usize = 15;
/// Longest Unix socket path (`sun_path` is 108 bytes with the NUL).
pub(crate) const MAX_SOCKET_PATH_LEN: usize = 107;
/// Longest network prefix: a /31 or /32 leaves no room for a gateway and
/// hosts.
pub(crate) const MAX_SUBNET_PREFIX: u8 = 30;
/// Largest VXLAN network identifier (24 bits).
pub(crate) const MAX_VNI: u32 = 16_777_215;

/// Runs every check, recording issues in `r`.
pub(crate) fn validate(cfg: &NodeConfig, r: &mut Report) {
    switch(&cfg.switch, r);
    uplink(cfg, r);
    host(cfg, r);
    networks(cfg, r);
    ports(cfg, r);
    publish(cfg, r);
    for (key, secs) in cfg.conntrack.set() {
        if secs == 0 || secs > ConntrackTimeouts::MAX_SECS {
            r.check_failed(
                &format!("conntrack.{key}"),
                r.loc("conntrack"),
                format!(
                    "{secs} is out of range (1 to {} seconds)",
                    ConntrackTimeouts::MAX_SECS
                ),
            );
        }
    }
}

fn publish(cfg: &NodeConfig, r: &mut Report) {
    let node_addresses: Vec<Ipv4Addr> = cfg
        .uplink
        .iter()
        .map(|u| u.address.addr)
        .chain(cfg.host.iter().map(|h| h.switch_address))
        .collect();
    let routed_subnets = crate::publish::routed_subnets(&cfg.networks);
    let scope = crate::PublishScope {
        node_addresses: &node_addresses,
        routed_subnets: &routed_subnets,
    };
    let specs: Vec<crate::PublishSpec> = cfg.publish.iter().map(Into::into).collect();
    for (i, (p, spec)) in cfg.publish.iter().zip(&specs).enumerate() {
        let earlier = specs[..i]
            .iter()
            .enumerate()
            .map(|(j, q)| (format!("publish[{j}]"), q));
        for issue in crate::check_publish(spec, scope, earlier) {
            r.check_failed(
                &format!("publish[{i}].{}", issue.field()),
                Some(p.location),
                issue.to_string(),
            );
        }
    }
}

fn switch(s: &SwitchConfig, r: &mut Report) {
    let fallback = None;
    if !(SwitchConfig::MIN_CONNTRACK_SIZE..=SwitchConfig::MAX_CONNTRACK_SIZE)
        .contains(&s.conntrack_size)
    {
        r.check_failed(
            "switch.conntrack_size",
            fallback,
            format!(
                "{} is out of range ({} to {} connections per worker)",
                s.conntrack_size,
                SwitchConfig::MIN_CONNTRACK_SIZE,
                SwitchConfig::MAX_CONNTRACK_SIZE
            ),
        );
    }
    let workers = "switch.workers";
    if s.workers.is_empty() {
        r.check_failed(
            workers,
            fallback,
            "at least one worker core is needed (e.g. workers = [0])",
        );
    } else if !r.failed(workers) {
        let mut seen = HashMap::new();
        for (i, &core) in s.workers.iter().enumerate() {
            let loc = r.loc(&format!("{workers}[{i}]")).or(r.loc(workers));
            if core >= SwitchConfig::MAX_CPUS {
                r.error_at(
                    workers,
                    loc,
                    format!(
                        "core {core} is out of range (cores are numbered below {})",
                        SwitchConfig::MAX_CPUS
                    ),
                );
            } else if let Some(first) = seen.insert(core, i) {
                r.error_at(
                    workers,
                    loc,
                    format!(
                        "core {core} is listed twice (entries {first} and {i}); \
                         each worker needs a core of its own"
                    ),
                );
            }
        }
    }

    socket_path(r, "switch.control_socket", fallback, &s.control_socket);
    if let Some(group) = &s.control_group {
        group_name(r, "switch.control_group", fallback, group);
    }

    range(
        r,
        "switch.mac_table_size",
        s.mac_table_size as u64,
        1,
        SwitchConfig::MAX_MAC_TABLE_SIZE as u64,
    );
    if s.mac_aging_secs < 1 {
        r.check_failed(
            "switch.mac_aging_secs",
            fallback,
            "must be at least 1 second",
        );
    }
    let burst_ok = range(
        r,
        "switch.burst_size",
        s.burst_size as u64,
        1,
        SwitchConfig::MAX_BURST_SIZE as u64,
    );

    let ring_ok = range(
        r,
        "switch.ring_size",
        s.ring_size.into(),
        SwitchConfig::MIN_RING_SIZE.into(),
        SwitchConfig::MAX_RING_SIZE.into(),
    ) && power_of_two(r, "switch.ring_size", s.ring_size);
    if ring_ok && burst_ok && s.burst_size > s.ring_size as usize {
        r.check_failed(
            "switch.burst_size",
            fallback,
            format!(
                "{} is larger than ring_size ({}); a burst cannot exceed the ring it is taken from",
                s.burst_size, s.ring_size
            ),
        );
    }

    let umem = "switch.umem_frames";
    if power_of_two(r, umem, s.umem_frames) {
        if s.umem_frames > SwitchConfig::MAX_UMEM_FRAMES {
            r.check_failed(
                umem,
                fallback,
                format!(
                    "{} is too large (at most {}: 4 GiB of 4 KiB frames per worker)",
                    s.umem_frames,
                    SwitchConfig::MAX_UMEM_FRAMES
                ),
            );
        } else if ring_ok && u64::from(s.umem_frames) < 2 * u64::from(s.ring_size) {
            r.check_failed(
                umem,
                fallback,
                format!(
                    "{} is too small for ring_size {}: need at least {} (2 * ring_size) so the \
                     fill ring can stay full while as many frames are in rx/tx",
                    s.umem_frames,
                    s.ring_size,
                    2 * u64::from(s.ring_size)
                ),
            );
        }
    }
}

/// Checks `min <= value <= max`; returns whether it holds (and the field
/// parsed).
fn range(r: &mut Report, field: &str, value: u64, min: u64, max: u64) -> bool {
    if r.failed(field) {
        return false;
    }
    if value < min || value > max {
        r.check_failed(
            field,
            None,
            format!("{value} is out of range ({min} to {max})"),
        );
        return false;
    }
    true
}

fn power_of_two(r: &mut Report, field: &str, value: u32) -> bool {
    if r.failed(field) {
        return false;
    }
    if !value.is_power_of_two() {
        let lower = if value == 0 {
            1
        } else {
            1u32 << (31 - value.leading_zeros())
        };
        r.check_failed(
            field,
            None,
            format!("{value} is not a power of two (AF_XDP rings and UMEM need one; try {lower})"),
        );
        return false;
    }
    true
}

fn uplink(cfg: &NodeConfig, r: &mut Report) {
    let Some(up) = &cfg.uplink else { return };
    let fallback = r.loc("uplink");
    interface_name(r, "uplink.interface", fallback, &up.interface);
    if r.failed("uplink.address") {
        return;
    }
    let addr = up.address;
    let field = "uplink.address";
    if addr.prefix_len > MAX_SUBNET_PREFIX {
        r.check_failed(
            field,
            fallback,
            format!(
                "/{} leaves no room for a next hop; the uplink's prefix must be /{MAX_SUBNET_PREFIX} or shorter",
                addr.prefix_len
            ),
        );
        return;
    }
    if addr.addr == addr.network() {
        r.check_failed(
            field,
            fallback,
            format!(
                "{addr} is the network address of its prefix; give the node's own \
                 address, e.g. \"{}/{}\"",
                Ipv4Addr::from(u32::from(addr.network()) + 1),
                addr.prefix_len
            ),
        );
    } else if addr.addr == addr.broadcast() {
        r.check_failed(
            field,
            fallback,
            format!("{addr} is the broadcast address of its prefix"),
        );
    }
    let on_link = |r: &mut Report, field: &str, ip: Ipv4Addr, what: &str| {
        if !addr.contains(ip) {
            r.check_failed(
                field,
                fallback,
                format!(
                    "{ip} is not inside the uplink address's prefix {}",
                    addr.trunc()
                ),
            );
        } else if ip == addr.addr {
            r.check_failed(field, fallback, format!("{ip} is the uplink's own address"));
        } else if ip == addr.network() || ip == addr.broadcast() {
            r.check_failed(
                field,
                fallback,
                format!("{ip} is the network or broadcast address of the uplink's prefix; a {what} has a host address"),
            );
        }
    };
    if let Some(gw) = up.gateway {
        on_link(r, "uplink.gateway", gw, "next hop");
    }
    // Each worker translates from its own share of the range.
    let workers = cfg.switch.workers.len();
    if up.nat_ports.len() < workers as u32 && cfg.networks.iter().any(|n| n.masquerade) {
        r.check_failed(
            "uplink.nat_ports",
            fallback,
            format!(
                "{} port(s) for {workers} workers: the range is split among the workers \
                 and each needs at least one; widen it",
                up.nat_ports.len()
            ),
        );
    }
    for n in &up.neighbours {
        on_link(r, &format!("uplink.neighbours.{}", n.ip), n.ip, "neighbour");
    }
    for (i, net) in cfg.networks.iter().enumerate() {
        if let Some(subnet) = net.subnet {
            if net.uplink {
                // A flat network's pool lies inside the uplink's prefix.
                if subnet.prefix_len < addr.prefix_len || !addr.contains(subnet.network()) {
                    let path = format!("{}.subnet", r.network_path(i));
                    r.check_failed(
                        &path,
                        Some(net.location),
                        format!(
                            "a flat network's subnet is its address pool on the uplink's LAN: it must lie inside {}",
                            addr.trunc()
                        ),
                    );
                } else if subnet.contains(addr.addr) {
                    let path = format!("{}.subnet", r.network_path(i));
                    r.check_failed(
                        &path,
                        Some(net.location),
                        format!(
                            "{subnet} contains the node's uplink address {}; give the containers a range without it",
                            addr.addr
                        ),
                    );
                }
                if let Some(gw) = net.gateway {
                    if !addr.contains(gw) || gw == addr.network() || gw == addr.broadcast() {
                        let path = format!("{}.gateway", r.network_path(i));
                        r.check_failed(
                            &path,
                            Some(net.location),
                            format!(
                                "{gw} is not a host address of the uplink's LAN {}; a flat network's gateway is its router there",
                                addr.trunc()
                            ),
                        );
                    }
                }
                continue;
            }
            if subnet.overlaps(&addr.trunc()) {
                let path = format!("{}.subnet", r.network_path(i));
                r.check_failed(
                    &path,
                    Some(net.location),
                    format!("{} overlaps the uplink's prefix {}", subnet, addr.trunc()),
                );
            }
        }
    }
}

fn host(cfg: &NodeConfig, r: &mut Report) {
    let Some(host) = &cfg.host else { return };
    let fallback = r.loc("host");
    interface_name(r, "host.interface", fallback, &host.interface);
    let clash = cfg
        .ports
        .iter()
        .filter_map(|p| p.interface.as_deref())
        .chain(cfg.uplink.as_ref().map(|u| u.interface.as_str()))
        .any(|i| i == host.interface);
    if clash {
        r.check_failed(
            "host.interface",
            fallback,
            format!(
                "interface \"{}\" is a port or the uplink; the host port is a veth the daemon makes, give it a name of its own",
                host.interface
            ),
        );
    }
    if r.failed("host.address") {
        return;
    }
    let addr = host.address;
    if addr.prefix_len > MAX_SUBNET_PREFIX {
        r.check_failed(
            "host.address",
            fallback,
            format!(
                "/{} leaves no room for the switch's address; use /30 or shorter",
                addr.prefix_len
            ),
        );
        return;
    }
    if addr.addr == addr.network() || addr.addr == addr.broadcast() {
        r.check_failed(
            "host.address",
            fallback,
            format!("{addr} is the network or broadcast address of its prefix; give the host end's own address"),
        );
        return;
    }
    let sw = host.switch_address;
    if !addr.contains(sw) || sw == addr.addr || sw == addr.network() || sw == addr.broadcast() {
        r.check_failed(
            "host.switch_address",
            fallback,
            format!(
                "{sw} must be another host address of {}, the host end's prefix",
                addr.trunc()
            ),
        );
    }
    let prefix = addr.trunc();
    if let Some(up) = &cfg.uplink {
        if !r.failed("uplink.address") && up.address.trunc().overlaps(&prefix) {
            r.check_failed(
                "host.address",
                fallback,
                format!(
                    "{prefix} overlaps the uplink's prefix {}",
                    up.address.trunc()
                ),
            );
        }
    }
    for (i, net) in cfg.networks.iter().enumerate() {
        if net.subnet.is_some_and(|s| s.overlaps(&prefix)) {
            let path = format!("{}.subnet", r.network_path(i));
            r.check_failed(
                &path,
                Some(net.location),
                format!("overlaps the host port's prefix {prefix}"),
            );
        }
    }
}

fn networks(cfg: &NodeConfig, r: &mut Report) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut vnis: HashMap<u32, usize> = HashMap::new();
    for (i, net) in cfg.networks.iter().enumerate() {
        let path = r.network_path(i);
        let f = |k: &str| format!("{path}.{k}");
        let fallback = Some(net.location);

        if name(r, &f("name"), fallback, &net.name, "network") {
            if NetworkConfig::RESERVED_NAMES.contains(&net.name.as_str()) {
                r.check_failed(
                    &f("name"),
                    fallback,
                    format!(
                        "\"{}\" is reserved (the switch's own uplink and host port networks are called {:?}); choose another name",
                        net.name,
                        NetworkConfig::RESERVED_NAMES
                    ),
                );
            } else if let Some(&first) = names.get(net.name.as_str()) {
                let first_path = r.network_path(first);
                r.check_failed(
                    &f("name"),
                    fallback,
                    format!(
                        "duplicate network name \"{}\" (already used by {first_path} at {})",
                        net.name, cfg.networks[first].location
                    ),
                );
            } else {
                names.insert(&net.name, i);
            }
        }

        let mut subnet_ok = false;
        if let Some(subnet) = net.subnet {
            if subnet.has_host_bits() {
                r.check_failed(
                    &f("subnet"),
                    fallback,
                    format!(
                        "{subnet} has host bits set; a subnet is a network address, did you mean \"{}\"?",
                        subnet.trunc()
                    ),
                );
            } else if subnet.prefix_len > MAX_SUBNET_PREFIX {
                r.check_failed(
                    &f("subnet"),
                    fallback,
                    format!(
                        "/{} leaves no room for a gateway and hosts; use /{MAX_SUBNET_PREFIX} or shorter",
                        subnet.prefix_len
                    ),
                );
            } else {
                subnet_ok = true;
                // Overlaps would make routing between networks ambiguous.
                for (j, other) in cfg.networks[..i].iter().enumerate() {
                    let Some(o) = other.subnet else { continue };
                    if !o.has_host_bits()
                        && o.prefix_len <= MAX_SUBNET_PREFIX
                        && subnet.overlaps(&o)
                    {
                        let other_path = r.network_path(j);
                        r.check_failed(
                            &f("subnet"),
                            fallback,
                            format!(
                                "{subnet} overlaps {o} of network \"{}\" ({other_path})",
                                other.name
                            ),
                        );
                        break;
                    }
                }
            }
        }

        if net.uplink {
            if cfg.uplink.is_none() {
                r.check_failed(
                    &f("uplink"),
                    fallback,
                    "a flat network (uplink = true) lives on the uplink's LAN: add an [uplink] section",
                );
            } else if net.subnet.is_none() && !r.failed(&f("subnet")) {
                r.check_failed(
                    &f("uplink"),
                    fallback,
                    "a flat network needs a subnet: the pool its containers' addresses come from, inside the uplink's prefix",
                );
            }
            if let Some(first) = cfg.networks[..i].iter().position(|n| n.uplink) {
                let first_path = r.network_path(first);
                r.check_failed(
                    &f("uplink"),
                    fallback,
                    format!("only one network can be the uplink's LAN ({first_path} is already)"),
                );
            }
            for (key, set) in [("masquerade", net.masquerade), ("vni", net.vni.is_some())] {
                if set {
                    r.check_failed(
                        &f(key),
                        fallback,
                        format!(
                            "a flat network is bridged onto the uplink's LAN: {key} does not apply"
                        ),
                    );
                }
            }
        }

        if let (Some(_), true) = (net.gateway, net.uplink) {
            // Checked against the uplink's prefix with the uplink.
        } else if let Some(gw) = net.gateway {
            if net.subnet.is_none() {
                if !r.failed(&f("subnet")) {
                    r.check_failed(
                        &f("gateway"),
                        fallback,
                        "gateway needs a subnet; add `subnet = \"A.B.C.0/N\"` or remove the gateway",
                    );
                }
            } else if let (Some(subnet), true) = (net.subnet, subnet_ok) {
                if !subnet.contains(gw) {
                    r.check_failed(
                        &f("gateway"),
                        fallback,
                        format!("{gw} is outside subnet {subnet}"),
                    );
                } else if gw == subnet.network() {
                    r.check_failed(
                        &f("gateway"),
                        fallback,
                        format!("{gw} is the network address of {subnet}; pick a host address such as {}", Ipv4Addr::from(u32::from(gw) + 1)),
                    );
                } else if gw == subnet.broadcast() {
                    r.check_failed(
                        &f("gateway"),
                        fallback,
                        format!("{gw} is the broadcast address of {subnet}"),
                    );
                }
            }
        }

        if net.masquerade {
            let l3_failed = r.failed(&f("subnet")) || r.failed(&f("gateway"));
            if (net.subnet.is_none() || net.gateway.is_none()) && !l3_failed {
                r.check_failed(
                    &f("masquerade"),
                    fallback,
                    "masquerade needs a subnet and a gateway: only routed traffic is translated",
                );
            } else if cfg.uplink.is_none() && !r.failed("uplink") {
                r.check_failed(
                    &f("masquerade"),
                    fallback,
                    "masquerade needs an [uplink] section: traffic is translated to the uplink address",
                );
            }
        }

        if let Some(vni) = net.vni {
            if !(1..=MAX_VNI).contains(&vni) {
                r.check_failed(
                    &f("vni"),
                    fallback,
                    format!("{vni} is out of range (1 to {MAX_VNI}, 24 bits)"),
                );
            } else if let Some(&first) = vnis.get(&vni) {
                let first_path = r.network_path(first);
                r.check_failed(
                    &f("vni"),
                    fallback,
                    format!(
                        "vni {vni} is already used by network \"{}\" ({first_path})",
                        cfg.networks[first].name
                    ),
                );
            } else {
                vnis.insert(vni, i);
            }
        }
    }
}

fn ports(cfg: &NodeConfig, r: &mut Report) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut interfaces: HashMap<&str, usize> = HashMap::new();
    let mut sockets: HashMap<&Path, usize> = HashMap::new();
    for (i, port) in cfg.ports.iter().enumerate() {
        let path = r.port_path(i);
        let f = |k: &str| format!("{path}.{k}");
        let fallback = Some(port.location);

        if name(r, &f("name"), fallback, &port.name, "port") {
            if NetworkConfig::RESERVED_NAMES.contains(&port.name.as_str()) {
                r.check_failed(
                    &f("name"),
                    fallback,
                    format!(
                        "\"{}\" is reserved (the switch's uplink and host ports are called {:?}); choose another name",
                        port.name,
                        NetworkConfig::RESERVED_NAMES
                    ),
                );
            } else if let Some(&first) = names.get(port.name.as_str()) {
                let first_path = r.port_path(first);
                r.check_failed(
                    &f("name"),
                    fallback,
                    format!(
                        "duplicate port name \"{}\" (already used by {first_path} at {})",
                        port.name, cfg.ports[first].location
                    ),
                );
            } else {
                names.insert(&port.name, i);
            }
        }

        if cfg.network(&port.network).is_none() {
            r.check_failed(
                &f("network"),
                fallback,
                format!("network \"{}\" is not defined", port.network),
            );
        }

        let driver = port.driver;
        if r.failed(&f("driver")) {
            // Unknown driver: only check what does not depend on it.
            if let Some(ifname) = &port.interface {
                interface_name(
                    r,
                    &f("interface"),
                    port.interface_location.or(fallback),
                    ifname,
                );
            }
            continue;
        }
        match (driver, &port.interface) {
            (PortDriver::AfXdp, None) => r.check_failed(
                &f("interface"),
                fallback,
                "an af_xdp port needs `interface`, the Linux interface to attach to",
            ),
            (PortDriver::VhostUser, Some(_)) => r.check_failed(
                &f("interface"),
                fallback,
                "`interface` is for af_xdp ports; a vhost-user port is reached through `socket`",
            ),
            (PortDriver::AfXdp, Some(ifname)) => {
                if interface_name(
                    r,
                    &f("interface"),
                    port.interface_location.or(fallback),
                    ifname,
                ) {
                    let loc = port.interface_location.or(fallback);
                    if let Some(&first) = interfaces.get(ifname.as_str()) {
                        r.check_failed(
                            &f("interface"),
                            loc,
                            format!(
                                "interface \"{ifname}\" is already used by port \"{}\" ({})",
                                cfg.ports[first].name,
                                r.port_path(first)
                            ),
                        );
                    } else if cfg.uplink.as_ref().is_some_and(|u| u.interface == *ifname) {
                        r.check_failed(
                            &f("interface"),
                            loc,
                            format!("interface \"{ifname}\" is the uplink"),
                        );
                    } else {
                        interfaces.insert(ifname, i);
                    }
                }
            }
            (PortDriver::VhostUser, None) => {}
        }

        match (driver, &port.socket) {
            (PortDriver::VhostUser, None) => r.check_failed(
                &f("socket"),
                fallback,
                "a vhost-user port needs `socket`, the Unix socket path the VM connects to",
            ),
            (PortDriver::AfXdp, Some(_)) => r.check_failed(
                &f("socket"),
                fallback,
                "`socket` is for vhost-user ports; an af_xdp port is attached by `interface`",
            ),
            (PortDriver::VhostUser, Some(sock)) => {
                if socket_path(r, &f("socket"), fallback, sock) {
                    if let Some(&first) = sockets.get(sock.as_path()) {
                        r.check_failed(
                            &f("socket"),
                            fallback,
                            format!(
                                "socket {} is already used by port \"{}\" ({})",
                                sock.display(),
                                cfg.ports[first].name,
                                r.port_path(first)
                            ),
                        );
                    } else if *sock == cfg.switch.control_socket {
                        r.check_failed(
                            &f("socket"),
                            fallback,
                            "this is the switch's control_socket",
                        );
                    } else {
                        sockets.insert(sock, i);
                    }
                }
            }
            (PortDriver::AfXdp, None) => {}
        }

        if driver == PortDriver::VhostUser && port.xdp_mode.is_some() {
            r.check_failed(
                &f("xdp_mode"),
                fallback,
                "xdp_mode only applies to af_xdp ports",
            );
        }
    }
}

/// Network and port names: `[A-Za-z0-9_.-]{1,32}`, so they are safe in
/// logs, JSON, file names and `ctl` arguments. Returns whether it is valid.
fn name(r: &mut Report, field: &str, fallback: Option<Location>, value: &str, what: &str) -> bool {
    if r.failed(field) {
        return false;
    }
    let problem = if value.is_empty() {
        Some(format!("{what} name must not be empty"))
    } else if value.len() > MAX_NAME_LEN {
        Some(format!(
            "{what} name \"{value}\" is {} characters long (at most {MAX_NAME_LEN})",
            value.chars().count()
        ))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .map(|c| {
                format!(
                    "{what} name \"{value}\" contains {c:?}; use only letters, digits, '_', '.' and '-'"
                )
            })
    };
    match problem {
        Some(msg) => {
            r.check_failed(field, fallback, msg);
            false
        }
        None => true,
    }
}

/// The rules of the kernel's `dev_valid_name`. Returns whether it is valid.
/// A Unix group name as `groupadd` accepts it (portable subset): 1..=32 of
/// `[A-Za-z0-9_.-]`, not starting with `-`.
fn group_name(r: &mut Report, field: &str, fallback: Option<Location>, value: &str) -> bool {
    let problem = if value.is_empty() {
        Some("must not be empty".to_string())
    } else if value.len() > MAX_NAME_LEN {
        Some(format!(
            "\"{value}\" is longer than {MAX_NAME_LEN} characters"
        ))
    } else if value.starts_with('-') {
        Some(format!("\"{value}\" starts with '-'"))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
            .map(|c| {
                format!(
                    "\"{value}\" contains {c:?}; a group name is letters, digits, '_', '.', '-'"
                )
            })
    };
    match problem {
        Some(message) => {
            r.check_failed(field, fallback, message);
            false
        }
        None => true,
    }
}

fn interface_name(r: &mut Report, field: &str, fallback: Option<Location>, value: &str) -> bool {
    if r.failed(field) {
        return false;
    }
    let problem = if value.is_empty() {
        Some("interface name must not be empty".to_string())
    } else if value.len() > MAX_IFNAME_LEN {
        Some(format!(
            "interface name \"{value}\" is {} bytes long; Linux allows at most {MAX_IFNAME_LEN}",
            value.len()
        ))
    } else if value == "." || value == ".." {
        Some(format!("\"{value}\" is not a valid interface name"))
    } else {
        value
            .chars()
            .find(|&c| c == '/' || c == ':' || c.is_whitespace())
            .map(|c| {
                format!("interface name \"{value}\" contains {c:?}, which Linux does not allow")
            })
    };
    match problem {
        Some(msg) => {
            r.check_failed(field, fallback, msg);
            false
        }
        None => true,
    }
}

/// A Unix socket path: absolute (the daemon's working directory is not
/// something to depend on) and short enough for `sun_path`. Returns whether
/// it is valid.
fn socket_path(r: &mut Report, field: &str, fallback: Option<Location>, path: &Path) -> bool {
    if r.failed(field) {
        return false;
    }
    let len = path.as_os_str().len();
    let problem = if len == 0 {
        Some("socket path must not be empty".to_string())
    } else if !path.is_absolute() {
        Some(format!(
            "socket path \"{}\" must be absolute",
            path.display()
        ))
    } else if len > MAX_SOCKET_PATH_LEN {
        Some(format!(
            "socket path is {len} bytes long; Unix sockets allow at most {MAX_SOCKET_PATH_LEN}"
        ))
    } else {
        None
    };
    match problem {
        Some(msg) => {
            r.check_failed(field, fallback, msg);
            false
        }
        None => true,
    }
}
