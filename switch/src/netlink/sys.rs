//! The only `unsafe` of the netlink module: entering a network namespace with
//! `setns(2)` and the ethtool ioctl that turns offloads off.
//!
//! Kept small so that every unsafe block can be read against its `// SAFETY:`
//! comment in one sitting.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Runs `f` on a fresh thread that first joined the network namespace behind
/// `netns` (an open `/run/netns/NAME` or `/proc/PID/ns/net`).
///
/// Why a thread of its own: `setns(CLONE_NEWNET)` changes only the calling
/// thread, and this thread ends right after `f`, so no thread of the daemon
/// (least of all the main thread or a pinned poll worker) is ever left in a
/// container's namespace and nothing needs restoring. Sockets created by `f`
/// (netlink, ioctl) belong to that namespace.
pub(crate) fn in_netns<T, F>(netns: &File, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("sy-netns".into())
            .spawn_scoped(scope, move || {
                // SAFETY: setns only reads the descriptor, which `netns` keeps
                // open for the whole scope; it affects this thread alone.
                let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_SGSO: u32 = 0x24;

/// A legacy ethtool on/off setting (`struct ethtool_value` commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offload {
    /// TX checksum offload (`ethtool -K DEV tx`).
    TxChecksum,
    /// TCP segmentation offload (`tso`).
    Tso,
    /// Generic segmentation offload (`gso`).
    Gso,
}

impl Offload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Offload::TxChecksum => "tx-checksumming",
            Offload::Tso => "tcp-segmentation-offload",
            Offload::Gso => "generic-segmentation-offload",
        }
    }

    fn get_cmd(self) -> u32 {
        match self {
            Offload::TxChecksum => ETHTOOL_GTXCSUM,
            Offload::Tso => ETHTOOL_GTSO,
            Offload::Gso => ETHTOOL_GGSO,
        }
    }

    fn set_cmd(self) -> u32 {
        match self {
            Offload::TxChecksum => ETHTOOL_STXCSUM,
            Offload::Tso => ETHTOOL_STSO,
            Offload::Gso => ETHTOOL_SGSO,
        }
    }
}

/// `struct ethtool_value` from linux/ethtool.h.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union; padded to the
/// kernel's 40 bytes because the kernel copies the whole structure in.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut c_void,
    _pad: [u8; 16],
}

/// An `AF_INET` datagram socket, the handle the ethtool ioctl is issued on;
/// it acts on devices of the namespace the calling thread was in when it was
/// opened.
pub(crate) struct EthtoolSocket(OwnedFd);

impl EthtoolSocket {
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sets `offload` on `ifname` (`on`/off), then reads it back, because the
    /// kernel may silently keep a feature that another one depends on.
    pub(crate) fn set(&self, ifname: &str, offload: Offload, on: bool) -> io::Result<()> {
        self.call(ifname, offload.set_cmd(), u32::from(on))?;
        let now = self.call(ifname, offload.get_cmd(), 0)? != 0;
        if now != on {
            return Err(io::Error::other(format!(
                "{} still {} after setting it",
                offload.name(),
                if now { "on" } else { "off" }
            )));
        }
        Ok(())
    }

    fn call(&self, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut value = EthtoolValue { cmd, data };
        let mut req = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: (&mut value as *mut EthtoolValue).cast(),
            _pad: [0; 16],
        };
        for (dst, src) in req.name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        // SAFETY: `req` is a NUL-terminated ifreq whose data pointer refers to
        // `value`, an ethtool_value that outlives the call; the kernel reads
        // the ifreq and reads/writes only the 8 bytes of `value` for these
        // legacy commands.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<IfreqData>(), 40);
        assert_eq!(std::mem::size_of::<EthtoolValue>(), 8);
    }
}
