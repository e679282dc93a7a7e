//! [`PortRange`]: an L4 port or an inclusive range of them, as published
//! ports and the masquerade range are written (`8080`, `"8080-8090"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Ports `first..=last`, `1 <= first <= last <= 65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (equal to `first` for a single port).
    pub last: u16,
}

impl PortRange {
    /// One port.
    pub const fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Number of ports.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Never empty (kept for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True if `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// True if the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// `"N"` or `"N-M"`, with `1 <= N <= M <= 65535`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let port = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(0) => Err("port 0 cannot be used".to_string()),
                Ok(p) => Ok(p),
                Err(_) => Err(format!(
                    "\"{s}\" is not a port or a port range (write 8080 or \"8080-8090\", ports 1-65535)"
                )),
            }
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("\"{s}\": the range ends before it starts"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    /// `N` or `N-M`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    /// From its string form (`"8080"`, `"8080-8090"`) or a port number, as
    /// control requests and the state file carry it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Port(u64),
            Text(String),
        }
        let text = match Text::deserialize(d)? {
            Text::Port(p) => p.to_string(),
            Text::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_ranges() {
        assert_eq!("80".parse::<PortRange>(), Ok(PortRange::single(80)));
        let r: PortRange = "8080-8090".parse().unwrap();
        assert_eq!((r.first, r.last, r.len()), (8080, 8090, 11));
        assert_eq!(r.to_string(), "8080-8090");
        for bad in ["0", "70000", "x", "90-80", "-5", "1-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
        assert!(r.overlaps(&PortRange::single(8090)) && !r.overlaps(&PortRange::single(8091)));
    }

    #[test]
    fn deserialises_from_text_or_number() {
        let r: PortRange = serde_json::from_str("\"8080-8090\"").unwrap();
        assert_eq!(
            r,
            PortRange {
                first: 8080,
                last: 8090
            }
        );
        let r: PortRange = serde_json::from_str("8080").unwrap();
        assert_eq!(r, PortRange::single(8080));
        for bad in ["0", "\"90-80\"", "70000", "true"] {
            assert!(serde_json::from_str::<PortRange>(bad).is_err(), "{bad}");
        }
    }
}
