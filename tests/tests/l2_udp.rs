//! UDP through the switch: a paced burst with sequence numbers, loss counted.

use switchyard_tests::{dataplane_tests, udp_burst, Dataplane, Lab, UdpBurst};

/// 2000 datagrams of 512 bytes h1 -> h2 at about 16 kpps: at least 99 % arrive intact,
/// none corrupt or duplicated.
fn udp_burst_2000_datagrams(dp: Dataplane) {
    let lab = Lab::builder(dp)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .start();
    let report = udp_burst(lab.host("h1"), lab.host("h2"), UdpBurst::default());
    eprintln!("{dp:?}: UDP {report:?}, lost {}", report.lost());
    assert_eq!(report.corrupt, 0, "corrupt datagrams on {dp:?}: {report:?}");
    assert_eq!(
        report.duplicates, 0,
        "duplicated datagrams on {dp:?}: {report:?}"
    );
    assert!(
        report.delivery_ratio() >= 0.99,
        "only {} of {} datagrams arrived on {dp:?} (lost {}): {report:?}",
        report.received,
        report.sent,
        report.lost()
    );
}

dataplane_tests!(udp_burst_2000_datagrams);

/// A burst that lands on a port idle for seconds arrives whole: 32 datagrams sent
/// back to back after 2 s of silence, four times. The switch's worker is asleep
/// when they land, so the port's receive buffers must already hold them (an idle
/// port once kept 8 and lost the rest of each burst).
fn burst_after_idle_arrives_whole(dp: Dataplane) {
    let lab = Lab::builder(dp)
        .network("red")
        .host("h1", "red", "198.18.0.11/24")
        .host("h2", "red", "198.18.0.12/24")
        .start();
    lab.assert_ping("h1", "h2", 1);
    for round in 0..4u16 {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let report = udp_burst(
            lab.host("h1"),
            lab.host("h2"),
            UdpBurst {
                port: 5100 + round,
                count: 32,
                batch: 32,
                ..UdpBurst::default()
            },
        );
        assert_eq!(
            (report.received, report.corrupt, report.duplicates),
            (32, 0, 0),
            "round {round} on {dp:?}: {report:?}"
        );
    }
}

dataplane_tests!(burst_after_idle_arrives_whole);
