//! The network configuration the runtime streams on stdin.
//!
//! Decoding happens in two steps so the runtime gets the right code: stdin
//! that is not a JSON object of the right field types is error 6; a
//! configuration that decodes but cannot work (unsupported version, missing
//! name) is error 1 or 7.

use super::error::CniError;
use crate::control::protocol::PortMapping;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The spec versions we accept. 0.4.0 is the oldest with CHECK; its result
/// differs from 1.0.0 only by the `version` field of each IP.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];

/// The version we answer in when the input names none we can use.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// Where the daemon listens unless `controlSocket` says otherwise (the
/// default of the node file's `control_socket`).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/switchyard/ctl.sock";

/// Largest configuration we read; a runtime never sends anything near it, and
/// the bound keeps a runaway writer from eating memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A decoded, validated network configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// The spec version the runtime speaks; results and errors echo it.
    pub cni_version: String,
    /// The CNI network name.
    pub name: String,
    /// The switchyard network to join (`network`, default `name`).
    pub network: String,
    /// The daemon's control socket (`controlSocket`).
    pub control_socket: PathBuf,
    /// `dns` as configured; copied into ADD's result, since the daemon has no
    /// DNS of its own to report.
    pub dns: Map<String, Value>,
    /// The previous result in a chain (ADD passes it on, CHECK verifies it).
    pub prev_result: Option<Map<String, Value>>,
    /// `runtimeConfig.portMappings`: what the runtime asks to publish (it
    /// sends them when the network config list declares the plugin's
    /// `capabilities: {"portMappings": true}`); ADD publishes them with the
    /// attach, DEL removes them with the port.
    pub port_mappings: Vec<PortMapping>,
}

/// `runtimeConfig`: the capabilities we read (others, such as `aliases`,
/// are ignored).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
}

/// The fields we read; everything else (`type`, `args`, `ipam`, ...) is
/// allowed and ignored, as the spec asks of plugins.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    control_socket: Option<String>,
    #[serde(default)]
    dns: Option<Map<String, Value>>,
    #[serde(default)]
    prev_result: Option<Map<String, Value>>,
    #[serde(default)]
    runtime_config: Option<RuntimeConfig>,
}

impl NetConf {
    /// Decodes and validates stdin's bytes.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| CniError::Decode(e.to_string()))?;
        if !value.is_object() {
            return Err(CniError::Decode(
                "the configuration is not a JSON object".into(),
            ));
        }
        let raw: RawConf =
            serde_json::from_value(value).map_err(|e| CniError::Decode(e.to_string()))?;

        let cni_version = raw.cni_version.unwrap_or_default();
        check_version(&cni_version)?;

        let name = raw.name.unwrap_or_default();
        validate_network_name("name", &name)?;
        let network = match raw.network {
            None => name.clone(),
            Some(network) => {
                validate_network_name("network", &network)?;
                network
            }
        };
        let control_socket = match raw.control_socket {
            None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
            Some(path) if path.is_empty() || path.contains('\0') => {
                return Err(CniError::InvalidConfig(format!(
                    "controlSocket {path:?} is not a path"
                )))
            }
            Some(path) => PathBuf::from(path),
        };
        Ok(NetConf {
            cni_version,
            name,
            network,
            control_socket,
            dns: raw.dns.unwrap_or_default(),
            prev_result: raw.prev_result,
            port_mappings: raw.runtime_config.unwrap_or_default().port_mappings,
        })
    }
}

/// Error 1 unless `version` is one of [`SUPPORTED_VERSIONS`].
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::IncompatibleVersion {
            version: version.to_string(),
            supported: SUPPORTED_VERSIONS.join(", "),
        })
    }
}

/// The `cniVersion` to put in an error or VERSION reply: the input's when it is
/// a string we support, so the runtime can read our answer; else ours.
pub fn reply_version(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| DEFAULT_VERSION.to_string())
}

/// The spec's network name rule (alphanumeric first, then alphanumerics,
/// `_`, `.`, `-`), which also keeps names safe in the daemon's messages.
fn validate_network_name(field: &str, name: &str) -> Result<(), CniError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidConfig(format!(
            "{field} {name:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_defaults() {
        let c = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"web","type":"switchyard-cni"}"#)
            .unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(c.network, "web");
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
        assert!(c.dns.is_empty());
        assert!(c.prev_result.is_none());
    }

    #[test]
    fn our_fields_and_unknown_ones() {
        let c = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"k8s","type":"switchyard-cni","network":"web",
                "controlSocket":"/tmp/s.sock","dns":{"nameservers":["1.1.1.1"]},
                "ipam":{},"args":{"x":1},"runtimeConfig":{},"prevResult":{"ips":[]}}"#,
        )
        .unwrap();
        assert_eq!(c.network, "web");
        assert_eq!(c.control_socket, PathBuf::from("/tmp/s.sock"));
        assert_eq!(c.dns["nameservers"][0], "1.1.1.1");
        assert!(c.prev_result.is_some());
        assert!(c.port_mappings.is_empty());
    }

    #[test]
    fn port_mappings_come_from_runtime_config() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"web","type":"switchyard-cni",
                "capabilities":{"portMappings":true},
                "runtimeConfig":{"aliases":{"web":["c1"]},"portMappings":[
                    {"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                    {"hostPort":9090,"containerPort":90,"protocol":"udp","hostIP":"192.0.2.10"}]}}"#,
        )
        .unwrap();
        assert_eq!(c.port_mappings.len(), 2);
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.port_mappings[1].host_ip.as_deref(), Some("192.0.2.10"));
        let e = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"w","runtimeConfig":{"portMappings":[{"hostPort":"x"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), 6);
    }

    #[test]
    fn decode_errors_are_code_6() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"\"x\"",
            b"\xff\xfe",
            br#"{"cniVersion":1}"#,
        ] {
            assert_eq!(NetConf::parse(bad).unwrap_err().code(), 6, "{:?}", bad);
        }
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"w","dns":[]}"#).unwrap_err();
        assert_eq!(e.code(), 6);
    }

    #[test]
    fn version_errors_are_code_1() {
        for bad in [
            &br#"{"name":"w"}"#[..],
            br#"{"cniVersion":"0.3.1","name":"w"}"#,
        ] {
            assert_eq!(NetConf::parse(bad).unwrap_err().code(), 1);
        }
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"2.0.0","name":"w"}"#)
                .unwrap_err()
                .code(),
            1
        );
    }

    #[test]
    fn invalid_values_are_code_7() {
        for bad in [
            &br#"{"cniVersion":"1.0.0"}"#[..],
            br#"{"cniVersion":"1.0.0","name":""}"#,
            br#"{"cniVersion":"1.0.0","name":"-x"}"#,
            br#"{"cniVersion":"1.0.0","name":"w","network":"a b"}"#,
            br#"{"cniVersion":"1.0.0","name":"w","controlSocket":""}"#,
        ] {
            assert_eq!(
                NetConf::parse(bad).unwrap_err().code(),
                7,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reply_version_echoes_supported_input_only() {
        assert_eq!(reply_version(br#"{"cniVersion":"0.4.0"}"#), "0.4.0");
        assert_eq!(reply_version(br#"{"cniVersion":"9.9.9"}"#), "1.0.0");
        assert_eq!(reply_version(b"garbage"), "1.0.0");
    }
}
