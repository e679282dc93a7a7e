//! Tables and the plot of the `scale` benchmark ([`super::node_scale`]).

use super::node_scale::{
    IdleCpu, ScaleReport, CONTAINER_NETWORK, IDLE_TARGET_PCT, THROUGHPUT_TARGET_RATIO,
};
use crate::svg::{self, Panel, Series};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The terminal tables.
pub fn render(r: &ScaleReport) -> String {
    let mut out = String::new();
    let n = r.options.containers;
    let _ = writeln!(
        out,
        "\nNode scale: {} of {n} containers attached (network {CONTAINER_NETWORK:?}, {}), one worker on core(s) {:?}, idle = backoff",
        r.attached, r.subnet, r.options.switch_cores
    );
    let _ = writeln!(
        out,
        "  namespaces: {n} made with one ip -batch in {:.1} s (not part of the attach times)",
        r.netns_seconds
    );
    let _ = writeln!(out, "  attach method: {}", r.attach_method);
    if let Some(a) = &r.attach {
        let _ = writeln!(
            out,
            "\nAttach latency (ms; daemon side: veth, address, XDP, AF_XDP sockets)\n{:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            "count", "p50", "p90", "p99", "max", "mean", "total s", "wall s"
        );
        let _ = writeln!(
            out,
            "{:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>8.2} {:>9.2} {:>9.2}",
            a.count,
            a.p50_ms,
            a.p90_ms,
            a.p99_ms,
            a.max_ms,
            a.mean_ms,
            a.total_seconds,
            a.wall_seconds
        );
        let _ = writeln!(
            out,
            "  growth with the port count: first 10 % p50 {:.2} ms, last 10 % p50 {:.2} ms (x{}), slope {:+.3} ms per 100 ports",
            a.first_tenth_p50_ms,
            a.last_tenth_p50_ms,
            opt(a.growth(), 2),
            a.slope_ms_per_100_ports
        );
    }
    if let (Some(b), Some(a)) = (&r.memory_before, &r.memory_after) {
        let _ = writeln!(
            out,
            "\nMemory ({} ports -> {} ports; kB, per port in bytes)\n{:<32} {:>10} {:>10} {:>10} {:>12}",
            b.ports, a.ports, "", "before", "after", "delta", "per port B"
        );
        let per = r.memory_per_port;
        let unreclaimable =
            |k: &super::node_scale::KernelMemory| k.sunreclaim_kb + k.vmalloc_used_kb;
        let rows: [(&str, u64, u64, Option<f64>); 8] = [
            (
                "daemon VmRSS",
                b.daemon.vm_rss_kb,
                a.daemon.vm_rss_kb,
                per.map(|p| p.daemon_rss_bytes),
            ),
            (
                "daemon VmLck (mlock)",
                b.daemon.vm_lck_kb,
                a.daemon.vm_lck_kb,
                per.map(|p| p.daemon_lck_bytes),
            ),
            (
                "daemon VmPin (UMEM pinned)",
                b.daemon.vm_pin_kb,
                a.daemon.vm_pin_kb,
                per.map(|p| p.daemon_pin_bytes),
            ),
            (
                "kernel Slab + VmallocUsed",
                b.kernel.slab_vmalloc_kb(),
                a.kernel.slab_vmalloc_kb(),
                per.map(|p| p.kernel_bytes),
            ),
            (
                "  of which Slab",
                b.kernel.slab_kb,
                a.kernel.slab_kb,
                per.map(|p| p.kernel_slab_bytes),
            ),
            (
                "  of which VmallocUsed",
                b.kernel.vmalloc_used_kb,
                a.kernel.vmalloc_used_kb,
                per.map(|p| p.kernel_vmalloc_bytes),
            ),
            (
                "kernel SUnreclaim + VmallocUsed",
                unreclaimable(&b.kernel),
                unreclaimable(&a.kernel),
                per.map(|p| p.kernel_unreclaimable_bytes),
            ),
            (
                "kernel Percpu (not above)",
                b.kernel.percpu_kb,
                a.kernel.percpu_kb,
                per.map(|p| p.kernel_percpu_bytes),
            ),
        ];
        for (name, before, after, per_port) in rows {
            let _ = writeln!(
                out,
                "{name:<32} {before:>10} {after:>10} {:>+10} {:>12}",
                after as i64 - before as i64,
                opt(per_port, 0)
            );
        }
        if let Some(expected) = per.and_then(|p| p.expected_socket_bytes) {
            let _ = writeln!(
                out,
                "  expected for the AF_XDP socket alone: {expected:.0} B per port ({} UMEM frames x {} B, drivers/examples/socket_memory.rs); the rest is the veth pair",
                a.umem_frames.unwrap_or(0),
                super::node_scale::KERNEL_BYTES_PER_UMEM_FRAME
            );
        }
        let _ = writeln!(
            out,
            "  (kernel counters are the whole machine's: anything else running moves them; VmLck/VmPin stay 0 because the kernel charges an AF_XDP UMEM to the user's locked_vm, not to the process)"
        );
    }
    if !r.idle.is_empty() {
        let _ = writeln!(
            out,
            "\nIdle CPU (no traffic, idle = backoff; % of one core over {:.1} s; target < {IDLE_TARGET_PCT} % for the workers)\n{:>6} {:>10} {:>10} {:>8}  target",
            r.options.idle_seconds, "ports", "workers %", "daemon %", "others"
        );
        for i in &r.idle {
            let _ = writeln!(out, "{}", idle_row(i));
        }
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            out,
            "\nBusy pair next to idle ports ({} B, unpaced, generator -> daemon -> sink; {} point(s) of {:.1} s each, median)\n{:>10} {:>12} {:>22} {:>8} {:>10} {:>7}",
            super::node_scale::FRAME_SIZE,
            r.options.repeats,
            r.options.step_seconds,
            "idle ports",
            "median Mpps",
            "points Mpps",
            "loss %",
            "daemon %",
            "others"
        );
        for t in &r.throughput {
            let points = t
                .points
                .iter()
                .map(|p| format!("{:.3}", p.delivered_mpps))
                .collect::<Vec<_>>()
                .join(" ");
            let loss = super::node_scale::median(
                &t.points
                    .iter()
                    .map(|p| p.probes.loss_pct)
                    .collect::<Vec<_>>(),
            );
            let cpu = super::node_scale::median(
                &t.points
                    .iter()
                    .filter_map(|p| p.daemon_cpu_pct)
                    .collect::<Vec<_>>(),
            );
            let others = t
                .points
                .iter()
                .filter_map(|p| p.interference.map(|i| i.foreign_pct + i.steal_pct))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let _ = writeln!(
                out,
                "{:>10} {:>12} {:>22} {:>8} {:>10} {:>6}{}",
                t.idle_ports,
                opt(t.median_mpps, 3),
                points,
                opt(loss, 2),
                opt(cpu, 0),
                opt(others, 0),
                if t.noisy() { "!" } else { " " }
            );
        }
        if let Some(ratio) = r.throughput_ratio {
            let _ = writeln!(
                out,
                "  with {} idle ports / with none: {ratio:.2} (target >= {THROUGHPUT_TARGET_RATIO}: {}){}",
                r.attached,
                verdict(ratio >= THROUGHPUT_TARGET_RATIO),
                if r.throughput.iter().any(|t| t.noisy()) {
                    "; noisy points (!): others took the cores, measure again on a quiet machine"
                } else {
                    ""
                }
            );
        }
    }
    let c = &r.cleanup;
    let stop = r
        .daemon_stop_seconds
        .map_or(String::new(), |s| format!("daemon stopped in {s:.1} s; "));
    let _ = writeln!(
        out,
        "\nClean-up: {stop}{} namespaces deleted in {:.1} s, {} left; {} host veths deleted by name after their namespace went",
        c.namespaces - c.namespaces_left,
        c.seconds,
        c.namespaces_left,
        c.host_veths_deleted
    );
    if !r.errors.is_empty() {
        let _ = writeln!(out, "\nProblems");
        for e in &r.errors {
            let _ = writeln!(out, "  {}", e.lines().next().unwrap_or(""));
        }
    }
    out
}

fn idle_row(i: &IdleCpu) -> String {
    let noisy = i.interference.is_some_and(|x| x.is_noisy());
    let others = i.interference.map(|x| x.foreign_pct + x.steal_pct);
    let target = match i.workers_pct {
        Some(w) => verdict(w < IDLE_TARGET_PCT),
        None => "-",
    };
    format!(
        "{:>6} {:>10} {:>10} {:>7}{} {}",
        i.ports,
        opt(i.workers_pct, 2),
        opt(i.daemon_pct, 2),
        opt(others, 0),
        if noisy { "!" } else { " " },
        target
    )
}

/// `scale-attach.svg`: every attach's time over the port count it made.
pub fn write_plots(r: &ScaleReport, dir: &Path) -> Result<Vec<PathBuf>> {
    if r.attach_ms.is_empty() {
        return Ok(Vec::new());
    }
    let points: Vec<(f64, f64)> = r
        .attach_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| ((i + 3) as f64, *ms))
        .collect();
    let panel = Panel {
        title: "attach latency vs ports served".to_string(),
        x_label: "ports after the attach".to_string(),
        y_label: "attach ms".to_string(),
        series: vec![Series {
            name: "attach".to_string(),
            color: svg::PALETTE[0].to_string(),
            dashed: false,
            points,
        }],
        log_y: true,
        x_categories: None,
        diagonal: false,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("scale-attach.svg");
    let text = svg::figure(
        &format!("switchyard-perf scale: {} attaches", r.attached),
        &[panel],
        1,
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(vec![path])
}

#[cfg(test)]
mod tests {
    use super::super::node_scale::*;
    use super::*;
    use crate::machine::Machine;

    fn sample() -> ScaleReport {
        let options = ScaleOptions::profile(true, Some(20), PathBuf::from("/x"));
        let times: Vec<f64> = (0..20).map(|i| 2.0 + i as f64 * 0.1).collect();
        let before = MemorySnapshot {
            ports: 2,
            umem_frames: Some(16_384),
            daemon: ProcStatus {
                vm_rss_kb: 10_000,
                ..ProcStatus::default()
            },
            kernel: KernelMemory {
                slab_kb: 100_000,
                vmalloc_used_kb: 10_000,
                ..KernelMemory::default()
            },
        };
        let mut after = before;
        after.ports = 22;
        after.kernel.slab_kb += 2000;
        ScaleReport {
            unix_time: 0,
            machine: Machine {
                nproc: 2,
                cpu_model: "test".into(),
                kernel: "6.x".into(),
                load_1m: 0.0,
            },
            attach_method: "direct".into(),
            subnet: subnet_for(20).unwrap().0,
            netns_seconds: 0.5,
            attached: 20,
            attach: AttachSummary::from_ms(&times, 0.1),
            attach_ms: times,
            memory_before: Some(before),
            memory_after: Some(after),
            memory_per_port: MemoryPerPort::between(&before, &after),
            idle: vec![
                IdleCpu {
                    ports: 2,
                    seconds: 2.0,
                    workers_pct: Some(0.5),
                    daemon_pct: Some(0.6),
                    worker_threads: 1,
                    interference: None,
                },
                IdleCpu {
                    ports: 22,
                    seconds: 2.0,
                    workers_pct: Some(2.5),
                    daemon_pct: Some(2.6),
                    worker_threads: 1,
                    interference: None,
                },
            ],
            throughput: Vec::new(),
            throughput_ratio: Some(0.95),
            workers: None,
            daemon_stop_seconds: Some(1.0),
            cleanup: Cleanup {
                namespaces: 20,
                namespaces_left: 0,
                host_veths_deleted: 0,
                seconds: 0.3,
            },
            errors: vec!["something\nmore".into()],
            seconds: 10.0,
            interrupted: false,
            options,
        }
    }

    #[test]
    fn the_tables_show_every_figure() {
        let text = render(&sample());
        assert!(text.contains("20 of 20 containers attached"), "{text}");
        assert!(text.contains("198.18.64.0/27"), "{text}");
        // p50 of 2.0..3.9 by 0.1: the 10th value.
        assert!(text.contains("    2.90"), "{text}");
        assert!(text.contains("kernel Slab + VmallocUsed"), "{text}");
        // 2,000 kB over 20 ports.
        assert!(text.contains("102400"), "{text}");
        assert!(text.contains("NOT met"), "{text}");
        assert!(text.contains("  something\n"), "{text}");
        assert!(!text.contains("more"), "{text}");
        assert!(text.contains("0 left"), "{text}");
    }

    #[test]
    fn the_report_round_trips_and_plots() {
        let report = sample();
        let json = serde_json::to_string(&report).unwrap();
        let back: ScaleReport = serde_json::from_str(&json).unwrap();
        // (serde_json's float parsing may differ in the last bit.)
        let (a, b) = (back.attach.unwrap(), report.attach.clone().unwrap());
        assert_eq!(a.count, b.count);
        assert!((a.p99_ms - b.p99_ms).abs() < 1e-9);
        assert_eq!(back.attach_ms.len(), 20);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-perf-scale-plot-test-{}",
            std::process::id()
        ));
        let paths = write_plots(&report, &dir).unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        let texts = crate::svg::texts(&svg);
        assert!(
            texts
                .iter()
                .any(|t| t.contains("attach latency vs ports served")),
            "{texts:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
