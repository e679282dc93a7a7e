//! One AF_XDP socket bound to an (interface, queue) from the worker's UMEM.

use super::pool::UmemPool;
use super::redirect::Redirect;
use crate::{FramePool, Port, PortError, TxResult};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_pipeline::MAX_BURST;
use tracing::{debug, info, warn};
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig, XdpFlags};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue};

/// The XDP mode a port ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) XDP.
    Native,
    /// Generic (SKB) XDP.
    Generic,
}

impl AttachMode {
    /// Name for logs and stats.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }

    fn xdp_flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XdpFlags::XDP_FLAGS_SKB_MODE,
        }
    }
}

/// What is needed to open one AF_XDP port.
#[derive(Clone, Debug)]
pub struct XdpPortConfig {
    /// Interface to bind.
    pub interface: String,
    /// Queue id on the interface.
    pub queue: u32,
    /// Attach mode to use.
    pub mode: AttachMode,
    /// RX and TX ring entries.
    pub ring_size: u32,
    /// Frames an idle socket keeps posted to its fill ring: enough for the
    /// first frames of a burst to land while the worker notices the socket is
    /// busy again. Frame memory for a thousand idle ports is this times a
    /// thousand, not a thousand full rings.
    pub fill_min: u32,
    /// Frames beyond `fill_min` an idle socket also keeps posted when its
    /// worker's burst allowance still has them ([`UmemPool::grant_burst`]): a
    /// burst that lands while the worker sleeps (a TCP window after a pause, a
    /// batch of datagrams) then finds buffers instead of an empty fill ring.
    pub fill_burst: u32,
    /// Most frames a busy socket keeps posted (at most the fill ring's size):
    /// it grows towards this by what it receives and falls back to
    /// `fill_min` when it goes idle.
    pub fill_max: u32,
    /// The daemon's XDP program to steer this socket's queue into it; `None`
    /// for a socket that never receives (a UMEM's anchor).
    pub redirect: Option<Arc<Redirect>>,
    /// How long to keep retrying a bind the kernel answers with EBUSY (a socket on
    /// the same queue released moments ago).
    pub busy_retry: Duration,
}

/// An AF_XDP socket with its rings and the bookkeeping of frames it holds.
pub struct XdpPort {
    /// Id in the pool's frame-ownership record.
    id: u16,
    interface: String,
    mode: AttachMode,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    completion: CompQueue,
    /// Frames given to the fill ring and not yet received back.
    fill_held: usize,
    /// Frames given to the TX ring and not yet completed.
    tx_held: usize,
    /// Frames to keep posted now: between `fill_min` and `fill_max`, following
    /// what the socket receives.
    fill_target: usize,
    fill_min: usize,
    fill_max: usize,
    /// Burst allowance to ask the pool for when joining it.
    fill_burst: usize,
    /// Burst allowance granted (part of `fill_min`), returned on close.
    burst_granted: usize,
    scratch: Vec<FrameDesc>,
    /// Fixed-size landing area for ring consumers (RX and completion):
    /// sized once, so a burst costs only the descriptors it moves, not a
    /// clear-and-resize of a ring-sized buffer.
    landing: Vec<FrameDesc>,
    kick_failures: u64,
    /// The (interface index, queue) this socket is steered from, to unsteer it
    /// when closed.
    steering: Option<(Arc<Redirect>, u32, u32)>,
}

impl Drop for XdpPort {
    fn drop(&mut self) {
        if let Some((redirect, ifindex, queue)) = self.steering.take() {
            redirect.remove(ifindex, queue);
        }
    }
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("interface", &self.interface)
            .field("mode", &self.mode)
            .field("fill_held", &self.fill_held)
            .field("tx_held", &self.tx_held)
            .finish()
    }
}

impl XdpPort {
    /// Binds a socket on `config.interface` from `pool`'s UMEM, attaching the XDP
    /// program in `config.mode` (or joining the one a sibling socket attached).
    ///
    /// Stale programs are not this function's business: several sockets (of
    /// several workers) share an interface's program, so the daemon detaches stale
    /// ones once before opening any socket and detaches all on exit or failure.
    ///
    /// Falling back from native to generic mode is the caller's job, with a fresh
    /// UMEM: when the first socket of a UMEM fails to attach, libxdp keeps the
    /// UMEM's own descriptor bound to the queue, so a second try on the same UMEM
    /// only ever sees EBUSY.
    pub fn open(pool: &mut UmemPool, config: &XdpPortConfig) -> Result<Self, PortError> {
        let mut port = Self::open_unfilled(pool.umem(), config)?;
        port.adopt_frames(pool);
        Ok(port)
    }

    /// Binds the socket on `umem` without touching the pool's free list, so the
    /// slow part of hot-plugging a port (bind, XDP attach) can run on the control
    /// thread while the worker keeps forwarding; the worker then calls
    /// [`Port::adopt`] to give it receive buffers.
    pub fn open_unfilled(umem: &xsk_rs::Umem, config: &XdpPortConfig) -> Result<Self, PortError> {
        // A missing interface is reported as such, not as a bind error.
        let ifindex = crate::sys::interface_index(&config.interface)
            .ok_or_else(|| PortError::NoSuchInterface(config.interface.clone()))?;
        let mode = config.mode;
        let (tx, rx, fill, completion) = Self::bind(umem, config, mode)?;
        let steering = match &config.redirect {
            Some(redirect) => {
                use std::os::fd::AsRawFd;
                redirect
                    .insert(ifindex, config.queue, rx.fd().as_raw_fd())
                    .map_err(|source| PortError::Socket {
                        interface: config.interface.clone(),
                        queue: config.queue,
                        mode: mode.name(),
                        source,
                    })?;
                Some((Arc::clone(redirect), ifindex, config.queue))
            }
            None => None,
        };
        info!(interface = %config.interface, queue = config.queue, mode = mode.name(), "AF_XDP port attached");
        if mode == AttachMode::Generic {
            warn!(
                interface = %config.interface,
                "generic XDP drops frames above ~3840 bytes, such as the TSO/GSO segments a veth \
                 peer sends by default; turn tso/gso off on the peer or use native mode"
            );
        }
        let ring = config.ring_size as usize;
        {
            use std::os::fd::AsRawFd;
            // One kick per burst: the budget covers the largest burst.
            if let Err(error) = crate::sys::set_xdp_tx_budget(tx.fd().as_raw_fd(), MAX_BURST as u32)
            {
                debug!(%error, "kernel keeps its default TX budget per kick (32 frames)");
            }
        }
        let port = XdpPort {
            id: u16::MAX,
            interface: config.interface.clone(),
            mode,
            tx,
            rx,
            fill,
            completion,
            fill_held: 0,
            tx_held: 0,
            fill_target: config.fill_min as usize,
            fill_min: config.fill_min as usize,
            fill_max: config.fill_max.max(config.fill_min) as usize,
            fill_burst: config.fill_burst as usize,
            burst_granted: 0,
            scratch: Vec::with_capacity(ring.max(config.fill_max as usize)),
            landing: vec![FrameDesc::default(); MAX_BURST],
            kick_failures: 0,
            steering,
        };
        Ok(port)
    }

    /// Joins the pool: takes a socket id and fills the receive ring.
    fn adopt_frames(&mut self, pool: &mut UmemPool) {
        match pool.register_socket() {
            Some(id) => {
                self.id = id;
                self.burst_granted = pool.grant_burst(self.fill_burst);
                self.fill_min = (self.fill_min + self.burst_granted).min(self.fill_max);
                self.fill_target = self.fill_target.max(self.fill_min);
                self.refill(pool);
            }
            // Without an id the socket could not give its frames back when
            // closed: it gets none, so it never receives (and says so).
            None => {
                warn!(interface = %self.interface, "no socket id left in this UMEM: port left without receive buffers")
            }
        }
    }

    fn bind(
        umem: &xsk_rs::Umem,
        config: &XdpPortConfig,
        mode: AttachMode,
    ) -> Result<(TxQueue, RxQueue, FillQueue, CompQueue), PortError> {
        let socket_error = |source: std::io::Error| PortError::Socket {
            interface: config.interface.clone(),
            queue: config.queue,
            mode: mode.name(),
            source,
        };
        let ring = QueueSize::new(config.ring_size)
            .map_err(|_| PortError::Invalid("ring_size must be a power of two".into()))?;
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .xdp_flags(mode.xdp_flags())
            // The daemon's own program (see `redirect`) is attached once per
            // interface and steers every queue; libxdp must not load its own.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name: Interface = config.interface.parse().map_err(|_| {
            PortError::Invalid(format!("bad interface name {:?}", config.interface))
        })?;
        let deadline = Instant::now() + config.busy_retry;
        loop {
            // SAFETY: each (interface, queue) is bound once per UMEM by Switchyard
            // (the config rejects two ports on one interface), so the fill and
            // completion rings are always handed to us and no program is shared
            // between sockets of one pair.
            #[allow(unsafe_code)]
            let result = unsafe { xsk_rs::Socket::new(socket_config, umem, &name, config.queue) };
            match result {
                Ok((tx, rx, Some((fill, completion)))) => return Ok((tx, rx, fill, completion)),
                Ok((_, _, None)) => {
                    return Err(socket_error(std::io::Error::other(
                        "the queue is already bound from this UMEM (no fill/completion rings)",
                    )))
                }
                Err(e) => {
                    let io = std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .map(|io| {
                            std::io::Error::from_raw_os_error(
                                io.raw_os_error().unwrap_or(libc::EIO),
                            )
                        })
                        .unwrap_or_else(|| std::io::Error::other(e.to_string()));
                    if io.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline {
                        debug!(interface = %config.interface, "queue busy (released moments ago?); retrying");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    return Err(socket_error(with_hint(io)));
                }
            }
        }
    }

    /// The interface this port is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The XDP mode in use.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Transmit kicks the kernel refused with a non-transient error.
    pub fn kick_failures(&self) -> u64 {
        self.kick_failures
    }

    /// Kernel-side socket statistics (drops for a full RX ring or empty fill ring).
    pub fn kernel_stats(&self) -> Option<xsk_rs::socket::XdpStatistics> {
        self.rx.fd().xdp_statistics().ok()
    }

    /// Tops the fill ring up to its target from the pool's free list. Up to
    /// `fill_min` it may take any free frame (an idle port must stay able to
    /// receive); above it only frames beyond the pool's reserve, so busy ports
    /// cannot starve floods, handed-over frames or other ports' minimum.
    fn refill(&mut self, pool: &mut UmemPool) {
        if self.id == u16::MAX {
            return;
        }
        let want = self.fill_target.saturating_sub(self.fill_held);
        // Small top-ups wait until they are worth a ring update, except below
        // the minimum.
        if want == 0 || (self.fill_held >= self.fill_min && want < 16) {
            return;
        }
        let available = if self.fill_held < self.fill_min {
            pool.free_count()
        } else {
            pool.free_count().saturating_sub(pool.reserve())
        };
        let room = self.fill.nb_free(want as u32) as usize;
        let n = want.min(room).min(available);
        if n == 0 {
            return;
        }
        self.scratch.clear();
        pool.take_free(n, &mut self.scratch);
        // SAFETY: the descriptors came off the pool's free list: frames of this
        // UMEM held by nobody; `n` slots are free, so `produce` takes all of them.
        #[allow(unsafe_code)]
        let produced = unsafe { self.fill.produce(&self.scratch) };
        if produced == self.scratch.len() {
            self.fill_held += produced;
            for desc in &self.scratch {
                pool.give(desc, self.id);
            }
        } else {
            for desc in self.scratch.drain(..) {
                pool.free(desc);
            }
        }
        self.scratch.clear();
    }
}

impl Port for XdpPort {
    type Pool = UmemPool;

    fn rx_burst(&mut self, pool: &mut UmemPool, out: &mut Vec<FrameDesc>, max: usize) -> usize {
        let max = max.min(self.landing.len());
        // SAFETY: the descriptors written are frames of our UMEM the kernel hands
        // back; from here on the worker owns them.
        #[allow(unsafe_code)]
        let received = unsafe { self.rx.consume(&mut self.landing[..max]) };
        if received == 0 && self.fill.needs_wakeup() {
            // A zero-copy driver that ran out of fill buffers stops and asks to
            // be woken once the ring has some again (copy mode never asks);
            // without this a receive-only queue stays stalled. A zero-timeout
            // poll, only while the flag is set.
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        for desc in &self.landing[..received] {
            pool.take_back(desc);
            // The kernel wrote these frames on another core: start every
            // frame's first cache line on its way now, so the parser's misses
            // overlap instead of stalling one frame at a time.
            prefetch(pool.data(desc));
        }
        out.extend_from_slice(&self.landing[..received]);
        self.fill_held -= received.min(self.fill_held);
        // Frame memory follows traffic: a socket that receives keeps more
        // frames posted, by as many as it just received.
        self.fill_target = (self.fill_target + received).min(self.fill_max);
        received
    }

    fn tx_burst(&mut self, pool: &mut UmemPool, frames: &mut Vec<FrameDesc>) -> TxResult {
        let mut result = TxResult::default();
        if frames.is_empty() {
            return result;
        }
        let room = self.tx.nb_free(frames.len() as u32) as usize;
        let n = frames.len().min(room);
        if n > 0 {
            // SAFETY: the frames belong to our UMEM and are owned by the worker;
            // `n` slots are free so all `n` are taken; from here the kernel owns
            // them until they come back on a completion ring.
            #[allow(unsafe_code)]
            let produced = unsafe { self.tx.produce(&frames[..n]) };
            if produced == n {
                for desc in &frames[..n] {
                    pool.give(desc, self.id);
                }
                result.accepted = n;
                result.accepted_bytes = frames[..n].iter().map(|d| d.lengths().data()).sum();
                self.tx_held += n;
            }
        }
        for desc in frames.drain(result.accepted..) {
            pool.free(desc);
            result.ring_full += 1;
        }
        frames.clear();
        result
    }

    fn service(&mut self, pool: &mut UmemPool) -> Result<(), PortError> {
        let mut outcome = Ok(());
        if self.tx_held > 0 && self.tx.needs_wakeup() {
            // In copy mode the kick itself transmits (a bounded batch per call).
            if let Err(source) = self.tx.wakeup() {
                self.kick_failures += 1;
                outcome = Err(PortError::Kick {
                    interface: self.interface.clone(),
                    source,
                });
            }
        }
        // Bounded: each chunk either fills the landing area or ends the loop,
        // and the ring holds at most `tx_held` completions.
        while self.tx_held > 0 {
            let chunk = self.tx_held.min(self.landing.len());
            // SAFETY: completed descriptors are frames of our UMEM the kernel is done with.
            #[allow(unsafe_code)]
            let done = unsafe { self.completion.consume(&mut self.landing[..chunk]) };
            for desc in &self.landing[..done] {
                pool.free(*desc);
            }
            self.tx_held -= done.min(self.tx_held);
            if done < chunk {
                break;
            }
        }
        self.refill(pool);
        outcome
    }

    fn frames_held(&self) -> usize {
        self.fill_held + self.tx_held
    }

    fn tx_pending(&self) -> bool {
        self.tx_held > 0
    }

    fn kernel_drops(&self) -> crate::KernelDrops {
        self.kernel_stats()
            .map(|s| crate::KernelDrops {
                rx_dropped: s.rx_dropped(),
                rx_ring_full: s.rx_ring_full(),
                rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
                tx_invalid: s.tx_invalid_descs(),
            })
            .unwrap_or_default()
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.rx.fd().as_raw_fd())
    }

    fn adopt(&mut self, pool: &mut UmemPool) {
        self.adopt_frames(pool);
    }

    fn woke_after(&mut self, parked_ns: u64) {
        // A flow that pauses between bursts parks and wakes all the time and
        // keeps what it has; a port idle for seconds halves its target per
        // second idle, down to the minimum. Frames posted above the target stay
        // until they are used; they are just not topped up again.
        let halvings = (parked_ns / 1_000_000_000).min(16) as u32;
        if halvings > 0 {
            self.fill_target = (self.fill_target >> halvings).max(self.fill_min);
        }
    }

    fn close(self, pool: &mut UmemPool) -> usize {
        let id = self.id;
        pool.return_burst(self.burst_granted);
        // Closing the socket first: from then on the kernel touches none of the
        // frames left in its fill and TX rings, so they can be reused.
        drop(self);
        pool.reclaim(id)
    }

    fn release(&mut self, pool: &mut UmemPool) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.tx_held > 0 && Instant::now() < deadline {
            let _ = self.service(pool);
        }
    }
}

/// Adds what an operator can do to the bind errors whose cause is not obvious
/// (attach errors get theirs in `redirect`).
fn with_hint(error: std::io::Error) -> std::io::Error {
    let hint = match error.raw_os_error() {
        Some(libc::EBUSY) => " (another AF_XDP socket holds this queue)",
        Some(libc::EPERM) => " (needs root, or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)",
        _ => return error,
    };
    std::io::Error::new(error.kind(), format!("{error}{hint}"))
}

/// Asks the CPU to bring the first cache line of `data` closer (a hint: no
/// fault, no effect on results).
#[inline(always)]
fn prefetch(data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch never faults and reads nothing the program
        // sees; the pointer comes from a live slice anyway.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
