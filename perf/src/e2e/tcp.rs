//! TCP through the dataplane with iperf3: the server in the sink's
//! namespace, the client in the generator's, both pinned to the traffic
//! cores, MTU 1500, kernel-default offloads (as a container would have).
//! `iperf3 -J` reports the receiver's rate and the sender's retransmits.
//!
//! Both processes are children of this one (`ip netns exec` execs iperf3 in
//! place, so the PID is iperf3's), each in its own process group and with a
//! parent-death signal; every wait is bounded, and only these PIDs are ever
//! signalled.

use super::netns;
use super::topology::{Topology, SINK_IP};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The iperf3 port (inside the test namespaces only).
const PORT: u16 = 5201;

/// How long the server may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// One iperf3 measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TcpResult {
    /// Parallel streams (`-P`).
    pub streams: usize,
    /// Test length the client reported.
    pub seconds: f64,
    /// Received rate (what arrived at the server), Gbit/s.
    pub gbps: f64,
    /// Sent rate, Gbit/s.
    pub sender_gbps: f64,
    /// TCP retransmissions of the sender over the test (Linux reports them).
    pub retransmits: Option<u64>,
}

/// A child process we spawned; stopped (SIGTERM, then SIGKILL) on drop if
/// it still runs.
struct Spawned {
    child: Child,
    what: &'static str,
}

impl Spawned {
    fn spawn(mut command: Command, what: &'static str) -> Result<Self> {
        // Its own process group: a Ctrl-C at the terminal reaches only us.
        command.stdin(Stdio::null()).process_group(0);
        sys::kill_child_with_parent(&mut command, libc::SIGTERM);
        let child = command
            .spawn()
            .with_context(|| format!("starting {what} (is iperf3 installed?)"))?;
        Ok(Spawned { child, what })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for exit until `deadline` or `stop`; `Ok(true)` for a clean exit.
    fn wait(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<bool> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            if Instant::now() >= deadline {
                bail!("{} did not finish in time", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = sys::signal_child(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one iperf3 test of `streams` streams for `seconds`, client pinned to
/// `client_core`, server to `server_core`. The caller has given the hosts
/// their addresses. `dir` keeps the processes' output.
pub fn measure(
    topology: &Topology,
    streams: usize,
    seconds: f64,
    client_core: usize,
    server_core: usize,
    dir: &Path,
    stop: &AtomicBool,
) -> Result<TcpResult> {
    if !(1..=128).contains(&streams) {
        bail!("streams must be in 1..=128");
    }
    let seconds = seconds.clamp(1.0, 600.0).round();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let server_log = dir.join(format!("iperf3-server-{streams}.log"));
    let client_out = dir.join(format!("iperf3-client-{streams}.json"));
    let client_err = dir.join(format!("iperf3-client-{streams}.log"));

    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &topology.sink.netns, "iperf3", "-s", "-1"])
        .args(["-B", SINK_IP, "-p", &PORT.to_string()])
        .args(["-A", &server_core.to_string()])
        .stdout(std::fs::File::create(&server_log)?)
        .stderr(std::fs::File::create(server_log.with_extension("err"))?);
    let mut server = Spawned::spawn(command, "the iperf3 server")?;
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if !server.running() {
            bail!(
                "the iperf3 server exited: {}",
                read_tail(&server_log.with_extension("err"))
            );
        }
        if listening(&topology.sink.netns, PORT)? {
            break;
        }
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            bail!("the iperf3 server did not listen within {LISTEN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut command = Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            &topology.gen.netns,
            "iperf3",
            "-c",
            SINK_IP,
        ])
        .args(["-p", &PORT.to_string(), "-J", "-i", "0"])
        .args(["--connect-timeout", "3000"])
        .args(["-t", &format!("{seconds}"), "-P", &streams.to_string()])
        .args(["-A", &client_core.to_string()])
        .stdout(std::fs::File::create(&client_out)?)
        .stderr(std::fs::File::create(&client_err)?);
    let mut client = Spawned::spawn(command, "the iperf3 client")?;
    let finished = client.wait(
        Instant::now() + Duration::from_secs_f64(seconds + 20.0),
        stop,
    )?;
    let json = std::fs::read_to_string(&client_out).unwrap_or_default();
    let parsed = parse_iperf(&json);
    if !finished && parsed.is_err() {
        bail!(
            "iperf3 client failed: {}{}",
            read_tail(&client_err),
            parsed
                .err()
                .map(|e| format!(" ({e:#})"))
                .unwrap_or_default()
        );
    }
    let (seconds, sender_bps, receiver_bps, retransmits) = parsed?;
    // The one-off server exits after the test; give it a moment, then drop
    // stops it if it lingers.
    let _ = server.wait(Instant::now() + Duration::from_secs(3), stop);
    Ok(TcpResult {
        streams,
        seconds,
        gbps: receiver_bps / 1e9,
        sender_gbps: sender_bps / 1e9,
        retransmits,
    })
}

/// True when something in namespace `netns` listens on TCP `port` (IPv4).
fn listening(netns: &str, port: u16) -> Result<bool> {
    netns::run_in(netns, Duration::from_secs(5), move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/tcp")
            .context("reading /proc/thread-self/net/tcp")?;
        Ok(tcp_table_listens(&text, port))
    })
}

/// Whether /proc/net/tcp text shows a socket listening on `port`.
fn tcp_table_listens(text: &str, port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1).unwrap_or("");
        let state = fields.nth(1).unwrap_or("");
        local.ends_with(&wanted) && state == "0A"
    })
}

/// (seconds, sender bit/s, receiver bit/s, retransmits) from `iperf3 -J`
/// output, or the error iperf3 reported.
pub fn parse_iperf(json: &str) -> Result<(f64, f64, f64, Option<u64>)> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| anyhow!("iperf3 printed no JSON ({e})"))?;
    if let Some(error) = doc.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {error}");
    }
    let end = doc
        .get("end")
        .ok_or_else(|| anyhow!("iperf3 JSON has no \"end\""))?;
    let number =
        |section: &str, field: &str| -> Option<f64> { end.get(section)?.get(field)?.as_f64() };
    let sender = number("sum_sent", "bits_per_second")
        .ok_or_else(|| anyhow!("iperf3 JSON has no end.sum_sent.bits_per_second"))?;
    let receiver = number("sum_received", "bits_per_second")
        .ok_or_else(|| anyhow!("iperf3 JSON has no end.sum_received.bits_per_second"))?;
    let seconds = number("sum_received", "seconds")
        .or_else(|| number("sum_sent", "seconds"))
        .unwrap_or(0.0);
    let retransmits = end
        .get("sum_sent")
        .and_then(|s| s.get("retransmits"))
        .and_then(|r| r.as_u64());
    Ok((seconds, sender, receiver, retransmits))
}

fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_json_gives_rates_and_retransmits() {
        let json = r#"{"start": {}, "intervals": [],
            "end": {"sum_sent": {"seconds": 3.0, "bytes": 1, "bits_per_second": 2.5e9, "retransmits": 17},
                    "sum_received": {"seconds": 3.001, "bytes": 1, "bits_per_second": 2.4e9}}}"#;
        let (seconds, sent, received, retransmits) = parse_iperf(json).unwrap();
        assert_eq!((sent, received, retransmits), (2.5e9, 2.4e9, Some(17)));
        assert!((seconds - 3.001).abs() < 1e-9);
    }

    #[test]
    fn iperf_errors_are_reported() {
        let json = r#"{"start": {}, "end": {}, "error": "unable to connect to server: Connection refused"}"#;
        let error = parse_iperf(json).unwrap_err().to_string();
        assert!(error.contains("Connection refused"), "{error}");
        assert!(parse_iperf("").is_err());
        assert!(parse_iperf(r#"{"end": {}}"#).is_err());
    }

    #[test]
    fn listening_sockets_are_found_in_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0200530A:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
           1: 0200530A:1451 0100530A:A000 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(tcp_table_listens(text, 5201));
        assert!(!tcp_table_listens(text, 5202));
        let established_only = text.replace(" 0A ", " 01 ");
        assert!(!tcp_table_listens(&established_only, 5201));
    }
}
