//! A located TOML tree and a strict field reader over it.
//!
//! toml_edit parses the file and keeps byte spans; we copy its document into
//! a small tree where every node and key carries a [`Location`] (falling back
//! to its key's location for implicit tables such as `a` in `[a.b]`). Tables
//! and inline tables look the same here, as do `[[x]]` and arrays of inline
//! tables, so users may write either.
//!
//! [`Fields`] then plays the role of `#[serde(deny_unknown_fields)]`, except
//! that a wrong type, a missing field or an unknown key is recorded and the
//! walk goes on, so every problem in the file is reported at once.

use crate::error::LineIndex;
use crate::report::Report;
use crate::{ConfigIssue, Location};

/// A TOML value with its location.
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) loc: Location,
}

/// The shape of a TOML value.
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

impl Kind {
    /// Name used in "expected X, found Y" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// One `key = value` of a table.
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_loc: Location,
    pub(crate) value: Node,
}

/// Parses `text` into a located tree whose root is a table.
pub(crate) fn parse_document(text: &str) -> Result<Node, ConfigIssue> {
    let index = LineIndex::new(text);
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        let loc = e.span().map(|s| index.location(s.start));
        // toml_edit messages may span lines ("invalid key\nexpected ..."); one
        // issue is one line.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigIssue::new(loc, "", format!("TOML syntax error: {message}"))
    })?;
    let conv = Converter { index: &index };
    let root_loc = Location::new(1, 1);
    Ok(Node {
        kind: Kind::Table(conv.table_entries(doc.as_table())),
        loc: root_loc,
    })
}

struct Converter<'a> {
    index: &'a LineIndex<'a>,
}

impl Converter<'_> {
    fn loc(&self, span: Option<std::ops::Range<usize>>, fallback: Location) -> Location {
        span.map_or(fallback, |s| self.index.location(s.start))
    }

    fn key_loc(&self, key: &toml_edit::Key, fallback: Location) -> Location {
        self.loc(key.span(), fallback)
    }

    fn table_entries(&self, table: &toml_edit::Table) -> Vec<Entry> {
        let table_loc = self.loc(table.span(), Location::new(1, 1));
        table
            .iter()
            .filter_map(|(k, _)| table.get_key_value(k))
            .map(|(key, item)| {
                let key_loc = self.key_loc(key, table_loc);
                Entry {
                    key: key.get().to_string(),
                    key_loc,
                    value: self.item(item, key_loc),
                }
            })
            .collect()
    }

    fn inline_entries(&self, table: &toml_edit::InlineTable, table_loc: Location) -> Vec<Entry> {
        table
            .iter()
            .filter_map(|(k, _)| table.get_key_value(k))
            .map(|(key, item)| {
                let key_loc = self.key_loc(key, table_loc);
                Entry {
                    key: key.get().to_string(),
                    key_loc,
                    value: self.item(item, key_loc),
                }
            })
            .collect()
    }

    /// `fallback` is the key's location, used when the item has no span of
    /// its own (implicit tables).
    fn item(&self, item: &toml_edit::Item, fallback: Location) -> Node {
        match item {
            toml_edit::Item::None => Node {
                kind: Kind::Table(Vec::new()),
                loc: fallback,
            },
            toml_edit::Item::Value(v) => self.value(v, fallback),
            toml_edit::Item::Table(t) => Node {
                kind: Kind::Table(self.table_entries(t)),
                loc: self.loc(t.span(), fallback),
            },
            toml_edit::Item::ArrayOfTables(a) => Node {
                kind: Kind::Array(
                    a.iter()
                        .map(|t| Node {
                            kind: Kind::Table(self.table_entries(t)),
                            loc: self.loc(t.span(), fallback),
                        })
                        .collect(),
                ),
                loc: self.loc(a.span(), fallback),
            },
        }
    }

    fn value(&self, value: &toml_edit::Value, fallback: Location) -> Node {
        use toml_edit::Value;
        let loc = self.loc(value.span(), fallback);
        let kind = match value {
            Value::String(s) => Kind::Str(s.value().clone()),
            Value::Integer(i) => Kind::Int(*i.value()),
            Value::Float(_) => Kind::Float,
            Value::Boolean(b) => Kind::Bool(*b.value()),
            Value::Datetime(_) => Kind::Datetime,
            Value::Array(a) => Kind::Array(a.iter().map(|v| self.value(v, loc)).collect()),
            Value::InlineTable(t) => Kind::Table(self.inline_entries(t, loc)),
        };
        Node { kind, loc }
    }
}

/// Strict reader for one table: hands out fields by name, then reports every
/// key nobody asked for as unknown.
pub(crate) struct Fields<'t> {
    /// Field path of the table itself: `""` (root), `switch`, `port[1]`.
    path: String,
    /// Where the table starts (its header), for "missing field" issues.
    pub(crate) loc: Location,
    entries: &'t [Entry],
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'t> Fields<'t> {
    /// A reader over `entries`, the contents of the table at `path`.
    pub(crate) fn new(path: impl Into<String>, loc: Location, entries: &'t [Entry]) -> Self {
        Self {
            path: path.into(),
            loc,
            entries,
            used: vec![false; entries.len()],
            known: Vec::new(),
        }
    }

    /// The full path of `key` in this table.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    /// The value of `key`, if present; marks `key` as known.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'t Node> {
        self.known.push(key);
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        Some(&self.entries[i].value)
    }

    /// Reports every key that no `get` asked for, at the key itself.
    pub(crate) fn finish(self, report: &mut Report) {
        let expected = self
            .known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for (entry, used) in self.entries.iter().zip(&self.used) {
            if !used {
                report.error_at(
                    self.path_of(&entry.key),
                    Some(entry.key_loc),
                    format!("unknown field `{}`; expected one of {expected}", entry.key),
                );
            }
        }
    }
}
