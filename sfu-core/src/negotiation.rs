//! Where one consumer's m-line is in its subscriber's offer/answer, and how each step of
//! the negotiation moves it. The server offers at most one change at a time, so wishes that
//! arrive while its offer is out (unsubscribe, subscribe again) wait for the answer.
//!
//! Generic over the m-line id `M`, so the rules are tested without a WebRTC stack.

/// The m-line's place in the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlineState<M> {
    /// Wanted, not offered yet.
    ToAdd,
    /// In the server's outstanding offer.
    Offered(M),
    /// Negotiated: packets flow.
    Active(M),
    /// To be stopped in the next offer.
    ToRemove(M),
    /// Stopped in the outstanding offer; gone once answered.
    Removing(M),
}

/// What a step leaves of the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It stays.
    Keep,
    /// It is gone: drop it.
    Drop,
    /// Its m-line is gone, but it was subscribed to again meanwhile: a new consumer takes
    /// its place.
    AddAgain,
}

/// One consumer's negotiation: its m-line's state and what waits for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerNegotiation<M> {
    state: MlineState<M>,
    /// Unsubscribed while its addition was offered: stop it once that offer is answered.
    remove_after_answer: bool,
    /// Subscribed to again while the outstanding offer stops its m-line.
    add_again_after_answer: bool,
}

impl<M: Copy> Default for ConsumerNegotiation<M> {
    fn default() -> Self {
        Self {
            state: MlineState::ToAdd,
            remove_after_answer: false,
            add_again_after_answer: false,
        }
    }
}

impl<M: Copy> ConsumerNegotiation<M> {
    /// Its m-line's state.
    pub fn state(&self) -> MlineState<M> {
        self.state
    }

    /// The m-line carrying it, once offered.
    pub fn mid(&self) -> Option<M> {
        match self.state {
            MlineState::ToAdd => None,
            MlineState::Offered(m)
            | MlineState::Active(m)
            | MlineState::ToRemove(m)
            | MlineState::Removing(m) => Some(m),
        }
    }

    /// Its m-line when negotiated and flowing.
    pub fn active_mid(&self) -> Option<M> {
        match self.state {
            MlineState::Active(m) => Some(m),
            _ => None,
        }
    }

    /// Whether its m-line is (or is about to be) sending.
    pub fn is_sending(&self) -> bool {
        matches!(self.state, MlineState::Offered(_) | MlineState::Active(_))
    }

    /// Whether it waits to be added by the next offer.
    pub fn wants_adding(&self) -> bool {
        matches!(self.state, MlineState::ToAdd)
    }

    /// The m-line the next offer must stop, if any.
    pub fn stop_due(&self) -> Option<M> {
        match self.state {
            MlineState::ToRemove(m) => Some(m),
            _ => None,
        }
    }

    /// The subscriber no longer wants it. [`Outcome::Drop`] when it was never offered and
    /// can simply go; otherwise it is stopped by a coming offer.
    pub fn unsubscribe(&mut self) -> Outcome {
        match self.state {
            MlineState::ToAdd => return Outcome::Drop,
            MlineState::Offered(_) => self.remove_after_answer = true,
            MlineState::Active(mid) => self.state = MlineState::ToRemove(mid),
            MlineState::ToRemove(_) => {}
            MlineState::Removing(_) => self.add_again_after_answer = false,
        }
        Outcome::Keep
    }

    /// The subscriber wants it again while it still exists: undo a stop not offered yet, or
    /// add it again once the stop being offered is answered.
    pub fn subscribe_again(&mut self) {
        self.remove_after_answer = false;
        match self.state {
            MlineState::ToRemove(mid) => self.state = MlineState::Active(mid),
            MlineState::Removing(_) => self.add_again_after_answer = true,
            MlineState::ToAdd | MlineState::Offered(_) | MlineState::Active(_) => {}
        }
    }

    /// The offer being built adds it on m-line `mid` (only when it wants adding).
    pub fn offered_on(&mut self, mid: M) {
        if self.wants_adding() {
            self.state = MlineState::Offered(mid);
        }
    }

    /// The offer being built stops its m-line (only when a stop is due).
    pub fn stop_offered(&mut self) {
        if let Some(mid) = self.stop_due() {
            self.state = MlineState::Removing(mid);
        }
    }

    /// The subscriber answered the outstanding offer.
    pub fn answered(&mut self) -> Outcome {
        match self.state {
            MlineState::Offered(mid) if self.remove_after_answer => {
                self.remove_after_answer = false;
                self.state = MlineState::ToRemove(mid);
                Outcome::Keep
            }
            MlineState::Offered(mid) => {
                self.state = MlineState::Active(mid);
                Outcome::Keep
            }
            MlineState::Removing(_) if self.add_again_after_answer => Outcome::AddAgain,
            MlineState::Removing(_) => Outcome::Drop,
            MlineState::ToAdd | MlineState::Active(_) | MlineState::ToRemove(_) => Outcome::Keep,
        }
    }

    /// The outstanding offer (or the one being built) was given up: what it offered is
    /// undone, so the next offer carries it again.
    pub fn rolled_back(&mut self) -> Outcome {
        match self.state {
            MlineState::Offered(_) if self.remove_after_answer => Outcome::Drop,
            MlineState::Offered(_) => {
                self.state = MlineState::ToAdd;
                Outcome::Keep
            }
            // The stop never applied: a consumer subscribed to again just carries on.
            MlineState::Removing(mid) if self.add_again_after_answer => {
                self.add_again_after_answer = false;
                self.state = MlineState::Active(mid);
                Outcome::Keep
            }
            MlineState::Removing(mid) => {
                self.state = MlineState::ToRemove(mid);
                Outcome::Keep
            }
            MlineState::ToAdd | MlineState::Active(_) | MlineState::ToRemove(_) => Outcome::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a negotiation, as the room takes it.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Offer,
        Answer,
        RollBack,
        Unsubscribe,
        SubscribeAgain,
    }

    /// The state and outcome after one step.
    type After = (MlineState<u8>, Outcome);

    /// Run `steps` from a new consumer; the state and outcome after each.
    fn run(steps: &[Step]) -> Vec<After> {
        let mut n = ConsumerNegotiation::default();
        steps
            .iter()
            .map(|step| {
                let outcome = match step {
                    Step::Offer => {
                        n.offered_on(7);
                        n.stop_offered();
                        Outcome::Keep
                    }
                    Step::Answer => n.answered(),
                    Step::RollBack => n.rolled_back(),
                    Step::Unsubscribe => n.unsubscribe(),
                    Step::SubscribeAgain => {
                        n.subscribe_again();
                        Outcome::Keep
                    }
                };
                (n.state(), outcome)
            })
            .collect()
    }

    #[test]
    fn each_wish_waits_for_the_answer_to_the_offer_that_is_out() {
        // Requirement: a consumer is added by one offer and stopped by another; an
        // unsubscribe or a subscribe that comes while an offer is out takes effect after
        // its answer, and a given-up offer is carried by the next one.
        use MlineState::*;
        use Outcome::*;
        use Step::*;
        let table: &[(&[Step], &[After])] = &[
            (&[Offer, Answer], &[(Offered(7), Keep), (Active(7), Keep)]),
            (&[Unsubscribe], &[(ToAdd, Drop)]),
            (
                &[Offer, Unsubscribe, Answer, Offer, Answer],
                &[
                    (Offered(7), Keep),
                    (Offered(7), Keep),
                    (ToRemove(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Drop),
                ],
            ),
            (
                &[Offer, Unsubscribe, SubscribeAgain, Answer],
                &[
                    (Offered(7), Keep),
                    (Offered(7), Keep),
                    (Offered(7), Keep),
                    (Active(7), Keep),
                ],
            ),
            (
                &[Offer, Answer, Unsubscribe, SubscribeAgain],
                &[
                    (Offered(7), Keep),
                    (Active(7), Keep),
                    (ToRemove(7), Keep),
                    (Active(7), Keep),
                ],
            ),
            (
                &[Offer, Answer, Unsubscribe, Offer, SubscribeAgain, Answer],
                &[
                    (Offered(7), Keep),
                    (Active(7), Keep),
                    (ToRemove(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), AddAgain),
                ],
            ),
            (
                &[
                    Offer,
                    Answer,
                    Unsubscribe,
                    Offer,
                    SubscribeAgain,
                    Unsubscribe,
                    Answer,
                ],
                &[
                    (Offered(7), Keep),
                    (Active(7), Keep),
                    (ToRemove(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Drop),
                ],
            ),
            (
                &[Offer, RollBack, Offer, Answer],
                &[
                    (Offered(7), Keep),
                    (ToAdd, Keep),
                    (Offered(7), Keep),
                    (Active(7), Keep),
                ],
            ),
            (
                &[Offer, Unsubscribe, RollBack],
                &[(Offered(7), Keep), (Offered(7), Keep), (Offered(7), Drop)],
            ),
            (
                &[Offer, Answer, Unsubscribe, Offer, RollBack],
                &[
                    (Offered(7), Keep),
                    (Active(7), Keep),
                    (ToRemove(7), Keep),
                    (Removing(7), Keep),
                    (ToRemove(7), Keep),
                ],
            ),
            (
                &[Offer, Answer, Unsubscribe, Offer, SubscribeAgain, RollBack],
                &[
                    (Offered(7), Keep),
                    (Active(7), Keep),
                    (ToRemove(7), Keep),
                    (Removing(7), Keep),
                    (Removing(7), Keep),
                    (Active(7), Keep),
                ],
            ),
        ];
        for (steps, expected) in table {
            assert_eq!(run(steps), *expected, "{steps:?}");
        }
    }

    #[test]
    fn only_an_offered_or_active_m_line_is_sending() {
        let mut n = ConsumerNegotiation::default();
        assert!(!n.is_sending() && n.mid().is_none() && n.wants_adding());
        n.offered_on(3u8);
        assert!(n.is_sending() && n.active_mid().is_none());
        n.answered();
        assert_eq!((n.active_mid(), n.mid()), (Some(3), Some(3)));
        n.unsubscribe();
        assert!(!n.is_sending());
        assert_eq!(n.stop_due(), Some(3));
    }
}
