//! A participant's peer connection as the server configures it: ICE-lite, RTP mode,
//! the codecs we forward, our candidates and the downlink estimator.

use std::net::SocketAddr;
use std::time::Instant;

use config::EgressMode;
use str0m::bwe::Bitrate;
use str0m::format::CodecConfig;
use str0m::net::{Protocol, TcpType};
use str0m::{Candidate, Rtc};

use super::native::NativeEgress;
use super::native::keys::build_tapped;

/// H264 profiles we negotiate: constrained baseline and baseline (each in packetization
/// modes 0 and 1), which every browser encodes and decodes. Main and high would add four
/// payload types with their RTX to every video m-line of every server offer; a subscriber
/// of 11 publishers could then no longer be offered all their tracks within
/// `max_sdp_bytes`.
const H264_PROFILES: [u32; 2] = [0x42_e0_1f, 0x42_00_1f];

/// Whether a payload type of str0m's defaults is one we negotiate.
fn is_offered(params: &str0m::format::PayloadParams) -> bool {
    let spec = params.spec();
    spec.codec != str0m::format::Codec::H264
        || spec
            .format
            .profile_level_id
            .is_some_and(|id| H264_PROFILES.contains(&id))
}

/// How often str0m reports per-stream statistics (RTCP feedback counts).
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a subscriber's downlink estimate starts before TWCC feedback refines it.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1_000);

/// Build the `Rtc` of a new participant: ICE-lite, RTP mode, Opus/VP8/H264 (constrained
/// baseline and baseline, see [`is_offered`]), our candidates, and str0m's TWCC bandwidth
/// estimator for the downlink. With `egress = "native"`, str0m sends no media: it has no
/// estimator (it would probe with padding of its own), and the connection's SRTP keys are
/// tapped for the [`NativeEgress`] returned beside it.
///
/// Opus is negotiated without `transport-cc` feedback. str0m probes for bandwidth on the
/// first sending m-line with TWCC feedback; when that is an audio m-line, its padding goes
/// out on SSRC 0 and browsers count it as a second stream of the audio track. Without TWCC
/// on audio, probes ride a video m-line (on its RTX stream once video flows).
pub fn new_rtc(
    candidates: &[(Protocol, SocketAddr)],
    egress: EgressMode,
    now: Instant,
) -> Result<(Rtc, Option<NativeEgress>), str0m::RtcError> {
    let estimator = match egress {
        EgressMode::Str0m => Some(INITIAL_ESTIMATE),
        EgressMode::Native => None,
    };
    let mut builder = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .enable_bwe(estimator)
        .set_stats_interval(Some(STATS_INTERVAL));
    let params = builder
        .codec_config()
        .params()
        .iter()
        .filter(|params| is_offered(params))
        .cloned()
        .map(|mut params| {
            if params.spec().codec.is_audio() {
                params.set_fb_transport_cc(false);
            }
            params
        })
        .collect();
    *builder.codec_config() = CodecConfig::new_from_payload_params(params);
    let (mut rtc, native) = match egress {
        EgressMode::Str0m => (builder.build(now), None),
        EgressMode::Native => {
            let (rtc, keying) = build_tapped(builder, now);
            (rtc, Some(NativeEgress::new(keying, now)))
        }
    };
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
    Ok((rtc, native))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use str0m::Event;

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

    #[test]
    fn a_subscriber_of_eleven_publishers_gets_one_answerable_offer() {
        // Requirement: with the default max_sdp_bytes, the server's offer to a participant
        // receiving audio and video from 11 others (a room of 12) fits the budget the room
        // keeps for offers (3/4 of it, so the answer fits too).
        let now = Instant::now();
        let addr = "10.9.0.1:5000".parse().expect("address");
        let (mut rtc, _) = new_rtc(&[(Protocol::Udp, addr)], EgressMode::Str0m, now).expect("rtc");
        let mut change = rtc.sdp_api();
        for publisher in 0..11 {
            for kind in [
                str0m::media::MediaKind::Audio,
                str0m::media::MediaKind::Video,
            ] {
                let stream = format!("PA_{publisher}");
                let track = format!("TR_{publisher}_{kind:?}");
                let direction = str0m::media::Direction::SendOnly;
                change.add_media(kind, direction, Some(stream), Some(track), None);
            }
        }
        let (offer, _) = change.apply().expect("an offer");
        let bytes = offer.to_sdp_string().len();
        let budget = config::Config::default().max_sdp_bytes * 3 / 4;
        assert!(bytes <= budget, "{bytes} bytes over {budget}");
        let h264: Vec<u32> = rtc
            .codec_config()
            .params()
            .iter()
            .filter_map(|p| p.spec().format.profile_level_id)
            .collect();
        assert!(!h264.is_empty(), "H264 is offered");
        assert!(
            h264.iter().all(|id| H264_PROFILES.contains(id)),
            "{h264:x?}"
        );
    }
}
