//! Counting what one client address holds at once (HTTP connections, signaling sockets
//! that have not joined), with a cap. Loopback peers are not counted: a reverse proxy on
//! this machine connects for every client, so per-client limits belong to the proxy there.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

/// Places held per client address, at most `max` each.
#[derive(Debug)]
pub struct PerIp {
    held: DashMap<IpAddr, usize>,
    max: usize,
}

/// One place held by an address, given back when dropped.
#[derive(Debug)]
pub struct PerIpPlace {
    owner: Arc<PerIp>,
    ip: Option<IpAddr>,
}

impl PerIp {
    /// At most `max` places per address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            held: DashMap::new(),
            max,
        })
    }

    /// A place for `ip`, or `None` when it already holds `max`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpPlace> {
        if is_loopback(ip) {
            return Some(PerIpPlace {
                owner: self.clone(),
                ip: None,
            });
        }
        let mut held = self.held.entry(ip).or_insert(0);
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(PerIpPlace {
            owner: self.clone(),
            ip: Some(ip),
        })
    }

    /// Places `ip` holds now.
    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        self.held.get(&ip).map_or(0, |h| *h)
    }
}

impl Drop for PerIpPlace {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            // The entry goes once its last place does, so the map holds only live addresses.
            self.owner.held.remove_if_mut(&ip, |_, held| {
                *held -= 1;
                *held == 0
            });
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_places() {
        // Requirement: one address cannot hold more than the cap; a place given back is free
        // again; loopback (a local proxy) is not counted; the map forgets idle addresses.
        let caps = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = caps.admit(a).expect("first");
        let _second = caps.admit(a).expect("second");
        assert!(
            caps.admit(a).is_none(),
            "a third place for the same address"
        );
        assert!(caps.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(caps.held(a), 1);
        assert!(caps.admit(a).is_some(), "a place given back is free again");
        let local: Vec<_> = (0..10)
            .map(|_| caps.admit("127.0.0.1".parse().expect("ip")))
            .collect();
        assert!(local.iter().all(Option::is_some), "loopback is not capped");
        drop(_second);
        assert_eq!(caps.held(a), 0);
        assert!(
            caps.held.get(&a).is_none(),
            "an address holding nothing is forgotten"
        );
    }
}
