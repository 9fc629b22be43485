//! Client messages other than offer/answer, and publishing/unpublishing producers.

use std::time::Duration;

use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::negotiation::Outcome;
use signaling::{ClientMessage, ErrorCode, MediaKind, Quality, ServerMessage};
use str0m::Candidate;
use str0m::media::Mid;
use tracing::{debug, info};

use super::Room;
use super::producer::{MuteChange, Producer};

/// Distinct remote candidate addresses one participant may signal: a browser signals a
/// handful per ICE session; unbounded, they would grow the room's and str0m's lists forever.
const MAX_REMOTE_CANDIDATES: usize = 64;

impl Room {
    /// Handle one message of a joined participant.
    pub(super) fn signal(&mut self, key: ParticipantId, message: ClientMessage) {
        match message {
            ClientMessage::Offer { sdp } => self.client_offer(key, sdp),
            ClientMessage::Answer { sdp } => self.client_answer(key, sdp),
            ClientMessage::Candidate { candidate } => self.client_candidate(key, candidate),

            ClientMessage::Subscribe {
                track_id,
                quality,
                paused,
            } => self.subscribe(key, &track_id, quality, paused),
            ClientMessage::Unsubscribe { track_id } => self.unsubscribe(key, &track_id),
            ClientMessage::Mute { track_id, muted } => self.mute(key, &track_id, muted),
            // The session answers these itself.
            ClientMessage::Join { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::Leave
            | ClientMessage::Ping { .. } => {}
        }
    }

    fn client_candidate(
        &mut self,
        key: ParticipantId,
        candidate: Option<signaling::IceCandidateInit>,
    ) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let _g = p.span().clone().entered();
        let Some(init) = candidate.filter(|c| !c.candidate.is_empty()) else {
            debug!("client signalled end of candidates");
            return;
        };
        let line = init.candidate.strip_prefix("a=").unwrap_or(&init.candidate);
        match Candidate::from_sdp_string(line) {
            Ok(candidate)
                if !p
                    .media_path()
                    .has_room_for_candidate(candidate.addr(), MAX_REMOTE_CANDIDATES) =>
            {
                drop(_g);
                self.reply_error(
                    key,
                    ErrorCode::TooLarge,
                    format!("over {MAX_REMOTE_CANDIDATES} remote candidates; this one is ignored"),
                );
            }
            Ok(candidate) => {
                debug!(%candidate, "remote candidate added");
                p.media_path_mut()
                    .remote_candidate(candidate.addr(), candidate.kind());
                p.rtc_mut().add_remote_candidate(candidate);
                drop(_g);
                p.drain(
                    self.ctx.media.as_mut(),
                    &self.ctx.stats,
                    &mut self.events,
                    self.now,
                );
            }
            // ICE-lite learns the client's address from its checks; a candidate we cannot
            // read only costs us that hint.
            Err(e) => {
                debug!(error = %e, candidate = %init.candidate, "unreadable remote candidate ignored")
            }
        }
    }

    /// The producer a client's `track_id` names: none for an id of no track of this room,
    /// or one that is not spelt as the server spells ids.
    pub(super) fn producer_by_track(&self, track_id: &str) -> Option<ProducerId> {
        let id = track_id.parse().ok()?;
        self.producers.contains_key(&id).then_some(id)
    }

    fn subscribe(&mut self, key: ParticipantId, track_id: &str, quality: Quality, paused: bool) {
        if self
            .participants
            .get(&key)
            .is_some_and(|p| !p.grants().can_subscribe)
        {
            self.reply_error(
                key,
                ErrorCode::Forbidden,
                "this participant's token does not allow subscribing".into(),
            );
            return;
        }
        let Some(producer) = self.producer_by_track(track_id) else {
            self.reply_error(
                key,
                ErrorCode::NotFound,
                format!("no track `{track_id}` in this room"),
            );
            return;
        };
        if self
            .producers
            .get(&producer)
            .is_some_and(|p| p.owner() == key)
        {
            self.reply_error(
                key,
                ErrorCode::BadRequest,
                "cannot subscribe to your own track".into(),
            );
            return;
        }
        self.add_consumer(key, producer);
        if let Some(consumer) = self
            .participants
            .get_mut(&key)
            .and_then(|p| p.consumers_mut().get_mut(&producer))
        {
            consumer.wish(quality, paused);
        }
        self.allocate_layers(key, self.now);
    }

    fn unsubscribe(&mut self, key: ParticipantId, track_id: &str) {
        let producer = self.producer_by_track(track_id);
        let subscribed = producer.is_some_and(|pk| {
            self.participants
                .get(&key)
                .is_some_and(|p| p.consumers().contains_key(&pk))
        });
        match producer {
            Some(pk) if subscribed => self.remove_consumer(key, pk),
            _ => self.reply_error(
                key,
                ErrorCode::NotFound,
                format!("not subscribed to `{track_id}`"),
            ),
        }
    }

    fn mute(&mut self, key: ParticipantId, track_id: &str, muted: bool) {
        let Some(pk) = self.producer_by_track(track_id) else {
            self.reply_error(
                key,
                ErrorCode::NotFound,
                format!("no track `{track_id}` in this room"),
            );
            return;
        };
        let Some(producer) = self.producers.get_mut(&pk) else {
            return;
        };
        if producer.owner() != key {
            self.reply_error(
                key,
                ErrorCode::Forbidden,
                "only the publisher can mute its track".into(),
            );
            return;
        }
        if let MuteChange::Visible(now) = producer.set_publisher_muted(muted) {
            self.broadcast(
                key,
                &ServerMessage::TrackMuted {
                    track_id: track_id.to_owned(),
                    muted: now,
                },
            );
        }
    }

    /// A new m-line the participant sends on becomes a producer, announced and auto-subscribed.
    pub(super) fn publish(&mut self, key: ParticipantId, mid: Mid) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(media) = p.rtc().media(mid) else {
            return;
        };
        let kind = match media.kind() {
            str0m::media::MediaKind::Audio => MediaKind::Audio,
            str0m::media::MediaKind::Video => MediaKind::Video,
        };
        let rids: Vec<String> = match media.rids_rx() {
            str0m::media::Rids::Specific(rids) => rids.iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        };
        let negotiated = media
            .remote_pts()
            .first()
            .and_then(|pt| p.rtc().codec_config().find(|params| params.pt() == *pt))
            .map(|params| params.spec());
        let id = ProducerId::new(self.ctx.services.next_number());
        let interval = Duration::from_millis(self.ctx.config.keyframe_request_interval_ms);
        let producer = Producer::new(id, key, mid, kind, negotiated, rids, interval);
        {
            let _g = p.span().enter();
            info!(track = %id, %mid, ?kind, codec = %producer.codec_name(), simulcast = ?producer.rids(), "track published");
        }
        p.publish(mid, id);
        let track = producer.track();
        self.producers.insert(id, producer);
        self.broadcast(key, &ServerMessage::TrackPublished { track });
        let auto: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|s| s.id() != key && s.auto_subscribes())
            .map(|s| s.id())
            .collect();
        for subscriber in auto {
            self.add_consumer(subscriber, id);
        }
    }

    /// A producer is gone: stop every consumer of it and tell the room.
    pub(super) fn unpublish(&mut self, producer_key: ProducerId) {
        let Some(producer) = self.producers.remove(&producer_key) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&producer.owner()) {
            p.unpublish(producer.mid());
            let _g = p.span().enter();
            info!(track = %producer.id(), "track unpublished");
        }
        for subscriber in producer.subscribers() {
            if let Some(p) = self.participants.get_mut(subscriber)
                && p.consumers_mut()
                    .get_mut(&producer_key)
                    .is_some_and(|c| c.negotiation_mut().unsubscribe() == Outcome::Drop)
            {
                p.consumers_mut().remove(&producer_key);
            }
        }
        self.broadcast(
            producer.owner(),
            &ServerMessage::TrackUnpublished {
                track_id: producer.id().to_string(),
            },
        );
        for subscriber in producer.subscribers().to_vec() {
            self.maybe_offer(subscriber);
        }
    }
}
