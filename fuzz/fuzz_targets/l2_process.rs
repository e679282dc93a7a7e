//! Random frames on random ports through the whole L2 pipeline, burst after
//! burst: must never panic, and every verdict must respect the bridge-domain
//! rules (never back to the ingress port, never into another network).
//!
//! Input format, repeated: `[n_frames, dt]` then per frame `[port, len, bytes..]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_pipeline::{L2Config, L2Switch, PacketMeta, Timestamp, Verdict, MAX_BURST};

const PORTS: u8 = 8;

fuzz_target!(|data: &[u8]| {
    // A tiny table so "full", aging and replacement paths are reached.
    let mut sw = L2Switch::new(L2Config {
        max_entries: 8,
        aging_ns: 1_000,
    });
    for port in 0..u16::from(PORTS) {
        // Ports 0-2 in domain 0, 3-5 in domain 1, 6-7 in none.
        let domain = match port {
            0..=2 => Some(0),
            3..=5 => Some(1),
            _ => None,
        };
        sw.set_port_domain(port, domain);
    }
    let mut now = 0u64;
    let mut rest = data;
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(MAX_BURST);
    let mut metas: Vec<PacketMeta> = Vec::with_capacity(MAX_BURST);
    while let [n, dt, tail @ ..] = rest {
        rest = tail;
        now += u64::from(*dt) * 16;
        frames.clear();
        metas.clear();
        for _ in 0..*n % 32 {
            let [port, len, tail @ ..] = rest else { break };
            let len = usize::from(*len).min(tail.len());
            frames.push(tail[..len].to_vec());
            metas.push(PacketMeta::new(u16::from(*port % PORTS)));
            rest = &tail[len..];
        }
        sw.process(&mut frames, &mut metas, Timestamp(now));
        for meta in &metas {
            let home = sw.port_domain(meta.in_port);
            match meta.verdict {
                Verdict::Pending => panic!("undecided frame"),
                Verdict::Forward(p) => {
                    assert_ne!(p, meta.in_port, "sent back to ingress");
                    assert!(
                        home.is_some() && sw.port_domain(p) == home,
                        "crossed domains"
                    );
                }
                Verdict::Flood => {
                    assert_eq!(home, Some(meta.domain));
                    for p in sw.flood_targets(meta) {
                        assert_ne!(p, meta.in_port);
                        assert_eq!(sw.port_domain(p), home);
                    }
                }
                Verdict::Drop(_) => {}
                Verdict::ToGateway
                | Verdict::Local
                | Verdict::Routed { .. }
                | Verdict::HandOff(_) => {
                    panic!("no gateway configured, nothing routed: {:?}", meta.verdict)
                }
            }
        }
        assert!(sw.mac_table().len() <= sw.mac_table().capacity());
        if *dt == 0xff {
            sw.sweep(Timestamp(now));
        }
    }
});
