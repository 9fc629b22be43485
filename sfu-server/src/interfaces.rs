//! This host's interface addresses: the IPs to advertise in ICE candidates when the media
//! socket binds a wildcard address and none are configured, and the ones replies may name
//! as their source.

use std::net::IpAddr;

/// The addresses of `found` worth advertising for a socket bound to `bind` (a wildcard):
/// of its family (IPv4 for 0.0.0.0, IPv6 for ::), neither loopback, link-local,
/// multicast nor unspecified, in the order found, without repeats.
pub fn advertisable(bind: IpAddr, found: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in found {
        let usable = match ip {
            IpAddr::V4(v4) => {
                bind.is_ipv4()
                    && !v4.is_loopback()
                    && !v4.is_link_local()
                    && !v4.is_multicast()
                    && !v4.is_unspecified()
            }
            IpAddr::V6(v6) => {
                bind.is_ipv6()
                    && !v6.is_loopback()
                    && !v6.is_unicast_link_local()
                    && !v6.is_multicast()
                    && !v6.is_unspecified()
                    && v6.to_ipv4_mapped().is_none()
            }
        };
        if usable && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Every address of this host's interfaces, loopback included.
pub fn host_addresses() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .iter()
        .map(if_addrs::Interface::ip)
        .collect())
}

/// This host's interface addresses worth advertising for a socket bound to `bind`.
pub fn detect(bind: IpAddr) -> std::io::Result<Vec<IpAddr>> {
    let interfaces = if_addrs::get_if_addrs()?;
    Ok(advertisable(
        bind,
        interfaces.iter().map(if_addrs::Interface::ip),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().expect("ip")).collect()
    }

    #[test]
    fn keeps_routable_addresses_of_the_bind_family() {
        // Requirement: 0.0.0.0 advertises the host's IPv4 addresses and :: its IPv6 ones,
        // never loopback, link-local, multicast or repeats.
        let found = ips(&[
            "127.0.0.1",
            "10.0.0.5",
            "169.254.1.1",
            "192.0.2.7",
            "10.0.0.5",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "::ffff:10.0.0.9",
            "ff02::1",
        ]);
        let v4: IpAddr = "0.0.0.0".parse().expect("ip");
        let v6: IpAddr = "::".parse().expect("ip");
        assert_eq!(
            advertisable(v4, found.clone()),
            ips(&["10.0.0.5", "192.0.2.7"])
        );
        assert_eq!(advertisable(v6, found), ips(&["2001:db8::5"]));
        assert!(advertisable(v4, ips(&["127.0.0.1"])).is_empty());
    }

    #[test]
    fn detects_this_hosts_addresses() {
        // Requirement: detection reads the real interfaces and never returns loopback.
        let found = detect("0.0.0.0".parse().expect("ip")).expect("interfaces readable");
        assert!(found.iter().all(|ip| ip.is_ipv4() && !ip.is_loopback()));
    }
}
