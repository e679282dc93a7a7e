//! The control socket: protocol types, the client, and (in the daemon) the server.

pub mod client;
pub mod protocol;
