//! Switchyard's port drivers behind one small burst interface.
//!
//! A worker owns one [`FramePool`] (for AF_XDP: one UMEM shared by all of the
//! worker's sockets) and a set of [`Port`]s drawing frames from it. Frames move
//! between ports as handles (descriptors), never as copies, except where one frame
//! must leave through several ports (flooding). Every frame is always owned by
//! exactly one place: the pool's free list, a port's rings, or a batch in the
//! worker; [`FramePool::free_count`] plus [`Port::frames_held`] over all ports
//! must equal [`FramePool::total`] whenever no batch is in flight.
//!
//! Drivers: [`afxdp`] (Linux AF_XDP sockets via xsk-rs) and [`memory`] (plain
//! vectors, for tests and benchmarks of everything above the driver).

pub mod afxdp;
pub mod batch;
pub mod memory;
pub mod netns;
pub mod sys;

pub use batch::BatchFrames;

use switchyard_pipeline::FrameError;
use thiserror::Error;

/// Frame memory shared by the ports of one worker.
pub trait FramePool {
    /// A handle naming one frame of this pool; cheap to copy, moved between rings.
    type Handle: Copy + std::fmt::Debug;

    /// Takes a free frame, if any; its contents are undefined and its length 0.
    fn alloc(&mut self) -> Option<Self::Handle>;
    /// Returns a frame to the free list.
    fn free(&mut self, handle: Self::Handle);
    /// Bytes of a frame, up to its length.
    fn data(&self, handle: &Self::Handle) -> &[u8];
    /// Mutable bytes of a frame, up to its length.
    fn data_mut(&mut self, handle: &mut Self::Handle) -> &mut [u8];
    /// Bytes [`push_head`](Self::push_head) can add to a frame now.
    fn headroom(&self, handle: &Self::Handle) -> usize;
    /// Bytes [`set_len`](Self::set_len) can add at a frame's tail now.
    fn tailroom(&self, handle: &Self::Handle) -> usize;
    /// Grows a frame by `n` bytes at its head (a stage pushing a header); the
    /// new first bytes are undefined until written.
    fn push_head(&mut self, handle: &mut Self::Handle, n: usize) -> Result<(), FrameError>;
    /// Removes `n` bytes from a frame's head (a stage popping a header).
    fn pull_head(&mut self, handle: &mut Self::Handle, n: usize) -> Result<(), FrameError>;
    /// Sets a frame's length (cutting or extending its tail; extended bytes are
    /// undefined until written). Also how an originated frame gets its length.
    fn set_len(&mut self, handle: &mut Self::Handle, len: usize) -> Result<(), FrameError>;
    /// Takes a free frame and writes `bytes` into it (frames handed over from
    /// another worker); `None` when no frame is free or `bytes` does not fit.
    fn alloc_from(&mut self, bytes: &[u8]) -> Option<Self::Handle>;
    /// Copies frame `src` into frame `dst` (which must come from [`alloc`](Self::alloc)).
    fn copy_into(&mut self, src: &Self::Handle, dst: &mut Self::Handle);
    /// Number of frames the pool was created with.
    fn total(&self) -> usize;
    /// Number of frames on the free list now.
    fn free_count(&self) -> usize;
    /// True when no frame sits on the free list twice (a double free). Linear in
    /// the pool size: for shutdown audits and tests, never the hot path.
    fn free_list_is_unique(&self) -> bool;
}

/// Drops that happen inside the kernel before the worker sees a frame (or when it
/// rejects a descriptor): invisible to the pipeline, so each driver reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelDrops {
    /// Frames dropped for any reason on receive.
    pub rx_dropped: u64,
    /// Frames dropped because the receive ring was full (the worker was too slow).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty (no buffer for an arriving frame).
    pub rx_fill_ring_empty: u64,
    /// Transmit descriptors the kernel refused.
    pub tx_invalid: u64,
}

impl KernelDrops {
    /// Adds another socket's drops (a port with several queues or workers).
    pub fn add(&mut self, other: &KernelDrops) {
        self.rx_dropped += other.rx_dropped;
        self.rx_ring_full += other.rx_ring_full;
        self.rx_fill_ring_empty += other.rx_fill_ring_empty;
        self.tx_invalid += other.tx_invalid;
    }
}

/// Result of handing a batch to a port for transmission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResult {
    /// Frames the port accepted (now owned by the port until completion).
    pub accepted: usize,
    /// Bytes in the accepted frames.
    pub accepted_bytes: usize,
    /// Frames the ring had no room for; the port returned them to the pool.
    pub ring_full: usize,
}

/// One port: a source and sink of frame bursts drawing on the worker's pool.
pub trait Port {
    /// The frame pool this port's frames come from.
    type Pool: FramePool;

    /// Receives up to `max` frames, appending their handles to `out`.
    fn rx_burst(
        &mut self,
        pool: &mut Self::Pool,
        out: &mut Vec<<Self::Pool as FramePool>::Handle>,
        max: usize,
    ) -> usize;

    /// Queues `frames` for transmission and drains the vector. Frames that do not
    /// fit are returned to the pool and reported in [`TxResult::ring_full`].
    fn tx_burst(
        &mut self,
        pool: &mut Self::Pool,
        frames: &mut Vec<<Self::Pool as FramePool>::Handle>,
    ) -> TxResult;

    /// Kicks the kernel (one syscall per port per loop turn at most), collects
    /// completed transmissions into the pool and tops up receive buffers.
    fn service(&mut self, pool: &mut Self::Pool) -> Result<(), PortError>;

    /// Frames this port currently holds (fill ring, receive ring, transmit ring
    /// awaiting completion), for the frame-accounting invariant.
    fn frames_held(&self) -> usize;

    /// True while transmitted frames have not yet completed.
    fn tx_pending(&self) -> bool;

    /// Drops the kernel counted for this port (one syscall: control path only).
    fn kernel_drops(&self) -> KernelDrops {
        KernelDrops::default()
    }

    /// A descriptor an idle worker can sleep on in poll() until frames arrive.
    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// The worker polls this port again after it waited `parked_ns` for
    /// traffic: a driver that keeps frames for traffic may keep fewer after a
    /// long idle time (never fewer than it needs to receive).
    fn woke_after(&mut self, _parked_ns: u64) {}

    /// Joins the pool after being opened elsewhere (hot-plug): takes receive
    /// buffers from the pool.
    fn adopt(&mut self, _pool: &mut Self::Pool) {}

    /// Closes the port and returns every frame it still held to the pool; returns
    /// how many came back. For removing a port at run time without leaking frames.
    fn close(self, _pool: &mut Self::Pool) -> usize
    where
        Self: Sized,
    {
        0
    }

    /// Returns every frame the port holds to the pool, for a clean shutdown.
    /// Only frames the kernel has handed back can be returned; what stays in the
    /// kernel's rings is reported by [`frames_held`](Self::frames_held).
    fn release(&mut self, pool: &mut Self::Pool);
}

/// Errors a driver reports. Each says what failed and, where it helps, what to do.
#[derive(Debug, Error)]
pub enum PortError {
    /// The interface named in the config does not exist.
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    /// Creating or binding the AF_XDP socket failed.
    #[error("cannot open an AF_XDP socket on {interface} queue {queue} in {mode} mode: {source}")]
    Socket {
        /// Interface name.
        interface: String,
        /// Queue id.
        queue: u32,
        /// XDP attach mode tried.
        mode: &'static str,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Creating the UMEM failed.
    #[error("cannot create the UMEM ({frames} frames): {source}{hint}")]
    Umem {
        /// Frames requested.
        frames: u32,
        /// What the kernel said.
        source: std::io::Error,
        /// A hint for the operator (e.g. RLIMIT_MEMLOCK).
        hint: &'static str,
    },
    /// Dealing with an XDP program already attached failed.
    #[error("XDP program on {interface}: {message}")]
    XdpProgram {
        /// Interface name.
        interface: String,
        /// What went wrong.
        message: String,
    },
    /// The transmit kick failed with an error other than a transient one.
    #[error("transmit kick on {interface} failed: {source}")]
    Kick {
        /// Interface name.
        interface: String,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A configuration value the driver cannot honour.
    #[error("invalid driver setting: {0}")]
    Invalid(String),
}
