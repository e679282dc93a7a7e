//! The only `unsafe` of the netlink module: the ethtool ioctl that turns
//! offloads off. Entering a namespace is `switchyard_drivers::sys::in_netns`,
//! shared with the benchmarks and the tests.
//!
//! Kept small so that every unsafe block can be read against its `// SAFETY:`
//! comment in one sitting.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) use switchyard_drivers::sys::in_netns;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ifreq` with the `ifr_data` member of its union; padded to the
/// kernel's 40 bytes because the kernel copies the whole structure in.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut c_void,
    _pad: [u8; 16],
}

/// A device's offload features as `ETHTOOL_GFEATURES` reports them, one bit
/// per name of the `ETH_SS_FEATURES` string set.
struct Features {
    names: Vec<String>,
    /// Bits userspace may change (`hw_features`).
    available: Vec<u32>,
    /// Bits in effect.
    active: Vec<u32>,
}

fn bit(words: &[u32], i: usize) -> bool {
    words.get(i / 32).is_some_and(|w| w & (1 << (i % 32)) != 0)
}

/// An `AF_INET` datagram socket, the handle ethtool ioctls are issued on; it
/// acts on devices of the namespace the calling thread was in when it was
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

    /// Turns off every active feature of `ifname` whose name `off` selects,
    /// checks that they are off afterwards, and returns their names.
    ///
    /// By name through `ETHTOOL_SFEATURES` rather than the legacy
    /// `ETHTOOL_STSO`-style commands: those cover a fixed set of bits, and
    /// kernels keep adding members (6.18's `tx-tcp-accecn-segmentation`
    /// stays on after `ETHTOOL_STSO` 0).
    pub(crate) fn disable_features(
        &self,
        ifname: &str,
        off: impl Fn(&str) -> bool,
    ) -> io::Result<Vec<String>> {
        let before = self.features(ifname)?;
        let words = before.available.len();
        let mut valid = vec![0u32; words];
        let mut chosen = Vec::new();
        let mut fixed = Vec::new();
        for (i, name) in before.names.iter().enumerate() {
            if !off(name) || !bit(&before.active, i) {
                continue;
            }
            if !bit(&before.available, i) {
                fixed.push(name.clone());
                continue;
            }
            valid[i / 32] |= 1 << (i % 32);
            chosen.push(name.clone());
        }
        if !fixed.is_empty() {
            return Err(io::Error::other(format!(
                "fixed on, cannot be turned off: {}",
                fixed.join(", ")
            )));
        }
        if chosen.is_empty() {
            return Ok(chosen);
        }
        // struct ethtool_sfeatures: cmd, size, then {valid, requested} per word.
        let mut buf = vec![0u32; 2 + 2 * words];
        buf[0] = ETHTOOL_SFEATURES;
        buf[1] = words as u32;
        for (w, v) in valid.iter().enumerate() {
            buf[2 + 2 * w] = *v;
        }
        self.call(ifname, &mut buf)?;
        let after = self.features(ifname)?;
        let still: Vec<&str> = after
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| bit(&valid, *i) && bit(&after.active, *i))
            .map(|(_, n)| n.as_str())
            .collect();
        if !still.is_empty() {
            return Err(io::Error::other(format!(
                "still on after turning them off: {}",
                still.join(", ")
            )));
        }
        Ok(chosen)
    }

    fn features(&self, ifname: &str) -> io::Result<Features> {
        // struct ethtool_sset_info: cmd, reserved, u64 sset_mask, data[1].
        let mask = (1u64 << ETH_SS_FEATURES).to_ne_bytes();
        let mut info = [
            ETHTOOL_GSSET_INFO,
            0,
            u32::from_ne_bytes([mask[0], mask[1], mask[2], mask[3]]),
            u32::from_ne_bytes([mask[4], mask[5], mask[6], mask[7]]),
            0,
        ];
        self.call(ifname, &mut info)?;
        let count = info[4] as usize;
        if count == 0 || count > 4096 {
            return Err(io::Error::other(format!("{count} feature names reported")));
        }

        // struct ethtool_gstrings: cmd, string_set, len, then 32-byte names.
        let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        strings[0] = ETHTOOL_GSTRINGS;
        strings[1] = ETH_SS_FEATURES;
        strings[2] = count as u32;
        self.call(ifname, &mut strings)?;
        let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        let names = bytes
            .chunks(ETH_GSTRING_LEN)
            .map(|raw| {
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                String::from_utf8_lossy(&raw[..end]).into_owned()
            })
            .collect();

        // struct ethtool_gfeatures: cmd, size, then {available, requested,
        // active, never_changed} per word.
        let words = count.div_ceil(32);
        let mut buf = vec![0u32; 2 + 4 * words];
        buf[0] = ETHTOOL_GFEATURES;
        buf[1] = words as u32;
        self.call(ifname, &mut buf)?;
        let block = |w: usize, field: usize| buf[2 + 4 * w + field];
        Ok(Features {
            names,
            available: (0..words).map(|w| block(w, 0)).collect(),
            active: (0..words).map(|w| block(w, 2)).collect(),
        })
    }

    /// Issues the ethtool command whose structure is `buf` (command in
    /// `buf[0]`); every caller sizes `buf` for everything the kernel writes
    /// back for that command.
    fn call(&self, ifname: &str, buf: &mut [u32]) -> io::Result<()> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut req = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        for (dst, src) in req.name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        // SAFETY: `req` is a NUL-terminated ifreq whose data pointer refers to
        // `buf`, which outlives the call. The kernel reads the command header
        // from `buf` and writes back at most what the header's count asks for
        // (GSSET_INFO: one u32 per set bit of the mask, one here; GSTRINGS:
        // `len` names of 32 bytes; GFEATURES/SFEATURES: `size` blocks), and
        // the callers above size `buf` for exactly that.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The TX offloads that leave a frame unfinished for the device to complete:
/// partial checksums and not-yet-segmented super-frames. AF_XDP forwards the
/// frame as it is, so the container end must finish them itself.
pub(crate) fn unfinished_tx_offload(name: &str) -> bool {
    name.starts_with("tx-checksum-")
        || (name.starts_with("tx-") && name.ends_with("-segmentation"))
        || name == "tx-gso-list"
        || name == "tx-gso-partial"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<IfreqData>(), 40);
    }

    #[test]
    fn unfinished_offloads_are_the_tx_checksum_and_segmentation_ones() {
        for name in [
            "tx-checksum-ip-generic",
            "tx-checksum-ipv4",
            "tx-checksum-sctp",
            "tx-tcp-segmentation",
            "tx-tcp-accecn-segmentation",
            "tx-generic-segmentation",
            "tx-udp-segmentation",
            "tx-gso-list",
        ] {
            assert!(unfinished_tx_offload(name), "{name}");
        }
        for name in [
            "rx-checksum",
            "tx-scatter-gather",
            "rx-gro-list",
            "tx-vlan-hw-insert",
        ] {
            assert!(!unfinished_tx_offload(name), "{name}");
        }
    }
}
