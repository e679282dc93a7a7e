//! The switch's engine as a library, so benchmarks and tests can drive the same
//! poll worker the `switchyard` binary runs (over in-memory ports).

pub mod backoff;
pub mod fabric;
pub mod placement;
pub mod stats;
pub mod worker;
