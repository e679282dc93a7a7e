//! The control socket server: a Unix socket (mode 0600, or 0660 owned by
//! `[switch] control_group`) where each client sends one JSON request per line
//! and gets one JSON reply per line. Every client's kernel credentials are
//! checked at accept: only root and members of the control group are served; a
//! refused client gets one `permission_denied` reply and is disconnected. Several clients
//! at once (a thread each, bounded); a malformed, oversized or unknown request
//! gets an error reply and the connection goes on; nothing a client sends can stop
//! the daemon or a worker.

use super::access::Peer;
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
use tracing::{debug, info, warn};

/// Clients served at once; more wait up to [`SLOT_WAIT`] for a slot, then are
/// told to retry and disconnected.
const MAX_CLIENTS: usize = 32;
/// How long a client over the limit waits for a slot before it is turned away:
/// long enough that clients which just closed (their threads still winding
/// down) never make a newcomer fail, short enough that a crowd of idle
/// connections cannot hold the accept loop.
const SLOT_WAIT: Duration = Duration::from_secs(1);
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

/// Who besides root may use the socket: the configured control group.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `[switch] control_group`: its name (for messages) and gid.
    pub group: Option<(String, libc::gid_t)>,
}

impl Access {
    fn gid(&self) -> Option<libc::gid_t> {
        self.group.as_ref().map(|(_, gid)| *gid)
    }

    /// Who may connect, for the refusal message.
    fn describe(&self) -> String {
        match &self.group {
            Some((name, _)) => format!("root and members of group {name:?}"),
            None => "root".to_string(),
        }
    }
}

/// Binds the control socket at `path` so that it is never, even for an
/// instant, more permissive than 0600: the umask is 0177 during the bind (the
/// only file this process creates at that moment), then the mode and group
/// are set for `access` (0660 and the group's ownership with a control group).
pub fn bind_control_socket(path: &Path, access: &Access) -> Result<UnixListener> {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the mask found.
    unsafe { libc::umask(previous) };
    let listener =
        bound.with_context(|| format!("binding the control socket {}", path.display()))?;
    if let Some((name, gid)) = &access.group {
        std::os::unix::fs::chown(path, None, Some(*gid))
            .with_context(|| format!("giving {} to group {name:?}", path.display()))?;
    }
    let mode = if access.group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making {} mode {mode:04o}", path.display()))?;
    Ok(listener)
}

/// Binds the control socket (refusing if another daemon answers on it) and
/// starts serving requests against `controller` to the clients `access` allows.
pub fn start(path: &Path, access: Access, controller: Arc<Mutex<Controller>>) -> Result<Server> {
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
    let listener = bind_control_socket(path, &access)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("sy-control".into())
        .spawn(move || accept_loop(listener, access, controller, stop_flag))?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

/// Checks a new client's credentials; a refused one gets its one reply here.
fn admit(stream: &mut UnixStream, access: &Access) -> bool {
    let refusal = match Peer::of(stream) {
        Ok(peer) if peer.allowed(access.gid()) => return true,
        Ok(peer) => {
            info!(
                uid = peer.uid,
                gid = peer.gid,
                pid = peer.pid,
                "control client refused"
            );
            format!(
                "permission denied: uid {} may not use this control socket (allowed: {})",
                peer.uid,
                access.describe()
            )
        }
        Err(error) => {
            warn!(%error, "cannot read a control client's credentials; refused");
            format!("permission denied: the client's credentials cannot be read ({error})")
        }
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = write_reply(
        stream,
        &Reply::failure(ErrorCode::PermissionDenied, refusal),
    );
    false
}

fn accept_loop(
    listener: UnixListener,
    access: Access,
    controller: Arc<Mutex<Controller>>,
    stop: Arc<AtomicBool>,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if !admit(&mut stream, &access) {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                if !wait_for_slot(&clients, SLOT_WAIT) {
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
                            clients.fetch_sub(1, Ordering::Release);
                        });
                if spawned.is_err() {
                    warn!("cannot start a client thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Wait for the next client in poll(), not a fixed sleep: a
                // connection is accepted at once (a 50 ms sleep here was most of
                // an attach), and `stop` is still seen within 50 ms.
                use std::os::fd::AsRawFd;
                let mut fds = [libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                switchyard_drivers::sys::wait_readable(&mut fds, Duration::from_millis(50));
            }
            Err(error) => {
                warn!(%error, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Waits until fewer than [`MAX_CLIENTS`] clients are served, for at most `limit`;
/// false if none left in time.
fn wait_for_slot(clients: &AtomicUsize, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while clients.load(Ordering::Acquire) >= MAX_CLIENTS {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
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
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// The umask is the process's, shared by the test threads: tests that bind a
    /// socket (which sets and restores it) or read it take turns.
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The socket is 0600 when it appears, whatever the umask (here 000).
    #[test]
    fn control_socket_is_private_under_a_permissive_umask() {
        let _turn = UMASK.lock().unwrap_or_else(|p| p.into_inner());
        let dir = std::env::temp_dir().join(format!("sy-server-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        // SAFETY: umask cannot fail; the previous mask is restored below.
        let before = unsafe { libc::umask(0) };
        let result = bind_control_socket(&path, &Access::default());
        // SAFETY: as above.
        let during = unsafe { libc::umask(before) };
        let listener = result.unwrap();
        assert_eq!(during, 0, "the caller's umask is restored");
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_control_group_makes_the_socket_group_owned_0660() {
        let _turn = UMASK.lock().unwrap_or_else(|p| p.into_inner());
        let dir = std::env::temp_dir().join(format!("sy-server-grp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        let gid = super::super::access::group_id("root").unwrap();
        let access = Access {
            group: Some(("root".into(), gid)),
        };
        let listener = bind_control_socket(&path, &access).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o660, gid));
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
