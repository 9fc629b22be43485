//! The per-connection limit on client messages, and the messages it never drops.

use std::time::Instant;

use sfu_core::rate::TokenBucket;
use signaling::{ClientMessage, ProtocolError, ServerMessage};

/// Admits a joined client's messages at `max_messages_per_second`, except two that dropping
/// would break more than it protects: `leave` (dropped, the participant would stay in the room
/// until its connection timed out) and one `answer` per server offer (dropped, negotiation
/// would stall for good: the server sends no other offer until it is answered).
pub struct MessageRate {
    bucket: TokenBucket,
    offer_unanswered: bool,
}

impl MessageRate {
    /// A full budget of `max_messages_per_second`.
    pub fn new(max_messages_per_second: u32) -> Self {
        Self {
            bucket: TokenBucket::new(max_messages_per_second),
            offer_unanswered: false,
        }
    }

    /// Whether the client's next message (or its parse error) is handled at `now`.
    pub fn admit(&mut self, message: &Result<ClientMessage, ProtocolError>, now: Instant) -> bool {
        let exempt = match message {
            Ok(ClientMessage::Leave) => true,
            Ok(ClientMessage::Answer { .. }) => std::mem::take(&mut self.offer_unanswered),
            _ => false,
        };
        exempt || self.bucket.admit(now)
    }

    /// The server sent the client `message`.
    pub fn server_sent(&mut self, message: &ServerMessage) {
        if matches!(message, ServerMessage::Offer { .. }) {
            self.offer_unanswered = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Result<ClientMessage, ProtocolError> {
        Ok(ClientMessage::Answer { sdp: "v=0".into() })
    }

    fn offer() -> ServerMessage {
        ServerMessage::Offer {
            sdp: "v=0".into(),
            tracks: Default::default(),
        }
    }

    #[test]
    fn over_the_rate_leave_and_the_answer_to_an_offer_still_pass() {
        // Requirement: a flooding client's excess is dropped, but not its `leave`, nor the one
        // answer each server offer waits for.
        let now = Instant::now();
        let mut rate = MessageRate::new(2);
        let ping = Ok(ClientMessage::Ping { ts: None });
        assert!(rate.admit(&ping, now));
        assert!(rate.admit(&ping, now));
        assert!(!rate.admit(&ping, now), "over the rate");
        assert!(
            !rate.admit(&answer(), now),
            "no offer is waiting for this answer"
        );
        rate.server_sent(&offer());
        assert!(
            rate.admit(&answer(), now),
            "the answer to the server's offer"
        );
        assert!(
            !rate.admit(&answer(), now),
            "a second answer to the same offer"
        );
        assert!(rate.admit(&Ok(ClientMessage::Leave), now));
        let malformed = Err(ProtocolError::bad_request("malformed"));
        assert!(!rate.admit(&malformed, now));
    }
}
