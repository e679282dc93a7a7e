//! The driver side of what stages may do to frames: rewrite in place, push and
//! pull headers within the headroom, trim or extend the tail, and originate a
//! frame from the pool into the batch, with every frame still accounted for.

use switchyard_drivers::memory::{MemPool, MemPort, HEADROOM};
use switchyard_drivers::{BatchFrames, FramePool, Port};
use switchyard_pipeline::{Batch, FrameError, FrameStore, PacketMeta, Timestamp, MIN_HEADROOM};

#[test]
fn in_memory_frames_have_the_guaranteed_headroom_and_move_their_start() {
    const { assert!(HEADROOM >= MIN_HEADROOM && MIN_HEADROOM >= 64) };
    let mut pool = MemPool::new(4, 256);
    let mut h = pool.alloc_from(&[1, 2, 3, 4]).unwrap();
    assert_eq!(pool.headroom(&h), HEADROOM);
    assert_eq!(pool.tailroom(&h), 256 - 4);
    pool.push_head(&mut h, 50).unwrap();
    assert_eq!(pool.data(&h).len(), 54);
    assert_eq!(
        &pool.data(&h)[50..],
        [1, 2, 3, 4],
        "the old bytes did not move"
    );
    pool.data_mut(&mut h)[..50].fill(9);
    assert_eq!(pool.headroom(&h), HEADROOM - 50);
    assert_eq!(
        pool.push_head(&mut h, HEADROOM - 49),
        Err(FrameError::NoHeadroom)
    );
    pool.pull_head(&mut h, 52).unwrap();
    assert_eq!(pool.data(&h), [3, 4]);
    assert_eq!(pool.pull_head(&mut h, 3), Err(FrameError::TooShort));
    pool.set_len(&mut h, 6).unwrap();
    assert_eq!(&pool.data(&h)[..2], [3, 4]);
    assert_eq!(pool.set_len(&mut h, 10_000), Err(FrameError::NoTailroom));
    // A pushed frame longer than the frame size still copies whole (flooding).
    let mut big = pool.alloc_from(&[5u8; 256]).unwrap();
    pool.push_head(&mut big, 64).unwrap();
    let mut copy = pool.alloc().unwrap();
    pool.copy_into(&big, &mut copy);
    assert_eq!(pool.data(&copy), pool.data(&big));
    // Freed and taken again, a frame starts after the full headroom.
    pool.free(h);
    let again = pool.alloc().unwrap();
    assert_eq!(pool.headroom(&again), HEADROOM);
}

#[test]
fn a_batch_over_pool_frames_originates_without_growing_its_arrays() {
    let mut pool = MemPool::new(8, 256);
    let mut port = MemPort::new();
    port.inbound.extend([vec![0xabu8; 60], vec![0xcd; 60]]);
    let mut handles = Vec::with_capacity(3);
    assert_eq!(port.rx_burst(&mut pool, &mut handles, 2), 2);
    let mut metas = vec![PacketMeta::new(0); 4];
    let mut frames = BatchFrames {
        pool: &mut pool,
        handles: &mut handles,
    };
    let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(0));
    assert_eq!(batch.len(), 2);

    // A reply built from the first frame, the first rewritten in place.
    let reply = batch.originate(1).unwrap();
    assert_eq!(reply, 2);
    let frames = batch.frames_mut();
    frames.set_len(reply, 42).unwrap();
    frames.frame_mut(reply).fill(0x11);
    frames.frame_mut(0)[0] = 0xff;
    frames.push_head(1, 50).unwrap();
    assert_eq!(frames.frame(1).len(), 110);
    assert_eq!(batch.metas()[2].in_port, 1);

    // The handle array had room for exactly one more: the next one fails
    // instead of allocating.
    assert_eq!(batch.originate(1), Err(FrameError::NoFreeFrame));
    assert_eq!(handles.capacity(), 3);
    assert_eq!(handles.len(), 3);
    assert_eq!(pool.data(&handles[2]), [0x11; 42]);
    assert_eq!(pool.data(&handles[0])[..2], [0xff, 0xab]);
    assert_eq!(pool.free_count(), 8 - 3);

    // Every frame goes back: nothing leaked.
    let result = port.tx_burst(&mut pool, &mut handles);
    assert_eq!(result.accepted, 3);
    assert_eq!(pool.free_count(), 8);
    assert!(pool.free_list_is_unique());
    assert_eq!(port.outbound[1].len(), 110);
}

#[test]
fn originating_fails_cleanly_when_the_pool_is_empty() {
    let mut pool = MemPool::new(1, 128);
    let mut handles = Vec::with_capacity(4);
    handles.push(pool.alloc_from(&[1; 20]).unwrap());
    let mut metas = vec![PacketMeta::new(0); 4];
    let mut frames = BatchFrames {
        pool: &mut pool,
        handles: &mut handles,
    };
    let mut batch = Batch::new(&mut frames, &mut metas, Timestamp(0));
    assert_eq!(batch.originate(0), Err(FrameError::NoFreeFrame));
    assert_eq!(batch.len(), 1);
}

/// The same operations on a real UMEM (needs root for the locked memory and
/// the AF_XDP socket libxdp creates with it; skipped otherwise).
#[test]
fn umem_frames_resize_within_their_data_area() {
    use switchyard_drivers::afxdp::{UmemPool, FRAME_SIZE, MAX_FRAME_WITH_HEADROOM, XDP_HEADROOM};
    let mut pool = match UmemPool::new(16, 16, 16) {
        Ok(pool) => pool,
        Err(error) => {
            if std::env::var_os("CI").is_some() && is_root() {
                panic!("cannot create a UMEM as root: {error}");
            }
            println!("SKIP: cannot create a UMEM here: {error}");
            return;
        }
    };
    let mut h = pool.alloc_from(&[1, 2, 3, 4]).unwrap();
    assert_eq!(pool.tailroom(&h), FRAME_SIZE - XDP_HEADROOM - 4);
    assert!(pool.headroom(&h) >= MIN_HEADROOM);
    pool.push_head(&mut h, 50).unwrap();
    assert_eq!(pool.data(&h).len(), 54);
    assert_eq!(&pool.data(&h)[50..], [1, 2, 3, 4]);
    pool.data_mut(&mut h)[..50].fill(7);
    pool.pull_head(&mut h, 50).unwrap();
    assert_eq!(pool.data(&h), [1, 2, 3, 4]);
    pool.set_len(&mut h, 2).unwrap();
    assert_eq!(pool.data(&h), [1, 2]);
    assert_eq!(
        pool.set_len(&mut h, FRAME_SIZE),
        Err(FrameError::NoTailroom)
    );
    let mut full = pool
        .alloc_from(&vec![0u8; MAX_FRAME_WITH_HEADROOM])
        .unwrap();
    assert_eq!(pool.headroom(&full), MIN_HEADROOM);
    pool.push_head(&mut full, MIN_HEADROOM).unwrap();
    assert_eq!(pool.push_head(&mut full, 1), Err(FrameError::NoHeadroom));
    pool.free(h);
    pool.free(full);
    assert_eq!(pool.free_count(), 16);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
