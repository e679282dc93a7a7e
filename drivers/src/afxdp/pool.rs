//! The worker's UMEM and its free list.

use crate::{FramePool, PortError};
use std::io::Write;
use std::num::NonZeroU32;
use switchyard_pipeline::{FrameError, MIN_HEADROOM};
use xsk_rs::config::{QueueSize, UmemConfig};
use xsk_rs::{FrameDesc, Umem};

/// Marks a frame that no socket holds (free, or in the worker's hands).
const NO_SOCKET: u16 = u16::MAX;

/// Size of every UMEM frame (chunk): xsk-rs's default, 4 KiB.
pub const FRAME_SIZE: usize = 4096;
/// The kernel's `XDP_PACKET_HEADROOM`: the first 256 bytes of every chunk come
/// before the packet (the UMEM is created without extra user headroom), so a
/// frame's data area is `FRAME_SIZE - XDP_HEADROOM` = 3,840 bytes.
pub const XDP_HEADROOM: usize = 256;
/// Largest frame that still gets the pipeline's [`MIN_HEADROOM`] for pushes.
///
/// xsk-rs 0.11 gives every descriptor a fixed address (its `FrameDesc` has no
/// way to move it into the XDP headroom), so a head push here moves the frame's
/// bytes toward its tail within the 3,840-byte data area instead of moving the
/// descriptor: one copy of the frame per push (a few tens of ns for 1,500
/// bytes), no allocation. A frame up to this size (every frame of a 1,500-MTU
/// port) always has [`MIN_HEADROOM`] to grow into.
pub const MAX_FRAME_WITH_HEADROOM: usize = FRAME_SIZE - XDP_HEADROOM - MIN_HEADROOM;

/// One UMEM plus the descriptors of the frames nobody else holds.
///
/// It also remembers which socket each frame was last handed to (fill or TX
/// ring), one store per hand-over, so that when a socket is closed at run time
/// (a container detached) the frames left in its rings come back to the free list
/// instead of leaking: hot-plug keeps the frame audit exact.
#[derive(Debug)]
pub struct UmemPool {
    /// The socket that owns the UMEM's own descriptor (see [`set_anchor`](Self::set_anchor)).
    anchor: Option<Box<super::XdpPort>>,
    umem: Umem,
    free: Vec<FrameDesc>,
    total: usize,
    /// Every frame's descriptor as created, to recreate one by index.
    originals: Vec<FrameDesc>,
    /// Socket holding each frame, by frame index, or [`NO_SOCKET`].
    owner: Vec<u16>,
    frame_size: usize,
    /// Next never-used socket id.
    next_socket: u16,
    /// Ids of closed sockets, free for reuse: an id is reused only after its
    /// socket's frames were reclaimed, so no live socket ever shares one.
    free_ids: Vec<u16>,
    /// Free frames that refills above a socket's minimum never take (see
    /// [`set_reserve`](Self::set_reserve)).
    reserve: usize,
    /// Frames still free to grant as idle sockets' burst allowance (see
    /// [`grant_burst`](Self::grant_burst)).
    burst_allowance: usize,
}

impl UmemPool {
    /// Creates a UMEM of `frames` 4 KiB frames whose per-socket fill and
    /// completion rings have `fill_size` and `comp_size` entries.
    pub fn new(frames: u32, fill_size: u32, comp_size: u32) -> Result<Self, PortError> {
        let invalid = |what: &str| PortError::Invalid(format!("{what} must be a power of two"));
        let config = UmemConfig::builder()
            .fill_queue_size(QueueSize::new(fill_size).map_err(|_| invalid("fill ring size"))?)
            .comp_queue_size(
                QueueSize::new(comp_size).map_err(|_| invalid("completion ring size"))?,
            )
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        let count = NonZeroU32::new(frames)
            .ok_or_else(|| PortError::Invalid("umem_frames must be > 0".into()))?;
        let (umem, descs) = Umem::new(config, count, false).map_err(|e| {
            let source = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(|io| std::io::Error::new(io.kind(), io.to_string()))
                .unwrap_or_else(|| std::io::Error::other(e.to_string()));
            let hint = if source.raw_os_error() == Some(libc::ENOMEM)
                || source.raw_os_error() == Some(libc::EPERM)
            {
                " (locked memory: RLIMIT_MEMLOCK is small on many systems; root or CAP_IPC_LOCK is exempt)"
            } else {
                ""
            };
            PortError::Umem { frames, source, hint }
        })?;
        let total = descs.len();
        let frame_size = config.frame_size().get() as usize;
        debug_assert_eq!(frame_size, FRAME_SIZE);
        debug_assert_eq!(config.xdp_headroom() as usize, XDP_HEADROOM);
        Ok(UmemPool {
            anchor: None,
            umem,
            originals: descs.clone(),
            free: descs,
            total,
            owner: vec![NO_SOCKET; total],
            frame_size,
            next_socket: 0,
            free_ids: Vec::new(),
            reserve: 0,
            burst_allowance: 0,
        })
    }

    /// Keeps the UMEM's first socket alive for the pool's lifetime. libxdp gives
    /// the first socket of a UMEM the UMEM's own descriptor and shares the UMEM
    /// with every later socket through it; if that socket's interface went away
    /// (a detached container), no further socket could bind. The daemon therefore
    /// binds each worker's first socket to a traffic-free anchor interface it owns
    /// and parks it here. It holds no frames.
    pub fn set_anchor(&mut self, socket: super::XdpPort) {
        self.anchor = Some(Box::new(socket));
    }

    /// Keeps `frames` free frames out of busy sockets' top-ups, for floods,
    /// frames handed over by other workers, and idle sockets' minimum.
    pub fn set_reserve(&mut self, frames: usize) {
        self.reserve = frames;
    }

    /// Sets how many frames, in all, idle sockets may keep posted beyond their
    /// minimum so that a burst arriving while the worker sleeps finds buffers.
    /// A worker-wide budget, granted per socket when it joins and returned when
    /// it closes: frames posted to an idle socket cannot be taken back until it
    /// receives, so per-socket floors that followed the port count would leave
    /// frames stranded as ports are added; a fixed budget never does.
    pub fn set_burst_allowance(&mut self, frames: usize) {
        self.burst_allowance = frames;
    }

    /// Grants a joining socket up to `want` frames of the burst allowance;
    /// returns how many (fewer, or none, once the budget is spent).
    pub fn grant_burst(&mut self, want: usize) -> usize {
        let granted = want.min(self.burst_allowance);
        self.burst_allowance -= granted;
        granted
    }

    /// Gives a closing socket's burst allowance back for the next socket.
    pub fn return_burst(&mut self, frames: usize) {
        self.burst_allowance += frames;
    }

    /// Frames of the burst allowance not granted to any socket.
    pub fn burst_allowance(&self) -> usize {
        self.burst_allowance
    }

    /// Free frames kept out of busy sockets' top-ups.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// A handle on the UMEM for binding sockets from another thread (the control
    /// thread binds a hot-plugged port while the worker keeps forwarding).
    pub fn umem_handle(&self) -> Umem {
        self.umem.clone()
    }

    /// A fresh id for a socket joining this pool: a closed socket's id, or a
    /// never-used one. `None` when 65,535 sockets are live at once.
    pub(crate) fn register_socket(&mut self) -> Option<u16> {
        if let Some(id) = self.free_ids.pop() {
            return Some(id);
        }
        if self.next_socket == NO_SOCKET {
            return None;
        }
        let id = self.next_socket;
        self.next_socket += 1;
        Some(id)
    }

    #[inline]
    fn index(&self, desc: &FrameDesc) -> usize {
        desc.addr() / self.frame_size
    }

    /// Records that `socket` now holds the frame (given to its fill or TX ring).
    #[inline]
    pub(crate) fn give(&mut self, desc: &FrameDesc, socket: u16) {
        let index = self.index(desc);
        if let Some(owner) = self.owner.get_mut(index) {
            *owner = socket;
        }
    }

    /// Records that the frame came back from a socket (received).
    #[inline]
    pub(crate) fn take_back(&mut self, desc: &FrameDesc) {
        let index = self.index(desc);
        if let Some(owner) = self.owner.get_mut(index) {
            *owner = NO_SOCKET;
        }
    }

    /// Returns to the free list every frame a closed socket still held; returns
    /// how many. Linear in the pool size: control path only.
    pub(crate) fn reclaim(&mut self, socket: u16) -> usize {
        let mut reclaimed = 0;
        if socket == NO_SOCKET {
            return 0;
        }
        for index in 0..self.owner.len() {
            if self.owner[index] == socket {
                self.owner[index] = NO_SOCKET;
                let mut desc = self.originals[index];
                // SAFETY: the socket that held this frame is closed, so no ring
                // and no batch refers to it any more; it is ours to reset.
                #[allow(unsafe_code)]
                unsafe { self.umem.data_mut(&mut desc) }.cursor().set_pos(0);
                self.free.push(desc);
                reclaimed += 1;
            }
        }
        // Every frame of the closed socket is back: its id may serve another.
        self.free_ids.push(socket);
        reclaimed
    }

    /// The UMEM, for binding sockets to it.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Takes up to `n` free descriptors off the free list into `out` (for the fill ring).
    pub(crate) fn take_free(&mut self, n: usize, out: &mut Vec<FrameDesc>) {
        let start = self.free.len().saturating_sub(n);
        out.extend(self.free.drain(start..));
    }
}

impl FramePool for UmemPool {
    type Handle = FrameDesc;

    fn alloc(&mut self) -> Option<FrameDesc> {
        let mut desc = self.free.pop()?;
        // SAFETY: `desc` came off our free list, so it names a frame of this UMEM
        // that no ring and no batch holds; nothing else accesses it.
        #[allow(unsafe_code)]
        unsafe { self.umem.data_mut(&mut desc) }.cursor().set_pos(0);
        Some(desc)
    }

    fn free(&mut self, handle: FrameDesc) {
        self.take_back(&handle);
        self.free.push(handle);
    }

    fn data(&self, handle: &FrameDesc) -> &[u8] {
        // SAFETY: handles given to the pool's users come from this UMEM (our free
        // list or our sockets' rings) and are held by the worker, not by a ring, so
        // the kernel does not write the frame while it is read.
        #[allow(unsafe_code)]
        unsafe { self.umem.data(handle) }.contents()
    }

    fn data_mut(&mut self, handle: &mut FrameDesc) -> &mut [u8] {
        // SAFETY: as in `data`; in addition `&mut self` and `&mut handle` keep this
        // the only access to the frame, and the slice re-borrowed below points into
        // the UMEM mapping, which lives as long as `self.umem`.
        #[allow(unsafe_code)]
        unsafe {
            let mut data = self.umem.data_mut(handle);
            let bytes = data.contents_mut();
            std::slice::from_raw_parts_mut(bytes.as_mut_ptr(), bytes.len())
        }
    }

    fn headroom(&self, handle: &FrameDesc) -> usize {
        // Pushes move the bytes (see MAX_FRAME_WITH_HEADROOM): whatever is free
        // after the frame in its data area can be pushed at its head.
        self.tailroom(handle)
    }

    fn tailroom(&self, handle: &FrameDesc) -> usize {
        let capacity = self.frame_size - handle.addr() % self.frame_size;
        capacity.saturating_sub(handle.lengths().data())
    }

    fn push_head(&mut self, handle: &mut FrameDesc, n: usize) -> Result<(), FrameError> {
        if n > self.tailroom(handle) {
            return Err(FrameError::NoHeadroom);
        }
        let len = handle.lengths().data();
        // SAFETY: the worker holds `handle` (not a ring), so the kernel does not
        // touch the frame, and `&mut self` + `&mut handle` make this the only
        // access; the length stays within the frame's data area (checked above,
        // and the cursor clamps it).
        #[allow(unsafe_code)]
        let mut data = unsafe { self.umem.data_mut(handle) };
        data.cursor().set_pos(len + n);
        data.contents_mut().copy_within(0..len, n);
        Ok(())
    }

    fn pull_head(&mut self, handle: &mut FrameDesc, n: usize) -> Result<(), FrameError> {
        let len = handle.lengths().data();
        if n > len {
            return Err(FrameError::TooShort);
        }
        // SAFETY: as in `push_head`.
        #[allow(unsafe_code)]
        let mut data = unsafe { self.umem.data_mut(handle) };
        data.contents_mut().copy_within(n..len, 0);
        data.cursor().set_pos(len - n);
        Ok(())
    }

    fn set_len(&mut self, handle: &mut FrameDesc, len: usize) -> Result<(), FrameError> {
        let capacity = self.frame_size - handle.addr() % self.frame_size;
        if len > capacity {
            return Err(FrameError::NoTailroom);
        }
        // SAFETY: as in `push_head`.
        #[allow(unsafe_code)]
        unsafe { self.umem.data_mut(handle) }.cursor().set_pos(len);
        Ok(())
    }

    fn alloc_from(&mut self, bytes: &[u8]) -> Option<FrameDesc> {
        let mut desc = self.alloc()?;
        // SAFETY: `desc` is fresh from our free list: a frame of this UMEM that no
        // ring and no batch holds.
        #[allow(unsafe_code)]
        let written = unsafe { self.umem.data_mut(&mut desc) }
            .cursor()
            .write_all(bytes)
            .is_ok();
        if written {
            Some(desc)
        } else {
            self.free.push(desc);
            None
        }
    }

    fn copy_into(&mut self, src: &FrameDesc, dst: &mut FrameDesc) {
        // SAFETY: `src` and `dst` are distinct frames of this UMEM held by the
        // worker (dst fresh from `alloc`), so reading one while writing the other
        // does not alias and the kernel touches neither.
        #[allow(unsafe_code)]
        unsafe {
            let bytes = self.umem.data(src).contents();
            let mut data = self.umem.data_mut(dst);
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            // A frame always fits in another frame of the same UMEM.
            let _ = cursor.write_all(bytes);
        }
    }

    fn total(&self) -> usize {
        self.total
    }

    fn free_count(&self) -> usize {
        self.free.len()
    }

    fn free_list_is_unique(&self) -> bool {
        // By frame index, not address: a received descriptor's address carries
        // the XDP headroom offset, so the same frame can appear under two
        // addresses.
        let mut seen = vec![false; self.total];
        self.free.iter().all(|d| match seen.get_mut(self.index(d)) {
            Some(slot) if !*slot => {
                *slot = true;
                true
            }
            _ => false,
        })
    }
}
