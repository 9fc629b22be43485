//! Choosing each consumer's layer (sfu_core's layer choice, bandwidth sharing and pause
//! grace), reporting `quality` changes, and dynacast (`layers` toward publishers).

use std::time::Instant;

use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::layers::LayerChoice;
use signaling::{MediaKind, ServerMessage};
use str0m::media::KeyframeRequestKind;

use tracing::info;

use super::Room;

impl Room {
    /// Re-choose the layer of every consumer of one subscriber.
    ///
    /// Order when bandwidth is short: the most recently created consumer first
    /// (a track the subscriber just asked for or that just appeared), then older ones.
    pub(super) fn allocate_layers(&mut self, key: ParticipantId, now: Instant) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let mut video: Vec<(ProducerId, u64)> = Vec::new();
        let mut audio_consumers = 0u64;
        for (pk, c) in p.consumers_mut().iter_mut() {
            if c.active_mid().is_none() {
                continue;
            }
            match c.kind() {
                MediaKind::Audio => {
                    audio_consumers += 1;
                    c.set_target(c.max_layer().map(|_| 0));
                }
                MediaKind::Video => video.push((*pk, c.created())),
            }
        }
        video.sort_by_key(|(_, created)| std::cmp::Reverse(*created));
        let choices: Vec<LayerChoice> = video
            .iter()
            .filter_map(|(pk, _)| {
                let producer = self.producers.get(pk)?;
                Some(p.consumers().get(pk)?.layer_choice(producer, now))
            })
            .collect();
        // str0m's first probes go to 3x and 6x the initial estimate, capped at twice the
        // desired rate, and happen once: they must not be spent on an audio-only target.
        let (budget, picks) = p.share_downlink(&choices, audio_consumers, now);
        let mut keyframes = Vec::new();
        let span = p.span().clone();
        for ((pk, _), pick) in video.iter().zip(picks) {
            let Some(c) = p.consumers_mut().get_mut(pk) else {
                continue;
            };
            let from = c.target();
            if c.set_target(pick) {
                let _g = span.enter();
                info!(track = %c.track_id(), ?from, to = ?pick, budget = ?budget, "consumer layer target changed");
            }
            if let Some(layer) = c.awaited_keyframe_layer() {
                keyframes.push((*pk, layer));
            }
        }
        self.report_quality(key);
        for (pk, layer) in keyframes {
            self.request_keyframe(pk, layer, KeyframeRequestKind::Fir);
        }
    }

    /// Tell the subscriber about every simulcast consumer whose forwarded layer changed.
    pub(super) fn report_quality(&mut self, key: ParticipantId) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let mut changes = Vec::new();
        for (pk, c) in p.consumers_mut().iter_mut() {
            let simulcast = self.producers.get(pk).is_some_and(|pr| pr.is_simulcast());
            if !simulcast || c.active_mid().is_none() {
                continue;
            }
            if let Some(quality) = c.quality_to_report() {
                changes.push(ServerMessage::Quality {
                    track_id: c.track_id().to_string(),
                    quality,
                });
            }
        }
        for message in changes {
            self.send_to(key, message);
        }
    }

    /// Dynacast: ask each simulcast publisher for exactly the layers its consumers want.
    ///
    /// A consumer wants the layer of its wish (or the nearest below it the publisher sends) and,
    /// until a switch completes, the layer it is forwarded now. The lowest layer is
    /// always kept: it is the fallback when bandwidth drops, and a new subscriber starts on it.
    /// Layers nobody wants any more are paused only after a hold time ([`sfu_core::dynacast`]).
    pub(super) fn update_dynacast(&mut self, now: Instant) {
        let mut requests = Vec::new();
        for (producer_key, producer) in self.producers.iter_mut() {
            let consumer_layers: Vec<u8> = producer
                .subscribers()
                .iter()
                .filter_map(|s| self.participants.get(s)?.consumers().get(producer_key))
                .flat_map(|c| c.wanted_layers())
                .collect();
            if let Some(rids) = producer.dynacast(consumer_layers, now) {
                requests.push((
                    producer.owner(),
                    ServerMessage::Layers {
                        track_id: producer.id().to_string(),
                        rids,
                    },
                ));
            }
        }
        for (owner, message) in requests {
            self.send_to(owner, message);
        }
    }
}
