//! Config types (being written).
#![deny(unsafe_code)]
