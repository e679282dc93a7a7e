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
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // The helpers print little, so the pipes cannot fill before exit.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    if !status.success() {
        bail!("`{shown}` failed ({status}): {}", stderr.trim());
    }
    Ok(stdout)
}

/// Runs a clean-up command, reporting (not failing on) errors: clean-up keeps
/// going so one missing object does not leave the others behind.
pub fn cleanup(program: &str, args: &[&str]) {
    if let Err(error) = run(program, args) {
        eprintln!("switchyard-perf: clean-up: {error:#}");
    }
}
