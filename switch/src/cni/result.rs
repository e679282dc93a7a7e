//! Result documents: ADD's success result, VERSION's answer, and CHECK's
//! comparison against `prevResult`.

use super::config::{DEFAULT_VERSION, SUPPORTED_VERSIONS};
use super::error::CniError;
use crate::control::protocol::AttachResult;
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// An address with its prefix length, parsed from the daemon's `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix`; `None` when either part is malformed.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One entry of `interfaces`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address, when we know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The namespace for the container's interface; absent for the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One entry of `ips`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// `"4"` or `"6"`: required by 0.4.0, dropped in 1.0.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    /// Address in CIDR notation.
    pub address: String,
    /// The network's gateway, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    pub interface: usize,
}

/// One entry of `routes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination in CIDR notation.
    pub dst: String,
    /// Next hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// The success result of ADD.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddResult {
    /// Echoes the configuration's version.
    pub cni_version: String,
    /// Host end of the veth, then the container's end.
    pub interfaces: Vec<Interface>,
    /// The container's address.
    pub ips: Vec<IpConfig>,
    /// The default route via the gateway the daemon installed.
    pub routes: Vec<Route>,
    /// From the configuration's `dns`.
    pub dns: Map<String, Value>,
}

/// Builds ADD's result from what the daemon did. A reply whose address or
/// gateway does not parse is a protocol error: we would otherwise hand the
/// runtime garbage it trusts.
pub fn add_result(
    cni_version: &str,
    attached: &AttachResult,
    sandbox: &str,
    dns: &Map<String, Value>,
) -> Result<AddResult, CniError> {
    let cidr = Cidr::parse(&attached.address).ok_or_else(|| {
        CniError::Protocol(format!(
            "the daemon returned address {:?}",
            attached.address
        ))
    })?;
    let gateway: Option<IpAddr> = match &attached.gateway {
        None => None,
        Some(g) => Some(
            g.parse()
                .map_err(|_| CniError::Protocol(format!("the daemon returned gateway {g:?}")))?,
        ),
    };
    let version = (cni_version == "0.4.0").then_some(if cidr.addr.is_ipv4() { "4" } else { "6" });
    let routes = match gateway {
        None => Vec::new(),
        Some(gw) => vec![Route {
            dst: if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.to_string(),
            gw: Some(gw.to_string()),
        }],
    };
    Ok(AddResult {
        cni_version: cni_version.to_string(),
        interfaces: vec![
            Interface {
                name: attached.interface.clone(),
                mac: None,
                sandbox: None,
            },
            Interface {
                name: attached.ifname.clone(),
                mac: Some(attached.mac.clone()),
                sandbox: Some(sandbox.to_string()),
            },
        ],
        ips: vec![IpConfig {
            version,
            address: cidr.to_string(),
            gateway: gateway.map(|g| g.to_string()),
            interface: 1,
        }],
        routes,
        dns: dns.clone(),
    })
}

/// ADD's output when chained after another plugin: the spec makes us pass
/// `prevResult` on with our changes, so our interfaces, IPs and routes are
/// appended (IP interface indexes shifted past the earlier interfaces) and an
/// earlier non-empty `dns` is kept.
pub fn merge_prev(prev: &Map<String, Value>, ours: &AddResult) -> Value {
    let mut out = prev.clone();
    let list = |key: &str| -> Vec<Value> {
        prev.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut interfaces = list("interfaces");
    let offset = interfaces.len();
    interfaces.extend(ours.interfaces.iter().map(to_value));
    let mut ips = list("ips");
    ips.extend(ours.ips.iter().map(|ip| {
        to_value(&IpConfig {
            interface: ip.interface + offset,
            ..ip.clone()
        })
    }));
    let mut routes = list("routes");
    routes.extend(ours.routes.iter().map(to_value));
    let prev_dns_empty = prev
        .get("dns")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    out.insert("cniVersion".into(), Value::String(ours.cni_version.clone()));
    out.insert("interfaces".into(), Value::Array(interfaces));
    out.insert("ips".into(), Value::Array(ips));
    out.insert("routes".into(), Value::Array(routes));
    if prev_dns_empty {
        out.insert("dns".into(), Value::Object(ours.dns.clone()));
    }
    Value::Object(out)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// VERSION's answer, in the input's version when we support it.
pub fn version_result(cni_version: &str) -> Value {
    let version = if SUPPORTED_VERSIONS.contains(&cni_version) {
        cni_version
    } else {
        DEFAULT_VERSION
    };
    serde_json::json!({ "cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS })
}

/// CHECK against `prevResult`: it must list the container's interface
/// (`ifname` in `sandbox`, when it names a sandbox), every address it gives
/// that interface must be the one the daemon holds, and it must give at
/// least one. MACs and routes are not compared: the spec lets later plugins
/// in a chain change them.
pub fn check_prev(
    prev: &Map<String, Value>,
    ifname: &str,
    netns: &str,
    actual: &str,
) -> Result<(), CniError> {
    let actual_cidr = Cidr::parse(actual)
        .ok_or_else(|| CniError::Protocol(format!("the daemon reports address {actual:?}")))?;
    let interfaces = prev.get("interfaces").and_then(Value::as_array);
    let index = interfaces
        .into_iter()
        .flatten()
        .position(|i| {
            i.get("name").and_then(Value::as_str) == Some(ifname)
                && i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s == netns)
        })
        .ok_or_else(|| {
            CniError::CheckFailed(format!("prevResult lists no interface {ifname} in {netns}"))
        })?;
    let mut listed = 0;
    for ip in prev
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let on_ours = match ip.get("interface") {
            None => interfaces.map_or(0, Vec::len) <= 1,
            Some(i) => i.as_u64() == Some(index as u64),
        };
        if !on_ours {
            continue;
        }
        let address = ip
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if Cidr::parse(address) != Some(actual_cidr) {
            return Err(CniError::CheckFailed(format!(
                "prevResult gives {ifname} address {address:?}, the switchyard port has {actual_cidr}"
            )));
        }
        listed += 1;
    }
    if listed == 0 {
        return Err(CniError::CheckFailed(format!(
            "prevResult gives {ifname} no address, the switchyard port has {actual_cidr}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attached(gateway: Option<&str>) -> AttachResult {
        AttachResult {
            name: "abc-eth0-12345678".into(),
            interface: "sy-abc".into(),
            ifname: "eth0".into(),
            mac: "02:00:00:00:00:05".into(),
            address: "172.30.0.5/24".into(),
            gateway: gateway.map(str::to_string),
            network: "web".into(),
            netns: "/run/netns/c1".into(),
        }
    }

    #[test]
    fn add_result_has_the_spec_shape() {
        let r = add_result(
            "1.0.0",
            &attached(Some("172.30.0.1")),
            "/run/netns/c1",
            &Map::new(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "sy-abc"},
                    {"name": "eth0", "mac": "02:00:00:00:00:05", "sandbox": "/run/netns/c1"}
                ],
                "ips": [{"address": "172.30.0.5/24", "gateway": "172.30.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "172.30.0.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn v040_result_has_ip_version_and_no_gateway_no_route() {
        let r = add_result("0.4.0", &attached(None), "/run/netns/c1", &Map::new()).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
        assert!(v["ips"][0].get("gateway").is_none());
        assert_eq!(v["routes"], json!([]));
    }

    #[test]
    fn bad_daemon_address_is_protocol_error() {
        let mut a = attached(None);
        a.address = "172.30.0.5".into();
        assert_eq!(
            add_result("1.0.0", &a, "/n", &Map::new())
                .unwrap_err()
                .code(),
            103
        );
        a.address = "172.30.0.5/33".into();
        assert_eq!(
            add_result("1.0.0", &a, "/n", &Map::new())
                .unwrap_err()
                .code(),
            103
        );
        let a = attached(Some("gw"));
        assert_eq!(
            add_result("1.0.0", &a, "/n", &Map::new())
                .unwrap_err()
                .code(),
            103
        );
    }

    #[test]
    fn merge_appends_and_shifts_indexes() {
        let ours = add_result("1.0.0", &attached(Some("172.30.0.1")), "/n", &Map::new()).unwrap();
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "sandbox": "/n"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
            "dns": {"nameservers": ["10.0.0.2"]}
        });
        let merged = merge_prev(prev.as_object().unwrap(), &ours);
        assert_eq!(merged["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(merged["ips"][1]["interface"], 2);
        assert_eq!(merged["routes"].as_array().unwrap().len(), 1);
        assert_eq!(merged["dns"]["nameservers"][0], "10.0.0.2");
    }

    #[test]
    fn version_result_shape() {
        assert_eq!(
            version_result("1.0.0"),
            json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
        );
        assert_eq!(version_result("0.1.0")["cniVersion"], "1.0.0");
    }

    #[test]
    fn check_prev_compares_the_address() {
        let ours = add_result(
            "1.0.0",
            &attached(Some("172.30.0.1")),
            "/run/netns/c1",
            &Map::new(),
        )
        .unwrap();
        let prev = serde_json::to_value(&ours).unwrap();
        let prev = prev.as_object().unwrap();
        assert!(check_prev(prev, "eth0", "/run/netns/c1", "172.30.0.5/24").is_ok());
        let e = check_prev(prev, "eth0", "/run/netns/c1", "172.30.0.6/24").unwrap_err();
        assert_eq!(e.code(), 102);
        assert_eq!(
            check_prev(prev, "eth1", "/run/netns/c1", "172.30.0.5/24")
                .unwrap_err()
                .code(),
            102
        );
        assert_eq!(
            check_prev(prev, "eth0", "/run/netns/c2", "172.30.0.5/24")
                .unwrap_err()
                .code(),
            102
        );
        let empty =
            json!({"interfaces": [{"name": "eth0", "sandbox": "/run/netns/c1"}], "ips": []});
        let e = check_prev(
            empty.as_object().unwrap(),
            "eth0",
            "/run/netns/c1",
            "172.30.0.5/24",
        );
        assert_eq!(e.unwrap_err().code(), 102);
    }

    #[test]
    fn cidr_parse() {
        assert_eq!(Cidr::parse("10.0.0.1/8").unwrap().prefix, 8);
        assert!(Cidr::parse("fd00::1/64").unwrap().addr.is_ipv6());
        assert!(Cidr::parse("fd00::1/129").is_none());
        assert!(Cidr::parse("10.0.0.1").is_none());
        assert!(Cidr::parse("10.0.0.1/x").is_none());
    }
}
