//! Container veths over netlink (being written).
