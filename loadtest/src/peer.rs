//! One synthetic participant: a real WebRTC peer (str0m) that joins a room over the
//! signaling WebSocket, publishes synthetic media and measures what it receives.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use signaling::token::{self, Claims, Grants};
use signaling::{ClientMessage, MediaKind as TrackKind, Quality, ServerMessage, Track};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, connect_async};

use crate::garbage::Garbage;
use crate::media::{AUDIO_INTERVAL, AudioPlan, VideoPlan};
use crate::payload::{self, FrameHeader};
use crate::progress::{Progress, add};
use crate::scenario::{PeerPlan, Scenario};
use crate::track_stats::TrackStats;

/// Simulcast rids, lowest first, as the protocol names them.
const RIDS: [&str; 3] = ["q", "h", "f"];
/// Errors kept per participant (the count goes on).
const MAX_ERRORS_KEPT: usize = 10;
/// Packets one received video frame may span: a full-size keyframe at the default bitrates
/// needs about 30 (str0m's default), so there is room for higher bitrates.
const REORDERING_PACKETS: usize = 300;
/// How many already-due timeouts one drain handles before serving the sockets again.
const DUE_TIMEOUTS_PER_DRAIN: usize = 256;
/// Kernel receive buffer asked for on each participant's socket.
const PEER_SOCKET_BUFFER_BYTES: usize = 1024 * 1024;
/// Join tokens stay valid this much longer than the run.
const TOKEN_MARGIN_SECS: u64 = 300;
/// Give up joining after this long.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What one participant did and measured.
#[derive(Debug)]
pub struct PeerResult {
    /// The plan it ran.
    pub plan: PeerPlan,
    /// Its participant id, once joined.
    pub participant_id: Option<String>,
    /// From opening the WebSocket to ICE+DTLS connected.
    pub join_time: Option<Duration>,
    /// Track ids it published.
    pub published: Vec<String>,
    /// Per received track id: its kind and statistics.
    pub received: HashMap<String, (TrackKind, TrackStats)>,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Data channel messages sent and received.
    pub data_sent: u64,
    /// Data channel messages received.
    pub data_received: u64,
    /// Malformed and forged datagrams sent to the server.
    pub garbage_sent: u64,
    /// How many errors happened.
    pub error_count: u64,
    /// The first few errors, for the report.
    pub errors: Vec<String>,
    /// It stopped before the end of the run (connection lost, server gone, refused).
    pub ended_early: bool,
}

impl PeerResult {
    fn error(&mut self, progress: &Progress, message: String) {
        self.error_count += 1;
        add(&progress.errors, 1);
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(message);
        }
    }
}

/// The video track this participant publishes.
struct VideoOut {
    mid: Mid,
    plan: VideoPlan,
    rids: Vec<Option<Rid>>,
    active: Vec<bool>,
    next_at: Instant,
}

/// The audio track this participant publishes.
struct AudioOut {
    mid: Mid,
    plan: AudioPlan,
    next_at: Instant,
}

/// A received m-line: which track it carries.
struct Inbound {
    track_id: String,
}

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
    };
    if let Err(e) = Peer::run(&plan, &scenario, &progress, stop_at, &mut result).await {
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
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    started: Instant,
    connected: bool,
    pending: Option<SdpPendingOffer>,
    offered_media: bool,
    video: Option<VideoOut>,
    audio: Option<AudioOut>,
    channel: Option<ChannelId>,
    next_data_at: Option<Instant>,
    inbound: HashMap<Mid, Inbound>,
    tracks: HashMap<String, Track>,
    subscribed: HashSet<String>,
    outgoing: Vec<ClientMessage>,
    /// Where the server's media goes: the destination of our transmissions.
    server_addr: Option<SocketAddr>,
    /// Bad datagrams to interleave with the media, and when the next one is due.
    garbage: Option<(Garbage, Instant)>,
}

impl<'a> Peer<'a> {
    async fn run(
        plan: &PeerPlan,
        scenario: &'a Scenario,
        progress: &'a Progress,
        stop_at: Instant,
        result: &mut PeerResult,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
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
        let local_ip = match ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.local_addr()?.ip(),
            _ => anyhow::bail!("only ws:// is supported"),
        };
        let socket = bind_peer_socket(SocketAddr::new(local_ip, 0))?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_reordering_size_video(REORDERING_PACKETS)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let (mut ws_tx, mut ws_rx) = ws.split();

        let mut peer = Peer {
            scenario,
            progress,
            rtc,
            socket,
            local,
            started,
            connected: false,
            pending: None,
            offered_media: false,
            video: None,
            audio: None,
            channel: None,
            next_data_at: None,
            inbound: HashMap::new(),
            tracks: HashMap::new(),
            subscribed: HashSet::new(),
            outgoing: Vec::new(),
            server_addr: None,
            garbage: (scenario.garbage_per_sec > 0.0)
                .then(|| (Garbage::new(scenario.seed ^ u64::from(plan.index)), started)),
        };
        peer.on_signal(&first_reply, result)?;
        let mut buf = vec![0u8; 2000];
        let join_deadline = started + JOIN_TIMEOUT;
        loop {
            let wake = peer.drain(result)?;
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
            if !peer.connected && now >= join_deadline {
                anyhow::bail!("not connected after {} s", JOIN_TIMEOUT.as_secs());
            }
            let wake = wake.min(stop_at).min(peer.next_media_at()).max(now);
            tokio::select! {
                message = ws_rx.next() => match message {
                    Some(Ok(Message::Text(text))) => peer.on_signal(&text, result)?,
                    Some(Ok(Message::Close(_))) | None => anyhow::bail!("the server closed the signaling connection"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => anyhow::bail!("signaling connection failed: {e}"),
                },
                received = peer.socket.recv_from(&mut buf) => {
                    let (n, source) = received?;
                    let now = Instant::now();
                    match Receive::new(Protocol::Udp, source, peer.local, &buf[..n]) {
                        Ok(receive) => peer.rtc.handle_input(Input::Receive(now, receive))?,
                        Err(_) => result.error(progress, format!("undecodable datagram from {source}")),
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    peer.rtc.handle_input(Input::Timeout(now))?;
                    peer.send_media(now, result);
                }
            }
        }
    }

    /// Handle every output of the `Rtc`; returns when it next needs a timeout. Timeouts that
    /// are already due (str0m releases one queued packet per timeout) are handled right here,
    /// not after a round trip through the timer.
    fn drain(&mut self, result: &mut PeerResult) -> anyhow::Result<Instant> {
        let mut due_left = DUE_TIMEOUTS_PER_DRAIN;
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => {
                    let now = Instant::now();
                    if at > now || due_left == 0 {
                        return Ok(at);
                    }
                    due_left -= 1;
                    self.rtc.handle_input(Input::Timeout(now))?;
                }
                Output::Transmit(t) => {
                    self.server_addr = Some(t.destination);
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => self.on_event(event, result),
            }
        }
    }

    fn on_event(&mut self, event: Event, result: &mut PeerResult) {
        match event {
            Event::Connected => {
                self.connected = true;
                result.join_time = Some(self.started.elapsed());
                add(&self.progress.connected, 1);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                result.error(self.progress, "ICE disconnected".to_owned());
            }
            Event::MediaData(data) => {
                let rtp = (**data.seq_range.start(), **data.seq_range.end());
                self.on_media(data.mid, &data.data, data.contiguous, rtp, result)
            }
            Event::KeyframeRequest(request) => {
                if let Some(video) = self.video.as_mut().filter(|v| v.mid == request.mid) {
                    let layer = request
                        .rid
                        .and_then(|rid| video.rids.iter().position(|r| *r == Some(rid)))
                        .unwrap_or(0);
                    video.plan.request_keyframe(layer);
                }
            }
            Event::ChannelOpen(id, label) if label == "reliable" => {
                self.channel = Some(id);
                if self.scenario.data_per_sec > 0.0 && result.plan.publishes {
                    self.next_data_at = Some(Instant::now());
                }
            }
            Event::ChannelData(_) => {
                result.data_received += 1;
            }
            _ => {}
        }
    }

    fn on_media(
        &mut self,
        mid: Mid,
        data: &[u8],
        contiguous: bool,
        (rtp_first, rtp_last): (u64, u64),
        result: &mut PeerResult,
    ) {
        let Some(inbound) = self.inbound.get(&mid) else {
            return;
        };
        let Some(track) = self.tracks.get(&inbound.track_id) else {
            return;
        };
        add(&self.progress.bytes_received, data.len() as u64);
        let (_, stats) = result
            .received
            .entry(track.id.clone())
            .or_insert_with(|| (track.kind, TrackStats::new(track.participant_id.clone())));
        if stats.frames == 0 && stats.errors == 0 {
            add(&self.progress.tracks_receiving, 1);
        } else if !contiguous {
            stats.on_rtp_gap();
        }
        stats.on_rtp_packets(rtp_first, rtp_last);
        match payload::decode(data) {
            Ok(header) => stats.on_frame(&header, data.len(), now_us()),
            Err(e) => {
                stats.on_bad_frame();
                let message = format!("track {}: {e}", track.id);
                result.error(self.progress, message);
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
                let reoffer = self.pending.take().is_some();
                let offer = SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                for (mid, track_id) in tracks {
                    self.inbound
                        .insert(Mid::from(mid.as_str()), Inbound { track_id });
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
                if let Some(pending) = self.pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&sdp)?;
                    self.rtc.sdp_api().accept_answer(pending, answer)?;
                    result.published = tracks.into_values().collect();
                }
            }
            ServerMessage::Layers { track_id: _, rids } => {
                if let Some(video) = self.video.as_mut() {
                    for (i, rid) in RIDS.iter().enumerate().take(video.active.len()) {
                        video.active[i] = video.rids.len() == 1 || rids.iter().any(|r| r == rid);
                    }
                }
            }
            ServerMessage::Error { code, message } => {
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
        self.tracks.insert(track.id.clone(), track);
    }

    /// Offer what this participant publishes, plus the data channel.
    fn offer(&mut self, result: &PeerResult) -> anyhow::Result<()> {
        if self.offered_media {
            return Ok(());
        }
        let mut api = self.rtc.sdp_api();
        let publishes = result.plan.publishes;
        let now = Instant::now();
        let seed = self.scenario.seed ^ u64::from(result.plan.index) << 20;
        if publishes && self.scenario.audio {
            let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            self.audio = Some(AudioOut {
                mid,
                plan: AudioPlan::new(seed),
                next_at: now,
            });
        }
        if publishes && self.scenario.video {
            let (simulcast, rids, kbps) = if self.scenario.simulcast {
                let mut simulcast = Simulcast::new();
                for rid in RIDS {
                    simulcast.add_send_layer(SimulcastLayer::new(rid));
                }
                let rids = RIDS.iter().map(|r| Some(Rid::from(*r))).collect();
                (Some(simulcast), rids, self.scenario.video_kbps.to_vec())
            } else {
                (None, vec![None], vec![self.scenario.video_kbps[2]])
            };
            let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
            self.video = Some(VideoOut {
                mid,
                plan: VideoPlan::new(
                    &kbps,
                    self.scenario.fps,
                    self.scenario.keyframe_interval,
                    seed + 1,
                ),
                active: vec![true; rids.len()],
                rids,
                next_at: now,
            });
        }
        if self.channel.is_none() {
            api.add_channel("reliable".to_owned());
        }
        if let Some((offer, pending)) = api.apply() {
            self.pending = Some(pending);
            self.offered_media = true;
            self.outgoing.push(ClientMessage::Offer {
                sdp: offer.to_sdp_string(),
            });
        }
        Ok(())
    }

    fn next_media_at(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        if !self.connected {
            return far;
        }
        [
            self.video.as_ref().map(|v| v.next_at),
            self.audio.as_ref().map(|a| a.next_at),
            self.next_data_at,
            self.garbage.as_ref().map(|(_, at)| *at),
        ]
        .into_iter()
        .flatten()
        .fold(far, Instant::min)
    }

    /// Write every frame that is due.
    fn send_media(&mut self, now: Instant, result: &mut PeerResult) {
        if !self.connected || self.pending.is_some() {
            return;
        }
        let publisher = result.participant_id.clone().unwrap_or_default();
        let mut sent = 0u64;
        if let Some(video) = self.video.as_mut().filter(|v| v.next_at <= now) {
            let interval = video.plan.frame_interval();
            video.next_at += interval;
            if video.next_at < now {
                video.next_at = now + interval;
            }
            let (seq, frames) = video.plan.next_frame();
            let fps = self.scenario.fps.max(1);
            let rtp_time = MediaTime::new(
                u64::from(seq) * 90_000 / u64::from(fps),
                Frequency::NINETY_KHZ,
            );
            let pt = self.rtc.writer(video.mid).and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .map(|p| p.pt())
            });
            for frame in frames.iter().filter(|f| video.active[f.layer]) {
                let header = FrameHeader {
                    layer: frame.layer as u8,
                    seq,
                    sent_at_us: now_us(),
                    publisher: publisher.clone(),
                };
                let data = payload::encode(frame.kind, &header, frame.size);
                let (Some(pt), Some(mut writer)) = (pt, self.rtc.writer(video.mid)) else {
                    continue;
                };
                if let Some(rid) = video.rids[frame.layer] {
                    writer = writer.rid(rid);
                }
                sent += data.len() as u64;
                if let Err(e) = writer.write(pt, now, rtp_time, data) {
                    result.error(self.progress, format!("video write: {e}"));
                }
            }
        }
        if let Some(audio) = self.audio.as_mut().filter(|a| a.next_at <= now) {
            audio.next_at += AUDIO_INTERVAL;
            if audio.next_at < now {
                audio.next_at = now + AUDIO_INTERVAL;
            }
            let frame = audio.plan.next_frame();
            let header = FrameHeader {
                layer: 0,
                seq: frame.seq,
                sent_at_us: now_us(),
                publisher,
            };
            let data = payload::encode(payload::FrameKind::Audio, &header, frame.size);
            let rtp_time = MediaTime::new(u64::from(frame.seq) * 960, Frequency::FORTY_EIGHT_KHZ);
            if let Some(writer) = self.rtc.writer(audio.mid) {
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
                if let Some(pt) = pt {
                    sent += data.len() as u64;
                    if let Err(e) = writer
                        .audio_level(frame.level, true)
                        .write(pt, now, rtp_time, data)
                    {
                        result.error(self.progress, format!("audio write: {e}"));
                    }
                }
            }
        }
        if let Some(at) = self.next_data_at.filter(|at| *at <= now) {
            let interval = Duration::from_secs_f64(1.0 / self.scenario.data_per_sec);
            self.next_data_at = Some((at + interval).max(now));
            let text = format!(
                "{{\"seq\":{},\"sent_at_us\":{}}}",
                result.data_sent,
                now_us()
            );
            if let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) {
                match channel.write(false, text.as_bytes()) {
                    Ok(_) => result.data_sent += 1,
                    Err(e) => result.error(self.progress, format!("data write: {e}")),
                }
            }
        }
        result.bytes_sent += sent;
        add(&self.progress.bytes_sent, sent);
        self.send_garbage(now, result);
    }

    /// Send the bad datagrams that are due, from the media socket to the server.
    fn send_garbage(&mut self, now: Instant, result: &mut PeerResult) {
        let (Some((garbage, next_at)), Some(server)) = (self.garbage.as_mut(), self.server_addr)
        else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / self.scenario.garbage_per_sec);
        // After a pause (renegotiation) carry on at the rate instead of catching up in a burst.
        if now.saturating_duration_since(*next_at) > Duration::from_secs(1) {
            *next_at = now;
        }
        while *next_at <= now {
            *next_at += interval;
            if self
                .socket
                .try_send_to(&garbage.next_datagram(), server)
                .is_ok()
            {
                result.garbage_sent += 1;
            }
        }
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
            Ok(ServerMessage::Redirect { url: next, .. }) => url = next,
            _ => return Ok((ws, reply)),
        }
    }
    anyhow::bail!("more than {MAX_REDIRECTS} redirects for one join")
}

/// A signaling connection.
type Signaling = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

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

/// A participant's UDP socket, with a receive buffer big enough for a burst of keyframes
/// from many publishers while the (shared) runtime is busy with other participants.
fn bind_peer_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(PEER_SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn to_json(message: &ClientMessage) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Microseconds since the Unix epoch (the clock publishers and subscribers share).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
