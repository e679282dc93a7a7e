//! Ethernet MAC addresses: the key of MAC learning and what an operator reads in
//! an fdb dump, so it parses and prints in the usual `aa:bb:cc:dd:ee:ff` form.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address, in wire byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`: every station of the segment.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`: no station; seen only from broken or hostile senders.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for the broadcast address, which is always flooded.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        u64_of(&self.0) == 0xffff_ffff_ffff
    }

    /// True for group addresses (I/G bit set, broadcast included): they are
    /// flooded and can never be a source.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for `00:00:00:00:00:00`.
    #[inline]
    pub const fn is_zero(&self) -> bool {
        u64_of(&self.0) == 0
    }

    /// True if a frame with this source could come from a real station
    /// (unicast and non-zero); only such addresses are learned.
    #[inline]
    pub const fn is_valid_source(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The address as the low 48 bits of a `u64` (big-endian order), so tables can
    /// pack it with a domain into one word that hashes and compares in one step.
    #[inline]
    pub const fn to_u64(&self) -> u64 {
        u64_of(&self.0)
    }

    /// Inverse of [`MacAddr::to_u64`]; the top 16 bits are ignored.
    #[inline]
    pub const fn from_u64(v: u64) -> Self {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

/// True if the MAC word (see [`MacAddr::to_u64`]) has the I/G (group) bit set.
#[inline]
pub const fn word_is_multicast(mac: u64) -> bool {
    mac & (1 << 40) != 0
}

/// True if the MAC word is a possible station source: unicast and non-zero.
#[inline]
pub const fn word_is_valid_source(mac: u64) -> bool {
    !word_is_multicast(mac) && mac & 0xffff_ffff_ffff != 0
}

/// Packs six bytes big-endian into the low 48 bits of a `u64`.
#[inline]
const fn u64_of(b: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        MacAddr(bytes)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a string is not a MAC address, so config and control errors point at the
/// offending part instead of just failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MacParseError {
    /// Not exactly six `:`- (or `-`-) separated groups.
    #[error("a MAC address has six groups separated by ':', found {found}")]
    WrongGroupCount {
        /// How many groups were found (counting stops after seven).
        found: usize,
    },
    /// A group that is not one or two hex digits.
    #[error("MAC address group {index} is not a hex byte")]
    BadGroup {
        /// Zero-based position of the bad group.
        index: usize,
    },
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` (any case; `-` also accepted as separator, as
    /// some tools print it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut found = 0usize;
        for (index, group) in s.split(sep).enumerate() {
            found = index + 1;
            let Some(slot) = out.get_mut(index) else {
                return Err(MacParseError::WrongGroupCount { found });
            };
            let ok = !group.is_empty()
                && group.len() <= 2
                && group.bytes().all(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(MacParseError::BadGroup { index });
            }
            *slot = u8::from_str_radix(group, 16).map_err(|_| MacParseError::BadGroup { index })?;
        }
        if found != 6 {
            return Err(MacParseError::WrongGroupCount { found });
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    /// Serialized as its text form, as operators and `ip link` show it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    /// Read back from the text form, so control requests can name a MAC.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MacVisitor;
        impl Visitor<'_> for MacVisitor {
            type Value = MacAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MAC address like aa:bb:cc:dd:ee:ff")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MacAddr, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(MacVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_valid_source());
        let mcast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast());
        assert!(!mcast.is_valid_source());
        assert!(MacAddr::ZERO.is_zero());
        assert!(!MacAddr::ZERO.is_valid_source());
        let host = MacAddr([0x02, 0, 0, 0, 0, 1]);
        assert!(host.is_valid_source() && !host.is_multicast() && !host.is_zero());
    }

    #[test]
    fn display_and_parse_round_trip() {
        let m = MacAddr([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]);
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:0f");
        assert_eq!("aa:bb:0c:dd:ee:0f".parse::<MacAddr>(), Ok(m));
        assert_eq!("AA-BB-C-DD-EE-F".parse::<MacAddr>(), Ok(m));
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
    }

    #[test]
    fn parse_errors_are_typed() {
        use MacParseError::*;
        assert_eq!("".parse::<MacAddr>(), Err(BadGroup { index: 0 }));
        assert_eq!(
            "aa:bb:cc:dd:ee".parse::<MacAddr>(),
            Err(WrongGroupCount { found: 5 })
        );
        assert_eq!(
            "aa:bb:cc:dd:ee:ff:00".parse::<MacAddr>(),
            Err(WrongGroupCount { found: 7 })
        );
        assert_eq!(
            "aa:bb:cc:dd:ee:fff".parse::<MacAddr>(),
            Err(BadGroup { index: 5 })
        );
        assert_eq!(
            "aa:bb:+c:dd:ee:ff".parse::<MacAddr>(),
            Err(BadGroup { index: 2 })
        );
    }

    #[test]
    fn serde_uses_text_form() {
        let m = MacAddr([2, 0, 0, 0, 0, 0x2a]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"02:00:00:00:00:2a\"");
        let back: MacAddr = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}
