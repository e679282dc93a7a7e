//! IPv4 prefixes in CIDR notation (`172.30.0.0/24`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 address with a prefix length, e.g. `172.30.0.0/24`.
///
/// The same type serves network subnets (where host bits must be zero — the
/// validator checks that) and interface addresses such as the uplink's
/// `192.0.2.10/24` (where they must not be), so parsing itself accepts host
/// bits and keeps `addr` exactly as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address as written (host bits preserved).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix_len: u8,
}

/// Why a string is not a valid [`Ipv4Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/` separating address and prefix length.
    #[error("\"{0}\" is not in CIDR notation; expected ADDRESS/PREFIX such as \"172.30.0.0/24\"")]
    MissingPrefix(String),
    /// The part before `/` is not a dotted-quad IPv4 address.
    #[error("\"{0}\" is not a valid IPv4 address")]
    BadAddress(String),
    /// The part after `/` is not a number in 0..=32.
    #[error("prefix length \"{0}\" is invalid; expected a number from 0 to 32")]
    BadPrefix(String),
}

impl Ipv4Cidr {
    /// Builds a prefix; `None` when `prefix_len > 32`.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= 32).then_some(Self { addr, prefix_len })
    }

    /// The netmask as a 32-bit integer (`/24` -> `0xffff_ff00`).
    pub fn mask_bits(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        }
    }

    /// The netmask as an address (`/24` -> `255.255.255.0`), as `ip addr`
    /// and DHCP want it.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address: `addr` with host bits cleared.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    /// The broadcast address: `addr` with host bits set.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    /// Whether `ip` lies inside this prefix (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network())
    }

    /// Whether `addr` has bits set beyond the prefix, i.e. it is not the
    /// network address. A subnet written that way is almost always a typo.
    pub fn has_host_bits(&self) -> bool {
        self.addr != self.network()
    }

    /// The same prefix with host bits cleared (`172.30.0.1/24` ->
    /// `172.30.0.0/24`); used to suggest the fix for a subnet with host bits.
    pub fn trunc(&self) -> Self {
        Self {
            addr: self.network(),
            prefix_len: self.prefix_len,
        }
    }

    /// Whether two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// Parses `A.B.C.D/N`. Host bits are accepted (see the type docs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::MissingPrefix(s.to_string()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        // Only plain decimal digits: u8::from_str would also accept "+24".
        let prefix_len = if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) {
            prefix.parse::<u8>().ok().filter(|p| *p <= 32)
        } else {
            None
        }
        .ok_or_else(|| CidrError::BadPrefix(prefix.to_string()))?;
        Ok(Self { addr, prefix_len })
    }
}

impl fmt::Display for Ipv4Cidr {
    /// Formats as `A.B.C.D/N`, the form [`FromStr`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for Ipv4Cidr {
    /// Serialized as its string form, the way it is written in the config.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    /// Deserialized from its string form, e.g. in control-socket requests.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let c: Ipv4Cidr = "172.30.0.0/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(172, 30, 0, 0));
        assert_eq!(c.prefix_len, 24);
        assert_eq!(c.to_string(), "172.30.0.0/24");
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network(), Ipv4Addr::new(172, 30, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(172, 30, 0, 255));
        assert!(c.contains(Ipv4Addr::new(172, 30, 0, 77)));
        assert!(!c.contains(Ipv4Addr::new(172, 30, 1, 1)));
        assert!(!c.has_host_bits());
    }

    #[test]
    fn host_bits_kept() {
        let c: Ipv4Cidr = "192.0.2.10/24".parse().unwrap();
        assert!(c.has_host_bits());
        assert_eq!(c.addr, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(c.trunc().to_string(), "192.0.2.0/24");
    }

    #[test]
    fn edge_prefixes() {
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        let host: Ipv4Cidr = "10.0.0.1/32".parse().unwrap();
        assert_eq!(host.network(), host.broadcast());
        assert!(host.contains(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn overlaps() {
        let a: Ipv4Cidr = "10.0.0.0/16".parse().unwrap();
        let b: Ipv4Cidr = "10.0.5.0/24".parse().unwrap();
        let c: Ipv4Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn rejects() {
        for (input, want) in [
            ("abc", CidrError::MissingPrefix("abc".into())),
            ("172.30.0.0", CidrError::MissingPrefix("172.30.0.0".into())),
            ("172.30.0.0/33", CidrError::BadPrefix("33".into())),
            ("172.30.0.0/", CidrError::BadPrefix("".into())),
            ("172.30.0.0/+8", CidrError::BadPrefix("+8".into())),
            ("172.30.0.0/x", CidrError::BadPrefix("x".into())),
            ("172.300.0.0/8", CidrError::BadAddress("172.300.0.0".into())),
            ("abc/8", CidrError::BadAddress("abc".into())),
        ] {
            assert_eq!(input.parse::<Ipv4Cidr>(), Err(want), "{input}");
        }
    }

    #[test]
    fn serde_as_string() {
        let c: Ipv4Cidr = "10.0.0.0/8".parse().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"10.0.0.0/8\"");
        assert_eq!(serde_json::from_str::<Ipv4Cidr>(&json).unwrap(), c);
    }
}
