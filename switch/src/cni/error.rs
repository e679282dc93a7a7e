//! The plugin's errors and their CNI error codes.
//!
//! Every failure ends as one spec error object on stdout, so each variant knows
//! its numeric code (the spec's well-known codes below 100, ours from 100 on),
//! a short `msg` and the longer `details`.

use crate::control::client::ClientError;
use crate::control::protocol::{ErrorBody, ErrorCode};

/// Well-known code 1: the configuration's `cniVersion` is not one we speak.
pub const CODE_INCOMPATIBLE_VERSION: u32 = 1;
/// Well-known code 4: a required `CNI_*` variable is missing or malformed.
pub const CODE_INVALID_ENV: u32 = 4;
/// Well-known code 5: stdin could not be read.
pub const CODE_IO: u32 = 5;
/// Well-known code 6: stdin is not a decodable network configuration.
pub const CODE_DECODE: u32 = 6;
/// Well-known code 7: the configuration decodes but cannot work.
pub const CODE_INVALID_CONFIG: u32 = 7;
/// Well-known code 11: a transient condition; the runtime should retry later.
pub const CODE_TRY_AGAIN: u32 = 11;
/// Ours: the daemon tried and failed (netlink, AF_XDP, an internal error).
pub const CODE_DAEMON_FAILED: u32 = 100;
/// Ours: the port or the container's interface already exists.
pub const CODE_ALREADY_EXISTS: u32 = 101;
/// Ours: CHECK found the container's networking differs from what ADD set up.
pub const CODE_CHECK_FAILED: u32 = 102;
/// Ours: plugin and daemon do not understand each other (version skew).
pub const CODE_PROTOCOL: u32 = 103;
/// Ours: a bug in the plugin (a caught panic).
pub const CODE_INTERNAL: u32 = 999;

/// Why an invocation failed. The variants follow the spec's error codes so the
/// runtime can tell "retry later" from "your config is wrong".
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The configuration's `cniVersion` is missing or unsupported.
    #[error("CNI version {version:?} is not supported (supported: {supported})")]
    IncompatibleVersion {
        /// The version the configuration asked for (empty when absent).
        version: String,
        /// The versions we support, comma-separated.
        supported: String,
    },
    /// A `CNI_*` environment variable is missing or malformed.
    #[error("{name} {reason}")]
    InvalidEnv {
        /// The variable's name (the spec wants it in the message).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading stdin failed.
    #[error("cannot read the network configuration from stdin: {0}")]
    Io(#[source] std::io::Error),
    /// Stdin is not a network configuration we can decode.
    #[error("cannot decode the network configuration: {0}")]
    Decode(String),
    /// The configuration decodes but a value cannot work.
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// The daemon could not be reached or did not answer in time.
    #[error("the switchyard daemon is not available: {0}")]
    Unavailable(String),
    /// The daemon's address pool for the network is empty.
    #[error("no free address: {0}")]
    PoolExhausted(String),
    /// The port or interface already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// CHECK found a difference.
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// The daemon failed while doing what we asked.
    #[error("the switchyard daemon failed: {0}")]
    DaemonFailed(String),
    /// The daemon and the plugin disagree on the protocol.
    #[error("protocol mismatch with the switchyard daemon: {0}")]
    Protocol(String),
    /// A bug in the plugin.
    #[error("internal error in switchyard-cni: {0}")]
    Internal(String),
}

impl CniError {
    /// The spec's numeric error code for this failure.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } => CODE_INCOMPATIBLE_VERSION,
            CniError::InvalidEnv { .. } => CODE_INVALID_ENV,
            CniError::Io(_) => CODE_IO,
            CniError::Decode(_) => CODE_DECODE,
            CniError::InvalidConfig(_) => CODE_INVALID_CONFIG,
            CniError::Unavailable(_) | CniError::PoolExhausted(_) => CODE_TRY_AGAIN,
            CniError::AlreadyExists(_) => CODE_ALREADY_EXISTS,
            CniError::CheckFailed(_) => CODE_CHECK_FAILED,
            CniError::DaemonFailed(_) => CODE_DAEMON_FAILED,
            CniError::Protocol(_) => CODE_PROTOCOL,
            CniError::Internal(_) => CODE_INTERNAL,
        }
    }

    /// The short `msg` of the error object: the kind of failure (for
    /// environment errors it names the variable, as the spec demands).
    pub fn msg(&self) -> String {
        match self {
            CniError::IncompatibleVersion { .. } => "incompatible CNI version".into(),
            CniError::InvalidEnv { name, .. } => format!("invalid environment variable {name}"),
            CniError::Io(_) => "I/O failure reading stdin".into(),
            CniError::Decode(_) => "failed to decode the network configuration".into(),
            CniError::InvalidConfig(_) => "invalid network configuration".into(),
            CniError::Unavailable(_) => "switchyard daemon unavailable, try again later".into(),
            CniError::PoolExhausted(_) => "address pool exhausted, try again later".into(),
            CniError::AlreadyExists(_) => "already exists".into(),
            CniError::CheckFailed(_) => "check failed".into(),
            CniError::DaemonFailed(_) => "switchyard daemon failed".into(),
            CniError::Protocol(_) => "protocol mismatch with the switchyard daemon".into(),
            CniError::Internal(_) => "internal error".into(),
        }
    }

    /// The spec's error object, with `cniVersion` echoing the configuration's.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code(),
            "msg": self.msg(),
            "details": self.to_string(),
        })
    }
}

/// Which CNI operation a daemon error happened in: the same daemon code means
/// different things to the runtime (a missing port is a config error on ADD
/// but a failed check on CHECK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// ADD.
    Add,
    /// DEL.
    Del,
    /// CHECK.
    Check,
}

/// Maps a failed control call to a CNI error.
pub fn from_client(op: Operation, error: ClientError) -> CniError {
    match error {
        ClientError::Connect { .. } | ClientError::Io(_) => {
            CniError::Unavailable(error.to_string())
        }
        ClientError::BadReply(message) => CniError::Protocol(message),
        ClientError::Daemon(body) => from_daemon(op, body),
    }
}

/// Maps the daemon's error reply to a CNI error, keeping the daemon's message
/// as the details.
pub fn from_daemon(op: Operation, body: ErrorBody) -> CniError {
    let ErrorBody { code, message } = body;
    match code {
        ErrorCode::InvalidArgument | ErrorCode::InvalidConfig => CniError::InvalidConfig(message),
        ErrorCode::NotFound if op == Operation::Check => CniError::CheckFailed(message),
        ErrorCode::NotFound => CniError::InvalidConfig(message),
        ErrorCode::AlreadyExists => CniError::AlreadyExists(message),
        ErrorCode::PoolExhausted => CniError::PoolExhausted(message),
        ErrorCode::CheckFailed => CniError::CheckFailed(message),
        ErrorCode::SystemError | ErrorCode::Internal => CniError::DaemonFailed(message),
        // As if the socket could not be opened: the plugin cannot use this daemon.
        ErrorCode::PermissionDenied => CniError::Unavailable(message),
        ErrorCode::BadRequest | ErrorCode::RequestTooLarge => CniError::Protocol(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: ErrorCode) -> ErrorBody {
        ErrorBody {
            code,
            message: "why".into(),
        }
    }

    #[test]
    fn error_object_has_the_spec_keys() {
        let e = CniError::InvalidEnv {
            name: "CNI_NETNS",
            reason: "is missing".into(),
        };
        let json = e.to_json("1.0.0");
        assert_eq!(json["cniVersion"], "1.0.0");
        assert_eq!(json["code"], 4);
        assert!(json["msg"].as_str().unwrap().contains("CNI_NETNS"));
        assert_eq!(json["details"], "CNI_NETNS is missing");
    }

    #[test]
    fn daemon_codes_map_by_operation() {
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::PoolExhausted)).code(),
            11
        );
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::InvalidArgument)).code(),
            7
        );
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::NotFound)).code(),
            7
        );
        assert_eq!(
            from_daemon(Operation::Check, body(ErrorCode::NotFound)).code(),
            102
        );
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::AlreadyExists)).code(),
            101
        );
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::SystemError)).code(),
            100
        );
        assert_eq!(
            from_daemon(Operation::Add, body(ErrorCode::BadRequest)).code(),
            103
        );
        let e = from_daemon(Operation::Add, body(ErrorCode::PoolExhausted));
        assert!(e.to_string().contains("why"));
    }

    #[test]
    fn unreachable_daemon_is_try_again() {
        let e = ClientError::Connect {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(from_client(Operation::Del, e).code(), 11);
        assert_eq!(
            from_client(Operation::Add, ClientError::BadReply("x".into())).code(),
            103
        );
    }
}
