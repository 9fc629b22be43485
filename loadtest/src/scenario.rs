//! A load scenario: who joins where, what they send, and what counts as a failed run.
//! Read from a TOML file (`--scenario`), then overridden by command-line flags.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use signaling::Quality;
use thiserror::Error;

/// Everything one run does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Which server's signaling the participants speak.
    pub target: Target,
    /// The server's signaling WebSocket URL.
    pub url: String,
    /// The address every participant's media socket binds to (default: the local address
    /// of its signaling connection).
    pub media_ip: Option<IpAddr>,
    /// Number of rooms.
    pub rooms: u32,
    /// Publishers per room (or in total with `spread`); they also receive everyone else.
    pub publishers: u32,
    /// Receive-only participants per room (or in total with `spread`).
    pub subscribers: u32,
    /// Treat `publishers`/`subscribers` as totals dealt round-robin over the rooms.
    pub spread: bool,
    /// How long the run lasts from the first join.
    #[serde(deserialize_with = "duration_from_str")]
    pub duration: Duration,
    /// Publishers send video.
    pub video: bool,
    /// Publishers send audio.
    pub audio: bool,
    /// Video goes out as three simulcast layers q/h/f (else one layer at the last bitrate).
    pub simulcast: bool,
    /// The quality every receiver asks for.
    pub quality: Quality,
    /// Bitrate of each layer q, h, f in kbit/s.
    pub video_kbps: [u32; 3],
    /// Video frames per second.
    pub fps: u32,
    /// Time between periodic keyframes.
    #[serde(deserialize_with = "duration_from_str")]
    pub keyframe_interval: Duration,
    /// Data channel messages each publisher sends per second.
    pub data_per_sec: f64,
    /// Joins per second while ramping up.
    pub ramp: f64,
    /// Malformed and forged datagrams each participant sends per second from its own
    /// media socket to the server, as a broken or hostile client would (0: none).
    pub garbage_per_sec: f64,
    /// Seed of the media size and level generators.
    pub seed: u64,
    /// Room names are this prefix plus the room number.
    pub room_prefix: String,
    /// Secret of the server's join tokens: each participant signs its own (HS256), receive-only
    /// participants without the publish grant.
    pub token_secret: Option<String>,
    /// The LiveKit API key that signs join tokens, with `token_secret` as its secret
    /// (default: `livekit-server --dev`'s `devkey` and `secret`).
    pub api_key: Option<String>,
    /// Fail the run when frame loss exceeds this fraction.
    pub max_loss: Option<f64>,
    /// Fail the run when p99 one-way latency exceeds this many milliseconds.
    pub max_p99_latency_ms: Option<f64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            target: Target::Sfu,
            url: "ws://127.0.0.1:8080/ws".to_owned(),
            media_ip: None,
            rooms: 1,
            publishers: 2,
            subscribers: 0,
            spread: false,
            duration: Duration::from_secs(30),
            video: true,
            audio: true,
            simulcast: true,
            quality: Quality::Auto,
            video_kbps: [150, 500, 1500],
            fps: 30,
            keyframe_interval: Duration::from_secs(3),
            data_per_sec: 0.0,
            ramp: 10.0,
            garbage_per_sec: 0.0,
            seed: 1,
            room_prefix: "load".to_owned(),
            token_secret: None,
            api_key: None,
            max_loss: None,
            max_p99_latency_ms: None,
        }
    }
}

/// The server under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// This SFU, through `signaling/PROTOCOL.md`: one peer connection per participant.
    Sfu,
    /// Janus' VideoRoom plugin through the Janus WebSocket API: per participant one
    /// publisher and one (multistream) subscriber peer connection.
    Janus,
    /// LiveKit through its protobuf signaling at `/rtc`: per participant one publisher and
    /// one subscriber peer connection.
    #[serde(rename = "livekit")]
    #[value(name = "livekit")]
    LiveKit,
}

/// Why a scenario cannot run.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("invalid scenario {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// One participant of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    /// Index over the whole run.
    pub index: u32,
    /// Room name.
    pub room: String,
    /// Publishes media (and receives), or only receives.
    pub publishes: bool,
}

impl Scenario {
    /// Read a TOML scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Refuse values no run can use.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_owned()));
        if self.rooms == 0 {
            return bad("rooms must be at least 1");
        }
        if self.publishers + self.subscribers == 0 {
            return bad("there must be at least one publisher or subscriber");
        }
        if !(self.video || self.audio) && self.data_per_sec <= 0.0 && self.publishers > 0 {
            return bad("publishers must send video, audio or data");
        }
        if self.fps == 0 || self.fps > 120 {
            return bad("fps must be within 1..=120");
        }
        if self.ramp.is_nan() || self.ramp <= 0.0 {
            return bad("ramp must be above 0 joins per second");
        }
        if !(0.0..=10_000.0).contains(&self.garbage_per_sec) {
            return bad("garbage_per_sec must be within 0..=10000");
        }
        if self.duration.is_zero() {
            return bad("duration must be above 0");
        }
        if !self.url.starts_with("ws://") {
            return bad("url must be a ws:// URL");
        }
        if self.target == Target::Janus {
            if self.data_per_sec > 0.0 {
                return bad("the janus target does not send data channel messages");
            }
            if self.token_secret.is_some() {
                return bad("the janus target does not sign join tokens");
            }
            if self.garbage_per_sec > 0.0 {
                return bad("the janus target does not send malformed datagrams");
            }
        }
        if self.target == Target::LiveKit {
            if self.data_per_sec > 0.0 {
                return bad("the livekit target does not send data channel messages");
            }
            if self.garbage_per_sec > 0.0 {
                return bad("the livekit target does not send malformed datagrams");
            }
        } else if self.api_key.is_some() {
            return bad("api_key is for the livekit target");
        }
        Ok(())
    }

    /// Seed of the media sizes and levels participant `index` publishes.
    pub fn media_seed(&self, index: u32) -> u64 {
        self.seed ^ u64::from(index) << 20
    }

    /// Every participant, in join order: round-robin over rooms, publishers first.
    pub fn peers(&self) -> Vec<PeerPlan> {
        let room = |r: u32| format!("{}-{}", self.room_prefix, r);
        let mut out = Vec::new();
        let push = |room: String, publishes: bool, out: &mut Vec<PeerPlan>| {
            let index = u32::try_from(out.len()).unwrap_or(u32::MAX);
            out.push(PeerPlan {
                index,
                room,
                publishes,
            });
        };
        if self.spread {
            for i in 0..self.publishers {
                push(room(i % self.rooms), true, &mut out);
            }
            for i in 0..self.subscribers {
                push(room(i % self.rooms), false, &mut out);
            }
        } else {
            for r in 0..self.rooms {
                for _ in 0..self.publishers {
                    push(room(r), true, &mut out);
                }
                for _ in 0..self.subscribers {
                    push(room(r), false, &mut out);
                }
            }
        }
        out
    }

    /// The HTTP base URL of the server, derived from the WebSocket URL.
    pub fn http_base(&self) -> String {
        let rest = self.url.trim_start_matches("ws://");
        let host = rest.split('/').next().unwrap_or(rest);
        format!("http://{host}")
    }
}

/// Parse `500ms`, `30s`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (use e.g. 500ms, 30s, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Parse `1%` or a plain fraction like `0.01`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("invalid fraction {text:?} (use e.g. 1% or 0.01)"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text:?} is not between 0% and 100%"));
    }
    Ok(value)
}

/// Parse `low`, `medium`, `high` or `auto`.
pub fn parse_quality(text: &str) -> Result<Quality, String> {
    match text {
        "low" => Ok(Quality::Low),
        "medium" => Ok(Quality::Medium),
        "high" => Ok(Quality::High),
        "auto" => Ok(Quality::Auto),
        other => Err(format!(
            "invalid quality {other:?} (low, medium, high or auto)"
        )),
    }
}

fn duration_from_str<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_fractions() {
        // Requirement: flags and files accept the forms the README shows.
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_fraction("1%"), Ok(0.01));
        assert_eq!(parse_fraction("0.05"), Ok(0.05));
        assert!(parse_fraction("150%").is_err());
        assert_eq!(parse_quality("medium"), Ok(Quality::Medium));
        assert!(parse_quality("best").is_err());
    }

    #[test]
    fn a_toml_scenario_overrides_the_defaults() {
        // Requirement: a scenario file describes the same run as the flags.
        let s: Scenario = toml::from_str(
            "rooms = 4\npublishers = 3\nsubscribers = 8\nduration = \"60s\"\nquality = \"low\"\nvideo_kbps = [100, 300, 900]\nmax_loss = 0.01\n",
        )
        .expect("valid scenario");
        assert_eq!((s.rooms, s.publishers, s.subscribers), (4, 3, 8));
        assert_eq!(s.duration, Duration::from_secs(60));
        assert_eq!(s.quality, Quality::Low);
        assert_eq!(s.video_kbps, [100, 300, 900]);
        assert_eq!(s.max_loss, Some(0.01));
        assert!(s.audio && s.simulcast);
        assert!(
            toml::from_str::<Scenario>("romms = 4").is_err(),
            "typos are refused"
        );
    }

    #[test]
    fn peers_are_dealt_per_room_or_spread() {
        // Requirement: per-room counts repeat in every room; spread counts are totals.
        let per_room = Scenario {
            rooms: 2,
            publishers: 2,
            subscribers: 1,
            ..Scenario::default()
        };
        let rooms: Vec<(String, bool)> = per_room
            .peers()
            .into_iter()
            .map(|p| (p.room, p.publishes))
            .collect();
        let want = [
            ("load-0", true),
            ("load-0", true),
            ("load-0", false),
            ("load-1", true),
            ("load-1", true),
            ("load-1", false),
        ];
        assert_eq!(rooms, want.map(|(r, p)| (r.to_owned(), p)).to_vec());
        let spread = Scenario {
            spread: true,
            ..per_room
        };
        let rooms: Vec<String> = spread.peers().into_iter().map(|p| p.room).collect();
        assert_eq!(rooms, ["load-0", "load-1", "load-0"]);
    }

    #[test]
    fn validation_refuses_runs_that_cannot_work() {
        // Requirement: a bad scenario fails with a message before anything connects.
        let cases = [
            Scenario {
                rooms: 0,
                ..Scenario::default()
            },
            Scenario {
                publishers: 0,
                subscribers: 0,
                ..Scenario::default()
            },
            Scenario {
                fps: 0,
                ..Scenario::default()
            },
            Scenario {
                ramp: 0.0,
                ..Scenario::default()
            },
            Scenario {
                url: "http://x".to_owned(),
                ..Scenario::default()
            },
        ];
        for s in cases {
            assert!(s.validate().is_err(), "{s:?}");
        }
        assert!(Scenario::default().validate().is_ok());
        assert_eq!(Scenario::default().http_base(), "http://127.0.0.1:8080");
    }

    #[test]
    fn the_janus_target_refuses_what_it_cannot_do() {
        // Requirement: a scenario runs against Janus only with what the Janus adapter sends.
        let janus = Scenario {
            target: Target::Janus,
            ..Scenario::default()
        };
        assert!(janus.validate().is_ok());
        let refused = [
            Scenario {
                data_per_sec: 1.0,
                ..janus.clone()
            },
            Scenario {
                token_secret: Some("s".to_owned()),
                ..janus.clone()
            },
            Scenario {
                garbage_per_sec: 5.0,
                ..janus.clone()
            },
        ];
        for s in refused {
            assert!(s.validate().is_err(), "{s:?}");
        }
        let from_file: Scenario =
            toml::from_str("target = \"janus\"\nmedia_ip = \"10.77.0.1\"\n").expect("valid");
        assert_eq!(from_file.target, Target::Janus);
        assert_eq!(from_file.media_ip, Some([10, 77, 0, 1].into()));
    }

    #[test]
    fn the_livekit_target_refuses_what_it_cannot_do() {
        // Requirement: a scenario runs against LiveKit only with what its adapter sends, and
        // an API key means nothing to the other targets.
        let livekit = Scenario {
            target: Target::LiveKit,
            api_key: Some("devkey".to_owned()),
            token_secret: Some("secret".to_owned()),
            ..Scenario::default()
        };
        assert!(livekit.validate().is_ok());
        let refused = [
            Scenario {
                data_per_sec: 1.0,
                ..livekit.clone()
            },
            Scenario {
                garbage_per_sec: 5.0,
                ..livekit.clone()
            },
            Scenario {
                target: Target::Sfu,
                ..livekit.clone()
            },
        ];
        for s in refused {
            assert!(s.validate().is_err(), "{s:?}");
        }
        let from_file: Scenario = toml::from_str("target = \"livekit\"\n").expect("valid");
        assert_eq!(from_file.target, Target::LiveKit);
    }
}
