//! UMEM frame accounting: every frame is owned by exactly one place, so after traffic
//! stops and the daemon exits, each worker accounts for all of its frames.
//!
//! Switchyard only.

use std::time::Duration;

use switchyard_tests::{require_root, tcp_transfer, udp_burst, Dataplane, Lab, UdpBurst};

/// Ping, a 10 MiB TCP transfer and a UDP burst, then SIGTERM: the final stats show
/// `umem_frames_accounted == umem_frames_total` for every worker, and the ports'
/// counters cover the traffic that went through them.
#[test]
fn all_umem_frames_accounted_after_traffic() {
    require_root!();
    let mut lab = Lab::builder(Dataplane::Switchyard)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .host("h3", "red", "198.18.0.3/24")
        .start();
    lab.assert_ping("h1", "h2", 3);
    lab.assert_ping("h3", "h1", 3);
    let tcp = tcp_transfer(
        lab.host("h1"),
        lab.host("h2"),
        5201,
        10 << 20,
        Duration::from_secs(60),
    );
    assert!(tcp.intact(), "TCP transfer damaged: {tcp:?}");
    let udp = udp_burst(lab.host("h2"), lab.host("h3"), UdpBurst::default());
    assert!(
        udp.delivery_ratio() >= 0.99,
        "UDP burst lost too much: {udp:?}"
    );

    let exit = lab.stop_daemon();
    let stats = exit.assert_clean();
    assert!(
        !stats.workers.is_empty(),
        "final stats list no workers: {}",
        stats.raw
    );
    for w in &stats.workers {
        assert!(
            w.umem_frames_total > 0,
            "worker {} has an empty UMEM: {}",
            w.index,
            stats.raw
        );
        assert_eq!(
            w.umem_frames_accounted, w.umem_frames_total,
            "worker {}: {} of {} UMEM frames accounted for after exit (leak or double count)\n{}\n--- daemon log ---\n{}",
            w.index, w.umem_frames_accounted, w.umem_frames_total, stats.raw, exit.log
        );
        assert_ne!(
            w.umem_free_list_unique,
            Some(false),
            "worker {}: a frame is on the free list twice (double free)\n{}",
            w.index,
            stats.raw
        );
    }
    // The UDP burst alone put `count` frames through h2 -> h3.
    let h2 = stats.port("h2");
    let h3 = stats.port("h3");
    for port in [h2, h3] {
        let kernel = port.kernel_drops.as_ref().unwrap_or_else(|| {
            panic!(
                "port {} has no kernel_drops (AF_XDP ring drops) in the stats\n{}",
                port.name, stats.raw
            )
        });
        for key in [
            "rx_dropped",
            "rx_ring_full",
            "rx_fill_ring_empty",
            "tx_invalid",
        ] {
            assert!(
                kernel.contains_key(key),
                "port {}: kernel_drops lacks {key}\n{}",
                port.name,
                stats.raw
            );
        }
        assert_eq!(
            kernel.get("tx_invalid"),
            Some(&0),
            "the kernel refused our TX descriptors\n{}",
            stats.raw
        );
    }
    assert!(
        h2.rx_packets >= u64::from(udp.received) && h3.tx_packets >= u64::from(udp.received),
        "port counters miss traffic: h2 rx {} / h3 tx {} < {} datagrams delivered\n{}",
        h2.rx_packets,
        h3.tx_packets,
        udp.received,
        stats.raw
    );
    // Per-stage counters: every received frame went through the parse stage
    // once, and the L2 stage took every frame parsing passed on.
    let stages = stats.raw["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("final stats have no per-stage counters\n{}", stats.raw));
    let stage = |name: &str| {
        stages
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} stage in the stats\n{}", stats.raw))
    };
    let received: u64 = stats.ports.iter().map(|p| p.rx_packets).sum();
    let (parse, l2) = (stage("parse"), stage("l2"));
    assert_eq!(
        parse["frames_in"].as_u64(),
        Some(received),
        "parse stage saw other than every received frame\n{}",
        stats.raw
    );
    assert_eq!(
        l2["frames_in"], parse["passed"],
        "L2 stage took other than what parsing passed on\n{}",
        stats.raw
    );
    assert!(l2["forwarded"].as_u64() > Some(0), "{}", stats.raw);
}
