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

/// The MAC address of interface `name` (from sysfs), if it exists and has one.
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MTU of interface `name` (from sysfs), if it exists.
pub fn interface_mtu(name: &str) -> Option<u32> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
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
    cpu_time_from("/proc/thread-self/stat")
}

/// CPU time (user + system) thread `tid` of this process has used, read by
/// another thread (the daemon's control thread reads its workers' this way,
/// so a worker never formats or parses anything for its stats).
pub fn thread_cpu_time_of(tid: u32) -> Option<std::time::Duration> {
    cpu_time_from(&format!("/proc/self/task/{tid}/stat"))
}

/// The calling thread's kernel thread id (from the /proc/thread-self link),
/// for [`thread_cpu_time_of`].
pub fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

fn cpu_time_from(path: &str) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
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

/// An epoll set of idle sockets: a worker's idle ports leave its polled set and
/// wait here until they receive (as VPP's adaptive RX mode and OVS's non-PMD
/// ports do), so a worker with a thousand idle ports polls only the busy ones.
///
/// Sockets are armed one-shot: the kernel reports a socket once and then
/// disarms it, so waking a port costs no system call and a port that is being
/// polled is never reported again until it is re-armed (one `epoll_ctl` when it
/// goes idle).
#[derive(Debug)]
pub struct IdleSet {
    epoll: std::os::fd::OwnedFd,
    /// Descriptors ever added (re-arming uses MOD, the first time ADD).
    known: std::collections::HashSet<std::os::fd::RawFd>,
}

impl IdleSet {
    /// A new, empty set.
    pub fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain system call; a non-negative result is a descriptor we now own.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(IdleSet {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            #[allow(unsafe_code)]
            epoll: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            known: std::collections::HashSet::new(),
        })
    }

    /// Arms `fd` to be reported once, with `token`, when it becomes readable.
    /// One system call: on the idle transition, never per packet.
    pub fn arm(&mut self, fd: std::os::fd::RawFd, token: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        let op = if self.known.contains(&fd) {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        // SAFETY: `event` is a live epoll_event; the kernel only reads it.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.known.insert(fd);
        Ok(())
    }

    /// Watches `fd` for as long as the set lives (level-triggered, not one-shot):
    /// for a doorbell such as an [`EventFd`], whose owner drains it when its
    /// `token` is reported.
    pub fn watch(&mut self, fd: std::os::fd::RawFd, token: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` is a live epoll_event; the kernel only reads it.
        #[allow(unsafe_code)]
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Forgets `fd` (its socket is closing).
    pub fn remove(&mut self, fd: std::os::fd::RawFd) {
        use std::os::fd::AsRawFd;
        if self.known.remove(&fd) {
            // SAFETY: plain system call; a null event is allowed for DEL.
            #[allow(unsafe_code)]
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                );
            }
        }
    }

    /// Waits up to `timeout` (zero: just looks) for armed descriptors to become
    /// readable; writes their tokens into `tokens` (cleared first, at most its
    /// capacity). Returns how many.
    pub fn wait(&self, tokens: &mut Vec<u64>, timeout: std::time::Duration) -> usize {
        use std::os::fd::AsRawFd;
        const MAX_EVENTS: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `events` is a live array of MAX_EVENTS entries the kernel
        // writes into; `ts` outlives the call; a null sigmask keeps signals as
        // they are.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::epoll_pwait2(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                &ts,
                std::ptr::null(),
            )
        };
        tokens.clear();
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        tokens.extend(events[..n].iter().map(|e| e.u64));
        n
    }
}

/// A doorbell one thread rings to wake another that sleeps in an [`IdleSet`]
/// (an `eventfd`, non-blocking). Ringing and draining are one system call each,
/// made only around sleeps, never per packet.
#[derive(Debug)]
pub struct EventFd {
    fd: std::os::fd::OwnedFd,
}

impl EventFd {
    /// A new doorbell, not rung.
    pub fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain system call; a non-negative result is a descriptor we now own.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EventFd {
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            #[allow(unsafe_code)]
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor to watch (readable while rung).
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Rings: the descriptor becomes readable until drained.
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64; a full counter (EAGAIN) means
        // it is rung already, which is all a ring has to achieve.
        #[allow(unsafe_code)]
        unsafe {
            libc::write(
                self.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Drains the rings so far (the descriptor stops being readable).
    pub fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (not rung) is fine.
        #[allow(unsafe_code)]
        unsafe {
            libc::read(
                self.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

/// Moves the *calling thread* into the network namespace behind `ns` (an open
/// `/run/netns/NAME` or `/proc/PID/ns/net`). Only this thread changes
/// namespace; prefer [`in_netns`], which never leaves a thread behind in one.
/// The daemon, the benchmarks and the tests all enter namespaces through this
/// one function.
pub fn enter_netns(ns: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns only reads the descriptor, which `ns` keeps open for the
    // call, and CLONE_NEWNET affects the calling thread alone.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `f` on a fresh thread that first joined the network namespace behind
/// `netns`, and returns its result.
///
/// Why a thread of its own: `setns(CLONE_NEWNET)` changes only the calling
/// thread, and this thread ends right after `f`, so no other thread (least of
/// all a pinned poll worker) is ever left in a container's namespace and nothing
/// needs restoring. Sockets created by `f` belong to that namespace.
pub fn in_netns<T, F>(netns: &std::fs::File, f: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("sy-netns".into())
            .spawn_scoped(scope, move || {
                enter_netns(netns)?;
                Ok(f())
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Restricts thread `tid` (0: the calling thread) to `cores`. The daemon keeps
/// its control threads off the poll workers' cores this way: a busy-polling
/// worker that shares its core with any other runnable thread loses whole
/// scheduler slices (milliseconds) to it, and frames wait that long.
pub fn set_affinity(tid: libc::pid_t, cores: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    #[allow(unsafe_code)]
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "core out of range",
            ));
        }
        // SAFETY: `core` is below CPU_SETSIZE (checked above), so CPU_SET
        // writes inside `set`.
        #[allow(unsafe_code)]
        unsafe {
            libc::CPU_SET(core, &mut set)
        };
    }
    // SAFETY: the pointer and size describe `set`, a live cpu_set_t the kernel
    // only reads.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
