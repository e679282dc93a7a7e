//! The control socket server: a Unix socket (mode 0600) where each client sends
//! one JSON request per line and gets one JSON reply per line. Several clients
//! at once (a thread each, bounded); a malformed, oversized or unknown request
//! gets an error reply and the connection goes on; nothing a client sends can stop
//! the daemon or a worker.

use super::controller::Controller;
use crate::control::protocol::{decode_request, ErrorCode, Reply, MAX_REQUEST_BYTES};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, warn};

/// Clients served at once; more are told to retry and disconnected.
const MAX_CLIENTS: usize = 32;
/// A client silent this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The listening socket and its accept thread; removes the socket file on drop.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket (refusing if another daemon answers on it) and
/// starts serving requests against `controller`.
pub fn start(path: &Path, controller: Arc<Mutex<Controller>>) -> Result<Server> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("another switchyard daemon is serving {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} mode 0600", path.display()))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("sy-control".into())
        .spawn(move || accept_loop(listener, controller, stop_flag))?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: UnixListener, controller: Arc<Mutex<Controller>>, stop: Arc<AtomicBool>) {
    let clients = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                    let _ = write_reply(
                        &mut stream,
                        &Reply::failure(ErrorCode::Internal, "too many clients; retry"),
                    );
                    continue;
                }
                clients.fetch_add(1, Ordering::Relaxed);
                let (controller, clients, stop) = (
                    Arc::clone(&controller),
                    Arc::clone(&clients),
                    Arc::clone(&stop),
                );
                let spawned =
                    std::thread::Builder::new()
                        .name("sy-client".into())
                        .spawn(move || {
                            serve_client(stream, &controller, &stop);
                            clients.fetch_sub(1, Ordering::Relaxed);
                        });
                if spawned.is_err() {
                    warn!("cannot start a client thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(error) => {
                warn!(%error, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One line from the client: a request, an oversized line, or the end.
enum Line {
    Text(Vec<u8>),
    TooLong,
    End,
}

/// Reads up to the next newline, never holding more than [`MAX_REQUEST_BYTES`]:
/// the rest of an oversized line is read and thrown away.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Line::Text(line));
    }
    if line.len() <= MAX_REQUEST_BYTES {
        return Ok(Line::Text(line)); // last line without a newline
    }
    // Skip to the end of the oversized line.
    let mut sink = Vec::new();
    loop {
        sink.clear();
        let n = reader
            .by_ref()
            .take(64 * 1024)
            .read_until(b'\n', &mut sink)?;
        if n == 0 || sink.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

fn serve_client(stream: UnixStream, controller: &Mutex<Controller>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::Relaxed) {
        let reply = match read_line(&mut reader) {
            Ok(Line::End) | Err(_) => return,
            Ok(Line::TooLong) => Reply::failure(
                ErrorCode::RequestTooLarge,
                format!("request longer than {MAX_REQUEST_BYTES} bytes"),
            ),
            Ok(Line::Text(bytes)) => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                handle_line(&bytes, controller)
            }
        };
        if write_reply(&mut writer, &reply).is_err() {
            return;
        }
    }
}

/// Decodes one request line and runs it.
pub fn handle_line(bytes: &[u8], controller: &Mutex<Controller>) -> Reply {
    let request = match decode_request(bytes) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    debug!(?request, "control request");
    match controller.lock() {
        Ok(mut controller) => controller.handle(request),
        Err(_) => Reply::failure(ErrorCode::Internal, "the control state is unavailable"),
    }
}

fn write_reply(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_lines_are_skipped_whole_and_the_next_line_is_read() {
        let mut input = vec![b'x'; MAX_REQUEST_BYTES * 2];
        input.push(b'\n');
        input.extend_from_slice(b"{\"cmd\":\"version\"}\n");
        let mut reader = BufReader::new(&input[..]);
        assert!(matches!(read_line(&mut reader).unwrap(), Line::TooLong));
        match read_line(&mut reader).unwrap() {
            Line::Text(line) => assert_eq!(line, b"{\"cmd\":\"version\"}"),
            _ => panic!("expected the next request"),
        }
        assert!(matches!(read_line(&mut reader).unwrap(), Line::End));
    }

    #[test]
    fn hostile_requests_decode_to_errors_not_panics() {
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        for (bytes, code) in [
            (&b"\xff\xfe"[..], ErrorCode::BadRequest),
            (b"not json", ErrorCode::BadRequest),
            (b"{\"cmd\":\"format-disk\"}", ErrorCode::BadRequest),
            (b"{\"cmd\":\"detach\",\"name\":42}", ErrorCode::BadRequest),
            (b"{\"cmd\":\"attach\"}", ErrorCode::BadRequest),
            (
                b"{\"cmd\":\"fdb\",\"netwrok\":\"x\"}",
                ErrorCode::BadRequest,
            ),
            (b"[1,2,3]", ErrorCode::BadRequest),
            (&huge[..], ErrorCode::RequestTooLarge),
        ] {
            let reply = decode_request(bytes).expect_err("must not decode");
            assert_eq!(
                reply.error.map(|e| e.code),
                Some(code),
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
            );
        }
        assert_eq!(
            decode_request(b"{\"cmd\":\"fdb\"}").ok(),
            Some(crate::control::protocol::Request::Fdb { network: None })
        );
    }
}
