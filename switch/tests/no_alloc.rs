//! The forwarding path allocates nothing per packet: after a warm-up, thousands of
//! loop turns of the worker (receive, parse, learn, forward, flood, transmit) run
//! under a counting global allocator without one allocation.

use etherparse::PacketBuilder;
use switchyard_drivers::memory::{MemPool, MemPort};
use switchyard_pipeline::{L2Config, L2Switch, Timestamp};
use switchyard_switch::worker::Worker;

mod common;

fn frame(src: u8, dst: [u8; 6]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src], dst)
        .ipv4([10, 0, 0, src], [10, 0, 0, dst[5]], 64)
        .tcp(1000, 80, 1, 1000);
    let mut out = Vec::new();
    builder.write(&mut out, &[0u8; 18]).unwrap();
    out
}

#[test]
fn worker_loop_allocates_nothing_per_packet() {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 4096,
        aging_ns: 300_000_000_000,
    });
    for port in 0..3 {
        l2.set_port_domain(port, Some(0));
    }
    // Port 0 and 1 talk unicast (64 stations each); port 2 sends broadcasts (floods).
    let a: Vec<Vec<u8>> = (0..64)
        .map(|i| frame(i, [2, 0, 0, 0, 0, 100 + i]))
        .collect();
    let b: Vec<Vec<u8>> = (0..64)
        .map(|i| frame(100 + i, [2, 0, 0, 0, 0, i]))
        .collect();
    let c: Vec<Vec<u8>> = (0..8).map(|i| frame(200 + i, [0xff; 6])).collect();
    let ports = vec![
        MemPort::replaying(a),
        MemPort::replaying(b),
        MemPort::replaying(c),
    ];
    let mut worker = Worker::new(MemPool::new(4096, 2048), ports, l2, 64);

    for turn in 0..100 {
        worker.poll_once(Timestamp(turn));
    }
    let before = common::allocations();
    let mut received = 0;
    for turn in 100..5_100 {
        received += worker.poll_once(Timestamp(turn));
    }
    let allocations = common::allocations() - before;
    assert!(
        received >= 5_000 * 64,
        "the loop did real work: {received} frames"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while forwarding {received} frames"
    );
    assert_eq!(worker.frames_accounted(), worker.frames_total());
}
