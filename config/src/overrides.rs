//! Values given on the command line or in the environment, applied over the file.

use std::net::{IpAddr, SocketAddr};

use crate::model::{Config, EgressMode, IceServerConfig, LogFormat};

/// Settings that override the file. `None`/empty leaves the file's (or default) value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Overrides [`Config::http_listen`].
    pub http_listen: Option<SocketAddr>,
    /// Overrides [`Config::udp_listen`].
    pub udp_listen: Option<SocketAddr>,
    /// Overrides [`Config::media_threads`].
    pub media_threads: Option<usize>,
    /// Overrides [`Config::ice_tcp_listen`].
    pub ice_tcp_listen: Option<SocketAddr>,
    /// Overrides [`Config::advertise_ips`] when not empty.
    pub advertise_ips: Vec<IpAddr>,
    /// Overrides [`Config::log_format`].
    pub log_format: Option<LogFormat>,
    /// Overrides [`Config::egress`].
    pub egress: Option<EgressMode>,
    /// Overrides [`Config::metrics_listen`].
    pub metrics_listen: Option<SocketAddr>,
    /// Overrides [`Config::admin_token`].
    pub admin_token: Option<String>,
    /// Overrides [`Config::auth_secret`].
    pub auth_secret: Option<String>,
    /// TURN URLs to add to [`Config::ice_servers`] as one entry with [`Overrides::turn_secret`].
    pub turn_urls: Vec<String>,
    /// The shared secret of that entry (TURN REST credentials).
    pub turn_secret: Option<String>,
    /// Overrides [`Config::redis_url`].
    pub redis_url: Option<String>,
    /// Overrides [`Config::cluster_secret`].
    pub cluster_secret: Option<String>,
    /// Overrides [`Config::node_id`].
    pub node_id: Option<String>,
    /// Overrides [`Config::public_url`].
    pub public_url: Option<String>,
    /// Sets [`Config::insecure`] when true.
    pub insecure: bool,
    /// Added to [`Config::allowed_origins`].
    pub allowed_origins: Vec<String>,
}

impl Overrides {
    /// Apply these overrides to a config.
    pub fn apply(self, mut config: Config) -> Config {
        if let Some(v) = self.http_listen {
            config.http_listen = v;
        }
        if let Some(v) = self.udp_listen {
            config.udp_listen = v;
        }
        if let Some(v) = self.media_threads {
            config.media_threads = v;
        }
        if self.ice_tcp_listen.is_some() {
            config.ice_tcp_listen = self.ice_tcp_listen;
        }
        if !self.advertise_ips.is_empty() {
            config.advertise_ips = self.advertise_ips;
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(v) = self.egress {
            config.egress = v;
        }
        if let Some(v) = self.metrics_listen {
            config.metrics_listen = v;
        }
        if let Some(v) = self.admin_token {
            config.admin_token = Some(v);
        }
        if let Some(v) = self.auth_secret {
            config.auth_secret = Some(v);
        }
        if !self.turn_urls.is_empty() {
            config.ice_servers.push(IceServerConfig {
                urls: self.turn_urls,
                username: None,
                credential: None,
                secret: self.turn_secret,
                credential_ttl_secs: IceServerConfig::DEFAULT_CREDENTIAL_TTL_SECS,
            });
        }
        if self.redis_url.is_some() {
            config.redis_url = self.redis_url;
        }
        if self.cluster_secret.is_some() {
            config.cluster_secret = self.cluster_secret;
        }
        if self.node_id.is_some() {
            config.node_id = self.node_id;
        }
        if self.public_url.is_some() {
            config.public_url = self.public_url;
        }
        if self.insecure {
            config.insecure = true;
        }
        config.allowed_origins.extend(self.allowed_origins);
        config
    }
}
