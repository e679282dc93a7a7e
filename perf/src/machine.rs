//! What the numbers were measured on: printed with every table and stored in
//! every JSON result, because a result without its machine cannot be compared.

use serde::{Deserialize, Serialize};

/// The machine a benchmark ran on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs available to this process (what `nproc` prints).
    pub nproc: usize,
    /// `model name` of the first CPU in /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// One-minute load average when the run started: above ~0.5 on a small
    /// machine, something else was running and the numbers are noisy.
    pub load_1m: f64,
}

impl Machine {
    /// Reads the machine description from /proc; unknown fields say "unknown".
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            kernel,
            load_1m: load_1m(),
        }
    }

    /// Prints the machine, and a warning when the load says others are busy.
    pub fn print(&self) {
        println!(
            "machine: {} CPU(s), {}, kernel {}, load {:.2}",
            self.nproc, self.cpu_model, self.kernel, self.load_1m
        );
        if self.load_1m > 0.5 {
            println!(
                "note: the machine is busy (1-min load {:.2}): expect noisy numbers",
                self.load_1m
            );
        }
    }
}

/// The current one-minute load average (0 when unreadable).
pub fn load_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}
