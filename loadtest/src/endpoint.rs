//! One synthetic peer connection: a str0m `Rtc` on its own UDP socket that publishes the
//! scenario's synthetic media and measures the media it receives. The signaling adapters
//! (`peer` for this SFU, `janus` for Janus' VideoRoom) negotiate it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use signaling::Track;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::garbage::Garbage;
use crate::media::{AUDIO_INTERVAL, AudioPlan, VideoPlan, first_frame_at};
use crate::payload::now_us;
use crate::payload::{self, FrameHeader};
use crate::peer_result::PeerResult;
use crate::progress::{Progress, add};
use crate::scenario::Scenario;
use crate::track_stats::TrackStats;

/// Simulcast rids, lowest first, as the protocol names them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// Packets one received video frame may span: a full-size keyframe at the default bitrates
/// needs about 30 (str0m's default), so there is room for higher bitrates.
const REORDERING_PACKETS: usize = 300;
/// How many already-due timeouts one drain handles before serving the sockets again.
const DUE_TIMEOUTS_PER_DRAIN: usize = 256;
/// Kernel receive buffer asked for on each participant's socket.
const PEER_SOCKET_BUFFER_BYTES: usize = 1024 * 1024;

/// The video track this endpoint publishes.
pub struct VideoOut {
    mid: Mid,
    plan: VideoPlan,
    rids: Vec<Option<Rid>>,
    /// Which layers the server wants (all until told otherwise).
    pub active: Vec<bool>,
    next_at: Instant,
}

/// The audio track this endpoint publishes.
struct AudioOut {
    mid: Mid,
    plan: AudioPlan,
    next_at: Instant,
}

/// One peer connection of a synthetic participant.
pub struct Endpoint<'a> {
    scenario: &'a Scenario,
    progress: &'a Progress,
    /// The WebRTC state machine.
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// ICE and DTLS completed.
    pub connected: bool,
    /// An offer of ours waiting for its answer.
    pub pending: Option<SdpPendingOffer>,
    /// The published video, once offered.
    pub video: Option<VideoOut>,
    audio: Option<AudioOut>,
    /// The data channel, once open.
    pub channel: Option<ChannelId>,
    next_data_at: Option<Instant>,
    /// Which received track each m-line carries.
    pub inbound: HashMap<Mid, String>,
    /// Every track announced to this participant, by id.
    pub tracks: HashMap<String, Track>,
    /// Where the server's media goes: the destination of our transmissions.
    server_addr: Option<SocketAddr>,
    /// Bad datagrams to interleave with the media, and when the next one is due.
    garbage: Option<(Garbage, Instant)>,
}

impl<'a> Endpoint<'a> {
    /// A new peer connection with one host candidate on `ip`.
    pub fn new(
        scenario: &'a Scenario,
        progress: &'a Progress,
        ip: IpAddr,
        garbage: Option<Garbage>,
    ) -> anyhow::Result<Self> {
        let socket = bind_peer_socket(SocketAddr::new(ip, 0))?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_reordering_size_video(REORDERING_PACKETS)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Self {
            scenario,
            progress,
            rtc,
            socket,
            local,
            connected: false,
            pending: None,
            video: None,
            audio: None,
            channel: None,
            next_data_at: None,
            inbound: HashMap::new(),
            tracks: HashMap::new(),
            server_addr: None,
            garbage: garbage.map(|g| (g, now)),
        })
    }

    /// Wait for the next datagram into `buf`: its length and source.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// Feed one received datagram to the `Rtc`.
    pub fn receive(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        result: &mut PeerResult,
    ) -> anyhow::Result<()> {
        match Receive::new(Protocol::Udp, source, self.local, datagram) {
            Ok(receive) => self
                .rtc
                .handle_input(Input::Receive(Instant::now(), receive))?,
            Err(_) => result.error(self.progress, format!("undecodable datagram from {source}")),
        }
        Ok(())
    }

    /// Run the `Rtc`'s timers and send the media that is due.
    pub fn on_timeout(&mut self, now: Instant, result: &mut PeerResult) -> anyhow::Result<()> {
        self.rtc.handle_input(Input::Timeout(now))?;
        self.send_media(now, result);
        Ok(())
    }

    /// Handle every output of the `Rtc`; returns when it next needs a timeout. Timeouts that
    /// are already due (str0m releases one queued packet per timeout) are handled right here,
    /// not after a round trip through the timer.
    pub fn drain(&mut self, result: &mut PeerResult) -> anyhow::Result<Instant> {
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
                if result.join_time.is_none() {
                    result.join_time = Some(result.started.elapsed());
                    add(&self.progress.connected, 1);
                }
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
        let Some(track_id) = self.inbound.get(&mid) else {
            return;
        };
        let Some(track) = self.tracks.get(track_id) else {
            return;
        };
        add(&self.progress.bytes_received, data.len() as u64);
        add(
            &self.progress.rtp_received,
            rtp_last.saturating_sub(rtp_first) + 1,
        );
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
            Ok(header) => {
                if !stats.on_frame(&header, data.len(), now_us()) {
                    let message = format!(
                        "track {}: a frame of {} on a track of {}",
                        track.id, header.publisher, stats.publisher
                    );
                    result.error(self.progress, message);
                }
            }
            Err(e) => {
                stats.on_bad_frame();
                let message = format!("track {}: {e}", track.id);
                result.error(self.progress, message);
            }
        }
    }

    /// Offer the scenario's audio and video as send-only m-lines when `publish_seed` is
    /// given (the seed makes this participant's media sizes its own), and the data channel
    /// when `channel` is set and none is open; the offer waits in `pending` for its answer.
    pub fn offer(&mut self, publish_seed: Option<u64>, channel: bool) -> Option<SdpOffer> {
        let now = Instant::now();
        let mut api = self.rtc.sdp_api();
        if let Some(seed) = publish_seed {
            if self.scenario.audio {
                let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                self.audio = Some(AudioOut {
                    mid,
                    plan: AudioPlan::new(seed),
                    next_at: first_frame_at(now, AUDIO_INTERVAL, seed + 2),
                });
            }
            if self.scenario.video {
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
                let mid =
                    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
                let plan = VideoPlan::new(
                    &kbps,
                    self.scenario.fps,
                    self.scenario.keyframe_interval,
                    seed + 1,
                );
                self.video = Some(VideoOut {
                    mid,
                    next_at: first_frame_at(now, plan.frame_interval(), seed + 3),
                    plan,
                    active: vec![true; rids.len()],
                    rids,
                });
            }
        }
        if channel && self.channel.is_none() {
            api.add_channel("reliable".to_owned());
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some(offer)
    }

    /// The mids of the media this endpoint publishes.
    pub fn published_mids(&self) -> impl Iterator<Item = Mid> + '_ {
        let audio = self.audio.as_ref().map(|a| a.mid);
        let video = self.video.as_ref().map(|v| v.mid);
        audio.into_iter().chain(video)
    }

    /// When media is next due (far away while not connected).
    pub fn next_media_at(&self) -> Instant {
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
