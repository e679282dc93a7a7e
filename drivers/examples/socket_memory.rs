//! Measures what binding AF_XDP sockets costs the kernel: binds `K` sockets (one
//! per veth, queue 0) from one UMEM of `F` frames and prints the change in the
//! kernel's memory counters and the time per bind. Root only; makes and removes
//! its own veths (`symk<i>`).
//!
//! `cargo run --release -p switchyard-drivers --example socket_memory -- F K RING`
use std::sync::Arc;
use std::time::Instant;
use switchyard_drivers::afxdp::{AttachMode, Redirect, UmemPool, XdpPort, XdpPortConfig};

fn meminfo() -> std::collections::HashMap<String, i64> {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((
                k.to_string(),
                v.trim().trim_end_matches(" kB").parse().ok()?,
            ))
        })
        .collect()
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (frames, sockets, ring) = (args[0], args[1], args[2]);
    for i in 0..sockets {
        let _ = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                &format!("symk{i}"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("symp{i}"),
            ])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "set", &format!("symk{i}"), "up"])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "set", &format!("symp{i}"), "up"])
            .status();
    }
    let before = meminfo();
    let mut pool = UmemPool::new(frames, ring, ring).unwrap();
    let after_umem = meminfo();
    let mut ports = Vec::new();
    let redirect = Arc::new(Redirect::load(4096).unwrap());
    let start = Instant::now();
    for i in 0..sockets {
        let ifindex = switchyard_drivers::sys::interface_index(&format!("symk{i}")).unwrap();
        let t = Instant::now();
        redirect.attach(ifindex, AttachMode::Native).unwrap();
        let config = XdpPortConfig {
            interface: format!("symk{i}"),
            queue: 0,
            mode: AttachMode::Native,
            ring_size: ring,
            fill_min: 0,
            fill_burst: 0,
            fill_max: 0,
            redirect: Some(Arc::clone(&redirect)),
            busy_retry: std::time::Duration::from_secs(1),
        };
        ports.push(XdpPort::open(&mut pool, &config).unwrap());
        if i < 3 || i + 1 == sockets {
            eprintln!("bind {i}: {:?}", t.elapsed());
        }
    }
    let elapsed = start.elapsed();
    let after = meminfo();
    for key in ["Slab", "SUnreclaim", "VmallocUsed", "Percpu", "MemFree"] {
        println!(
            "{key}: umem {:+} kB, sockets {:+} kB ({:.1} kB/socket)",
            after_umem[key] - before[key],
            after[key] - after_umem[key],
            (after[key] - after_umem[key]) as f64 / sockets as f64
        );
    }
    println!(
        "attach + bind: {:.2} ms/socket",
        elapsed.as_secs_f64() * 1e3 / sockets as f64
    );
    drop(ports);
    for i in 0..sockets {
        let ifindex = switchyard_drivers::sys::interface_index(&format!("symk{i}")).unwrap();
        let _ = redirect.detach(ifindex, AttachMode::Native);
    }
    drop(pool);
    for i in 0..sockets {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &format!("symk{i}")])
            .status();
    }
}
