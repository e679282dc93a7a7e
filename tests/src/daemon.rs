//! Running the `switchyard` daemon under test: config, start, readiness, stats, stop.
//!
//! The daemon is a separate binary built by `cargo build --workspace`; the harness only
//! talks to it through its documented interface (config file, stats file, signals,
//! exit status, stderr).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::stats::Stats;
use crate::tempdir::TempDir;

/// How long `switchyard run` may take to attach all ports and write its first stats.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a SIGTERM'd daemon may take to detach and exit before it is SIGKILLed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the daemon binary: `$SWITCHYARD_BIN`, else `switchyard` in the
/// profile directory this test binary was built into (`<target>/debug/deps/..`,
/// so a `CARGO_TARGET_DIR` elsewhere works too), else
/// `<workspace>/target/debug/switchyard`.
///
/// Panics with the build command when it is missing, because the tests cannot build it
/// themselves (cargo cannot depend on another package's binary).
#[track_caller]
pub fn switchyard_bin() -> PathBuf {
    let path = match std::env::var_os("SWITCHYARD_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("switchyard")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
                    .join("debug")
                    .join("switchyard")
            }),
    };
    if !path.is_file() {
        panic!(
            "switchyard binary not found at {} (set SWITCHYARD_BIN, or build it first: \
             `cargo build --workspace && cargo test --workspace`)",
            path.display()
        );
    }
    path
}

/// One `[[port]]` of a daemon config.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Port name (the tests use the host's name).
    pub name: String,
    /// Root-namespace interface to attach AF_XDP to.
    pub interface: String,
    /// Network the port belongs to.
    pub network: String,
}

/// A daemon config, rendered to the TOML the daemon reads.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Cores for poll workers; `[1]` on the 2-core test VM (core 0 runs the senders).
    pub workers: Vec<u32>,
    /// MAC aging time.
    pub mac_aging_secs: u64,
    /// Stats file period; 1 s keeps "fresh stats" waits short.
    pub stats_interval_secs: u64,
    /// Networks, in order.
    pub networks: Vec<String>,
    /// Ports, in order.
    pub ports: Vec<PortConfig>,
    /// More `[switch]` lines, verbatim (e.g. `idle = "busy-poll"`).
    pub switch_extra: Vec<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            workers: vec![1],
            mac_aging_secs: 300,
            stats_interval_secs: 1,
            networks: Vec::new(),
            ports: Vec::new(),
            switch_extra: Vec::new(),
        }
    }
}

fn toml_str(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string for the characters we use.
    serde_json::to_string(s).expect("string serialises")
}

impl DaemonConfig {
    /// Renders the config as TOML.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let workers: Vec<String> = self.workers.iter().map(u32::to_string).collect();
        let _ = writeln!(t, "[switch]");
        let _ = writeln!(t, "workers = [{}]", workers.join(", "));
        let _ = writeln!(t, "mac_aging_secs = {}", self.mac_aging_secs);
        let _ = writeln!(t, "stats_interval_secs = {}", self.stats_interval_secs);
        for line in &self.switch_extra {
            let _ = writeln!(t, "{line}");
        }
        for n in &self.networks {
            let _ = writeln!(t, "\n[[network]]\nname = {}", toml_str(n));
        }
        for p in &self.ports {
            let _ = writeln!(
                t,
                "\n[[port]]\nname = {}\ndriver = \"af_xdp\"\ninterface = {}\nnetwork = {}",
                toml_str(&p.name),
                toml_str(&p.interface),
                toml_str(&p.network)
            );
        }
        t
    }
}

/// How a daemon ended.
#[derive(Debug)]
pub struct DaemonExit {
    /// Its exit status.
    pub status: ExitStatus,
    /// True when it ignored SIGTERM for [`STOP_TIMEOUT`] and was SIGKILLed.
    pub needed_sigkill: bool,
    /// The stats file after exit (the final write, if the daemon made one).
    pub final_stats: Option<Stats>,
    /// Everything the daemon logged.
    pub log: String,
}

impl DaemonExit {
    /// Panics (with the log) unless the daemon exited 0 on SIGTERM and wrote final stats.
    #[track_caller]
    pub fn assert_clean(&self) -> &Stats {
        assert!(
            !self.needed_sigkill && self.status.code() == Some(0),
            "daemon did not exit cleanly on SIGTERM: {} (needed SIGKILL: {})\n--- daemon log ---\n{}",
            self.status,
            self.needed_sigkill,
            self.log
        );
        let stats = self.final_stats.as_ref().unwrap_or_else(|| {
            panic!("no stats file after exit\n--- daemon log ---\n{}", self.log)
        });
        assert!(
            stats.is_final,
            "last stats written before exit lack \"final\": true: {}\n--- daemon log ---\n{}",
            stats.raw, self.log
        );
        stats
    }
}

/// A running `switchyard run`; SIGTERMed (then SIGKILLed if need be) on drop.
///
/// Only the process this guard spawned is ever signalled.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: TempDir,
    config_path: PathBuf,
    stats_path: PathBuf,
    log_path: PathBuf,
    /// Set when a panic message already carried the log, so `Drop` does not repeat it.
    log_reported: bool,
    /// PID at spawn, kept for messages after the process is gone.
    spawned_pid: u32,
}

fn file_identity(path: &Path) -> Option<(u64, i64, i64)> {
    let m = fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec()))
}

impl Daemon {
    /// Writes `config`, starts the daemon and waits (bounded by [`READY_TIMEOUT`]) for
    /// its first stats file, which it writes once every port forwards.
    #[track_caller]
    pub fn start(config: &DaemonConfig) -> Daemon {
        Daemon::start_with_text(&config.to_toml())
    }

    /// Like [`Daemon::start`] with the config given verbatim.
    #[track_caller]
    pub fn start_with_text(config_toml: &str) -> Daemon {
        let bin = switchyard_bin();
        let dir = TempDir::new("daemon", 0o755);
        let config_path = dir.path().join("node.toml");
        let stats_path = dir.path().join("stats.json");
        let log_path = dir.path().join("daemon.log");
        fs::write(&config_path, config_toml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        let log = File::create(&log_path).expect("create daemon log");
        let log2 = log.try_clone().expect("dup daemon log");
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--stats-file")
            .arg(&stats_path)
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log);
        // Plain logs: they are read in test failure output, not on a terminal.
        cmd.env("NO_COLOR", "1");
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            cmd.env("RUST_BACKTRACE", "1");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            config_path,
            stats_path,
            log_path,
            log_reported: false,
            spawned_pid: 0,
        };
        daemon.spawned_pid = daemon.child.as_ref().map_or(0, Child::id);
        daemon.wait_ready(READY_TIMEOUT);
        daemon
    }

    #[track_caller]
    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last_err = String::from("no stats file yet");
        loop {
            if let Ok(text) = fs::read_to_string(&self.stats_path) {
                match Stats::parse(&text) {
                    Ok(_) => return,
                    Err(e) => last_err = format!("{e}: {text}"),
                }
            }
            let child = self.child.as_mut().expect("daemon running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                self.log_reported = true;
                panic!(
                    "daemon exited with {status} before it was ready\n--- config ---\n{}\n--- daemon log ---\n{}",
                    self.config_text(),
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                self.log_reported = true;
                panic!(
                    "daemon not ready after {timeout:?} ({last_err})\n--- config ---\n{}\n--- daemon log ---\n{}",
                    self.config_text(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the config was written.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The config text the daemon was started with.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config_path).unwrap_or_default()
    }

    /// The stats file path.
    pub fn stats_path(&self) -> &Path {
        &self.stats_path
    }

    /// The temp dir holding config, stats and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The current stats file (possibly up to one interval old).
    #[track_caller]
    pub fn stats(&self) -> Stats {
        let text = fs::read_to_string(&self.stats_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.stats_path.display()));
        Stats::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Stats taken after this call: waits for the file to be replaced twice.
    ///
    /// Once is not enough: the daemon may have taken its snapshot just before this call
    /// and renamed it into place just after. Bounded by `timeout`.
    #[track_caller]
    pub fn fresh_stats(&mut self, timeout: Duration) -> Stats {
        let deadline = Instant::now() + timeout;
        let mut seen = file_identity(&self.stats_path);
        let mut changes = 0;
        while changes < 2 {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    self.log_reported = true;
                    panic!(
                        "daemon exited with {status} while waiting for stats\n--- daemon log ---\n{}",
                        self.log()
                    );
                }
            } else {
                panic!("fresh_stats: daemon is not running");
            }
            let now = file_identity(&self.stats_path);
            if now.is_some() && now != seen {
                changes += 1;
                seen = now;
            }
            if changes < 2 {
                if Instant::now() >= deadline {
                    self.log_reported = true;
                    panic!(
                        "stats file {} not rewritten twice within {timeout:?}\n--- daemon log ---\n{}",
                        self.stats_path.display(),
                        self.log()
                    );
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.stats()
    }

    /// True while the daemon process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, wait up to [`STOP_TIMEOUT`], SIGKILL if it did not exit; returns how it ended.
    #[track_caller]
    pub fn stop(&mut self) -> DaemonExit {
        self.stop_within(STOP_TIMEOUT)
    }

    /// [`Daemon::stop`] with a longer wait: a daemon with a thousand ports
    /// closes a thousand sockets on the way out (~15 s here).
    #[track_caller]
    pub fn stop_within(&mut self, timeout: Duration) -> DaemonExit {
        let mut child = self.child.take().expect("daemon is not running");
        let mut needed_sigkill = false;
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                let _ = crate::sys::signal_child(&child, libc::SIGTERM);
                let deadline = Instant::now() + timeout;
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        break status;
                    }
                    if Instant::now() >= deadline {
                        needed_sigkill = true;
                        let _ = child.kill();
                        break child.wait().expect("wait for SIGKILLed daemon");
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        };
        DaemonExit {
            status,
            needed_sigkill,
            final_stats: fs::read_to_string(&self.stats_path)
                .ok()
                .and_then(|t| Stats::parse(&t).ok()),
            log: self.log(),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the running daemon; only the process
    /// this guard spawned and has not reaped is ever signalled.
    #[track_caller]
    pub fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        let child = self.child.as_mut().expect("daemon is not running");
        if let Ok(Some(status)) = child.try_wait() {
            return Err(std::io::Error::other(format!(
                "daemon already exited with {status}"
            )));
        }
        crate::sys::signal_child(child, signal)
    }

    /// SIGKILLs the daemon (simulating a crash) and reaps it.
    #[track_caller]
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon is not running");
        let _ = child.kill();
        child.wait().expect("wait for SIGKILLed daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = crate::sys::signal_child(&child, libc::SIGTERM);
                let deadline = Instant::now() + STOP_TIMEOUT;
                if !matches!(crate::cmd::wait_deadline(&mut child, deadline), Ok(Some(_))) {
                    eprintln!("daemon ignored SIGTERM for {STOP_TIMEOUT:?}; killed");
                }
            }
        }
        if thread::panicking() && !self.log_reported {
            eprintln!(
                "--- daemon pid {} config ({}) ---\n{}\n--- daemon pid {} log ---\n{}\n--- daemon pid {} last stats ---\n{}",
                self.spawned_pid,
                self.config_path.display(),
                self.config_text(),
                self.spawned_pid,
                self.log(),
                self.spawned_pid,
                fs::read_to_string(&self.stats_path).unwrap_or_else(|e| format!("({e})"))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_as_documented() {
        let cfg = DaemonConfig {
            networks: vec!["red".into()],
            ports: vec![PortConfig {
                name: "h1".into(),
                interface: "syt000100h1".into(),
                network: "red".into(),
            }],
            ..DaemonConfig::default()
        };
        let t = cfg.to_toml();
        assert!(t.starts_with(
            "[switch]\nworkers = [1]\nmac_aging_secs = 300\nstats_interval_secs = 1\n"
        ));
        assert!(t.contains("[[network]]\nname = \"red\""));
        assert!(t.contains(
            "[[port]]\nname = \"h1\"\ndriver = \"af_xdp\"\ninterface = \"syt000100h1\"\nnetwork = \"red\""
        ));
    }
}
