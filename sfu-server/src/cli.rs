//! Command-line flags (each also settable by environment variable) and logging setup.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use config::{Config, LogFormat, Overrides};

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
    #[arg(long, env = "SFU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// HTTP listen address: signaling WebSocket at /ws, web client at /, /healthz.
    #[arg(long = "http", env = "SFU_HTTP", value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,

    /// UDP listen address of the one media socket shared by all peers (port 0 picks a free port).
    #[arg(long = "udp", env = "SFU_UDP", value_name = "ADDR:PORT")]
    udp: Option<SocketAddr>,

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

    /// Print the built-in default configuration as TOML and exit.
    #[arg(long)]
    print_default_config: bool,
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
            advertise_ips: self.advertise_ips.clone(),
            log_format: self.log_format,
            metrics_listen: self.metrics_listen,
            admin_token: self.admin_token.clone(),
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
