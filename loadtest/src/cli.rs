//! Command-line flags. Each flag overrides the same key of the `--scenario` file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use signaling::Quality;

use crate::scenario::{Scenario, Target, parse_duration, parse_fraction, parse_quality};

/// Load an SFU with synthetic WebRTC publishers and subscribers and report what they measured.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Args {
    /// TOML scenario file; flags given here override its values.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// The server under load: sfu (this one), janus (its VideoRoom plugin) or livekit.
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Signaling WebSocket URL of the server.
    #[arg(long)]
    pub url: Option<String>,
    /// Bind every participant's media socket to this address (default: the local address
    /// of its signaling connection).
    #[arg(long)]
    pub media_ip: Option<IpAddr>,
    /// Number of rooms.
    #[arg(long)]
    pub rooms: Option<u32>,
    /// Publishers per room (they also receive everyone else).
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Receive-only participants per room.
    #[arg(long)]
    pub subscribers: Option<u32>,
    /// Deal --publishers/--subscribers as totals over the rooms instead of per room.
    #[arg(long)]
    pub spread: bool,
    /// Run length, e.g. 30s or 2m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Send video: on or off.
    #[arg(long, value_parser = on_off)]
    pub video: Option<bool>,
    /// Send audio: on or off.
    #[arg(long, value_parser = on_off)]
    pub audio: Option<bool>,
    /// Three simulcast layers (on) or one (off).
    #[arg(long, value_parser = on_off)]
    pub simulcast: Option<bool>,
    /// The layer receivers ask for: low, medium, high or auto.
    #[arg(long, value_parser = parse_quality)]
    pub quality: Option<Quality>,
    /// Bitrates of layers q,h,f in kbit/s, e.g. 150,500,1500.
    #[arg(long, value_parser = parse_kbps)]
    pub video_kbps: Option<[u32; 3]>,
    /// Video frames per second.
    #[arg(long)]
    pub fps: Option<u32>,
    /// Time between periodic keyframes, e.g. 3s.
    #[arg(long, value_parser = parse_duration)]
    pub keyframe_interval: Option<Duration>,
    /// Data channel messages per second from each publisher.
    #[arg(long)]
    pub data_per_sec: Option<f64>,
    /// Joins per second while ramping up.
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Malformed and forged datagrams each participant sends per second from its own
    /// media socket, as a hostile client would.
    #[arg(long)]
    pub garbage_per_sec: Option<f64>,
    /// Seed for media sizes and levels.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The server's auth secret, to sign each participant's join token.
    #[arg(long, env = "SFU_AUTH_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// LiveKit's API key for join tokens, with --token-secret as its secret (default: the
    /// `--dev` key and secret).
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub api_key: Option<String>,
    /// Fail when frame loss exceeds this, e.g. 1%.
    #[arg(long, value_parser = parse_fraction)]
    pub max_loss: Option<f64>,
    /// Fail when p99 latency exceeds this, e.g. 50ms.
    #[arg(long, value_parser = parse_duration)]
    pub max_p99_latency: Option<Duration>,
    /// Process id of a local SFU, to report its CPU time per forwarded packet and peak RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// This SFU's Prometheus endpoint (`http://host:port/metrics`), to report its
    /// forwarding latency inside it over the measured window (with `--server-pid`).
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Worker threads of the load generator (its peers share them).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl Args {
    /// Apply every given flag on top of `base`.
    pub fn apply(&self, mut s: Scenario) -> Scenario {
        if let Some(v) = &self.url {
            s.url = v.clone();
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = self.$field { s.$field = v; })*};
        }
        set!(
            rooms,
            publishers,
            subscribers,
            duration,
            video,
            audio,
            simulcast,
            quality
        );
        set!(video_kbps, fps, keyframe_interval, data_per_sec, ramp, seed);
        set!(garbage_per_sec, target);
        if self.token_secret.is_some() {
            s.token_secret = self.token_secret.clone();
        }
        if self.api_key.is_some() {
            s.api_key = self.api_key.clone();
        }
        if self.media_ip.is_some() {
            s.media_ip = self.media_ip;
        }
        if self.spread {
            s.spread = true;
        }
        if self.max_loss.is_some() {
            s.max_loss = self.max_loss;
        }
        if let Some(d) = self.max_p99_latency {
            s.max_p99_latency_ms = Some(d.as_secs_f64() * 1000.0);
        }
        s
    }
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => Err(format!("{other:?}: use on or off")),
    }
}

fn parse_kbps(text: &str) -> Result<[u32; 3], String> {
    let values: Vec<u32> = text
        .split(',')
        .map(|v| v.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{text:?}: use three numbers like 150,500,1500"))?;
    values
        .try_into()
        .map_err(|_| format!("{text:?}: give exactly three bitrates (q,h,f)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_scenario() {
        // Requirement: the README's command line sets exactly what it says, the rest stays.
        let args = Args::try_parse_from([
            "loadtest",
            "--url",
            "ws://127.0.0.1:9/ws",
            "--rooms",
            "4",
            "--publishers",
            "3",
            "--subscribers",
            "8",
            "--duration",
            "60s",
            "--simulcast",
            "off",
            "--quality",
            "low",
            "--video-kbps",
            "100,200,300",
            "--max-loss",
            "1%",
            "--max-p99-latency",
            "50ms",
        ])
        .expect("valid flags");
        let s = args.apply(Scenario::default());
        assert_eq!(s.url, "ws://127.0.0.1:9/ws");
        assert_eq!((s.rooms, s.publishers, s.subscribers), (4, 3, 8));
        assert_eq!(s.duration, Duration::from_secs(60));
        assert!(!s.simulcast && s.video && s.audio);
        assert_eq!(s.quality, Quality::Low);
        assert_eq!(s.video_kbps, [100, 200, 300]);
        assert_eq!(s.max_loss, Some(0.01));
        assert_eq!(s.max_p99_latency_ms, Some(50.0));
        assert!(Args::try_parse_from(["loadtest", "--video", "maybe"]).is_err());
        assert!(Args::try_parse_from(["loadtest", "--video-kbps", "1,2"]).is_err());
    }
}
