//! Data-carrying traffic between hosts, checked byte for byte on arrival.
//!
//! Ping proves little through an AF_XDP switch (ICMP has no offloaded checksum), so the
//! tests move TCP and UDP payloads from Rust sockets opened inside the namespaces and
//! compare every received byte with what was sent. Every loop is bounded in count and
//! time and every socket has timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::host::Host;

/// A reproducible pseudo-random byte stream (xorshift64*), so the receiver can
/// regenerate what the sender sent without the two sharing memory.
#[derive(Debug, Clone)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()
    }

    /// Fills `buf` with the next `buf.len()` bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.word = self.next_word();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// FNV-1a, to print a short digest of a whole transfer in reports.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The digest so far.
    pub fn digest(&self) -> u64 {
        self.0
    }
}

/// What a TCP transfer delivered.
#[derive(Debug, Clone)]
pub struct TcpReport {
    /// Bytes the sender wrote.
    pub sent: u64,
    /// Bytes the receiver read before EOF (or error).
    pub received: u64,
    /// Offset of the first byte that differed from the sent stream, if any.
    pub first_mismatch: Option<u64>,
    /// Digest of the sent stream.
    pub sent_digest: u64,
    /// Digest of the received stream.
    pub received_digest: u64,
    /// How long the receiver took from accept to EOF.
    pub elapsed: Duration,
    /// Receiver-side error that ended the transfer early, if any.
    pub error: Option<String>,
    /// The connection's source as the receiver saw it (routing tests check
    /// that no translation happened).
    pub peer: SocketAddr,
}

impl TcpReport {
    /// True when every byte arrived intact and nothing extra came.
    pub fn intact(&self) -> bool {
        self.error.is_none()
            && self.first_mismatch.is_none()
            && self.received == self.sent
            && self.sent_digest == self.received_digest
    }

    /// Throughput in Mbit/s (receiver side), for the log.
    pub fn mbit_per_s(&self) -> f64 {
        self.received as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

const CHUNK: usize = 64 * 1024;
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `len` pattern bytes over TCP from `from` to `to:port`, checking them on arrival.
///
/// The receiver listens inside `to`'s namespace and signals readiness before the sender
/// (inside `from`'s namespace) connects. Bounded by `timeout` overall and by
/// per-operation socket timeouts.
#[track_caller]
pub fn tcp_transfer(from: &Host, to: &Host, port: u16, len: u64, timeout: Duration) -> TcpReport {
    let seed = 0x5357_4954_4348_0000 ^ len ^ u64::from(port);
    let listen_addr = SocketAddr::V4(SocketAddrV4::new(to.ip(), port));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let deadline = Instant::now() + timeout;

    let receiver = to.spawn("tcp-rx", move || {
        let listener = match TcpListener::bind(listen_addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready_tx.send(Err(format!("bind {listen_addr}: {e}")));
                panic!("bind {listen_addr}: {e}");
            }
        };
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let _ = ready_tx.send(Ok(()));
        let (mut stream, peer) = loop {
            match listener.accept() {
                Ok((s, peer)) => break (s, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "no TCP connection on {listen_addr} before the deadline"
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept on {listen_addr}: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .expect("read timeout");
        let start = Instant::now();
        let mut expected = Pattern::new(seed);
        let mut want = vec![0u8; CHUNK];
        let mut buf = vec![0u8; CHUNK];
        let mut received = 0u64;
        let mut first_mismatch = None;
        let mut digest = Fnv::default();
        let mut error = None;
        loop {
            if Instant::now() >= deadline {
                error = Some(format!("deadline passed after {received} bytes"));
                break;
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    expected.fill(&mut want[..n]);
                    if first_mismatch.is_none() {
                        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                            first_mismatch = Some(received + i as u64);
                        }
                    }
                    digest.update(&buf[..n]);
                    received += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(format!("read after {received} bytes: {e}"));
                    break;
                }
            }
        }
        (
            received,
            first_mismatch,
            digest.digest(),
            start.elapsed(),
            error,
            peer,
        )
    });

    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("TCP receiver failed: {e}"),
        Err(_) => panic!("TCP receiver on {} not ready within 10 s", to.name()),
    }

    let sender = from.spawn("tcp-tx", move || {
        let mut stream = TcpStream::connect_timeout(&listen_addr, SOCKET_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {listen_addr}: {e}"));
        stream
            .set_write_timeout(Some(SOCKET_TIMEOUT))
            .expect("write timeout");
        let mut pattern = Pattern::new(seed);
        let mut digest = Fnv::default();
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        while sent < len {
            assert!(
                Instant::now() < deadline,
                "sender deadline passed after {sent} bytes"
            );
            let n = (len - sent).min(CHUNK as u64) as usize;
            pattern.fill(&mut buf[..n]);
            stream
                .write_all(&buf[..n])
                .unwrap_or_else(|e| panic!("write after {sent} bytes: {e}"));
            digest.update(&buf[..n]);
            sent += n as u64;
        }
        stream
            .shutdown(std::net::Shutdown::Write)
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
        // Wait for the receiver to close, so the kernel is not mid-retransmit when the
        // namespaces go away; bounded by the read timeout.
        let mut sink = [0u8; 16];
        let _ = stream.set_read_timeout(Some(SOCKET_TIMEOUT));
        let _ = stream.read(&mut sink);
        (sent, digest.digest())
    });

    let slack = Duration::from_secs(15);
    let (received, first_mismatch, received_digest, elapsed, error, peer) =
        receiver.join(timeout + slack);
    let (sent, sent_digest) = sender.join(slack);
    TcpReport {
        sent,
        received,
        first_mismatch,
        sent_digest,
        received_digest,
        elapsed,
        error,
        peer,
    }
}

/// How a UDP burst arrived.
#[derive(Debug, Clone)]
pub struct UdpReport {
    /// Datagrams sent.
    pub sent: u32,
    /// Distinct sequence numbers received intact.
    pub received: u32,
    /// Datagrams seen more than once.
    pub duplicates: u32,
    /// Datagrams whose payload or length was wrong.
    pub corrupt: u32,
    /// Datagrams that arrived after a higher sequence number.
    pub reordered: u32,
}

impl UdpReport {
    /// Datagrams that never arrived intact.
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received)
    }

    /// Fraction delivered intact (0.0..=1.0).
    pub fn delivery_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.received) / f64::from(self.sent)
    }
}

const UDP_MAGIC: u32 = 0x5359_5544; // "SYUD"

fn udp_payload(seq: u32, total: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&UDP_MAGIC.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
    let start = out.len();
    out.resize(len.max(start), 0);
    Pattern::new(0x5544_5000 ^ u64::from(seq)).fill(&mut out[start..]);
}

/// Parameters of a UDP burst.
#[derive(Debug, Clone, Copy)]
pub struct UdpBurst {
    /// Destination port on the receiver.
    pub port: u16,
    /// Datagrams to send.
    pub count: u32,
    /// Payload bytes per datagram (>= 12).
    pub payload_len: usize,
    /// Datagrams sent back to back before a 1 ms pause: bounds the rate at about
    /// `batch` kpps and keeps bursts below the 256-entry veth XDP ring.
    pub batch: u32,
    /// Overall bound.
    pub timeout: Duration,
}

impl Default for UdpBurst {
    fn default() -> Self {
        UdpBurst {
            port: 5001,
            count: 2000,
            payload_len: 512,
            batch: 16,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Sends a paced burst of sequence-numbered datagrams from `from` to `to` and counts
/// what arrives intact.
///
/// The receiver stops when it has every datagram, or 2 s after the sender finished
/// (late datagrams are loss), or at the deadline.
#[track_caller]
pub fn udp_burst(from: &Host, to: &Host, burst: UdpBurst) -> UdpReport {
    assert!(
        burst.payload_len >= 12,
        "payload must hold the 12-byte header"
    );
    let dst = SocketAddr::V4(SocketAddrV4::new(to.ip(), burst.port));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let deadline = Instant::now() + burst.timeout;
    let UdpBurst {
        count,
        payload_len,
        batch,
        ..
    } = burst;

    let receiver = to.spawn("udp-rx", move || {
        let sock = match UdpSocket::bind(dst) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready_tx.send(Err(format!("bind {dst}: {e}")));
                panic!("bind {dst}: {e}");
            }
        };
        let _ = crate::sys::set_rcvbuf_force(&sock, 8 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let _ = ready_tx.send(Ok(()));
        let mut seen = vec![false; count as usize];
        let mut report = UdpReport {
            sent: count,
            received: 0,
            duplicates: 0,
            corrupt: 0,
            reordered: 0,
        };
        let mut highest: Option<u32> = None;
        let mut buf = vec![0u8; 65536];
        let mut want = Vec::with_capacity(payload_len);
        let mut sender_done_at: Option<Instant> = None;
        loop {
            if report.received == count || Instant::now() >= deadline {
                break;
            }
            if sender_done_at.is_none() && done_rx.try_recv().is_ok() {
                sender_done_at = Some(Instant::now());
            }
            if sender_done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                break;
            }
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let d = &buf[..n];
                    if n < 12 || d[0..4] != UDP_MAGIC.to_be_bytes() {
                        report.corrupt += 1;
                        continue;
                    }
                    let seq = u32::from_be_bytes(d[4..8].try_into().expect("4 bytes"));
                    if seq >= count {
                        report.corrupt += 1;
                        continue;
                    }
                    udp_payload(seq, count, payload_len, &mut want);
                    if d != want.as_slice() {
                        report.corrupt += 1;
                        continue;
                    }
                    if seen[seq as usize] {
                        report.duplicates += 1;
                        continue;
                    }
                    seen[seq as usize] = true;
                    report.received += 1;
                    match highest {
                        Some(h) if seq < h => report.reordered += 1,
                        _ => highest = Some(seq),
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("recv on {dst}: {e}"),
            }
        }
        report
    });

    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("UDP receiver failed: {e}"),
        Err(_) => panic!("UDP receiver on {} not ready within 10 s", to.name()),
    }

    let sender = from.spawn("udp-tx", move || {
        let sock =
            UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).expect("bind sender");
        sock.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("write timeout");
        let mut payload = Vec::with_capacity(payload_len);
        let mut sent = 0u32;
        for seq in 0..count {
            if Instant::now() >= deadline {
                break;
            }
            udp_payload(seq, count, payload_len, &mut payload);
            match sock.send_to(&payload, dst) {
                Ok(_) => sent += 1,
                // ENOBUFS / EAGAIN: the local qdisc is full; that is the sender, not
                // the switch, so retry once after a pause.
                Err(_) => {
                    thread::sleep(Duration::from_millis(2));
                    if sock.send_to(&payload, dst).is_ok() {
                        sent += 1;
                    }
                }
            }
            if batch > 0 && (seq + 1) % batch == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = done_tx.send(());
        sent
    });

    let slack = Duration::from_secs(10);
    let sent = sender.join(burst.timeout + slack);
    let mut report = receiver.join(burst.timeout + slack);
    report.sent = sent;
    assert_eq!(
        sent, count,
        "the sender could only send {sent} of {count} datagrams (local error, not the switch)"
    );
    report
}

/// Connects to `to`, retrying a 2 s connect up to `attempts` times 100 ms
/// apart (a server thread that is still binding, a NAT rule still being
/// installed); the last error when every attempt failed.
pub fn connect_retrying(to: SocketAddr, attempts: u32) -> Result<TcpStream, String> {
    let mut last = String::from("no attempt");
    for _ in 0..attempts {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = e.to_string();
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Err(format!("connect to {to}: {last}"))
}

/// Serves one TCP connection on `listen` inside `server`'s namespace, for at
/// most `window`: reads it to the end and answers with the byte count (the
/// client side is [`count_echo_client`]). Returns the bytes read and the
/// peer it saw, or `None` when nobody connected in time.
pub fn count_echo_server(
    server: &Host,
    listen: SocketAddr,
    window: Duration,
) -> crate::netns::NsThread<Option<(usize, SocketAddr)>> {
    server.spawn("count-echo-srv", move || {
        let listener = TcpListener::bind(listen).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream
                        .set_read_timeout(Some(SOCKET_TIMEOUT))
                        .expect("timeout");
                    let mut got = Vec::new();
                    stream.read_to_end(&mut got).expect("read");
                    let _ = stream.write_all(&(got.len() as u64).to_be_bytes());
                    return Some((got.len(), peer));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept on {listen}: {e}"),
            }
        }
        None
    })
}

/// From `client`'s namespace: connects to `to` ([`connect_retrying`] with
/// `attempts`), sends `len` bytes, and returns the count the
/// [`count_echo_server`] echoed, or why not.
pub fn count_echo_client(
    client: &Host,
    to: SocketAddr,
    len: usize,
    attempts: u32,
) -> Result<u64, String> {
    client
        .spawn("count-echo-cli", move || {
            let mut stream = connect_retrying(to, attempts)?;
            let io = |e: std::io::Error| e.to_string();
            stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(io)?;
            stream.write_all(&vec![0x5a; len]).map_err(io)?;
            stream.shutdown(std::net::Shutdown::Write).map_err(io)?;
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).map_err(io)?;
            Ok(u64::from_be_bytes(n))
        })
        .join(Duration::from_secs(u64::from(attempts) * 3 + 30))
}

/// An interactive TCP session, as SSH is: the client writes a few bytes
/// (1 to 200), the server answers with as many, round after round, a few
/// milliseconds apart, until [`Chat::finish`]. Both directions carry
/// [`Pattern`] streams checked byte for byte and in order on arrival.
#[derive(Debug)]
pub struct Chat {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    client: crate::netns::NsThread<ChatReport>,
    server: crate::netns::NsThread<Result<u64, String>>,
}

/// What a [`Chat`] carried.
#[derive(Debug, Clone)]
pub struct ChatReport {
    /// Rounds completed (written, answered, both checked).
    pub rounds: u64,
    /// Bytes the client wrote and got answered (the same count each way).
    pub bytes: u64,
    /// The longest round, write to last byte of the answer.
    pub slowest_round: Duration,
    /// What ended the session early, if anything.
    pub error: Option<String>,
    /// Bytes the server read and checked, or its error.
    pub server: Result<u64, String>,
}

impl ChatReport {
    /// True when every round went through and every byte arrived intact,
    /// in order, both ways.
    pub fn intact(&self) -> bool {
        self.error.is_none() && self.rounds > 0 && self.server == Ok(self.bytes)
    }
}

const CHAT_UP: u64 = 0x4348_4154_5550; // "CHATUP"
const CHAT_DOWN: u64 = 0x4348_4154_444e; // "CHATDN"

impl Chat {
    /// Starts the server on `listen` in `server`'s namespace and the client
    /// in `client`'s, which connects ([`connect_retrying`]) and chats until
    /// [`finish`](Self::finish) or `window` passes. Every read and write has
    /// a 10 s timeout.
    pub fn start(client: &Host, server: &Host, listen: SocketAddr, window: Duration) -> Chat {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let deadline = Instant::now() + window;
        let server = server.spawn("chat-srv", move || {
            let listener = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("bind {listen}: {e}")));
                    return Err(format!("bind {listen}: {e}"));
                }
            };
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let _ = ready_tx.send(Ok(()));
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("accept on {listen}: {e}")),
                }
            };
            let io = |e: std::io::Error| e.to_string();
            stream.set_nonblocking(false).map_err(io)?;
            stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(io)?;
            stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(io)?;
            let mut up = Pattern::new(CHAT_UP);
            let mut down = Pattern::new(CHAT_DOWN);
            let (mut buf, mut want) = ([0u8; 256], [0u8; 256]);
            let mut total = 0u64;
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read after {total} bytes: {e}")),
                };
                up.fill(&mut want[..n]);
                if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                    return Err(format!("byte {} differs", total + i as u64));
                }
                total += n as u64;
                down.fill(&mut buf[..n]);
                stream
                    .write_all(&buf[..n])
                    .map_err(|e| format!("answer after {total} bytes: {e}"))?;
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("the chat server did not start in 10 s".into()));
        if let Err(e) = ready {
            panic!("{e}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (stop2, rounds2) = (stop.clone(), rounds.clone());
        let client = client.spawn("chat-cli", move || {
            let mut report = ChatReport {
                rounds: 0,
                bytes: 0,
                slowest_round: Duration::ZERO,
                error: None,
                server: Ok(0),
            };
            let mut stream = match connect_retrying(listen, 50) {
                Ok(s) => s,
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            };
            let _ = stream.set_read_timeout(Some(SOCKET_TIMEOUT));
            let _ = stream.set_write_timeout(Some(SOCKET_TIMEOUT));
            let _ = stream.set_nodelay(true);
            let mut up = Pattern::new(CHAT_UP);
            let mut down = Pattern::new(CHAT_DOWN);
            let (mut out, mut buf, mut want) = ([0u8; 200], [0u8; 200], [0u8; 200]);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                let len = 1 + (report.rounds as usize * 37) % 200;
                up.fill(&mut out[..len]);
                down.fill(&mut want[..len]);
                let began = Instant::now();
                if let Err(e) = stream.write_all(&out[..len]) {
                    report.error = Some(format!("write in round {}: {e}", report.rounds));
                    return report;
                }
                if let Err(e) = stream.read_exact(&mut buf[..len]) {
                    report.error = Some(format!("answer in round {}: {e}", report.rounds));
                    return report;
                }
                if let Some(i) = (0..len).find(|&i| buf[i] != want[i]) {
                    report.error = Some(format!("answer byte {} differs", report.bytes + i as u64));
                    return report;
                }
                report.slowest_round = report.slowest_round.max(began.elapsed());
                report.bytes += len as u64;
                report.rounds += 1;
                rounds2.store(report.rounds, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
            let _ = stream.shutdown(std::net::Shutdown::Write);
            // The server's EOF after it answered everything.
            let _ = stream.read(&mut buf);
            report
        });
        Chat {
            stop,
            rounds,
            client,
            server,
        }
    }

    /// Rounds completed so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Ends the session (the client closes after its current round) and
    /// reports both sides.
    #[track_caller]
    pub fn finish(self) -> ChatReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = self.client.join(Duration::from_secs(30));
        report.server = self.server.join(Duration::from_secs(30));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_independent_of_chunking() {
        let mut a = Pattern::new(7);
        let mut whole = vec![0u8; 1000];
        a.fill(&mut whole);
        let mut b = Pattern::new(7);
        let mut parts = vec![0u8; 1000];
        let (x, rest) = parts.split_at_mut(3);
        b.fill(x);
        let (y, z) = rest.split_at_mut(500);
        b.fill(y);
        b.fill(z);
        assert_eq!(whole, parts);
        assert_ne!(whole[..8], whole[8..16]);
    }

    #[test]
    fn udp_payload_layout() {
        let mut p = Vec::new();
        udp_payload(5, 10, 64, &mut p);
        assert_eq!(p.len(), 64);
        assert_eq!(&p[4..8], &5u32.to_be_bytes());
    }
}
