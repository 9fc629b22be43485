//! Data channel relay: text on `reliable`/`lossy` goes to every other participant's channel of the same label.

use serde::Serialize;
use sfu_core::ids::ParticipantId;
use str0m::channel::{ChannelData, ChannelId};
use tracing::{debug, info};

use super::Room;
use crate::limits::{self, Limit};
use crate::stats::bump;

/// Labels the server relays; other labels belong to the application.
const RELAYED_LABELS: [&str; 2] = ["reliable", "lossy"];

#[derive(Serialize)]
struct Relayed<'a> {
    from: &'a str,
    data: &'a str,
}

impl Room {
    pub(super) fn channel_open(&mut self, key: ParticipantId, id: ChannelId, label: String) {
        if let Some(p) = self.participants.get_mut(&key) {
            let _g = p.span().clone().entered();
            info!(%label, "data channel open");
            p.channel_opened(id, label);
        }
    }

    pub(super) fn relay_data(&mut self, key: ParticipantId, data: ChannelData) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(label) = p.channel_label(data.id).map(str::to_owned) else {
            return;
        };
        if !RELAYED_LABELS.contains(&label.as_str()) {
            return;
        }
        if !p.grants().can_publish_data {
            let _g = p.span().enter();
            debug!("data message not relayed: the token does not allow publishing data");
            bump(&self.ctx.stats.data_dropped);
            return;
        }
        if !p.admit_data(self.now) {
            limits::hit(Limit::DataMessagesPerSecond);
            bump(&self.ctx.stats.data_dropped);
            return;
        }
        let text = match std::str::from_utf8(&data.data) {
            Ok(text)
                if !data.binary && data.data.len() <= self.ctx.config.max_data_message_bytes =>
            {
                text
            }
            _ => {
                let _g = p.span().enter();
                debug!(
                    binary = data.binary,
                    len = data.data.len(),
                    "data message not relayed (binary, not UTF-8 or too large)"
                );
                bump(&self.ctx.stats.data_dropped);
                return;
            }
        };
        let relayed = Relayed {
            from: &p.id().to_string(),
            data: text,
        };
        let Ok(json) = serde_json::to_string(&relayed) else {
            return;
        };
        for (other_key, other) in self.participants.iter_mut() {
            // Receiving the room's data is subscribing too.
            if *other_key == key || !other.grants().can_subscribe {
                continue;
            }
            let Some(channel_id) = other.channel_labelled(&label) else {
                continue;
            };
            let written = other
                .rtc_mut()
                .channel(channel_id)
                .is_some_and(|mut channel| {
                    matches!(channel.write(false, json.as_bytes()), Ok(true))
                });
            bump(if written {
                &self.ctx.stats.data_relayed
            } else {
                &self.ctx.stats.data_dropped
            });
            other.drain(
                self.ctx.media.as_mut(),
                &self.ctx.stats,
                &mut self.events,
                self.now,
            );
        }
    }
}
