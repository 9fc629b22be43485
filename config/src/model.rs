//! The configuration struct, its defaults and its validation.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Most media threads a node may run.
pub const MAX_MEDIA_THREADS: usize = 64;

/// Everything the server can be configured with. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP listener: signaling WebSocket (`/ws`), web client (`/`), `/healthz`.
    pub http_listen: SocketAddr,
    /// Address of the UDP socket that carries all media (with several `media_threads`, of
    /// the first one).
    pub udp_listen: SocketAddr,
    /// Threads that carry media. Each owns one UDP socket, its receive loop and the rooms
    /// placed on it (a new room goes to the thread with the fewest participants, then rooms), so a packet is
    /// received, forwarded and sent without changing thread. Their sockets use
    /// `udp_listen`'s port and the ports after it (port 0: a free port each). One thread
    /// carries about 100k forwarded packets/s per core (docs/PERFORMANCE.md); add threads
    /// to use more cores, and open their ports.
    pub media_threads: usize,
    /// Address of the ICE-TCP listener (RFC 6544 passive candidates, RFC 4571 framing) for
    /// clients whose UDP is blocked; unset: no TCP candidates. Its port is advertised on
    /// the same IPs as the UDP candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_tcp_listen: Option<SocketAddr>,
    /// IP addresses put in ICE candidates. Empty means the UDP listen address; when that is
    /// a wildcard (0.0.0.0 / ::), the server advertises its interfaces' addresses (IPv4 for
    /// 0.0.0.0, IPv6 for ::; no loopback or link-local). Set this behind NAT 1:1, to the
    /// public address(es) clients reach.
    pub advertise_ips: Vec<IpAddr>,
    /// Redis URL for running several nodes as one cluster: nodes register there with their
    /// load, each room is owned by one node, and joins for a room owned elsewhere are
    /// redirected to its owner. `redis://:password@host:6379/` (or `redis://user:password@…`)
    /// authenticates, `rediss://` uses TLS (the system's trusted certificates, or the file
    /// `SSL_CERT_FILE` names). Unset: a single node, no Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Secret (at least 32 characters) shared by the nodes of a cluster: each signs its node
    /// record with it, and a node redirects clients only to nodes whose record verifies, so
    /// whoever can write to Redis cannot send clients (and their tokens) elsewhere. Required
    /// with `redis_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<String>,
    /// This node's name in the cluster (default: random at each start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The signaling URL other nodes redirect clients to, e.g. `wss://sfu-1.example.com/ws`
    /// (default: `ws://<http_listen>/ws`, which must then not be a wildcard address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Seconds a node's and its rooms' records live in Redis without a heartbeat: how long
    /// a dead node's rooms stay unreachable before the next join places them again.
    pub cluster_ttl_secs: u64,
    /// ICE servers (STUN/TURN) handed to clients in `joined.ice_servers`.
    pub ice_servers: Vec<IceServerConfig>,
    /// Largest signaling message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Largest data channel message relayed, in bytes; larger ones are dropped and counted.
    pub max_data_message_bytes: usize,
    /// Data channel messages one participant may have relayed per second (bursts of as
    /// many); more are dropped and counted.
    pub max_data_messages_per_second: u32,
    /// Most participants in one room; the next join gets `room_full`.
    pub max_participants_per_room: usize,
    /// Most rooms on this server; a join that would open one more gets `room_full`.
    pub max_rooms: usize,
    /// Most tracks one participant may publish; an offer with more gets `too_large`.
    pub max_tracks_per_participant: usize,
    /// Most tracks one room may carry, all publishers together; an offer that would go
    /// over gets `room_full`.
    pub max_tracks_per_room: usize,
    /// Largest SDP accepted in an offer or answer, in bytes (`too_large`).
    pub max_sdp_bytes: usize,
    /// Signaling messages one connection may send per second (bursts of as many); more get
    /// `rate_limited` and are dropped.
    pub max_messages_per_second: u32,
    /// Offers one participant may make per second (bursts of as many); more get
    /// `rate_limited` and are ignored (each makes every other participant renegotiate).
    pub max_offers_per_second: u32,
    /// Joins being processed at once on this server; more get `rate_limited`.
    pub max_pending_joins: usize,
    /// Signaling WebSockets open at once that have not joined (or resumed) yet (1 to
    /// 1,000,000); more are refused at the upgrade with HTTP 503, so idle connections cannot
    /// pile up.
    pub max_unjoined_connections: usize,
    /// Of those, most from one client address (loopback, a reverse proxy on this host, is
    /// not counted: limit per client at the proxy).
    pub max_unjoined_connections_per_ip: usize,
    /// HTTP connections (WebSockets included) open at once on each listener; more are
    /// closed at once.
    pub max_http_connections: usize,
    /// Of those, most from one client address (loopback not counted, as above).
    pub max_http_connections_per_ip: usize,
    /// Minimum time between two keyframe requests sent to a publisher for one track, in milliseconds.
    pub keyframe_request_interval_ms: u64,
    /// Seconds a participant may stay without a connected media path (ICE) before it is
    /// removed (1 to 3600).
    pub ice_connect_timeout_secs: u64,
    /// Seconds a participant whose signaling connection dropped (without `leave`) is kept,
    /// media flowing, waiting for it to `resume`; 0 removes it at once.
    pub resume_grace_secs: u64,
    /// Seconds without any frame from a signaling client (the server pings every third of
    /// this; browsers answer pings by themselves) before its session ends with `timeout`.
    pub ws_idle_timeout_secs: u64,
    /// Log output format.
    pub log_format: LogFormat,
    /// What sends forwarded media to subscribers: `native` (the SFU's own SRTP egress, the
    /// default) or `str0m` (its streams and pacer, for comparison).
    pub egress: EgressMode,
    /// Serve Prometheus metrics at `/metrics` on [`Config::metrics_listen`].
    pub metrics_enabled: bool,
    /// Address of the metrics listener (kept apart from the public HTTP listener).
    pub metrics_listen: SocketAddr,
    /// At most this many rooms get their own `room`-labelled series (the largest first),
    /// so the number of series stays bounded.
    pub metrics_max_rooms: usize,
    /// Bearer token for the admin API (`/api/`) and the dashboard. With neither this nor
    /// [`Config::auth_secret`] set they are open to local callers only (development mode);
    /// with `auth_secret` set, a join token granting `admin` is an admin credential too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Secret (at least 32 characters) that signs join tokens (HS256 JWTs). Unset: joins
    /// need no token and are served to local callers only, unless [`Config::insecure`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<String>,
    /// Run reachable from other hosts without `auth_secret` and `admin_token`: anyone
    /// reaching the server can join any room without a token (the admin API stays local
    /// without a credential).
    pub insecure: bool,
    /// Origins (`https://app.example.com`) whose pages may use `/ws` and `/api` from a
    /// browser, besides the server's own pages. Empty: only pages served from the host the
    /// request names (`Origin` host and port equal to `Host`). Requests without `Origin`
    /// (not from a browser page) are not affected.
    pub allowed_origins: Vec<String>,
}

/// One ICE server handed to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN credential, if any.
    #[serde(default)]
    pub credential: Option<String>,
    /// Secret shared with the TURN server (coturn's `static-auth-secret`): instead of a
    /// fixed username and credential, each participant gets its own, valid for
    /// `credential_ttl_secs` (the TURN REST scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How long credentials made from `secret` stay valid, in seconds.
    #[serde(default = "default_credential_ttl_secs")]
    pub credential_ttl_secs: u64,
}

fn default_credential_ttl_secs() -> u64 {
    IceServerConfig::DEFAULT_CREDENTIAL_TTL_SECS
}

impl IceServerConfig {
    /// Lifetime of TURN REST credentials unless configured: six hours (a leaked credential
    /// relays for no longer; a call through TURN that outlasts it loses its relay).
    pub const DEFAULT_CREDENTIAL_TTL_SECS: u64 = 6 * 60 * 60;
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What sends forwarded media to subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressMode {
    /// str0m's send streams: its pacer, RTX, sender reports and bandwidth estimator (kept
    /// for comparison).
    Str0m,
    /// The SFU's own egress: RTP written and SRTP-protected in place, sent directly, with
    /// its own RTX, sender reports and bandwidth estimator. The default.
    #[default]
    Native,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            udp_listen: SocketAddr::from(([127, 0, 0, 1], 50000)),
            media_threads: 1,
            ice_tcp_listen: None,
            redis_url: None,
            cluster_secret: None,
            node_id: None,
            public_url: None,
            cluster_ttl_secs: 10,
            advertise_ips: Vec::new(),
            ice_servers: Vec::new(),
            max_message_bytes: 64 * 1024,
            max_data_message_bytes: 16 * 1024,
            max_data_messages_per_second: 100,
            max_participants_per_room: 100,
            max_rooms: 1000,
            max_tracks_per_participant: 8,
            max_tracks_per_room: 200,
            max_sdp_bytes: 48 * 1024,
            max_messages_per_second: 50,
            max_offers_per_second: 5,
            max_pending_joins: 64,
            max_unjoined_connections: 1024,
            max_unjoined_connections_per_ip: 16,
            max_http_connections: 10_000,
            max_http_connections_per_ip: 256,
            keyframe_request_interval_ms: 500,
            ice_connect_timeout_secs: 20,
            ws_idle_timeout_secs: 45,
            resume_grace_secs: 20,
            log_format: LogFormat::Text,
            egress: EgressMode::Native,
            metrics_enabled: true,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            metrics_max_rooms: 100,
            admin_token: None,
            auth_secret: None,
            insecure: false,
            allowed_origins: Vec::new(),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is out of its allowed range or contradicts another.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `Ok` when `value` lies in `min..=max`, else the error naming `name` and the range.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{name} must be between {min} and {max}, got {value}"
        )))
    }
}

/// Whether a host name or IP literal (IPv6 with or without brackets) names this machine's
/// loopback interface: `localhost`, a `.localhost` name (RFC 6761), 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            IpAddr::V4(v4) => v4.is_loopback(),
        };
    }
    host == "localhost" || host.ends_with(".localhost")
}

/// The host of a URL (`None` when it has none or does not parse).
fn url_host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

/// Whether `text` is a web origin as browsers send it: http or https, a host, an optional
/// port, nothing after.
fn is_origin(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.origin().ascii_serialization() == text.trim_end_matches('/')
            && !text.ends_with('/')
    })
}

impl Config {
    /// Parse a TOML document; missing fields keep their defaults, unknown fields are errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Read and parse a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    /// The defaults as a commented TOML document (what `deploy/` ships as a sample).
    pub fn default_toml() -> String {
        // Serializing a struct of plain values to TOML cannot fail.
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }

    /// Whether the admin API needs a credential: when an admin token or an auth secret (which
    /// signs admin join tokens) is configured. Without either it is open to local callers.
    pub fn admin_needs_credential(&self) -> bool {
        self.admin_token.is_some() || self.auth_secret.is_some()
    }

    /// Whether token-less joins are limited to local callers: no auth secret, and not
    /// [`Config::insecure`].
    pub fn joins_local_only(&self) -> bool {
        self.auth_secret.is_none() && !self.insecure
    }

    /// What makes this server reachable from other hosts, if anything: an HTTP or ICE-TCP
    /// listener or the media socket on a non-loopback address, a non-loopback advertised
    /// address, or a `public_url` naming a non-loopback host.
    pub fn reachable_from_elsewhere(&self) -> Option<String> {
        let listeners = [
            ("http_listen", Some(self.http_listen)),
            ("udp_listen", Some(self.udp_listen)),
            ("ice_tcp_listen", self.ice_tcp_listen),
        ];
        if let Some((name, addr)) = listeners
            .into_iter()
            .find_map(|(name, addr)| Some((name, addr?)).filter(|(_, a)| !a.ip().is_loopback()))
        {
            return Some(format!("{name} {addr} is not a loopback address"));
        }
        if let Some(ip) = self.advertise_ips.iter().find(|ip| !ip.is_loopback()) {
            return Some(format!("advertise_ips names {ip}, not a loopback address"));
        }
        let public_host = self.public_url.as_deref().map(url_host);
        if let Some(host) = public_host.filter(|h| !h.as_deref().is_some_and(is_loopback_host)) {
            return Some(format!(
                "public_url names {}, not a loopback host",
                host.unwrap_or_default()
            ));
        }
        None
    }

    /// The IPs to advertise in ICE candidates.
    pub fn candidate_ips(&self) -> Vec<IpAddr> {
        if self.advertise_ips.is_empty() {
            vec![self.udp_listen.ip()]
        } else {
            self.advertise_ips.clone()
        }
    }

    /// Check every rule; the error names the field and says what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        within("cluster_ttl_secs", self.cluster_ttl_secs, 2, 3600)?;
        if self.redis_url.is_some() && self.cluster_secret.is_none() {
            return invalid(
                "redis_url is set but cluster_secret is not: give every node the same secret of \
                 at least 32 characters (--cluster-secret / SFU_CLUSTER_SECRET), which signs the \
                 node records clients are redirected by"
                    .into(),
            );
        }
        if self.cluster_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return invalid("cluster_secret must be at least 32 characters".into());
        }
        if let Some(url) = self
            .redis_url
            .as_deref()
            .filter(|u| !u.starts_with("redis://") && !u.starts_with("rediss://"))
        {
            return invalid(format!(
                "redis_url must be a redis:// or rediss:// URL, got {}",
                url.split('@').next_back().unwrap_or_default()
            ));
        }
        if self.redis_url.is_some()
            && self.public_url.is_none()
            && self.http_listen.ip().is_unspecified()
        {
            return invalid(format!(
                "redis_url is set and http_listen {} is a wildcard address: set public_url to the \
                 signaling URL other nodes should redirect clients to",
                self.http_listen
            ));
        }
        if let Some(url) = self
            .public_url
            .as_deref()
            .filter(|u| !u.starts_with("ws://") && !u.starts_with("wss://"))
        {
            return invalid(format!(
                "public_url must be a ws:// or wss:// URL, got {url}"
            ));
        }
        within("media_threads", self.media_threads, 1, MAX_MEDIA_THREADS)?;
        let last_port = usize::from(self.udp_listen.port()) + self.media_threads - 1;
        if self.udp_listen.port() != 0 && last_port > usize::from(u16::MAX) {
            return invalid(format!(
                "udp_listen {} with media_threads {} needs ports beyond 65535",
                self.udp_listen, self.media_threads
            ));
        }
        if let Some(ip) = self.advertise_ips.iter().find(|ip| ip.is_unspecified()) {
            return invalid(format!("advertise_ips contains the wildcard address {ip}"));
        }
        within(
            "max_message_bytes",
            self.max_message_bytes,
            1024,
            16 * 1024 * 1024,
        )?;
        within(
            "max_data_message_bytes",
            self.max_data_message_bytes,
            1,
            256 * 1024,
        )?;
        for (name, value) in [
            ("max_rooms", self.max_rooms),
            (
                "max_tracks_per_participant",
                self.max_tracks_per_participant,
            ),
            ("max_tracks_per_room", self.max_tracks_per_room),
            ("max_pending_joins", self.max_pending_joins),
            (
                "max_messages_per_second",
                self.max_messages_per_second as usize,
            ),
            ("max_offers_per_second", self.max_offers_per_second as usize),
            (
                "max_data_messages_per_second",
                self.max_data_messages_per_second as usize,
            ),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be at least 1"));
            }
        }
        if !(1024..=self.max_message_bytes.max(1024)).contains(&self.max_sdp_bytes) {
            return invalid(format!(
                "max_sdp_bytes must be between 1024 and max_message_bytes ({}), got {}",
                self.max_message_bytes, self.max_sdp_bytes
            ));
        }
        if self.max_participants_per_room == 0 {
            return invalid("max_participants_per_room must be at least 1".into());
        }
        if self.keyframe_request_interval_ms > 10_000 {
            return invalid(format!(
                "keyframe_request_interval_ms must be at most 10000, got {}",
                self.keyframe_request_interval_ms
            ));
        }
        within("ws_idle_timeout_secs", self.ws_idle_timeout_secs, 3, 3600)?;
        if self.resume_grace_secs > 3600 {
            return invalid(format!(
                "resume_grace_secs must be at most 3600, got {}",
                self.resume_grace_secs
            ));
        }
        within(
            "max_unjoined_connections",
            self.max_unjoined_connections,
            1,
            1_000_000,
        )?;
        within(
            "max_unjoined_connections_per_ip",
            self.max_unjoined_connections_per_ip,
            1,
            1_000_000,
        )?;
        within(
            "max_http_connections",
            self.max_http_connections,
            1,
            1_000_000,
        )?;
        within(
            "max_http_connections_per_ip",
            self.max_http_connections_per_ip,
            1,
            1_000_000,
        )?;
        within(
            "ice_connect_timeout_secs",
            self.ice_connect_timeout_secs,
            1,
            3600,
        )?;
        if self.ice_servers.iter().any(|s| s.urls.is_empty()) {
            return invalid("an ice_servers entry has no urls".to_owned());
        }
        for server in &self.ice_servers {
            if server.secret.as_deref().is_some_and(str::is_empty) {
                return invalid(format!("ice_servers {:?}: secret is empty", server.urls));
            }
            if server.secret.is_some() && (server.username.is_some() || server.credential.is_some())
            {
                return invalid(format!(
                    "ice_servers {:?}: give either secret or username/credential, not both",
                    server.urls
                ));
            }
            if server.secret.is_some() && server.credential_ttl_secs == 0 {
                return invalid(format!(
                    "ice_servers {:?}: credential_ttl_secs must be at least 1",
                    server.urls
                ));
            }
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return invalid("admin_token must be at least 16 characters".into());
        }
        if self.auth_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return invalid("auth_secret must be at least 32 characters".into());
        }
        for origin in &self.allowed_origins {
            if !is_origin(origin) {
                return invalid(format!(
                    "allowed_origins: `{origin}` is not an origin (scheme://host[:port], http or \
                     https, no path)"
                ));
            }
        }
        let missing: Vec<&str> = [
            (
                "auth_secret (--auth-secret / SFU_AUTH_SECRET)",
                &self.auth_secret,
            ),
            (
                "admin_token (--admin-token / SFU_ADMIN_TOKEN)",
                &self.admin_token,
            ),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name)
        .collect();
        if let Some(reason) = self.reachable_from_elsewhere()
            && !missing.is_empty()
            && !self.insecure
        {
            return invalid(format!(
                "{reason}, so other hosts can reach this server, but {} {} not set: anyone could \
                 join any room or use the admin API. Set {}, or pass --insecure (insecure = true) \
                 to run without them anyway",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" },
                missing.join(" and "),
            ));
        }
        Ok(())
    }
}
