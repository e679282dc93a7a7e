//! CPU accounting from /proc: the daemon's CPU use, and how much CPU other
//! processes (and the hypervisor) took while a point was measured.
//!
//! The Linux bridge works in softirq, which preempts every user thread; the
//! Switchyard worker is a user thread. A compile running beside a benchmark
//! therefore slows Switchyard and leaves the bridge alone, so every point
//! records the "foreign" CPU (all user and system time minus ours and the
//! daemon's) and the steal time, and the report flags noisy points.

use serde::{Deserialize, Serialize};

/// Clock ticks from the aggregate `cpu` line of /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemTicks {
    /// user + nice: time in user space, all processes.
    pub user: u64,
    /// system: time in the kernel on behalf of processes (not irq/softirq).
    pub system: u64,
    /// Time the hypervisor ran something else on our vCPUs.
    pub steal: u64,
}

impl SystemTicks {
    /// Reads /proc/stat.
    pub fn read() -> Option<Self> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }
}

/// Parses the aggregate `cpu` line of /proc/stat (user nice system idle
/// iowait irq softirq steal ...).
pub fn parse_proc_stat(text: &str) -> Option<SystemTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(SystemTicks {
        user: fields.first()? + fields.get(1)?,
        system: *fields.get(2)?,
        steal: fields.get(7).copied().unwrap_or(0),
    })
}

/// Ticks the CPUs in `cores` were *not* busy (idle, iowait, steal), summed,
/// from /proc/stat text; `None` when a core has no line.
///
/// Why not add up user, system and softirq instead: those are sampled by
/// the timer tick, and a tickless kernel (NO_HZ) often wakes for a burst of
/// softirq work (the bridge's, behind RPS) and goes back to sleep before any
/// tick lands, so that work goes uncounted. The idle figure the kernel
/// reports is measured from idle entry and exit times, the running idle
/// period included, so busy = elapsed - idle is right.
pub fn parse_cores_not_busy(text: &str, cores: &[usize]) -> Option<u64> {
    let mut total = 0;
    for &core in cores {
        let label = format!("cpu{core}");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        // user nice system idle iowait irq softirq steal
        total += f.get(3)? + f.get(4)? + f.get(7).copied().unwrap_or(0);
    }
    Some(total)
}

/// User and system ticks of one process (all its threads), from the text
/// of `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessTicks {
    /// utime.
    pub user: u64,
    /// stime.
    pub system: u64,
}

impl ProcessTicks {
    /// user + system.
    pub fn total(&self) -> u64 {
        self.user + self.system
    }

    /// Reads `/proc/<pid>/stat` (`None` for "self" errors or a gone process).
    pub fn read(pid: &str) -> Option<Self> {
        parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// utime and stime from `/proc/<pid>/stat` text. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted from the last ')'.
pub fn parse_pid_stat(text: &str) -> Option<ProcessTicks> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3 ... utime field 14, stime field 15.
    let user = fields.nth(11)?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(ProcessTicks { user, system })
}

/// Ticks per second of every figure above (USER_HZ).
pub fn ticks_per_second() -> f64 {
    crate::sys::clock_ticks_per_second() as f64
}

/// `ticks` over `seconds` as % of one core.
pub fn pct_of_core(ticks: u64, seconds: f64) -> f64 {
    ticks as f64 / ticks_per_second() / seconds.max(1e-9) * 100.0
}

/// A snapshot to measure others' CPU use against.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    taken: std::time::Instant,
    system: Option<SystemTicks>,
    /// Idle (and iowait, steal) ticks of the switch cores.
    switch_not_busy: Option<u64>,
    /// How many switch cores.
    switch_cores: usize,
    /// Idle (and iowait, steal) ticks of every online core.
    all_not_busy: Option<u64>,
    /// How many online cores.
    all_cores: usize,
    own: Option<ProcessTicks>,
    daemon: Option<ProcessTicks>,
}

/// CPU others used between two snapshots.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Interference {
    /// User and system time of processes other than this harness and the
    /// daemon, % of one core. (A lower bound: softirq work done in our
    /// threads' system calls counts as ours.)
    pub foreign_pct: f64,
    /// Steal time, % of one core.
    pub steal_pct: f64,
}

impl Interference {
    /// Whether others took enough CPU (more than 10 % of a core) to distort a point.
    pub fn is_noisy(&self) -> bool {
        self.foreign_pct + self.steal_pct > NOISY_PCT
    }
}

/// Share of a core others may take before a point is flagged.
pub const NOISY_PCT: f64 = 10.0;

impl Snapshot {
    /// Takes a snapshot; `daemon_pid` is the daemon under test, if any, and
    /// `switch_cores` the cores the dataplane works on.
    pub fn take(daemon_pid: Option<u32>, switch_cores: &[usize]) -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let all: Vec<usize> = (0..crate::sys::online_cpus()).collect();
        Snapshot {
            taken: std::time::Instant::now(),
            system: parse_proc_stat(&stat),
            switch_not_busy: parse_cores_not_busy(&stat, switch_cores),
            switch_cores: switch_cores.len(),
            all_not_busy: parse_cores_not_busy(&stat, &all),
            all_cores: all.len(),
            own: ProcessTicks::read("self"),
            daemon: daemon_pid.and_then(|pid| ProcessTicks::read(&pid.to_string())),
        }
    }

    /// What others used from `self` to `later`, over `seconds`.
    pub fn interference(&self, later: &Snapshot, seconds: f64) -> Option<Interference> {
        let (a, b) = (self.system?, later.system?);
        let own = later.own?.total().saturating_sub(self.own?.total());
        let daemon = match (self.daemon, later.daemon) {
            (Some(x), Some(y)) => y.total().saturating_sub(x.total()),
            _ => 0,
        };
        let all = (b.user + b.system).saturating_sub(a.user + a.system);
        let foreign = all.saturating_sub(own + daemon);
        Some(Interference {
            foreign_pct: pct_of_core(foreign, seconds),
            steal_pct: pct_of_core(b.steal.saturating_sub(a.steal), seconds),
        })
    }

    /// How busy the switch cores were from `self` to `later` (all work on
    /// them: a dataplane thread, softirq, anything else), % of one core.
    pub fn switch_busy_pct(&self, later: &Snapshot) -> Option<f64> {
        busy_pct(
            self.switch_cores,
            later.taken.duration_since(self.taken).as_secs_f64(),
            self.switch_not_busy?,
            later.switch_not_busy?,
        )
    }

    /// How busy every online core was from `self` to `later` (the
    /// generator, the dataplane, the sink, softirq and anything else), % of
    /// one core: with the delivered frames, CPU time per packet.
    pub fn all_busy_pct(&self, later: &Snapshot) -> Option<f64> {
        busy_pct(
            self.all_cores,
            later.taken.duration_since(self.taken).as_secs_f64(),
            self.all_not_busy?,
            later.all_not_busy?,
        )
    }

    /// The daemon's CPU use (user + system) from `self` to `later`, % of one core.
    pub fn daemon_pct(&self, later: &Snapshot, seconds: f64) -> Option<f64> {
        let ticks = later.daemon?.total().saturating_sub(self.daemon?.total());
        Some(pct_of_core(ticks, seconds))
    }
}

/// Busy share of `cores` cores over `seconds`, % of one core, from their
/// not-busy ticks before and after.
fn busy_pct(cores: usize, seconds: f64, not_busy_before: u64, not_busy_after: u64) -> Option<f64> {
    let not_busy = not_busy_after.saturating_sub(not_busy_before) as f64 / ticks_per_second();
    let busy = (cores as f64 * seconds - not_busy).max(0.0);
    (seconds > 0.0).then(|| busy / seconds * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_user_and_steal() {
        let text = "cpu  128433 13218 31314 286397 1723 0 10236 10483 0 0\n\
                    cpu0 64000 6000 15000 143000 800 0 5000 5000 0 0\nintr 1 2 3\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(SystemTicks {
                user: 141_651,
                system: 31_314,
                steal: 10_483
            })
        );
        assert_eq!(parse_proc_stat("intr 1"), None);
    }

    #[test]
    fn idle_time_of_chosen_cores() {
        let text = "cpu  9 9 9 9 9 9 9 9 0 0\n\
                    cpu0 1 2 3 100 5 6 7 8 0 0\n\
                    cpu1 10 20 30 1000 50 60 70 80 0 0\n";
        assert_eq!(parse_cores_not_busy(text, &[0]), Some(100 + 5 + 8));
        assert_eq!(parse_cores_not_busy(text, &[1]), Some(1000 + 50 + 80));
        assert_eq!(parse_cores_not_busy(text, &[0, 1]), Some(113 + 1130));
        assert_eq!(parse_cores_not_busy(text, &[2]), None);
    }

    #[test]
    fn pid_stat_gives_utime_and_stime() {
        // A name with a space and a parenthesis, as a thread name may have.
        let stat = "4242 (switch yard)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 25 0 0 20 0 3 0 12345 1000000 500 18446744073709551615";
        let ticks = parse_pid_stat(stat).unwrap();
        assert_eq!((ticks.user, ticks.system, ticks.total()), (150, 25, 175));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    #[test]
    fn interference_subtracts_our_own_and_the_daemons_time() {
        let hz = ticks_per_second();
        let start = std::time::Instant::now();
        let at = |user: u64, steal: u64, own: u64, daemon: u64| Snapshot {
            // One second apart, as the interference figures below assume.
            taken: start + std::time::Duration::from_secs(u64::from(user > 0)),
            system: Some(SystemTicks {
                user,
                system: 0,
                steal,
            }),
            // One switch core, idle for 0.25 s of the second.
            switch_not_busy: Some(if user > 0 { hz as u64 / 4 } else { 0 }),
            switch_cores: 1,
            // Two cores, idle for 0.5 s of the second between them.
            all_not_busy: Some(if user > 0 { hz as u64 / 2 } else { 0 }),
            all_cores: 2,
            own: Some(ProcessTicks {
                user: own,
                system: 0,
            }),
            daemon: Some(ProcessTicks {
                user: daemon,
                system: 0,
            }),
        };
        let before = at(0, 0, 0, 0);
        // One second: 1.5 cores of user time, of which 0.5 ours and 0.5 the
        // daemon's: 0.5 foreign. A tenth of a core stolen.
        let h = hz as u64;
        let after = at(3 * h / 2, h / 10, h / 2, h / 2);
        let i = before.interference(&after, 1.0).unwrap();
        assert!((i.foreign_pct - 50.0).abs() < 1.5, "{i:?}");
        assert!((i.steal_pct - 10.0).abs() < 1.5, "{i:?}");
        assert!(i.is_noisy());
        assert!((before.daemon_pct(&after, 1.0).unwrap() - 50.0).abs() < 1.5);
        assert!((before.switch_busy_pct(&after).unwrap() - 75.0).abs() < 1.5);
        assert!((before.all_busy_pct(&after).unwrap() - 150.0).abs() < 1.5);
        assert!(!Interference::default().is_noisy());
    }
}
