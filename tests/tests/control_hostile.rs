//! Hostile control clients: oversized lines, invalid UTF-8, unknown commands, wrong
//! types, missing fields, JSON that is not a request object, empty lines, half
//! lines, clients that close at once, never read, or come in crowds. Each gets the
//! right error (and its connection goes on); the daemon keeps forwarding a UDP flow
//! throughout and still answers afterwards; the socket is mode 0600.
//!
//! Switchyard only; raw `std::os::unix::net::UnixStream` clients.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::control::{
    assert_error_reply, expect_ok_reply, wait_until, ControlLab, Network, RawClient,
};
use switchyard_tests::{require_root, udp_burst, UdpBurst};

/// Longest request line the daemon reads (the protocol's `MAX_REQUEST_BYTES`).
const MAX_REQUEST: usize = 64 * 1024;
const VERSION: &[u8] = br#"{"cmd":"version"}"#;

fn lab() -> ControlLab {
    ControlLab::builder()
        .network(Network::l2("red"))
        .host("h1", "red", "198.18.47.1/24")
        .host("h2", "red", "198.18.47.2/24")
        .start()
}

#[track_caller]
fn assert_version(reply: &Value, what: &str) {
    let r = expect_ok_reply(reply, what);
    assert_eq!(r["protocol"], 1, "{what}: {reply}");
    assert!(r["version"].is_string(), "{what}: {reply}");
}

#[track_caller]
fn assert_socket_mode(lab: &ControlLab) {
    let meta = std::fs::metadata(lab.socket())
        .unwrap_or_else(|e| panic!("stat {}: {e}", lab.socket().display()));
    assert!(meta.file_type().is_socket(), "not a socket: {meta:?}");
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "control socket mode is {:o}",
        meta.permissions().mode() & 0o7777
    );
}

/// Lines that are not valid requests, with the code each must get.
fn hostile_lines() -> Vec<(Vec<u8>, &'static str, &'static str)> {
    let mut v: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"\xff\xfe".to_vec(), "bad_request", "invalid UTF-8"),
        (
            b"{\"cmd\":\"detach\",\"name\":\"\xc3\x28\"}".to_vec(),
            "bad_request",
            "invalid UTF-8 inside a string",
        ),
        (b"not json".to_vec(), "bad_request", "not JSON"),
        (b"{\"cmd\":\"vers".to_vec(), "bad_request", "truncated JSON"),
        (
            b"{\"cmd\":\"format-disk\"}".to_vec(),
            "bad_request",
            "unknown command",
        ),
        (
            b"{\"cmd\":\"VERSION\"}".to_vec(),
            "bad_request",
            "command in the wrong case",
        ),
        (b"{\"cmd\":42}".to_vec(), "bad_request", "cmd is a number"),
        (b"{\"cmd\":null}".to_vec(), "bad_request", "cmd is null"),
        (
            b"{\"cmd\":\"detach\",\"name\":42}".to_vec(),
            "bad_request",
            "name is a number",
        ),
        (
            b"{\"cmd\":\"detach\",\"name\":[\"h1\"]}".to_vec(),
            "bad_request",
            "name is an array",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":1,\"network\":\"red\"}".to_vec(),
            "bad_request",
            "netns is a number",
        ),
        (
            b"{\"cmd\":\"fdb\",\"network\":false}".to_vec(),
            "bad_request",
            "network is a bool",
        ),
        (
            b"{\"cmd\":\"attach\"}".to_vec(),
            "bad_request",
            "attach without fields",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":\"/run/netns/x\"}".to_vec(),
            "bad_request",
            "attach without network",
        ),
        (
            b"{\"cmd\":\"detach\"}".to_vec(),
            "bad_request",
            "detach without name",
        ),
        (
            b"{\"cmd\":\"add-port\",\"name\":\"x\"}".to_vec(),
            "bad_request",
            "add-port without interface and network",
        ),
        (
            b"{\"cmd\":\"check\",\"name\":\"x\"}".to_vec(),
            "bad_request",
            "check without netns",
        ),
        (b"{}".to_vec(), "bad_request", "empty object"),
        (
            b"{\"name\":\"h1\"}".to_vec(),
            "bad_request",
            "object without cmd",
        ),
        (
            b"{\"cmd\":\"fdb\",\"netwrok\":\"red\"}".to_vec(),
            "bad_request",
            "misspelt field",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":\"/x\",\"network\":\"red\",\"evil\":1}".to_vec(),
            "bad_request",
            "extra field",
        ),
        (b"[]".to_vec(), "bad_request", "empty array"),
        (b"[1,2,3]".to_vec(), "bad_request", "array"),
        (
            b"[{\"cmd\":\"version\"}]".to_vec(),
            "bad_request",
            "request inside an array",
        ),
        (b"\"version\"".to_vec(), "bad_request", "string"),
        (b"42".to_vec(), "bad_request", "number"),
        (b"null".to_vec(), "bad_request", "null"),
        (b"true".to_vec(), "bad_request", "bool"),
        (
            b"{\"cmd\":\"version\"} {\"cmd\":\"version\"}".to_vec(),
            "bad_request",
            "two requests on one line",
        ),
        (
            b"{\"cmd\":\"version\"}\0".to_vec(),
            "bad_request",
            "trailing NUL",
        ),
        (
            b"{\"cmd\":\"detach\",\"name\":\"\\ud800\"}".to_vec(),
            "bad_request",
            "lone surrogate escape",
        ),
        (
            b"{\"cmd\":\"detach\",\"name\":1e999999}".to_vec(),
            "bad_request",
            "number out of range",
        ),
        (vec![b'['; 50_000], "bad_request", "50000 nested arrays"),
        // Well-formed, but naming things that do not exist or cannot work.
        (
            b"{\"cmd\":\"detach\",\"name\":\"nosuch\"}".to_vec(),
            "not_found",
            "detach of an unknown port",
        ),
        (
            b"{\"cmd\":\"detach\",\"name\":\"h\\u0000\\u00e9\"}".to_vec(),
            "not_found",
            "detach of a name with NUL and non-ASCII",
        ),
        (
            b"{\"cmd\":\"detach\",\"name\":\"h1\"}".to_vec(),
            "invalid_argument",
            "detach of a config port",
        ),
        (
            b"{\"cmd\":\"del-port\",\"name\":\"h1\"}".to_vec(),
            "invalid_argument",
            "del-port of a config port",
        ),
        (
            b"{\"cmd\":\"del-port\",\"name\":\"\"}".to_vec(),
            "not_found",
            "del-port of an empty name",
        ),
        (
            b"{\"cmd\":\"fdb\",\"network\":\"nosuch\"}".to_vec(),
            "not_found",
            "fdb of an unknown network",
        ),
        (
            b"{\"cmd\":\"check\",\"name\":\"nosuch\",\"netns\":\"/x\"}".to_vec(),
            "not_found",
            "check of an unknown port",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":\"\",\"network\":\"red\"}".to_vec(),
            "invalid_argument",
            "attach with an empty netns",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":\"99999999999999999999\",\"network\":\"red\"}".to_vec(),
            "invalid_argument",
            "attach with a PID out of range",
        ),
        (
            b"{\"cmd\":\"attach\",\"netns\":\"/run/netns/x\",\"network\":\"nosuch\"}".to_vec(),
            "not_found",
            "attach to an unknown network",
        ),
        (
            b"{\"cmd\":\"add-port\",\"name\":\"\",\"interface\":\"x\",\"network\":\"red\"}"
                .to_vec(),
            "invalid_argument",
            "add-port with an empty name",
        ),
    ];
    // A valid request padded past the limit is still too large.
    let mut padded = br#"{"cmd":"detach","name":""#.to_vec();
    padded.extend(std::iter::repeat_n(b'x', 2 * MAX_REQUEST));
    padded.extend_from_slice(b"\"}");
    v.push((padded, "request_too_large", "128 KiB detach"));
    v
}

/// Every hostile line on one connection, each answered with its code, and the
/// connection still serves a valid request after each.
fn hostile_lines_on_one_connection(lab: &ControlLab) {
    let mut c = RawClient::connect(lab.socket());
    for (line, code, what) in hostile_lines() {
        let reply = c.request(&line);
        assert_error_reply(&reply, code, what);
        assert_version(&c.request(VERSION), &format!("version after {what}"));
    }
}

/// A 1 MiB line: `request_too_large`, and the connection reads the next line.
fn one_mebibyte_line(lab: &ControlLab) {
    let mut c = RawClient::connect(lab.socket());
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    big.extend_from_slice(VERSION);
    big.push(b'\n');
    // The daemon answers the first line only after reading all of it; write from a
    // thread so a full socket buffer cannot stall the reads below.
    let mut writer = c.stream().try_clone().expect("clone");
    let w = thread::spawn(move || writer.write_all(&big));
    assert_error_reply(&c.read_reply(), "request_too_large", "1 MiB line");
    assert_version(&c.read_reply(), "version after a 1 MiB line");
    w.join()
        .expect("writer thread")
        .expect("write the 1 MiB line");
}

/// A line of exactly the limit is read; one byte more is too large.
fn limit_boundary(lab: &ControlLab) {
    let mut c = RawClient::connect(lab.socket());
    let mut at_limit = VERSION.to_vec();
    at_limit.resize(MAX_REQUEST, b' ');
    assert_version(&c.request(&at_limit), "a line of exactly 64 KiB");
    let mut over = VERSION.to_vec();
    over.resize(MAX_REQUEST + 1, b' ');
    assert_error_reply(&c.request(&over), "request_too_large", "64 KiB + 1");
    assert_version(&c.request(VERSION), "version after 64 KiB + 1");
}

/// Empty and blank lines get no reply; pipelined requests get replies in order; the
/// last line of a client that half-closes without a newline is still answered.
fn framing(lab: &ControlLab) {
    let mut c = RawClient::connect(lab.socket());
    c.send_raw(b"\n\n   \n\t\r\n");
    c.send_raw(VERSION);
    c.send_raw(b"\n");
    assert_version(&c.read_reply(), "version after empty lines");

    let mut burst = Vec::new();
    for i in 0..50 {
        if i % 2 == 0 {
            burst.extend_from_slice(VERSION);
        } else {
            burst.extend_from_slice(b"{\"cmd\":\"nope\"}");
        }
        burst.push(b'\n');
    }
    c.send_raw(&burst);
    for i in 0..50 {
        let r = c.read_reply();
        if i % 2 == 0 {
            assert_version(&r, &format!("pipelined request {i}"));
        } else {
            assert_error_reply(&r, "bad_request", &format!("pipelined request {i}"));
        }
    }

    let mut c = RawClient::connect(lab.socket());
    c.send_raw(VERSION);
    c.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_version(&c.read_reply(), "last line without a newline");
    let mut rest = Vec::new();
    let _ = c.stream().read_to_end(&mut rest);
    assert!(rest.is_empty(), "more after the last reply: {rest:?}");
}

/// Clients that connect and close at once, that close mid-line, and one that sends
/// many requests and never reads its replies.
fn rude_clients(lab: &ControlLab) {
    for i in 0..200 {
        let s = UnixStream::connect(lab.socket()).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        drop(s);
    }
    for i in 0..20 {
        let mut s = UnixStream::connect(lab.socket()).expect("connect");
        let _ = s.write_all(&br#"{"cmd":"attach","netns":"/run/netns/x","netw"#[..10 + i]);
        drop(s);
    }
    let mut s = UnixStream::connect(lab.socket()).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut many = Vec::new();
    for _ in 0..2000 {
        many.extend_from_slice(br#"{"cmd":"ports"}"#);
        many.push(b'\n');
    }
    let _ = s.write_all(&many);
    drop(s);
    // The daemon may still be winding down those connections' threads and turn a
    // client away with "too many clients; retry" meanwhile: it must recover quickly.
    let start = Instant::now();
    let mut last = Value::Null;
    let served = wait_until(Duration::from_secs(5), || {
        last = lab.raw_request(VERSION);
        last["ok"] == true
    });
    assert!(
        served,
        "not served within 5 s after the rude clients; last reply {last}"
    );
    if start.elapsed() > Duration::from_millis(20) {
        eprintln!("served {:?} after the rude clients left", start.elapsed());
    }
}

/// 20 clients at once, each with a mix of valid and invalid requests, while another
/// holds half a line open; every reply is right.
fn crowd(lab: &ControlLab) {
    let mut loris = UnixStream::connect(lab.socket()).expect("connect");
    loris.write_all(br#"{"cmd":"vers"#).expect("half a request");
    thread::scope(|s| {
        let workers: Vec<_> = (0..20)
            .map(|t| {
                s.spawn(move || {
                    let mut c = RawClient::connect(lab.socket());
                    for i in 0..25 {
                        match (t + i) % 4 {
                            0 => assert_version(&c.request(VERSION), "crowd version"),
                            1 => assert_error_reply(
                                &c.request(b"{\"cmd\":\"detach\",\"name\":7}"),
                                "bad_request",
                                "crowd wrong type",
                            ),
                            2 => {
                                let r = c.request(br#"{"cmd":"ports"}"#);
                                let ports = expect_ok_reply(&r, "crowd ports");
                                assert_eq!(
                                    ports.as_array().map(Vec::len),
                                    Some(2),
                                    "crowd ports: {r}"
                                );
                            }
                            _ => assert_error_reply(
                                &c.request(b"\xfe\xff"),
                                "bad_request",
                                "crowd invalid UTF-8",
                            ),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
    // The slow client's line completes late and is answered.
    loris.write_all(b"ion\"}\n").expect("rest of the request");
    let mut r = Vec::new();
    let mut byte = [0u8; 1];
    loris
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    while r.last() != Some(&b'\n') && r.len() < 4096 {
        match loris.read(&mut byte) {
            Ok(1) => r.push(byte[0]),
            _ => break,
        }
    }
    let v: Value = serde_json::from_slice(&r)
        .unwrap_or_else(|e| panic!("slow client's reply {:?}: {e}", String::from_utf8_lossy(&r)));
    assert_version(&v, "slow client");
}

#[test]
fn hostile_clients_get_errors_while_forwarding_goes_on() {
    require_root!();
    let lab = lab();
    assert_socket_mode(&lab);
    let (h1, h2) = (lab.host("h1"), lab.host("h2"));
    for (a, b) in [(h1, h2), (h2, h1)] {
        let r = a.ping(b.ip(), 3);
        assert!(r.all_replied(), "warm-up ping: {}", r.output);
    }
    let ports_before = lab.ports();

    let done = AtomicBool::new(false);
    let (report, (rounds, hostile_time)) = thread::scope(|s| {
        let flow = s.spawn(|| {
            let r = udp_burst(
                h1,
                h2,
                UdpBurst {
                    port: 7200,
                    count: 12_000,
                    batch: 4,
                    timeout: Duration::from_secs(60),
                    ..UdpBurst::default()
                },
            );
            done.store(true, Ordering::SeqCst);
            r
        });
        thread::sleep(Duration::from_millis(300));
        // Rounds of every kind of hostile client, for as long as the flow runs.
        let start = Instant::now();
        let mut rounds = 0;
        while !done.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
            hostile_lines_on_one_connection(&lab);
            one_mebibyte_line(&lab);
            limit_boundary(&lab);
            framing(&lab);
            rude_clients(&lab);
            crowd(&lab);
            rounds += 1;
        }
        let report = flow.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        assert!(
            rounds >= 2,
            "only {rounds} round(s) of hostile clients while the flow ran: make it longer"
        );
        (report, (rounds, start.elapsed()))
    });
    eprintln!("{rounds} rounds of hostile clients in {hostile_time:?}; flow {report:?}");
    assert_eq!(
        (
            report.lost(),
            report.reordered,
            report.duplicates,
            report.corrupt
        ),
        (0, 0, 0, 0),
        "h1 -> h2 while hostile clients ran (lost, reordered, duplicates, corrupt): {report:?}"
    );
    assert_version(&lab.raw_request(VERSION), "version at the end");
    let v = lab.ctl_json(&["version"]);
    assert_eq!(v["protocol"], 1, "{v}");
    let names = |p: &[switchyard_tests::control::PortRow]| {
        p.iter()
            .map(|r| (r.name.clone(), r.interface.clone(), r.origin.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&lab.ports()), names(&ports_before));
    assert_socket_mode(&lab);
    let r = h2.ping(h1.ip(), 3);
    assert!(r.all_replied(), "ping at the end: {}", r.output);
}

/// More clients than the daemon serves at once (32) are turned away with an error
/// reply, not left hanging; once they leave, new clients are served at once.
#[test]
fn a_crowd_beyond_the_client_limit_is_turned_away_and_service_resumes() {
    require_root!();
    let lab = lab();
    let mut held: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(lab.socket()).expect("connect"))
        .collect();
    // Each client over the limit waits up to 1 s for a slot before it is
    // turned away (so clients that just left never make a newcomer fail):
    // eight of them take about 8 s. Look at every connection until eight have
    // their refusal, for at most 20 s.
    let mut replied = vec![false; held.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while replied.iter().filter(|r| **r).count() < 8 && Instant::now() < deadline {
        for (s, done) in held.iter_mut().zip(replied.iter_mut()) {
            if *done {
                continue;
            }
            s.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 512];
            if let Ok(n) = s.read(&mut buf) {
                if n > 0 {
                    let v: Value = serde_json::from_slice(buf[..n].trim_ascii_end())
                        .unwrap_or_else(|e| {
                            panic!("{e}: {:?}", String::from_utf8_lossy(&buf[..n]))
                        });
                    assert_eq!(v["ok"], false, "{v}");
                    *done = true;
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    // The 32 served ones stay open and silent.
    thread::sleep(Duration::from_millis(300));
    for (s, done) in held.iter_mut().zip(replied.iter_mut()) {
        let mut buf = [0u8; 512];
        if !*done && matches!(s.read(&mut buf), Ok(n) if n > 0) {
            *done = true;
        }
    }
    let turned_away = replied.iter().filter(|r| **r).count();
    assert_eq!(
        turned_away, 8,
        "40 idle clients, a limit of 32: {turned_away} turned away"
    );
    drop(held);
    let start = Instant::now();
    let ok = wait_until(Duration::from_secs(5), || {
        let mut c = RawClient::connect(lab.socket());
        let r = c.request(VERSION);
        r["ok"] == true
    });
    assert!(ok, "not served within 5 s after the crowd left");
    eprintln!("served again after {:?}", start.elapsed());
}

/// Unknown fields are refused on every command, not only on those with fields:
/// `Request` is `deny_unknown_fields`, and `{"cmd":"fdb","netwrok":..}` is refused.
#[test]
fn unknown_fields_are_refused_on_commands_without_fields() {
    require_root!();
    let lab = lab();
    for line in [
        &br#"{"cmd":"version","extra":1}"#[..],
        br#"{"cmd":"ports","extra":1}"#,
        br#"{"cmd":"stats","extra":1}"#,
        br#"{"cmd":"reload","force":true}"#,
    ] {
        let reply = lab.raw_request(line);
        assert_error_reply(&reply, "bad_request", &String::from_utf8_lossy(line));
    }
}
