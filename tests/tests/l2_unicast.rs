//! Learned unicast is not flooded: a third host sees nothing of h1 -> h2 traffic.

use switchyard_tests::{dataplane_tests, udp_burst, Dataplane, Lab, UdpBurst};

/// A handful of stray frames is tolerated (an ARP refresh is broadcast); a flood of the
/// 1000-datagram burst is not.
const STRAY_LIMIT: u64 = 5;

/// After h1 and h2 have been learned (ping both ways), 1000 UDP datagrams h1 -> h2 add
/// fewer than 5 frames to h3's port (dataplane counters) and to h3's eth0 (kernel rx).
fn learned_unicast_not_flooded(dp: Dataplane) {
    let mut lab = Lab::builder(dp)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .host("h3", "red", "198.18.0.3/24")
        .start();
    lab.assert_ping("h1", "h2", 2);
    lab.assert_ping("h2", "h1", 2);

    for station in ["h1", "h2"] {
        assert_eq!(
            lab.learned_port(station).as_deref(),
            Some(station),
            "{dp:?} has not learned {station}'s MAC ({}) on port {station}",
            lab.host(station).mac()
        );
    }

    let port_before = lab.port_counters("h3");
    let eth_before = lab.host("h3").eth0_counters();

    let burst = UdpBurst {
        count: 1000,
        ..UdpBurst::default()
    };
    let report = udp_burst(lab.host("h1"), lab.host("h2"), burst);
    if report.delivery_ratio() < 0.99 && dp == Dataplane::Switchyard {
        // Say where the frames went (the kernel's drops on h1's socket, the
        // switch's own), so a failure here can be told apart from a slow wake.
        let stats = lab.daemon().fresh_stats(std::time::Duration::from_secs(5));
        for host in ["h1", "h2"] {
            let p = stats.port(host);
            eprintln!(
                "{host}: rx {} tx {} drops {:?} kernel {:?}",
                p.rx_packets, p.tx_packets, p.drops, p.kernel_drops
            );
        }
    }
    assert!(
        report.delivery_ratio() >= 0.99,
        "unicast h1 -> h2 itself failed on {dp:?}: {report:?}"
    );

    let port_after = lab.port_counters("h3");
    let eth_after = lab.host("h3").eth0_counters();
    let port_grew = port_after.tx_packets - port_before.tx_packets;
    let eth_grew = eth_after.rx_packets - eth_before.rx_packets;
    eprintln!(
        "{dp:?}: h3 port tx +{port_grew}, h3 eth0 rx +{eth_grew} during 1000 unicast datagrams"
    );
    assert!(
        port_grew < STRAY_LIMIT,
        "{dp:?} sent {port_grew} frames to h3's port during h1 -> h2 unicast (flooding?)"
    );
    assert!(
        eth_grew < STRAY_LIMIT,
        "h3's eth0 received {eth_grew} frames during h1 -> h2 unicast on {dp:?} (flooding?)"
    );
}

dataplane_tests!(learned_unicast_not_flooded);
