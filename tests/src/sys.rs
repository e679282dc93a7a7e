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
