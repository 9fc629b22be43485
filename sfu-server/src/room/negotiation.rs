//! Offer/answer in both directions, with the server as the impolite peer.
//!
//! The client offers to publish or unpublish; the server answers and names the
//! track ids it gave. The server offers whenever the set of tracks it sends to a
//! participant changes, never with more than one offer outstanding, and ignores
//! a client offer that arrives while its own is unanswered (the client rolls
//! back and re-offers after answering).

use std::time::Duration;

use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::negotiation::Outcome;
use sfu_core::publish::{OfferRefusal, OfferedLine, PublishRules, check_offer};
use signaling::{ErrorCode, MediaKind, ServerMessage, TrackMap};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, Mid};
use tracing::{info, warn};

use super::Room;
use super::consumer::Consumer;
use super::participant;
use crate::limits::{self, Limit};

/// Most simulcast layers (rids) one published track may have: q, h and f.
pub(super) const MAX_SIMULCAST_LAYERS: usize = 3;
/// Most SSRCs one published track may declare or send on: each layer and its repair stream.
pub(super) const MAX_SSRCS_PER_TRACK: usize = 2 * MAX_SIMULCAST_LAYERS;

/// Pause before the server offers again what a refused answer left unnegotiated.
const OFFER_AGAIN_AFTER_REFUSED_ANSWER: Duration = Duration::from_secs(1);

impl Room {
    /// The client's offer: accept it, (un)publish what changed, answer with the track ids.
    pub(super) fn client_offer(&mut self, key: ParticipantId, sdp: String) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let _g = p.span().clone().entered();
        if p.offers().is_pending() {
            info!(
                "ignoring client offer: the server's offer is outstanding (glare, server is impolite)"
            );
            return;
        }
        if !p.offers_mut().admit_client_offer(self.now) {
            limits::hit(Limit::OffersPerSecond);
            drop(_g);
            self.refuse_offer(
                key,
                ErrorCode::RateLimited,
                format!(
                    "over {} offers per second; this offer is ignored: roll it back and offer again later",
                    self.ctx.config.max_offers_per_second
                ),
            );
            return;
        }
        let offer = match SdpOffer::from_sdp_string(&sdp) {
            Ok(offer) => offer,
            Err(e) => {
                warn!(error = %e, "unparsable client offer");
                drop(_g);
                self.refuse_offer(
                    key,
                    ErrorCode::BadRequest,
                    format!("invalid offer SDP: {e}"),
                );
                return;
            }
        };
        // Checked on str0m's own reading of the offer, before it changes any state: str0m
        // cannot take an accepted offer back.
        let rules = PublishRules {
            may_publish: p.grants().can_publish,
            max_tracks: self.ctx.config.max_tracks_per_participant,
            max_room_tracks: self.ctx.config.max_tracks_per_room,
            others_tracks: self
                .producers
                .values()
                .filter(|pr| pr.owner() != key)
                .count(),
            max_layers: MAX_SIMULCAST_LAYERS,
            max_ssrcs: MAX_SSRCS_PER_TRACK,
        };
        let lines = offered_lines(&offer, &sfu_core::sdp::bundle_mids(&sdp));
        let consumer_mids: Vec<String> = p
            .consumers()
            .values()
            .filter_map(|c| Some(c.mid()?.to_string()))
            .collect();
        if let Err(refusal) =
            check_offer(&lines, |mid| consumer_mids.iter().any(|m| m == mid), rules)
        {
            let (code, limit) = match refusal {
                OfferRefusal::NotAllowed => (ErrorCode::Forbidden, None),
                OfferRefusal::RoomFull { .. } => (ErrorCode::RoomFull, Some(Limit::TracksPerRoom)),
                OfferRefusal::TooManyTracks { .. } => {
                    (ErrorCode::TooLarge, Some(Limit::TracksPerParticipant))
                }
                OfferRefusal::TooManyLayers { .. } | OfferRefusal::TooManySsrcs { .. } => {
                    (ErrorCode::TooLarge, Some(Limit::StreamsPerTrack))
                }
            };
            if let Some(limit) = limit {
                limits::hit(limit);
            }
            info!(%refusal, "client offer refused");
            drop(_g);
            self.refuse_offer(key, code, refusal.to_string());
            return;
        }
        let answer = match p.rtc_mut().sdp_api().accept_offer(offer) {
            Ok(answer) => answer,
            Err(e) => {
                warn!(error = %e, "client offer refused");
                self.refuse_offer(
                    key,
                    ErrorCode::BadRequest,
                    format!("offer not acceptable: {e}"),
                );
                return;
            }
        };
        info!("client offer accepted");
        p.offers_mut().client_negotiated();
        self.follow_ice_restart(key);
        if let Some(p) = self.participants.get_mut(&key) {
            p.drain(
                self.ctx.media.as_mut(),
                &self.ctx.stats,
                &mut self.events,
                self.now,
            );
        }
        self.sync_published(key, &sdp);
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let tracks: TrackMap = p
            .published()
            .iter()
            .filter_map(|(mid, pk)| {
                Some((mid.to_string(), self.producers.get(pk)?.id().to_string()))
            })
            .collect();
        let sdp = p.sdp_for_client(answer.to_sdp_string());
        info!(tracks = ?tracks, "answering client offer");
        self.send_to(key, ServerMessage::Answer { sdp, tracks });
        self.maybe_offer(key);
    }

    /// The client's answer to the server's outstanding offer.
    pub(super) fn client_answer(&mut self, key: ParticipantId, sdp: String) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let _g = p.span().clone().entered();
        let Some(pending) = p.offers_mut().take_pending() else {
            self.reply_error(
                key,
                ErrorCode::BadRequest,
                "no offer is outstanding to answer".into(),
            );
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(&sdp) {
            Ok(answer) => answer,
            Err(e) => {
                p.offers_mut().keep_pending(pending);
                warn!(error = %e, "unparsable client answer");
                self.reply_error(
                    key,
                    ErrorCode::BadRequest,
                    format!("invalid answer SDP: {e}"),
                );
                return;
            }
        };
        if let Err(e) = p.rtc_mut().sdp_api().accept_answer(pending, answer) {
            // str0m consumed the pending offer; the next offer starts afresh, after a pause
            // (a client that keeps answering wrong is not offered again at once, every time).
            warn!(error = %e, "client answer refused");
            Self::rollback_offered(p);
            p.offers_mut()
                .refused(self.now, OFFER_AGAIN_AFTER_REFUSED_ANSWER);
            self.reply_error(
                key,
                ErrorCode::BadRequest,
                format!("answer not acceptable: {e}"),
            );
            return;
        }
        info!("client answer accepted");
        let mut add_again: Vec<(ProducerId, Option<u8>)> = Vec::new();
        p.consumers_mut()
            .retain(|k, c| match c.negotiation_mut().answered() {
                Outcome::Keep => true,
                Outcome::Drop => false,
                Outcome::AddAgain => {
                    add_again.push((*k, c.max_layer()));
                    false
                }
            });
        p.drain(
            self.ctx.media.as_mut(),
            &self.ctx.stats,
            &mut self.events,
            self.now,
        );
        for (producer_key, max_layer) in add_again {
            self.add_consumer(key, producer_key);
            if let Some(consumer) = self
                .participants
                .get_mut(&key)
                .and_then(|p| p.consumers_mut().get_mut(&producer_key))
            {
                consumer.set_max_layer(max_layer);
            }
        }
        self.allocate_layers(key, self.now);
        self.maybe_offer(key);
    }

    /// After a failed negotiation, offered consumers go back to wanting an offer.
    fn rollback_offered(p: &mut participant::Participant) {
        p.consumers_mut()
            .retain(|_, c| c.negotiation_mut().rolled_back() != Outcome::Drop);
    }

    /// Offer the participant the tracks it should now receive, if anything changed and no
    /// offer is outstanding. The offer holds no more new tracks than keep it answerable
    /// under `max_sdp_bytes`; the others are not offered, and the participant is told.
    pub(super) fn maybe_offer(&mut self, key: ParticipantId) {
        let budget = self.ctx.config.max_sdp_bytes * 3 / 4;
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if !p.offers().may_offer() {
            return;
        }
        let mut adding: Vec<(u64, ProducerId)> = p
            .consumers()
            .iter()
            .filter(|(_, c)| c.negotiation().wants_adding())
            .map(|(k, c)| (c.created(), *k))
            .collect();
        adding.sort_unstable_by_key(|(created, _)| *created);
        let mut allowed = adding.len();
        let built = loop {
            let Some((offer, pending)) = Self::build_offer(p, &adding[..allowed]) else {
                break None;
            };
            let sdp = p.sdp_for_client(offer.to_sdp_string());
            if sdp.len() <= budget || allowed == 0 {
                break Some((sdp, pending));
            }
            // Dropping the pending offer leaves the session as it was.
            drop(pending);
            Self::rollback_offered(p);
            allowed /= 2;
        };
        if let Some((offer, pending)) = built {
            let tracks: TrackMap = p
                .consumers()
                .values()
                .filter(|c| c.negotiation().is_sending())
                .filter_map(|c| Some((c.mid()?.to_string(), c.track_id().to_string())))
                .collect();
            {
                let _g = p.span().enter();
                info!(tracks = ?tracks, bytes = offer.len(), "sending server offer");
            }
            p.drain(
                self.ctx.media.as_mut(),
                &self.ctx.stats,
                &mut self.events,
                self.now,
            );
            let message = ServerMessage::Offer { sdp: offer, tracks };
            p.offers_mut().sent(pending, message.clone());
            self.send_to(key, message);
        }
        let left_out: Vec<ProducerId> = adding[allowed..].iter().map(|(_, k)| *k).collect();
        if !left_out.is_empty() {
            self.leave_out_of_offer(key, &left_out);
        }
    }

    /// Build the server's offer: every stop due, and the additions of `adding`.
    fn build_offer(
        p: &mut participant::Participant,
        adding: &[(u64, ProducerId)],
    ) -> Option<(SdpOffer, str0m::change::SdpPendingOffer)> {
        let (rtc, consumers, _) = p.parts_mut();
        let mut change = rtc.sdp_api();
        for (producer_key, consumer) in consumers.iter_mut() {
            if let Some(mid) = consumer.negotiation().stop_due() {
                change.stop_media(mid);
                consumer.negotiation_mut().stop_offered();
            } else if consumer.negotiation().wants_adding()
                && adding.iter().any(|(_, k)| k == producer_key)
            {
                let kind = match consumer.kind() {
                    MediaKind::Audio => str0m::media::MediaKind::Audio,
                    MediaKind::Video => str0m::media::MediaKind::Video,
                };
                let mid = change.add_media(
                    kind,
                    Direction::SendOnly,
                    Some(consumer.publisher_id().to_string()),
                    Some(consumer.track_id().to_string()),
                    None,
                );
                consumer.negotiation_mut().offered_on(mid);
            }
        }
        if !change.has_changes() {
            return None;
        }
        change.apply()
    }

    /// Consumers that did not fit in the server's offer are dropped, and the subscriber is
    /// told which tracks it does not receive (it may unsubscribe others and subscribe again).
    fn leave_out_of_offer(&mut self, key: ParticipantId, left_out: &[ProducerId]) {
        limits::hit(Limit::ServerOfferSize);
        let mut tracks = Vec::new();
        for producer_key in left_out {
            if let Some(producer) = self.producers.get_mut(producer_key) {
                producer.remove_subscriber(key);
                tracks.push(producer.id().to_string());
            }
            if let Some(p) = self.participants.get_mut(&key) {
                p.consumers_mut().remove(producer_key);
            }
        }
        if let Some(p) = self.participants.get(&key) {
            let _g = p.span().enter();
            warn!(
                ?tracks,
                "tracks left out of the server offer: it would be too large to answer"
            );
        }
        let limit = self.ctx.config.max_sdp_bytes;
        self.reply_error(
            key,
            ErrorCode::TooLarge,
            format!(
                "not offered: {}; with them the offer would be too large to answer within \
                 {limit} bytes (unsubscribe from other tracks to receive them)",
                tracks.join(", ")
            ),
        );
    }

    /// Give `subscriber` a consumer of `producer` (offered at the next opportunity).
    pub(super) fn add_consumer(&mut self, subscriber: ParticipantId, producer_key: ProducerId) {
        let Some(producer) = self.producers.get_mut(&producer_key) else {
            return;
        };
        if producer.owner() == subscriber {
            return;
        }
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        // An unsubscribe took it out of the producer's fan-out, whatever became of the consumer.
        producer.add_subscriber(subscriber);
        if let Some(existing) = p.consumers_mut().get_mut(&producer_key) {
            existing.negotiation_mut().subscribe_again();
            return;
        }
        let created = self.ctx.services.next_number();
        p.consumers_mut()
            .insert(producer_key, Consumer::new(producer, created));
        self.offers_due.push(subscriber);
    }

    /// Stop `subscriber`'s consumer of `producer` (its m-line is stopped in the next offer).
    pub(super) fn remove_consumer(&mut self, subscriber: ParticipantId, producer_key: ProducerId) {
        if let Some(producer) = self.producers.get_mut(&producer_key) {
            producer.remove_subscriber(subscriber);
        }
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if p.consumers_mut()
            .get_mut(&producer_key)
            .is_some_and(|c| c.negotiation_mut().unsubscribe() == Outcome::Drop)
        {
            p.consumers_mut().remove(&producer_key);
        }
        self.maybe_offer(subscriber);
    }

    /// Match the participant's published tracks to the m-lines of its latest offer.
    fn sync_published(&mut self, key: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for mid in offered_mids(sdp) {
            let mid = Mid::from(mid);
            let sending = p.rtc().media(mid).is_some_and(|m| {
                !m.disabled() && matches!(m.direction(), Direction::RecvOnly | Direction::SendRecv)
            });
            let published = p.published().contains_key(&mid);
            if sending && !published && p.consumer_by_mid(mid).is_none() {
                added.push(mid);
            } else if !sending && published {
                removed.push(mid);
            }
        }
        // m-lines absent from the new offer are gone too.
        let listed: Vec<String> = offered_mids(sdp).map(str::to_owned).collect();
        removed.extend(
            p.published()
                .keys()
                .filter(|m| !listed.iter().any(|l| l == &m.to_string()))
                .copied(),
        );
        for mid in removed {
            if let Some(producer) = self
                .participants
                .get_mut(&key)
                .and_then(|p| p.unpublish(mid))
            {
                self.unpublish(producer);
            }
        }
        // What str0m took in may not exceed what was checked on its parse of the offer; were
        // the two to disagree, the extra m-lines are received but never published.
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let room_tracks = self.producers.len();
        let allowed = if p.grants().can_publish {
            let own = self.ctx.config.max_tracks_per_participant;
            let room = self.ctx.config.max_tracks_per_room;
            own.saturating_sub(p.published().len())
                .min(room.saturating_sub(room_tracks))
        } else {
            0
        };
        if added.len() > allowed {
            limits::hit(Limit::TracksPerParticipant);
            let _g = p.span().enter();
            warn!(
                offered = added.len(),
                allowed, "m-lines beyond the grants or caps are not published"
            );
        }
        for mid in added.into_iter().take(allowed) {
            self.publish(key, mid);
        }
    }

    /// After an ICE restart the client checks the new server ufrag, often from new addresses:
    /// route datagrams by it from now on. The old ufrag is forgotten.
    fn follow_ice_restart(&mut self, key: ParticipantId) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(restart) = p.take_new_ufrag(self.now) else {
            return;
        };
        let _g = p.span().enter();
        info!(old = %restart.old_ufrag, new = %p.ufrag(), "ICE restart: routing by the new ufrag");
        if let Some((_, mut route)) = self.ctx.routes.remove(&restart.old_ufrag) {
            route.ice_password = restart.password;
            self.ctx.routes.insert(p.ufrag().to_owned(), route);
        }
    }
}

/// The audio and video m-lines of an offer as str0m parsed them, for [`check_offer`].
fn offered_lines(offer: &SdpOffer, bundle: &[&str]) -> Vec<OfferedLine> {
    offer
        .media_lines
        .iter()
        .filter(|m| m.typ.is_media())
        .map(|m| {
            let mid = m.mid().to_string();
            let mut rids: Vec<String> = m.rids().iter().map(|r| r.to_string()).collect();
            rids.sort_unstable();
            rids.dedup();
            let mut ssrcs: Vec<u32> = m.ssrc_info().iter().map(|i| *i.ssrc).collect();
            ssrcs.sort_unstable();
            ssrcs.dedup();
            OfferedLine {
                bundled: bundle.contains(&mid.as_str()),
                mid,
                port_zero: m.disabled,
                client_sends: matches!(m.direction(), Direction::SendOnly | Direction::SendRecv),
                rids: rids.len(),
                ssrcs: ssrcs.len(),
            }
        })
        .collect()
}

/// The `a=mid:` values of an SDP, in order.
fn offered_mids(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=mid:"))
}
