//! The control protocol: one JSON request per line, one JSON reply per line, over
//! a Unix socket (mode 0600, or 0660 for `[switch] control_group`; other clients
//! get `permission_denied`). Shared by the daemon, `switchyard ctl` and the CNI
//! plugin, so all three agree by construction.
//!
//! A request is an object with a `cmd` field naming the command, e.g.
//! `{"cmd":"attach","netns":"/run/netns/c1","network":"web"}`. A reply is
//! `{"ok":true,"result":...}` or `{"ok":false,"error":{"code":"...","message":"..."}}`.

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads; a longer one is answered with
/// `request_too_large` and the rest of the line is skipped.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Protocol version reported by `version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Daemon and protocol version.
    Version,
    /// Ports with their interface, network, MAC, address and counters.
    Ports,
    /// Learned MACs, optionally of one network.
    Fdb {
        /// Only this network.
        #[serde(default)]
        network: Option<String>,
    },
    /// Counters of ports, workers and tables (the stats document).
    Stats,
    /// The routing table: each network's connected route, the uplink's
    /// default route.
    Routes,
    /// Every worker's neighbour table (ARP cache).
    Neighbours,
    /// NAT's connection table: counters and up to `limit` connections.
    Conntrack {
        /// Most connections listed per worker (default 1,000).
        #[serde(default)]
        limit: Option<usize>,
        /// Only connections with an address in this network's subnet.
        #[serde(default)]
        network: Option<String>,
    },
    /// Creates a veth into a container's namespace and attaches its host end.
    Attach(AttachRequest),
    /// Detaches an attached container port and deletes its veth.
    Detach {
        /// Port name.
        name: String,
    },
    /// Attaches an existing interface (a NIC, a hand-made veth) as an AF_XDP port.
    AddPort {
        /// Port name.
        name: String,
        /// Interface in the daemon's namespace.
        interface: String,
        /// Network to join.
        network: String,
    },
    /// Removes a port added with `add-port` (the interface is left alone).
    DelPort {
        /// Port name.
        name: String,
    },
    /// Verifies an attached container port: its interface, address and default
    /// route inside the namespace (CNI CHECK).
    Check {
        /// Port name.
        name: String,
        /// The container's namespace (path or PID), as at attach.
        netns: String,
        /// Interface name inside the namespace.
        #[serde(default)]
        ifname: Option<String>,
    },
    /// Re-reads the config file and applies the difference.
    Reload,
    /// Publishes a node port (destination NAT to a container), checked as a
    /// `[[publish]]` table is; kept across restarts in the state file.
    Publish(PublishRequest),
    /// Removes a port published with `publish` or by an attach (config
    /// file rules change with the file).
    Unpublish {
        /// `tcp` or `udp`.
        protocol: String,
        /// The rule's node port or range, as published (`"8080"`,
        /// `"8080-8090"`, or a number).
        #[serde(deserialize_with = "port_text")]
        host_port: String,
    },
    /// Every published port with where it came from (`config`, `ctl`,
    /// `attach`) and the port that owns it.
    Published,
}

/// Parameters of `publish`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The node's port or range: `"8080"`, `"8080-8090"` (or a number).
    #[serde(deserialize_with = "port_text")]
    pub host_port: String,
    /// Where it goes: `NETWORK/PORTNAME:PORT` (an attached container's port,
    /// which then owns the rule: detaching it removes the rule) or
    /// `ADDRESS:PORT` (an address in a routed network).
    pub target: String,
    /// Only traffic to this node address (by default any of the node's).
    #[serde(default)]
    pub host_address: Option<String>,
}

/// A port mapping of an attach, in the shape of CNI's `portMappings`
/// capability (`runtimeConfig.portMappings`), so the CNI plugin passes the
/// runtime's list through unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The node's port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// `tcp` (the default) or `udp`, any case.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Only traffic to this node address; empty or `0.0.0.0`: any.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

fn default_protocol() -> String {
    "tcp".to_string()
}

/// A port or range written as a string or a JSON number.
fn port_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Number(u64),
        Text(String),
    }
    Ok(match Text::deserialize(d)? {
        Text::Number(n) => n.to_string(),
        Text::Text(t) => t,
    })
}

/// One row of `published`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedInfo {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The node's port or range (`8080`, `8080-8090`).
    pub host_port: String,
    /// The node address it is limited to, if any.
    #[serde(default)]
    pub host_address: Option<String>,
    /// The container's address.
    pub address: String,
    /// The container's first port.
    pub port: u16,
    /// The target as given (`web/c1:80`, `10.0.0.5:80`).
    pub target: String,
    /// `config` (the file's `[[publish]]`), `ctl` (`publish`) or `attach`
    /// (an attach's port mappings, CNI's included).
    pub origin: String,
    /// The port whose detach removes it, if any.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Parameters of `attach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The container's network namespace: a path (`/run/netns/c1`,
    /// `/proc/1234/ns/net`) or a PID.
    pub netns: String,
    /// Network to join.
    pub network: String,
    /// Port name (default: derived from the namespace).
    #[serde(default)]
    pub name: Option<String>,
    /// Address without prefix (default: the next free one of the network's pool).
    #[serde(default)]
    pub ip: Option<String>,
    /// MAC of the container's interface (default: generated).
    #[serde(default)]
    pub mac: Option<String>,
    /// Interface name inside the namespace (default `eth0`).
    #[serde(default)]
    pub ifname: Option<String>,
    /// Ports to publish to the container, applied with the attach (a refused
    /// mapping fails the attach) and owned by its port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
}

/// What `attach` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachResult {
    /// Port name.
    pub name: String,
    /// Host end of the veth (the switch's port).
    pub interface: String,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// MAC of the container's interface.
    pub mac: String,
    /// Address with prefix length, e.g. `172.30.0.5/24`.
    pub address: String,
    /// The network's gateway (default route), if it has one.
    pub gateway: Option<String>,
    /// Network joined.
    pub network: String,
    /// Namespace as given.
    pub netns: String,
}

/// One port in `ports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Port name.
    pub name: String,
    /// Interface the switch drives.
    pub interface: String,
    /// Network.
    pub network: String,
    /// How it came: `config`, `attach` or `add-port`.
    pub origin: String,
    /// Container MAC (attached ports).
    #[serde(default)]
    pub mac: Option<String>,
    /// Container address (attached ports).
    #[serde(default)]
    pub address: Option<String>,
    /// XDP mode in use.
    pub xdp_mode: String,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Frames dropped.
    pub drops: u64,
}

/// Machine-readable error codes; the message says the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not JSON, not UTF-8, or not a known request shape.
    BadRequest,
    /// The line exceeded [`MAX_REQUEST_BYTES`].
    RequestTooLarge,
    /// A named port, network or namespace does not exist.
    NotFound,
    /// The name or address is taken.
    AlreadyExists,
    /// A field has a value that cannot work (bad IP, bad MAC, outside the subnet).
    InvalidArgument,
    /// No room: the network has no free address left, or a worker's UMEM has no
    /// frames for another port's rings.
    PoolExhausted,
    /// The system refused (netlink, AF_XDP).
    SystemError,
    /// The config file has errors; nothing was changed.
    InvalidConfig,
    /// A CHECK found the container's setup differs from what was attached.
    CheckFailed,
    /// The client may not use the control socket: it is neither root nor a
    /// member of `[switch] control_group`. Sent once, then the daemon hangs up.
    PermissionDenied,
    /// Something else went wrong inside the daemon.
    Internal,
}

/// An error reply's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// A reply line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// True on success.
    pub ok: bool,
    /// The result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    /// A success reply.
    pub fn success(result: impl Serialize) -> Self {
        Reply {
            ok: true,
            result: Some(serde_json::to_value(result).unwrap_or(serde_json::Value::Null)),
            error: None,
        }
    }

    /// An error reply.
    pub fn failure(code: ErrorCode, message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }
}

/// Decodes one request line as the daemon does: UTF-8, then JSON of a known
/// request shape. The error is the reply to send. Untrusted bytes: fuzzed.
pub fn decode_request(bytes: &[u8]) -> Result<Request, Reply> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(Reply::failure(
            ErrorCode::RequestTooLarge,
            format!("request longer than {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Reply::failure(ErrorCode::BadRequest, format!("request is not UTF-8: {e}")))?;
    let bad = |message: String| Reply::failure(ErrorCode::BadRequest, message);
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("bad request: {e}")))?;
    let request: Request =
        serde_json::from_value(value.clone()).map_err(|e| bad(format!("bad request: {e}")))?;
    // serde ignores extra fields on commands without fields even with
    // deny_unknown_fields; refuse them too, so a typo never passes silently.
    if matches!(
        request,
        Request::Version | Request::Ports | Request::Stats | Request::Reload | Request::Published
    ) {
        if let Some(extra) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "cmd"))
        {
            return Err(bad(format!(
                "bad request: unknown field `{extra}`: this command takes none"
            )));
        }
    }
    Ok(request)
}
