//! The daemon port name of an attachment.
//!
//! ADD, CHECK and DEL are separate processes, often with different plugin
//! builds across an upgrade, and we keep no state of our own: the only way DEL
//! finds the port ADD made is to derive the same name from the same
//! `(CNI_CONTAINERID, CNI_IFNAME)`. Hence a fixed, documented hash (FNV-1a),
//! not `std`'s `DefaultHasher`, whose algorithm may change between Rust releases.

/// Longest port name we produce (the daemon's limit for names).
pub const MAX_PORT_NAME: usize = 32;

const ID_CHARS: usize = 12;
const IFNAME_CHARS: usize = 10;

/// `<first 12 of the container ID>-<first 10 of the ifname>-<8 hex digits>`:
/// readable in `switchyard ctl ports` (the prefix matches `docker ps`/`crictl`
/// short IDs), and the hash over the whole ID and ifname keeps two containers
/// whose IDs share a prefix apart. At most [`MAX_PORT_NAME`] characters of
/// `[A-Za-z0-9_.-]`.
pub fn port_name(container_id: &str, ifname: &str) -> String {
    let mut hash = Fnv1a::new();
    hash.write(container_id.as_bytes());
    hash.write(&[0]);
    hash.write(ifname.as_bytes());
    let digest = hash.finish();
    let folded = (digest ^ (digest >> 32)) as u32;
    format!(
        "{}-{}-{folded:08x}",
        sanitize(container_id, ID_CHARS),
        sanitize(ifname, IFNAME_CHARS)
    )
}

/// The first `max` characters, with anything outside `[A-Za-z0-9_.-]` as `_`
/// (validated input never has such characters; this keeps the contract anyway).
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 64-bit FNV-1a.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stable_known_value() {
        // A fixed expectation: if this changes, DEL of containers added by an
        // older plugin build would miss their ports.
        let mut h = Fnv1a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let name = port_name("0123456789abcdef0123", "eth0");
        assert!(name.starts_with("0123456789ab-eth0-"), "{name}");
        assert_eq!(name, port_name("0123456789abcdef0123", "eth0"));
    }

    #[test]
    fn distinguishes_shared_prefixes_and_ifnames() {
        let a = port_name("0123456789abcdef-a", "eth0");
        let b = port_name("0123456789abcdef-b", "eth0");
        let c = port_name("0123456789abcdef-a", "eth1");
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn always_short_and_clean(id in "\\PC{0,80}", ifname in "\\PC{0,20}") {
            let name = port_name(&id, &ifname);
            prop_assert!(name.chars().count() <= MAX_PORT_NAME);
            prop_assert!(name.len() <= MAX_PORT_NAME);
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
        }
    }
}
