//! The few system calls the harness needs that `std` does not offer.
//!
//! Every `unsafe` block lives here, each with the reason it is sound, so the rest of
//! the harness is safe Rust.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Child;

/// Moves the calling thread into a network namespace: the one helper the
/// daemon, the benchmarks and the tests share.
pub use switchyard_drivers::sys::enter_netns as setns_net;

/// Sends `signal` to a child process this harness spawned and has not reaped yet.
///
/// Taking `&Child` (rather than a bare PID) ties the signal to a process we own: the
/// caller must only use it while `try_wait` has not yet returned `Some`, so the PID
/// cannot have been recycled for another process.
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

/// Sets a socket's receive buffer, beyond `net.core.rmem_max` (needs CAP_NET_ADMIN).
///
/// UDP bursts are counted for loss; a default-sized buffer would make the receiving
/// socket, not the switch, the place where datagrams are lost.
pub fn set_rcvbuf_force(sock: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "buffer size too large"))?;
    // SAFETY: the pointer and length describe `value`, a live c_int on our stack,
    // and the fd belongs to a socket that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Restricts the calling thread to CPU `cpu`; threads it starts afterwards
/// inherit that. With XPS mapping CPU `k` to a veth's transmit queue `k`, a
/// test picks the queue, hence the switch's worker, its traffic arrives on.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits, for which all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu out of range",
        ));
    }
    // SAFETY: `cpu` is within the set (checked above) and `set` is ours.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`,
    // a live cpu_set_t on our stack.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Tries to take an exclusive `flock` on `file` without blocking.
///
/// Returns `Ok(false)` when another holder has it. flock locks belong to the open file
/// description, so two threads of one process that open the file separately exclude
/// each other just as two processes do.
pub fn try_flock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock only takes an fd and flags; `file` is open for the whole call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// The calling process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// A thread of a daemon this harness started, held stopped with ptrace
/// (`PTRACE_SEIZE` + `PTRACE_INTERRUPT` stop that one thread, not its
/// process), until dropped. Tests use it to make a worker "stuck" at a
/// deterministic moment. Must be dropped on the thread that made it (the
/// tracer is a thread).
pub struct StoppedThread {
    tid: libc::pid_t,
}

/// Stops thread `tid` of process `pid` (a daemon this harness spawned: the
/// thread is looked up under `/proc/<pid>/task`, so nothing else is touched).
pub fn stop_thread(pid: u32, tid: u32) -> io::Result<StoppedThread> {
    if !std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("thread {tid} is not a thread of process {pid}"),
        ));
    }
    let tid = libc::pid_t::try_from(tid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "tid out of range"))?;
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_SEIZE with null address and data reads and writes no
    // memory of ours; it only makes this thread the tracer of `tid`.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, null, null) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let stopped = StoppedThread { tid };
    // SAFETY: as above; PTRACE_INTERRUPT asks the tracee to stop.
    if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, null, null) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: `status` is a live c_int the call writes once; `tid` is our tracee.
    if unsafe { libc::waitpid(tid, &mut status, libc::__WALL) } != tid {
        return Err(io::Error::last_os_error());
    }
    Ok(stopped)
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: null address and data; detaching resumes our stopped tracee.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, null, null) };
    }
}

/// The id of the thread named `name` (its `comm`) in process `pid`.
pub fn thread_named(pid: u32, name: &str) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })?
        .file_name()
        .to_str()?
        .parse()
        .ok()
}

/// Opens a raw IPv4 socket (`IPPROTO_RAW`, so `IP_HDRINCL`): each send is one
/// whole IP packet the caller built, routed and resolved by the kernel as any
/// other. The flood generator uses it to send datagrams from any source port
/// without a socket per port.
pub fn raw_ipv4_socket() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sends `packets` (whole IPv4 packets) on a [`raw_ipv4_socket`] to `dst` with
/// one `sendmmsg`; returns how many the kernel took (at most `packets.len()`,
/// at most 1024 per call).
pub fn send_ipv4_batch(
    sock: &impl AsRawFd,
    dst: std::net::Ipv4Addr,
    packets: &[&[u8]],
) -> io::Result<usize> {
    let packets = &packets[..packets.len().min(1024)];
    // SAFETY: sockaddr_in is plain data, for which all-zero is valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from(dst).to_be();
    let mut iovs: Vec<libc::iovec> = packets
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data, for which all-zero is valid.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: every mmsghdr points at `addr` and at one iovec of `iovs`, whose
    // buffers are the caller's live `packets`; the kernel only reads them, and
    // all of them outlive the call. `msgs.len()` is the vector's length.
    let rc = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}
