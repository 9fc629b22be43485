//! What the rooms of a node share beyond their own state: the resume tokens that take
//! participants back, the identities kicked out, and the numbers keys are made from.
//! Rooms and the registry hold the same one; it knows nothing of either.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use sfu_core::ids::{ParticipantId, RoomId};

use crate::kicked::KickedIdentities;

/// The node-wide directory rooms write to and sessions read from.
#[derive(Clone)]
pub struct NodeServices {
    inner: Arc<Inner>,
}

struct Inner {
    resumable: DashMap<String, (RoomId, ParticipantId)>,
    kicked: KickedIdentities,
    next_number: AtomicU64,
}

impl Default for NodeServices {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                resumable: DashMap::new(),
                kicked: KickedIdentities::default(),
                next_number: AtomicU64::new(1),
            }),
        }
    }
}

impl NodeServices {
    /// A fresh sequence number for a participant or producer key, unique in this process.
    pub fn next_number(&self) -> u64 {
        self.inner.next_number.fetch_add(1, Ordering::Relaxed)
    }

    /// `token` takes back `participant` of `room` from now on.
    pub fn remember_resume(&self, token: &str, room: RoomId, participant: ParticipantId) {
        self.inner
            .resumable
            .insert(token.to_owned(), (room, participant));
    }

    /// The room and participant a resume token takes back, if it is still valid.
    pub fn resume_target(&self, token: &str) -> Option<(RoomId, ParticipantId)> {
        self.inner.resumable.get(token).map(|e| e.value().clone())
    }

    /// The participant is gone: its resume token no longer works.
    pub fn forget_resume(&self, token: &str) {
        self.inner.resumable.remove(token);
    }

    /// These participants are gone (their room crashed): their tokens no longer work.
    pub fn forget_resumes_of(&self, participants: &[ParticipantId]) {
        self.inner
            .resumable
            .retain(|_, (_, participant)| !participants.contains(participant));
    }

    /// Identities kicked out of rooms, kept out until their tokens expire.
    pub fn kicked(&self) -> &KickedIdentities {
        &self.inner.kicked
    }
}
