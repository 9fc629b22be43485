//! Command-line flags (each also settable by environment variable) and logging setup.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use config::{Config, EgressMode, LogFormat, Overrides};

use signaling::token::{self as auth, Claims, Grants};

/// A WebRTC Selective Forwarding Unit: browsers join rooms over WebSocket signaling
/// and the server forwards every participant's audio, video and data to the others.
///
/// With no flags at all it binds loopback (HTTP 127.0.0.1:8080, media UDP 127.0.0.1:50000)
/// and prints the URL to open. Settings are applied in this order: built-in defaults,
/// the TOML file given by --config, then environment variables, then flags.
#[derive(Debug, Parser)]
#[command(name = "sfu-server", version)]
pub struct Cli {
    /// TOML config file (see deploy/sfu.sample.toml for every setting).
    #[arg(long, global = true, env = "SFU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// HTTP listen address: signaling WebSocket at /ws, web client at /, /healthz.
    #[arg(long = "http", env = "SFU_HTTP", value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,

    /// UDP listen address of the one media socket shared by all peers (port 0 picks a free port).
    #[arg(long = "udp", env = "SFU_UDP", value_name = "ADDR:PORT")]
    udp: Option<SocketAddr>,

    /// ICE-TCP listen address, for clients whose UDP is blocked (port 0 picks a free port).
    #[arg(long = "ice-tcp", env = "SFU_ICE_TCP", value_name = "ADDR:PORT")]
    ice_tcp: Option<SocketAddr>,

    /// TURN URL handed to clients with per-participant credentials from --turn-secret
    /// (repeatable; added to the config's ice_servers).
    #[arg(
        long = "turn-url",
        env = "SFU_TURN_URLS",
        value_delimiter = ',',
        value_name = "URL",
        requires = "turn_secret"
    )]
    turn_urls: Vec<String>,

    /// Secret shared with the TURN server (coturn static-auth-secret) for --turn-url.
    #[arg(
        long = "turn-secret",
        env = "SFU_TURN_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    turn_secret: Option<String>,

    /// Redis URL to run as one node of a cluster (rooms placed by load, joins redirected).
    #[arg(long = "redis-url", env = "SFU_REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,

    /// Secret shared by the cluster's nodes, signing their records (at least 32 characters).
    #[arg(
        long = "cluster-secret",
        env = "SFU_CLUSTER_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    cluster_secret: Option<String>,

    /// This node's name in the cluster (default: random).
    #[arg(long = "node-id", env = "SFU_NODE_ID", value_name = "NAME")]
    node_id: Option<String>,

    /// Signaling URL other nodes redirect clients to (default: ws://<http address>/ws).
    #[arg(long = "public-url", env = "SFU_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Threads carrying media, each with its own UDP port (--udp's port and the next ones).
    #[arg(long = "media-threads", env = "SFU_MEDIA_THREADS", value_name = "N")]
    media_threads: Option<usize>,

    /// IP address to advertise in ICE candidates (repeatable; needed when --udp binds 0.0.0.0).
    #[arg(
        long = "advertise-ip",
        env = "SFU_ADVERTISE_IPS",
        value_delimiter = ',',
        value_name = "IP"
    )]
    advertise_ips: Vec<IpAddr>,

    /// Log format: text or json. Log levels come from RUST_LOG (default: info).
    #[arg(long = "log-format", env = "SFU_LOG_FORMAT", value_parser = parse_log_format, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    /// What sends forwarded media: str0m or native (the SFU's own SRTP egress).
    #[arg(long = "egress", env = "SFU_EGRESS", value_parser = parse_egress, value_name = "EGRESS")]
    egress: Option<EgressMode>,

    /// Prometheus metrics listen address (`/metrics`; port 0 picks a free port).
    #[arg(
        long = "metrics-listen",
        env = "SFU_METRICS_LISTEN",
        value_name = "ADDR:PORT"
    )]
    metrics_listen: Option<SocketAddr>,

    /// Bearer token required by the admin API and the dashboard.
    #[arg(
        long = "admin-token",
        env = "SFU_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,

    /// Secret that signs join tokens (HS256; at least 32 characters).
    #[arg(
        long = "auth-secret",
        global = true,
        env = "SFU_AUTH_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    auth_secret: Option<String>,

    /// Run reachable from other hosts without --auth-secret and --admin-token (anyone
    /// reaching it can join any room without a token).
    #[arg(long, env = "SFU_INSECURE")]
    insecure: bool,

    /// Origin (https://app.example.com) whose pages may use /ws and /api besides the
    /// server's own (repeatable; added to the config's allowed_origins).
    #[arg(
        long = "allowed-origin",
        env = "SFU_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    allowed_origins: Vec<String>,

    /// Print the built-in default configuration as TOML and exit.
    #[arg(long)]
    print_default_config: bool,

    /// A one-off task instead of running the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tasks other than serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a join token signed with the configured auth secret.
    Token(TokenArgs),
}

/// What a join token says.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The room it lets its holder join.
    #[arg(long)]
    pub room: String,
    /// The participant's identity (the application's user id).
    #[arg(long)]
    pub identity: String,
    /// Display name (else the name in the `join` message).
    #[arg(long)]
    pub name: Option<String>,
    /// Comma-separated grants among publish, subscribe, data, admin.
    #[arg(long, default_value = "publish,subscribe,data", value_parser = parse_grants)]
    pub grants: Grants,
    /// How long it stays valid: seconds, or with a unit (90s, 30m, 12h, 7d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: u64,
}

impl TokenArgs {
    /// The token for these arguments, valid from now.
    pub fn token(&self, secret: &str) -> String {
        let claims = Claims {
            sub: self.identity.clone(),
            name: self.name.clone(),
            room: self.room.clone(),
            exp: auth::unix_now() + self.ttl,
            nbf: None,
            grants: self.grants,
        };
        auth::sign(&claims, secret.as_bytes())
    }
}

fn parse_grants(s: &str) -> Result<Grants, String> {
    let mut grants = Grants {
        can_publish: false,
        can_subscribe: false,
        can_publish_data: false,
        admin: false,
    };
    for g in s.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        match g {
            "publish" => grants.can_publish = true,
            "subscribe" => grants.can_subscribe = true,
            "data" => grants.can_publish_data = true,
            "admin" => grants.admin = true,
            other => {
                return Err(format!(
                    "unknown grant `{other}` (publish, subscribe, data, admin)"
                ));
            }
        }
    }
    Ok(grants)
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("invalid ttl `{s}`"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("invalid ttl unit in `{s}` (s, m, h or d)")),
    };
    n.checked_mul(scale)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid ttl `{s}`"))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}` (expected text or json)"
        )),
    }
}

fn parse_egress(s: &str) -> Result<EgressMode, String> {
    match s {
        "str0m" => Ok(EgressMode::Str0m),
        "native" => Ok(EgressMode::Native),
        other => Err(format!(
            "unknown egress `{other}` (expected str0m or native)"
        )),
    }
}

impl Cli {
    /// Build the validated config: defaults, file, environment and flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        if self.print_default_config {
            print!("{}", Config::default_toml());
            std::process::exit(0);
        }
        let base = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let config = Overrides {
            http_listen: self.http,
            udp_listen: self.udp,
            media_threads: self.media_threads,
            ice_tcp_listen: self.ice_tcp,
            advertise_ips: self.advertise_ips.clone(),
            log_format: self.log_format,
            egress: self.egress,
            metrics_listen: self.metrics_listen,
            admin_token: self.admin_token.clone(),
            auth_secret: self.auth_secret.clone(),
            turn_urls: self.turn_urls.clone(),
            turn_secret: self.turn_secret.clone(),
            redis_url: self.redis_url.clone(),
            cluster_secret: self.cluster_secret.clone(),
            node_id: self.node_id.clone(),
            public_url: self.public_url.clone(),
            insecure: self.insecure,
            allowed_origins: self.allowed_origins.clone(),
        }
        .apply(base);
        config.validate().context("refusing to start")?;
        Ok(config)
    }
}

/// Set up `tracing` output to stderr with `RUST_LOG` filtering (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_flags_parse() {
        // Requirement: `sfu-server token` takes grants and a ttl with units, and refuses nonsense.
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("0s").is_err() && parse_ttl("1y").is_err() && parse_ttl("h").is_err());
        let g = parse_grants("subscribe,data").expect("grants");
        assert!(!g.can_publish && g.can_subscribe && g.can_publish_data && !g.admin);
        assert!(parse_grants("publish,fly").is_err());
        let cli = Cli::try_parse_from([
            "sfu-server",
            "token",
            "--room",
            "r",
            "--identity",
            "u",
            "--grants",
            "admin",
        ])
        .expect("token subcommand");
        let Some(Command::Token(args)) = cli.command else {
            panic!("no token command parsed");
        };
        assert!(args.grants.admin && !args.grants.can_publish);
        assert_eq!(args.ttl, 3600);
        let token = args.token("0123456789abcdef0123456789abcdef");
        let claims = auth::verify(
            &token,
            b"0123456789abcdef0123456789abcdef",
            auth::unix_now(),
        )
        .expect("valid");
        assert_eq!((claims.room.as_str(), claims.sub.as_str()), ("r", "u"));
    }
}
