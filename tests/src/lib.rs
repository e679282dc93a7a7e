//! End-to-end test harness for Switchyard.
//!
//! Builds "hosts" from network namespaces and veth pairs, joins them with a dataplane
//! (the `switchyard` daemon, or a Linux bridge as a test-only stand-in and baseline),
//! and moves real kernel traffic between them. Everything created in the kernel is
//! named `syt<id>...` and removed by RAII guards, also when a test panics.
//!
//! Typical use (the tests in `tests/tests/` are written this way):
//! ```no_run
//! use switchyard_tests::{Dataplane, Lab};
//! let lab = Lab::builder(Dataplane::LinuxBridge)
//!     .network("red")
//!     .host("h1", "red", "198.18.0.1/24")
//!     .host("h2", "red", "198.18.0.2/24")
//!     .start();
//! lab.assert_ping("h1", "h2", 3);
//! ```
//!
//! Test addresses come from 198.18.0.0/15 (RFC 2544, set aside for benchmarking
//! network devices); they only ever exist inside the lab's namespaces.

pub mod bridge;
pub mod cmd;
pub mod control;
pub mod daemon;
pub mod flood;
pub mod host;
pub mod lab;
pub mod names;
pub mod netns;
pub mod podman;
pub mod privilege;
pub mod serial;
pub mod stats;
pub mod sys;
pub mod tempdir;
pub mod traffic;

pub use daemon::{switchyard_bin, Daemon, DaemonConfig, DaemonExit, PortConfig};
pub use host::{Host, LinkCounters, PingResult};
pub use lab::{Dataplane, Lab, LabBuilder, PortCounters};
pub use privilege::require_root;
pub use stats::Stats;
pub use traffic::{tcp_transfer, udp_burst, TcpReport, UdpBurst, UdpReport};
