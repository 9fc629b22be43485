//! Events from participants' `Rtc`s: media fan-out, keyframe requests, connection state.

use sfu_core::codec::is_keyframe_start;
use sfu_core::forwarder::{DropReason, PacketInfo};
use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::rtp_out::audio_level_byte;
use str0m::bwe::BweKind;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Event, IceConnectionState};
use tracing::{debug, info, warn};

use super::Room;
use super::consumer::Delivery;
use super::native::NativeEgress;
use super::native::stream::OutPacket;
use super::negotiation::MAX_SSRCS_PER_TRACK;
use super::vp8;
use crate::stats::{add, bump};

impl Room {
    pub(super) fn handle_event(&mut self, key: ParticipantId, event: Event) {
        match event {
            Event::RtpPacket(packet) => self.forward_rtp(key, packet),
            Event::KeyframeRequest(request) => {
                self.subscriber_keyframe_request(key, request.mid, request.kind)
            }
            Event::ChannelOpen(id, label) => self.channel_open(key, id, label),
            Event::ChannelData(data) => self.relay_data(key, data),
            Event::ChannelClose(id) => {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.channel_closed(id);
                }
            }
            Event::IceConnectionStateChange(state) => self.ice_state(key, state),
            Event::MediaEgressStats(stats) => self.egress_stats(key, stats),
            Event::PeerStats(stats) => {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.media_path_mut().on_peer_stats(&stats);
                }
            }
            Event::MediaIngressStats(stats) => self.ingress_stats(key, stats),
            Event::EgressBitrateEstimate(estimate) => {
                let bps = match estimate {
                    BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. } => {
                        estimate.as_u64()
                    }
                    _ => return,
                };
                self.bandwidth_estimate(key, bps);
            }
            Event::Connected => {
                if let Some(p) = self.participants.get_mut(&key) {
                    let since_join = p.presence().since_join(self.now);
                    if p.presence_mut().dtls_connected() {
                        ::metrics::histogram!(crate::metric_names::JOIN_SECONDS)
                            .record(since_join.as_secs_f64());
                    }
                    p.record_path_event(self.now, "dtls_connected");
                    let _g = p.span().enter();
                    info!("peer connection connected (ICE + DTLS)");
                }
            }
            Event::Closed => {
                if let Some(p) = self.participants.get(&key) {
                    let _g = p.span().enter();
                    info!("peer closed DTLS/SCTP");
                }
            }
            other => {
                if let Some(p) = self.participants.get(&key) {
                    let _g = p.span().enter();
                    debug!(event = ?other, "rtc event");
                }
            }
        }
    }

    fn ice_state(&mut self, key: ParticipantId, state: IceConnectionState) {
        let timeout = std::time::Duration::from_secs(self.ctx.config.ice_connect_timeout_secs);
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let _g = p.span().clone().entered();
        info!(?state, "ICE connection state changed");
        let name = format!("ice_{state:?}").to_lowercase();
        p.record_path_event(self.now, &name);
        match state {
            IceConnectionState::Disconnected => {
                p.presence_mut().ice_disconnected(self.now, timeout)
            }
            IceConnectionState::Connected | IceConnectionState::Completed => {
                p.presence_mut().ice_back()
            }
            _ => {}
        }
    }

    /// Find which producer and layer an incoming packet belongs to (cached per SSRC).
    fn resolve_source(
        &mut self,
        key: ParticipantId,
        packet: &RtpPacket,
    ) -> Option<(ProducerId, u8)> {
        let p = self.participants.get_mut(&key)?;
        let ssrc = packet.header.ssrc;
        if let Some(found) = p.source_of(ssrc) {
            return Some(found);
        }
        let (mid, rid) = {
            let mut api = p.rtc_mut().direct_api();
            let stream = api.stream_rx(&ssrc)?;
            (stream.mid(), stream.rid())
        };
        let producer_key = *p.published().get(&mid)?;
        let producer = self.producers.get(&producer_key)?;
        let layer = producer.layer_of(rid.as_deref());
        // A track's layers and their repair streams; a sender inventing SSRCs beyond those
        // gets its packets dropped rather than a table entry each.
        if !p.learn_source(ssrc, producer_key, layer, MAX_SSRCS_PER_TRACK) {
            return None;
        }
        Some((producer_key, layer))
    }

    /// Fan one incoming packet out to every consumer of its producer.
    fn forward_rtp(&mut self, key: ParticipantId, packet: RtpPacket) {
        let Some((producer_key, layer)) = self.resolve_source(key, &packet) else {
            bump(&self.ctx.stats.rtp_not_forwarded);
            return;
        };
        self.update_codec(key, producer_key, &packet);
        let Some(producer) = self.producers.get_mut(&producer_key) else {
            return;
        };
        producer.on_packet(layer, packet.payload.len(), packet.timestamp);
        if producer.is_admin_muted() {
            bump(&self.ctx.stats.rtp_not_forwarded);
            return;
        }
        if let Some(level) = packet.header.ext_vals.audio_level {
            self.speakers
                .observe(&producer.owner(), level, packet.timestamp);
        }
        let vp8_in = vp8::read(producer.codec(), &packet.payload);
        let info = PacketInfo {
            layer,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            keyframe_start: is_keyframe_start(producer.codec(), &packet.payload),
            arrival: packet.timestamp,
            vp8: vp8_in.map(|(_, fields)| fields),
        };
        let ext = forwarded_extensions(&packet.header.ext_vals);
        let audio_level = ext
            .audio_level
            .map(|level| audio_level_byte(level, ext.voice_activity.unwrap_or(false)));
        let video_orientation = ext.video_orientation.map(|o| o as u8);
        let in_pt = packet.header.payload_type;
        let video = producer.codec().is_video();
        // Our own egress retransmits video from the producer's copy of each payload.
        let native_mode = self.ctx.config.egress == config::EgressMode::Native;
        let payload_id = (native_mode && video).then(|| producer.remember(&packet.payload));
        let mut keyframe_wanted = None;
        let mut switched = Vec::new();
        let mut forwarded = 0u64;
        for subscriber in producer.subscribers() {
            let Some(s) = self.participants.get_mut(subscriber) else {
                continue;
            };
            let (rtc, consumers, native) = s.parts_mut();
            let Some(consumer) = consumers.get_mut(&producer_key) else {
                continue;
            };
            let Some(mid) = consumer.active_mid() else {
                continue;
            };
            let (munged, vp8_out) = match consumer.decide(&info) {
                Delivery::Forward {
                    forwarded,
                    keyframe_waited,
                } => {
                    if forwarded.starts_layer.is_some() {
                        switched.push(*subscriber);
                        bump(&self.ctx.stats.layer_switches);
                    }
                    if let Some(waited) = keyframe_waited {
                        self.keyframe_wait_seconds.record(waited.as_secs_f64());
                    }
                    (forwarded.munged, forwarded.vp8)
                }
                Delivery::Drop(reason) => {
                    if let DropReason::WaitingForKeyframe(layer) = reason {
                        keyframe_wanted = Some(layer);
                    }
                    bump(&self.ctx.stats.rtp_not_forwarded);
                    continue;
                }
            };
            let out_pt = consumer.out_pt(in_pt, || {
                producer
                    .params()
                    .and_then(|(_, params)| rtc.codec_config().match_params(*params))
                    .map(|params| params.pt())
            });
            let Some(out_pt) = out_pt else {
                bump(&self.ctx.stats.rtp_not_forwarded);
                continue;
            };
            if let Some(native) = native {
                let out = OutPacket {
                    payload_type: *out_pt,
                    marker: packet.header.marker,
                    seq: munged.seq,
                    timestamp: munged.timestamp,
                    payload: &packet.payload,
                    audio_level,
                    video_orientation,
                    vp8: vp8_in.as_ref().and(vp8_out),
                    payload_id,
                };
                let media = self.ctx.media.as_mut();
                let sent = native.send(rtc, mid, &out, media, &self.ctx.stats, self.now);
                if sent.is_err() {
                    bump(&self.ctx.stats.egress_not_sent);
                    continue;
                }
                forwarded += 1;
                continue;
            }
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                bump(&self.ctx.stats.rtp_not_forwarded);
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                munged.seq.into(),
                munged.timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(ext.clone())
            .nackable(video);
            let patch = vp8_in
                .as_ref()
                .zip(vp8_out)
                .and_then(|((descriptor, _), out)| vp8::patch(descriptor, out));
            if let Some(patch) = patch {
                write = write.vp8_patch(patch);
            }
            stream.write_rtp(write);
            forwarded += 1;
            if s.mark_drain_due() {
                self.to_drain.push(*subscriber);
            }
        }
        if let Some(layer) = keyframe_wanted {
            self.request_keyframe(producer_key, layer, KeyframeRequestKind::Fir);
        }
        // Counted once per incoming packet, not once per subscriber: one atomic add each.
        let forwarded_bytes = forwarded * u64::try_from(packet.payload.len()).unwrap_or(0);
        add(&self.ctx.stats.rtp_forwarded, forwarded);
        add(&self.ctx.stats.rtp_forwarded_bytes, forwarded_bytes);
        self.forwarded_packets += forwarded;
        self.forwarded_bytes += forwarded_bytes;
        if forwarded > 0 {
            self.forwarded_arrivals.push(packet.timestamp);
        }
        for subscriber in switched {
            self.report_quality(subscriber);
        }
    }

    /// Keep the producer's codec and payload parameters in step with what its packets carry.
    fn update_codec(&mut self, key: ParticipantId, producer_key: ProducerId, packet: &RtpPacket) {
        let pt = packet.header.payload_type;
        let Some(producer) = self.producers.get_mut(&producer_key) else {
            return;
        };
        if producer.knows_payload_type(pt) {
            return;
        }
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let Some(params) = p.rtc().codec_config().find(|params| params.pt() == pt) else {
            return;
        };
        producer.set_payload(pt, *params);
    }

    /// An SRTCP packet from a participant whose media our own egress sends: what it asks
    /// of our streams (str0m does not know their SSRCs) is acted on here; str0m still
    /// gets the packet for the rest.
    pub(super) fn native_feedback(&mut self, key: ParticipantId, sealed: &[u8]) {
        let Some(native) = self.participants.get_mut(&key).and_then(|p| p.native_mut()) else {
            return;
        };
        let asked = match native.on_rtcp(sealed, self.now) {
            Ok(asked) => asked,
            Err(_) => {
                bump(&self.ctx.stats.egress_feedback_rejected);
                return;
            }
        };
        add(&self.ctx.stats.egress_twcc_reports, asked.twcc_reports);
        self.native_estimate(key);
        for (mid, seq) in asked.nacks {
            self.retransmit(key, mid, seq);
        }
        for (mid, kind) in asked.keyframe_requests {
            self.subscriber_keyframe_request(key, mid, kind);
        }
    }

    /// A new downlink estimate of our own egress's estimator, if it has one, goes to the
    /// subscriber's allocation.
    pub(super) fn native_estimate(&mut self, key: ParticipantId) {
        let estimate = self
            .participants
            .get_mut(&key)
            .and_then(|p| p.native_mut())
            .and_then(NativeEgress::poll_estimate);
        if let Some(bps) = estimate {
            self.bandwidth_estimate(key, bps);
        }
    }

    /// Subscriber `key`'s estimator (str0m's or ours) has a new downlink estimate.
    fn bandwidth_estimate(&mut self, key: ParticipantId, bps: u64) {
        if let Some(p) = self.participants.get_mut(&key) {
            let _g = p.span().clone().entered();
            debug!(bps, "bandwidth estimate");
            p.on_bandwidth_estimate(bps);
        }
    }

    /// Our own egress's estimator work and probes that are due at `now`, for subscriber
    /// `key`.
    pub(super) fn native_timeout(&mut self, key: ParticipantId, now: std::time::Instant) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let (rtc, _, native) = p.parts_mut();
        let Some(native) = native else {
            return;
        };
        if native.timeout_at() > now {
            return;
        }
        let broken = native.estimator_broken();
        let media = self.ctx.media.as_mut();
        add(
            &self.ctx.stats.egress_probe_packets,
            native.on_timeout(rtc, media, &self.ctx.stats, now),
        );
        let failed = !broken && native.estimator_broken();
        let restarts = native.take_estimate_restarts();
        if failed {
            bump(&self.ctx.stats.egress_estimator_failures);
            let _g = p.span().enter();
            warn!("downlink estimator failed; its last estimate stays");
        }
        if restarts > 0 {
            add(&self.ctx.stats.egress_estimator_restarts, restarts);
            let _g = p.span().enter();
            info!("downlink estimate starts again: a new path, or feedback after a silence");
        }
        self.native_estimate(key);
    }

    /// Our own egress's sender reports that are due, for every subscriber it sends to.
    pub(super) fn send_sender_reports(&mut self, now: std::time::Instant) {
        let wallclock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for (key, p) in &mut self.participants {
            if let Some(native) = p.native_mut() {
                let media = self.ctx.media.as_mut();
                add(
                    &self.ctx.stats.egress_sender_reports,
                    native.send_reports(now, wallclock, media, &self.ctx.stats),
                );
                for stats in native.stats_due(now) {
                    self.events
                        .push_back((*key, Event::MediaEgressStats(stats)));
                }
            }
        }
    }

    /// Send packet `seq` of a subscriber's m-line `mid` again, from its producer's copy.
    fn retransmit(&mut self, key: ParticipantId, mid: str0m::media::Mid, seq: u16) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(producer_key) = p.consumer_by_mid(mid) else {
            return;
        };
        let Some(payloads) = self
            .producers
            .get(&producer_key)
            .and_then(|pr| pr.history())
        else {
            return;
        };
        let (rtc, _, native) = p.parts_mut();
        let Some(native) = native else {
            return;
        };
        let media = self.ctx.media.as_mut();
        match native.resend(rtc, mid, seq, payloads, media, &self.ctx.stats, self.now) {
            Ok(true) => bump(&self.ctx.stats.egress_retransmitted),
            Ok(false) => {}
            Err(_) => bump(&self.ctx.stats.egress_not_sent),
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR) on one of its consumers: the same kind
    /// of request goes to the publisher of the layer it receives.
    fn subscriber_keyframe_request(
        &mut self,
        key: ParticipantId,
        mid: str0m::media::Mid,
        kind: KeyframeRequestKind,
    ) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let Some(producer_key) = p.consumer_by_mid(mid) else {
            return;
        };
        let lowest = self
            .producers
            .get(&producer_key)
            .map_or(0, |producer| producer.lowest_layer());
        let layer = p
            .consumers()
            .get(&producer_key)
            .and_then(|c| c.keyframe_layer())
            .unwrap_or(lowest);
        self.request_keyframe(producer_key, layer, kind);
    }

    /// Ask a publisher for a keyframe of one layer, at most once per throttle interval.
    ///
    /// A consumer that starts a layer (a new subscriber, or a switch) has no decoder state for
    /// it, so callers ask for a full intra refresh (FIR); it goes out as a PLI when the
    /// publisher did not negotiate FIR for its codec.
    pub(super) fn request_keyframe(
        &mut self,
        producer_key: ProducerId,
        layer: u8,
        kind: KeyframeRequestKind,
    ) {
        let Some(producer) = self.producers.get_mut(&producer_key) else {
            return;
        };
        let Ok(ask) = producer.keyframe_request(layer, kind, self.now) else {
            bump(&self.ctx.stats.keyframe_requests_throttled);
            return;
        };
        let Some(p) = self.participants.get_mut(&producer.owner()) else {
            return;
        };
        let requested = match p.rtc_mut().direct_api().stream_rx_by_mid(ask.mid, ask.rid) {
            Some(stream) => {
                stream.request_keyframe(ask.kind);
                true
            }
            None => false,
        };
        if requested {
            bump(&self.ctx.stats.keyframe_requests_sent);
            p.drain(
                self.ctx.media.as_mut(),
                &self.ctx.stats,
                &mut self.events,
                self.now,
            );
        } else {
            let _g = p.span().enter();
            warn!(mid = %ask.mid, layer, "no incoming stream to request a keyframe from yet");
        }
    }
}

/// The header extensions a subscriber should see from the publisher's packet.
fn forwarded_extensions(incoming: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: incoming.audio_level,
        voice_activity: incoming.voice_activity,
        video_orientation: incoming.video_orientation,
        ..ExtensionValues::default()
    }
}
