//! A blocking client of the control socket, for `switchyard ctl` and the CNI plugin.

use super::protocol::{ErrorBody, ErrorCode, Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a request got no good answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached (daemon not running, wrong path, no permission).
    #[error("cannot reach the switchyard control socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed, or timed out.
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon's reply was not a valid reply line.
    #[error("malformed reply from the daemon: {0}")]
    BadReply(String),
    /// The daemon answered with an error.
    #[error("{}: {}", code_name(.0.code), .0.message)]
    Daemon(ErrorBody),
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Sends one request and waits (bounded) for its reply; returns the result value.
pub fn call(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ClientError::BadReply(e.to_string()))?;
    line.push('\n');
    // A daemon that refuses the client (`permission_denied`) replies at once and
    // hangs up, maybe before this write: its reply is still there to read.
    let written = stream.write_all(line.as_bytes());
    let mut reply = String::new();
    let read = BufReader::new(&stream).read_line(&mut reply);
    if reply.is_empty() {
        written?;
        read?;
    }
    let reply: Reply =
        serde_json::from_str(reply.trim_end()).map_err(|e| ClientError::BadReply(e.to_string()))?;
    if reply.ok {
        Ok(reply.result.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ClientError::Daemon(reply.error.unwrap_or(ErrorBody {
            code: ErrorCode::Internal,
            message: "error reply without a body".into(),
        })))
    }
}
