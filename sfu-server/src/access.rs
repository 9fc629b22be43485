//! Who may knock on the signaling WebSocket and the admin API, judged from the caller and
//! the request's headers, before any credential is looked at.
//!
//! Without credentials configured (the development mode) a door serves local callers only:
//! a direct connection from this machine, naming a loopback host, from a loopback page if
//! from a page at all. Whether the HTTP listener is on loopback says nothing about that: a
//! reverse proxy on this machine connects from loopback for everyone it serves. With
//! credentials, browser pages of other sites are kept out by `Origin` (cross-site
//! WebSocket hijacking, CSRF); clients that are not browser pages send no `Origin`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, StatusCode, header};
use config::{Config, is_loopback_host};

/// Requests turned away at a door, by door (`signaling`, `admin`) and reason (`not_local`,
/// `origin`), and admin requests without a valid credential (`credential`).
pub const REFUSED_REQUESTS: &str = "sfu_http_refused_total";
/// The label values of [`REFUSED_REQUESTS`].
pub const REFUSED_LABELS: [(&str, &str); 5] = [
    ("signaling", "not_local"),
    ("signaling", "origin"),
    ("admin", "not_local"),
    ("admin", "origin"),
    ("admin", "credential"),
];

/// Headers a reverse proxy adds; their presence means the caller is not the peer.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// The two doors a caller can knock on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `/ws`: joining rooms.
    Signaling,
    /// `/api/*`: the admin API and the dashboard's data.
    Admin,
}

impl Door {
    /// Its label in [`REFUSED_REQUESTS`].
    pub fn label(self) -> &'static str {
        match self {
            Door::Signaling => "signaling",
            Door::Admin => "admin",
        }
    }
}

/// Why a request was turned away at the door: a status and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 403.
    pub status: StatusCode,
    /// `not_local` or `origin` (the reason label of [`REFUSED_REQUESTS`]).
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// [`check`], counting a refusal in [`REFUSED_REQUESTS`].
pub fn admit(
    config: &Config,
    door: Door,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    check(config, door, peer, headers).inspect_err(|refused| {
        count_refusal(door, refused.reason);
        tracing::info!(door = door.label(), peer = ?peer, why = %refused.message, "request refused");
    })
}

/// Count one refused request.
pub fn count_refusal(door: Door, reason: &'static str) {
    ::metrics::counter!(REFUSED_REQUESTS, "door" => door.label(), "reason" => reason).increment(1);
}

/// Let the request through `door`, or say why not. `peer` is the TCP peer (`None` when
/// unknown, which no local caller is).
pub fn check(
    config: &Config,
    door: Door,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let open = match door {
        Door::Signaling => config.joins_local_only(),
        Door::Admin => !config.admin_needs_credential(),
    };
    let refused = |reason: &'static str, message: String| Refused {
        status: StatusCode::FORBIDDEN,
        reason,
        message,
    };
    if open {
        return local_caller(peer, headers).map_err(|why| {
            refused(
                "not_local",
                format!(
                    "this server runs without credentials and serves only local callers \
                     ({why}); configure auth_secret and admin_token to serve others"
                ),
            )
        });
    }
    origin_allowed(headers, &config.allowed_origins).map_err(|m| refused("origin", m))
}

/// Whether the request comes straight from this machine: a loopback peer, no proxy's
/// forwarding headers, a loopback `Host`, and a loopback `Origin` if it has one.
fn local_caller(peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), String> {
    let peer = peer.ok_or("the caller's address is unknown")?;
    if !is_loopback_ip(peer.ip()) {
        return Err(format!("the caller {} is not on this machine", peer.ip()));
    }
    if let Some(name) = FORWARDING_HEADERS
        .iter()
        .find(|h| headers.contains_key(**h))
    {
        return Err(format!("the request came through a proxy ({name})"));
    }
    let host = header_text(headers, header::HOST).ok_or("the request names no Host")?;
    if !authority_host(host).is_some_and(|h| is_loopback_host(&h)) {
        return Err(format!("Host `{host}` is not a loopback name"));
    }
    if let Some(origin) = header_text(headers, header::ORIGIN) {
        let loopback = url::Url::parse(origin)
            .ok()
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false);
        if !loopback {
            return Err(format!("Origin `{origin}` is not a loopback page"));
        }
    }
    Ok(())
}

/// Whether the request's `Origin`, if any, may use the server: one of `allowed`, or the
/// page's own host (its host and port equal to the request's `Host`).
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = header_text(headers, header::ORIGIN) else {
        return Ok(());
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let same_host = url::Url::parse(origin).ok().is_some_and(|u| {
        let origin_authority = match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return false,
        };
        header_text(headers, header::HOST)
            .is_some_and(|h| h.eq_ignore_ascii_case(&origin_authority))
    });
    if same_host {
        Ok(())
    } else {
        Err(format!(
            "pages of `{origin}` may not use this server; add it to allowed_origins"
        ))
    }
}

/// Whether an address is loopback, IPv4-mapped IPv6 included.
fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// The host of a `Host` header value (`name`, `name:port`, `[v6]:port`).
fn authority_host(value: &str) -> Option<String> {
    let authority: axum::http::uri::Authority = value.parse().ok()?;
    Some(authority.host().to_owned())
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request headers, as name and value.
    type Pairs = &'static [(&'static str, &'static str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    const LOCAL: Option<SocketAddr> = Some(SocketAddr::new(
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        40000,
    ));

    #[test]
    fn without_credentials_only_local_callers_are_served() {
        // Requirement: the open development mode serves only local callers, however the
        // listener is bound: proxied, rebinding (foreign Host) and cross-site requests are refused.
        let dev = Config::default();
        let remote: Option<SocketAddr> = Some("192.0.2.7:5000".parse().expect("addr"));
        let mapped: Option<SocketAddr> = Some("[::ffff:127.0.0.1]:5000".parse().expect("addr"));
        let v6: Option<SocketAddr> = Some("[::1]:5000".parse().expect("addr"));
        let table: [(&str, Option<SocketAddr>, Pairs, bool); 16] = [
            (
                "a local page",
                LOCAL,
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8080"),
                ],
                true,
            ),
            (
                "localhost",
                LOCAL,
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://localhost:8080"),
                ],
                true,
            ),
            (
                "a .localhost name",
                LOCAL,
                &[("host", "app.localhost:8080")],
                true,
            ),
            (
                "a local tool without Origin",
                LOCAL,
                &[("host", "127.0.0.1:8080")],
                true,
            ),
            (
                "IPv6 loopback",
                v6,
                &[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
                true,
            ),
            (
                "IPv4-mapped loopback peer",
                mapped,
                &[("host", "127.0.0.1:8080")],
                true,
            ),
            (
                "a remote peer",
                remote,
                &[("host", "127.0.0.1:8080")],
                false,
            ),
            (
                "an unknown peer",
                None,
                &[("host", "127.0.0.1:8080")],
                false,
            ),
            (
                "through a proxy (X-Forwarded-For)",
                LOCAL,
                &[
                    ("host", "127.0.0.1:8080"),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
                false,
            ),
            (
                "through a proxy (Forwarded)",
                LOCAL,
                &[("host", "127.0.0.1:8080"), ("forwarded", "for=203.0.113.9")],
                false,
            ),
            (
                "through a proxy (X-Real-IP)",
                LOCAL,
                &[("host", "127.0.0.1:8080"), ("x-real-ip", "203.0.113.9")],
                false,
            ),
            (
                "DNS rebinding",
                LOCAL,
                &[("host", "attacker.example:8080")],
                false,
            ),
            (
                "a look-alike name",
                LOCAL,
                &[("host", "localhost.attacker.example")],
                false,
            ),
            ("no Host", LOCAL, &[], false),
            (
                "a cross-site page",
                LOCAL,
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://attacker.example"),
                ],
                false,
            ),
            (
                "an opaque origin",
                LOCAL,
                &[("host", "127.0.0.1:8080"), ("origin", "null")],
                false,
            ),
        ];
        for (case, peer, pairs, admitted) in table {
            for door in [Door::Signaling, Door::Admin] {
                let result = check(&dev, door, peer, &headers(pairs));
                assert_eq!(result.is_ok(), admitted, "{case} at {door:?}: {result:?}");
                if let Err(refused) = result {
                    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{case}");
                }
            }
        }
    }

    #[test]
    fn with_credentials_pages_need_an_allowed_origin() {
        // Requirement: outside dev mode `/ws` and the API check Origin against
        // allowed_origins (default: the page's own host); callers without Origin pass on to
        // the credential check.
        let secured = Config {
            auth_secret: Some("s".repeat(32)),
            admin_token: Some("t".repeat(16)),
            allowed_origins: vec!["https://app.example.com".to_owned()],
            ..Config::default()
        };
        let remote: Option<SocketAddr> = Some("192.0.2.7:5000".parse().expect("addr"));
        let table: [(&str, Pairs, bool); 6] = [
            (
                "no Origin (not a page)",
                &[("host", "sfu.example.com")],
                true,
            ),
            (
                "the server's own page",
                &[
                    ("host", "sfu.example.com"),
                    ("origin", "https://sfu.example.com"),
                ],
                true,
            ),
            (
                "the own page on a port",
                &[
                    ("host", "sfu.example.com:8443"),
                    ("origin", "https://sfu.example.com:8443"),
                ],
                true,
            ),
            (
                "an allowed origin",
                &[
                    ("host", "sfu.example.com"),
                    ("origin", "https://app.example.com"),
                ],
                true,
            ),
            (
                "another site",
                &[
                    ("host", "sfu.example.com"),
                    ("origin", "https://attacker.example"),
                ],
                false,
            ),
            (
                "another port",
                &[
                    ("host", "sfu.example.com"),
                    ("origin", "https://sfu.example.com:444"),
                ],
                false,
            ),
        ];
        for (case, pairs, admitted) in table {
            for door in [Door::Signaling, Door::Admin] {
                let result = check(&secured, door, remote, &headers(pairs));
                assert_eq!(result.is_ok(), admitted, "{case} at {door:?}: {result:?}");
            }
        }
    }

    #[test]
    fn each_door_opens_by_its_own_credential() {
        // Requirement: an auth secret alone secures both doors (admin join tokens are admin
        // credentials); an admin token alone leaves token-less joins local; insecure opens joins.
        let remote: Option<SocketAddr> = Some("192.0.2.7:5000".parse().expect("addr"));
        let plain = headers(&[("host", "sfu.example.com")]);
        let secret_only = Config {
            auth_secret: Some("s".repeat(32)),
            ..Config::default()
        };
        let token_only = Config {
            admin_token: Some("t".repeat(16)),
            ..Config::default()
        };
        let insecure = Config {
            insecure: true,
            ..Config::default()
        };
        let table = [
            ("secret only, joins", &secret_only, Door::Signaling, true),
            ("secret only, admin", &secret_only, Door::Admin, true),
            (
                "admin token only, joins",
                &token_only,
                Door::Signaling,
                false,
            ),
            ("admin token only, admin", &token_only, Door::Admin, true),
            ("insecure, joins", &insecure, Door::Signaling, true),
            ("insecure, admin", &insecure, Door::Admin, false),
        ];
        for (case, config, door, admitted) in table {
            assert_eq!(
                check(config, door, remote, &plain).is_ok(),
                admitted,
                "{case}"
            );
        }
    }
}
