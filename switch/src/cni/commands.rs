//! ADD, DEL, CHECK and VERSION, each as one or two control requests.
//!
//! The control call is a parameter (the signature of
//! [`client::call`](crate::control::client::call)) so the commands can be unit
//! tested against an in-process fake daemon.

use super::config::{reply_version, NetConf};
use super::env::{CniEnv, Command};
use super::error::{from_client, from_daemon, CniError, Operation};
use super::port_name::port_name;
use super::result::{add_result, check_prev, merge_prev, version_result};
use crate::control::client::ClientError;
use crate::control::protocol::{AttachRequest, AttachResult, ErrorCode, PortInfo, Request};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How long ADD waits for the daemon: it creates a veth, moves it, addresses
/// it and opens AF_XDP sockets, which can take a while on a busy node.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long DEL and CHECK wait for the daemon.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one invocation: `stdin` is the raw network configuration. Returns
/// the document to print on success (`None`: print nothing, as DEL and CHECK
/// must).
pub fn execute<F>(env: &CniEnv, stdin: &[u8], call: F) -> Result<Option<Value>, CniError>
where
    F: Fn(&Path, &Request, Duration) -> Result<Value, ClientError>,
{
    match env.command()? {
        Command::Version => Ok(Some(version_result(&reply_version(stdin)))),
        Command::Add => add(env, stdin, &call).map(Some),
        Command::Del => del(env, stdin, &call).map(|()| None),
        Command::Check => check(env, stdin, &call).map(|()| None),
    }
}

fn add<F>(env: &CniEnv, stdin: &[u8], call: &F) -> Result<Value, CniError>
where
    F: Fn(&Path, &Request, Duration) -> Result<Value, ClientError>,
{
    let attachment = env.attachment(false)?;
    let args = env.cni_args()?;
    let conf = NetConf::parse(stdin)?;
    let netns = attachment.netns.clone().unwrap_or_default();
    let request = Request::Attach(AttachRequest {
        netns: netns.clone(),
        network: conf.network.clone(),
        name: Some(port_name(&attachment.container_id, &attachment.ifname)),
        // `podman run --ip/--mac-address`: the daemon checks them against the
        // network (in the subnet, not reserved, not taken; unicast, unused).
        ip: args.ip,
        mac: args.mac,
        ifname: Some(attachment.ifname.clone()),
        port_mappings: conf.port_mappings.clone(),
    });
    let reply = call(&conf.control_socket, &request, ATTACH_TIMEOUT)
        .map_err(|e| from_client(Operation::Add, e))?;
    let attached: AttachResult = serde_json::from_value(reply)
        .map_err(|e| CniError::Protocol(format!("attach result: {e}")))?;
    let ours = add_result(&conf.cni_version, &attached, &netns, &conf.dns)?;
    Ok(match &conf.prev_result {
        Some(prev) => merge_prev(prev, &ours),
        None => serde_json::to_value(&ours).map_err(|e| CniError::Internal(e.to_string()))?,
    })
}

fn del<F>(env: &CniEnv, stdin: &[u8], call: &F) -> Result<(), CniError>
where
    F: Fn(&Path, &Request, Duration) -> Result<Value, ClientError>,
{
    let attachment = env.attachment(true)?;
    let conf = NetConf::parse(stdin)?;
    let request = Request::Detach {
        name: port_name(&attachment.container_id, &attachment.ifname),
    };
    match call(&conf.control_socket, &request, SHORT_TIMEOUT) {
        Ok(_) => Ok(()),
        // Already gone (an earlier DEL, a failed ADD, a daemon restart): the
        // spec wants repeated DELs to succeed.
        Err(ClientError::Daemon(body)) if body.code == ErrorCode::NotFound => Ok(()),
        Err(e) => Err(from_client(Operation::Del, e)),
    }
}

fn check<F>(env: &CniEnv, stdin: &[u8], call: &F) -> Result<(), CniError>
where
    F: Fn(&Path, &Request, Duration) -> Result<Value, ClientError>,
{
    let attachment = env.attachment(false)?;
    let conf = NetConf::parse(stdin)?;
    let netns = attachment.netns.clone().unwrap_or_default();
    let name = port_name(&attachment.container_id, &attachment.ifname);
    let request = Request::Check {
        name: name.clone(),
        netns: netns.clone(),
        ifname: Some(attachment.ifname.clone()),
    };
    let reply = call(&conf.control_socket, &request, SHORT_TIMEOUT)
        .map_err(|e| from_client(Operation::Check, e))?;
    let Some(prev) = &conf.prev_result else {
        return Ok(());
    };
    let actual = match reply.get("address").and_then(Value::as_str) {
        Some(address) => address.to_string(),
        None => port_address(&conf.control_socket, &name, call)?,
    };
    check_prev(prev, &attachment.ifname, &netns, &actual)
}

/// The address the daemon holds for port `name`, from `ports` (for a daemon
/// whose `check` reply does not carry it).
fn port_address<F>(socket: &Path, name: &str, call: &F) -> Result<String, CniError>
where
    F: Fn(&Path, &Request, Duration) -> Result<Value, ClientError>,
{
    let reply = call(socket, &Request::Ports, SHORT_TIMEOUT)
        .map_err(|e| from_client(Operation::Check, e))?;
    let ports: Vec<PortInfo> = serde_json::from_value(reply)
        .map_err(|e| CniError::Protocol(format!("ports result: {e}")))?;
    let port = ports
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| from_daemon(Operation::Check, not_found(name)))?;
    port.address
        .ok_or_else(|| CniError::CheckFailed(format!("switchyard port {name} has no address")))
}

fn not_found(name: &str) -> crate::control::protocol::ErrorBody {
    crate::control::protocol::ErrorBody {
        code: ErrorCode::NotFound,
        message: format!("switchyard has no port {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::ErrorBody;
    use proptest::prelude::*;
    use serde_json::json;
    use std::cell::RefCell;

    const CONF: &[u8] =
        br#"{"cniVersion":"1.0.0","name":"web","type":"switchyard-cni","controlSocket":"/s"}"#;

    fn env(command: &str, netns: Option<&str>) -> CniEnv {
        CniEnv {
            command: Some(command.into()),
            container_id: Some("c0ffee".into()),
            netns: netns.map(str::to_string),
            ifname: Some("eth0".into()),
            args: None,
            path: None,
        }
    }

    fn attached(request: &AttachRequest) -> Value {
        json!({
            "name": request.name, "interface": "sy-c0ffee", "ifname": request.ifname,
            "mac": "02:00:00:00:00:05", "address": "172.30.0.5/24", "gateway": "172.30.0.1",
            "network": request.network, "netns": request.netns,
        })
    }

    fn daemon_error(code: ErrorCode) -> ClientError {
        ClientError::Daemon(ErrorBody {
            code,
            message: "daemon says no".into(),
        })
    }

    #[test]
    fn add_sends_attach_and_prints_the_result() {
        let seen = RefCell::new(Vec::new());
        let out = execute(
            &env("ADD", Some("/run/netns/c1")),
            CONF,
            |socket, req, _| {
                assert_eq!(socket, Path::new("/s"));
                seen.borrow_mut().push(req.clone());
                match req {
                    Request::Attach(a) => Ok(attached(a)),
                    _ => Err(daemon_error(ErrorCode::BadRequest)),
                }
            },
        )
        .unwrap()
        .unwrap();
        let Request::Attach(a) = &seen.borrow()[0] else {
            panic!("not an attach")
        };
        assert_eq!(a.netns, "/run/netns/c1");
        assert_eq!(a.network, "web");
        assert_eq!(a.ifname.as_deref(), Some("eth0"));
        assert_eq!(
            a.name.as_deref(),
            Some(port_name("c0ffee", "eth0").as_str())
        );
        assert_eq!(out["ips"][0]["address"], "172.30.0.5/24");
        assert_eq!(out["interfaces"][1]["sandbox"], "/run/netns/c1");
    }

    #[test]
    fn add_passes_cni_args_ip_and_mac_and_del_ignores_bad_args() {
        let seen = RefCell::new(None);
        let mut e = env("ADD", Some("/run/netns/c1"));
        e.args = Some("IgnoreUnknown=1;K8S_POD_NAME=p;IP=172.30.0.9;MAC=02:AA:00:00:00:09".into());
        execute(&e, CONF, |_, req, _| match req {
            Request::Attach(a) => {
                *seen.borrow_mut() = Some(a.clone());
                Ok(attached(a))
            }
            _ => Err(daemon_error(ErrorCode::BadRequest)),
        })
        .unwrap();
        let a = seen.borrow().clone().expect("an attach");
        assert_eq!(a.ip.as_deref(), Some("172.30.0.9"));
        assert_eq!(a.mac.as_deref(), Some("02:aa:00:00:00:09"));
        // A bad CNI_ARGS fails ADD before the daemon is asked ...
        e.args = Some("IP=300.1.1.1".into());
        let never = |_: &Path, _: &Request, _: Duration| -> Result<Value, ClientError> {
            panic!("a bad CNI_ARGS must not reach the daemon")
        };
        assert_eq!(execute(&e, CONF, never).unwrap_err().code(), 4);
        // ... but DEL still cleans up.
        e.command = Some("DEL".into());
        let ok = |_: &Path, _: &Request, _: Duration| Ok(Value::Null);
        assert_eq!(execute(&e, CONF, ok).unwrap(), None);
    }

    #[test]
    fn add_with_garbage_result_is_protocol_error() {
        let e = execute(&env("ADD", Some("/n")), CONF, |_, _, _| {
            Ok(json!({"ok": 1}))
        })
        .unwrap_err();
        assert_eq!(e.code(), 103);
    }

    #[test]
    fn del_is_idempotent_and_tolerates_no_netns() {
        let ok = |_: &Path, _: &Request, _: Duration| Ok(Value::Null);
        assert_eq!(execute(&env("DEL", None), CONF, ok).unwrap(), None);
        let gone = |_: &Path, _: &Request, _: Duration| Err(daemon_error(ErrorCode::NotFound));
        assert_eq!(execute(&env("DEL", Some("/n")), CONF, gone).unwrap(), None);
        let broken = |_: &Path, _: &Request, _: Duration| Err(daemon_error(ErrorCode::SystemError));
        assert_eq!(
            execute(&env("DEL", None), CONF, broken).unwrap_err().code(),
            100
        );
    }

    #[test]
    fn check_uses_ports_when_check_reply_has_no_address() {
        let prev = json!({
            "cniVersion": "1.0.0", "name": "web", "type": "switchyard-cni", "controlSocket": "/s",
            "prevResult": {
                "interfaces": [{"name": "sy"}, {"name": "eth0", "sandbox": "/n"}],
                "ips": [{"address": "172.30.0.5/24", "interface": 1}]
            }
        });
        let conf = serde_json::to_vec(&prev).unwrap();
        let port = |address: &str| {
            json!([{
                "name": port_name("c0ffee", "eth0"), "interface": "sy", "network": "web",
                "origin": "attach", "mac": null, "address": address, "xdp_mode": "generic",
                "rx_packets": 0, "tx_packets": 0, "drops": 0
            }])
        };
        let daemon = |address: &'static str| {
            move |_: &Path, req: &Request, _: Duration| match req {
                Request::Check { .. } => Ok(Value::Null),
                Request::Ports => Ok(port(address)),
                _ => Err(daemon_error(ErrorCode::BadRequest)),
            }
        };
        assert_eq!(
            execute(&env("CHECK", Some("/n")), &conf, daemon("172.30.0.5/24")).unwrap(),
            None
        );
        let e = execute(&env("CHECK", Some("/n")), &conf, daemon("172.30.0.9/24")).unwrap_err();
        assert_eq!(e.code(), 102);
        // The reply's own address wins when present.
        let with_address =
            |_: &Path, _: &Request, _: Duration| Ok(json!({"address": "172.30.0.5/24"}));
        assert_eq!(
            execute(&env("CHECK", Some("/n")), &conf, with_address).unwrap(),
            None
        );
    }

    #[test]
    fn check_failure_from_daemon_is_an_error() {
        let failed = |_: &Path, _: &Request, _: Duration| Err(daemon_error(ErrorCode::CheckFailed));
        assert_eq!(
            execute(&env("CHECK", Some("/n")), CONF, failed)
                .unwrap_err()
                .code(),
            102
        );
        let e = execute(&env("CHECK", None), CONF, |_, _, _| Ok(Value::Null)).unwrap_err();
        assert_eq!(e.code(), 4);
    }

    /// Configurations near the valid ones, with a `prevResult` of random addresses.
    fn near_valid_config() -> impl Strategy<Value = Vec<u8>> {
        (
            "(1\\.0\\.0|0\\.4\\.0|x)",
            "[a-z]{0,4}",
            "[0-9./:]{0,12}",
            0u64..4,
            any::<bool>(),
        )
            .prop_map(|(version, name, address, index, with_prev)| {
                let mut conf = json!({"cniVersion": version, "name": name});
                if with_prev {
                    conf["prevResult"] = json!({
                        "interfaces": [{"name": "eth0", "sandbox": "/n"}],
                        "ips": [{"address": address, "interface": index}],
                    });
                }
                serde_json::to_vec(&conf).unwrap_or_default()
            })
    }

    proptest! {
        /// No environment, stdin or daemon answer makes the plugin panic.
        #[test]
        fn never_panics(
            command in "(ADD|DEL|CHECK|VERSION|[A-Z]{0,6})",
            id in proptest::option::of("\\PC{0,70}"),
            netns in proptest::option::of("\\PC{0,20}"),
            ifname in proptest::option::of("\\PC{0,20}"),
            stdin in prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), near_valid_config()],
            junk in any::<bool>(),
        ) {
            let env = CniEnv { command: Some(command), container_id: id, netns, ifname, args: None, path: None };
            let _ = execute(&env, &stdin, |_, req, _| match (req, junk) {
                (_, true) => Ok(json!({"address": "x", "name": 3})),
                (Request::Attach(a), false) => Ok(attached(a)),
                _ => Ok(Value::Null),
            });
        }
    }

    #[test]
    fn version_needs_no_daemon_and_no_valid_config() {
        let never = |_: &Path, _: &Request, _: Duration| -> Result<Value, ClientError> {
            panic!("VERSION must not call the daemon")
        };
        let out = execute(&env("VERSION", None), b"", never).unwrap().unwrap();
        assert_eq!(
            out,
            json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
        );
    }
}
