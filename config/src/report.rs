//! Issue collection shared by the parser and the validator.

use std::collections::{HashMap, HashSet};

use crate::{ConfigError, ConfigIssue, Location};

/// Collects issues and remembers, per field path, where its value was written
/// and whether it already failed, so that one mistake is reported once: a
/// port whose `network` has the wrong type is not also reported as being on
/// an undefined network.
#[derive(Default)]
pub(crate) struct Report {
    issues: Vec<ConfigIssue>,
    spans: HashMap<String, Location>,
    failed: HashSet<String>,
    /// For each parsed network, its index among the file's `[[network]]`
    /// entries (they differ when an entry was dropped as unusable).
    pub(crate) network_index: Vec<usize>,
    /// Same for ports.
    pub(crate) port_index: Vec<usize>,
}

impl Report {
    /// Field path of the `i`-th parsed network, e.g. `network[2]`.
    pub(crate) fn network_path(&self, i: usize) -> String {
        format!(
            "network[{}]",
            self.network_index.get(i).copied().unwrap_or(i)
        )
    }

    /// Field path of the `i`-th parsed port, e.g. `port[1]`.
    pub(crate) fn port_path(&self, i: usize) -> String {
        format!("port[{}]", self.port_index.get(i).copied().unwrap_or(i))
    }

    /// Records where `field`'s value was written.
    pub(crate) fn record(&mut self, field: &str, loc: Location) {
        self.spans.insert(field.to_string(), loc);
    }

    /// Where `field`'s value was written, if it was parsed from a file.
    pub(crate) fn loc(&self, field: &str) -> Option<Location> {
        self.spans.get(field).copied()
    }

    /// Every recorded value location, for [`crate::NodeConfig::value_locations`].
    pub(crate) fn locations(&self) -> std::collections::BTreeMap<String, Location> {
        self.spans.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Whether `field` already has an issue (so dependent checks stay quiet).
    pub(crate) fn failed(&self, field: &str) -> bool {
        self.failed.contains(field)
    }

    /// Records an issue at an explicit location.
    pub(crate) fn error_at(
        &mut self,
        field: impl Into<String>,
        loc: Option<Location>,
        message: impl Into<String>,
    ) {
        let field = field.into();
        self.failed.insert(field.clone());
        self.issues.push(ConfigIssue::new(loc, field, message));
    }

    /// Records a validation issue for `field`, located at its value (or at
    /// `fallback`, typically the enclosing table, when the value was not
    /// written in a file). Skipped if `field` already failed to parse.
    pub(crate) fn check_failed(
        &mut self,
        field: &str,
        fallback: Option<Location>,
        message: impl Into<String>,
    ) {
        if self.failed(field) {
            return;
        }
        let loc = self.loc(field).or(fallback);
        self.error_at(field, loc, message);
    }

    /// `Ok` when no issue was recorded, else all of them as one error.
    pub(crate) fn into_result(self, origin: &str) -> Result<(), ConfigError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(origin, self.issues))
        }
    }
}
