//! Running external commands (`ip`, `ping`, the daemon's one-shot modes) with a bound
//! on how long they may take.
//!
//! A hung `ip netns exec` or `ping` must fail the test with the command line in the
//! message, not hang the test run, so nothing here waits without a deadline.

use std::fmt;
use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The default bound for a single administrative command (`ip link ...`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished command printed, with its command line so a failure explains itself.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status of the process.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the command line and its output unless it exited with status 0.
    #[track_caller]
    pub fn expect_success(self) -> Self {
        if !self.success() {
            panic!("command failed: {self}");
        }
        self
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Renders a command as a shell-like line for messages.
pub fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Waits for `child` until `deadline`; kills it (our own child, by handle) on expiry.
///
/// Returns `None` when the deadline passed and the child had to be killed.
pub fn wait_deadline(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to completion, capturing its output, for at most `timeout`.
///
/// Fails with `ErrorKind::TimedOut` (after killing the process) when it overruns.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<CmdOutput> {
    let line = cmdline(cmd);
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot spawn `{line}`: {e}")))?;
    let out_rx = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));
    let status = wait_deadline(&mut child, deadline)?;
    // A grandchild could keep the pipes open; don't wait for that forever.
    let grace = Duration::from_secs(2);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    match status {
        Some(status) => Ok(CmdOutput {
            cmdline: line,
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "`{line}` did not finish within {timeout:?} (killed); stderr so far: {}",
                String::from_utf8_lossy(&stderr).trim_end()
            ),
        )),
    }
}

/// Like [`run_timeout`], with `input` written to the command's stdin (then closed).
///
/// The input is written from a thread of its own, so a command that does not read
/// it cannot block the caller past `timeout`.
pub fn run_timeout_input(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> io::Result<CmdOutput> {
    let line = cmdline(cmd);
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot spawn `{line}`: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    thread::spawn(move || {
        use std::io::Write as _;
        // A command that exits without reading gives EPIPE: not our concern here.
        let _ = stdin.write_all(&input);
    });
    let out_rx = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));
    let status = wait_deadline(&mut child, deadline)?;
    let grace = Duration::from_secs(2);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    match status {
        Some(status) => Ok(CmdOutput {
            cmdline: line,
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "`{line}` did not finish within {timeout:?} (killed); stderr so far: {}",
                String::from_utf8_lossy(&stderr).trim_end()
            ),
        )),
    }
}

/// Runs `program args...` with [`DEFAULT_TIMEOUT`]; panics if it cannot run or overruns.
///
/// A non-zero exit is returned, not a panic: callers decide whether it matters.
#[track_caller]
pub fn run(program: &str, args: &[&str]) -> CmdOutput {
    run_with_timeout(program, args, DEFAULT_TIMEOUT)
}

/// Like [`run`] with an explicit bound.
#[track_caller]
pub fn run_with_timeout(program: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    let mut cmd = Command::new(program);
    cmd.args(args);
    match run_timeout(&mut cmd, timeout) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `program args...` and panics (with its output) unless it succeeds.
#[track_caller]
pub fn run_ok(program: &str, args: &[&str]) -> CmdOutput {
    run(program, args).expect_success()
}

/// Runs `ip args...` for cleanup from a `Drop`: never panics (a panic while unwinding
/// would abort the test binary), reports failures on stderr instead.
pub fn cleanup(ip_args: &[&str]) {
    let mut cmd = Command::new("ip");
    cmd.args(ip_args);
    match run_timeout(&mut cmd, DEFAULT_TIMEOUT) {
        Ok(out) if out.success() => {}
        Ok(out) if out.stderr.contains("Cannot find device") => {}
        Ok(out) => eprintln!("cleanup failed: {out}"),
        Err(e) => eprintln!("cleanup failed: {e}"),
    }
}
