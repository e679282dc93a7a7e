//! The few system calls the benchmarks need that `std` does not offer.
//!
//! Every `unsafe` block of the crate lives here, each with the reason it is
//! sound, so the rest of the harness is safe Rust.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Moves the calling thread into a network namespace: the one helper the
/// daemon, the benchmarks and the tests share.
pub use switchyard_drivers::sys::enter_netns as setns_net;

/// Index of interface `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c_name` is a valid NUL-terminated string that lives across the call;
    // if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// Sends `signal` to a child process this program spawned and has not reaped.
///
/// Taking `&Child` (not a bare PID) ties the signal to a process we own: callers
/// use it only while `try_wait` has not returned `Some`, so the PID cannot have
/// been recycled for an unrelated process.
pub fn signal_child(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill has no memory-safety preconditions; `pid` is our own unreaped
    // child (see the doc comment), so no unrelated process is signalled.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the kernel send `signal` to the spawned child when this process's
/// spawning thread dies, so a benchmark killed with SIGKILL does not leave a
/// daemon polling on a core. Spawn from a thread that lives as long as the child.
pub fn kill_child_with_parent(command: &mut Command, signal: libc::c_int) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the forked child before exec; it calls only
    // prctl and getppid, both async-signal-safe, and touches no shared memory.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody will
            // signal us, so give up now (we were re-parented).
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// A raw `AF_PACKET` socket bound to one interface for sending whole Ethernet
/// frames (the learning frames). Bound with protocol 0 so the kernel never
/// queues received frames on it.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` of the calling thread's namespace.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // SAFETY: socket takes only integer arguments and returns a new fd or -1.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = 0;
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: the pointer and length describe `addr`, a live sockaddr_ll on our
        // stack; the fd is open.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }

    /// Sends one frame without blocking.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `frame`, which outlives the call;
        // the kernel only reads it.
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock both ends of a latency probe
/// read, so one-way latency is a plain difference. (`Instant` reads the same
/// clock but hides the value; a probe must carry it in the frame.)
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec on our stack; CLOCK_MONOTONIC
    // always exists on Linux, so the call only writes `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets the calling thread's timer slack (default 50 µs), so the pacing
/// generator's short sleeps end when asked instead of up to 50 µs late.
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the calling thread real-time priority `priority` (SCHED_FIFO), so
/// the sink, woken by poll(), preempts the generator that shares its core:
/// otherwise the latency it measures includes waiting for the generator's
/// time slice to end. The sink blocks in poll() whenever its ring is empty,
/// and the kernel's RT throttling bounds it anyway.
pub fn set_fifo_priority(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a live sched_param on our stack; pid 0 is the calling
    // thread; the kernel only reads `param`.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (USER_HZ).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// Restricts thread `tid` (0: the calling thread) to `cores`: the same helper
/// the daemon uses for its control threads.
pub use switchyard_drivers::sys::set_affinity;

/// The cores the calling thread may run on.
pub fn current_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, a live cpu_set_t the
    // kernel writes; pid 0 is the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `core` is below CPU_SETSIZE, so CPU_ISSET reads inside `set`.
        .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
        .collect())
}

/// CPUs online on this machine, whatever this thread's affinity (which
/// `std::thread::available_parallelism` follows).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}
