//! Port drivers (being written).
