//! [`Batch`]: what a stage is handed. The frames, one [`PacketMeta`] each, and
//! the burst's clock reading, plus spare metas so a stage can originate frames
//! (replies, ICMP errors) into the same batch without allocating.

use crate::frame::{FrameError, FrameStore, PacketMeta, PortId, Timestamp};

/// A batch of frames in flight through the stages.
///
/// `metas[..len]` describe frames `0..len` of the store; `metas[len..]` is room
/// for frames stages originate ([`originate`](Self::originate)), reused from
/// burst to burst, so a batch never allocates.
pub struct Batch<'a, F: FrameStore + ?Sized> {
    frames: &'a mut F,
    metas: &'a mut [PacketMeta],
    len: usize,
    now: Timestamp,
    handed_in: bool,
}

impl<'a, F: FrameStore + ?Sized> Batch<'a, F> {
    /// A batch over every frame of `frames`; `metas` must hold at least that
    /// many entries (extra entries are room for originated frames; with fewer,
    /// the batch covers only as many frames as there are metas).
    pub fn new(frames: &'a mut F, metas: &'a mut [PacketMeta], now: Timestamp) -> Self {
        let len = frames.frame_count().min(metas.len());
        Batch {
            frames,
            metas,
            len,
            now,
            handed_in: false,
        }
    }

    /// Marks the batch as frames another worker handed to this one to
    /// process (NAT flow ownership): stages then never hand them on, so a
    /// frame is handed over at most once.
    pub fn handed_in(mut self) -> Self {
        self.handed_in = true;
        self
    }

    /// True for frames another worker handed to this one to process.
    #[inline]
    pub fn is_handed_in(&self) -> bool {
        self.handed_in
    }

    /// Frames in the batch, originated ones included.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a batch without frames.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Metas left for frames stages may still originate (a caller that
    /// releases waiting frames into the batch checks it first).
    #[inline]
    pub fn room(&self) -> usize {
        self.metas.len() - self.len
    }

    /// The burst's clock reading (one read per burst, none per packet).
    #[inline]
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The metas of the batch's frames.
    #[inline]
    pub fn metas(&self) -> &[PacketMeta] {
        &self.metas[..self.len]
    }

    /// The metas, mutable.
    #[inline]
    pub fn metas_mut(&mut self) -> &mut [PacketMeta] {
        &mut self.metas[..self.len]
    }

    /// The frames.
    #[inline]
    pub fn frames(&self) -> &F {
        self.frames
    }

    /// The frames, mutable (rewrites, resizing).
    #[inline]
    pub fn frames_mut(&mut self) -> &mut F {
        self.frames
    }

    /// Frames and metas at once, for a stage that walks the metas while it
    /// reads or rewrites frames.
    #[inline]
    pub fn split(&mut self) -> (&mut F, &mut [PacketMeta]) {
        (&mut *self.frames, &mut self.metas[..self.len])
    }

    /// True if any frame is still undecided (later stages can be skipped
    /// otherwise).
    #[inline]
    pub fn any_pending(&self) -> bool {
        self.metas().iter().any(|m| m.verdict.is_pending())
    }

    /// Takes a fresh frame from the pool into the batch, with a new meta on
    /// `in_port` (the port whose traffic it answers), and returns its index.
    /// The frame is empty: give it a length with [`FrameStore::set_len`] and
    /// bytes with [`FrameStore::frame_mut`], and set the meta's verdict. Fails
    /// when the batch has no spare meta or the pool no free frame.
    pub fn originate(&mut self, in_port: PortId) -> Result<usize, FrameError> {
        if self.len >= self.metas.len() || self.frames.frame_count() != self.len {
            return Err(FrameError::NoFreeFrame);
        }
        let index = self.frames.originate()?;
        debug_assert_eq!(index, self.len, "a store originates at its end");
        self.metas[self.len] = PacketMeta::new(in_port);
        self.len += 1;
        Ok(index)
    }
}
