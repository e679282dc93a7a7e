//! Adapter letting pipeline stages see a worker's batch of frame handles as a
//! [`FrameStore`], so the pipeline stays generic over where frames live.

use crate::FramePool;
use switchyard_pipeline::{FrameError, FrameStore};

/// A batch of frames: handles plus the pool that holds their bytes.
///
/// Frames a stage originates are taken from `pool` and appended to `handles`,
/// but only while `handles` has spare capacity (the worker reserves it once), so
/// originating never allocates; without spare capacity it fails as if the pool
/// were empty.
pub struct BatchFrames<'a, P: FramePool> {
    /// The pool owning the bytes.
    pub pool: &'a mut P,
    /// The handles, in batch order (index = PacketMeta index).
    pub handles: &'a mut Vec<P::Handle>,
}

impl<P: FramePool> FrameStore for BatchFrames<'_, P> {
    fn frame_count(&self) -> usize {
        self.handles.len()
    }

    fn frame(&self, index: usize) -> &[u8] {
        self.pool.data(&self.handles[index])
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        self.pool.data_mut(&mut self.handles[index])
    }

    fn headroom(&self, index: usize) -> usize {
        self.pool.headroom(&self.handles[index])
    }

    fn tailroom(&self, index: usize) -> usize {
        self.pool.tailroom(&self.handles[index])
    }

    fn push_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        self.pool.push_head(&mut self.handles[index], n)
    }

    fn pull_head(&mut self, index: usize, n: usize) -> Result<(), FrameError> {
        self.pool.pull_head(&mut self.handles[index], n)
    }

    fn set_len(&mut self, index: usize, len: usize) -> Result<(), FrameError> {
        self.pool.set_len(&mut self.handles[index], len)
    }

    fn originate(&mut self) -> Result<usize, FrameError> {
        if self.handles.len() >= self.handles.capacity() {
            return Err(FrameError::NoFreeFrame);
        }
        let handle = self.pool.alloc().ok_or(FrameError::NoFreeFrame)?;
        self.handles.push(handle);
        Ok(self.handles.len() - 1)
    }
}
