//! Newtype ids, so a participant id is never passed where a track id is expected.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The wire prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// Build the id with sequence number `n`, e.g. `PA_7`.
            pub fn from_sequence(n: u64) -> Self {
                Self(format!("{}{}", $prefix, n))
            }

            /// Wrap an id received on the wire.
            pub fn from_wire(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The id as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A room, named by its clients.
    RoomId,
    ""
);
string_id!(
    /// A participant: one peer connection in one room.
    ParticipantId,
    "PA_"
);
string_id!(
    /// A producer: one incoming track (the protocol's track id).
    ProducerId,
    "TR_"
);
string_id!(
    /// A consumer: one subscriber's copy of one producer.
    ConsumerId,
    "CO_"
);
