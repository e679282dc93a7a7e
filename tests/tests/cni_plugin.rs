//! The CNI plugin, driven the way a container runtime drives it (CNI 1.0.0: `CNI_*`
//! environment, network configuration on stdin, result or error object on stdout,
//! exit status), against the real daemon: containers really get their veth, address
//! and route, and really talk to each other.
//!
//! Switchyard only. The runtime's view: the plugin is found in `CNI_PATH` by its
//! `type`, runs with a clean environment, and each command is a fresh process.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::cmd::{self, CmdOutput};
use switchyard_tests::control::{
    link_exists, parse_cidr, ping_from, switchyard_cni_bin, wait_until, ControlLab, Network,
};
use switchyard_tests::{require_root, DaemonConfig};

const NET: &str = "web";
const GATEWAY: &str = "198.18.43.1";
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.43.0/24", GATEWAY))
        .daemon_config(DaemonConfig {
            switch_extra: Vec::new(),
            ..DaemonConfig::default()
        })
        .start()
}

/// The network configuration a runtime would stream (from a `.conflist` entry).
fn net_conf(lab: &ControlLab) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "webnet",
        "type": "switchyard-cni",
        "network": NET,
        "controlSocket": lab.socket().to_string_lossy(),
    })
}

/// A 64-hex-digit container ID, as containerd and CRI-O make them.
fn container_id(lab: &ControlLab, n: u8) -> String {
    format!("{}{n:02x}{}", lab.id(), "0".repeat(56))
}

/// One plugin invocation's environment.
#[derive(Debug, Clone, Default)]
struct Invocation<'a> {
    command: Option<&'a str>,
    container_id: Option<&'a str>,
    netns: Option<String>,
    ifname: Option<&'a str>,
    /// `CNI_ARGS`, e.g. `IgnoreUnknown=1;IP=...;MAC=...` as podman sends it.
    args: Option<String>,
}

impl<'a> Invocation<'a> {
    fn new(command: &'a str, container_id: &'a str, netns: Option<&str>) -> Self {
        Invocation {
            command: Some(command),
            container_id: Some(container_id),
            netns: netns.map(|ns| format!("/run/netns/{ns}")),
            ifname: Some("eth0"),
            args: None,
        }
    }

    fn with_args(self, args: &str) -> Self {
        Invocation {
            args: Some(args.to_string()),
            ..self
        }
    }
}

/// What the plugin did.
#[derive(Debug)]
struct Outcome {
    out: CmdOutput,
}

impl Outcome {
    /// Panics unless it succeeded; returns its stdout as JSON (`None` when empty).
    #[track_caller]
    fn ok(&self) -> Option<Value> {
        assert!(self.out.success(), "plugin failed:\n{}", self.out);
        let text = self.out.stdout.trim();
        if text.is_empty() {
            return None;
        }
        Some(
            serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("plugin printed no JSON ({e}):\n{}", self.out)),
        )
    }

    /// Panics unless it succeeded and printed nothing (DEL, CHECK).
    #[track_caller]
    fn ok_silent(&self) {
        assert_eq!(self.ok(), None, "expected no output:\n{}", self.out);
    }

    /// Panics unless it failed with the spec's error object carrying `code`.
    #[track_caller]
    fn error(&self, code: u64) -> Value {
        assert!(
            !self.out.success(),
            "plugin succeeded, expected error {code}:\n{}",
            self.out
        );
        let v: Value = serde_json::from_str(self.out.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "error output is not one JSON object on stdout ({e}):\n{}",
                self.out
            )
        });
        assert_eq!(
            v["code"].as_u64(),
            Some(code),
            "wrong error code:\n{}",
            self.out
        );
        assert!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "error object without msg:\n{}",
            self.out
        );
        assert!(
            v["cniVersion"].as_str().is_some(),
            "error object without cniVersion:\n{}",
            self.out
        );
        v
    }
}

fn plugin_dir() -> PathBuf {
    switchyard_cni_bin()
        .parent()
        .expect("plugin has a directory")
        .to_path_buf()
}

/// Runs the plugin as a runtime does: found in `CNI_PATH` by its `type`, a clean
/// environment with the `CNI_*` variables, the configuration on stdin.
#[track_caller]
fn run_plugin(inv: &Invocation, stdin: &[u8]) -> Outcome {
    let dir = plugin_dir();
    let mut c = Command::new(dir.join("switchyard-cni"));
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_PATH", &dir);
    let vars = [
        ("CNI_COMMAND", inv.command.map(str::to_string)),
        ("CNI_CONTAINERID", inv.container_id.map(str::to_string)),
        ("CNI_NETNS", inv.netns.clone()),
        ("CNI_IFNAME", inv.ifname.map(str::to_string)),
        ("CNI_ARGS", inv.args.clone()),
    ];
    for (k, v) in vars {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let out =
        cmd::run_timeout_input(&mut c, stdin, PLUGIN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    Outcome { out }
}

#[track_caller]
fn run_conf(inv: &Invocation, conf: &Value) -> Outcome {
    run_plugin(inv, &serde_json::to_vec(conf).expect("conf serialises"))
}

/// ADD's result, checked against the spec's shape and the network; records the host
/// veth for cleanup first. Returns (result, host interface, address, MAC).
#[track_caller]
fn checked_add(
    lab: &ControlLab,
    inv: &Invocation,
    conf: &Value,
) -> (Value, String, Ipv4Addr, String) {
    let outcome = run_conf(inv, conf);
    let result = outcome
        .ok()
        .unwrap_or_else(|| panic!("ADD printed nothing:\n{}", outcome.out));
    let host_if = result["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no interfaces[0].name in {result}"))
        .to_string();
    lab.record_link(&host_if);
    assert_eq!(result["cniVersion"], conf["cniVersion"], "{result}");
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 2, "host and container interface: {result}");
    assert!(
        ifaces[0].get("sandbox").is_none(),
        "the host end has no sandbox: {result}"
    );
    assert!(
        link_exists(&host_if),
        "host interface {host_if} does not exist"
    );
    let netns_path = inv.netns.clone().expect("ADD has a netns");
    assert_eq!(ifaces[1]["name"], "eth0", "{result}");
    assert_eq!(ifaces[1]["sandbox"], netns_path.as_str(), "{result}");
    let mac = ifaces[1]["mac"]
        .as_str()
        .unwrap_or_else(|| panic!("no container MAC in {result}"))
        .to_ascii_lowercase();
    let ips = result["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{result}");
    assert_eq!(
        ips[0]["interface"], 1,
        "the IP is on the container interface: {result}"
    );
    assert_eq!(ips[0]["gateway"], GATEWAY, "{result}");
    let (ip, prefix) = parse_cidr(ips[0]["address"].as_str().expect("address"));
    assert_eq!(prefix, 24, "{result}");
    let o = ip.octets();
    assert!(
        o[..3] == [198, 18, 43] && ![0, 1, 255].contains(&o[3]),
        "address {ip} not a pool address of 198.18.43.0/24 (gateway .1): {result}"
    );
    assert!(
        result["routes"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == GATEWAY)),
        "no default route via {GATEWAY} in {result}"
    );
    // The namespace has what the result says.
    let ns = netns_path.trim_start_matches("/run/netns/");
    let out = cmd::run_ok("ip", &["-n", ns, "-j", "addr", "show", "dev", "eth0"]);
    let link: Value = serde_json::from_str(&out.stdout).expect("ip -j addr");
    assert_eq!(
        link[0]["address"].as_str().map(str::to_ascii_lowercase),
        Some(mac.clone()),
        "MAC in the namespace differs from the result: {out}"
    );
    assert!(
        link[0]["addr_info"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| {
                i["family"] == "inet"
                    && i["local"].as_str() == Some(&ip.to_string())
                    && i["prefixlen"] == 24
            })),
        "{ip}/24 not on eth0 in {ns}: {out}"
    );
    let out = cmd::run_ok("ip", &["-n", ns, "-4", "-j", "route", "show", "default"]);
    assert!(
        out.stdout.contains(&format!("\"gateway\":\"{GATEWAY}\"")),
        "no default route via {GATEWAY} in {ns}: {out}"
    );
    (result, host_if, ip, mac)
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// Interfaces inside namespace `ns` other than `lo`.
fn links_in(ns: &str) -> Vec<String> {
    let out = cmd::run_ok("ip", &["-n", ns, "-j", "link", "show"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j link");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| *n != "lo")
        .map(str::to_string)
        .collect()
}

/// ADD, CHECK, DEL and DEL again as a runtime issues them, for two containers that
/// ping each other; CHECK notices a container whose route was removed; a second ADD
/// of the same attachment is refused; a 0.4.0 configuration gets a 0.4.0 result.
#[test]
fn add_check_del_lifecycle() {
    require_root!();
    let lab = lab();
    let conf = net_conf(&lab);
    let ns_a = lab.netns_with_ipv6("a");
    let ns_b = lab.netns_with_ipv6("b");
    let (id_a, id_b) = (container_id(&lab, 0xa), container_id(&lab, 0xb));

    let add_a = Invocation::new("ADD", &id_a, Some(&ns_a));
    let (res_a, if_a, ip_a, _) = checked_add(&lab, &add_a, &conf);
    let (res_b, if_b, ip_b, _) =
        checked_add(&lab, &Invocation::new("ADD", &id_b, Some(&ns_b)), &conf);
    assert_ne!(ip_a, ip_b, "two containers, one address");
    assert_ne!(if_a, if_b);
    let ports = lab.ports();
    for (ifname, ip) in [(&if_a, ip_a), (&if_b, ip_b)] {
        let row = ports
            .iter()
            .find(|p| &p.interface == ifname)
            .unwrap_or_else(|| panic!("no port on {ifname} in {ports:?}"));
        assert_eq!(row.origin, "attach");
        assert_eq!(row.address.as_deref(), Some(format!("{ip}/24").as_str()));
    }

    // They talk.
    for (ns, dst) in [(&ns_a, ip_b), (&ns_b, ip_a)] {
        let r = ping_from(ns, dst, 3);
        assert!(r.all_replied(), "{ns} -> {dst}: {}", r.output);
    }

    // CHECK: as the runtime sends it (with the ADD result as prevResult), and bare.
    let check_a = Invocation::new("CHECK", &id_a, Some(&ns_a));
    run_conf(&check_a, &with_prev(&conf, &res_a)).ok_silent();
    run_conf(&check_a, &conf).ok_silent();
    run_conf(
        &Invocation::new("CHECK", &id_b, Some(&ns_b)),
        &with_prev(&conf, &res_b),
    )
    .ok_silent();
    // A prevResult with another address is a failed check.
    let mut wrong = res_a.clone();
    wrong["ips"][0]["address"] = json!(format!("{ip_b}/24"));
    run_conf(&check_a, &with_prev(&conf, &wrong)).error(102);
    // The container lost its default route: CHECK says so; restored, it passes.
    cmd::run_ok("ip", &["-n", &ns_a, "route", "del", "default"]);
    run_conf(&check_a, &with_prev(&conf, &res_a)).error(102);
    cmd::run_ok(
        "ip",
        &[
            "-n", &ns_a, "route", "add", "default", "via", GATEWAY, "dev", "eth0",
        ],
    );
    run_conf(&check_a, &with_prev(&conf, &res_a)).ok_silent();

    // ADD of an attachment that exists is refused and changes nothing.
    run_conf(&add_a, &conf).error(101);
    assert_eq!(lab.ports().len(), 2);
    assert!(link_exists(&if_a));

    // DEL: veth, port and address gone; DEL again (and without a netns) still succeeds.
    let del_b = Invocation::new("DEL", &id_b, Some(&ns_b));
    let check_b = Invocation::new("CHECK", &id_b, Some(&ns_b));
    run_conf(&del_b, &with_prev(&conf, &res_b)).ok_silent();
    assert!(
        wait_until(Duration::from_secs(5), || !link_exists(&if_b)),
        "veth {if_b} still exists after DEL"
    );
    assert_eq!(
        links_in(&ns_b),
        Vec::<String>::new(),
        "eth0 left in {ns_b} after DEL"
    );
    assert!(
        !lab.ports().iter().any(|p| p.interface == if_b),
        "port still listed after DEL"
    );
    let r = ping_from(&ns_a, ip_b, 2);
    assert_eq!(r.received, 0, "a deleted container answered: {}", r.output);
    run_conf(&del_b, &with_prev(&conf, &res_b)).ok_silent();
    run_conf(&Invocation::new("DEL", &id_b, None), &conf).ok_silent();
    // CHECK of a deleted attachment fails.
    run_conf(&check_b, &with_prev(&conf, &res_b)).error(102);

    // The namespace can be added again (a restarted pod sandbox) and gets the
    // freed address, with a 0.4.0 configuration this time.
    let mut conf_04 = conf.clone();
    conf_04["cniVersion"] = json!("0.4.0");
    let id_c = container_id(&lab, 0xc);
    let (res_c, if_c, ip_c, _) =
        checked_add(&lab, &Invocation::new("ADD", &id_c, Some(&ns_b)), &conf_04);
    assert_eq!(ip_c, ip_b, "the freed address was not handed out again");
    assert_eq!(
        res_c["ips"][0]["version"], "4",
        "0.4.0 results carry ips[].version: {res_c}"
    );
    run_conf(
        &Invocation::new("CHECK", &id_c, Some(&ns_b)),
        &with_prev(&conf_04, &res_c),
    )
    .ok_silent();
    // a talked to b at this address before; it reaches the new holder at once.
    let r = ping_from(&ns_a, ip_c, 3);
    assert!(r.all_replied(), "a -> re-added container: {}", r.output);
    let r = ping_from(&ns_b, ip_a, 3);
    assert!(r.all_replied(), "re-added container -> a: {}", r.output);

    for (id, ns, ifname, c) in [
        (&id_c, &ns_b, &if_c, &conf_04),
        (&id_a, &ns_a, &if_a, &conf),
    ] {
        let del = Invocation::new("DEL", id, Some(ns));
        run_conf(&del, c).ok_silent();
        run_conf(&del, c).ok_silent();
        assert!(
            wait_until(Duration::from_secs(5), || !link_exists(ifname)),
            "veth {ifname} still exists after DEL"
        );
    }
    assert!(lab.ports().is_empty(), "ports left: {:?}", lab.ports());
}

/// The runtime deletes a sandbox's namespace before DEL (a crashed pod): its veth
/// goes with it, the other containers keep talking, DEL with the vanished path (and
/// again without one) succeeds and frees the port, and the address is handed out
/// again.
#[test]
fn del_after_the_namespace_is_gone() {
    require_root!();
    let lab = lab();
    let conf = net_conf(&lab);
    let (ns_a, ns_b, ns_x) = (
        lab.netns_with_ipv6("a"),
        lab.netns_with_ipv6("b"),
        lab.netns_with_ipv6("x"),
    );
    let (id_a, id_b, id_x) = (
        container_id(&lab, 0xa),
        container_id(&lab, 0xb),
        container_id(&lab, 0xd),
    );
    let (_, if_a, ip_a, _) = checked_add(&lab, &Invocation::new("ADD", &id_a, Some(&ns_a)), &conf);
    let (_, if_b, ip_b, _) = checked_add(&lab, &Invocation::new("ADD", &id_b, Some(&ns_b)), &conf);
    let (res_x, if_x, ip_x, _) =
        checked_add(&lab, &Invocation::new("ADD", &id_x, Some(&ns_x)), &conf);
    let r = ping_from(&ns_a, ip_x, 2);
    assert!(r.all_replied(), "a -> x: {}", r.output);

    lab.delete_netns(&ns_x);
    assert!(
        wait_until(Duration::from_secs(10), || !link_exists(&if_x)),
        "veth {if_x} outlived its namespace"
    );
    for (ns, dst) in [(&ns_a, ip_b), (&ns_b, ip_a)] {
        let r = ping_from(ns, dst, 3);
        assert!(
            r.all_replied(),
            "{ns} -> {dst} after another container's namespace vanished: {}",
            r.output
        );
    }
    let del_x = Invocation::new("DEL", &id_x, Some(&ns_x));
    run_conf(&del_x, &with_prev(&conf, &res_x)).ok_silent();
    run_conf(&Invocation::new("DEL", &id_x, None), &conf).ok_silent();
    let ports = lab.ports();
    assert!(
        !ports.iter().any(|p| p.interface == if_x),
        "port of the vanished container still listed after DEL: {ports:?}"
    );
    assert_eq!(ports.len(), 2, "{ports:?}");

    let ns_y = lab.netns_with_ipv6("y");
    let id_y = container_id(&lab, 0xf);
    let (_, if_y, ip_y, _) = checked_add(&lab, &Invocation::new("ADD", &id_y, Some(&ns_y)), &conf);
    assert_eq!(
        ip_y, ip_x,
        "the vanished container's address was not handed out again"
    );
    for (ns, dst) in [(&ns_y, ip_a), (&ns_a, ip_y), (&ns_b, ip_y)] {
        let r = ping_from(ns, dst, 3);
        assert!(r.all_replied(), "{ns} -> {dst}: {}", r.output);
    }
    for (id, ns, ifname) in [
        (&id_a, &ns_a, &if_a),
        (&id_b, &ns_b, &if_b),
        (&id_y, &ns_y, &if_y),
    ] {
        run_conf(&Invocation::new("DEL", id, Some(ns)), &conf).ok_silent();
        assert!(
            wait_until(Duration::from_secs(5), || !link_exists(ifname)),
            "veth {ifname} still exists after DEL"
        );
    }
    assert!(lab.ports().is_empty(), "ports left: {:?}", lab.ports());
}

/// VERSION answers without a daemon; bad input gets the spec's error object
/// (`cniVersion`, `code`, `msg`) on stdout and a non-zero exit, and leaves nothing
/// behind in the daemon or the namespace.
#[test]
fn version_and_bad_input() {
    require_root!();
    let lab = lab();
    let conf = net_conf(&lab);
    let ns = lab.netns_with_ipv6("e");
    let id = container_id(&lab, 0xe);

    // VERSION, with the configuration a runtime sends, and with nothing at all.
    for stdin in [&br#"{"cniVersion":"1.0.0"}"#[..], b""] {
        let version = Invocation {
            command: Some("VERSION"),
            ..Invocation::default()
        };
        let v = run_plugin(&version, stdin)
            .ok()
            .expect("VERSION prints the versions");
        assert_eq!(v["cniVersion"], "1.0.0", "{v}");
        let supported = v["supportedVersions"]
            .as_array()
            .expect("supportedVersions");
        assert!(
            supported.contains(&json!("1.0.0")) && supported.contains(&json!("0.4.0")),
            "{v}"
        );
    }

    let add = Invocation::new("ADD", &id, Some(&ns));
    let no_netns = Invocation {
        netns: None,
        ..add.clone()
    };
    let e = run_conf(&no_netns, &conf).error(4);
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("CNI_NETNS")
            || e["details"]
                .as_str()
                .unwrap_or_default()
                .contains("CNI_NETNS"),
        "the error does not name CNI_NETNS: {e}"
    );
    run_plugin(&add, br#"{"cniVersion":"1.0.0","name":"#).error(6);
    run_plugin(&add, b"[]").error(6);
    run_plugin(&add, b"").error(6);
    run_plugin(&add, b"\xff\xfe{").error(6);
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.3.1");
    run_conf(&add, &old).error(1);
    let mut unknown_net = conf.clone();
    unknown_net["network"] = json!("nosuchnet");
    run_conf(&add, &unknown_net).error(7);
    let mut no_daemon = conf.clone();
    no_daemon["controlSocket"] =
        json!(lab.socket().with_file_name("nobody.sock").to_string_lossy());
    run_conf(&add, &no_daemon).error(11);
    run_conf(
        &Invocation {
            command: None,
            ..add.clone()
        },
        &conf,
    )
    .error(4);
    run_conf(
        &Invocation {
            command: Some("FROB"),
            ..add.clone()
        },
        &conf,
    )
    .error(4);
    run_conf(
        &Invocation {
            container_id: None,
            ..add.clone()
        },
        &conf,
    )
    .error(4);
    run_conf(
        &Invocation {
            ifname: Some("much-too-long-ifname"),
            ..add.clone()
        },
        &conf,
    )
    .error(4);

    assert!(
        lab.ports().is_empty(),
        "a failed ADD left a port: {:?}",
        lab.ports()
    );
    assert_eq!(
        links_in(&ns),
        Vec::<String>::new(),
        "a failed ADD left a link in {ns}"
    );

    // And the plugin still works after all that.
    let (_, ifname, _, _) = checked_add(&lab, &add, &conf);
    let del = Invocation::new("DEL", &id, Some(&ns));
    run_conf(&del, &conf).ok_silent();
    assert!(
        wait_until(Duration::from_secs(5), || !link_exists(&ifname)),
        "veth {ifname} still exists after DEL"
    );
}

/// `CNI_ARGS` `IP=` and `MAC=` (how podman passes `--ip` and `--mac-address`)
/// give the container that address and MAC, in the result, the namespace and
/// the daemon; a refused one fails ADD with an error naming the field and
/// leaves nothing behind; unknown keys (but the conventional `K8S_POD_*`)
/// need `IgnoreUnknown=1`.
#[test]
fn cni_args_fix_the_address_and_mac() {
    require_root!();
    let lab = lab();
    let conf = net_conf(&lab);
    let (ns_a, ns_b) = (lab.netns_with_ipv6("a"), lab.netns_with_ipv6("b"));
    let (id_a, id_b) = (container_id(&lab, 0xa), container_id(&lab, 0xb));
    let fixed_ip = Ipv4Addr::new(198, 18, 43, 77);
    let fixed_mac = "02:5e:00:43:00:77";

    let add_a = Invocation::new("ADD", &id_a, Some(&ns_a)).with_args(&format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=a;IP={fixed_ip};MAC={}",
        fixed_mac.to_ascii_uppercase()
    ));
    // checked_add compares the result with the namespace.
    let (res_a, if_a, ip_a, mac_a) = checked_add(&lab, &add_a, &conf);
    assert_eq!((ip_a, mac_a.as_str()), (fixed_ip, fixed_mac), "{res_a}");
    let row = lab
        .ports()
        .into_iter()
        .find(|p| p.interface == if_a)
        .expect("a's port");
    assert_eq!(row.address.as_deref(), Some("198.18.43.77/24"));
    assert_eq!(row.mac.as_deref(), Some(fixed_mac));
    run_conf(
        &Invocation::new("CHECK", &id_a, Some(&ns_a)),
        &with_prev(&conf, &res_a),
    )
    .ok_silent();

    // Refused: by the daemon (code 7, naming ip or mac) or by the plugin
    // itself (code 4, naming CNI_ARGS and the key).
    let add_b = Invocation::new("ADD", &id_b, Some(&ns_b));
    let refused = [
        ("IP=198.18.44.5", 7, "ip: 198.18.44.5 is not inside"),
        (&*format!("IP={fixed_ip}"), 7, "is already in use"),
        (&*format!("IP={GATEWAY}"), 7, "is reserved"),
        (&*format!("MAC={fixed_mac}"), 7, "already used by port"),
        ("MAC=01:00:5e:00:00:01", 4, "MAC="),
        ("IP=198.18.43.300", 4, "IP="),
        ("K8S_POD_NAME=b;FOO=1;IP=198.18.43.78", 4, "FOO"),
    ];
    for (args, code, named) in refused {
        let e = run_conf(&add_b.clone().with_args(args), &conf).error(code);
        let text = format!("{} {}", e["msg"], e["details"]);
        assert!(
            text.contains(named),
            "CNI_ARGS={args}: {named:?} not in {e}"
        );
        if code == 4 {
            assert!(text.contains("CNI_ARGS"), "CNI_ARGS={args}: {e}");
        }
    }
    assert_eq!(lab.ports().len(), 1, "a refused ADD left a port");
    assert_eq!(
        links_in(&ns_b),
        Vec::<String>::new(),
        "a refused ADD left a link"
    );

    // Without IP= the pool still hands out addresses, skipping the fixed one.
    let (_, if_b, ip_b, _) = checked_add(&lab, &add_b.clone().with_args("IgnoreUnknown=1"), &conf);
    assert_ne!(ip_b, fixed_ip);
    let r = ping_from(&ns_b, fixed_ip, 3);
    assert!(r.all_replied(), "b -> a at its fixed address: {}", r.output);

    for (id, ns, ifname) in [(&id_a, &ns_a, &if_a), (&id_b, &ns_b, &if_b)] {
        // DEL works whatever CNI_ARGS says.
        let del = Invocation::new("DEL", id, Some(ns)).with_args("BOGUS");
        run_conf(&del, &conf).ok_silent();
        assert!(
            wait_until(Duration::from_secs(5), || !link_exists(ifname)),
            "veth {ifname} still exists after DEL"
        );
    }
    assert!(lab.ports().is_empty(), "ports left: {:?}", lab.ports());
}
