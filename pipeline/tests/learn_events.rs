//! Learn events: what one worker learns reaches another worker's table copy.

use etherparse::PacketBuilder;
use switchyard_pipeline::{L2Config, L2Switch, MacAddr, PacketMeta, Timestamp, Verdict};

fn frame(src: u8, dst: u8) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src], [2, 0, 0, 0, 0, dst])
        .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
        .udp(1, 2);
    let mut out = Vec::new();
    builder.write(&mut out, b"x").unwrap();
    out
}

fn switch() -> L2Switch {
    let mut l2 = L2Switch::new(L2Config {
        max_entries: 64,
        aging_ns: 40_000_000_000,
    });
    for port in 0..3 {
        l2.set_port_domain(port, Some(0));
    }
    l2
}

fn send(l2: &mut L2Switch, in_port: u16, src: u8, dst: u8, now: Timestamp) -> Verdict {
    let mut frames = vec![frame(src, dst)];
    let mut metas = vec![PacketMeta::new(in_port)];
    l2.process(&mut frames, &mut metas, now);
    metas[0].verdict
}

#[test]
fn new_moved_and_periodically_refreshed_stations_are_published() {
    let mut a = switch();
    a.publish_learning(true);
    send(&mut a, 0, 1, 9, Timestamp::from_secs(1));
    assert_eq!(a.learn_events().len(), 1, "new station");
    assert_eq!(a.learn_events()[0].mac, MacAddr([2, 0, 0, 0, 0, 1]));
    a.clear_learn_events();
    send(&mut a, 0, 1, 9, Timestamp::from_secs(2));
    assert!(
        a.learn_events().is_empty(),
        "refresh within the period is not published"
    );
    // Republish period is a quarter of the aging time (10 s here).
    send(&mut a, 0, 1, 9, Timestamp::from_secs(11));
    assert_eq!(
        a.learn_events().len(),
        1,
        "refresh after the period is published"
    );
    a.clear_learn_events();
    send(&mut a, 1, 1, 9, Timestamp::from_secs(12));
    assert_eq!(a.learn_events()[0].port, 1, "a move is published at once");
}

#[test]
fn a_station_learned_by_one_worker_is_forwarded_to_by_another() {
    let (mut a, mut b) = (switch(), switch());
    a.publish_learning(true);
    send(&mut a, 2, 7, 9, Timestamp::from_secs(1));
    assert_eq!(
        send(&mut b, 0, 1, 7, Timestamp::from_secs(1)),
        Verdict::Flood,
        "b does not know 7 yet"
    );
    for event in a.learn_events() {
        b.apply_learn_event(event);
    }
    assert_eq!(
        send(&mut b, 0, 1, 7, Timestamp::from_secs(2)),
        Verdict::Forward(2)
    );
    let quiet = switch();
    assert!(
        quiet.learn_events().is_empty(),
        "publishing is off by default"
    );
}
