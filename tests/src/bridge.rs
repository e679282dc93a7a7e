//! A Linux bridge standing in for the switch (test-only `Dataplane::LinuxBridge`).
//!
//! It lets the harness and the test bodies be validated without the daemon, and gives
//! a kernel baseline for the same scenarios later.

use std::fs;

use crate::cmd;

/// A bridge in the root namespace with some host-side veth ends enslaved; deleted on drop.
#[derive(Debug)]
pub struct Bridge {
    name: String,
    created: bool,
}

impl Bridge {
    /// Creates bridge `name` and enslaves `members`.
    ///
    /// STP off, so ports forward at once. Multicast snooping and IPv6 off, so the bridge
    /// itself sends nothing onto the ports (snooping joins 224.0.0.106 and sends IGMP
    /// reports, which the "nothing reached this port" assertions would count).
    #[track_caller]
    pub fn create(name: &str, members: &[&str]) -> Bridge {
        let mut br = Bridge {
            name: name.to_string(),
            created: false,
        };
        cmd::run_ok(
            "ip",
            &[
                "link",
                "add",
                name,
                "type",
                "bridge",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            ],
        );
        br.created = true;
        for (key, value) in [
            (format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1"),
            (format!("/proc/sys/net/ipv4/conf/{name}/forwarding"), "0"),
        ] {
            fs::write(&key, value).unwrap_or_else(|e| panic!("write {key}: {e}"));
        }
        for m in members {
            cmd::run_ok("ip", &["link", "set", m, "master", name]);
        }
        cmd::run_ok("ip", &["link", "set", name, "up"]);
        br
    }

    /// The bridge's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if self.created {
            cmd::cleanup(&["link", "del", &self.name]);
        }
    }
}
