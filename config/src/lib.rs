//! Switchyard's node config file: types, parsing and validation.
//!
//! A node file (TOML) describes the switch (`[switch]`), its way out
//! (`[uplink]`), its L2 domains (`[[network]]`) and statically attached ports
//! (`[[port]]`); see `config/examples/node.toml` for a commented example.
//!
//! [`load`] / [`parse_str`] return a [`NodeConfig`] only when the whole file
//! is valid. Otherwise the [`ConfigError`] lists *every* problem, each with
//! its field path and line:column, because "a config with any error starts
//! nothing" and fixing one error per run is tedious. Parsing never touches
//! the system (no interface or CPU lookups), so `switchyard check` can vet a
//! file anywhere; the daemon reports run-time problems in the same located
//! form with [`ConfigError::single`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cidr;
mod error;
mod mac;
mod model;
mod parse;
mod port_range;
mod publish;
mod report;
mod tree;
mod validate;

use std::path::Path;

pub use cidr::{CidrError, Ipv4Cidr};
pub use error::{ConfigError, ConfigIssue, Location};
pub use mac::MacAddress;
pub use model::{
    ConntrackTimeouts, HostPortConfig, IdleMode, L4Protocol, NetworkConfig, NodeConfig,
    PipelineMode, PortConfig, PortDriver, PublishConfig, StaticNeighbour, SwitchConfig,
    UplinkConfig, XdpMode,
};
pub use port_range::PortRange;
pub use publish::{check_publish, routed_subnets, PublishIssue, PublishScope, PublishSpec};

/// Reads and parses the node file at `path`.
///
/// The path as given (`path.display()`) becomes the origin in messages. A
/// file that cannot be read is reported as a [`ConfigError`] too, so the
/// caller has one error type to print.
pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(origin.clone(), None, "", format!("cannot read file: {e}"))
    })?;
    parse_str(&text, &origin)
}

/// Parses and validates node-file text.
///
/// `origin` names the source in messages (usually the file name). Returns
/// every issue found: a TOML syntax error stops parsing (nothing after it can
/// be trusted), anything else is collected and checking goes on.
pub fn parse_str(text: &str, origin: &str) -> Result<NodeConfig, ConfigError> {
    let root = tree::parse_document(text).map_err(|issue| ConfigError::new(origin, vec![issue]))?;
    let mut report = report::Report::default();
    let mut cfg = parse::build(&root, origin, &mut report);
    validate::validate(&cfg, &mut report);
    cfg.value_locations = report.locations();
    report.into_result(origin)?;
    Ok(cfg)
}
