//! The server's configuration.
//!
//! One [`Config`] with a default for every field (running with no config at all is
//! the development default: loopback, auth off). It is built in layers:
//! defaults, then an optional TOML file ([`Config::from_toml`]), then
//! [`Overrides`] from environment variables and command-line flags (the binary
//! parses those), and is checked by [`Config::validate`] before anything starts.

mod model;
mod overrides;

pub use model::{
    Config, ConfigError, EgressMode, IceServerConfig, LogFormat, MAX_MEDIA_THREADS,
    is_loopback_host,
};
pub use overrides::Overrides;
