//! Running `ip`, `bridge` and friends with a deadline and a readable error.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one helper command may take: `ip` answers in milliseconds, so
/// this only catches a wedged system.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `program args…`, returns its stdout; fails with its stderr on a
/// non-zero exit or after `COMMAND_TIMEOUT` (the command is then killed).
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    run_timeout(program, args, COMMAND_TIMEOUT)
}

/// [`run`] with its own deadline (an `ip -batch` of a thousand lines).
pub fn run_timeout(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    // Read both pipes while the command runs: a large output (a bridge FDB
    // of 200,000 stations) would otherwise fill the pipe and block it.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // The command has exited, so its pipes are closed and the readers end.
    let collect = |reader: Option<std::thread::JoinHandle<String>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    let stdout = collect(stdout);
    let stderr = collect(stderr);
    if !status.success() {
        bail!("`{shown}` failed ({status}): {}", stderr.trim());
    }
    Ok(stdout)
}

/// Reads `pipe` to its end on a thread of its own (lossy UTF-8).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs a clean-up command, reporting (not failing on) errors: clean-up keeps
/// going so one missing object does not leave the others behind.
pub fn cleanup(program: &str, args: &[&str]) {
    if let Err(error) = run(program, args) {
        eprintln!("switchyard-perf: clean-up: {error:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_outputs_do_not_block_the_command() {
        // More than a pipe holds (64 KiB): read while the command runs.
        let out = run("sh", &["-c", "head -c 300000 /dev/zero | tr '\\0' x"]).unwrap();
        assert_eq!(out.len(), 300_000);
        let error = run("sh", &["-c", "echo nope >&2; exit 3"]).unwrap_err();
        assert!(format!("{error:#}").contains("nope"), "{error:#}");
    }
}
