//! The switch's engine as a library, so benchmarks and tests can drive the same
//! poll worker the `switchyard` binary runs (over in-memory ports).

pub mod backoff;
pub mod cni;
pub mod control;
pub mod fabric;
pub mod fdb_copy;
pub mod netlink;
pub mod placement;
pub mod published;
pub mod stats;
pub mod worker;
