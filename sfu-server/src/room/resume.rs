//! Losing and taking back a participant's signaling connection: a participant whose
//! WebSocket dropped without `leave` keeps its peer connection (media keeps flowing) for
//! `resume_grace_secs`, and a new connection presenting its `resume_token` takes it back.

use sfu_core::ids::ParticipantId;
use signaling::{ErrorCode, ProtocolError, ServerMessage};
use tracing::info;

use super::{ResumeRequest, Room};

impl Room {
    /// Whether `connection` is the participant's current signaling connection: what an older
    /// one, replaced by a resume, still sends or reports is ignored.
    pub(super) fn is_current_connection(&self, key: ParticipantId, connection: u64) -> bool {
        self.participants
            .get(&key)
            .is_some_and(|p| p.presence().connection() == connection)
    }

    /// Connection `connection` of the participant left, or the server ended it. A session that a
    /// resume replaced ends without taking the participant with it.
    pub(super) fn leave(&mut self, key: ParticipantId, connection: u64) {
        if self.is_current_connection(key, connection) {
            self.to_remove.push((key, None));
        }
    }

    /// Connection `connection` of the participant lost its connection without `leave`.
    pub(super) fn disconnected(&mut self, key: ParticipantId, connection: u64) {
        if self.ctx.config.resume_grace_secs == 0 {
            self.to_remove.push((key, None));
            return;
        }
        if !self.is_current_connection(key, connection) {
            return; // Gone, or an older connection ending after the participant resumed.
        }
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let _g = p.span().clone().entered();
        info!(
            grace_secs = self.ctx.config.resume_grace_secs,
            "signaling connection lost; waiting for resume"
        );
        p.presence_mut().signaling_lost(self.now);
    }

    /// A new signaling connection takes the participant back.
    pub(super) fn resume(&mut self, request: ResumeRequest) {
        let ResumeRequest {
            key,
            resume_token,
            new_resume_token,
            out,
            reply,
        } = request;
        if reply.is_closed() {
            // Its session stopped waiting: the participant stays as it was.
            return;
        }
        let participants = self.participant_infos_except(key);
        let ice_servers = self
            .participants
            .get(&key)
            .map(|p| self.ice_servers_for(&p.id().to_string()))
            .unwrap_or_default();
        let room = self.id.to_string();
        let Some(p) = self
            .participants
            .get_mut(&key)
            .filter(|p| p.presence().resume_token() == resume_token)
        else {
            let _ = reply.send(Err(ProtocolError {
                code: ErrorCode::NotFound,
                message: "nothing to resume: the participant is gone".into(),
                refused: None,
            }));
            return;
        };
        let now = signaling::token::unix_now();
        if p.identity().as_ref().is_some_and(|i| i.expires <= now) {
            let _g = p.span().enter();
            info!("resume refused: the join token has expired; participant removed");
            drop(_g);
            let _ = reply.send(Err(ProtocolError {
                code: ErrorCode::Unauthorized,
                message: "the join token has expired: join again with a new one".into(),
                refused: None,
            }));
            self.to_remove.push((key, None));
            return;
        }
        // The old connection may still be open (the server has not noticed it die yet, or the
        // client opened the new one first): it is told, and is no longer the participant's.
        p.outbox_mut().replace(out);
        // A resume token takes the participant back once: whoever saw it cannot use it again.
        let old_token = p.presence_mut().resumed(new_resume_token.clone());
        self.ctx.services.forget_resume(&old_token);
        self.ctx
            .services
            .remember_resume(&new_resume_token, self.id.clone(), key);
        let connection = p.presence().connection();
        {
            let _g = p.span().enter();
            info!(connection, "signaling connection resumed");
        }
        let joined = ServerMessage::Joined {
            participant_id: p.id().to_string(),
            room,
            participants,
            ice_servers,
            resume_token: Some(new_resume_token.clone()),
        };
        p.outbox_mut().send(joined);
        // An offer that went out while it was away is still waiting for its answer.
        if let Some(offer) = p.offers().to_resend() {
            p.outbox_mut().send(offer);
        }
        if reply.send(Ok((p.id().to_string(), connection))).is_err() {
            // Its session stopped waiting meanwhile and never learnt the new token: the old
            // one stays the way back.
            let given_up = p.presence_mut().keep_token(old_token);
            self.ctx.services.forget_resume(&given_up);
            self.ctx
                .services
                .remember_resume(p.presence().resume_token(), self.id.clone(), key);
        }
    }
}
