//! Switchyard's benchmarks, as a library behind the `switchyard-perf` binary:
//!
//! - [`micro`]: the pipeline stages and the poll worker over in-memory ports,
//!   no I/O: what one core can do at best, and where the nanoseconds go.
//! - [`e2e`]: named scenarios (throughput sweep, latency, MAC pairs, routed,
//!   TCP, idle CPU) through two veths, Switchyard next to the Linux bridge
//!   (or the kernel's IP forwarding) and next to its own empty pipeline, on
//!   the same topology, AF_XDP generator and sink and cores: whether we beat
//!   the kernel, and what the pipeline costs.
//!
//! All `unsafe` code lives in [`sys`] (system calls) and [`xsk`] (AF_XDP
//! rings and UMEM); the rest of the crate may not use it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cpu;
pub mod e2e;
pub mod flows;
pub mod frames;
pub mod latency;
pub mod machine;
pub mod macs;
pub mod micro;
pub mod pacing;
pub mod payload;
pub mod progress;
pub mod report;
pub mod stalls;
pub mod svg;
#[allow(unsafe_code)]
pub mod sys;
#[allow(unsafe_code)]
pub mod xsk;
