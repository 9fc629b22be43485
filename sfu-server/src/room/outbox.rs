//! A participant's messages toward its signaling session: the session's bounded queue and,
//! behind it, a coalescing backlog, so a burst the room generates faster than the session
//! writes (others publishing and unpublishing in a loop) never removes the participant.
//! A client that stops reading is the session's to drop (its send timeout).

use signaling::{Backlog, LeaveReason, ServerMessage};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Outbound;

/// Messages the backlog may hold once coalesced: far more than a room's state (tracks,
/// participants) can make; only a session that takes nothing at all reaches it.
const MAX_BACKLOG: usize = 4096;

/// What became of a message handed to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued toward the session, now or behind the backlog.
    Queued,
    /// The session has ended (it may resume).
    SessionGone,
    /// The backlog is over [`MAX_BACKLOG`]: the session takes nothing.
    Overflow,
}

/// The way to one participant's current signaling session.
#[derive(Debug)]
pub struct Outbox {
    session: mpsc::Sender<Outbound>,
    /// A place kept on the session's queue for the end of the session, so its reason
    /// arrives even when the queue is full.
    end_place: Option<mpsc::OwnedPermit<Outbound>>,
    backlog: Backlog,
}

impl Outbox {
    /// The outbox toward `session`.
    pub fn new(session: mpsc::Sender<Outbound>) -> Self {
        Self {
            end_place: session.clone().try_reserve_owned().ok(),
            session,
            backlog: Backlog::default(),
        }
    }

    /// Send toward a new session from now on (a resume), telling the old one it was
    /// replaced. What waited for the old one is dropped: the resume sends the room's state anew.
    pub fn replace(&mut self, session: mpsc::Sender<Outbound>) {
        self.end(LeaveReason::Replaced);
        *self = Self::new(session);
    }

    /// Queue `message` behind everything waiting.
    pub fn send(&mut self, message: ServerMessage) -> Delivery {
        if self.backlog.is_empty() {
            match self.session.try_send(Outbound::Message(message)) {
                Ok(()) => return Delivery::Queued,
                Err(TrySendError::Closed(_)) => return Delivery::SessionGone,
                Err(TrySendError::Full(Outbound::Message(message))) => self.backlog.push(message),
                Err(TrySendError::Full(Outbound::End(_))) => {}
            }
        } else {
            self.backlog.push(message);
        }
        if self.backlog.len() > MAX_BACKLOG {
            return Delivery::Overflow;
        }
        Delivery::Queued
    }

    /// Move what waits onto the session's queue, as far as it has room.
    pub fn flush(&mut self) -> Delivery {
        while let Some(message) = self.backlog.pop() {
            match self.session.try_send(Outbound::Message(message)) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => return Delivery::SessionGone,
                Err(TrySendError::Full(Outbound::Message(message))) => {
                    self.backlog.unpop(message);
                    break;
                }
                Err(TrySendError::Full(Outbound::End(_))) => break,
            }
        }
        Delivery::Queued
    }

    /// Whether messages wait behind the session's full queue.
    pub fn is_backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// End the session with `reason` (the last thing it is told), in the place kept for it.
    pub fn end(&mut self, reason: LeaveReason) {
        match self.end_place.take() {
            Some(place) => {
                place.send(Outbound::End(reason));
            }
            None => {
                let _ = self.session.try_send(Outbound::End(reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(i: usize) -> ServerMessage {
        ServerMessage::TrackPublished {
            track: signaling::Track {
                id: format!("TR_{i}"),
                participant_id: "PA_1".into(),
                kind: signaling::MediaKind::Audio,
                muted: false,
                simulcast: Vec::new(),
                codec: "opus".into(),
            },
        }
    }

    fn unpublished(i: usize) -> ServerMessage {
        ServerMessage::TrackUnpublished {
            track_id: format!("TR_{i}"),
        }
    }

    #[test]
    fn a_burst_waits_coalesced_and_arrives_in_order() {
        // Requirement: a burst bigger than the session's queue is kept (coalesced), not a
        // reason to remove the participant, and reaches the session in order once it reads.
        // Four places for messages, one kept for the end.
        let (tx, mut rx) = mpsc::channel(5);
        let mut outbox = Outbox::new(tx);
        for i in 0..10_000 {
            assert_eq!(outbox.send(published(i)), Delivery::Queued);
            if i >= 3 {
                assert_eq!(outbox.send(unpublished(i)), Delivery::Queued);
            }
        }
        assert!(outbox.is_backlogged());
        let mut seen = Vec::new();
        loop {
            while let Ok(Outbound::Message(m)) = rx.try_recv() {
                seen.push(m.to_json());
            }
            if !outbox.is_backlogged() {
                break;
            }
            outbox.flush();
        }
        let want: Vec<String> = (0..4)
            .map(|i| published(i).to_json())
            .chain(std::iter::once(unpublished(3).to_json()))
            .collect();
        assert_eq!(seen, want, "the last state, in order");
    }

    #[test]
    fn a_session_that_takes_nothing_overflows() {
        // Requirement: the backlog is bounded: distinct messages beyond it report overflow.
        let (tx, _rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        let sent: Vec<Delivery> = (0..=MAX_BACKLOG + 1)
            .map(|i| outbox.send(published(i)))
            .collect();
        assert_eq!(sent.last(), Some(&Delivery::Overflow));
        assert!(sent[..MAX_BACKLOG].iter().all(|d| *d == Delivery::Queued));
    }

    #[test]
    fn a_resume_starts_afresh() {
        // Requirement: the old session hears it was replaced; the new one gets no stale backlog.
        let (old_tx, mut old_rx) = mpsc::channel(2);
        let mut outbox = Outbox::new(old_tx);
        outbox.send(published(1));
        outbox.send(published(2));
        let (new_tx, mut new_rx) = mpsc::channel(8);
        outbox.replace(new_tx);
        assert!(!outbox.is_backlogged());
        assert!(matches!(old_rx.try_recv(), Ok(Outbound::Message(_))));
        assert!(matches!(
            old_rx.try_recv(),
            Ok(Outbound::End(LeaveReason::Replaced))
        ));
        outbox.send(published(3));
        assert!(
            matches!(new_rx.try_recv(), Ok(Outbound::Message(m)) if m.to_json() == published(3).to_json())
        );
        drop(new_rx);
        assert_eq!(outbox.send(published(4)), Delivery::SessionGone);
    }

    #[test]
    fn the_end_reaches_a_full_queue() {
        // Requirement: a session whose queue is full still learns why it ends (kicked,
        // replaced, timeout), after what is queued before it.
        let (tx, mut rx) = mpsc::channel(3);
        let mut outbox = Outbox::new(tx);
        for i in 0..10 {
            outbox.send(published(i));
        }
        outbox.end(LeaveReason::Kicked);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Message(_))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Message(_))));
        assert!(matches!(
            rx.try_recv(),
            Ok(Outbound::End(LeaveReason::Kicked))
        ));
    }
}
