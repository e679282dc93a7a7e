//! The CNI plugin `switchyard-cni` (CNI spec 1.0.0, also 0.4.0): lets
//! containerd, CRI-O, Podman or `cnitool` attach containers to a switchyard
//! network instead of a Linux bridge.
//!
//! The plugin holds no state and does no networking itself: each invocation
//! turns the runtime's `CNI_*` environment and stdin configuration into one
//! control request to the running daemon, which owns veths, addresses and
//! AF_XDP sockets. So the daemon's pool is the single source of truth, and a
//! plugin upgrade cannot strand state.
//!
//! | `CNI_COMMAND` | control request | stdout on success |
//! |---|---|---|
//! | `ADD` | `attach` (netns, network, port name, ifname, port mappings, `CNI_ARGS` IP and MAC) | the CNI result |
//! | `DEL` | `detach` (`not_found` counts as done) | nothing |
//! | `CHECK` | `check`, then `prevResult`'s address against the port's | nothing |
//! | `VERSION` | none | supported versions |
//!
//! The port name is derived from `(CNI_CONTAINERID, CNI_IFNAME)`, see
//! [`port_name`]. Configuration fields beyond the spec's: `network` (the
//! switchyard network, default `name`) and `controlSocket` (default
//! `/run/switchyard/ctl.sock`). With `capabilities: {"portMappings": true}`
//! in the network config list the runtime sends `runtimeConfig.portMappings`
//! (what `podman run -p` or a pod's `hostPort` asks for): ADD publishes them
//! with the attach (a refused one fails the ADD, nothing stays), and DEL
//! removes them with the port, as the standard `portmap` plugin does.
//! `CNI_ARGS` `IP=` and `MAC=` (how `podman run --ip` and `--mac-address`
//! arrive) give the container a fixed address and MAC; other keys (but the
//! conventional `K8S_POD_*`) are an error unless `IgnoreUnknown=1`, as in libcni.
//!
//! Failures print the spec's error object on stdout (and a line on stderr for
//! logs) and exit non-zero. Codes: 1 unsupported `cniVersion`, 4 missing or
//! malformed `CNI_*` variable, 5 stdin unreadable, 6 stdin undecodable,
//! 7 invalid configuration (also the daemon's `invalid_argument` and an
//! unknown network), 11 try again later (daemon unreachable or timed out,
//! address pool exhausted), and ours: 100 the daemon failed, 101 already
//! exists, 102 check failed, 103 plugin/daemon protocol mismatch,
//! 999 plugin bug.

pub mod commands;
pub mod config;
pub mod env;
pub mod error;
pub mod port_name;
pub mod result;

use config::{reply_version, MAX_CONFIG_BYTES};
use env::CniEnv;
use error::CniError;
use std::io::{Read, Write};
use std::process::ExitCode;

/// Entry point of the `switchyard-cni` binary. Never panics outward: a bug
/// still ends as a spec error object, so the runtime reports it sensibly.
pub fn main() -> ExitCode {
    let outcome = std::panic::catch_unwind(invoke);
    let (printed, code) = match outcome {
        Ok((Ok(None), _)) => (None, ExitCode::SUCCESS),
        Ok((Ok(Some(result)), _)) => (Some(result), ExitCode::SUCCESS),
        Ok((Err(error), version)) => {
            eprintln!("switchyard-cni: {error}");
            (Some(error.to_json(&version)), ExitCode::FAILURE)
        }
        Err(_) => {
            let error = CniError::Internal("the plugin panicked (see stderr)".into());
            (
                Some(error.to_json(config::DEFAULT_VERSION)),
                ExitCode::FAILURE,
            )
        }
    };
    if let Some(document) = printed {
        // Write errors (a closed pipe) go unreported on stdout, but a success
        // the runtime could not read must not count as one.
        let mut stdout = std::io::stdout().lock();
        let written = serde_json::to_writer(&mut stdout, &document)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    code
}

/// One invocation against the process environment, stdin and the real
/// control socket. Returns the outcome and the `cniVersion` an error should
/// carry.
fn invoke() -> (Result<Option<serde_json::Value>, CniError>, String) {
    let stdin = match read_stdin() {
        Ok(bytes) => bytes,
        Err(error) => return (Err(error), config::DEFAULT_VERSION.to_string()),
    };
    let version = reply_version(&stdin);
    let outcome = CniEnv::from_lookup(|name| std::env::var_os(name))
        .and_then(|env| commands::execute(&env, &stdin, crate::control::client::call));
    (outcome, version)
}

/// Reads stdin up to [`MAX_CONFIG_BYTES`].
fn read_stdin() -> Result<Vec<u8>, CniError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(CniError::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(CniError::Decode(format!(
            "the configuration is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(bytes)
}
