//! Address management of a network: which address an attached container gets.
//! The pool is derived from the ports that exist (their addresses are the used
//! set), so there is nothing to keep in step: detaching a port returns its address.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use switchyard_config::Ipv4Cidr;

/// Why no address could be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Every host address of the subnet is taken (or reserved).
    #[error("no free address left in {0}")]
    Exhausted(Ipv4Cidr),
    /// The requested address is outside the subnet.
    #[error("{0} is not inside {1}")]
    OutsideSubnet(Ipv4Addr, Ipv4Cidr),
    /// The requested address is the network, broadcast or gateway address.
    #[error("{0} is reserved in {1} (network, broadcast or gateway address)")]
    Reserved(Ipv4Addr, Ipv4Cidr),
    /// The requested address is already used by another port.
    #[error("{0} is already in use")]
    InUse(Ipv4Addr),
}

/// A network's subnet and gateway, and the addresses in use.
#[derive(Debug)]
pub struct AddressPool<'a> {
    subnet: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
    used: &'a HashSet<Ipv4Addr>,
}

impl<'a> AddressPool<'a> {
    /// A pool over `subnet` minus its network, broadcast and gateway addresses
    /// and `used`.
    pub fn new(subnet: Ipv4Cidr, gateway: Option<Ipv4Addr>, used: &'a HashSet<Ipv4Addr>) -> Self {
        AddressPool {
            subnet,
            gateway,
            used,
        }
    }

    fn reserved(&self, ip: Ipv4Addr) -> bool {
        ip == self.subnet.network() || ip == self.subnet.broadcast() || Some(ip) == self.gateway
    }

    /// The lowest free host address.
    pub fn allocate(&self) -> Result<Ipv4Addr, PoolError> {
        let first = u32::from(self.subnet.network());
        let last = u32::from(self.subnet.broadcast());
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.reserved(*ip) && !self.used.contains(ip))
            .ok_or(PoolError::Exhausted(self.subnet))
    }

    /// Checks that `ip` may be given out.
    pub fn claim(&self, ip: Ipv4Addr) -> Result<Ipv4Addr, PoolError> {
        if !self.subnet.contains(ip) {
            return Err(PoolError::OutsideSubnet(ip, self.subnet));
        }
        if self.reserved(ip) {
            return Err(PoolError::Reserved(ip, self.subnet));
        }
        if self.used.contains(&ip) {
            return Err(PoolError::InUse(ip));
        }
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_lowest_free_skipping_reserved_and_used() {
        let mut used = HashSet::new();
        let subnet = cidr("172.30.0.0/29");
        let gw = Some(Ipv4Addr::new(172, 30, 0, 1));
        assert_eq!(
            AddressPool::new(subnet, gw, &used).allocate(),
            Ok(Ipv4Addr::new(172, 30, 0, 2))
        );
        used.insert(Ipv4Addr::new(172, 30, 0, 2));
        used.insert(Ipv4Addr::new(172, 30, 0, 3));
        assert_eq!(
            AddressPool::new(subnet, gw, &used).allocate(),
            Ok(Ipv4Addr::new(172, 30, 0, 4))
        );
        for last in 4..=6 {
            used.insert(Ipv4Addr::new(172, 30, 0, last));
        }
        // .7 is the broadcast address, .0 the network, .1 the gateway: nothing left.
        assert_eq!(
            AddressPool::new(subnet, gw, &used).allocate(),
            Err(PoolError::Exhausted(subnet))
        );
        used.remove(&Ipv4Addr::new(172, 30, 0, 3));
        assert_eq!(
            AddressPool::new(subnet, gw, &used).allocate(),
            Ok(Ipv4Addr::new(172, 30, 0, 3)),
            "a returned address is reused"
        );
    }

    #[test]
    fn explicit_addresses_are_checked() {
        let used: HashSet<_> = [Ipv4Addr::new(10, 0, 0, 5)].into();
        let pool = AddressPool::new(cidr("10.0.0.0/24"), Some(Ipv4Addr::new(10, 0, 0, 1)), &used);
        assert_eq!(
            pool.claim(Ipv4Addr::new(10, 0, 0, 9)),
            Ok(Ipv4Addr::new(10, 0, 0, 9))
        );
        assert!(matches!(
            pool.claim(Ipv4Addr::new(10, 0, 1, 9)),
            Err(PoolError::OutsideSubnet(..))
        ));
        assert!(matches!(
            pool.claim(Ipv4Addr::new(10, 0, 0, 1)),
            Err(PoolError::Reserved(..))
        ));
        assert!(matches!(
            pool.claim(Ipv4Addr::new(10, 0, 0, 0)),
            Err(PoolError::Reserved(..))
        ));
        assert!(matches!(
            pool.claim(Ipv4Addr::new(10, 0, 0, 255)),
            Err(PoolError::Reserved(..))
        ));
        assert!(matches!(
            pool.claim(Ipv4Addr::new(10, 0, 0, 5)),
            Err(PoolError::InUse(..))
        ));
    }
}
