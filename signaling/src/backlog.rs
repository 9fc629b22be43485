//! Messages the server could not hand to a slow session yet, with the ones a later message
//! makes redundant taken out: a burst the server generated itself (a publisher adding and
//! removing tracks in a loop) then costs the backlog no more than the room's state.

use std::collections::VecDeque;

use crate::server::ServerMessage;

/// Server messages waiting, in order, for room on a session's queue.
#[derive(Debug, Default)]
pub struct Backlog {
    queue: VecDeque<ServerMessage>,
}

impl Backlog {
    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest message, to send.
    pub fn pop(&mut self) -> Option<ServerMessage> {
        self.queue.pop_front()
    }

    /// Put back a message taken with [`Backlog::pop`] that could not be sent after all.
    pub fn unpop(&mut self, message: ServerMessage) {
        self.queue.push_front(message);
    }

    /// Queue `message` behind the others, dropping what it makes redundant:
    /// - a track announced and gone again before either was sent: neither is sent (unless a
    ///   server offer naming the track waits between them);
    /// - a participant that joined and left before either was sent: neither is sent, nor
    ///   the tracks it announced meanwhile (same condition);
    /// - a newer `track_muted`, `quality` or `layers` for the same track, or `speakers`,
    ///   replaces the older one; a mute of a track whose announcement still waits updates
    ///   the announcement instead.
    pub fn push(&mut self, message: ServerMessage) {
        match &message {
            ServerMessage::TrackUnpublished { track_id }
                if self.cancel_announcement(|t| t == track_id) =>
            {
                return;
            }
            ServerMessage::ParticipantLeft { participant_id } => {
                if let Some(joined) = self.unsent_after_last_offer(|m| {
                    matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == *participant_id)
                }) {
                    self.queue.remove(joined);
                    let tracks: Vec<String> = self
                        .queue
                        .iter()
                        .filter_map(|m| match m {
                            ServerMessage::TrackPublished { track }
                                if track.participant_id == *participant_id =>
                            {
                                Some(track.id.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    for track in tracks {
                        self.cancel_announcement(|t| *t == track);
                    }
                    return;
                }
            }
            ServerMessage::TrackMuted { track_id, muted } => {
                if let Some(i) = self.position(|m| {
                    matches!(m, ServerMessage::TrackPublished { track } if track.id == *track_id)
                }) && let Some(ServerMessage::TrackPublished { track }) = self.queue.get_mut(i)
                {
                    track.muted = *muted;
                    return;
                }
                self.queue.retain(
                    |m| !matches!(m, ServerMessage::TrackMuted { track_id: t, .. } if t == track_id),
                );
            }
            ServerMessage::Quality { track_id, .. } => self.queue.retain(
                |m| !matches!(m, ServerMessage::Quality { track_id: t, .. } if t == track_id),
            ),
            ServerMessage::Layers { track_id, .. } => self.queue.retain(
                |m| !matches!(m, ServerMessage::Layers { track_id: t, .. } if t == track_id),
            ),
            ServerMessage::Speakers { .. } => self
                .queue
                .retain(|m| !matches!(m, ServerMessage::Speakers { .. })),
            _ => {}
        }
        self.queue.push_back(message);
    }

    /// Take out the unsent announcement of the track `is_track` names, and the messages
    /// about that track queued after it; `false` when there is none, or a server offer
    /// (which names the track) waits after it.
    fn cancel_announcement(&mut self, is_track: impl Fn(&String) -> bool) -> bool {
        let Some(announced) = self.unsent_after_last_offer(
            |m| matches!(m, ServerMessage::TrackPublished { track } if is_track(&track.id)),
        ) else {
            return false;
        };
        let mut index = 0;
        self.queue.retain(|m| {
            let about_track = match m {
                ServerMessage::TrackPublished { track } => is_track(&track.id),
                ServerMessage::TrackMuted { track_id, .. }
                | ServerMessage::Quality { track_id, .. }
                | ServerMessage::Layers { track_id, .. } => is_track(track_id),
                _ => false,
            };
            let keep = index < announced || !about_track;
            index += 1;
            keep
        });
        true
    }

    /// The position of the message `wanted` finds, if no offer is queued after it.
    fn unsent_after_last_offer(&self, wanted: impl Fn(&ServerMessage) -> bool) -> Option<usize> {
        let found = self.position(wanted)?;
        let offer_after = self
            .queue
            .iter()
            .skip(found)
            .any(|m| matches!(m, ServerMessage::Offer { .. }));
        (!offer_after).then_some(found)
    }

    fn position(&self, wanted: impl Fn(&ServerMessage) -> bool) -> Option<usize> {
        self.queue.iter().position(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ForwardedQuality, MediaKind, Participant, Track};

    fn published(id: &str, owner: &str) -> ServerMessage {
        ServerMessage::TrackPublished {
            track: Track {
                id: id.into(),
                participant_id: owner.into(),
                kind: MediaKind::Video,
                muted: false,
                simulcast: Vec::new(),
                codec: "VP8".into(),
            },
        }
    }

    fn unpublished(id: &str) -> ServerMessage {
        ServerMessage::TrackUnpublished {
            track_id: id.into(),
        }
    }

    fn joined(id: &str) -> ServerMessage {
        ServerMessage::ParticipantJoined {
            participant: Participant {
                id: id.into(),
                name: "n".into(),
                tracks: Vec::new(),
            },
        }
    }

    fn left(id: &str) -> ServerMessage {
        ServerMessage::ParticipantLeft {
            participant_id: id.into(),
        }
    }

    fn muted(id: &str, muted: bool) -> ServerMessage {
        ServerMessage::TrackMuted {
            track_id: id.into(),
            muted,
        }
    }

    fn quality(id: &str, quality: ForwardedQuality) -> ServerMessage {
        ServerMessage::Quality {
            track_id: id.into(),
            quality,
        }
    }

    fn offer() -> ServerMessage {
        ServerMessage::Offer {
            sdp: "v=0".into(),
            tracks: Default::default(),
        }
    }

    fn speakers() -> ServerMessage {
        ServerMessage::Speakers {
            speakers: Vec::new(),
        }
    }

    fn drained(mut backlog: Backlog) -> Vec<String> {
        std::iter::from_fn(|| backlog.pop())
            .map(|m| m.to_json())
            .collect()
    }

    #[test]
    fn redundant_messages_are_taken_out() {
        // Requirement: a burst of announcements the server itself generated costs the backlog
        // no more than the room's state, and what the client ends up knowing is unchanged.
        let table: [(&str, Vec<ServerMessage>, Vec<ServerMessage>); 9] = [
            (
                "a track published and gone again",
                vec![
                    published("TR_1", "PA_1"),
                    muted("TR_1", true),
                    quality("TR_1", ForwardedQuality::Low),
                    unpublished("TR_1"),
                ],
                vec![],
            ),
            (
                "publish/unpublish in a loop",
                [
                    published("TR_1", "PA_1"),
                    unpublished("TR_1"),
                    published("TR_2", "PA_1"),
                    unpublished("TR_2"),
                    published("TR_3", "PA_1"),
                ]
                .into(),
                vec![published("TR_3", "PA_1")],
            ),
            (
                "an offer naming the track waits between",
                vec![published("TR_1", "PA_1"), offer(), unpublished("TR_1")],
                vec![published("TR_1", "PA_1"), offer(), unpublished("TR_1")],
            ),
            (
                "a track announced before the backlog began",
                vec![unpublished("TR_9")],
                vec![unpublished("TR_9")],
            ),
            (
                "a participant that came and went, with its tracks",
                vec![
                    joined("PA_2"),
                    published("TR_4", "PA_2"),
                    speakers(),
                    left("PA_2"),
                ],
                vec![speakers()],
            ),
            (
                "a participant that left, announced before",
                vec![left("PA_3")],
                vec![left("PA_3")],
            ),
            (
                "the latest mute wins, folded into the announcement",
                vec![
                    published("TR_5", "PA_1"),
                    muted("TR_5", true),
                    muted("TR_5", false),
                    muted("TR_5", true),
                ],
                vec![ServerMessage::TrackPublished {
                    track: Track {
                        muted: true,
                        ..match published("TR_5", "PA_1") {
                            ServerMessage::TrackPublished { track } => track,
                            _ => unreachable!(),
                        }
                    },
                }],
            ),
            (
                "the latest quality and speakers win",
                vec![
                    quality("TR_6", ForwardedQuality::Low),
                    speakers(),
                    quality("TR_7", ForwardedQuality::High),
                    quality("TR_6", ForwardedQuality::High),
                    speakers(),
                ],
                vec![
                    quality("TR_7", ForwardedQuality::High),
                    quality("TR_6", ForwardedQuality::High),
                    speakers(),
                ],
            ),
            (
                "mutes of an announced track are replaced",
                vec![muted("TR_8", true), muted("TR_8", false)],
                vec![muted("TR_8", false)],
            ),
        ];
        for (case, pushed, want) in table {
            let mut backlog = Backlog::default();
            for message in pushed {
                backlog.push(message);
            }
            let want: Vec<String> = want.iter().map(ServerMessage::to_json).collect();
            assert_eq!(drained(backlog), want, "{case}");
        }
    }

    #[test]
    fn a_loop_of_tracks_stays_small() {
        // Requirement: a publisher adding and removing tracks a thousand times leaves a
        // backlog of at most one message per live track.
        let mut backlog = Backlog::default();
        for i in 0..1000 {
            backlog.push(published(&format!("TR_{i}"), "PA_1"));
            if i % 2 == 1 {
                backlog.push(unpublished(&format!("TR_{i}")));
            }
        }
        assert_eq!(backlog.len(), 500);
        let first = backlog.pop().expect("one");
        backlog.unpop(first);
        assert_eq!(backlog.len(), 500);
    }
}
