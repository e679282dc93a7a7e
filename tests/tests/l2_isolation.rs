//! Two networks on one switch are separate L2 domains, even with overlapping addresses.

use switchyard_tests::{dataplane_tests, Dataplane, Lab};

/// red = {r1 .1, r2 .2}, blue = {b1 .3, b2 .1} in the same /24 (b2 duplicates r1's
/// address on purpose). r1 cannot reach b1 and b1's port and eth0 see none of r1's
/// attempts; within each network pings work, and b1 resolves .1 to b2, never to r1.
fn networks_are_isolated(dp: Dataplane) {
    let mut lab = Lab::builder(dp)
        .network("red")
        .network("blue")
        .host("r1", "red", "198.18.0.1/24")
        .host("r2", "red", "198.18.0.2/24")
        .host("b1", "blue", "198.18.0.3/24")
        .host("b2", "blue", "198.18.0.1/24")
        .start();

    // The switch works within each network.
    lab.assert_ping("r1", "r2", 2);

    let b1_port_before = lab.port_counters("b1");
    let b1_eth_before = lab.host("b1").eth0_counters();
    let b1_ip = lab.host("b1").ip();
    let r = lab.host("r1").ping(b1_ip, 2);
    assert_eq!(
        r.received, 0,
        "r1 (red) reached b1 (blue) on {dp:?}:\n{}",
        r.output
    );
    assert!(
        lab.host("r1").neigh_mac(b1_ip).is_none(),
        "r1 resolved b1's address across networks on {dp:?}"
    );
    let b1_port_after = lab.port_counters("b1");
    let b1_eth_after = lab.host("b1").eth0_counters();
    assert_eq!(
        b1_port_after.tx_packets, b1_port_before.tx_packets,
        "{dp:?} sent frames from red to b1's port (blue)"
    );
    assert_eq!(
        b1_eth_after.rx_packets, b1_eth_before.rx_packets,
        "b1 (blue) received frames while r1 (red) tried to reach it on {dp:?}"
    );

    // Same address in both networks: blue's .1 must be b2.
    let r1_eth_before = lab.host("r1").eth0_counters();
    lab.assert_ping("b1", "b2", 2);
    let r1_eth_after = lab.host("r1").eth0_counters();
    assert_eq!(
        lab.host("b1").neigh_mac(lab.host("b2").ip()).as_deref(),
        Some(lab.host("b2").mac()),
        "b1 resolved 198.18.0.1 to something other than b2 on {dp:?}"
    );
    assert_eq!(
        r1_eth_after.rx_packets, r1_eth_before.rx_packets,
        "r1 (red) received frames of b1 -> b2 (blue) on {dp:?}"
    );
}

dataplane_tests!(networks_are_isolated);
