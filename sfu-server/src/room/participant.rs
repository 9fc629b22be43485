//! A participant: its peer connection (`Rtc`), what it publishes and what it receives.

use std::collections::HashMap;
use std::time::Instant;

use sfu_core::bandwidth::Downlink;
use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::layers::LayerChoice;
use sfu_core::rate::TokenBucket;
use signaling::token::Grants;
use str0m::bwe::Bitrate;
use str0m::channel::ChannelId;
use str0m::media::Mid;
use str0m::rtp::Ssrc;
use str0m::{Event, Input, Output, Rtc};
use tracing::{Span, warn};

use super::Identity;
use super::consumer::Consumer;
use super::native::NativeEgress;
use super::offer_state::OfferState;
use super::outbox::Outbox;
use super::path_view::MediaPathView;
use super::presence::Presence;
use super::rtcp_stats::{FeedbackStream, FeedbackTotals};
use crate::egress::Egress;
use crate::stats::Stats;

/// One peer connection in the room.
pub struct Participant {
    id: ParticipantId,
    name: String,
    /// Log span carrying room and participant ids.
    span: Span,
    /// The WebRTC stack of this peer connection.
    rtc: Rtc,
    /// Our own egress of its forwarded media, with `egress = "native"`.
    native: Option<NativeEgress>,
    /// Messages toward its signaling session.
    outbox: Outbox,
    /// Its server ICE ufrag (the UDP routing key).
    ufrag: String,
    /// Subscribe to new tracks automatically.
    auto_subscribe: bool,
    /// What its join token allows.
    grants: Grants,
    /// Who its join token says it is, until when (without tokens, nobody in particular).
    identity: Option<Identity>,
    /// When `rtc` next wants `Input::Timeout`.
    next_timeout: Instant,
    /// Packets were written to `rtc` and it waits in the room's `to_drain`.
    drain_due: bool,
    /// Its media path and signaling connection over time.
    presence: Presence,
    /// The server's offers and the client's offer rate.
    offers: OfferState,
    /// Its downlink estimate and how it is shared.
    downlink: Downlink,
    /// Published tracks by m-line.
    published: HashMap<Mid, ProducerId>,
    /// Incoming SSRC → (producer, layer), resolved on first packet.
    rx_by_ssrc: HashMap<Ssrc, (ProducerId, u8)>,
    /// Consumers by producer.
    consumers: HashMap<ProducerId, Consumer>,
    /// Open data channels and their labels.
    channels: HashMap<ChannelId, String>,
    /// Its budget of data channel messages relayed per second.
    data_rate: TokenBucket,
    /// Its media path as operators see it.
    media_path: MediaPathView,
    /// Cumulative RTCP feedback counts per stream, as last reported by str0m.
    feedback_totals: FeedbackTotals,
}

/// What an ICE restart changed.
pub struct IceRestart {
    /// The ufrag it was known by.
    pub old_ufrag: String,
    /// The password of its new ufrag.
    pub password: std::sync::Arc<str>,
}

/// Who joins and on what terms: what a new [`Participant`] is made of.
pub struct Joining {
    /// Its id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Log span carrying room and participant ids.
    pub span: Span,
    /// Its peer connection, with our candidates added.
    pub rtc: Rtc,
    /// Our own egress beside it, with `egress = "native"`.
    pub native: Option<NativeEgress>,
    /// Its messages' way to its signaling session.
    pub outbox: Outbox,
    /// Subscribe to new tracks automatically.
    pub auto_subscribe: bool,
    /// What its join token allows.
    pub grants: Grants,
    /// Who its join token says it is.
    pub identity: Option<Identity>,
    /// Its media path and resume token from the join on.
    pub presence: Presence,
    /// The server's first offer and the client's offer rate.
    pub offers: OfferState,
    /// Data channel messages relayed per second.
    pub data_per_second: u32,
}

impl Participant {
    /// A participant joining now; its ufrag comes from its peer connection.
    pub fn new(joining: Joining) -> Self {
        let Joining {
            id,
            name,
            span,
            mut rtc,
            native,
            outbox,
            auto_subscribe,
            grants,
            identity,
            presence,
            offers,
            data_per_second,
        } = joining;
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Self {
            id,
            name,
            span,
            rtc,
            native,
            outbox,
            ufrag,
            auto_subscribe,
            grants,
            identity,
            next_timeout: presence.joined_at(),
            drain_due: false,
            presence,
            offers,
            downlink: Downlink::default(),
            published: HashMap::new(),
            rx_by_ssrc: HashMap::new(),
            consumers: HashMap::new(),
            channels: HashMap::new(),
            data_rate: TokenBucket::new(data_per_second),
            media_path: MediaPathView::default(),
            feedback_totals: FeedbackTotals::default(),
        }
    }

    /// Its id, in the room and on the wire.
    pub fn id(&self) -> ParticipantId {
        self.id
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Log span carrying room and participant ids.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Its peer connection.
    pub fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    /// Its peer connection, to feed or change.
    pub fn rtc_mut(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    /// Its messages toward its signaling session.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Its messages toward its signaling session, to queue or flush.
    pub fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// Its server ICE ufrag (the UDP routing key).
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// After an ICE restart its peer connection has a new ufrag: it becomes the one this
    /// participant is known by, and the old remote candidates are forgotten. `None` when
    /// the ufrag did not change.
    pub fn take_new_ufrag(&mut self, now: Instant) -> Option<IceRestart> {
        let credentials = self.rtc.direct_api().local_ice_credentials();
        if credentials.ufrag == self.ufrag {
            return None;
        }
        self.record_path_event(now, "ice_restart");
        self.media_path.forget_remote_candidates();
        Some(IceRestart {
            old_ufrag: std::mem::replace(&mut self.ufrag, credentials.ufrag),
            password: credentials.pass.into(),
        })
    }

    /// Whether it subscribes to new tracks automatically.
    pub fn auto_subscribes(&self) -> bool {
        self.auto_subscribe
    }

    /// What its join token allows.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Who its join token says it is.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Its media path and signaling connection.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Its media path and signaling connection, as they change.
    pub fn presence_mut(&mut self) -> &mut Presence {
        &mut self.presence
    }

    /// The server's offers to it.
    pub fn offers(&self) -> &OfferState {
        &self.offers
    }

    /// The server's offers to it, as negotiation moves on.
    pub fn offers_mut(&mut self) -> &mut OfferState {
        &mut self.offers
    }

    /// Whether its peer connection wants its timeout handled at `now`.
    pub fn timeout_due(&self, now: Instant) -> bool {
        self.next_timeout <= now
    }

    /// Packets were written to it; says whether it must be queued for draining (it is not
    /// queued already).
    pub fn mark_drain_due(&mut self) -> bool {
        !std::mem::replace(&mut self.drain_due, true)
    }

    /// It leaves the drain queue.
    pub fn clear_drain_due(&mut self) {
        self.drain_due = false;
    }

    /// The latest downlink estimate, bits per second.
    pub fn bandwidth_estimate(&self) -> Option<u64> {
        self.downlink.estimate()
    }

    /// Its estimator's new estimate, bits per second.
    pub fn on_bandwidth_estimate(&mut self, bps: u64) {
        self.downlink.on_estimate(bps);
    }

    /// Share its downlink between its video consumers wanting `choices` (most important
    /// first) and `audio_consumers`, retargeting its estimator's probes when they change.
    /// Returns the video budget and each video consumer's layer.
    pub fn share_downlink(
        &mut self,
        choices: &[LayerChoice],
        audio_consumers: u64,
        now: Instant,
    ) -> (Option<u64>, Vec<Option<u8>>) {
        let allocation = self.downlink.allocate(choices, audio_consumers, now);
        if let Some(bps) = allocation.probe_for {
            match &mut self.native {
                Some(native) => native.want(bps, now),
                None => self.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(bps)),
            }
        }
        (allocation.budget, allocation.picks)
    }

    /// Its published tracks by m-line.
    pub fn published(&self) -> &HashMap<Mid, ProducerId> {
        &self.published
    }

    /// It publishes `producer` on `mid`.
    pub fn publish(&mut self, mid: Mid, producer: ProducerId) {
        self.published.insert(mid, producer);
    }

    /// It no longer publishes on `mid`; returns the track it published there.
    pub fn unpublish(&mut self, mid: Mid) -> Option<ProducerId> {
        let producer = self.published.remove(&mid)?;
        self.rx_by_ssrc.retain(|_, (p, _)| *p != producer);
        Some(producer)
    }

    /// The track and layer an incoming SSRC was found to carry.
    pub fn source_of(&self, ssrc: Ssrc) -> Option<(ProducerId, u8)> {
        self.rx_by_ssrc.get(&ssrc).copied()
    }

    /// Remember that `ssrc` carries `layer` of `producer`, unless that track has `max`
    /// SSRCs already (a sender inventing SSRCs gets no table entry each); says whether it
    /// was remembered.
    pub fn learn_source(
        &mut self,
        ssrc: Ssrc,
        producer: ProducerId,
        layer: u8,
        max: usize,
    ) -> bool {
        let known = self
            .rx_by_ssrc
            .values()
            .filter(|(p, _)| *p == producer)
            .count();
        if known >= max {
            return false;
        }
        self.rx_by_ssrc.insert(ssrc, (producer, layer));
        true
    }

    /// Its consumers by producer.
    pub fn consumers(&self) -> &HashMap<ProducerId, Consumer> {
        &self.consumers
    }

    /// Its consumers by producer, to add, change or drop.
    pub fn consumers_mut(&mut self) -> &mut HashMap<ProducerId, Consumer> {
        &mut self.consumers
    }

    /// Its peer connection, its consumers and our egress (when native) at once, to write
    /// one's media into the other.
    pub fn parts_mut(
        &mut self,
    ) -> (
        &mut Rtc,
        &mut HashMap<ProducerId, Consumer>,
        Option<&mut NativeEgress>,
    ) {
        (&mut self.rtc, &mut self.consumers, self.native.as_mut())
    }

    /// Our own egress of its media, with `egress = "native"`.
    pub fn native_mut(&mut self) -> Option<&mut NativeEgress> {
        self.native.as_mut()
    }

    /// An SDP of its peer connection as it goes to the client: when our egress sends its
    /// media, the SSRCs str0m announces are not the ones it sends, so they are left out.
    pub fn sdp_for_client(&self, sdp: String) -> String {
        if self.native.is_some() {
            sfu_core::sdp::without_ssrc_lines(&sdp)
        } else {
            sdp
        }
    }

    /// The consumer sending on `mid`, if any.
    pub fn consumer_by_mid(&self, mid: Mid) -> Option<ProducerId> {
        self.consumers
            .iter()
            .find(|(_, c)| c.mid() == Some(mid))
            .map(|(k, _)| *k)
    }

    /// A data channel opened.
    pub fn channel_opened(&mut self, id: ChannelId, label: String) {
        self.channels.insert(id, label);
    }

    /// A data channel closed.
    pub fn channel_closed(&mut self, id: ChannelId) {
        self.channels.remove(&id);
    }

    /// The label of an open data channel.
    pub fn channel_label(&self, id: ChannelId) -> Option<&str> {
        self.channels.get(&id).map(String::as_str)
    }

    /// Its open data channel with this label.
    pub fn channel_labelled(&self, label: &str) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, l)| *l == label)
            .map(|(id, _)| *id)
    }

    /// Whether a data message it sends at `now` is within its rate.
    pub fn admit_data(&mut self, now: Instant) -> bool {
        self.data_rate.admit(now)
    }

    /// Its media path as operators see it.
    pub fn media_path(&self) -> &MediaPathView {
        &self.media_path
    }

    /// Record a media path event at `now`, timed from its join.
    pub fn record_path_event(&mut self, now: Instant, event: &str) {
        self.media_path.record(self.presence.since_join(now), event);
    }

    /// Its media path as operators see it, to update.
    pub fn media_path_mut(&mut self) -> &mut MediaPathView {
        &mut self.media_path
    }

    /// The cumulative feedback counts of a stream: stores `totals`, returns the previous.
    pub fn swap_feedback_totals(&mut self, stream: FeedbackStream, totals: [u64; 3]) -> [u64; 3] {
        self.feedback_totals
            .insert(stream, totals)
            .unwrap_or([0; 3])
    }

    /// The earliest time this participant needs attention.
    pub fn next_deadline(&self, resume_grace: std::time::Duration) -> Instant {
        [
            self.offers.not_before(),
            self.presence.deadline(resume_grace),
        ]
        .into_iter()
        .chain([self.native.as_ref().map(NativeEgress::timeout_at)])
        .flatten()
        .fold(self.next_timeout, Instant::min)
    }

    /// Drain its peer connection until it asks for a timeout in the future: send datagrams
    /// (a burst to one address as one GSO send where it can), queue events for the room.
    ///
    /// str0m's pacer releases one packet per timeout and asks for the next timeout right
    /// away. Handing those due timeouts back to the room loop would cost a timer round trip
    /// (about a millisecond) per packet and cap a subscriber at ~1000 packets/s, so they are
    /// handled here.
    pub fn drain(
        &mut self,
        media: &mut dyn Egress,
        stats: &Stats,
        events: &mut std::collections::VecDeque<(ParticipantId, Event)>,
        now: Instant,
    ) {
        let mut due_left = DUE_TIMEOUTS_PER_DRAIN;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    if at <= now
                        && due_left > 0
                        && self.rtc.handle_input(Input::Timeout(now)).is_ok()
                    {
                        due_left -= 1;
                        continue;
                    }
                    self.next_timeout = at;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if let Some(native) = &mut self.native {
                        native.observe(&t, now);
                    }
                    media.transmit(t.proto, t.source, t.destination, &t.contents, stats)
                }
                Ok(Output::Event(event)) => events.push_back((self.id, event)),
                Err(e) => {
                    let _g = self.span.enter();
                    warn!(error = %e, "peer connection failed");
                    drop(_g);
                    self.record_path_event(now, "peer_connection_failed");
                    ::metrics::counter!(crate::metric_names::CONNECTION_FAILURES, "reason" => "rtc_error")
                        .increment(1);
                    self.rtc.disconnect();
                    self.next_timeout = now;
                    break;
                }
            }
        }
        media.flush(stats);
    }
}

/// How many already-due timeouts one drain handles before yielding to the room loop.
const DUE_TIMEOUTS_PER_DRAIN: usize = 256;
