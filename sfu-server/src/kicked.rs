//! Identities an operator kicked out of a room, kept out until the token they were kicked
//! with expires (a new token for the same identity does not let them straight back in).

use dashmap::DashMap;
use sfu_core::ids::RoomId;

/// Kicked identities per room, each until a Unix time.
#[derive(Debug, Default)]
pub struct KickedIdentities {
    until: DashMap<(RoomId, String), u64>,
}

impl KickedIdentities {
    /// Keep `identity` out of `room` until `until` (Unix seconds); forgets entries that
    /// expired by `now`, so the list holds only kicks still in force.
    pub fn kick(&self, room: &RoomId, identity: &str, until: u64, now: u64) {
        self.until.retain(|_, until| *until > now);
        self.until
            .entry((room.clone(), identity.to_owned()))
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
    }

    /// Until when `identity` is kept out of `room`, if it is at `now`.
    pub fn kept_out_until(&self, room: &RoomId, identity: &str, now: u64) -> Option<u64> {
        let key = (room.clone(), identity.to_owned());
        let until = *self.until.get(&key)?;
        if until > now {
            Some(until)
        } else {
            self.until.remove(&key);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kicked_identity_stays_out_until_its_token_expires() {
        // Requirement: a kicked participant cannot rejoin the room with the same identity
        // until its token's expiry; other rooms and identities are not affected.
        let kicked = KickedIdentities::default();
        let room = RoomId::from_wire("r");
        kicked.kick(&room, "mallory", 1_000, 100);
        assert_eq!(kicked.kept_out_until(&room, "mallory", 500), Some(1_000));
        assert_eq!(kicked.kept_out_until(&room, "alice", 500), None);
        assert_eq!(
            kicked.kept_out_until(&RoomId::from_wire("other"), "mallory", 500),
            None
        );
        kicked.kick(&room, "mallory", 800, 500);
        assert_eq!(
            kicked.kept_out_until(&room, "mallory", 900),
            Some(1_000),
            "a shorter kick does not shorten it"
        );
        assert_eq!(
            kicked.kept_out_until(&room, "mallory", 1_000),
            None,
            "expired"
        );
        kicked.kick(&room, "eve", 2_000, 1_500);
        assert_eq!(kicked.until.len(), 1, "expired kicks are forgotten");
    }
}
