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
