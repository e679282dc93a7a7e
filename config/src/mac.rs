//! [`MacAddress`]: an Ethernet address as the config writes it
//! (`02:00:5e:10:00:01`), for static neighbours.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A unicast Ethernet address (the only kind a neighbour can have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress(pub [u8; 6]);

impl FromStr for MacAddress {
    type Err = String;

    /// Six two-digit hex bytes separated by `:`; multicast, broadcast and
    /// all-zero addresses are refused (no station has one).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "\"{s}\" is not a MAC address (write six hex bytes, e.g. \"02:00:5e:10:00:01\")"
            )
        };
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if bytes[0] & 1 != 0 {
            return Err(format!(
                "{s} is a multicast or broadcast address; a neighbour has a unicast one"
            ));
        }
        if bytes == [0; 6] {
            return Err(format!("{s} is the all-zero address; no station has it"));
        }
        Ok(MacAddress(bytes))
    }
}

impl fmt::Display for MacAddress {
    /// Lower-case hex bytes joined by `:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unicast_and_refuses_the_rest() {
        let mac: MacAddress = "02:00:5E:10:00:01".parse().unwrap();
        assert_eq!(mac.0, [2, 0, 0x5e, 0x10, 0, 1]);
        assert_eq!(mac.to_string(), "02:00:5e:10:00:01");
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "0g:00:00:00:00:01",
            "2:00:5e:10:00:01",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
    }
}
