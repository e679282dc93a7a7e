//! Switchyard's benchmarks, as a library behind the `switchyard-perf` binary:
//!
//! - [`micro`]: the pipeline stages and the poll worker over in-memory ports,
//!   no I/O: what one core can do at best, and where the nanoseconds go.
//! - [`e2e`]: real forwarding between two veths, Switchyard next to the Linux
//!   bridge on the same topology, generator and cores: whether we beat it.
//!
//! All `unsafe` code lives in [`sys`]; the rest of the crate may not use it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod e2e;
pub mod frames;
pub mod machine;
pub mod micro;
pub mod report;
#[allow(unsafe_code)]
pub mod sys;
