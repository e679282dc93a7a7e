//! Two networks on one switch are separate L2 domains, even with overlapping addresses.

use switchyard_tests::{dataplane_tests, Dataplane, Lab};

/// red = {r1 .1, r2 .2}, blue = {b1 .3, b2 .1} in the same /24 (b2 duplicates r1's
/// address on purpose).
///
/// 1. r1 cannot reach b1: no reply, no ARP entry, and blue's ports and b1's eth0 see
///    none of r1's attempts (blue is silent until then, so exact equality holds).
/// 2. b1 pings .1 and gets b2, never r1: b1's ARP entry is b2's MAC, r1 never learns
///    b1 (it would, had b1's "who has .1" reached it), and red's ports transmit no more
///    frames than red's ports received (each frame has one other red port to go to).
///
/// Red keeps some traffic of its own (r2 re-validates its ARP entry for r1 after r1's
/// broadcasts), so the red side is checked by conservation, not by "no packets".
fn networks_are_isolated(dp: Dataplane) {
    let mut lab = Lab::builder(dp)
        .network("red")
        .network("blue")
        .host("r1", "red", "198.18.0.1/24")
        .host("r2", "red", "198.18.0.2/24")
        .host("b1", "blue", "198.18.0.3/24")
        .host("b2", "blue", "198.18.0.1/24")
        .start();
    let b1_ip = lab.host("b1").ip();

    // The switch works within a network.
    lab.assert_ping("r1", "r2", 2);

    // 1. red -> blue fails and blue sees nothing.
    let blue_before = lab.ports_counters(&["b1", "b2"]);
    let b1_eth_before = lab.host("b1").eth0_counters();
    let r = lab.host("r1").ping(b1_ip, 2);
    assert_eq!(
        r.received, 0,
        "r1 (red) reached b1 (blue) on {dp:?}:\n{}",
        r.output
    );
    assert_eq!(
        lab.host("r1").neigh_mac(b1_ip),
        None,
        "r1 resolved b1's address across networks on {dp:?}"
    );
    let blue_after = lab.ports_counters(&["b1", "b2"]);
    let b1_eth_after = lab.host("b1").eth0_counters();
    for (i, port) in ["b1", "b2"].iter().enumerate() {
        assert_eq!(
            blue_after[i].tx_packets, blue_before[i].tx_packets,
            "{dp:?} sent frames to {port}'s port (blue) while only red had traffic"
        );
    }
    assert_eq!(
        b1_eth_after.rx_packets, b1_eth_before.rx_packets,
        "b1 (blue) received frames while r1 (red) tried to reach it on {dp:?}"
    );

    // 2. Same address in both networks: blue's .1 must be b2.
    let red_before = lab.ports_counters(&["r1", "r2"]);
    lab.assert_ping("b1", "b2", 2);
    assert_eq!(
        lab.host("b1").neigh_mac(lab.host("b2").ip()).as_deref(),
        Some(lab.host("b2").mac()),
        "b1 resolved 198.18.0.1 to something other than b2 on {dp:?}"
    );
    assert_eq!(
        lab.host("r1").neigh_mac(b1_ip),
        None,
        "r1 (red) learned b1 (blue): b1's ARP request for the shared address leaked on {dp:?}"
    );
    let red_after = lab.ports_counters(&["r1", "r2"]);
    let delta = |after: u64, before: u64| after - before;
    let red_rx: u64 = (0..2)
        .map(|i| delta(red_after[i].rx_packets, red_before[i].rx_packets))
        .sum();
    let red_tx: u64 = (0..2)
        .map(|i| delta(red_after[i].tx_packets, red_before[i].tx_packets))
        .sum();
    assert!(
        red_tx <= red_rx,
        "{dp:?} sent {red_tx} frames to red ports but received only {red_rx} from them \
         while blue was talking: blue frames leaked into red"
    );
}

dataplane_tests!(networks_are_isolated);
