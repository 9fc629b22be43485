//! One id type per entity, so a participant id is never passed where a track id is
//! expected. Participants and tracks are numbered by the server: a number inside, its wire
//! spelling (`PA_7`, `TR_3`) outside, with exactly one spelling per id. Rooms are named by
//! their clients.

use std::fmt;
use std::str::FromStr;

/// A wire string that is not the spelling of any id of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a {kind} id")]
pub struct NotAnId {
    /// What was given.
    pub given: String,
    /// The kind of id expected.
    pub kind: &'static str,
}

macro_rules! numbered_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The wire prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// The id numbered `n`.
            pub const fn new(n: u64) -> Self {
                Self(n)
            }

            /// Its number.
            pub const fn number(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, self.0)
            }
        }

        impl FromStr for $name {
            type Err = NotAnId;

            /// Only the spelling [`Display`](fmt::Display) gives is taken: `TR_03`, `tr_3`
            /// or `TR_+3` name no track, as no track was ever told under them.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                canonical_number(s, Self::PREFIX).map(Self).ok_or_else(|| NotAnId {
                    given: s.to_owned(),
                    kind: $kind,
                })
            }
        }
    };
}

/// The number in `s` when `s` is `prefix` followed by a number in its one decimal spelling.
fn canonical_number(s: &str, prefix: &str) -> Option<u64> {
    let digits = s.strip_prefix(prefix)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

numbered_id!(
    /// A participant: one peer connection in one room (never reused in a process).
    ParticipantId,
    "PA_",
    "participant"
);
numbered_id!(
    /// A producer: one incoming track (the protocol's track id; never reused in a process).
    ProducerId,
    "TR_",
    "track"
);

/// A room, named by its clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

impl RoomId {
    /// Wrap a room name received on the wire.
    pub fn from_wire(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_spelt_with_their_prefix() {
        // Requirement: the wire spelling stays `PA_<n>` and `TR_<n>`.
        assert_eq!(ParticipantId::new(7).to_string(), "PA_7");
        assert_eq!(ProducerId::new(0).to_string(), "TR_0");
        assert_eq!(
            ProducerId::new(u64::MAX).to_string(),
            format!("TR_{}", u64::MAX)
        );
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        // Requirement: every id parses back from its spelling, and nothing else names it,
        // so a lookup by a misspelt id finds nothing (`not_found` on the wire).
        let table: &[(&str, Option<u64>)] = &[
            ("TR_3", Some(3)),
            ("TR_0", Some(0)),
            ("TR_18446744073709551615", Some(u64::MAX)),
            ("TR_18446744073709551616", None),
            ("TR_03", None),
            ("TR_00", None),
            ("TR_", None),
            ("TR_+3", None),
            ("TR_-3", None),
            ("TR_3 ", None),
            (" TR_3", None),
            ("tr_3", None),
            ("PA_3", None),
            ("3", None),
            ("TR_3a", None),
            ("TR_٣", None),
            ("", None),
        ];
        for (given, number) in table {
            let parsed = given.parse::<ProducerId>().ok().map(ProducerId::number);
            assert_eq!(parsed, *number, "{given:?}");
        }
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            let id = ParticipantId::new(n);
            assert_eq!(id.to_string().parse::<ParticipantId>(), Ok(id));
        }
    }

    #[test]
    fn a_wrong_spelling_says_what_was_expected() {
        let error = "PA_x".parse::<ParticipantId>().expect_err("not an id");
        assert_eq!(error.to_string(), "`PA_x` is not a participant id");
    }
}
