//! The netlink module against the real kernel: namespaces made with
//! `ip netns add`, the result observed with `ip -j`, `ethtool` and sysfs.
//!
//! Needs root. Without it every test prints `SKIP:` and passes, unless
//! `CI=true`, where skipping would hide a broken CI machine, so it panics.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use switchyard_switch::netlink::{
    create_container_link, delete_link, link_exists, verify_container_link, ContainerLink,
    NetlinkError, NetnsRef,
};

const MAC: [u8; 6] = [0x02, 0x53, 0x59, 0x00, 0x00, 0x02];
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 249, 7, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 249, 7, 1);

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    println!("SKIP: {test}: needs root");
    false
}

/// A short name unique to this process and call, `sytn` + pid + counter,
/// well under 15 bytes.
fn unique(tag: char) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("sytn{}{tag}{n}", std::process::id() % 100_000)
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&run_ok(args)).unwrap_or_else(|e| panic!("{args:?}: bad JSON: {e}"))
}

/// A named namespace, deleted on drop (also when the test panics).
struct TestNs {
    name: String,
}

impl TestNs {
    fn new() -> Self {
        let name = unique('n');
        run_ok(&["ip", "netns", "add", &name]);
        TestNs { name }
    }

    fn path(&self) -> NetnsRef {
        NetnsRef::Path(format!("/run/netns/{}", self.name).into())
    }

    fn links(&self) -> Vec<String> {
        json(&["ip", "-n", &self.name, "-j", "link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Deletes the host end on drop, whatever the test did with it.
struct HostEnd(String);

impl Drop for HostEnd {
    fn drop(&mut self) {
        if link_exists(&self.0) {
            let _ = run(&["ip", "link", "del", &self.0]);
        }
    }
}

fn link_spec(host: &str, netns: NetnsRef, queues: u32) -> ContainerLink {
    ContainerLink {
        host_name: host.to_string(),
        netns,
        ifname: "eth0".into(),
        mac: MAC,
        mtu: 1400,
        address: ADDRESS,
        prefix_len: 24,
        gateway: Some(GATEWAY),
        queues,
    }
}

fn queue_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str() == Some(flag))
}

#[test]
fn attach_configures_both_ends_and_detach_removes_them() {
    if !root_or_skip("attach_configures_both_ends_and_detach_removes_them") {
        return;
    }
    let ns = TestNs::new();
    let host = unique('h');
    let _guard = HostEnd(host.clone());
    let link = link_spec(&host, ns.path(), 2);
    create_container_link(&link).expect("create_container_link");

    // Container end: MAC, MTU, up (and its carrier: the host end is up too).
    let eth0 = &json(&["ip", "-n", &ns.name, "-j", "link", "show", "eth0"])[0];
    assert_eq!(eth0["address"], "02:53:59:00:00:02");
    assert_eq!(eth0["mtu"], 1400);
    assert!(has_flag(eth0, "UP"), "{eth0}");
    assert!(has_flag(eth0, "LOWER_UP"), "{eth0}");
    let lo = &json(&["ip", "-n", &ns.name, "-j", "link", "show", "lo"])[0];
    assert!(has_flag(lo, "UP"), "{lo}");

    let addrs = &json(&["ip", "-n", &ns.name, "-j", "-4", "addr", "show", "eth0"])[0];
    let info = addrs["addr_info"].as_array().unwrap();
    assert!(
        info.iter()
            .any(|a| a["local"] == "10.249.7.2" && a["prefixlen"] == 24),
        "{addrs}"
    );
    let routes = json(&["ip", "-n", &ns.name, "-j", "-4", "route", "show", "default"]);
    let routes = routes.as_array().unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "10.249.7.1");
    assert_eq!(routes[0]["dev"], "eth0");

    // Host end: up, same MTU, 2 queues each way, IPv6 off.
    let sys = format!("/sys/class/net/{host}");
    assert_eq!(
        queue_names(&format!("{sys}/queues")),
        ["rx-0", "rx-1", "tx-0", "tx-1"]
    );
    assert_eq!(
        std::fs::read_to_string(format!("{sys}/mtu"))
            .unwrap()
            .trim(),
        "1400"
    );
    let host_link = &json(&["ip", "-j", "link", "show", &host])[0];
    assert!(has_flag(host_link, "UP"), "{host_link}");
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let v6 = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"));
        assert_eq!(v6.unwrap().trim(), "1");
    }
    // Container end's queues, through the namespace's own sysfs.
    let queues = run_ok(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "ls",
        "/sys/class/net/eth0/queues",
    ]);
    let mut queues: Vec<&str> = queues.split_whitespace().collect();
    queues.sort();
    assert_eq!(queues, ["rx-0", "rx-1", "tx-0", "tx-1"]);

    // Offloads AF_XDP cannot honour are off on the container end.
    let features = run_ok(&["ip", "netns", "exec", &ns.name, "ethtool", "-k", "eth0"]);
    for feature in [
        "tx-checksumming",
        "tcp-segmentation-offload",
        "generic-segmentation-offload",
    ] {
        let line = features
            .lines()
            .find(|l| l.starts_with(&format!("{feature}:")))
            .unwrap_or_else(|| panic!("no {feature} in {features}"));
        assert!(line.contains(": off"), "{line}");
    }

    // The address answers inside the namespace (lo up, address in place).
    run_ok(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "10.249.7.2",
    ]);

    // CNI CHECK passes as configured, fails on a different gateway, and
    // fails once the address is gone.
    verify_container_link(&ns.path(), "eth0", ADDRESS, 24, Some(GATEWAY)).expect("verify");
    verify_container_link(&ns.path(), "eth0", ADDRESS, 24, None).expect("verify without gw");
    let err = verify_container_link(
        &ns.path(),
        "eth0",
        ADDRESS,
        24,
        Some(Ipv4Addr::new(10, 249, 7, 9)),
    )
    .unwrap_err();
    assert!(matches!(err, NetlinkError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("default route"), "{err}");
    let err = verify_container_link(&ns.path(), "eth1", ADDRESS, 24, None).unwrap_err();
    assert!(err.to_string().contains("no such interface"), "{err}");
    run_ok(&[
        "ip",
        "-n",
        &ns.name,
        "addr",
        "del",
        "10.249.7.2/24",
        "dev",
        "eth0",
    ]);
    let err = verify_container_link(&ns.path(), "eth0", ADDRESS, 24, Some(GATEWAY)).unwrap_err();
    assert!(matches!(err, NetlinkError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("10.249.7.2/24 missing"), "{err}");

    // Detach: both ends go; a second detach is a no-op.
    assert!(link_exists(&host));
    assert!(delete_link(&host).expect("delete_link"));
    assert!(!link_exists(&host));
    assert_eq!(ns.links(), ["lo"]);
    assert!(!delete_link(&host).expect("second delete_link"));
}

/// A Docker-style namespace given by PID, one queue.
#[test]
fn attach_by_pid() {
    if !root_or_skip("attach_by_pid") {
        return;
    }
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // unshare execs sleep in place, so the child's PID owns the new netns.
    let child = Kill(
        Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .spawn()
            .expect("unshare"),
    );
    let pid = child.0.id();
    // Wait until the child has actually left our namespace.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    for _ in 0..200 {
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() != Some(own.clone()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let netns: NetnsRef = pid.to_string().parse().unwrap();
    assert_eq!(netns, NetnsRef::Pid(pid));

    let host = unique('h');
    let _guard = HostEnd(host.clone());
    create_container_link(&link_spec(&host, netns.clone(), 1)).expect("create by pid");
    assert_eq!(
        queue_names(&format!("/sys/class/net/{host}/queues")),
        ["rx-0", "tx-0"]
    );
    verify_container_link(&netns, "eth0", ADDRESS, 24, Some(GATEWAY)).expect("verify by pid");
    assert!(delete_link(&host).unwrap());
}

#[test]
fn failures_leave_no_veth_behind() {
    if !root_or_skip("failures_leave_no_veth_behind") {
        return;
    }
    let ns = TestNs::new();
    let host = unique('h');
    let _guard = HostEnd(host.clone());

    // Namespace that does not exist.
    let mut link = link_spec(
        &host,
        NetnsRef::Path("/run/netns/sytn-no-such-ns".into()),
        1,
    );
    let err = create_container_link(&link).unwrap_err();
    assert!(matches!(err, NetlinkError::Netns { .. }), "{err}");
    assert!(
        err.to_string().contains("/run/netns/sytn-no-such-ns"),
        "{err}"
    );
    assert!(!link_exists(&host));

    // A file that is no namespace: the kernel refuses the pair.
    link.netns = NetnsRef::Path("/proc/self/status".into());
    let err = create_container_link(&link).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert!(!link_exists(&host));
    let err = verify_container_link(&link.netns, "eth0", ADDRESS, 24, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("entering network namespace /proc/self/status"),
        "{err}"
    );

    // Name too long for the kernel.
    link.netns = ns.path();
    link.ifname = "eth0-much-too-long".into();
    let err = create_container_link(&link).unwrap_err();
    assert!(matches!(err, NetlinkError::Invalid { .. }), "{err}");
    assert!(!link_exists(&host));

    // Half-way: the pair exists and the address is set when the kernel
    // refuses a gateway outside the subnet; everything must go again.
    link.ifname = "eth0".into();
    link.gateway = Some(Ipv4Addr::new(192, 0, 2, 1));
    let err = create_container_link(&link).unwrap_err();
    assert!(matches!(err, NetlinkError::Step { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "adding default route via 192.0.2.1 on eth0 in /run/netns/{}",
            ns.name
        )),
        "{err}"
    );
    assert!(!link_exists(&host));
    assert_eq!(ns.links(), ["lo"]);

    // The name is taken inside the namespace: the kernel refuses the pair.
    run_ok(&[
        "ip", "-n", &ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", "sytnpeer",
    ]);
    link.gateway = Some(GATEWAY);
    let err = create_container_link(&link).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    assert!(!link_exists(&host));
    run_ok(&["ip", "-n", &ns.name, "link", "del", "eth0"]);

    // The host name is taken: an error, and the existing link stays.
    create_container_link(&link).expect("first attach");
    let ns2 = TestNs::new();
    link.netns = ns2.path();
    let err = create_container_link(&link).unwrap_err();
    assert!(matches!(err, NetlinkError::Exists { .. }), "{err}");
    assert!(link_exists(&host));
    assert_eq!(ns2.links(), ["lo"]);
    verify_container_link(&ns.path(), "eth0", ADDRESS, 24, Some(GATEWAY)).expect("first intact");
    assert!(delete_link(&host).unwrap());
}

#[test]
fn delete_refuses_what_is_not_a_veth() {
    if !root_or_skip("delete_refuses_what_is_not_a_veth") {
        return;
    }
    // `lo` is always there and is no veth; were the check missing, the
    // kernel would refuse to delete it anyway.
    let err = delete_link("lo").unwrap_err();
    assert!(matches!(err, NetlinkError::NotVeth { .. }), "{err}");
    assert!(err.to_string().starts_with("lo is not a veth"), "{err}");
    assert!(link_exists("lo"));
    assert!(!delete_link("sytn-absent").unwrap());
    assert!(!link_exists("sytn-absent"));
}
