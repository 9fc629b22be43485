//! Whether a client's offer may be accepted: publishing needs the grant, and the tracks the
//! offer leaves published must fit the participant's and the room's caps, counted on the
//! m-lines the WebRTC stack will actually receive on, however they are spelled.

use thiserror::Error;

/// One audio or video m-line of a client offer, as the WebRTC stack parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedLine {
    /// Its mid.
    pub mid: String,
    /// Port 0: rejected, unless a BUNDLE group lists its mid (`a=bundle-only`).
    pub port_zero: bool,
    /// A BUNDLE group lists its mid.
    pub bundled: bool,
    /// The client sends on it (`sendonly` or `sendrecv`).
    pub client_sends: bool,
    /// Distinct rids it names (simulcast layers).
    pub rids: usize,
    /// Distinct SSRCs it declares.
    pub ssrcs: usize,
}

impl OfferedLine {
    /// Whether the stack keeps the m-line (not rejected) and receives on it.
    pub fn receives(&self) -> bool {
        (!self.port_zero || self.bundled) && self.client_sends
    }
}

/// What the participant may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRules {
    /// Its token grants publishing.
    pub may_publish: bool,
    /// Most tracks one participant may publish.
    pub max_tracks: usize,
    /// Most tracks the whole room may carry.
    pub max_room_tracks: usize,
    /// Tracks the room's other participants publish now.
    pub others_tracks: usize,
    /// Most simulcast layers (rids) one track may have.
    pub max_layers: usize,
    /// Most SSRCs one track may declare (each layer with its repair stream).
    pub max_ssrcs: usize,
}

/// Why an offer is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfferRefusal {
    /// It publishes without the grant.
    #[error("this participant's token does not allow publishing")]
    NotAllowed,
    /// More tracks than the participant may publish.
    #[error("the offer publishes {tracks} tracks; the limit is {limit}")]
    TooManyTracks {
        /// Tracks the offer would leave published.
        tracks: usize,
        /// The limit.
        limit: usize,
    },
    /// The room would carry more tracks than it may.
    #[error("the room would carry {tracks} tracks; its limit is {limit}")]
    RoomFull {
        /// Tracks the room would carry.
        tracks: usize,
        /// The limit.
        limit: usize,
    },
    /// One track names more simulcast layers than allowed.
    #[error("m-line {mid} names {rids} simulcast layers; the limit is {limit}")]
    TooManyLayers {
        /// The m-line.
        mid: String,
        /// Rids it names.
        rids: usize,
        /// The limit.
        limit: usize,
    },
    /// One track declares more SSRCs than allowed.
    #[error("m-line {mid} declares {ssrcs} SSRCs; the limit is {limit}")]
    TooManySsrcs {
        /// The m-line.
        mid: String,
        /// SSRCs it declares.
        ssrcs: usize,
        /// The limit.
        limit: usize,
    },
}

/// How many tracks the participant publishes once `lines` are applied, or why the offer is
/// refused. m-lines on which the server sends (`sent_by_server`: its consumers) are never
/// tracks of the participant, whatever direction the client gives them.
pub fn check_offer(
    lines: &[OfferedLine],
    sent_by_server: impl Fn(&str) -> bool,
    rules: PublishRules,
) -> Result<usize, OfferRefusal> {
    let published: Vec<&OfferedLine> = lines
        .iter()
        .filter(|l| l.receives() && !sent_by_server(&l.mid))
        .collect();
    if !rules.may_publish && !published.is_empty() {
        return Err(OfferRefusal::NotAllowed);
    }
    if published.len() > rules.max_tracks {
        return Err(OfferRefusal::TooManyTracks {
            tracks: published.len(),
            limit: rules.max_tracks,
        });
    }
    let room = rules.others_tracks + published.len();
    if room > rules.max_room_tracks {
        return Err(OfferRefusal::RoomFull {
            tracks: room,
            limit: rules.max_room_tracks,
        });
    }
    for line in &published {
        if line.rids > rules.max_layers {
            return Err(OfferRefusal::TooManyLayers {
                mid: line.mid.clone(),
                rids: line.rids,
                limit: rules.max_layers,
            });
        }
        if line.ssrcs > rules.max_ssrcs {
            return Err(OfferRefusal::TooManySsrcs {
                mid: line.mid.clone(),
                ssrcs: line.ssrcs,
                limit: rules.max_ssrcs,
            });
        }
    }
    Ok(published.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(mid: &str, port_zero: bool, bundled: bool, client_sends: bool) -> OfferedLine {
        OfferedLine {
            mid: mid.to_owned(),
            port_zero,
            bundled,
            client_sends,
            rids: 0,
            ssrcs: 1,
        }
    }

    /// A case: its name, the offer's m-lines, the rules, what the check says.
    type Case = (
        &'static str,
        Vec<OfferedLine>,
        PublishRules,
        Result<usize, OfferRefusal>,
    );

    const RULES: PublishRules = PublishRules {
        may_publish: true,
        max_tracks: 2,
        max_room_tracks: 5,
        others_tracks: 0,
        max_layers: 3,
        max_ssrcs: 6,
    };

    #[test]
    fn counts_every_line_the_stack_receives_on() {
        // Requirement: grants and caps hold for every spelling of a sending m-line: port 0
        // inside BUNDLE (bundle-only) counts, a rejected or receive-only one does not, and
        // a consumer's m-line turned sendrecv is not a track.
        let subscriber = PublishRules {
            may_publish: false,
            ..RULES
        };
        let not_consumer = |_: &str| false;
        let table: [Case; 9] = [
            (
                "nothing sent",
                vec![line("0", false, true, false)],
                subscriber,
                Ok(0),
            ),
            (
                "a plain send-only line",
                vec![line("0", false, true, true)],
                RULES,
                Ok(1),
            ),
            (
                "rejected: port 0, not bundled",
                vec![line("0", true, false, true)],
                subscriber,
                Ok(0),
            ),
            (
                "bundle-only: port 0 but bundled, no grant",
                vec![line("0", true, true, true)],
                subscriber,
                Err(OfferRefusal::NotAllowed),
            ),
            (
                "bundle-only lines over the cap",
                vec![
                    line("0", true, true, true),
                    line("1", true, true, true),
                    line("2", true, true, true),
                ],
                RULES,
                Err(OfferRefusal::TooManyTracks {
                    tracks: 3,
                    limit: 2,
                }),
            ),
            (
                "a line not sent is no track",
                vec![
                    line("0", false, true, true),
                    line("1", true, true, false),
                    line("2", false, true, false),
                ],
                RULES,
                Ok(1),
            ),
            (
                "the room cap",
                vec![line("0", false, true, true), line("1", false, true, true)],
                PublishRules {
                    others_tracks: 4,
                    ..RULES
                },
                Err(OfferRefusal::RoomFull {
                    tracks: 6,
                    limit: 5,
                }),
            ),
            (
                "too many simulcast layers",
                vec![OfferedLine {
                    rids: 4,
                    ..line("v", false, true, true)
                }],
                RULES,
                Err(OfferRefusal::TooManyLayers {
                    mid: "v".into(),
                    rids: 4,
                    limit: 3,
                }),
            ),
            (
                "too many SSRCs",
                vec![OfferedLine {
                    ssrcs: 7,
                    ..line("v", false, true, true)
                }],
                RULES,
                Err(OfferRefusal::TooManySsrcs {
                    mid: "v".into(),
                    ssrcs: 7,
                    limit: 6,
                }),
            ),
        ];
        for (case, lines, rules, want) in table {
            assert_eq!(check_offer(&lines, not_consumer, rules), want, "{case}");
        }
        let consumer = |mid: &str| mid == "c";
        let flipped = [line("c", false, true, true)];
        assert_eq!(
            check_offer(&flipped, consumer, subscriber),
            Ok(0),
            "a consumer's m-line answered sendrecv"
        );
    }
}
