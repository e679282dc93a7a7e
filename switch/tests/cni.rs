//! Drives the built `switchyard-cni` binary the way a container runtime does
//! (a clean environment of `CNI_*` variables, the network configuration on
//! stdin, the result or error on stdout) against a fake daemon: a thread
//! answering control-protocol lines on a Unix socket in a temp dir.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchyard_switch::control::protocol::{AttachResult, ErrorCode, PortInfo, Reply, Request};

const NETNS: &str = "/run/netns/cni-test-c1";
const CONTAINER: &str = "4f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7";

/// A fake switchyard daemon: knows the network `web`, hands out
/// 172.30.0.2.. from its pool, remembers attached ports.
struct FakeDaemon {
    dir: PathBuf,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    fn start() -> FakeDaemon {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-cni-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("ctl.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut ports: HashMap<String, AttachResult> = HashMap::new();
            let mut next_host = 2u8;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut line = String::new();
                if BufReader::new(&stream).read_line(&mut line).is_err() {
                    continue;
                }
                let reply = match serde_json::from_str::<Request>(line.trim_end()) {
                    Err(e) => Reply::failure(ErrorCode::BadRequest, e.to_string()),
                    Ok(request) => {
                        seen.lock().unwrap().push(request.clone());
                        answer(request, &mut ports, &mut next_host)
                    }
                };
                let mut out = serde_json::to_string(&reply).unwrap();
                out.push('\n');
                let _ = (&stream).write_all(out.as_bytes());
            }
        });
        FakeDaemon {
            dir,
            socket,
            requests,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answer(
    request: Request,
    ports: &mut HashMap<String, AttachResult>,
    next_host: &mut u8,
) -> Reply {
    match request {
        Request::Attach(a) => {
            if a.network != "web" {
                return Reply::failure(ErrorCode::NotFound, format!("no network {}", a.network));
            }
            if a.port_mappings.iter().any(|m| m.host_port == 1) {
                return Reply::failure(ErrorCode::InvalidArgument, "host port 1 is refused");
            }
            let name = a.name.unwrap_or_else(|| "anon".into());
            if ports.contains_key(&name) {
                return Reply::failure(ErrorCode::AlreadyExists, format!("port {name} exists"));
            }
            let result = AttachResult {
                interface: format!("sy{}", &name[..8.min(name.len())]),
                name: name.clone(),
                ifname: a.ifname.unwrap_or_else(|| "eth0".into()),
                mac: format!("02:00:ac:1e:00:{:02x}", *next_host),
                address: format!("172.30.0.{}/24", *next_host),
                gateway: Some("172.30.0.1".into()),
                network: a.network,
                netns: a.netns,
            };
            *next_host += 1;
            ports.insert(name, result.clone());
            Reply::success(result)
        }
        Request::Detach { name } => match ports.remove(&name) {
            Some(_) => Reply::success(Value::Null),
            None => Reply::failure(ErrorCode::NotFound, format!("no port {name}")),
        },
        Request::Check {
            name,
            netns,
            ifname,
        } => match ports.get(&name) {
            None => Reply::failure(ErrorCode::NotFound, format!("no port {name}")),
            Some(p) if p.netns != netns || Some(&p.ifname) != ifname.as_ref() => {
                Reply::failure(ErrorCode::CheckFailed, "namespace or interface differs")
            }
            Some(_) => Reply::success(Value::Null),
        },
        Request::Ports => Reply::success(
            ports
                .values()
                .map(|p| PortInfo {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    network: p.network.clone(),
                    origin: "attach".into(),
                    mac: Some(p.mac.clone()),
                    address: Some(p.address.clone()),
                    xdp_mode: "generic".into(),
                    rx_packets: 0,
                    tx_packets: 0,
                    drops: 0,
                })
                .collect::<Vec<_>>(),
        ),
        other => Reply::failure(ErrorCode::BadRequest, format!("fake daemon: {other:?}")),
    }
}

/// What one plugin run printed and how it exited.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}; stderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts a spec error object with `code` and returns it.
    fn error(&self, code: u64) -> Value {
        assert!(!self.success, "expected failure, stdout {:?}", self.stdout);
        let e = self.json();
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{e}");
        for key in ["cniVersion", "code", "msg", "details"] {
            assert!(e.get(key).is_some(), "no {key} in {e}");
        }
        assert_eq!(e["code"], code, "{e}");
        assert!(e["msg"].is_string() && e["details"].is_string(), "{e}");
        e
    }

    fn nothing(&self) {
        assert!(self.success, "failed: {} / {}", self.stdout, self.stderr);
        assert_eq!(self.stdout, "", "DEL/CHECK must print nothing");
    }
}

/// Runs the plugin with exactly these variables (like a runtime does) and
/// `stdin` as the configuration.
fn plugin(vars: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-cni"))
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn vars<'a>(command: &'a str, netns: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", CONTAINER),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
    ];
    if let Some(netns) = netns {
        v.push(("CNI_NETNS", netns));
    }
    v
}

fn config(version: &str, socket: &Path, extra: Value) -> String {
    let mut c = json!({
        "cniVersion": version,
        "name": "pods",
        "type": "switchyard-cni",
        "network": "web",
        "controlSocket": socket,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

#[test]
fn add_check_del_del_lifecycle() {
    let daemon = FakeDaemon::start();
    let conf = config(
        "1.0.0",
        &daemon.socket,
        json!({"dns": {"nameservers": ["172.30.0.1"]}}),
    );

    let add = plugin(&vars("ADD", Some(NETNS)), &conf);
    assert!(add.success, "{} / {}", add.stdout, add.stderr);
    let result = add.json();
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": result["interfaces"][0]["name"]},
                {"name": "eth0", "mac": "02:00:ac:1e:00:02", "sandbox": NETNS}
            ],
            "ips": [{"address": "172.30.0.2/24", "gateway": "172.30.0.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "172.30.0.1"}],
            "dns": {"nameservers": ["172.30.0.1"]}
        })
    );
    let Request::Attach(attach) = &daemon.requests()[0] else {
        panic!("{:?}", daemon.requests())
    };
    assert_eq!(attach.netns, NETNS);
    assert_eq!(attach.network, "web");
    assert_eq!(attach.ifname.as_deref(), Some("eth0"));
    assert_eq!((attach.ip.as_deref(), attach.mac.as_deref()), (None, None));
    let name = attach.name.clone().unwrap();
    assert!(
        name.len() <= 32 && name.starts_with(&CONTAINER[..12]),
        "{name}"
    );

    // CHECK with the runtime's cached result.
    let with_prev = config("1.0.0", &daemon.socket, json!({"prevResult": result}));
    plugin(&vars("CHECK", Some(NETNS)), &with_prev).nothing();
    assert!(matches!(
        &daemon.requests()[1],
        Request::Check { name: n, netns, ifname: Some(i) } if *n == name && netns == NETNS && i == "eth0"
    ));

    // CHECK with a prevResult whose address differs from the daemon's.
    let mut wrong = result.clone();
    wrong["ips"][0]["address"] = json!("172.30.0.99/24");
    let tampered = config("1.0.0", &daemon.socket, json!({"prevResult": wrong}));
    plugin(&vars("CHECK", Some(NETNS)), &tampered).error(102);

    // CHECK in another namespace: the daemon says check_failed.
    plugin(&vars("CHECK", Some("/run/netns/other")), &with_prev).error(102);

    // A second ADD of the same attachment: the daemon refuses.
    plugin(&vars("ADD", Some(NETNS)), &conf).error(101);

    plugin(&vars("DEL", Some(NETNS)), &with_prev).nothing();
    assert!(matches!(daemon.requests().last(), Some(Request::Detach { name: n }) if *n == name));
    // DEL again, and DEL once the namespace is gone: still success.
    plugin(&vars("DEL", Some(NETNS)), &conf).nothing();
    plugin(&vars("DEL", None), &conf).nothing();
    plugin(&vars("DEL", Some("")), &conf).nothing();
    // CHECK after DEL fails.
    plugin(&vars("CHECK", Some(NETNS)), &with_prev).error(102);
}

/// `runtimeConfig.portMappings` (the `portMappings` capability) goes to the
/// daemon with the attach, unchanged; a refused mapping fails the ADD with the
/// daemon's reason.
#[test]
fn port_mappings_go_with_the_attach() {
    use switchyard_switch::control::protocol::PortMapping;
    let daemon = FakeDaemon::start();
    let conf = config(
        "1.0.0",
        &daemon.socket,
        json!({
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 9090, "containerPort": 90, "protocol": "udp", "hostIP": "192.0.2.10"}
            ]}
        }),
    );
    let add = plugin(&vars("ADD", Some(NETNS)), &conf);
    assert!(add.success, "{} / {}", add.stdout, add.stderr);
    let Request::Attach(attach) = &daemon.requests()[0] else {
        panic!("{:?}", daemon.requests())
    };
    assert_eq!(
        attach.port_mappings,
        [
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None
            },
            PortMapping {
                host_port: 9090,
                container_port: 90,
                protocol: "udp".into(),
                host_ip: Some("192.0.2.10".into())
            },
        ]
    );
    plugin(&vars("DEL", Some(NETNS)), &conf).nothing();
    // The fake daemon refuses host port 1: the ADD fails with its words.
    let refused = config(
        "1.0.0",
        &daemon.socket,
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80}]}}),
    );
    let e = plugin(&vars("ADD", Some(NETNS)), &refused).error(7);
    assert!(
        e["details"].as_str().unwrap().contains("host port 1"),
        "{e}"
    );
}

#[test]
fn version_0_4_0_result_and_chained_prev_result() {
    let daemon = FakeDaemon::start();
    let prev = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "lo", "sandbox": NETNS}],
        "ips": [{"version": "4", "address": "127.0.0.1/8", "interface": 0}],
        "dns": {}
    });
    let conf = config("0.4.0", &daemon.socket, json!({"prevResult": prev}));
    let run = plugin(&vars("ADD", Some(NETNS)), &conf);
    assert!(run.success, "{}", run.stderr);
    let result = run.json();
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(result["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(
        result["ips"][1],
        json!({"version": "4", "address": "172.30.0.2/24", "gateway": "172.30.0.1", "interface": 2})
    );
    // That merged result passes CHECK too.
    let check = config("0.4.0", &daemon.socket, json!({"prevResult": result}));
    plugin(&vars("CHECK", Some(NETNS)), &check).nothing();
}

#[test]
fn version_needs_no_daemon() {
    let run = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert!(run.success);
    assert_eq!(
        run.json(),
        json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
    );
    let run = plugin(&[("CNI_COMMAND", "VERSION")], "");
    assert!(run.success);
    assert_eq!(run.json()["cniVersion"], "1.0.0");
}

#[test]
fn missing_netns_on_add_is_code_4_and_reaches_no_daemon() {
    let daemon = FakeDaemon::start();
    let conf = config("1.0.0", &daemon.socket, json!({}));
    let e = plugin(&vars("ADD", None), &conf).error(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_NETNS"), "{e}");
    assert_eq!(e["cniVersion"], "1.0.0");
    plugin(&vars("CHECK", None), &conf).error(4);
    assert!(daemon.requests().is_empty());
}

#[test]
fn missing_or_bad_environment_is_code_4() {
    let daemon = FakeDaemon::start();
    let conf = config("1.0.0", &daemon.socket, json!({}));
    let e = plugin(&[], &conf).error(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_COMMAND"), "{e}");
    let e = plugin(&vars("GC", Some(NETNS)), &conf).error(4);
    assert!(e["details"].as_str().unwrap().contains("GC"), "{e}");
    let e = plugin(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", NETNS),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf,
    )
    .error(4);
    assert!(
        e["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
        "{e}"
    );
    let e = plugin(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1")], &conf).error(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_IFNAME"), "{e}");
    let bad_ifname = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", NETNS),
        ("CNI_IFNAME", "a/b"),
    ];
    plugin(&bad_ifname, &conf).error(4);
    assert!(daemon.requests().is_empty());
}

#[test]
fn bad_stdin_is_code_6() {
    let daemon = FakeDaemon::start();
    for stdin in [
        "",
        "{not json",
        "[1,2]",
        r#"{"cniVersion":"1.0.0","name":"pods","dns":"x"}"#,
    ] {
        let e = plugin(&vars("ADD", Some(NETNS)), stdin).error(6);
        assert_eq!(e["cniVersion"], "1.0.0");
    }
    assert!(daemon.requests().is_empty());
}

#[test]
fn unsupported_version_is_code_1_and_bad_config_code_7() {
    let daemon = FakeDaemon::start();
    plugin(
        &vars("ADD", Some(NETNS)),
        &config("0.3.1", &daemon.socket, json!({})),
    )
    .error(1);
    plugin(
        &vars("ADD", Some(NETNS)),
        &config("1.1.0", &daemon.socket, json!({})),
    )
    .error(1);
    let e = plugin(
        &vars("ADD", Some(NETNS)),
        &config("1.0.0", &daemon.socket, json!({"name": ""})),
    )
    .error(7);
    assert_eq!(e["cniVersion"], "1.0.0");
    assert!(daemon.requests().is_empty());
    // An unknown switchyard network is a config error too (daemon not_found).
    let conf = config("1.0.0", &daemon.socket, json!({"network": "nope"}));
    let e = plugin(&vars("ADD", Some(NETNS)), &conf).error(7);
    assert!(
        e["details"].as_str().unwrap().contains("no network nope"),
        "{e}"
    );
}

#[test]
fn daemon_down_is_try_again_later() {
    let dir = std::env::temp_dir().join(format!("switchyard-cni-test-down-{}", std::process::id()));
    let conf = config("0.4.0", &dir.join("absent.sock"), json!({}));
    for command in ["ADD", "CHECK", "DEL"] {
        let e = plugin(&vars(command, Some(NETNS)), &conf).error(11);
        assert_eq!(e["cniVersion"], "0.4.0");
        assert!(
            e["details"].as_str().unwrap().contains("absent.sock"),
            "{e}"
        );
    }
}
