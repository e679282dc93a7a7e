//! Who may use the control socket: root, and members of `[switch]
//! control_group` when one is configured. The socket's file mode keeps others
//! from connecting at all; the kernel's peer credentials (`SO_PEERCRED`,
//! `SO_PEERGROUPS`) are checked on every connection as well, so a socket file
//! made reachable by mistake (a permissive directory, a bind mount, a changed
//! mode) still serves nobody else.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use thiserror::Error;

/// `SO_PEERGROUPS` (Linux 4.13+, asm-generic value); not every libc build
/// exports it.
const SO_PEERGROUPS: libc::c_int = 59;
/// Most supplementary groups read for a peer (Linux's NGROUPS_MAX is 65536; a
/// peer with more is checked against this many after one retry at its size).
const INITIAL_GROUPS: usize = 64;

/// A failed group lookup.
#[derive(Debug, Error)]
pub enum GroupError {
    /// No group has this name.
    #[error("group {0:?} does not exist")]
    Unknown(String),
    /// The lookup itself failed (NSS, I/O).
    #[error("looking up group {name:?}: {source}")]
    Lookup {
        /// The group asked for.
        name: String,
        /// What failed.
        source: io::Error,
    },
}

/// The gid of group `name` (through NSS, as `getent group` sees it).
pub fn group_id(name: &str) -> Result<libc::gid_t, GroupError> {
    let c_name = CString::new(name).map_err(|_| GroupError::Unknown(name.to_string()))?;
    let mut buf = vec![0u8; 1024];
    for _ in 0..8 {
        // SAFETY: `libc::group` is plain data (integers and pointers), for which
        // all-zero bytes are a valid value; getgrnam_r fills it in.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `c_name` is a NUL-ended
        // string, `group` and `result` are live locals, and `buf` is writable for
        // `buf.len()` bytes; the strings `group` points into live in `buf`, and
        // only `gr_gid` (a plain integer) is read afterwards.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Err(GroupError::Unknown(name.to_string())),
            0 => return Ok(group.gr_gid),
            libc::ERANGE => buf.resize(buf.len() * 4, 0),
            // glibc reports "not found" as one of these for some NSS backends.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => {
                return Err(GroupError::Unknown(name.to_string()))
            }
            errno => {
                return Err(GroupError::Lookup {
                    name: name.to_string(),
                    source: io::Error::from_raw_os_error(errno),
                })
            }
        }
    }
    Err(GroupError::Lookup {
        name: name.to_string(),
        source: io::Error::from_raw_os_error(libc::ERANGE),
    })
}

/// A connected client's credentials, as the kernel recorded them at connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Process id (0 when the peer is in a PID namespace we cannot see into).
    pub pid: libc::pid_t,
    /// Effective user id.
    pub uid: libc::uid_t,
    /// Effective group id.
    pub gid: libc::gid_t,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

impl Peer {
    /// The credentials of the process at the other end of `stream`.
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let fd = stream.as_raw_fd();
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `fd` is an open socket owned by `stream` for the whole call;
        // `cred` is a live `ucred` and `len` holds its size, as SO_PEERCRED wants.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Peer {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
            groups: peer_groups(fd)?,
        })
    }

    /// Whether this peer may use the socket: root always, else a member
    /// (primary or supplementary) of `group`.
    pub fn allowed(&self, group: Option<libc::gid_t>) -> bool {
        self.uid == 0 || group.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }
}

/// The peer's supplementary groups (`SO_PEERGROUPS`); empty on kernels
/// without it, so only the primary group counts there.
fn peer_groups(fd: libc::c_int) -> io::Result<Vec<libc::gid_t>> {
    let mut groups: Vec<libc::gid_t> = vec![0; INITIAL_GROUPS];
    for _ in 0..2 {
        let mut len = std::mem::size_of_val(groups.as_slice()) as libc::socklen_t;
        // SAFETY: `fd` is an open socket for the whole call; `groups` is writable
        // for `len` bytes, which is what SO_PEERGROUPS may fill; on ERANGE the
        // kernel only writes the needed size to `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ERANGE) => {
                groups.resize(len as usize / std::mem::size_of::<libc::gid_t>() + 1, 0)
            }
            Some(libc::ENOPROTOOPT) => return Ok(Vec::new()),
            _ => return Err(error),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_group_members_are_allowed_others_not() {
        let peer = |uid, gid, groups: &[u32]| Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert!(peer(0, 0, &[]).allowed(None));
        assert!(!peer(1000, 1000, &[]).allowed(None));
        assert!(peer(1000, 1000, &[]).allowed(Some(1000)));
        assert!(peer(1000, 1000, &[10, 20]).allowed(Some(20)));
        assert!(!peer(1000, 1000, &[10, 20]).allowed(Some(30)));
    }

    #[test]
    fn own_credentials_are_read_from_a_socket_pair() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = Peer::of(&a).unwrap();
        assert_eq!(me.pid as u32, std::process::id());
        // SAFETY: getuid has no preconditions.
        assert_eq!(me.uid, unsafe { libc::getuid() });
    }

    #[test]
    fn groups_resolve_by_name() {
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(matches!(
            group_id("no-such-group-sy"),
            Err(GroupError::Unknown(_))
        ));
    }
}
