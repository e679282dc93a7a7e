//! Hot-plug under load: a steady, sequence-numbered UDP flow between two attached
//! containers loses nothing and is not reordered while other containers come and go:
//! 25 attach/detach cycles of one container (the same port slot reused), then 50
//! containers attached (all present at once: 52 ports) and detached again.
//!
//! Switchyard only, at the default config: idle sockets keep only a few frames
//! posted, so 52 ports fit the default UMEM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use switchyard_tests::control::{link_exists, ping_from, wait_until, ControlLab, Network};
use switchyard_tests::{require_root, udp_burst, DaemonConfig, UdpBurst};

const NET: &str = "web";
const CONTAINERS: usize = 50;
/// Attach-then-detach cycles of one container before the 50 come at once.
const CYCLES: usize = 25;
/// Datagrams of the flow: ~2 kpps (2 per 1 ms pause) for about 40 s, sized to
/// outlast the hot-plug phase (15-25 s on the 2-core VM: 0.1-0.2 s per attach,
/// about as much per detach).
const FLOW_DATAGRAMS: u32 = 80_000;

#[test]
fn udp_flow_is_lossless_while_50_containers_come_and_go() {
    require_root!();
    let lab = ControlLab::builder()
        .network(Network::with_subnet(NET, "198.18.42.0/24", "198.18.42.1"))
        .daemon_config(DaemonConfig {
            switch_extra: Vec::new(),
            ..DaemonConfig::default()
        })
        .start();
    let id = lab.id().to_string();
    let fa = lab.attach(&lab.netns("fa"), NET, &format!("{id}-fa"));
    let fb = lab.attach(&lab.netns("fb"), NET, &format!("{id}-fb"));
    let (ha, hb) = (fa.host(), fb.host());
    for (from, to) in [(&ha, &hb), (&hb, &ha)] {
        let r = from.ping(to.ip(), 3);
        assert!(r.all_replied(), "warm-up ping failed: {}", r.output);
    }
    // The containers' namespaces exist before the flow starts: the phase under test
    // is the daemon's attach and detach, not `ip netns add`.
    let namespaces: Vec<String> = (0..CONTAINERS)
        .map(|i| lab.netns(&format!("x{i}")))
        .collect();

    let flow_done = AtomicBool::new(false);
    let (report, cycle_time, attach_time, detach_time) = thread::scope(|s| {
        let flow = s.spawn(|| {
            let r = udp_burst(
                &ha,
                &hb,
                UdpBurst {
                    port: 7000,
                    count: FLOW_DATAGRAMS,
                    payload_len: 256,
                    batch: 2,
                    timeout: Duration::from_secs(100),
                },
            );
            flow_done.store(true, Ordering::SeqCst);
            r
        });
        // Let the flow settle before the first change.
        thread::sleep(Duration::from_secs(1));
        // Phase A: one at a time (attach, detach), so the same port slot is reused.
        let start = Instant::now();
        for (i, ns) in namespaces.iter().take(CYCLES).enumerate() {
            let c = lab.attach(ns, NET, &format!("{id}-s{i}"));
            lab.detach(&c.name);
            assert!(
                wait_until(Duration::from_secs(5), || !link_exists(&c.interface)),
                "veth {} of {} still exists after detach",
                c.interface,
                c.name
            );
        }
        let cycle_time = start.elapsed();
        // Phase B: all at once (52 ports), then all detached.
        let start = Instant::now();
        let mut attached = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            let c = lab.attach(ns, NET, &format!("{id}-x{i}"));
            if i % 10 == 9 {
                // Hot-plugged ports forward too (while the flow runs).
                let r = ping_from(&c.netns, fb.ip, 1);
                assert!(
                    r.all_replied(),
                    "container {} cannot reach {}: {}",
                    c.name,
                    fb.name,
                    r.output
                );
            }
            attached.push(c);
        }
        let attach_time = start.elapsed();
        let ports = lab.ports();
        assert_eq!(
            ports.len(),
            CONTAINERS + 2,
            "ctl ports while all are attached: {ports:?}"
        );
        let start = Instant::now();
        for c in &attached {
            lab.detach(&c.name);
        }
        let detach_time = start.elapsed();
        assert!(
            !flow_done.load(Ordering::SeqCst),
            "the flow ended before the hot-plug phase did ({cycle_time:?} cycling, \
             {attach_time:?} attaching, {detach_time:?} detaching): make FLOW_DATAGRAMS larger"
        );
        for c in &attached {
            assert!(
                wait_until(Duration::from_secs(5), || !link_exists(&c.interface)),
                "veth {} of {} still exists after detach",
                c.interface,
                c.name
            );
        }
        let report = flow.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (report, cycle_time, attach_time, detach_time)
    });
    eprintln!(
        "{CYCLES} attach+detach cycles in {cycle_time:?}; {CONTAINERS} attaches in {attach_time:?}, \
         {CONTAINERS} detaches in {detach_time:?}; flow: {report:?}"
    );
    assert_eq!(
        (
            report.lost(),
            report.reordered,
            report.duplicates,
            report.corrupt
        ),
        (0, 0, 0, 0),
        "flow {} -> {} across hot-plug (lost, reordered, duplicates, corrupt): {report:?}\nstats: {}",
        fa.name,
        fb.name,
        lab.ctl(&["--json", "stats"]).stdout
    );
    assert_eq!(lab.port_names().len(), 2);
    lab.detach(&fa.name);
    lab.detach(&fb.name);
}
