//! `ConntrackTable::prefetch` is only a hint: over tracked and unknown
//! tuples, batches shorter and longer than its look-ahead, and an empty one,
//! it changes nothing a lookup, the counters or a dump can see.

use std::net::Ipv4Addr;
use switchyard_pipeline::conntrack::{
    ConntrackConfig, ConntrackTable, Packet, Track, Tuple, PREFETCH_AHEAD,
};
use switchyard_pipeline::Timestamp;

fn flow(i: u16) -> Tuple {
    Tuple::udp(
        Ipv4Addr::new(10, 0, 0, 2),
        1000 + i,
        Ipv4Addr::new(192, 0, 2, 1),
        53,
    )
}

#[test]
fn prefetching_changes_nothing() {
    let mut table = ConntrackTable::with_seed(
        ConntrackConfig {
            max_entries: 16,
            ..ConntrackConfig::default()
        },
        7,
    );
    let now = Timestamp::from_secs(5);
    let mut removed = Vec::with_capacity(8);
    for i in 0..16 {
        assert!(matches!(
            table.track(&Packet::Udp(flow(i)), 64, now, &mut removed),
            Track::New(_)
        ));
    }
    let stats = table.stats();
    let dump: Vec<_> = table.entries(now).collect();
    let lookups = |table: &ConntrackTable| -> Vec<_> {
        (0..40)
            .flat_map(|i| [flow(i), flow(i).invert()])
            .map(|t| table.lookup(&t, now))
            .collect()
    };
    let before = lookups(&table);
    for len in [0, 1, PREFETCH_AHEAD - 1, PREFETCH_AHEAD, 40] {
        table.prefetch((0..len as u16).map(flow));
        table.prefetch((0..len as u16).map(|i| flow(i).invert()));
    }
    assert_eq!(table.stats(), stats);
    assert_eq!(table.entries(now).collect::<Vec<_>>(), dump);
    assert_eq!(lookups(&table), before);
    assert!(before.iter().filter(|l| l.is_some()).count() == 32);
}
