//! Adapter letting pipeline stages see a worker's batch of frame handles as a
//! [`FrameStore`], so the pipeline stays generic over where frames live.

use crate::FramePool;
use switchyard_pipeline::FrameStore;

/// A batch of frames: handles plus the pool that holds their bytes.
pub struct BatchFrames<'a, P: FramePool> {
    /// The pool owning the bytes.
    pub pool: &'a mut P,
    /// The handles, in batch order (index = PacketMeta index).
    pub handles: &'a mut [P::Handle],
}

impl<P: FramePool> FrameStore for BatchFrames<'_, P> {
    fn frame(&self, index: usize) -> &[u8] {
        self.pool.data(&self.handles[index])
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        self.pool.data_mut(&mut self.handles[index])
    }
}
