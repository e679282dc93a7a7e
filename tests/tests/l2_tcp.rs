//! TCP through the switch: the hosts keep the kernel's default offloads (partial
//! checksums, TSO/GSO), so this fails if the switch forwards partial checksums as-is.

use std::time::Duration;

use switchyard_tests::{dataplane_tests, tcp_transfer, Dataplane, Lab};

/// 16 MiB of pseudo-random bytes h1 -> h2 over one TCP connection, checked byte for byte.
fn tcp_16mib_arrives_intact(dp: Dataplane) {
    let lab = Lab::builder(dp)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .start();
    // The point of the test: h1 hands its veth packets with partial checksums.
    assert!(
        lab.host("h1").eth0_offload("tx-checksumming"),
        "h1's eth0 has TX checksum offload off: this test would not exercise partial checksums"
    );
    let len = 16 << 20;
    let report = tcp_transfer(
        lab.host("h1"),
        lab.host("h2"),
        5201,
        len,
        Duration::from_secs(60),
    );
    eprintln!(
        "{dp:?}: TCP {} bytes in {:?} ({:.0} Mbit/s)",
        report.received,
        report.elapsed,
        report.mbit_per_s()
    );
    assert!(
        report.intact(),
        "TCP transfer damaged on {dp:?}: {report:?}"
    );
}

dataplane_tests!(tcp_16mib_arrives_intact);
