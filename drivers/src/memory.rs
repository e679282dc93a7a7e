//! An in-memory port and pool: frames are plain byte arrays, receive queues are
//! filled by the test or benchmark, transmitted frames are kept (or only
//! counted). Lets the worker loop above the driver be tested and benchmarked
//! without root, sockets or a kernel.

use crate::{FramePool, Port, PortError, TxResult};
use std::collections::VecDeque;
use switchyard_pipeline::FrameError;

/// A pool of fixed-size frames held in one vector.
///
/// Each frame's buffer is [`HEADROOM`] bytes of headroom followed by
/// `frame_size` bytes for the frame; a frame starts after the headroom when
/// allocated or received, and stages move its start with `push_head` and
/// `pull_head` (no copy), as AF_XDP frames would with a movable descriptor.
#[derive(Debug)]
pub struct MemPool {
    frame_size: usize,
    bytes: Vec<u8>,
    /// Offset of each frame's first byte inside its buffer.
    starts: Vec<usize>,
    lens: Vec<usize>,
    free: Vec<u32>,
}

/// Headroom in front of every in-memory frame: the pipeline's guarantee.
pub const HEADROOM: usize = switchyard_pipeline::MIN_HEADROOM;

impl MemPool {
    /// A pool of `frames` frames of `frame_size` bytes each.
    pub fn new(frames: u32, frame_size: usize) -> Self {
        MemPool {
            frame_size,
            bytes: vec![0; frames as usize * (HEADROOM + frame_size)],
            starts: vec![HEADROOM; frames as usize],
            lens: vec![0; frames as usize],
            free: (0..frames).rev().collect(),
        }
    }

    /// Largest frame this pool can hold.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Size of one frame's buffer, headroom included.
    fn buffer_size(&self) -> usize {
        HEADROOM + self.frame_size
    }

    fn range(&self, handle: u32) -> std::ops::Range<usize> {
        let start = handle as usize * self.buffer_size() + self.starts[handle as usize];
        start..start + self.lens[handle as usize]
    }

    /// Allocates a frame and writes `bytes` into it (truncated to the frame size).
    pub fn alloc_with(&mut self, bytes: &[u8]) -> Option<u32> {
        let handle = self.free.pop()?;
        let len = bytes.len().min(self.frame_size);
        self.starts[handle as usize] = HEADROOM;
        self.lens[handle as usize] = len;
        let range = self.range(handle);
        self.bytes[range].copy_from_slice(&bytes[..len]);
        Some(handle)
    }
}

impl FramePool for MemPool {
    type Handle = u32;

    fn alloc(&mut self) -> Option<u32> {
        let handle = self.free.pop()?;
        self.starts[handle as usize] = HEADROOM;
        self.lens[handle as usize] = 0;
        Some(handle)
    }

    fn headroom(&self, handle: &u32) -> usize {
        self.starts[*handle as usize]
    }

    fn tailroom(&self, handle: &u32) -> usize {
        let h = *handle as usize;
        self.buffer_size() - self.starts[h] - self.lens[h]
    }

    fn push_head(&mut self, handle: &mut u32, n: usize) -> Result<(), FrameError> {
        let h = *handle as usize;
        if n > self.starts[h] {
            return Err(FrameError::NoHeadroom);
        }
        self.starts[h] -= n;
        self.lens[h] += n;
        Ok(())
    }

    fn pull_head(&mut self, handle: &mut u32, n: usize) -> Result<(), FrameError> {
        let h = *handle as usize;
        if n > self.lens[h] {
            return Err(FrameError::TooShort);
        }
        self.starts[h] += n;
        self.lens[h] -= n;
        Ok(())
    }

    fn set_len(&mut self, handle: &mut u32, len: usize) -> Result<(), FrameError> {
        let h = *handle as usize;
        if self.starts[h] + len > self.buffer_size() {
            return Err(FrameError::NoTailroom);
        }
        self.lens[h] = len;
        Ok(())
    }

    fn free(&mut self, handle: u32) {
        self.free.push(handle);
    }

    fn data(&self, handle: &u32) -> &[u8] {
        &self.bytes[self.range(*handle)]
    }

    fn data_mut(&mut self, handle: &mut u32) -> &mut [u8] {
        let range = self.range(*handle);
        &mut self.bytes[range]
    }

    fn alloc_from(&mut self, bytes: &[u8]) -> Option<u32> {
        if bytes.len() > self.frame_size {
            return None;
        }
        self.alloc_with(bytes)
    }

    fn copy_into(&mut self, src: &u32, dst: &mut u32) {
        let from = self.range(*src);
        // A frame pushed into its headroom may be longer than `frame_size`:
        // the copy keeps it whole by starting as early in `dst` as it must.
        let len = from.len();
        let start = self.buffer_size().saturating_sub(len).min(HEADROOM);
        let to = *dst as usize * self.buffer_size() + start;
        self.bytes.copy_within(from, to);
        self.starts[*dst as usize] = start;
        self.lens[*dst as usize] = len;
    }

    fn total(&self) -> usize {
        self.lens.len()
    }

    fn free_count(&self) -> usize {
        self.free.len()
    }

    fn free_list_is_unique(&self) -> bool {
        let mut seen = vec![false; self.lens.len()];
        self.free
            .iter()
            .all(|h| !std::mem::replace(&mut seen[*h as usize], true))
    }
}

/// An in-memory port: `inbound` frames are received, transmitted frames land in
/// `outbound` (or are only counted when `keep_tx` is false, for benchmarks).
#[derive(Debug, Default)]
pub struct MemPort {
    /// Frames waiting to be received, oldest first.
    pub inbound: VecDeque<Vec<u8>>,
    /// Frames transmitted, oldest first (when `keep_tx`).
    pub outbound: Vec<Vec<u8>>,
    /// Whether transmitted frames are kept in `outbound`.
    pub keep_tx: bool,
    /// Frames transmitted so far.
    pub tx_count: u64,
    /// Transmit ring capacity per burst (simulates a full ring when exceeded).
    pub tx_capacity: usize,
    /// When set, `rx_burst` cycles through `inbound` without consuming it
    /// (benchmarks replay one prepared set of frames forever).
    pub replay: bool,
    replay_pos: usize,
}

impl MemPort {
    /// A port that keeps what it transmits.
    pub fn new() -> Self {
        MemPort {
            keep_tx: true,
            tx_capacity: usize::MAX,
            ..Default::default()
        }
    }

    /// A port that replays `frames` forever on receive and only counts transmits.
    pub fn replaying(frames: Vec<Vec<u8>>) -> Self {
        MemPort {
            inbound: frames.into(),
            keep_tx: false,
            tx_capacity: usize::MAX,
            replay: true,
            ..Default::default()
        }
    }
}

impl Port for MemPort {
    type Pool = MemPool;

    fn rx_burst(&mut self, pool: &mut MemPool, out: &mut Vec<u32>, max: usize) -> usize {
        let mut received = 0;
        while received < max {
            let frame = if self.replay {
                if self.inbound.is_empty() {
                    break;
                }
                let frame = &self.inbound[self.replay_pos];
                self.replay_pos = (self.replay_pos + 1) % self.inbound.len();
                frame.as_slice()
            } else {
                match self.inbound.front() {
                    Some(frame) => frame.as_slice(),
                    None => break,
                }
            };
            let Some(handle) = pool.alloc_with(frame) else {
                break;
            };
            if !self.replay {
                self.inbound.pop_front();
            }
            out.push(handle);
            received += 1;
        }
        received
    }

    fn tx_burst(&mut self, pool: &mut MemPool, frames: &mut Vec<u32>) -> TxResult {
        let mut result = TxResult::default();
        for (i, handle) in frames.drain(..).enumerate() {
            if i >= self.tx_capacity {
                result.ring_full += 1;
            } else {
                let data = pool.data(&handle);
                result.accepted += 1;
                result.accepted_bytes += data.len();
                self.tx_count += 1;
                if self.keep_tx {
                    self.outbound.push(data.to_vec());
                }
            }
            pool.free(handle);
        }
        result
    }

    fn service(&mut self, _pool: &mut MemPool) -> Result<(), PortError> {
        Ok(())
    }

    fn frames_held(&self) -> usize {
        0
    }

    fn tx_pending(&self) -> bool {
        false
    }

    fn release(&mut self, _pool: &mut MemPool) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_accounted_through_rx_and_tx() {
        let mut pool = MemPool::new(8, 64);
        let mut port = MemPort::new();
        port.inbound.extend([vec![1u8; 10], vec![2u8; 70]]);
        let mut batch = Vec::new();
        assert_eq!(port.rx_burst(&mut pool, &mut batch, 16), 2);
        assert_eq!(pool.free_count(), 6);
        assert_eq!(
            pool.data(&batch[1]).len(),
            64,
            "truncated to the frame size"
        );
        let result = port.tx_burst(&mut pool, &mut batch);
        assert_eq!(result.accepted, 2);
        assert_eq!(pool.free_count(), 8);
        assert_eq!(port.outbound[0], vec![1u8; 10]);
    }
}
