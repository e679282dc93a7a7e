//! Network address translation: masquerade (source NAT to the uplink
//! address) and published ports (destination NAT), on top of connection
//! tracking.
//!
//! [`engine`] decides and applies translations (with conntrack), [`rewrite`]
//! rewrites packets in place, [`published`] holds the published ports, [`owner`] spreads flows over
//! the workers.

pub mod engine;
pub mod owner;
pub mod published;
pub mod rewrite;
