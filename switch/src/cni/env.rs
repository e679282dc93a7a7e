//! The `CNI_*` environment: which command, and the attachment it is about.
//!
//! Parsing takes a lookup function instead of reading the process environment
//! so tests can feed any environment without touching global state.
//!
//! `CNI_ARGS` is parsed as libcni's `LoadArgs` does: `K=V` pairs separated by
//! `;`, keys case-sensitive, an unknown key an error unless `IgnoreUnknown`
//! is true (`1`/`true`). We honour `IP` and `MAC`, which is how Podman passes
//! `--ip` and `--mac-address` (and how the reference `static`/`host-local`
//! IPAM and `tuning` plugins read them), and accept the pod keys the CNI
//! conventions document (`K8S_POD_NAME`, ...) as known: they ask nothing of
//! us, and a runtime that forgets `IgnoreUnknown` should not fail over them.

use super::error::CniError;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use switchyard_pipeline::MacAddr;

/// The operation the runtime asks for (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it again (idempotent).
    Del,
    /// Verify the attachment.
    Check,
    /// Report the spec versions we support.
    Version,
}

impl Command {
    /// Parses `CNI_COMMAND`; anything else is the spec's error 4.
    pub fn parse(value: &str) -> Result<Command, CniError> {
        match value {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "VERSION" => Ok(Command::Version),
            other => Err(CniError::InvalidEnv {
                name: "CNI_COMMAND",
                reason: format!(
                    "has unknown value {other:?} (expected ADD, DEL, CHECK or VERSION)"
                ),
            }),
        }
    }
}

/// The raw `CNI_*` variables, empty ones treated as unset (the spec makes
/// no difference, and runtimes pass `CNI_NETNS=` on DEL when the netns is gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS` as given; [`CniEnv::cni_args`] parses it (ADD only: DEL
    /// must succeed whatever the runtime passes).
    pub args: Option<String>,
    /// `CNI_PATH`, unused: we delegate to no other plugin.
    pub path: Option<String>,
}

/// The attachment a command works on: the spec's `(CNI_CONTAINERID, CNI_IFNAME)`
/// key plus the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Validated container ID.
    pub container_id: String,
    /// Validated interface name inside the container.
    pub ifname: String,
    /// The container's namespace; `None` only on DEL.
    pub netns: Option<String>,
}

impl CniEnv {
    /// Reads the variables through `lookup` (e.g. `std::env::var_os`).
    /// A value that is not UTF-8 is error 4, naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<CniEnv, CniError> {
        let get = |name: &'static str| -> Result<Option<String>, CniError> {
            match lookup(name) {
                None => Ok(None),
                Some(value) => match value.into_string() {
                    Ok(s) if s.is_empty() => Ok(None),
                    Ok(s) => Ok(Some(s)),
                    Err(_) => Err(CniError::InvalidEnv {
                        name,
                        reason: "is not valid UTF-8".into(),
                    }),
                },
            }
        };
        Ok(CniEnv {
            command: get("CNI_COMMAND")?,
            container_id: get("CNI_CONTAINERID")?,
            netns: get("CNI_NETNS")?,
            ifname: get("CNI_IFNAME")?,
            args: get("CNI_ARGS")?,
            path: get("CNI_PATH")?,
        })
    }

    /// The command, or error 4 when `CNI_COMMAND` is missing or unknown.
    pub fn command(&self) -> Result<Command, CniError> {
        match &self.command {
            None => Err(missing("CNI_COMMAND")),
            Some(value) => Command::parse(value),
        }
    }

    /// `CNI_ARGS`, parsed (all defaults when unset).
    pub fn cni_args(&self) -> Result<CniArgs, CniError> {
        self.args
            .as_deref()
            .map_or(Ok(CniArgs::default()), CniArgs::parse)
    }

    /// The attachment for ADD, DEL or CHECK. The namespace is required unless
    /// `netns_optional` (DEL must work after the namespace is gone).
    pub fn attachment(&self, netns_optional: bool) -> Result<Attachment, CniError> {
        let container_id = self
            .container_id
            .clone()
            .ok_or_else(|| missing("CNI_CONTAINERID"))?;
        validate_container_id(&container_id)?;
        let ifname = self.ifname.clone().ok_or_else(|| missing("CNI_IFNAME"))?;
        validate_ifname(&ifname)?;
        if self.netns.is_none() && !netns_optional {
            return Err(missing("CNI_NETNS"));
        }
        Ok(Attachment {
            container_id,
            ifname,
            netns: self.netns.clone(),
        })
    }
}

/// The `CNI_ARGS` keys we honour: a fixed address and MAC for the container,
/// as `podman run --ip` and `--mac-address` ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IP=`: the container's address (IPv4, optionally with `/prefix` for a
    /// network without a subnet); the daemon checks it against the pool.
    pub ip: Option<String>,
    /// `MAC=`: the container interface's MAC, unicast, normalised to
    /// lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
}

impl CniArgs {
    /// Parses a `CNI_ARGS` value. Errors are code 4 naming `CNI_ARGS` and the
    /// offending key, as the spec wants for a bad environment variable.
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let invalid = |reason: String| CniError::InvalidEnv {
            name: "CNI_ARGS",
            reason,
        };
        let mut pairs = Vec::new();
        // Empty segments (a trailing `;`) carry nothing; libcni refuses them,
        // but no runtime means anything by them.
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() && !value.contains('=') => {
                    pairs.push((key, value))
                }
                _ => {
                    return Err(invalid(format!(
                        "has {pair:?}, which is not one KEY=VALUE pair"
                    )))
                }
            }
        }
        let mut ignore_unknown = false;
        for (key, value) in &pairs {
            if *key == "IgnoreUnknown" {
                ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "has IgnoreUnknown={value:?} (expected 1, true, 0 or false)"
                        )))
                    }
                };
            }
        }
        let mut args = CniArgs::default();
        let mut unknown = Vec::new();
        for (key, value) in pairs {
            let slot = match key {
                k if k == "IgnoreUnknown" || CONVENTIONAL_KEYS.contains(&k) => continue,
                "IP" => &mut args.ip,
                "MAC" => &mut args.mac,
                other => {
                    unknown.push(other);
                    continue;
                }
            };
            if slot.is_some() {
                return Err(invalid(format!("gives {key} twice")));
            }
            *slot = Some(match key {
                "IP" => parse_ip(value).map_err(invalid)?,
                _ => parse_mac(value).map_err(invalid)?,
            });
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(invalid(format!(
                "has unknown keys {} (we take IP and MAC; IgnoreUnknown=1 lets others through)",
                unknown.join(", ")
            )));
        }
        Ok(args)
    }
}

/// The `CNI_ARGS` keys the CNI conventions document for Kubernetes pods:
/// accepted and ignored.
const CONVENTIONAL_KEYS: [&str; 4] = [
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// `IP=`: an IPv4 address, or one with a prefix length.
fn parse_ip(value: &str) -> Result<String, String> {
    let (addr, prefix) = match value.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (value, None),
    };
    let bad = || format!("has IP={value:?}, which is not an IPv4 address");
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    match prefix {
        None => Ok(addr.to_string()),
        Some(p) => match p.parse::<u8>() {
            Ok(len) if len <= 32 => Ok(format!("{addr}/{len}")),
            _ => Err(format!("has IP={value:?}, whose prefix length is not 0-32")),
        },
    }
}

/// `MAC=`: a unicast, non-zero MAC.
fn parse_mac(value: &str) -> Result<String, String> {
    let mac: MacAddr = value
        .parse()
        .map_err(|e| format!("has MAC={value:?}, which is not a MAC address: {e}"))?;
    if !mac.is_valid_source() {
        return Err(format!(
            "has MAC={value:?}, which is not a unicast address (multicast bit set, or all zero)"
        ));
    }
    Ok(mac.to_string())
}

fn missing(name: &'static str) -> CniError {
    CniError::InvalidEnv {
        name,
        reason: "is missing or empty".into(),
    }
}

/// The spec's container ID rule: an alphanumeric first character, then
/// alphanumerics, `_`, `.` or `-`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let invalid = |reason: &str| CniError::InvalidEnv {
        name: "CNI_CONTAINERID",
        reason: format!("{id:?} is invalid: {reason}"),
    };
    match id.chars().next() {
        None => return Err(missing("CNI_CONTAINERID")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(invalid("it must start with a letter or digit"))
        }
        Some(_) => {}
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(invalid(
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    Ok(())
}

/// The spec's (Linux's) interface name rule: not empty, not `.` or `..`,
/// under 16 bytes, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let invalid = |reason: &str| CniError::InvalidEnv {
        name: "CNI_IFNAME",
        reason: format!("{name:?} is invalid: {reason}"),
    };
    if name.is_empty() {
        return Err(missing("CNI_IFNAME"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not interface names"));
    }
    if name.len() >= 16 {
        return Err(invalid("it must be shorter than 16 bytes"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(invalid("'/', ':' and whitespace are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        CniEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_all_variables_and_treats_empty_as_unset() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "A=1;B=2"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
        .unwrap();
        assert_eq!(e.command().unwrap(), Command::Add);
        assert_eq!(e.netns, None);
        assert_eq!(e.args.as_deref(), Some("A=1;B=2"));
        assert_eq!(e.path.as_deref(), Some("/opt/cni/bin"));
    }

    #[test]
    fn missing_or_unknown_command_is_code_4() {
        let e = env(&[]).unwrap();
        assert_eq!(e.command().unwrap_err().code(), 4);
        let e = env(&[("CNI_COMMAND", "GC")]).unwrap();
        let err = e.command().unwrap_err();
        assert_eq!(err.code(), 4);
        assert!(err.msg().contains("CNI_COMMAND"));
    }

    #[test]
    fn netns_required_except_on_del() {
        let e = env(&[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).unwrap();
        let err = e.attachment(false).unwrap_err();
        assert_eq!(err.code(), 4);
        assert!(err.msg().contains("CNI_NETNS"));
        let a = e.attachment(true).unwrap();
        assert_eq!(a.netns, None);
        assert_eq!(a.ifname, "eth0");
    }

    #[test]
    fn container_id_and_ifname_rules() {
        assert!(validate_container_id("a1_b.c-d").is_ok());
        assert!(validate_container_id("-abc").is_err());
        assert!(validate_container_id("ab/c").is_err());
        assert!(validate_container_id("ab c").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("net1.100").is_ok());
        assert!(validate_ifname("..").is_err());
        assert!(validate_ifname("a:b").is_err());
        assert!(validate_ifname("e th0").is_err());
        assert!(validate_ifname("0123456789abcdef").is_err());
        assert!(validate_ifname("0123456789abcde").is_ok());
    }

    #[test]
    fn cni_args_as_podman_sends_them() {
        let a =
            CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web;IP=198.18.7.9;MAC=AA:BB:cc:00:11:22")
                .unwrap();
        assert_eq!(a.ip.as_deref(), Some("198.18.7.9"));
        assert_eq!(a.mac.as_deref(), Some("aa:bb:cc:00:11:22"));
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web").unwrap();
        assert_eq!(a, CniArgs::default());
        // The conventional pod keys need no IgnoreUnknown.
        let a = CniArgs::parse("K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.0.0.5").unwrap();
        assert_eq!(a.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert_eq!(
            CniArgs::parse("IP=10.0.0.5/16;").unwrap().ip.as_deref(),
            Some("10.0.0.5/16")
        );
        // IgnoreUnknown may come after the unknown key, in any accepted spelling.
        assert!(CniArgs::parse("FOO=bar;IgnoreUnknown=true").is_ok());
        assert!(CniArgs::parse("FOO=bar;IgnoreUnknown=TRUE").is_ok());
        let env = CniEnv {
            args: Some("IP=198.18.7.9".into()),
            ..CniEnv::default()
        };
        assert_eq!(env.cni_args().unwrap().ip.as_deref(), Some("198.18.7.9"));
        assert_eq!(CniEnv::default().cni_args().unwrap(), CniArgs::default());
    }

    #[test]
    fn bad_cni_args_are_code_4_naming_the_key() {
        let cases = [
            ("FOO=bar", "FOO"),
            ("FOO=bar;IgnoreUnknown=0", "FOO"),
            ("IgnoreUnknown=maybe;IP=10.0.0.1", "IgnoreUnknown"),
            ("ip=10.0.0.1", "ip"),
            ("IP=10.0.0.300", "IP="),
            ("IP=fd00::5", "IP="),
            ("IP=10.0.0.1/33", "IP="),
            ("IP=10.0.0.1;IP=10.0.0.2", "IP twice"),
            ("MAC=01:00:5e:00:00:01", "MAC="),
            ("MAC=00:00:00:00:00:00", "MAC="),
            ("MAC=aa:bb:cc", "MAC="),
            ("IP", "\"IP\""),
            ("=x", "\"=x\""),
            ("A=b=c", "\"A=b=c\""),
        ];
        for (text, named) in cases {
            let err = CniArgs::parse(text).unwrap_err();
            assert_eq!(err.code(), 4, "{text}");
            assert!(err.msg().contains("CNI_ARGS"), "{text}: {}", err.msg());
            assert!(err.to_string().contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn non_utf8_is_code_4() {
        use std::os::unix::ffi::OsStringExt;
        let err =
            CniEnv::from_lookup(|k| (k == "CNI_NETNS").then(|| OsString::from_vec(vec![0xff])))
                .unwrap_err();
        assert_eq!(err.code(), 4);
        assert!(err.msg().contains("CNI_NETNS"));
    }
}
