//! Where a participant's negotiation stands on the server's side: the offer it has not
//! answered, when the server may offer next, and how often the client may offer.

use std::time::{Duration, Instant};

use sfu_core::rate::TokenBucket;
use signaling::ServerMessage;
use str0m::change::SdpPendingOffer;

/// The server's offers to one participant.
pub struct OfferState {
    /// The server's unanswered offer.
    pending: Option<SdpPendingOffer>,
    /// The server sends no offer before this: its first waits for the client's own offer or
    /// this, and after a refused answer it pauses before offering again.
    not_before: Option<Instant>,
    /// The server's last offer, sent again when the participant resumes with it unanswered.
    last: Option<ServerMessage>,
    /// Offers the client may make per second, kept across resumes (each offer renegotiates
    /// the room).
    client_rate: TokenBucket,
}

impl OfferState {
    /// A participant joining at `now`: the server's first offer waits `first_delay` for the
    /// client's own, and the client may offer `per_second` times a second.
    pub fn new(now: Instant, first_delay: Duration, per_second: u32) -> Self {
        Self {
            pending: None,
            not_before: Some(now + first_delay),
            last: None,
            client_rate: TokenBucket::new(per_second),
        }
    }

    /// Whether a server offer waits for its answer.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the server may send an offer now: none outstanding and no pause.
    pub fn may_offer(&self) -> bool {
        self.pending.is_none() && self.not_before.is_none()
    }

    /// Whether a client offer at `now` is within its rate.
    pub fn admit_client_offer(&mut self, now: Instant) -> bool {
        self.client_rate.admit(now)
    }

    /// The client negotiated itself: the server need not wait any longer to offer.
    pub fn client_negotiated(&mut self) {
        self.not_before = None;
    }

    /// The outstanding server offer, taken to apply its answer.
    pub fn take_pending(&mut self) -> Option<SdpPendingOffer> {
        self.pending.take()
    }

    /// The offer still waits for an answer (what came was no answer to it).
    pub fn keep_pending(&mut self, pending: SdpPendingOffer) {
        self.pending = Some(pending);
    }

    /// The client's answer was refused at `now`: the server pauses for `pause` before it
    /// offers again.
    pub fn refused(&mut self, now: Instant, pause: Duration) {
        self.not_before = Some(now + pause);
    }

    /// The server sent `message`, an offer waiting for its answer as `pending`.
    pub fn sent(&mut self, pending: SdpPendingOffer, message: ServerMessage) {
        self.pending = Some(pending);
        self.last = Some(message);
    }

    /// Whether a pause ended by `now` (it is over once this says so).
    pub fn pause_ended(&mut self, now: Instant) -> bool {
        let ended = self.not_before.is_some_and(|t| t <= now);
        if ended {
            self.not_before = None;
        }
        ended
    }

    /// When the pause ends.
    pub fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// The offer to send again to a participant resuming with it unanswered.
    pub fn to_resend(&self) -> Option<ServerMessage> {
        self.last.clone().filter(|_| self.pending.is_some())
    }
}

#[cfg(test)]
mod tests {
    use str0m::Rtc;
    use str0m::media::{Direction, MediaKind};

    use super::*;

    fn pending_offer(rtc: &mut Rtc) -> SdpPendingOffer {
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        change.apply().expect("an offer with one m-line").1
    }

    #[test]
    fn the_server_offers_after_the_first_delay_and_one_offer_at_a_time() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut rtc = Rtc::new(t0);
        let mut offers = OfferState::new(t0, Duration::from_millis(500), 5);
        assert!(
            !offers.may_offer(),
            "waits for the client's own offer first"
        );
        assert!(!offers.pause_ended(at(499)));
        assert!(offers.pause_ended(at(500)));
        assert!(offers.may_offer());
        let message = ServerMessage::error(signaling::ErrorCode::BadRequest, "stand-in");
        offers.sent(pending_offer(&mut rtc), message);
        assert!(!offers.may_offer() && offers.is_pending());
        assert!(
            offers.to_resend().is_some(),
            "unanswered: sent again on resume"
        );
        let pending = offers.take_pending().expect("the offer sent");
        offers.keep_pending(pending);
        assert!(offers.take_pending().is_some());
        assert!(
            offers.to_resend().is_none(),
            "answered: nothing to send again"
        );
        offers.refused(at(1000), Duration::from_secs(2));
        assert_eq!(offers.not_before(), Some(at(3000)));
        assert!(!offers.may_offer());
        offers.client_negotiated();
        assert!(offers.may_offer());
    }

    #[test]
    fn client_offers_are_rate_limited() {
        let t0 = Instant::now();
        let mut offers = OfferState::new(t0, Duration::ZERO, 2);
        let admitted = (0..5).filter(|_| offers.admit_client_offer(t0)).count();
        assert_eq!(admitted, 2, "a burst of the rate, no more");
    }
}
