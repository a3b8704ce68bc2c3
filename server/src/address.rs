//! Which client addresses count as one client for the per-address limits (open connections,
//! sign-in failures).
//!
//! One IPv4 address is usually one home or office. An IPv6 host, though, typically gets a
//! whole /64 from its provider and can use a fresh address from it for every connection, so a
//! limit per IPv6 address would limit nothing: IPv6 clients are counted per /64.

use std::net::{IpAddr, Ipv6Addr};

/// The key `ip` is counted under: an IPv4 address itself (also when written IPv4-mapped, as
/// a dual-stack socket reports it), an IPv6 address's /64 network.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_addresses_count_alone_however_they_are_written() {
        assert_eq!(client_network(ip("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(
            client_network(ip("::ffff:198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_ne!(
            client_network(ip("198.51.100.7")),
            client_network(ip("198.51.100.8"))
        );
    }

    #[test]
    fn ipv6_addresses_count_per_64_network() {
        let a = client_network(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_eq!(a, client_network(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(a, client_network(ip("2001:db8:1:3::1")));
    }
}
