//! AF_XDP ports (xsk-rs over libxdp): one UMEM per worker shared by all of its
//! sockets (XDP_SHARED_UMEM), so a frame received on one port is transmitted on
//! another by moving its descriptor, with no copy inside the switch.
//!
//! Each (interface, queue) bound from the shared UMEM gets its own fill and
//! completion rings; a transmitted frame's completion comes back on the transmit
//! port's completion ring, so the worker keeps one free list for the whole UMEM
//! ([`UmemPool`]) and every port refills its fill ring from it.

mod pool;
mod port;
pub mod redirect;
pub mod xdp_program;

pub use pool::{UmemPool, FRAME_SIZE, MAX_FRAME_WITH_HEADROOM, XDP_HEADROOM};
pub use port::{AttachMode, XdpPort, XdpPortConfig};
pub use redirect::{AttachError, Redirect};

/// A shared handle on a worker's UMEM: hot-plugged sockets are bound on it by the
/// control thread, then handed to the worker.
pub use xsk_rs::Umem as UmemHandle;

/// How to attach the XDP program that steers frames into our sockets, as the
/// config asks; the caller turns `Auto` into a concrete [`AttachMode`] per try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpModeChoice {
    /// Native (driver) mode, falling back to generic mode if the driver refuses.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

#[cfg(test)]
mod tests {
    /// The control thread binds hot-plugged sockets on a worker's UMEM and hands
    /// them to the worker: both types must cross threads.
    #[test]
    fn umem_and_ports_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<xsk_rs::Umem>();
        assert_send::<super::XdpPort>();
    }
}
