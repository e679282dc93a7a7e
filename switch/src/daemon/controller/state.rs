//! The state file: run-time ports and published ports recorded so a
//! restarted daemon re-adopts them.

use super::{Controller, Origin, PortEntry};
use crate::daemon::publish::{PublishEntry, PublishOrigin};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use switchyard_drivers::sys;
use tracing::{info, warn};

/// Path of the state file: next to the control socket, so two daemons with two
/// sockets never share one.
pub fn state_path(control_socket: &Path) -> PathBuf {
    let mut name = control_socket
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".state.json");
    control_socket.with_file_name(name)
}

/// What the state file keeps: the ports made at run time, so a restarted daemon
/// re-adopts them and containers keep their addresses, and the ports
/// published at run time (`ctl publish`, attach mappings), so they keep
/// forwarding; the config's own `[[publish]]` tables stay the file's.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    ports: Vec<PortEntry>,
    #[serde(default)]
    publish: Vec<PublishEntry>,
}

impl Controller {
    /// Writes the run-time ports to the state file (write, then rename).
    pub(super) fn save_state(&self) {
        let state = StateFile {
            ports: self
                .ports
                .iter()
                .flatten()
                .filter(|p| matches!(p.origin, Origin::Attach | Origin::AddPort))
                .cloned()
                .collect(),
            publish: self
                .published
                .iter()
                .filter(|p| p.origin != PublishOrigin::Config)
                .cloned()
                .collect(),
        };
        let result = serde_json::to_vec_pretty(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = self.state_path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = self.state_path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &self.state_path)
            });
        if let Err(error) = result {
            warn!(%error, path = %self.state_path.display(), "cannot write the state file");
        }
    }

    /// Re-adopts the ports a previous run recorded whose interfaces still exist,
    /// so containers keep their addresses and connectivity across a restart.
    pub fn readopt(&mut self) {
        let Ok(bytes) = std::fs::read(&self.state_path) else {
            return;
        };
        let state: StateFile = match serde_json::from_slice(&bytes) {
            Ok(state) => state,
            Err(error) => {
                warn!(%error, path = %self.state_path.display(), "ignoring an unreadable state file");
                return;
            }
        };
        for entry in state.ports {
            if sys::interface_index(&entry.interface).is_none() {
                warn!(port = %entry.name, interface = %entry.interface, "not re-adopted: its interface is gone");
                continue;
            }
            let name = entry.name.clone();
            match self.add_live_port(entry, self.config.switch.xdp_mode) {
                Ok(_) => info!(port = %name, "re-adopted from the state file"),
                Err(error) => warn!(port = %name, error = %error.message, "not re-adopted"),
            }
        }
        self.readopt_published(state.publish);
        self.save_state();
    }
}
