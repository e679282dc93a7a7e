//! Network address translation: masquerade (source NAT to the uplink
//! address) and published ports (destination NAT), on top of connection
//! tracking.
//!
//! Today: [`rewrite`], the in-place packet rewriting both directions use,
//! and [`published`], the published ports.

pub mod published;
pub mod rewrite;
