//! AF_XDP sockets for the traffic generator and the sink (xsk-rs).
//!
//! The harness drives traffic through the same kind of socket the switch
//! uses, from threads that entered the generator's and the sink's
//! namespaces: the frames the dataplane sees come from, and go to, AF_XDP
//! rings rather than a kernel socket loop, and the sink reads each frame's
//! probe without the kernel's UDP stack in between.
//!
//! Both sockets own a UMEM of their own. Every `unsafe` block of the traffic
//! path is here, each with the reason it is sound; the invariant they share:
//! every frame of a UMEM is in exactly one place — our free list or hand, or
//! a ring the kernel owns — and only frames in our hand are read or written.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use xsk_rs::config::{
    BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// UMEM frame size (libxdp's default): a frame's address divided by it is
/// the frame's index.
const FRAME_SIZE: usize = 4096;

/// How long to retry a bind the kernel answers with EBUSY: a socket on the
/// same queue closed moments ago is released with a delay (~100-200 ms).
const BIND_BUSY_RETRY: Duration = Duration::from_secs(2);

/// How the sink's XDP program is attached to its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Driver (native) XDP: on a veth it runs in the veth's NAPI poll.
    Native,
    /// Generic (SKB) XDP, the fallback.
    Generic,
}

impl AttachMode {
    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XdpFlags::XDP_FLAGS_SKB_MODE,
        }
    }
}

fn queue_size(n: u32, what: &str) -> Result<QueueSize> {
    QueueSize::new(n).map_err(|_| anyhow!("{what} ({n}) must be a power of two"))
}

fn new_umem(frames: u32, fill: u32, comp: u32) -> Result<(Umem, Vec<FrameDesc>)> {
    let config = UmemConfig::builder()
        .fill_queue_size(queue_size(fill, "fill ring size")?)
        .comp_queue_size(queue_size(comp, "completion ring size")?)
        .build()
        .map_err(|e| anyhow!("UMEM config: {e}"))?;
    let count = NonZeroU32::new(frames).ok_or_else(|| anyhow!("a UMEM needs frames"))?;
    Umem::new(config, count, false).map_err(|e| {
        anyhow!(
            "creating a UMEM of {frames} frames: {e} (locked memory: root or CAP_IPC_LOCK is \
             exempt from RLIMIT_MEMLOCK)"
        )
    })
}

type Rings = (TxQueue, RxQueue, FillQueue, CompQueue);

/// Binds a socket on queue 0 of `interface`, retrying EBUSY for a while.
fn bind(umem: &Umem, interface: &str, config: SocketConfig) -> Result<Rings> {
    let name: Interface = interface
        .parse()
        .map_err(|_| anyhow!("bad interface name {interface:?}"))?;
    let deadline = Instant::now() + BIND_BUSY_RETRY;
    loop {
        // SAFETY: the UMEM is fresh and bound exactly once, so this socket is
        // its first and gets the fill and completion rings; no program is
        // shared with another socket of this UMEM (the constraint xsk-rs
        // documents for shared UMEMs does not arise).
        let result = unsafe { xsk_rs::Socket::new(config, umem, &name, 0) };
        match result {
            Ok((tx, rx, Some((fill, comp)))) => return Ok((tx, rx, fill, comp)),
            Ok((_, _, None)) => bail!("{interface}: the UMEM gave no fill/completion rings"),
            Err(error) => {
                let busy = std::error::Error::source(&error)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.raw_os_error() == Some(libc::EBUSY));
                if busy && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let source = std::error::Error::source(&error)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                bail!("binding an AF_XDP socket on {interface}: {error}{source}");
            }
        }
    }
}

/// Kernel counters of an AF_XDP socket (see `struct xdp_statistics`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full (the sink was too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    /// Malformed TX descriptors (a harness bug if ever non-zero).
    pub tx_invalid: u64,
}

impl SocketStats {
    /// Counter increase from `before` to `self`.
    pub fn since(&self, before: &SocketStats) -> SocketStats {
        SocketStats {
            rx_dropped: self.rx_dropped.saturating_sub(before.rx_dropped),
            rx_ring_full: self.rx_ring_full.saturating_sub(before.rx_ring_full),
            rx_fill_ring_empty: self
                .rx_fill_ring_empty
                .saturating_sub(before.rx_fill_ring_empty),
            tx_invalid: self.tx_invalid.saturating_sub(before.tx_invalid),
        }
    }
}

fn stats_of(rx: &RxQueue) -> SocketStats {
    rx.fd()
        .xdp_statistics()
        .map(|s| SocketStats {
            rx_dropped: s.rx_dropped(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_invalid: s.tx_invalid_descs(),
        })
        .unwrap_or_default()
}

/// The generator's socket: transmit only, no XDP program (the notes found
/// none is needed for AF_XDP TX on a veth), frames pre-filled with
/// templates so sending a frame means stamping its probe, not copying it.
pub struct XskTx {
    umem: Umem,
    tx: TxQueue,
    rx: RxQueue,
    _fill: FillQueue,
    comp: CompQueue,
    /// Each frame's descriptor with its template length, by frame index.
    frames: Vec<FrameDesc>,
    /// Indices of frames in our hand.
    free: Vec<u32>,
    batch: Vec<FrameDesc>,
    completed: Vec<FrameDesc>,
    in_flight: usize,
    kicks: u64,
    ring: usize,
}

impl XskTx {
    /// Opens the socket on `interface` of the calling thread's namespace with
    /// a UMEM of `frames` frames and TX/completion rings of `ring` entries.
    pub fn open(interface: &str, frames: u32, ring: u32) -> Result<Self> {
        let (umem, frames) = new_umem(frames, ring, ring)?;
        let config = SocketConfig::builder()
            .rx_queue_size(queue_size(ring, "ring size")?)
            .tx_queue_size(queue_size(ring, "ring size")?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let (tx, rx, fill, comp) = bind(&umem, interface, config)?;
        let free = (0..frames.len() as u32).collect();
        Ok(XskTx {
            umem,
            tx,
            rx,
            _fill: fill,
            comp,
            batch: Vec::with_capacity(ring as usize),
            completed: vec![FrameDesc::default(); ring as usize],
            free,
            frames,
            in_flight: 0,
            kicks: 0,
            ring: ring as usize,
        })
    }

    /// Fills frame `i` with `templates[i % len]`. Needs every frame back
    /// (nothing in flight): call [`XskTx::drain`] first.
    pub fn load_templates(&mut self, templates: &[Vec<u8>]) -> Result<()> {
        if templates.is_empty() {
            bail!("no frame templates");
        }
        if self.in_flight != 0 {
            bail!("{} frames still in flight", self.in_flight);
        }
        for (i, desc) in self.frames.iter_mut().enumerate() {
            let template = &templates[i % templates.len()];
            // SAFETY: nothing is in flight, so every frame is in our hand: no
            // ring holds it and the kernel does not access it; `desc` is one of
            // this UMEM's own descriptors.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            cursor
                .write_all(template)
                .context("a template does not fit a UMEM frame")?;
        }
        Ok(())
    }

    /// Takes back frames the kernel has transmitted; returns how many.
    pub fn reclaim(&mut self) -> usize {
        if self.in_flight == 0 {
            return 0;
        }
        // SAFETY: the completion ring only returns frames of this UMEM that
        // we put on the TX ring; from here they are in our hand again.
        let n = unsafe { self.comp.consume(&mut self.completed) };
        for desc in &self.completed[..n] {
            self.free.push((desc.addr() / FRAME_SIZE) as u32);
        }
        self.in_flight -= n.min(self.in_flight);
        n
    }

    /// Sends up to `n` frames as one batch with one kick: reclaims completed
    /// frames, lets `stamp(k, frame)` write frame `k` of the batch (its
    /// probe), puts them on the TX ring and kicks the kernel, which in copy
    /// mode transmits them inside the kick. Returns how many were queued
    /// (fewer than `n` when frames or ring slots ran out).
    pub fn send(&mut self, n: usize, mut stamp: impl FnMut(usize, &mut [u8])) -> Result<usize> {
        self.reclaim();
        let n = n
            .min(self.free.len())
            .min(self.tx.nb_free(n as u32) as usize);
        if n == 0 {
            // Nothing to queue: still kick, so the kernel works off the ring.
            self.kick()?;
            return Ok(0);
        }
        self.batch.clear();
        for k in 0..n {
            let index = self.free.pop().expect("n <= free.len()") as usize;
            let mut desc = self.frames[index];
            // SAFETY: frame `index` came off our free list: in our hand, not
            // on any ring, so the kernel does not touch it while we write.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            stamp(k, data.contents_mut());
            self.batch.push(desc);
        }
        // SAFETY: the frames are this UMEM's and in our hand; `n` slots are
        // free (checked above), so the ring takes all of them, and from here
        // the kernel owns them until they come back on the completion ring.
        let produced = unsafe { self.tx.produce(&self.batch) };
        if produced != n {
            for desc in &self.batch {
                self.free.push((desc.addr() / FRAME_SIZE) as u32);
            }
            bail!("the TX ring took {produced} of {n} frames");
        }
        self.in_flight += n;
        self.kick()?;
        Ok(n)
    }

    /// Asks the kernel to transmit what is on the TX ring (copy mode: it
    /// does so inside this call, up to its per-call budget).
    pub fn kick(&mut self) -> Result<()> {
        self.kicks += 1;
        // Transient results (ring busy, EAGAIN for "more left") are not errors.
        self.tx.wakeup().context("TX kick (sendto)")
    }

    /// Kicks and reclaims until every frame is back or `timeout` passes;
    /// returns how many are still out.
    pub fn drain(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.in_flight > 0 && Instant::now() < deadline {
            let _ = self.kick();
            if self.reclaim() == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.in_flight
    }

    /// Frames on the TX ring the kernel has not taken yet. In copy mode a
    /// kick transmits what it takes, so anything left here waits for the
    /// next kick: the generator keeps this short, or its own queue would
    /// show up as dataplane latency.
    pub fn tx_pending(&mut self) -> usize {
        self.ring.saturating_sub(self.tx.nb_free_exact() as usize)
    }

    /// Frames handed to the kernel and not completed yet (on the TX ring,
    /// in transit through the dataplane as skbs, or on the completion ring).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Kicks issued so far.
    pub fn kicks(&self) -> u64 {
        self.kicks
    }

    /// Kernel counters of the socket.
    pub fn stats(&self) -> SocketStats {
        stats_of(&self.rx)
    }
}

/// The sink's socket: receive only, behind libxdp's default XDP program on
/// the sink's interface. All frames live on the fill ring or the RX ring
/// except during [`XskRx::recv`], which hands each received frame to a
/// closure and puts it straight back on the fill ring.
pub struct XskRx {
    umem: Umem,
    _tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    _comp: CompQueue,
    received: Vec<FrameDesc>,
    /// Frames received but not yet back on the fill ring (only if the ring
    /// refused them, which the accounting rules out).
    pending: Vec<FrameDesc>,
    mode: AttachMode,
}

impl XskRx {
    /// Opens the socket on `interface` of the calling thread's namespace:
    /// native XDP first, generic if the driver refuses. `frames` frames all
    /// start on a fill ring of the same size; the RX ring has `frames` slots.
    pub fn open(interface: &str, frames: u32) -> Result<Self> {
        match Self::open_in(interface, frames, AttachMode::Native) {
            Ok(socket) => Ok(socket),
            Err(native) => Self::open_in(interface, frames, AttachMode::Generic)
                .with_context(|| format!("native mode failed first: {native:#}")),
        }
    }

    fn open_in(interface: &str, frames: u32, mode: AttachMode) -> Result<Self> {
        let (umem, descs) = new_umem(frames, frames, 64)?;
        let config = SocketConfig::builder()
            .rx_queue_size(queue_size(frames, "ring size")?)
            .tx_queue_size(queue_size(64, "ring size")?)
            .xdp_flags(mode.flags())
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let (tx, rx, mut fill, comp) = bind(&umem, interface, config)?;
        // SAFETY: fresh descriptors of this UMEM, held by nobody; the fill
        // ring has exactly as many slots as there are frames, so it takes all.
        let produced = unsafe { fill.produce(&descs) };
        if produced != descs.len() {
            bail!("the fill ring took {produced} of {} frames", descs.len());
        }
        Ok(XskRx {
            umem,
            _tx: tx,
            rx,
            fill,
            _comp: comp,
            received: vec![FrameDesc::default(); 256],
            pending: Vec::with_capacity(frames as usize),
            mode,
        })
    }

    /// Frames waiting on the RX ring right now.
    pub fn rx_backlog(&mut self) -> usize {
        self.rx.nb_avail_exact() as usize
    }

    /// The XDP mode the program was attached in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Waits up to `timeout_ms` for frames (poll(): the sink sleeps while
    /// the ring is empty instead of spinning on its core).
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool> {
        self.rx.poll(timeout_ms).context("poll on the sink socket")
    }

    /// Takes up to 256 received frames, shows each to `f`, and returns them
    /// to the fill ring. Returns how many were received.
    pub fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        // SAFETY: the RX ring only hands out frames of this UMEM that the
        // kernel has finished writing; they stay in our hand until produced
        // to the fill ring below.
        let n = unsafe { self.rx.consume(&mut self.received) };
        for desc in &self.received[..n] {
            // SAFETY: the frame is in our hand (see above); reading it while
            // no ring holds it races with nothing.
            let data = unsafe { self.umem.data(desc) };
            f(data.contents());
        }
        self.pending.extend_from_slice(&self.received[..n]);
        if !self.pending.is_empty() {
            let room = self.fill.nb_free(self.pending.len() as u32) as usize;
            let k = room.min(self.pending.len());
            // SAFETY: frames of this UMEM in our hand, done with; `k` slots are
            // free, so the ring takes all `k`, and the kernel owns them again.
            let produced = unsafe { self.fill.produce(&self.pending[..k]) };
            self.pending.drain(..produced);
        }
        n
    }

    /// Kernel counters of the socket (drops for a full RX ring or an empty
    /// fill ring show the sink, not the dataplane, lost frames).
    pub fn stats(&self) -> SocketStats {
        stats_of(&self.rx)
    }
}
