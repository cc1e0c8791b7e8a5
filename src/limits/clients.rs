//! Who the client is: the peer address, or, when the peer is one of the
//! configured trusted proxies, the right-most forwarded address that is not.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::{HeaderName, HeaderValue, FORWARDED};
use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::configuration::{HttpSettings, LimitSettings};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which header the trusted proxies write. Only that one is read: a proxy
/// passes the other one through from the client untouched, forged or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForwardedHeader {
    XForwardedFor,
    /// RFC 7239 `Forwarded`, its `for=` parameters.
    Forwarded,
}

impl ForwardedHeader {
    fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!(
                "http.client_ip_header {name:?} is not supported: use X-Forwarded-For or \
                 Forwarded, and list the proxies that write it in http.trusted_proxies"
            )),
        }
    }
}

/// Addresses of the proxies whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| entry.trim())
            // An empty environment variable means none.
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "http.trusted_proxies: {entry:?} is neither a CIDR \
                             (e.g. 10.0.0.0/8, fd00::/8) nor an address"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The prefix length that groups IPv6 clients for the limits (0..=128).
#[derive(Debug, Clone, Copy)]
struct Ipv6Prefix(u8);

impl Ipv6Prefix {
    fn parse(length: u8) -> Result<Self, String> {
        if length > 128 {
            return Err(format!(
                "limits.ipv6_prefix_length {length} is longer than an IPv6 address (128)"
            ));
        }
        Ok(Self(length))
    }
}

/// Who the client is, as far as the limits, Kratos's session device, the
/// login record and the events can tell. Notices (once) when requests come
/// through a proxy that nobody told it about.
pub struct ClientAddresses {
    trusted: TrustedProxies,
    header: ForwardedHeader,
    ipv6_prefix: Ipv6Prefix,
    proxy_unconfigured: AtomicBool,
}

impl ClientAddresses {
    pub fn new(http: &HttpSettings, limits: &LimitSettings) -> Result<Self, String> {
        let trusted = TrustedProxies::parse(&http.trusted_proxies)?;
        if trusted.is_empty() && !http.client_ip_header.trim().is_empty() {
            // Before, the header was believed from any peer; now only from
            // the proxies listed, so an old configuration must say which.
            return Err(format!(
                "http.client_ip_header is {:?} but http.trusted_proxies is empty: forwarded \
                 headers are only read from trusted proxies; list your proxies' addresses \
                 (CIDRs) in http.trusted_proxies, or clear http.client_ip_header",
                http.client_ip_header
            ));
        }
        Ok(Self {
            header: ForwardedHeader::parse(&http.client_ip_header)?,
            ipv6_prefix: Ipv6Prefix::parse(limits.ipv6_prefix_length)?,
            trusted,
            proxy_unconfigured: AtomicBool::new(false),
        })
    }

    /// The client's full address: what Kratos, the login record and the
    /// events are given.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trusted.is_empty() {
            self.notice_unconfigured_proxy(req);
        }
        let peer = req.peer_addr()?.ip().to_canonical();
        Some(self.resolve(peer, req))
    }

    /// The per-address limit's key for a client from `client_ip`.
    pub fn rate_key(&self, ip: Option<IpAddr>) -> String {
        rate_key(ip, self.ipv6_prefix.0)
    }

    /// True once a request came through a proxy while no trusted proxy is
    /// configured (then every client looks like one address).
    pub fn proxy_unconfigured(&self) -> bool {
        self.proxy_unconfigured.load(Ordering::Relaxed)
    }

    fn notice_unconfigured_proxy(&self, req: &HttpRequest) {
        if !self.proxy_unconfigured.load(Ordering::Relaxed)
            && (req.headers().contains_key(X_FORWARDED_FOR)
                || req.headers().contains_key(FORWARDED))
            && !self.proxy_unconfigured.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "requests arrive through a proxy (X-Forwarded-For or Forwarded) but \
                 http.trusted_proxies is empty: every client looks like the proxy's \
                 address to the rate limits; list your proxies' addresses there"
            );
        }
    }

    /// Walks the forwarded hops from the peer leftwards while each hop so
    /// far is a trusted proxy; the first address that is not one is the
    /// client. A hop that names no address (`unknown`, an obfuscated
    /// identifier, garbage) ends the walk at the proxy that reported it.
    fn resolve(&self, peer: IpAddr, req: &HttpRequest) -> IpAddr {
        if !self.trusted.contains(peer) {
            return peer;
        }
        let lines = match self.header {
            ForwardedHeader::XForwardedFor => req.headers().get_all(X_FORWARDED_FOR),
            ForwardedHeader::Forwarded => req.headers().get_all(FORWARDED),
        };
        let hops: Vec<Option<IpAddr>> = lines
            .flat_map(|line| match self.header {
                ForwardedHeader::XForwardedFor => x_forwarded_for(line),
                ForwardedHeader::Forwarded => forwarded(line),
            })
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) if self.trusted.contains(client) => client = ip,
                _ => break,
            }
        }
        client
    }
}

/// The per-address limit's key: an IPv4 address, or the IPv6 network of
/// `v6_prefix` bits that holds the address (one subscriber usually gets a
/// /64 and can pick any address in it).
pub fn rate_key(ip: Option<IpAddr>, v6_prefix: u8) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => "unknown".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            format!("{}/{bits}", Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// One `X-Forwarded-For` line's hops, left to right.
fn x_forwarded_for(line: &HeaderValue) -> Vec<Option<IpAddr>> {
    match line.to_str() {
        Ok(line) => line.split(',').map(node).collect(),
        Err(_) => vec![None],
    }
}

/// One `Forwarded` line's hops, left to right: each element's `for=`.
fn forwarded(line: &HeaderValue) -> Vec<Option<IpAddr>> {
    let Ok(line) = line.to_str() else {
        return vec![None];
    };
    split_unquoted(line, ',')
        .into_iter()
        .map(|element| {
            split_unquoted(element, ';')
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node(&unquote(value.trim())))
        })
        .collect()
}

/// Splits at `separator` outside quoted strings.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..index]);
                start = index + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A token or a quoted string's content.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out
        }
        None => value.to_string(),
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:4711`; `unknown` and obfuscated ids (`_hidden`) are
/// no address.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(trusted: &[&str], header: &str) -> (HttpSettings, LimitSettings) {
        let rate = crate::configuration::RateSettings {
            burst: 1,
            per_minute: 1,
        };
        (
            HttpSettings {
                max_body_bytes: 1024,
                trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
                client_ip_header: header.to_string(),
            },
            LimitSettings {
                login_per_ip: rate.clone(),
                ipv6_prefix_length: 64,
                failed_logins_per_ip: rate.clone(),
                failed_logins_per_identity: rate.clone(),
                identifier_lookups: rate,
                identifier_cache_ttl: std::time::Duration::from_secs(60),
                passkeys_per_identity: Default::default(),
            },
        )
    }

    fn addresses(trusted: &[&str], header: &str) -> ClientAddresses {
        let (http, limits) = settings(trusted, header);
        ClientAddresses::new(&http, &limits).expect("addresses")
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("peer"));
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        req.to_http_request()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("ip"))
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "fd00::/8"];

    #[test]
    fn the_right_most_untrusted_address_across_every_line_is_the_client() {
        let clients = addresses(PROXIES, "");
        // The client forged a line; the proxy appended its own.
        let req = request(
            "10.0.0.1:5000",
            &[
                ("X-Forwarded-For", "198.51.100.66, 10.9.9.9"),
                ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
            ],
        );
        assert_eq!(clients.client_ip(&req), ip("203.0.113.7"));
        // Ports, brackets, IPv4-mapped addresses.
        let req = request(
            "[::ffff:10.0.0.1]:5000",
            &[(
                "X-Forwarded-For",
                "198.51.100.66,[2001:db8::7]:4711 , 10.0.0.3:80",
            )],
        );
        assert_eq!(clients.client_ip(&req), ip("2001:db8::7"));
        // All hops trusted: the left-most one.
        let req = request(
            "10.0.0.1:5000",
            &[("X-Forwarded-For", "10.1.1.1, 10.0.0.2")],
        );
        assert_eq!(clients.client_ip(&req), ip("10.1.1.1"));
        // A hop that is no address stops the walk at the proxy that said it.
        let req = request(
            "10.0.0.1:5000",
            &[("X-Forwarded-For", "198.51.100.66, unknown, 10.0.0.2")],
        );
        assert_eq!(clients.client_ip(&req), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(
            clients.client_ip(&request("10.0.0.1:5000", &[])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn headers_are_read_only_from_a_trusted_peer() {
        let clients = addresses(PROXIES, "");
        let req = request("192.0.2.9:5000", &[("X-Forwarded-For", "203.0.113.7")]);
        assert_eq!(clients.client_ip(&req), ip("192.0.2.9"));
        assert!(!clients.proxy_unconfigured(), "proxies are configured");

        let unconfigured = addresses(&[], "");
        unconfigured.client_ip(&request("10.0.0.1:5000", &[]));
        assert!(!unconfigured.proxy_unconfigured());
        let req = request("10.0.0.1:5000", &[("Forwarded", "for=203.0.113.7")]);
        assert_eq!(unconfigured.client_ip(&req), ip("10.0.0.1"));
        assert!(unconfigured.proxy_unconfigured());
    }

    #[test]
    fn forwarded_for_parameters_are_read() {
        let clients = addresses(PROXIES, "Forwarded");
        let req = request(
            "10.0.0.1:5000",
            &[
                ("Forwarded", "for=198.51.100.66"),
                (
                    "Forwarded",
                    r#"for="[2001:db8:cafe::17]:4711";proto=https;by="x,y", For=10.0.0.2"#,
                ),
            ],
        );
        assert_eq!(clients.client_ip(&req), ip("2001:db8:cafe::17"));
        let req = request(
            "10.0.0.1:5000",
            &[(
                "Forwarded",
                r#"for=198.51.100.66, for="_hidden";by=10.0.0.1"#,
            )],
        );
        assert_eq!(clients.client_ip(&req), ip("10.0.0.1"), "obfuscated");
        let req = request(
            "10.0.0.1:5000",
            &[("Forwarded", "proto=https, for=unknown")],
        );
        assert_eq!(clients.client_ip(&req), ip("10.0.0.1"));
        let req = request("10.0.0.1:5000", &[("Forwarded", "for=192.0.2.60:80;by=x")]);
        assert_eq!(clients.client_ip(&req), ip("192.0.2.60"));
        // The header the proxies do not write is not read.
        let req = request("10.0.0.1:5000", &[("X-Forwarded-For", "203.0.113.7")]);
        assert_eq!(clients.client_ip(&req), ip("10.0.0.1"));
        let xff = addresses(PROXIES, "X-Forwarded-For");
        let req = request(
            "10.0.0.1:5000",
            &[
                ("Forwarded", "for=198.51.100.66"),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
        );
        assert_eq!(xff.client_ip(&req), ip("203.0.113.7"));
    }

    #[test]
    fn an_ipv6_network_shares_one_key() {
        let keys: std::collections::HashSet<String> = (0..200u128)
            .map(|i| {
                let address = u128::from("2001:db8:1:2::".parse::<Ipv6Addr>().expect("ip"))
                    | (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & u128::from(u64::MAX));
                rate_key(Some(IpAddr::V6(address.into())), 64)
            })
            .collect();
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["2001:db8:1:2::/64"]);
        assert_ne!(
            rate_key(ip("2001:db8:1:2::1"), 64),
            rate_key(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(rate_key(ip("2001:db8::1"), 128), "2001:db8::1/128");
        assert_eq!(rate_key(ip("2001:db8::1"), 0), "::/0");
        assert_eq!(rate_key(ip("::ffff:192.0.2.1"), 64), "192.0.2.1");
        assert_eq!(rate_key(ip("192.0.2.1"), 64), "192.0.2.1");
        assert_eq!(rate_key(None, 64), "unknown");
    }

    #[test]
    fn bad_settings_are_refused_at_start_up() {
        let refused = |trusted: &[&str], header: &str, prefix: u8| {
            let (http, mut limits) = settings(trusted, header);
            limits.ipv6_prefix_length = prefix;
            ClientAddresses::new(&http, &limits).err().expect("refused")
        };
        assert!(refused(&["10.0.0.0/33"], "", 64).contains("\"10.0.0.0/33\""));
        assert!(refused(&["proxy.internal"], "", 64).contains("trusted_proxies"));
        assert!(refused(&[], "X-Forwarded-For", 64).contains("http.trusted_proxies"));
        assert!(refused(PROXIES, "X-Real-IP", 64).contains("X-Real-IP"));
        assert!(refused(PROXIES, "", 129).contains("ipv6_prefix_length"));
        let (http, limits) = settings(&["", " 192.0.2.1 ", "10.0.0.1/8"], "forwarded");
        let clients = ClientAddresses::new(&http, &limits).expect("accepted");
        assert!(clients.trusted.contains("192.0.2.1".parse().expect("ip")));
        assert!(clients.trusted.contains("10.200.0.1".parse().expect("ip")));
    }
}
