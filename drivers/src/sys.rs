//! Small system queries the daemon needs before touching interfaces: interface
//! lookup and the capabilities AF_XDP requires. Read-only; no side effects.

use std::ffi::CString;

/// Index of a network interface, or `None` if it does not exist.
pub fn interface_index(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    #[allow(unsafe_code)]
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Linux capabilities AF_XDP needs, by bit number (see capabilities(7)).
const NEEDED_CAPS: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW")];
/// Either of these lets us load the XDP program.
const BPF_CAPS: &[(u32, &str)] = &[(39, "CAP_BPF"), (21, "CAP_SYS_ADMIN")];

/// Names of capabilities the process lacks for AF_XDP (empty when all are there).
/// Reads the effective set from /proc/self/status.
pub fn missing_capabilities() -> Vec<&'static str> {
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| effective & (1u64 << bit) != 0;
    let mut missing: Vec<&'static str> = NEEDED_CAPS
        .iter()
        .filter(|(bit, _)| !has(*bit))
        .map(|(_, name)| *name)
        .collect();
    if !BPF_CAPS.iter().any(|(bit, _)| has(*bit)) {
        missing.push("CAP_BPF (or CAP_SYS_ADMIN)");
    }
    missing
}

/// Number of receive queues an interface has (from sysfs), at least 1.
pub fn rx_queue_count(name: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// Sleeps until one of `fds` is readable or `timeout` passes (ppoll, microsecond
/// resolution). The idle back-off's last step: an AF_XDP socket becomes readable
/// when its RX ring has frames, so an idle worker wakes as soon as traffic comes.
pub fn wait_readable(fds: &mut [libc::pollfd], timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd
    // structs and `ts` outlives the call; a null sigmask leaves signals as they are.
    #[allow(unsafe_code)]
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        );
    }
}

/// CPU time (user + system) the calling thread has used, from
/// /proc/thread-self/stat; for reporting a worker's CPU use.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(std::time::Duration::from_millis(
        (utime + stime) * 1000 / ticks,
    ))
}

/// `SOL_XDP` socket option level.
const SOL_XDP: libc::c_int = 283;

/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): frames a copy-mode socket transmits
/// per `sendto` at most (32 by default).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Raises how many frames one TX kick of a copy-mode AF_XDP socket may send,
/// so a whole burst leaves with one system call instead of one per 32
/// frames. Kernels before 6.17 do not know the option (`ENOPROTOOPT`).
pub fn set_xdp_tx_budget(fd: std::os::fd::RawFd, frames: u32) -> std::io::Result<()> {
    // SAFETY: `fd` is a socket descriptor the caller holds open; the option
    // value is a live u32 whose size is passed along, and the kernel only
    // reads it.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&frames as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
