//! One synthetic participant: a real WebRTC peer (str0m) that joins a room over the
//! signaling WebSocket, publishes synthetic media and measures what it receives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use signaling::token::{self, Claims, Grants};
use signaling::{ClientMessage, MediaKind as TrackKind, Quality, ServerMessage, Track};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{JOIN_TIMEOUT, Signaling, media_ip};
use crate::endpoint::{Endpoint, RIDS};
use crate::garbage::Garbage;
use crate::janus;
use crate::livekit;
use crate::peer_result::PeerResult;
use crate::progress::{Progress, add};
use crate::scenario::{PeerPlan, Scenario, Target};

/// Join tokens stay valid this much longer than the run.
const TOKEN_MARGIN_SECS: u64 = 300;
/// Run one participant until `stop_at`; never fails, errors go in the result.
pub async fn run(
    plan: PeerPlan,
    scenario: Arc<Scenario>,
    progress: Arc<Progress>,
    stop_at: Instant,
) -> PeerResult {
    let mut result = PeerResult {
        plan: plan.clone(),
        participant_id: None,
        join_time: None,
        published: Vec::new(),
        received: HashMap::new(),
        bytes_sent: 0,
        data_sent: 0,
        data_received: 0,
        garbage_sent: 0,
        error_count: 0,
        errors: Vec::new(),
        ended_early: false,
        started: Instant::now(),
    };
    let ran = match scenario.target {
        Target::Sfu => Peer::run(&plan, &scenario, &progress, stop_at, &mut result).await,
        Target::Janus => janus::run(&plan, &scenario, &progress, stop_at, &mut result).await,
        Target::LiveKit => livekit::run(&plan, &scenario, &progress, stop_at, &mut result).await,
    };
    if let Err(e) = ran {
        result.error(&progress, format!("participant {}: {e}", plan.index));
        result.ended_early = true;
    }
    add(&progress.finished, 1);
    result
}

/// The state of one running participant.
struct Peer<'a> {
    scenario: &'a Scenario,
    progress: &'a Progress,
    endpoint: Endpoint<'a>,
    offered_media: bool,
    subscribed: HashSet<String>,
    outgoing: Vec<ClientMessage>,
}

impl<'a> Peer<'a> {
    async fn run(
        plan: &PeerPlan,
        scenario: &'a Scenario,
        progress: &'a Progress,
        stop_at: Instant,
        result: &mut PeerResult,
    ) -> anyhow::Result<()> {
        let join = ClientMessage::Join {
            room: plan.room.clone(),
            name: format!("load-{}", plan.index),
            token: scenario
                .token_secret
                .as_ref()
                .map(|secret| join_token(plan, scenario, secret)),
            auto_subscribe: true,
        };
        let (ws, first_reply) = join_following_redirects(&scenario.url, &join).await?;
        let media_ip = media_ip(scenario, &ws)?;
        let garbage = (scenario.garbage_per_sec > 0.0)
            .then(|| Garbage::new(scenario.seed ^ u64::from(plan.index)));
        let endpoint = Endpoint::new(scenario, progress, media_ip, garbage)?;
        let (mut ws_tx, mut ws_rx) = ws.split();

        let mut peer = Peer {
            scenario,
            progress,
            endpoint,
            offered_media: false,
            subscribed: HashSet::new(),
            outgoing: Vec::new(),
        };
        peer.on_signal(&first_reply, result)?;
        let mut buf = vec![0u8; 2000];
        let join_deadline = result.started + JOIN_TIMEOUT;
        loop {
            let wake = peer.endpoint.drain(result)?;
            for message in peer.outgoing.drain(..) {
                ws_tx.send(Message::text(to_json(&message))).await?;
            }
            let now = Instant::now();
            if now >= stop_at {
                let _ = ws_tx
                    .send(Message::text(to_json(&ClientMessage::Leave)))
                    .await;
                let _ = ws_tx.close().await;
                return Ok(());
            }
            if !peer.endpoint.connected && now >= join_deadline {
                anyhow::bail!("not connected after {} s", JOIN_TIMEOUT.as_secs());
            }
            let wake = wake
                .min(stop_at)
                .min(peer.endpoint.next_media_at())
                .max(now);
            tokio::select! {
                message = ws_rx.next() => match message {
                    Some(Ok(Message::Text(text))) => peer.on_signal(&text, result)?,
                    Some(Ok(Message::Close(_))) | None => anyhow::bail!("the server closed the signaling connection"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => anyhow::bail!("signaling connection failed: {e}"),
                },
                received = peer.endpoint.recv(&mut buf) => {
                    let (n, source) = received?;
                    peer.endpoint.receive(&buf[..n], source, result)?;
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    peer.endpoint.on_timeout(Instant::now(), result)?;
                }
            }
        }
    }

    fn on_signal(&mut self, text: &str, result: &mut PeerResult) -> anyhow::Result<()> {
        let message: ServerMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => return Ok(()), // A message type added to the protocol later: not ours to judge.
        };
        match message {
            ServerMessage::Joined {
                participant_id,
                participants,
                ..
            } => {
                result.participant_id = Some(participant_id);
                add(&self.progress.joined, 1);
                for track in participants.into_iter().flat_map(|p| p.tracks) {
                    self.track_published(track);
                }
                self.offer(result)?;
            }
            ServerMessage::ParticipantJoined { participant } => {
                for track in participant.tracks {
                    self.track_published(track);
                }
            }
            ServerMessage::TrackPublished { track } => self.track_published(track),
            ServerMessage::Offer { sdp, tracks } => {
                let reoffer = self.endpoint.pending.take().is_some();
                let offer = SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.endpoint.rtc.sdp_api().accept_offer(offer)?;
                for (mid, track_id) in tracks {
                    self.endpoint
                        .inbound
                        .insert(Mid::from(mid.as_str()), track_id);
                }
                self.outgoing.push(ClientMessage::Answer {
                    sdp: answer.to_sdp_string(),
                });
                if reoffer {
                    self.offered_media = false;
                    self.offer(result)?;
                }
            }
            ServerMessage::Answer { sdp, tracks } => {
                if let Some(pending) = self.endpoint.pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&sdp)?;
                    self.endpoint.rtc.sdp_api().accept_answer(pending, answer)?;
                    result.published = tracks.into_values().collect();
                }
            }
            ServerMessage::Layers { track_id: _, rids } => {
                if let Some(video) = self.endpoint.video.as_mut() {
                    let single = video.active.len() == 1;
                    for (i, active) in video.active.iter_mut().enumerate() {
                        *active = single || rids.iter().any(|r| r == RIDS[i]);
                    }
                }
            }
            ServerMessage::Error { code, message, .. } => {
                result.error(self.progress, format!("server error {code:?}: {message}"));
            }
            ServerMessage::Leave { reason } => {
                anyhow::bail!("the server ended the session ({reason:?})");
            }
            _ => {}
        }
        Ok(())
    }

    fn track_published(&mut self, track: Track) {
        let wants_quality =
            self.scenario.quality != Quality::Auto && track.kind == TrackKind::Video;
        if wants_quality && self.subscribed.insert(track.id.clone()) {
            self.outgoing.push(ClientMessage::Subscribe {
                track_id: track.id.clone(),
                quality: self.scenario.quality,
                paused: false,
            });
        }
        self.endpoint.tracks.insert(track.id.clone(), track);
    }

    /// Offer what this participant publishes, and the data channel when it sends data or
    /// has nothing else to offer (then its own offer opens the connection at once, instead
    /// of the server's offer two seconds after the join).
    fn offer(&mut self, result: &PeerResult) -> anyhow::Result<()> {
        if self.offered_media {
            return Ok(());
        }
        let publish = result
            .plan
            .publishes
            .then(|| self.scenario.media_seed(result.plan.index));
        let channel = self.scenario.data_per_sec > 0.0 || publish.is_none();
        if let Some(offer) = self.endpoint.offer(publish, channel) {
            self.offered_media = true;
            self.outgoing.push(ClientMessage::Offer {
                sdp: offer.to_sdp_string(),
            });
        }
        Ok(())
    }
}

/// Redirects one join follows to the node that owns its room (multi-node servers).
const MAX_REDIRECTS: usize = 3;

/// Connect and send `join`, following `redirect` replies to the room's node; returns the
/// connection and the first other reply (normally `joined`).
async fn join_following_redirects(
    url: &str,
    join: &ClientMessage,
) -> anyhow::Result<(Signaling, String)> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let (mut ws, _) = tokio::time::timeout(JOIN_TIMEOUT, connect_async(url.as_str()))
            .await
            .map_err(|_| anyhow::anyhow!("WebSocket connect to {url} timed out"))??;
        ws.send(Message::text(to_json(join))).await?;
        let reply = loop {
            match tokio::time::timeout(JOIN_TIMEOUT, ws.next()).await {
                Err(_) => anyhow::bail!("no reply to join from {url}"),
                Ok(Some(Ok(Message::Text(text)))) => break text.to_string(),
                Ok(Some(Ok(Message::Close(_))) | None) => {
                    anyhow::bail!("{url} closed the connection before replying to join")
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => anyhow::bail!("signaling connection to {url} failed: {e}"),
            }
        };
        match serde_json::from_str::<ServerMessage>(&reply) {
            // Only to another signaling WebSocket: the join (and its token) goes there.
            Ok(ServerMessage::Redirect { url: next, .. })
                if next.starts_with("ws://") || next.starts_with("wss://") =>
            {
                url = next
            }
            Ok(ServerMessage::Redirect { url: next, .. }) => {
                anyhow::bail!("refused a redirect to {next}: not a ws:// or wss:// URL")
            }
            _ => return Ok((ws, reply)),
        }
    }
    anyhow::bail!("more than {MAX_REDIRECTS} redirects for one join")
}

/// A join token for `plan`, valid for the run plus a margin.
fn join_token(plan: &PeerPlan, scenario: &Scenario, secret: &str) -> String {
    let claims = Claims {
        sub: format!("load-{}", plan.index),
        name: None,
        room: plan.room.clone(),
        exp: token::unix_now() + scenario.duration.as_secs() + TOKEN_MARGIN_SECS,
        nbf: None,
        grants: Grants {
            can_publish: plan.publishes,
            ..Grants::default()
        },
    };
    token::sign(&claims, secret.as_bytes())
}

fn to_json(message: &ClientMessage) -> String {
    serde_json::to_string(message).unwrap_or_default()
}
