//! Switchyard's own XDP program: one program, loaded and verified once per
//! daemon, attached to every port's interface, steering each frame into the
//! AF_XDP socket bound to its (interface, queue).
//!
//! libxdp's default program is loaded, verified and attached once per
//! interface (about 15 ms each here), and comes with a map per interface. With
//! a thousand container ports that is most of an attach. Here one program and
//! two maps serve every port: `slots` maps (ifindex << 32 | queue) to a slot,
//! and the XSKMAP `sockets` maps a slot to a socket. Attaching a port is one
//! netlink call plus two map updates.
//!
//! The program is a handful of instructions assembled here rather than a
//! compiled object: no BPF toolchain at build time, no ELF, no bpffs. Frames
//! whose (interface, queue) has no socket yet are passed to the kernel stack
//! (`bpf_redirect_map`'s fallback action), as libxdp's program does.
//!
//! Detaching is by program: the daemon removes only its own program from an
//! interface (the kernel checks the program it replaces), never
//! `xdp_dispatcher` or another application's program.

use super::AttachMode;
use crate::PortError;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// The program's name as the kernel shows it (`bpftool prog`, `ip link`): how
/// a later run recognises a program a crashed run left behind.
pub const PROGRAM_NAME: &str = "switchyard_xsk";

/// Kernel UAPI values (linux/bpf.h, linux/if_link.h).
mod uapi {
    pub const BPF_MAP_TYPE_HASH: u32 = 1;
    pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
    pub const BPF_PROG_TYPE_XDP: u32 = 6;
    pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
    pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    pub const XDP_PASS: i32 = 2;
    pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
    pub const HELPER_REDIRECT_MAP: i32 = 51;
    pub const BPF_PSEUDO_MAP_FD: u8 = 1;
}

/// One BPF instruction, laid out as the kernel's `struct bpf_insn`
/// (8 bytes: opcode, dst/src register nibbles, offset, immediate).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The program: key = ingress_ifindex << 32 | rx_queue_index; slot =
/// slots[key] or pass; redirect into sockets[slot], passing on a miss.
fn program(slots_fd: RawFd, sockets_fd: RawFd) -> Vec<Insn> {
    use uapi::*;
    // Register numbers: r0 return, r1-r5 arguments, r6 saved context, r10 frame pointer.
    vec![
        insn(0xbf, 6, 1, 0, 0),                          // r6 = r1 (struct xdp_md *)
        insn(0x61, 2, 6, 12, 0),                         // r2 = ctx->ingress_ifindex
        insn(0x67, 2, 0, 0, 32),                         // r2 <<= 32
        insn(0x61, 3, 6, 16, 0),                         // r3 = ctx->rx_queue_index
        insn(0x4f, 2, 3, 0, 0),                          // r2 |= r3
        insn(0x7b, 10, 2, -8, 0),                        // *(u64 *)(r10 - 8) = r2
        insn(0xbf, 2, 10, 0, 0),                         // r2 = r10
        insn(0x07, 2, 0, 0, -8),                         // r2 += -8 (&key)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, slots_fd),   // r1 = &slots
        insn(0x00, 0, 0, 0, 0),                          //   (upper half of the 64-bit load)
        insn(0x85, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),     // r0 = lookup(slots, &key)
        insn(0x15, 0, 0, 6, 0),                          // if r0 == 0 goto pass
        insn(0x61, 2, 0, 0, 0),                          // r2 = *(u32 *)r0 (slot)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, sockets_fd), // r1 = &sockets
        insn(0x00, 0, 0, 0, 0),                          //   (upper half)
        insn(0xb7, 3, 0, 0, XDP_PASS),                   // r3 = XDP_PASS (action on a miss)
        insn(0x85, 0, 0, 0, HELPER_REDIRECT_MAP),        // r0 = redirect_map(sockets, slot, PASS)
        insn(0x95, 0, 0, 0, 0),                          // exit
        insn(0xb7, 0, 0, 0, XDP_PASS),                   // pass: r0 = XDP_PASS
        insn(0x95, 0, 0, 0, 0),                          // exit
    ]
}

/// Which slot each bound (interface, queue) has, and the free slots.
#[derive(Debug, Default)]
struct Slots {
    by_key: HashMap<u64, u32>,
    free: Vec<u32>,
    next: u32,
}

/// The loaded program and its maps, shared by the control thread and the
/// workers (slot bookkeeping is behind a mutex: control path only).
#[derive(Debug)]
pub struct Redirect {
    program: OwnedFd,
    program_id: u32,
    slots_map: OwnedFd,
    sockets_map: OwnedFd,
    capacity: u32,
    slots: Mutex<Slots>,
}

fn os_error(what: &str, rc: i32) -> PortError {
    let errno = if rc < 0 {
        -rc
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    let error = std::io::Error::from_raw_os_error(errno);
    let hint = if errno == libc::EPERM {
        " (needs root, or CAP_BPF and CAP_NET_ADMIN)"
    } else {
        ""
    };
    PortError::XdpProgram {
        interface: "-".into(),
        message: format!("{what}: {error}{hint}"),
    }
}

fn key(ifindex: u32, queue: u32) -> u64 {
    (u64::from(ifindex) << 32) | u64::from(queue)
}

impl Redirect {
    /// Creates the maps (room for `capacity` sockets) and loads the program.
    pub fn load(capacity: u32) -> Result<Self, PortError> {
        let slots_map = create_map(uapi::BPF_MAP_TYPE_HASH, "sy_slots", 8, 4, capacity)?;
        let sockets_map = create_map(uapi::BPF_MAP_TYPE_XSKMAP, "sy_sockets", 4, 4, capacity)?;
        let insns = program(slots_map.as_raw_fd(), sockets_map.as_raw_fd());
        let name = std::ffi::CString::new(PROGRAM_NAME).expect("no NUL in the name");
        let license = c"GPL";
        // SAFETY: `Insn` has the layout of `struct bpf_insn` (repr(C), 8 bytes,
        // same field order), the vector outlives the call, and a null options
        // pointer asks for the defaults.
        #[allow(unsafe_code)]
        let fd = unsafe {
            libbpf_sys::bpf_prog_load(
                uapi::BPF_PROG_TYPE_XDP,
                name.as_ptr(),
                license.as_ptr(),
                insns.as_ptr().cast::<libbpf_sys::bpf_insn>(),
                insns.len() as libbpf_sys::size_t,
                std::ptr::null_mut(),
            )
        };
        if fd < 0 {
            return Err(os_error("loading the XDP redirect program", fd));
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        #[allow(unsafe_code)]
        let program = unsafe { OwnedFd::from_raw_fd(fd) };
        let program_id = program_id(program.as_raw_fd()).unwrap_or(0);
        Ok(Redirect {
            program,
            program_id,
            slots_map,
            sockets_map,
            capacity,
            slots: Mutex::new(Slots::default()),
        })
    }

    /// The kernel's id of the program (what `ip link` shows on an interface).
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// Attaches the program to `ifindex` in `mode`; fails (EBUSY/EEXIST) if any
    /// program is attached there already, so nothing foreign is replaced. The
    /// error carries what an operator can do where the cause is not obvious.
    pub fn attach(&self, ifindex: u32, mode: AttachMode) -> Result<(), AttachError> {
        let flags = uapi::XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flags(mode);
        // SAFETY: plain libbpf call on descriptors we own; null opts allowed.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libbpf_sys::bpf_xdp_attach(
                ifindex as i32,
                self.program.as_raw_fd(),
                flags,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            return Err(attach_error(-rc, mode));
        }
        Ok(())
    }

    /// Detaches the program from `ifindex` if, and only if, it is ours (the
    /// kernel compares it with the attached program atomically).
    pub fn detach(&self, ifindex: u32, mode: AttachMode) -> std::io::Result<()> {
        // libbpf rejects option structs with non-zero bytes it does not know,
        // padding included: start from zeroes.
        // SAFETY: plain old data for which all-zero is valid.
        #[allow(unsafe_code)]
        let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t;
        opts.old_prog_fd = self.program.as_raw_fd();
        // SAFETY: `opts` is initialised and outlives the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, mode_flags(mode), &opts) };
        if rc < 0 {
            return Err(std::io::Error::from_raw_os_error(-rc));
        }
        Ok(())
    }

    /// Steers (ifindex, queue) into the AF_XDP socket `socket_fd`.
    pub fn insert(&self, ifindex: u32, queue: u32, socket_fd: RawFd) -> std::io::Result<()> {
        let key = key(ifindex, queue);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match slots.by_key.get(&key) {
            Some(slot) => *slot,
            None => match slots.free.pop() {
                Some(slot) => slot,
                None if slots.next < self.capacity => {
                    slots.next += 1;
                    slots.next - 1
                }
                None => {
                    return Err(std::io::Error::other(format!(
                        "the XDP socket map is full ({} sockets)",
                        self.capacity
                    )))
                }
            },
        };
        let fd = socket_fd as u32;
        // Socket first, then the slot the program looks up: a frame never
        // finds a slot without a socket (it would be dropped, not passed).
        update(&self.sockets_map, &slot.to_ne_bytes(), &fd.to_ne_bytes())?;
        if let Err(error) = update(&self.slots_map, &key.to_ne_bytes(), &slot.to_ne_bytes()) {
            slots.free.push(slot);
            return Err(error);
        }
        slots.by_key.insert(key, slot);
        Ok(())
    }

    /// Stops steering (ifindex, queue) and frees its slot. The kernel removes a
    /// closed socket from the XSKMAP by itself; this removes the lookup.
    pub fn remove(&self, ifindex: u32, queue: u32) {
        let key = key(ifindex, queue);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.by_key.remove(&key) {
            // SAFETY: plain libbpf calls on maps we own with live key buffers.
            #[allow(unsafe_code)]
            unsafe {
                libbpf_sys::bpf_map_delete_elem(
                    self.slots_map.as_raw_fd(),
                    key.to_ne_bytes().as_ptr().cast(),
                );
                libbpf_sys::bpf_map_delete_elem(
                    self.sockets_map.as_raw_fd(),
                    slot.to_ne_bytes().as_ptr().cast(),
                );
            }
            slots.free.push(slot);
        }
    }
}

/// Why the kernel refused to attach the program: the errno (callers decide on
/// it, e.g. EBUSY: something is attached already) and, in its message, what an
/// operator can do about the causes that are not obvious from the errno alone.
#[derive(Debug)]
pub struct AttachError {
    /// The kernel's error number.
    pub errno: i32,
    mode: AttachMode,
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            std::io::Error::from_raw_os_error(self.errno),
            attach_hint(self.errno, self.mode)
        )
    }
}

impl std::error::Error for AttachError {}

fn attach_error(errno: i32, mode: AttachMode) -> AttachError {
    AttachError { errno, mode }
}

/// What an operator can do about an attach errno whose cause is not obvious.
fn attach_hint(errno: i32, mode: AttachMode) -> &'static str {
    match (errno, mode) {
        (libc::ERANGE, AttachMode::Native) => {
            " (the MTU is too large for native XDP: on a veth the peer's MTU must stay below \
             about 3500 bytes; lower it or use generic mode)"
        }
        (libc::EOPNOTSUPP, AttachMode::Native) => {
            " (the driver has no native XDP; use generic mode)"
        }
        (libc::EBUSY | libc::EEXIST, _) => " (another XDP program is attached to this interface)",
        (libc::EPERM, _) => " (needs root, or CAP_NET_ADMIN and CAP_BPF)",
        _ => "",
    }
}

fn mode_flags(mode: AttachMode) -> u32 {
    match mode {
        AttachMode::Native => uapi::XDP_FLAGS_DRV_MODE,
        AttachMode::Generic => uapi::XDP_FLAGS_SKB_MODE,
    }
}

fn create_map(
    kind: u32,
    name: &str,
    key_size: u32,
    value_size: u32,
    entries: u32,
) -> Result<OwnedFd, PortError> {
    let cname = std::ffi::CString::new(name).expect("no NUL in the name");
    // SAFETY: plain libbpf call; the name outlives it; null opts for defaults.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libbpf_sys::bpf_map_create(
            kind,
            cname.as_ptr(),
            key_size,
            value_size,
            entries,
            std::ptr::null(),
        )
    };
    if fd < 0 {
        return Err(os_error(&format!("creating the BPF map {name}"), fd));
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn update(map: &OwnedFd, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    // SAFETY: key and value buffers are live and sized as the map was created.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(
            map.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_ptr().cast(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    Ok(())
}

fn program_id(fd: RawFd) -> Option<u32> {
    // SAFETY: bpf_prog_info is plain old data; all-zero is the documented start.
    #[allow(unsafe_code)]
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for writes and sized as `len` says.
    #[allow(unsafe_code)]
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    (rc == 0).then_some(info.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(
            std::mem::size_of::<Insn>(),
            std::mem::size_of::<libbpf_sys::bpf_insn>()
        );
        let i = insn(0xbf, 6, 1, 0, 0);
        assert_eq!(i.regs, 0x16);
    }

    #[test]
    fn the_miss_branch_lands_on_pass() {
        let prog = program(3, 4);
        let branch = prog.iter().position(|i| i.code == 0x15).unwrap();
        let target = branch + 1 + prog[branch].off as usize;
        assert_eq!(prog[target].code, 0xb7);
        assert_eq!(prog[target].imm, uapi::XDP_PASS);
        assert_eq!(prog[target + 1].code, 0x95);
    }

    /// Loading needs CAP_BPF; the verifier accepting the program is the test.
    #[test]
    fn the_verifier_accepts_the_program() {
        if !crate::sys::missing_capabilities().is_empty() {
            eprintln!("SKIP: needs root");
            assert!(std::env::var("CI").is_err(), "CI runs as root");
            return;
        }
        let redirect = Redirect::load(16).expect("program loads");
        assert!(redirect.program_id() > 0);
    }
}
