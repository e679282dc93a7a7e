//! L2 switching basics: ARP and ping between every pair of hosts on one network.

use switchyard_tests::{dataplane_tests, Dataplane, Lab};

/// Three hosts on one network: every ordered pair resolves ARP and pings (3/3 replies),
/// and the ARP entries hold the peer's real MAC, so the replies came from the right host.
fn three_hosts_arp_and_ping_all_pairs(dp: Dataplane) {
    let lab = Lab::builder(dp)
        .network("red")
        .host("h1", "red", "198.18.0.1/24")
        .host("h2", "red", "198.18.0.2/24")
        .host("h3", "red", "198.18.0.3/24")
        .start();
    let names = ["h1", "h2", "h3"];
    for from in names {
        for to in names {
            if from == to {
                continue;
            }
            lab.assert_ping(from, to, 3);
            let peer = lab.host(to);
            let learned = lab.host(from).neigh_mac(peer.ip());
            assert_eq!(
                learned.as_deref(),
                Some(peer.mac()),
                "{from}'s ARP entry for {to} ({}) is not {to}'s MAC",
                peer.ip()
            );
        }
    }
}

dataplane_tests!(three_hosts_arp_and_ping_all_pairs);
