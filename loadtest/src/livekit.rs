//! The LiveKit target: the same synthetic participant, speaking LiveKit's signaling
//! ([`crate::livekit_signal`]) so one scenario loads this SFU, Janus and LiveKit alike.
//! LiveKit gives each participant a publisher peer connection (we offer, after announcing
//! each track with an `AddTrackRequest`) and a subscriber peer connection (LiveKit offers,
//! and subscribes us to every track of the room).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use livekit_protocol::{
    AddTrackRequest, SessionDescription, SignalTarget, TrackSource, TrackType, UpdateTrackSettings,
    VideoLayer, VideoQuality, signal_request, signal_response,
};
use signaling::{MediaKind as TrackKind, Quality, Track};
use str0m::Candidate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;

use crate::connection::{JOIN_TIMEOUT, media_ip};
use crate::endpoint::{Endpoint, RIDS};
use crate::livekit_signal::{DEV_API_KEY, DEV_API_SECRET, JoinGrant, LiveKitSignal, join_token};
use crate::peer_result::PeerResult;
use crate::progress::{Progress, add};
use crate::scenario::{PeerPlan, Scenario};
use crate::two_connections::TwoConnections;

/// Join tokens stay valid this much longer than the run.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// The sizes the publisher announces for its layers q, h, f (LiveKit uses them to name the
/// layers; the synthetic frames have no size).
const LAYER_SIZES: [(u32, u32); 3] = [(320, 180), (640, 360), (1280, 720)];

/// One LiveKit participant: its two peer connections and what the room publishes.
struct LiveKitPeer<'a> {
    scenario: &'a Scenario,
    progress: &'a Progress,
    /// Its participant sid (`PA_…`).
    sid: String,
    publisher: Endpoint<'a>,
    subscriber: Endpoint<'a>,
    /// The publisher of each track the room announced, by track sid.
    announced: HashMap<String, String>,
    /// Once it publishes: the time by which the publisher connection must be up.
    connect_deadline: Option<Instant>,
    outgoing: Vec<signal_request::Message>,
}

/// Run one participant against LiveKit until `stop_at`.
pub async fn run(
    plan: &PeerPlan,
    scenario: &Scenario,
    progress: &Progress,
    stop_at: Instant,
    result: &mut PeerResult,
) -> anyhow::Result<()> {
    let identity = format!("load-{}", plan.index);
    let token = join_token(&JoinGrant {
        api_key: scenario.api_key.as_deref().unwrap_or(DEV_API_KEY),
        api_secret: scenario.token_secret.as_deref().unwrap_or(DEV_API_SECRET),
        identity: &identity,
        room: &plan.room,
        publishes: plan.publishes,
        ttl: scenario.duration + TOKEN_MARGIN,
    })?;
    let mut signal = LiveKitSignal::connect(&scenario.url, &token).await?;
    let ip = media_ip(scenario, &signal.ws)?;
    let join = tokio::time::timeout(JOIN_TIMEOUT, signal.next())
        .await
        .map_err(|_| anyhow::anyhow!("LiveKit sent no join response"))??;
    let signal_response::Message::Join(join) = join else {
        anyhow::bail!("LiveKit answered the join with {join:?}");
    };
    let sid = join.participant.map(|p| p.sid).unwrap_or_default();
    result.participant_id = Some(sid.clone());
    add(&progress.joined, 1);
    let mut peer = LiveKitPeer {
        scenario,
        progress,
        sid,
        publisher: Endpoint::new(scenario, progress, ip, None)?,
        subscriber: Endpoint::new(scenario, progress, ip, None)?,
        announced: HashMap::new(),
        connect_deadline: None,
        outgoing: Vec::new(),
    };
    peer.note_participants(&join.other_participants);
    if plan.publishes {
        peer.publish(plan.index);
    }
    let mut connections = TwoConnections::default();
    let subscriber_deadline = result.started + JOIN_TIMEOUT;
    loop {
        let wake = TwoConnections::drain(&mut peer.publisher, &mut peer.subscriber, result)?;
        for message in peer.outgoing.drain(..) {
            signal.send(message).await?;
        }
        let now = Instant::now();
        if now >= stop_at {
            signal.leave().await;
            return Ok(());
        }
        let publisher_late = peer.connect_deadline.is_some_and(|at| now >= at);
        let subscriber_late = now >= subscriber_deadline && !peer.subscriber.connected;
        if (publisher_late && !peer.publisher.connected) || subscriber_late {
            anyhow::bail!("not connected after {} s", JOIN_TIMEOUT.as_secs());
        }
        let wake = wake.min(stop_at).min(subscriber_deadline.max(now));
        if let Some(message) = connections
            .serve(
                &mut peer.publisher,
                &mut peer.subscriber,
                signal.next(),
                wake,
                result,
            )
            .await?
        {
            peer.on_message(message, result)?;
        }
    }
}

impl LiveKitPeer<'_> {
    /// Announce the scenario's tracks, then offer them on the publisher connection.
    fn publish(&mut self, index: u32) {
        let seed = self.scenario.media_seed(index);
        let Some(offer) = self.publisher.offer(Some(seed), false) else {
            return;
        };
        for line in offer.media_lines.iter() {
            let Some(msid) = line.msid() else {
                continue;
            };
            let request = if line.typ.to_string() == "audio" {
                audio_track(msid.track_id)
            } else {
                video_track(msid.track_id, self.scenario)
            };
            self.outgoing
                .push(signal_request::Message::AddTrack(request));
        }
        self.outgoing
            .push(signal_request::Message::Offer(SessionDescription {
                r#type: "offer".to_owned(),
                sdp: offer.to_sdp_string(),
                id: 1,
                mid_to_track_id: HashMap::new(),
            }));
        self.connect_deadline
            .get_or_insert_with(|| Instant::now() + JOIN_TIMEOUT);
    }

    /// Remember the tracks of participants other than this one.
    fn note_participants(&mut self, participants: &[livekit_protocol::ParticipantInfo]) {
        for participant in participants.iter().filter(|p| p.sid != self.sid) {
            for track in &participant.tracks {
                self.announced
                    .insert(track.sid.clone(), participant.sid.clone());
            }
        }
    }

    fn on_message(
        &mut self,
        message: signal_response::Message,
        result: &mut PeerResult,
    ) -> anyhow::Result<()> {
        match message {
            signal_response::Message::Answer(answer) => {
                if let Some(pending) = self.publisher.pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&answer.sdp)?;
                    self.publisher
                        .rtc
                        .sdp_api()
                        .accept_answer(pending, answer)?;
                }
            }
            signal_response::Message::Offer(offer) => self.on_subscriber_offer(offer)?,
            signal_response::Message::Trickle(trickle) => {
                let endpoint = if trickle.target == SignalTarget::Subscriber as i32 {
                    &mut self.subscriber
                } else {
                    &mut self.publisher
                };
                if let Some(candidate) = remote_candidate(&trickle.candidate_init) {
                    endpoint.rtc.add_remote_candidate(candidate);
                }
            }
            signal_response::Message::TrackPublished(published) => {
                if let Some(track) = published.track {
                    result.published.push(track.sid);
                }
            }
            signal_response::Message::Update(update) => {
                self.note_participants(&update.participants)
            }
            signal_response::Message::Leave(leave) => {
                anyhow::bail!("LiveKit asked us to leave (reason {})", leave.reason)
            }
            signal_response::Message::RequestResponse(response) if response.reason != 0 => {
                result.error(
                    self.progress,
                    format!("LiveKit refused a request: {}", response.message),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// LiveKit's offer on the subscriber connection: learn which track each m-line carries,
    /// answer, and ask for the scenario's layer.
    fn on_subscriber_offer(&mut self, offer: SessionDescription) -> anyhow::Result<()> {
        let sdp = SdpOffer::from_sdp_string(&offer.sdp)?;
        let mut video = Vec::new();
        for line in sdp.media_lines.iter() {
            let kind = match line.typ.to_string().as_str() {
                "audio" => TrackKind::Audio,
                "video" => TrackKind::Video,
                _ => continue,
            };
            let mid = line.mid();
            let msid = line.msid();
            let Some(track_id) = offer
                .mid_to_track_id
                .get(&mid.to_string())
                .cloned()
                .or_else(|| msid.as_ref().map(|m| m.track_id.clone()))
            else {
                continue;
            };
            // The msid stream id is `PA_…|TR_…`: the publisher, should no update have named it.
            let publisher = self.announced.get(&track_id).cloned().unwrap_or_else(|| {
                let stream = msid.map(|m| m.stream_id).unwrap_or_default();
                stream.split('|').next().unwrap_or_default().to_owned()
            });
            if kind == TrackKind::Video {
                video.push(track_id.clone());
            }
            self.subscriber
                .inbound
                .insert(Mid::from(&*mid), track_id.clone());
            self.subscriber.tracks.insert(
                track_id.clone(),
                Track {
                    id: track_id,
                    participant_id: publisher,
                    kind,
                    muted: false,
                    simulcast: Vec::new(),
                    codec: String::new(),
                },
            );
        }
        let answer = self.subscriber.rtc.sdp_api().accept_offer(sdp)?;
        self.outgoing
            .push(signal_request::Message::Answer(SessionDescription {
                r#type: "answer".to_owned(),
                sdp: answer.to_sdp_string(),
                id: offer.id,
                mid_to_track_id: HashMap::new(),
            }));
        let simulcast = self.scenario.simulcast && !video.is_empty();
        if let Some(quality) = video_quality(self.scenario.quality).filter(|_| simulcast) {
            self.outgoing
                .push(signal_request::Message::TrackSetting(UpdateTrackSettings {
                    track_sids: video,
                    quality: quality as i32,
                    ..UpdateTrackSettings::default()
                }));
        }
        Ok(())
    }
}

/// The announcement of our audio track, whose m-line names it `cid` in its msid.
fn audio_track(cid: String) -> AddTrackRequest {
    AddTrackRequest {
        name: "audio".to_owned(),
        cid,
        r#type: TrackType::Audio as i32,
        source: TrackSource::Microphone as i32,
        ..AddTrackRequest::default()
    }
}

/// The announcement of our video track: its simulcast layers (rids q, h, f), or one.
fn video_track(cid: String, scenario: &Scenario) -> AddTrackRequest {
    let layer = |index: usize, quality: VideoQuality, rid: &str| {
        let (width, height) = LAYER_SIZES[index];
        VideoLayer {
            quality: quality as i32,
            width,
            height,
            bitrate: scenario.video_kbps[index] * 1000,
            rid: rid.to_owned(),
            ..VideoLayer::default()
        }
    };
    let layers = if scenario.simulcast {
        let qualities = [VideoQuality::Low, VideoQuality::Medium, VideoQuality::High];
        (0..3).map(|i| layer(i, qualities[i], RIDS[i])).collect()
    } else {
        vec![layer(2, VideoQuality::High, "")]
    };
    let (width, height) = LAYER_SIZES[2];
    AddTrackRequest {
        name: "video".to_owned(),
        cid,
        r#type: TrackType::Video as i32,
        source: TrackSource::Camera as i32,
        width,
        height,
        layers,
        ..AddTrackRequest::default()
    }
}

/// The layer to ask LiveKit for; `None`: its own choice.
fn video_quality(quality: Quality) -> Option<VideoQuality> {
    match quality {
        Quality::Low => Some(VideoQuality::Low),
        Quality::Medium => Some(VideoQuality::Medium),
        Quality::High => Some(VideoQuality::High),
        Quality::Auto => None,
    }
}

/// The candidate in a trickled `RTCIceCandidateInit` (JSON), if it is one we can use.
fn remote_candidate(init: &str) -> Option<Candidate> {
    let init: serde_json::Value = serde_json::from_str(init).ok()?;
    Candidate::from_sdp_string(init["candidate"].as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_are_announced_with_the_layers_the_offer_sends() {
        // Requirement: LiveKit matches an m-line to its announcement by the msid track id,
        // and a simulcast track's layers by rid, lowest first.
        let simulcast = Scenario::default();
        let video = video_track("v1".into(), &simulcast);
        assert_eq!(video.cid, "v1");
        assert_eq!(video.r#type, TrackType::Video as i32);
        let rids: Vec<&str> = video.layers.iter().map(|l| l.rid.as_str()).collect();
        assert_eq!(rids, RIDS);
        assert_eq!(video.layers[2].bitrate, simulcast.video_kbps[2] * 1000);
        let single = Scenario {
            simulcast: false,
            ..Scenario::default()
        };
        assert_eq!(video_track("v2".into(), &single).layers.len(), 1);
        let audio = audio_track("a1".into());
        assert_eq!(
            (audio.cid.as_str(), audio.r#type),
            ("a1", TrackType::Audio as i32)
        );
        assert_eq!(video_quality(Quality::Medium), Some(VideoQuality::Medium));
        assert_eq!(video_quality(Quality::Auto), None);
    }

    #[test]
    fn trickled_candidates_are_read_from_their_json() {
        // Requirement: LiveKit trickles RTCIceCandidateInit JSON; what is no candidate is
        // ignored.
        let init = r#"{"candidate":"candidate:1 1 udp 2130706431 10.77.0.1 7882 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#;
        let candidate = remote_candidate(init).expect("a host candidate");
        assert_eq!(candidate.addr().to_string(), "10.77.0.1:7882");
        for bad in ["", "{}", r#"{"candidate":"nonsense"}"#] {
            assert!(remote_candidate(bad).is_none(), "{bad}");
        }
    }
}
