//! Our own egress (`egress = "native"`) through the room harness: what the room sends a
//! subscriber is protected by us, bound to its m-line by MID alone, opened by an
//! unmodified str0m peer; the subscriber's SRTCP reaches us.

use super::*;
use config::EgressMode;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaTime, Mid};

/// A room with our own egress where `a` publishes one track of `kind` and `b`, subscribed
/// to it, has answered the server's offer; both connected. Returns a's m-line.
fn publisher_and_subscriber(kind: MediaKind) -> (Harness, Client, Client, Mid) {
    let config = config::Config {
        egress: EgressMode::Native,
        ..config::Config::default()
    };
    let mut h = Harness::new(config);
    let mut a = h.join("a");
    h.offer_track(&mut a, kind);
    let mut b = h.join("b");
    h.run_for(Duration::from_secs(3), &mut [&mut a, &mut b]);
    h.answer_offer(&mut b);
    h.run_until_connected(&mut a, &mut b);
    let mid = *h.room.participants[&a.key]
        .published()
        .keys()
        .next()
        .expect("a publishes a track");
    (h, a, b, mid)
}

/// `client` sends `frames` frames of `codec` on `mid`, one every 20 ms, each made by
/// `frame(n)`, while the room runs.
fn send_frames(
    h: &mut Harness,
    a: &mut Client,
    b: &mut Client,
    mid: Mid,
    codec: Codec,
    frames: u64,
    frame: impl Fn(u64) -> Vec<u8>,
) {
    for n in 0..frames {
        let writer = a.rtc.writer(mid).expect("a writer");
        let params = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .expect("the codec is negotiated");
        let (pt, rate) = (params.pt(), params.spec().clock_rate);
        writer
            .write(
                pt,
                h.now,
                MediaTime::new(n * 20 * u64::from(rate.get()) / 1000, rate),
                frame(n),
            )
            .expect("written");
        h.run_for(Duration::from_millis(20), &mut [&mut *a, &mut *b]);
    }
}

/// VP8 keyframe number `n`: its header, then `len` bytes of `n`.
fn vp8_keyframe(n: u64, len: usize) -> Vec<u8> {
    let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
    frame.extend(std::iter::repeat_n(
        u8::try_from(n % 200).expect("small"),
        len,
    ));
    frame
}

/// The value of counter `name` in a stats snapshot's `counters`.
fn counter(counters: &[(&str, u64)], name: &str) -> Option<u64> {
    counters.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The SSRC of an RTP datagram (RFC 7983: first byte 128 to 191, and not RTCP).
fn rtp_ssrc(datagram: &[u8]) -> Option<u32> {
    let rtp = datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7F));
    rtp.then(|| u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]))
}

#[tokio::test]
async fn forwarded_audio_is_protected_by_us_and_opened_by_a_str0m_peer() {
    // Requirement: with `egress = "native"` a subscriber decodes what the publisher sends,
    // byte for byte: our SRTP (keys tapped from DTLS) opens in str0m, and our SSRC, which
    // no `a=ssrc` line announces, is bound to the m-line by the MID each packet carries.
    // Every RTP packet to the subscriber is ours: str0m sends none on its connection.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Audio);
    let ServerMessage::Offer { sdp, .. } = b.received("offer")[0] else {
        panic!("an offer");
    };
    assert!(
        !sdp.contains("a=ssrc"),
        "the offer announces no SSRC:\n{sdp}"
    );
    let frame = |n: u64| vec![u8::try_from(n % 200).expect("small"); 60];
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Opus, 100, frame);
    h.run_for(Duration::from_millis(200), &mut [&mut a, &mut b]);

    let got: Vec<&Vec<u8>> = b.media.iter().map(|(_, data)| data).collect();
    assert!(got.len() >= 95, "{} of 100 frames arrived", got.len());
    let first = usize::from(got[0][0]);
    for (i, data) in got.iter().enumerate() {
        assert_eq!(
            **data,
            frame(u64::try_from(first + i).expect("index")),
            "frame {i}"
        );
    }
    let rtp_ssrcs: std::collections::BTreeSet<u32> =
        b.wire.iter().filter_map(|d| rtp_ssrc(d)).collect();
    assert_eq!(rtp_ssrcs.len(), 1, "one stream: {rtp_ssrcs:?}");
    let ours = *rtp_ssrcs.first().expect("one SSRC");
    let mut api = b.rtc.direct_api();
    let stream = api
        .stream_rx(&ours.into())
        .expect("the subscriber receives on our SSRC");
    assert!(
        stream.cname().is_some_and(|c| c.starts_with("sfu-")),
        "our SRTCP sender report and SDES were opened: cname {:?}",
        stream.cname()
    );
    let server = h.room.participants.get_mut(&b.key).expect("b in the room");
    let (rtc, _, _) = server.parts_mut();
    assert!(
        rtc.direct_api().stream_tx(&ours.into()).is_none(),
        "str0m does not send with our SSRC"
    );
    let stats = h.room.ctx.stats.snapshot().counters();
    let count = |name: &str| counter(&stats, name);
    assert_eq!(count("egress_feedback_rejected"), Some(0), "{stats:?}");
    assert!(count("rtp_forwarded") >= Some(95), "{stats:?}");
    assert!(count("egress_sender_reports") >= Some(2), "{stats:?}");
}

#[tokio::test]
async fn a_subscribers_picture_loss_reaches_the_publisher() {
    // Requirement: a PLI about our SSRC (which str0m does not know) is read from the
    // subscriber's SRTCP by us and asked of the publisher.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Video);
    let keyframe = |n: u64| vp8_keyframe(n, 300);
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 20, keyframe);
    assert!(
        b.media.len() >= 10,
        "video arrives: {} frames",
        b.media.len()
    );
    let asked_before = a.keyframe_requests.len();
    h.run_for(Duration::from_secs(1), &mut [&mut a, &mut b]);
    let b_mid = b.media[0].0;
    b.rtc
        .writer(b_mid)
        .expect("b's m-line")
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .expect("b asks");
    h.run_for(Duration::from_millis(300), &mut [&mut a, &mut b]);
    let asked: Vec<_> = a.keyframe_requests[asked_before..]
        .iter()
        .filter(|r| r.mid == mid)
        .collect();
    assert!(!asked.is_empty(), "the publisher was asked for a keyframe");
}

#[tokio::test]
async fn a_lost_video_packet_is_sent_again_as_rtx() {
    // Requirement: a NACK about our SSRC is answered with an RTX packet (our RTX SSRC,
    // the original sequence number in front) rebuilt from the producer's copy, and the
    // subscriber's frames arrive whole.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Video);
    let frame = |n: u64| vp8_keyframe(n, 3000);
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 10, frame);
    let ours = b
        .wire
        .iter()
        .find_map(|d| rtp_ssrc(d))
        .expect("video flows");
    let mut lost_once = false;
    b.loses = Some(Box::new(move |d: &[u8]| {
        let seq = d.get(2..4).map(|s| u16::from_be_bytes([s[0], s[1]]));
        let lose = !lost_once && rtp_ssrc(d) == Some(ours) && seq.is_some_and(|s| s % 7 == 3);
        lost_once |= lose;
        lose
    }));
    let before = b.media.len();
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 30, frame);
    h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
    let stats = h.room.ctx.stats.snapshot().counters();
    let count = |name: &str| counter(&stats, name);
    assert!(count("egress_retransmitted") >= Some(1), "{stats:?}");
    assert!(count("nacks_from_subscribers") >= Some(1), "{stats:?}");
    let rtx = b
        .wire
        .iter()
        .filter(|d| rtp_ssrc(d).is_some_and(|s| s != ours))
        .count();
    assert!(rtx >= 1, "an RTX packet on another SSRC");
    assert_eq!(b.media.len() - before, 30, "every frame arrives whole");
}

#[tokio::test]
async fn the_subscribers_twcc_feedback_gives_its_downlink_estimate_and_probes_go_out() {
    // Requirement: what the subscriber reports of our transport-wide numbers reaches the
    // estimator, whose estimate (above where it starts, thanks to the probes) is the
    // subscriber's; its first probes leave as padding on our RTX SSRC, and the frames
    // still arrive whole.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Video);
    let frame = |n: u64| vp8_keyframe(n, 3000);
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 50, frame);
    h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
    let stats = h.room.ctx.stats.snapshot().counters();
    let count = |name: &str| counter(&stats, name);
    assert!(count("egress_twcc_reports") >= Some(5), "{stats:?}");
    assert!(count("egress_probe_packets") >= Some(5), "{stats:?}");
    assert_eq!(count("egress_estimator_failures"), Some(0), "{stats:?}");
    let estimate = h.room.participants[&b.key].bandwidth_estimate();
    assert!(
        estimate.is_some_and(|bps| bps > 1_000_000),
        "estimate {estimate:?}"
    );
    let media_ssrc = b
        .wire
        .iter()
        .find_map(|d| rtp_ssrc(d))
        .expect("video flows");
    let padding = b
        .wire
        .iter()
        .filter(|d| rtp_ssrc(d).is_some_and(|s| s != media_ssrc) && d[0] & 0x20 != 0)
        .count();
    assert!(padding >= 5, "{padding} padding packets on the RTX SSRC");
    assert_eq!(b.media.len(), 50, "every frame arrives whole");
}

#[tokio::test]
async fn a_path_that_comes_back_is_estimated_afresh() {
    // Requirement: while the subscriber's path is cut no feedback comes and the estimate
    // decays; once the path is back the estimate starts again (at least the start rate,
    // probed above), not from where it decayed to, and the restart is counted.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Video);
    let frame = |n: u64| vp8_keyframe(n, 3000);
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 50, frame);
    h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
    let key = b.key;
    let estimate = |h: &Harness| h.room.participants[&key].bandwidth_estimate();
    let before = estimate(&h).expect("an estimate");
    b.cut = true;
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 400, frame);
    let decayed = estimate(&h).expect("an estimate");
    assert!(decayed < before / 2, "cut for 8 s: {before} then {decayed}");
    b.cut = false;
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Vp8, 50, frame);
    h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
    let back = estimate(&h).expect("an estimate");
    let floor = crate::room::native::INITIAL_ESTIMATE_BPS;
    assert!(back >= floor, "back: {back} (cut: {decayed})");
    eprintln!("XX before {before} decayed {decayed} back {back}");
    let stats = h.room.ctx.stats.snapshot().counters();
    assert_eq!(
        counter(&stats, "egress_estimator_restarts"),
        Some(1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn the_subscribers_receiver_reports_give_loss_and_round_trip() {
    // Requirement: with our egress, what the subscriber's receiver reports say of our
    // SSRC reaches the room as str0m's statistics would: a packet lost for good (audio
    // has no RTX) counts in packets_lost_at_subscribers, and the consumer's stream view
    // has its packets, a loss fraction and a round trip measured on our sender reports.
    let (mut h, mut a, mut b, mid) = publisher_and_subscriber(MediaKind::Audio);
    let frame = |n: u64| vec![u8::try_from(n % 200).expect("small"); 60];
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Opus, 10, frame);
    let mut lost = 0;
    b.loses = Some(Box::new(move |d: &[u8]| {
        let lose = rtp_ssrc(d).is_some() && lost < 3;
        lost += u32::from(lose);
        lose
    }));
    send_frames(&mut h, &mut a, &mut b, mid, Codec::Opus, 300, frame);
    let stats = h.room.ctx.stats.snapshot().counters();
    let count = |name: &str| counter(&stats, name);
    assert_eq!(count("packets_lost_at_subscribers"), Some(3), "{stats:?}");
    let producer = h.room.participants[&a.key].published()[&mid];
    let view = h.room.participants[&b.key].consumers()[&producer]
        .egress()
        .clone();
    assert!(view.packets >= 300, "{view:?}");
    assert!(view.loss.is_some(), "{view:?}");
    assert!(view.rtt_ms.is_some(), "{view:?}");
}
