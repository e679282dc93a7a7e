//! Finding XDP programs on an interface and removing the one a crashed run of
//! Switchyard left behind.
//!
//! A crashed run leaves its program ([`super::redirect::PROGRAM_NAME`])
//! attached; the next start removes it before attaching its own. Any other XDP
//! program (libxdp's `xsk_def_prog` or `xdp_dispatcher` of another AF_XDP
//! application, a firewall, ...) belongs to someone else: we refuse to touch the
//! interface rather than remove it. A running daemon detaches its own program
//! by program (see [`super::Redirect::detach`]), never by name.

use crate::PortError;
use libxdp_sys as sys;

/// Kernel UAPI flag values (linux/if_link.h) selecting the attach mode to detach.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// See [`XDP_FLAGS_SKB_MODE`].
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Programs attached to one interface, by mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachedPrograms {
    /// Program id attached in driver (native) mode, 0 if none.
    pub native: u32,
    /// Program id attached in generic (SKB) mode, 0 if none.
    pub generic: u32,
}

/// Which XDP programs are attached to `ifindex`.
pub fn attached(ifindex: u32) -> Result<AttachedPrograms, std::io::Error> {
    // libbpf rejects option structs whose bytes past the fields it knows are not
    // zero, padding included: start from all-zero memory, not a struct literal.
    // SAFETY: bpf_xdp_query_opts is plain old data for which all-zero is valid.
    #[allow(unsafe_code)]
    let mut opts: sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_xdp_query_opts>();
    // SAFETY: `opts` is a properly sized, initialised struct that outlives the
    // call; libbpf only writes into it.
    #[allow(unsafe_code)]
    let err = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if err < 0 {
        return Err(std::io::Error::from_raw_os_error(-err));
    }
    Ok(AttachedPrograms {
        native: opts.drv_prog_id,
        generic: opts.skb_prog_id,
    })
}

/// Name of a loaded BPF program (its first 15 bytes, as the kernel keeps it).
fn program_name(id: u32) -> Option<String> {
    // SAFETY: plain syscall wrapper; a negative return is an error code.
    #[allow(unsafe_code)]
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return None;
    }
    // SAFETY: bpf_prog_info is plain old data; all-zero is the documented
    // starting state for bpf_prog_get_info_by_fd.
    #[allow(unsafe_code)]
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for writes and sized as `len` says; `fd`
    // is the descriptor just opened, closed right after.
    #[allow(unsafe_code)]
    let err = unsafe {
        let err = sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len);
        libc::close(fd);
        err
    };
    if err < 0 {
        return None;
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Detaches a program a previous Switchyard run left on the interface, in
/// either mode; errors if any other XDP program is attached.
pub fn detach_stale(interface: &str, ifindex: u32) -> Result<(), PortError> {
    let programs = attached(ifindex).map_err(|e| PortError::XdpProgram {
        interface: interface.to_string(),
        message: format!("cannot query attached programs: {e}"),
    })?;
    for (id, flags, mode) in [
        (programs.native, XDP_FLAGS_DRV_MODE, "native"),
        (programs.generic, XDP_FLAGS_SKB_MODE, "generic"),
    ] {
        if id == 0 {
            continue;
        }
        let name = program_name(id).unwrap_or_default();
        if name != super::redirect::PROGRAM_NAME {
            return Err(PortError::XdpProgram {
                interface: interface.to_string(),
                message: format!(
                    "a foreign XDP program {name:?} (id {id}) is attached in {mode} mode; \
                     refusing to replace it (detach it with `ip link set dev {interface} xdp off`)"
                ),
            });
        }
        tracing::info!(interface, program = %name, id, mode, "detaching the program a previous run left");
        // By program: the kernel detaches only if the attached program is
        // still the one inspected above (XDP_FLAGS_REPLACE with its fd).
        // SAFETY: plain syscall wrapper; a negative result is an error code.
        #[allow(unsafe_code)]
        let old = unsafe { sys::bpf_prog_get_fd_by_id(id) };
        if old < 0 {
            continue; // gone meanwhile
        }
        // SAFETY: plain old data for which all-zero is valid (libbpf wants
        // zeroed padding).
        #[allow(unsafe_code)]
        let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _;
        opts.old_prog_fd = old;
        // SAFETY: `opts` is initialised and outlives the call; `old` is the
        // descriptor opened above, closed right after.
        #[allow(unsafe_code)]
        let err = unsafe {
            let err = libbpf_sys::bpf_xdp_detach(ifindex as i32, flags, &opts);
            libc::close(old);
            err
        };
        if err < 0 {
            return Err(PortError::XdpProgram {
                interface: interface.to_string(),
                message: format!(
                    "cannot detach {name:?} ({mode} mode): {}",
                    std::io::Error::from_raw_os_error(-err)
                ),
            });
        }
    }
    Ok(())
}

/// Routes libbpf's and libxdp's own stderr chatter ("No bpffs found … falling
/// back", "skipping unrecognized data section") into `tracing` at debug level.
/// Both are harmless on hosts without bpffs; our own errors carry the errno and
/// context an operator needs. Only the message template is kept: formatting a C
/// va_list is not possible from stable Rust.
pub fn quiet_library_logs() {
    // SAFETY (contract of both callbacks): only libbpf/libxdp call them, with a
    // valid NUL-terminated format string; they read nothing else and never unwind
    // (a panic in an extern "C" fn aborts instead).
    unsafe extern "C" fn libbpf_print(
        level: libbpf_sys::libbpf_print_level,
        format: *const std::os::raw::c_char,
        _args: *mut libbpf_sys::__va_list_tag,
    ) -> std::os::raw::c_int {
        // SAFETY: libbpf passes a valid NUL-terminated format string.
        let text = unsafe { std::ffi::CStr::from_ptr(format) }.to_string_lossy();
        tracing::debug!(target: "libbpf", level, "{}", text.trim_end());
        0
    }
    // SAFETY: same contract as `libbpf_print` above.
    unsafe extern "C" fn libxdp_print(
        level: sys::libxdp_print_level,
        format: *const std::os::raw::c_char,
        _args: *mut sys::__va_list_tag,
    ) -> std::os::raw::c_int {
        // SAFETY: libxdp passes a valid NUL-terminated format string.
        let text = unsafe { std::ffi::CStr::from_ptr(format) }.to_string_lossy();
        tracing::debug!(target: "libxdp", level, "{}", text.trim_end());
        0
    }
    // SAFETY: both setters only store the function pointer; the callbacks above
    // match the C signatures and never unwind.
    #[allow(unsafe_code)]
    unsafe {
        libbpf_sys::libbpf_set_print(Some(libbpf_print));
        sys::libxdp_set_print(Some(libxdp_print));
    }
}
