//! The routing table against a brute-force reference: for random route sets and
//! random destinations, the longest matching prefix found by scanning every
//! route is what the table returns.

use proptest::prelude::*;
use std::net::Ipv4Addr;
use switchyard_pipeline::route::{prefix_mask, RouteError, RouteTable};

/// Routes as (network, len, target), reduced to valid prefixes.
fn routes() -> impl Strategy<Value = Vec<(u32, u8, u16)>> {
    // Addresses from a small space so prefixes overlap and nest.
    prop::collection::vec(
        (
            prop::sample::select(vec![0x0a00_0000u32, 0x0a01_0000, 0xac1e_0000, 0xc000_0200]),
            any::<u16>(),
            0u8..=32,
            any::<u16>(),
        ),
        0..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(base, low, len, t)| {
                let addr = base | u32::from(low);
                (addr & prefix_mask(len), len, t)
            })
            .collect()
    })
}

fn reference(routes: &[(u32, u8, u16)], dst: u32) -> Option<(u8, u16)> {
    // Later inserts replace earlier ones of the same prefix.
    let mut best: Option<(u8, u16)> = None;
    for &(net, len, t) in routes {
        if dst & prefix_mask(len) == net && best.is_none_or(|(l, _)| len >= l) {
            best = Some((len, t));
        }
    }
    best
}

proptest! {
    #[test]
    fn longest_prefix_wins_like_a_full_scan(
        routes in routes(),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        dsts in prop::collection::vec(
            (prop::sample::select(vec![0x0a00_0000u32, 0x0a01_0000, 0xac1e_0000, 0xc000_0200, 0x0808_0808]), any::<u16>()),
            1..50,
        ),
    ) {
        let mut table = RouteTable::new();
        let mut live: Vec<(u32, u8, u16)> = Vec::new();
        for &(net, len, t) in &routes {
            table.insert(Ipv4Addr::from(net), len, t).expect("valid prefix");
            live.retain(|&(n, l, _)| (n, l) != (net, len));
            live.push((net, len, t));
        }
        for index in removals {
            if live.is_empty() {
                break;
            }
            let (net, len, t) = live.remove(index.index(live.len()));
            prop_assert_eq!(table.remove(Ipv4Addr::from(net), len).unwrap(), Some(t));
        }
        prop_assert_eq!(table.len(), live.len());
        for (base, low) in dsts {
            let dst = base | u32::from(low);
            let got = table.lookup(Ipv4Addr::from(dst)).map(|(l, &t)| (l, t));
            prop_assert_eq!(got, reference(&live, dst), "dst {}", Ipv4Addr::from(dst));
        }
    }
}

#[test]
fn invalid_prefixes_are_refused_with_the_network_named() {
    let mut table: RouteTable<u8> = RouteTable::new();
    assert_eq!(
        table.insert(Ipv4Addr::new(10, 0, 0, 1), 24, 1),
        Err(RouteError::HostBitsSet {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            len: 24,
            network: Ipv4Addr::new(10, 0, 0, 0),
        })
    );
    assert_eq!(
        table.insert(Ipv4Addr::UNSPECIFIED, 33, 1),
        Err(RouteError::LengthTooLong(33))
    );
    assert!(table.is_empty());
}

#[test]
fn default_route_catches_what_no_network_does() {
    let mut table = RouteTable::new();
    table.insert(Ipv4Addr::UNSPECIFIED, 0, "uplink").unwrap();
    table
        .insert(Ipv4Addr::new(172, 30, 0, 0), 24, "web")
        .unwrap();
    assert_eq!(
        table.lookup(Ipv4Addr::new(172, 30, 0, 9)),
        Some((24, &"web"))
    );
    assert_eq!(
        table.lookup(Ipv4Addr::new(8, 8, 8, 8)),
        Some((0, &"uplink"))
    );
}
