//! Located configuration errors.
//!
//! Every problem found in a node file becomes one [`ConfigIssue`] carrying the
//! dotted field path (`port[1].network`) and, when known, the 1-based
//! line:column of the offending value. All issues of one file are gathered in
//! a [`ConfigError`] so the user can fix them in one go rather than one
//! restart at a time.

use std::fmt;

use serde::Serialize;

/// A 1-based position in a config file.
///
/// Kept next to every network and port (and inside every issue) so that the
/// daemon can point at the right line even for problems it only discovers at
/// run time, such as a missing interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters (not bytes), starting at 1.
    pub column: usize,
}

impl Location {
    /// Builds a location from 1-based line and column numbers.
    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Location {
    /// Formats as `line:column`, the form editors and compilers use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a config file.
///
/// Display renders `line:column: field: message` (parts that are unknown are
/// left out); [`ConfigError`] prefixes the file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render_issue(self))]
pub struct ConfigIssue {
    /// Where the offending value (or table header) starts, when known.
    /// `None` for problems that are not tied to a place, such as an
    /// unreadable file.
    pub location: Option<Location>,
    /// Dotted path of the field, with 0-based indexes into arrays of tables:
    /// `switch.workers`, `network[0].subnet`, `port[1].network`.
    /// Empty for problems about the file as a whole (I/O, TOML syntax).
    pub field: String,
    /// Human-readable description of what is wrong and, where it helps, how
    /// to fix it.
    pub message: String,
}

impl ConfigIssue {
    /// Builds an issue; a convenience for the parser and for callers that
    /// collect run-time problems before wrapping them in a [`ConfigError`].
    pub fn new(
        location: Option<Location>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            location,
            field: field.into(),
            message: message.into(),
        }
    }
}

fn render_issue(issue: &ConfigIssue) -> String {
    let mut out = String::new();
    if let Some(loc) = issue.location {
        out.push_str(&format!("{loc}: "));
    }
    if !issue.field.is_empty() {
        push_escaped(&mut out, &issue.field);
        out.push_str(": ");
    }
    push_escaped(&mut out, &issue.message);
    out
}

/// Appends `s` with control characters escaped (`\n`, `\t`, ...), so an
/// issue quoting a user's value always stays on one line.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// Everything wrong with one config file.
///
/// Display prints one line per issue, `origin:line:column: field: message`,
/// e.g. `node.toml:12:5: port[1].network: network "db" is not defined`, so the
/// output can be read by people and jumped to by editors. A config with any
/// issue must start nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render_error(.origin, .issues))]
pub struct ConfigError {
    /// Where the config came from (file name as given), used as the prefix
    /// of every line.
    pub origin: String,
    /// All problems found, sorted by location (issues without one last).
    /// Never empty when produced by this crate.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// An error with exactly one issue.
    ///
    /// Lets the daemon report problems found at run time (e.g. `interface
    /// eth9 does not exist`) in the same located form as parse errors, using
    /// the locations stored in [`crate::PortConfig`] and friends.
    pub fn single(
        origin: impl Into<String>,
        location: Option<Location>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            origin: origin.into(),
            issues: vec![ConfigIssue::new(location, field, message)],
        }
    }

    /// An error from a list of issues, sorted by location so the output reads
    /// top to bottom like the file.
    pub fn new(origin: impl Into<String>, mut issues: Vec<ConfigIssue>) -> Self {
        // Stable sort: issues at the same place keep their discovery order;
        // issues without a location go last.
        issues.sort_by_key(|i| (i.location.is_none(), i.location));
        Self {
            origin: origin.into(),
            issues,
        }
    }
}

fn render_error(origin: &str, issues: &[ConfigIssue]) -> String {
    let mut out = String::new();
    for (n, issue) in issues.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(origin);
        out.push(':');
        // "origin:12:5: field: msg" or "origin: field: msg".
        if issue.location.is_none() {
            out.push(' ');
        }
        out.push_str(&issue.to_string());
    }
    out
}

/// Maps byte offsets (as toml_edit reports them) to 1-based line:column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the first character of every line.
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    /// Location of byte `offset`; offsets past the end (or inside a UTF-8
    /// sequence) are clamped so a bad span never panics.
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self.text[start..offset].chars().count() + 1;
        Location::new(line + 1, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_offsets() {
        let text = "ab\ncdé\n\nx";
        let idx = LineIndex::new(text);
        assert_eq!(idx.location(0), Location::new(1, 1));
        assert_eq!(idx.location(2), Location::new(1, 3));
        assert_eq!(idx.location(3), Location::new(2, 1));
        // 'é' is two bytes; the newline after it is column 4 in characters.
        assert_eq!(idx.location(7), Location::new(2, 4));
        assert_eq!(idx.location(8), Location::new(3, 1));
        assert_eq!(idx.location(9), Location::new(4, 1));
        assert_eq!(idx.location(999), Location::new(4, 2));
        // Inside the 'é' sequence: clamped back to its start.
        assert_eq!(idx.location(6), Location::new(2, 3));
    }

    #[test]
    fn display_formats() {
        let err = ConfigError::new(
            "node.toml",
            vec![
                ConfigIssue::new(None, "", "cannot read file: gone"),
                ConfigIssue::new(
                    Some(Location::new(12, 5)),
                    "port[1].network",
                    "network \"db\" is not defined",
                ),
                ConfigIssue::new(Some(Location::new(3, 1)), "", "syntax"),
            ],
        );
        assert_eq!(
            err.to_string(),
            "node.toml:3:1: syntax\n\
             node.toml:12:5: port[1].network: network \"db\" is not defined\n\
             node.toml: cannot read file: gone"
        );
        let single = ConfigError::single("n.toml", None, "port[0].interface", "no such device");
        assert_eq!(
            single.to_string(),
            "n.toml: port[0].interface: no such device"
        );
        let multi_line = ConfigError::single("n.toml", None, "a", "bad \"x\ny\"\t!");
        assert_eq!(multi_line.to_string(), "n.toml: a: bad \"x\\ny\"\\t!");
    }
}
