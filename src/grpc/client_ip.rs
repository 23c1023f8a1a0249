//! The client IP for rate limits: the socket peer, unless that peer is a trusted proxy, in
//! which case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
//! Entries left of an untrusted hop could be forged by the client, so they are never read.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// `forwarded_for` is every `X-Forwarded-For` header line joined with `,` in arrival order
/// (proxies that add their own line would otherwise leave the client's forged line first).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',').map(str::trim) {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // Garbage in the chain: stop at the last address we could read.
            None => break,
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`, `::ffff:1.2.3.4`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.2.3.4"), &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_forwards_the_rightmost_untrusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.2.3.4"), &t),
            ip("1.2.3.4")
        );
        // The client forged "6.6.6.6"; the proxy appended the real address.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("6.6.6.6, 1.2.3.4, 10.0.0.2"), &t),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("2001:db8::1"), &t),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), Some("1.2.3.4:5678"), &t),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("[2001:db8::1]:443"), &t),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("::ffff:1.2.3.4"), &t),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), None, &t),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn garbage_or_absent_headers_fall_back_safely() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.1"), None, &t), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("not-an-ip"), &t),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.2.3.4, junk"), &t),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("10.0.0.3, 10.0.0.2"), &t),
            ip("10.0.0.3")
        );
    }
}
