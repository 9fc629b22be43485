//! What operators can ask of a room: a snapshot of its state (admin API, dashboard,
//! per-room metrics), and kick / mute / close.

use std::time::Instant;

use serde::Serialize;
use sfu_core::ids::ParticipantId;
use signaling::{LeaveReason, MediaKind, ServerMessage};
use str0m::media::KeyframeRequestKind;
use tokio::sync::oneshot;

use super::Room;
use super::path_view::{MediaPathView, StreamView};
use super::producer::MuteChange;

/// An operator's request to a room task.
#[derive(Debug)]
pub enum AdminRequest {
    /// Describe the room.
    Snapshot(oneshot::Sender<RoomSnapshot>),
    /// Remove a participant (told `leave` with reason `kicked`); answers whether it was there.
    Kick {
        /// Its participant id.
        participant_id: String,
        /// Found or not.
        reply: oneshot::Sender<bool>,
    },
    /// Mute or unmute a track for everyone; answers whether it exists.
    Mute {
        /// The track id.
        track_id: String,
        /// Muted or not.
        muted: bool,
        /// Found or not.
        reply: oneshot::Sender<bool>,
    },
    /// Close the room: everyone is told `leave` with this reason (`room_closed` from an
    /// operator, `shutdown` when the server stops).
    Close {
        /// Told to every participant.
        reason: LeaveReason,
        /// Answered once everyone is queued for removal.
        reply: oneshot::Sender<()>,
    },
}

/// A room as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSnapshot {
    /// Room name.
    pub room: String,
    /// Seconds since the room opened.
    pub age_secs: f64,
    /// RTP packets forwarded to subscribers in this room.
    pub forwarded_packets: u64,
    /// RTP payload bytes forwarded in this room.
    pub forwarded_bytes: u64,
    /// Everyone in it.
    pub participants: Vec<ParticipantSnapshot>,
}

impl RoomSnapshot {
    /// Incoming tracks in the room.
    pub fn producers(&self) -> usize {
        self.participants.iter().map(|p| p.published.len()).sum()
    }

    /// Outgoing copies of tracks in the room.
    pub fn consumers(&self) -> usize {
        self.participants.iter().map(|p| p.consumers.len()).sum()
    }

    /// Sum of the bitrates arriving from publishers, bits per second.
    pub fn ingress_bps(&self) -> u64 {
        self.participants
            .iter()
            .flat_map(|p| &p.published)
            .flat_map(|t| &t.layers)
            .map(|l| l.bitrate_bps)
            .sum()
    }
}

/// One participant.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantSnapshot {
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Seconds since it joined.
    pub joined_secs: f64,
    /// Downlink bandwidth estimate, bits per second.
    pub bandwidth_estimate_bps: Option<u64>,
    /// Tracks it publishes.
    pub published: Vec<TrackSnapshot>,
    /// Tracks it receives.
    pub consumers: Vec<ConsumerSnapshot>,
    /// Its media path: state changes, candidate pair, RTT, loss.
    pub connection: MediaPathView,
}

/// One published track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackSnapshot {
    /// Track id.
    pub id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec name.
    pub codec: String,
    /// Muted by its publisher or by an operator.
    pub muted: bool,
    /// Muted by an operator.
    pub admin_muted: bool,
    /// Layers (one entry, rid `null`, when not simulcast).
    pub layers: Vec<LayerSnapshot>,
    /// How many participants receive it.
    pub subscribers: usize,
}

/// One layer of a published track.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSnapshot {
    /// Simulcast rid.
    pub rid: Option<String>,
    /// Packets arrived within the last second.
    pub active: bool,
    /// Measured bitrate, bits per second.
    pub bitrate_bps: u64,
}

/// One subscriber's copy of a track.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerSnapshot {
    /// Track id.
    pub track_id: String,
    /// Its publisher.
    pub publisher_id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Whether the track is simulcast (else `forwarded` only tells on or off).
    pub simulcast: bool,
    /// Negotiated and flowing.
    pub active: bool,
    /// Highest layer wanted (`null`: paused by the subscriber).
    pub wanted_layer: Option<u8>,
    /// Layer forwarded now (`off`, `low`, `medium`, `high`).
    pub forwarded: signaling::ForwardedQuality,
    /// The stream as the subscriber reports it: bitrate, loss, RTT, jitter, feedback.
    pub stream: StreamView,
}

impl Room {
    /// Carry out an operator's request.
    pub(super) fn admin(&mut self, request: AdminRequest) {
        match request {
            AdminRequest::Snapshot(reply) => {
                let _ = reply.send(self.snapshot(self.now));
            }
            AdminRequest::Kick {
                participant_id,
                reply,
            } => {
                let key = participant_id
                    .parse::<ParticipantId>()
                    .ok()
                    .filter(|id| self.participants.contains_key(id));
                if let Some(key) = key {
                    self.to_remove.push((key, Some(LeaveReason::Kicked)));
                    // Kept out until the token it joined with expires.
                    if let Some(identity) = self.participants.get(&key).and_then(|p| p.identity()) {
                        self.ctx.services.kicked().kick(
                            &self.id,
                            &identity.sub,
                            identity.expires,
                            signaling::token::unix_now(),
                        );
                    }
                }
                let _ = reply.send(key.is_some());
            }
            AdminRequest::Mute {
                track_id,
                muted,
                reply,
            } => {
                let _ = reply.send(self.admin_mute(&track_id, muted));
            }
            AdminRequest::Close { reason, reply } => {
                let keys: Vec<ParticipantId> = self.participants.keys().copied().collect();
                self.to_remove
                    .extend(keys.into_iter().map(|k| (k, Some(reason))));
                let _ = reply.send(());
            }
        }
    }

    fn admin_mute(&mut self, track_id: &str, muted: bool) -> bool {
        let Some(pk) = self.producer_by_track(track_id) else {
            return false;
        };
        let Some(producer) = self.producers.get_mut(&pk) else {
            return false;
        };
        let change = producer.set_admin_muted(muted);
        let video = producer.kind() == MediaKind::Video;
        let layers = producer.layers();
        if let MuteChange::Visible(now) = change {
            self.broadcast_all(&ServerMessage::TrackMuted {
                track_id: track_id.to_owned(),
                muted: now,
            });
        }
        if change != MuteChange::Unchanged && video && !muted {
            // Subscribers' decoders missed frames while it was held back.
            for layer in layers {
                self.request_keyframe(pk, layer, KeyframeRequestKind::Fir);
            }
        }
        true
    }

    fn snapshot(&self, now: Instant) -> RoomSnapshot {
        let participants = self
            .participants
            .values()
            .map(|p| {
                let published = p
                    .published()
                    .values()
                    .filter_map(|pk| self.producers.get(pk))
                    .map(|producer| {
                        let active = producer.active_layers(now);
                        let bitrates = producer.bitrates();
                        TrackSnapshot {
                            id: producer.id().to_string(),
                            kind: producer.kind(),
                            codec: producer.codec_name().to_owned(),
                            muted: producer.is_muted(),
                            admin_muted: producer.is_admin_muted(),
                            layers: producer
                                .layers()
                                .into_iter()
                                .map(|layer| LayerSnapshot {
                                    rid: producer.rid_of(layer).map(str::to_owned),
                                    active: active.contains(layer),
                                    bitrate_bps: bitrates
                                        .get(usize::from(layer))
                                        .copied()
                                        .unwrap_or(0),
                                })
                                .collect(),
                            subscribers: producer.subscribers().len(),
                        }
                    })
                    .collect();
                let consumers = p
                    .consumers()
                    .iter()
                    .map(|(pk, c)| ConsumerSnapshot {
                        track_id: c.track_id().to_string(),
                        publisher_id: c.publisher_id().to_string(),
                        kind: c.kind(),
                        simulcast: self.producers.get(pk).is_some_and(|pr| pr.is_simulcast()),
                        active: c.active_mid().is_some(),
                        wanted_layer: c.max_layer(),
                        forwarded: c.forwarded_quality(),
                        stream: c.egress().clone(),
                    })
                    .collect();
                ParticipantSnapshot {
                    id: p.id().to_string(),
                    name: p.name().to_owned(),
                    connected: p.presence().is_connected(),
                    joined_secs: p.presence().since_join(now).as_secs_f64(),
                    bandwidth_estimate_bps: p.bandwidth_estimate(),
                    published,
                    consumers,
                    connection: p.media_path().clone(),
                }
            })
            .collect();
        RoomSnapshot {
            room: self.id.to_string(),
            age_secs: now.saturating_duration_since(self.opened_at).as_secs_f64(),
            forwarded_packets: self.forwarded_packets,
            forwarded_bytes: self.forwarded_bytes,
            participants,
        }
    }
}
