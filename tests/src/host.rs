//! A `Host`: a network namespace with one veth into it, standing in for a container.
//!
//! The namespace side is `eth0` with an IPv4 address, kernel default offloads left on
//! (so partial checksums and GSO reach the switch, as from a real container); the
//! root-namespace side is the port the dataplane attaches to: up, no address.

use std::fs;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use crate::cmd::{self, CmdOutput};
use crate::names;
use crate::netns::{self, NsThread};

/// Kernel packet/byte counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Outcome of a `ping` run inside a host.
#[derive(Debug, Clone)]
pub struct PingResult {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
    /// The full command output, for messages.
    pub output: CmdOutput,
}

impl PingResult {
    /// True when every request got its reply.
    pub fn all_replied(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted && self.output.success()
    }
}

/// A namespace + veth pair, deleted on drop (also when the test panics).
#[derive(Debug)]
pub struct Host {
    name: String,
    netns: String,
    ifname: String,
    ip: Ipv4Addr,
    prefix_len: u8,
    mac: String,
    created_netns: bool,
    created_link: bool,
}

fn parse_cidr(cidr: &str) -> (Ipv4Addr, u8) {
    let (ip, len) = cidr
        .split_once('/')
        .unwrap_or_else(|| panic!("address {cidr:?} is not CIDR (a.b.c.d/len)"));
    let ip: Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("{cidr:?}: {e}"));
    let len: u8 = len.parse().unwrap_or_else(|e| panic!("{cidr:?}: {e}"));
    assert!(len <= 32, "{cidr:?}: prefix length > 32");
    (ip, len)
}

impl Host {
    /// Creates host `name` of lab `lab_id` with address `cidr` (e.g. `198.18.0.1/24`).
    ///
    /// Steps: `ip netns add`; IPv6 off in the namespace (no RS/MLD/ND noise on the
    /// counters the tests read); veth `syt<id><name>` with its peer created directly
    /// inside the namespace as `eth0`; IPv6 and IPv4 forwarding off on the root-side end;
    /// address, `lo` and both ends up. Panics with the failing command; whatever was
    /// created so far is removed by `Drop`.
    #[track_caller]
    pub fn create(lab_id: &str, name: &str, cidr: &str) -> Host {
        Self::create_with_queues(lab_id, name, cidr, 1)
    }

    /// Like [`create`](Self::create), with `queues` TX and RX queues on both ends
    /// of the veth: the namespace spreads its flows over them by hash, and in native
    /// XDP mode queue i of the peer lands on queue i of the switch's end, so a
    /// multi-worker switch receives on several queues (RSS on a veth).
    #[track_caller]
    pub fn create_with_queues(lab_id: &str, name: &str, cidr: &str, queues: u32) -> Host {
        let queues = queues.max(1).to_string();
        let (ip, prefix_len) = parse_cidr(cidr);
        let mut host = Host {
            name: name.to_string(),
            netns: names::netns_name(lab_id, name),
            ifname: names::ifname(lab_id, name),
            ip,
            prefix_len,
            mac: String::new(),
            created_netns: false,
            created_link: false,
        };
        cmd::run_ok("ip", &["netns", "add", &host.netns]);
        host.created_netns = true;
        host.exec_ok(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        cmd::run_ok(
            "ip",
            &[
                "link",
                "add",
                &host.ifname,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.netns,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
            ],
        );
        host.created_link = true;
        for (key, value) in [
            (
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", host.ifname),
                "1",
            ),
            (
                format!("/proc/sys/net/ipv4/conf/{}/forwarding", host.ifname),
                "0",
            ),
        ] {
            fs::write(&key, value).unwrap_or_else(|e| panic!("write {key}: {e}"));
        }
        let addr = format!("{ip}/{prefix_len}");
        host.ip_ok(&["addr", "add", &addr, "dev", "eth0"]);
        host.ip_ok(&["link", "set", "lo", "up"]);
        host.ip_ok(&["link", "set", "eth0", "up"]);
        cmd::run_ok("ip", &["link", "set", &host.ifname, "up"]);
        host.mac = host
            .link_json("eth0")
            .get("address")
            .and_then(Value::as_str)
            .expect("eth0 has an address")
            .to_string();
        host
    }

    /// Wraps a namespace someone else set up (e.g. a container the daemon attached)
    /// as a host: `eth0` inside `netns` with address `cidr` and MAC `mac`, and
    /// `ifname` the root-namespace end of its veth.
    ///
    /// The host owns nothing: dropping it deletes neither the namespace nor the link,
    /// so traffic helpers ([`crate::tcp_transfer`], [`crate::udp_burst`], `ping`) can
    /// be pointed at containers whose lifetime the test manages otherwise.
    #[track_caller]
    pub fn adopt(name: &str, netns: &str, ifname: &str, cidr: &str, mac: &str) -> Host {
        let (ip, prefix_len) = parse_cidr(cidr);
        Host {
            name: name.to_string(),
            netns: netns.to_string(),
            ifname: ifname.to_string(),
            ip,
            prefix_len,
            mac: mac.to_ascii_lowercase(),
            created_netns: false,
            created_link: false,
        }
    }

    /// The host's short name (`h1`), also its switch port name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace name (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The root-namespace end of the veth: the interface the dataplane attaches to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The IPv4 address of `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The prefix length of `eth0`'s address.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The MAC address of `eth0` (lowercase, colon-separated, as `ip` prints it).
    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// Runs `args` inside the namespace (`ip netns exec`), bounded by `timeout`.
    #[track_caller]
    pub fn exec(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let mut full = vec!["netns", "exec", self.netns.as_str()];
        full.extend_from_slice(args);
        cmd::run_with_timeout("ip", &full, timeout)
    }

    /// Like [`Host::exec`] with the default timeout; panics unless it succeeds.
    #[track_caller]
    pub fn exec_ok(&self, args: &[&str]) -> CmdOutput {
        self.exec(args, cmd::DEFAULT_TIMEOUT).expect_success()
    }

    /// Runs `ip -n <netns> args...`; panics unless it succeeds.
    #[track_caller]
    pub fn ip_ok(&self, args: &[&str]) -> CmdOutput {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        cmd::run_ok("ip", &full)
    }

    fn link_json(&self, dev: &str) -> Value {
        let out = self.ip_ok(&["-j", "-s", "link", "show", "dev", dev]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("parse `{}`: {e}: {}", out.cmdline, out.stdout));
        v.get(0)
            .cloned()
            .unwrap_or_else(|| panic!("no link in {out}"))
    }

    /// Kernel counters of `eth0` inside the namespace (what the "container" saw).
    #[track_caller]
    pub fn eth0_counters(&self) -> LinkCounters {
        let link = self.link_json("eth0");
        let get = |dir: &str, what: &str| {
            link.pointer(&format!("/stats64/{dir}/{what}"))
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("no stats64.{dir}.{what} in {link}"))
        };
        LinkCounters {
            rx_packets: get("rx", "packets"),
            rx_bytes: get("rx", "bytes"),
            tx_packets: get("tx", "packets"),
            tx_bytes: get("tx", "bytes"),
        }
    }

    /// Kernel counters of the root-namespace end (what the dataplane sent and received).
    #[track_caller]
    pub fn port_link_counters(&self) -> LinkCounters {
        root_link_counters(&self.ifname)
    }

    /// Whether offload `feature` (as `ethtool -k` names it, e.g. `tx-checksumming`) is
    /// on for `eth0`.
    ///
    /// Tests use it to prove their own precondition: a TCP test only shows that the
    /// switch copes with partial checksums if the sender really offloads them.
    #[track_caller]
    pub fn eth0_offload(&self, feature: &str) -> bool {
        let out = self.exec_ok(&["ethtool", "-k", "eth0"]);
        let prefix = format!("{feature}:");
        let line = out
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {feature} in {out}"));
        line[prefix.len()..].trim_start().starts_with("on")
    }

    /// `ping -c count` from this host to `dst`, one second per reply, bounded overall.
    #[track_caller]
    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> PingResult {
        let dst = dst.to_string();
        let count_s = count.to_string();
        let timeout = Duration::from_secs(5 + 2 * u64::from(count));
        let output = self.exec(
            &[
                "ping", "-n", "-q", "-c", &count_s, "-i", "0.2", "-W", "1", &dst,
            ],
            timeout,
        );
        let (transmitted, received) = parse_ping_summary(&output.stdout);
        PingResult {
            transmitted,
            received,
            output,
        }
    }

    /// The MAC this host's ARP table holds for `ip`, if resolved (REACHABLE/STALE/...).
    #[track_caller]
    pub fn neigh_mac(&self, ip: Ipv4Addr) -> Option<String> {
        let out = self.ip_ok(&["-j", "neigh", "show", &ip.to_string(), "dev", "eth0"]);
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let entry = v.get(0)?;
        let failed = entry
            .get("state")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|x| x == "FAILED" || x == "INCOMPLETE"));
        if failed {
            return None;
        }
        entry
            .get("lladdr")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Runs `f` on a new thread inside this host's namespace (see [`netns::spawn_in`]).
    pub fn spawn<T, F>(&self, label: &str, f: F) -> NsThread<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        netns::spawn_in(&self.netns, &format!("{}:{label}", self.name), f)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Delete the veth explicitly: deleting only the namespace would free the pair
        // asynchronously, and a quick re-run could still see the root-side end.
        if self.created_link {
            cmd::cleanup(&["link", "del", &self.ifname]);
        }
        if self.created_netns {
            cmd::cleanup(&["netns", "del", &self.netns]);
        }
    }
}

/// Parses ping's "N packets transmitted, M received" line; (0, 0) when absent.
pub fn parse_ping_summary(stdout: &str) -> (u32, u32) {
    for line in stdout.lines() {
        if let Some((tx, rest)) = line.split_once(" packets transmitted, ") {
            let rx = rest.split_whitespace().next().unwrap_or("0");
            return (
                tx.trim().parse().unwrap_or(0),
                rx.trim().parse().unwrap_or(0),
            );
        }
    }
    (0, 0)
}

/// Kernel counters of an interface in the root namespace (from /sys/class/net).
#[track_caller]
pub fn root_link_counters(ifname: &str) -> LinkCounters {
    let read = |what: &str| {
        let path = format!("/sys/class/net/{ifname}/statistics/{what}");
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("parse {path}: {e}"))
    };
    LinkCounters {
        rx_packets: read("rx_packets"),
        rx_bytes: read("rx_bytes"),
        tx_packets: read("tx_packets"),
        tx_bytes: read("tx_bytes"),
    }
}

/// The `ip -j link show` record of a root-namespace interface, or `None` if it is gone.
pub fn root_link_json(ifname: &str) -> Option<Value> {
    let out = cmd::run("ip", &["-j", "-d", "link", "show", "dev", ifname]);
    if !out.success() {
        return None;
    }
    serde_json::from_str::<Value>(&out.stdout)
        .ok()?
        .get(0)
        .cloned()
}

/// The XDP information `ip` reports for a root-namespace interface, if a program is attached.
///
/// `ip -j link` prints an `"xdp"` object only while a program is attached; the daemon
/// must leave none behind after a clean exit.
pub fn xdp_info(ifname: &str) -> Option<Value> {
    root_link_json(ifname)?.get("xdp").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary() {
        let out = "PING 1.2.3.4 (1.2.3.4) 56(84) bytes of data.\n\n--- 1.2.3.4 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms\n";
        assert_eq!(parse_ping_summary(out), (3, 2));
        assert_eq!(parse_ping_summary("garbage"), (0, 0));
    }

    #[test]
    fn cidr() {
        assert_eq!(
            parse_cidr("198.18.0.1/24"),
            (Ipv4Addr::new(198, 18, 0, 1), 24)
        );
    }
}
