//! A participant: its peer connection (`Rtc`), what it publishes and what it receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sfu_core::ids::{ParticipantId, ProducerId};
use str0m::bwe::Bitrate;
use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::format::CodecConfig;
use str0m::media::Mid;
use str0m::net::{Protocol, TcpType};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tracing::{Span, warn};

use super::consumer::Consumer;
use super::outbox::Outbox;
use super::path_view::MediaPathView;
use super::rtcp_stats::FeedbackTotals;
use crate::egress::Egress;
use crate::stats::Stats;

/// One peer connection in the room.
pub struct Participant {
    /// Its id, in the room and on the wire.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Log span carrying room and participant ids.
    pub span: Span,
    /// The WebRTC stack of this peer connection.
    pub rtc: Rtc,
    /// Messages toward its signaling session.
    pub outbox: Outbox,
    /// Its server ICE ufrag (the UDP routing key).
    pub ufrag: String,
    /// Subscribe to new tracks automatically.
    pub auto_subscribe: bool,
    /// What its join token allows.
    pub grants: signaling::token::Grants,
    /// Who its join token says it is, until when (without tokens, nobody in particular).
    pub identity: Option<super::Identity>,
    /// When `rtc` next wants `Input::Timeout`.
    pub next_timeout: Instant,
    /// Packets were written to `rtc` and it waits in the room's `to_drain`.
    pub drain_due: bool,
    /// The server's unanswered offer.
    pub pending_offer: Option<SdpPendingOffer>,
    /// The server sends no offer before this: its first waits for the client's own offer or
    /// this, and after a refused answer it pauses before offering again.
    pub offer_after: Option<Instant>,
    /// The media path must be up by then, or the participant is removed.
    pub connect_deadline: Option<Instant>,
    /// Whether ICE and DTLS completed.
    pub connected: bool,
    /// The secret that lets a new signaling connection take this participant back.
    pub resume_token: String,
    /// Since when its signaling connection has been gone (it may still `resume`).
    pub disconnected_at: Option<Instant>,
    /// Number of its current signaling connection (0, then one more per resume).
    pub connection: u64,
    /// The server's last offer, sent again when it resumes with the offer unanswered.
    pub last_offer: Option<signaling::ServerMessage>,
    /// Whether ICE and DTLS completed at least once.
    pub connected_once: bool,
    /// When it joined.
    pub joined_at: Instant,
    /// Published tracks by m-line.
    pub published: HashMap<Mid, ProducerId>,
    /// Incoming SSRC → (producer, layer), resolved on first packet.
    pub rx_by_ssrc: HashMap<Ssrc, (ProducerId, u8)>,
    /// Consumers by producer.
    pub consumers: HashMap<ProducerId, Consumer>,
    /// Open data channels and their labels.
    pub channels: HashMap<ChannelId, String>,
    /// Its budget of data channel messages relayed per second.
    pub data_rate: sfu_core::rate::TokenBucket,
    /// Its budget of offers per second, kept across resumes (each offer renegotiates the room).
    pub offer_rate: sfu_core::rate::TokenBucket,
    /// Latest downlink bandwidth estimate (TWCC, or REMB), bits per second.
    pub bwe_estimate: Option<u64>,
    /// What the estimator was last told to probe for, bits per second.
    pub bwe_desired: u64,
    /// The grace a bandwidth shortage gets before it pauses a consumer.
    pub pause_grace: sfu_core::bandwidth::PauseGrace,
    /// Its media path as operators see it.
    pub media_path: MediaPathView,
    /// Cumulative RTCP feedback counts per stream, as last reported by str0m.
    pub feedback_totals: FeedbackTotals,
}

impl Participant {
    /// The earliest time this participant needs attention.
    pub fn next_deadline(&self, resume_grace: std::time::Duration) -> Instant {
        let resume_deadline = self.disconnected_at.map(|t| t + resume_grace);
        [self.offer_after, self.connect_deadline, resume_deadline]
            .into_iter()
            .flatten()
            .fold(self.next_timeout, Instant::min)
    }

    /// The consumer sending on `mid`, if any.
    pub fn consumer_by_mid(&self, mid: Mid) -> Option<ProducerId> {
        self.consumers
            .iter()
            .find(|(_, c)| c.mid() == Some(mid))
            .map(|(k, _)| *k)
    }
}

/// How often str0m reports per-stream statistics (RTCP feedback counts).
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a subscriber's downlink estimate starts before TWCC feedback refines it.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1_000);

/// Build the `Rtc` of a new participant: ICE-lite, RTP mode, Opus/VP8/H264, our candidates,
/// and str0m's TWCC bandwidth estimator for the downlink.
///
/// Opus is negotiated without `transport-cc` feedback. str0m probes for bandwidth on the
/// first sending m-line with TWCC feedback; when that is an audio m-line, its padding goes
/// out on SSRC 0 and browsers count it as a second stream of the audio track. Without TWCC
/// on audio, probes ride a video m-line (on its RTX stream once video flows).
pub fn new_rtc(
    candidates: &[(Protocol, SocketAddr)],
    now: Instant,
) -> Result<Rtc, str0m::RtcError> {
    let mut builder = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .enable_bwe(Some(INITIAL_ESTIMATE))
        .set_stats_interval(Some(STATS_INTERVAL));
    let params = builder
        .codec_config()
        .params()
        .iter()
        .cloned()
        .map(|mut params| {
            if params.spec().codec.is_audio() {
                params.set_fb_transport_cc(false);
            }
            params
        })
        .collect();
    *builder.codec_config() = CodecConfig::new_from_payload_params(params);
    let mut rtc = builder.build(now);
    for (proto, addr) in candidates {
        let candidate = match proto {
            Protocol::Udp => Candidate::host(*addr, "udp")?,
            _ => Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()?,
        };
        rtc.add_local_candidate(candidate);
    }
    Ok(rtc)
}

/// How many already-due timeouts one drain handles before yielding to the room loop.
const DUE_TIMEOUTS_PER_DRAIN: usize = 256;

/// Drain `rtc` until it asks for a timeout in the future: send datagrams (a burst to one
/// address as one GSO send where it can), queue events for the room.
///
/// str0m's pacer releases one packet per timeout and asks for the next timeout right away.
/// Handing those due timeouts back to the room loop would cost a timer round trip (about a
/// millisecond) per packet and cap a subscriber at ~1000 packets/s, so they are handled here.
pub fn drain(
    p: &mut Participant,
    media: &mut dyn Egress,
    stats: &Stats,
    events: &mut std::collections::VecDeque<(ParticipantId, Event)>,
    now: Instant,
) {
    let mut due_left = DUE_TIMEOUTS_PER_DRAIN;
    loop {
        match p.rtc.poll_output() {
            Ok(Output::Timeout(at)) => {
                if at <= now && due_left > 0 && p.rtc.handle_input(Input::Timeout(now)).is_ok() {
                    due_left -= 1;
                    continue;
                }
                p.next_timeout = at;
                break;
            }
            Ok(Output::Transmit(t)) => {
                media.transmit(t.proto, t.source, t.destination, &t.contents, stats)
            }
            Ok(Output::Event(event)) => events.push_back((p.id, event)),
            Err(e) => {
                let _g = p.span.enter();
                warn!(error = %e, "peer connection failed");
                p.media_path.record(
                    now.saturating_duration_since(p.joined_at),
                    "peer_connection_failed",
                );
                ::metrics::counter!(crate::metric_names::CONNECTION_FAILURES, "reason" => "rtc_error")
                    .increment(1);
                p.rtc.disconnect();
                p.next_timeout = now;
                break;
            }
        }
    }
    media.flush(stats);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::rtc_pair::{Fate, RtcPair, rtp_ssrc_seq};
    use super::*;

    /// Packets written, one every 20 ms.
    const PACKETS: u64 = 150;
    /// The packet the network loses.
    const LOST: u64 = 20;

    /// Send `PACKETS` video packets with `LOST` lost and everything after it held back by
    /// the network for `hold`, so the client can only ask for `LOST` (NACK) `hold` after it
    /// was sent. Returns what the client received and the NACKs the server saw.
    fn lose_one_packet_and_delay_the_rest(hold: Duration) -> (Vec<u64>, u64) {
        let mut pair = RtcPair::connected();
        let ssrc = pair.video_ssrc();
        let mut release_at = None;
        for seq in 1..=PACKETS {
            pair.write_video(seq, vec![0x10; 900]);
            for _ in 0..4 {
                let now = pair.now;
                pair.step(&mut |datagram| match rtp_ssrc_seq(datagram) {
                    Some((s, n)) if s == ssrc && u64::from(n) == LOST => Fate::Drop,
                    Some((s, n)) if s == ssrc && u64::from(n) > LOST => {
                        Fate::HoldUntil(*release_at.get_or_insert(now + hold))
                    }
                    _ => Fate::Deliver,
                });
            }
        }
        for _ in 0..200 {
            pair.step(&mut |_| Fate::Deliver);
        }
        let nacks = pair
            .server_events
            .iter()
            .filter_map(|e| match e {
                Event::MediaEgressStats(s) => Some(s.nacks),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        (pair.client_received(), nacks)
    }

    #[test]
    fn a_nack_inside_the_retransmission_buffer_is_answered() {
        // Requirement: a subscriber that loses a packet gets it again when it asks in time.
        let (received, nacks) = lose_one_packet_and_delay_the_rest(Duration::from_millis(300));
        assert!(nacks > 0, "the client never sent a NACK");
        assert!(
            received.contains(&LOST),
            "the lost packet was not retransmitted"
        );
        assert!(
            received.contains(&PACKETS),
            "the held packets never arrived"
        );
    }
}
