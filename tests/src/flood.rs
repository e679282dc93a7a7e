//! A flood of new flows: many UDP datagrams or TCP SYNs, each from its own
//! source port (a new 5-tuple per packet), from one raw IPv4 socket in
//! batches of `sendmmsg`, paced to a rate. A socket per flow would take
//! minutes for 100,000 flows; this takes seconds.
//!
//! Every packet is a whole, valid IPv4/UDP or IPv4/TCP packet (IP and
//! transport checksums right), so a switch tracks and translates it as any
//! other and the receiver's kernel takes it (a socket gets the datagram; a
//! SYN gets a SYN-ACK or a reset).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::host::Host;
use crate::netns::NsThread;

/// Source ports a flood uses, `FIRST_PORT..FIRST_PORT + PORTS`; flow `k`
/// goes from port `FIRST_PORT + k % PORTS` to destination port
/// `dst_port + k / PORTS`, so up to `PORTS` flows share a destination port
/// and every flow's tuple is distinct.
pub const FIRST_PORT: u16 = 1024;
/// How many source ports a flood cycles through (see [`FIRST_PORT`]).
pub const PORTS: u32 = 64_000;

/// What each packet of a flood is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    /// A UDP datagram with an 8-byte payload (see [`flood_sink`]).
    Udp,
    /// A TCP SYN, as a connection's first segment.
    TcpSyn,
}

/// Parameters of a flood.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// UDP datagrams or TCP SYNs.
    pub kind: FloodKind,
    /// The sender's own address (the packets' source).
    pub src: Ipv4Addr,
    /// Where the datagrams go.
    pub dst: Ipv4Addr,
    /// The first destination port (see [`FIRST_PORT`]).
    pub dst_port: u16,
    /// New flows (packets) to send.
    pub flows: u32,
    /// Datagrams per `sendmmsg`.
    pub batch: usize,
    /// Pace: datagrams per second at most.
    pub rate: u32,
    /// Overall bound.
    pub timeout: Duration,
}

/// What a flood sent.
#[derive(Debug, Clone, Copy)]
pub struct FloodReport {
    /// Packets the kernel took.
    pub sent: u32,
    /// Send calls that failed (ENOBUFS and the like: the sender's side).
    pub errors: u32,
    /// From the first send to the last.
    pub elapsed: Duration,
}

/// The destination ports a flood of `flows` flows to `dst_port` uses.
pub fn dst_ports(dst_port: u16, flows: u32) -> Vec<u16> {
    (0..flows.div_ceil(PORTS))
        .map(|i| dst_port + i as u16)
        .collect()
}

/// The one's-complement sum of `data` folded to 16 bits, not inverted.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Writes flow `k`'s packet into `out` and returns its length: IPv4, then
/// UDP with an 8-byte payload (`k` and a magic word), or a TCP SYN.
fn build(flood: &Flood, k: u32, out: &mut [u8; PACKET_MAX]) -> usize {
    let sport = FIRST_PORT + (k % PORTS) as u16;
    let dport = flood.dst_port + (k / PORTS) as u16;
    let (src, dst) = (flood.src.octets(), flood.dst.octets());
    let (protocol, l4_len) = match flood.kind {
        FloodKind::Udp => (17u8, 16u16),
        FloodKind::TcpSyn => (6u8, 20u16),
    };
    let total = 20 + l4_len;
    // IPv4: version 4, IHL 5, DF, TTL 64.
    out[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[4..6].copy_from_slice(&(k as u16).to_be_bytes());
    out[12..16].copy_from_slice(&src);
    out[16..20].copy_from_slice(&dst);
    let ip_sum = !(sum16(0, &out[..20]) as u16);
    out[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let l4 = &mut out[20..usize::from(total)];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    let sum_at = match flood.kind {
        FloodKind::Udp => {
            l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
            l4[6..8].copy_from_slice(&[0, 0]);
            l4[8..12].copy_from_slice(&k.to_be_bytes());
            l4[12..16].copy_from_slice(&MAGIC.to_be_bytes());
            6
        }
        FloodKind::TcpSyn => {
            // Sequence k, no ack, header of 5 words, SYN, window 64240.
            l4[4..8].copy_from_slice(&k.wrapping_mul(2_654_435_761).to_be_bytes());
            l4[8..12].copy_from_slice(&[0; 4]);
            l4[12..20].copy_from_slice(&[0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
            16
        }
    };
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = protocol;
    pseudo[10..12].copy_from_slice(&l4_len.to_be_bytes());
    let sum = !(sum16(sum16(0, &pseudo), l4) as u16);
    // 0 means "no checksum" for UDP over IPv4; a computed 0 is sent as 0xffff.
    let sum = if sum == 0 && protocol == 17 {
        0xffff
    } else {
        sum
    };
    l4[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
    usize::from(total)
}

/// The longest packet a flood sends.
const PACKET_MAX: usize = 40;

const MAGIC: u32 = 0x5359_464c; // "SYFL"

/// Starts a flood from `from`'s namespace (on its own thread; join it for
/// the report). Bounded by `flood.timeout`.
#[track_caller]
pub fn flood(from: &Host, flood: Flood) -> NsThread<FloodReport> {
    assert!(flood.batch > 0 && flood.rate > 0, "{flood:?}");
    from.spawn("flood", move || {
        let sock = crate::sys::raw_ipv4_socket().expect("raw IPv4 socket (needs CAP_NET_RAW)");
        let mut packets = vec![([0u8; PACKET_MAX], 0); flood.batch];
        let start = Instant::now();
        let deadline = start + flood.timeout;
        let mut report = FloodReport {
            sent: 0,
            errors: 0,
            elapsed: Duration::ZERO,
        };
        while report.sent < flood.flows && Instant::now() < deadline {
            let n = (flood.flows - report.sent).min(flood.batch as u32) as usize;
            for (i, (p, len)) in packets[..n].iter_mut().enumerate() {
                *len = build(&flood, report.sent + i as u32, p);
            }
            let refs: Vec<&[u8]> = packets[..n].iter().map(|(p, len)| &p[..*len]).collect();
            match crate::sys::send_ipv4_batch(&sock, flood.dst, &refs) {
                Ok(taken) => report.sent += taken as u32,
                Err(_) => {
                    report.errors += 1;
                    thread::sleep(Duration::from_millis(1));
                }
            }
            // Pace: never ahead of `rate`.
            let due =
                start + Duration::from_secs_f64(f64::from(report.sent) / f64::from(flood.rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        report.elapsed = start.elapsed();
        report
    })
}

/// Counts flood datagrams arriving at `to` on `ports` (one socket each),
/// until `stop` is set and nothing came for 500 ms, or `timeout`. Returns
/// the datagrams counted and the distinct source addresses they came from.
#[track_caller]
pub fn flood_sink(
    to: &Host,
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) -> NsThread<(u64, Vec<Ipv4Addr>)> {
    let ip = to.ip();
    to.spawn("flood-sink", move || {
        let socks: Vec<UdpSocket> = ports
            .iter()
            .map(|&p| {
                let s = UdpSocket::bind(SocketAddrV4::new(ip, p))
                    .unwrap_or_else(|e| panic!("bind {ip}:{p}: {e}"));
                let _ = crate::sys::set_rcvbuf_force(&s, 8 << 20);
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        let deadline = Instant::now() + timeout;
        let mut count = 0u64;
        let mut sources = Vec::new();
        let mut last = Instant::now();
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            let mut got = false;
            for s in &socks {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    got = true;
                    if n == 8 && buf[4..8] == MAGIC.to_be_bytes() {
                        count += 1;
                        if let SocketAddr::V4(v4) = from {
                            if !sources.contains(v4.ip()) {
                                sources.push(*v4.ip());
                            }
                        }
                    }
                }
            }
            if got {
                last = Instant::now();
            } else if stop.load(Ordering::Relaxed) && last.elapsed() > Duration::from_millis(500) {
                break;
            } else {
                thread::sleep(Duration::from_millis(1));
            }
        }
        (count, sources)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_have_valid_checksums_and_distinct_tuples() {
        for kind in [FloodKind::Udp, FloodKind::TcpSyn] {
            let flood = Flood {
                kind,
                src: Ipv4Addr::new(198, 18, 0, 1),
                dst: Ipv4Addr::new(198, 18, 0, 2),
                dst_port: 9000,
                flows: 100_000,
                batch: 64,
                rate: 1,
                timeout: Duration::from_secs(1),
            };
            let mut p = [0u8; PACKET_MAX];
            let mut tuples = std::collections::HashSet::new();
            for k in [0, 1, PORTS - 1, PORTS, PORTS + 1, 99_999] {
                let len = build(&flood, k, &mut p);
                assert_eq!(len, if kind == FloodKind::Udp { 36 } else { 40 });
                assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), len);
                assert_eq!(sum16(0, &p[..20]), 0xffff, "IP header checksum");
                let mut pseudo = [0u8; 12];
                pseudo[..4].copy_from_slice(&p[12..16]);
                pseudo[4..8].copy_from_slice(&p[16..20]);
                pseudo[9] = p[9];
                pseudo[10..12].copy_from_slice(&((len - 20) as u16).to_be_bytes());
                assert_eq!(
                    sum16(sum16(0, &pseudo), &p[20..len]),
                    0xffff,
                    "{kind:?} checksum"
                );
                assert!(tuples.insert((p[20..22].to_vec(), p[22..24].to_vec())));
            }
            if kind == FloodKind::TcpSyn {
                assert_eq!(p[33], 0x02, "SYN only");
            }
        }
        assert_eq!(dst_ports(9000, 100_000), vec![9000, 9001]);
        assert_eq!(dst_ports(9000, PORTS), vec![9000]);
    }
}
