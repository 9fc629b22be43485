//! Participants entering and leaving, datagrams and timers reaching their `Rtc`.

use std::time::{Duration, Instant};

use sfu_core::datagram::{DatagramKind, classify};
use sfu_core::ids::ParticipantId;
use signaling::turn::turn_credentials;
use signaling::{
    ErrorCode, LeaveReason, Participant as ParticipantInfo, ProtocolError, ServerMessage,
};
use str0m::Input;
use str0m::net::Receive;
use tracing::{debug, info, info_span, warn};

use super::offer_state::OfferState;
use super::outbox::Outbox;
use super::participant::{Joining, Participant};
use super::peer_connection;
use super::presence::Presence;
use super::{Datagram, JoinRequest, Room};
use crate::routing::Route;
use crate::stats::bump;

/// Without a client offer, the server makes its first offer this long after the join.
const FIRST_OFFER_DELAY: Duration = Duration::from_secs(2);

impl Room {
    pub(super) fn join(&mut self, request: JoinRequest) {
        let JoinRequest {
            name,
            grants,
            identity,
            auto_subscribe,
            out,
            resume_token,
            reply,
        } = request;
        if reply.is_closed() {
            // Its session stopped waiting (the room was too slow): nobody would take part.
            return;
        }
        // A participant that may not subscribe receives nothing, whatever it asked for.
        let auto_subscribe = auto_subscribe && grants.can_subscribe;
        // One participant per identity: a second join with it replaces the first.
        if let Some(identity) = &identity {
            let earlier: Vec<ParticipantId> = self
                .participants
                .values()
                .filter(|p| p.identity().as_ref().is_some_and(|i| i.sub == identity.sub))
                .map(|p| p.id())
                .collect();
            for key in earlier {
                self.remove_participant(key, Some(LeaveReason::Replaced));
            }
        }
        if self.participants.len() >= self.ctx.config.max_participants_per_room {
            let _ = reply.send(Err(ProtocolError {
                code: ErrorCode::RoomFull,
                message: format!(
                    "room is full ({} participants)",
                    self.ctx.config.max_participants_per_room
                ),
                refused: None,
            }));
            return;
        }
        let now = self.now;
        let built = peer_connection::new_rtc(&self.candidate_addrs, self.ctx.config.egress, now);
        let (mut rtc, native) = match built {
            Ok(built) => built,
            Err(e) => {
                warn!(error = %e, "cannot create a peer connection");
                let _ = reply.send(Err(ProtocolError {
                    code: ErrorCode::Internal,
                    message: "the server could not create a peer connection".into(),
                    refused: None,
                }));
                return;
            }
        };
        let key = ParticipantId::new(self.ctx.services.next_number());
        let id = key;
        let ice_password = rtc.direct_api().local_ice_credentials().pass;
        let span = info_span!("participant", room = %self.id, participant = %id);
        let participants = self.participant_infos_except(key);
        let connect_timeout = Duration::from_secs(self.ctx.config.ice_connect_timeout_secs);
        let mut p = Participant::new(Joining {
            id,
            name: name.clone(),
            span,
            rtc,
            native,
            outbox: Outbox::new(out),
            auto_subscribe,
            grants,
            identity,
            presence: Presence::new(now, connect_timeout, resume_token.clone()),
            offers: OfferState::new(
                now,
                FIRST_OFFER_DELAY,
                self.ctx.config.max_offers_per_second,
            ),
            data_per_second: self.ctx.config.max_data_messages_per_second,
        });
        let ufrag = p.ufrag().to_owned();
        {
            let _g = p.span().enter();
            info!(%name, auto_subscribe, %ufrag, "participant joined");
        }
        self.ctx.routes.insert(
            ufrag,
            Route {
                datagrams: self.datagram_tx.clone(),
                participant: key,
                ice_password: ice_password.into(),
            },
        );
        self.seat.participant_joined();
        let joined = ServerMessage::Joined {
            participant_id: id.to_string(),
            room: self.id.to_string(),
            participants,
            ice_servers: self.ice_servers_for(&id.to_string()),
            resume_token: (self.ctx.config.resume_grace_secs > 0).then(|| resume_token.clone()),
        };
        self.ctx
            .services
            .remember_resume(&resume_token, self.id.clone(), key);
        // `joined` goes first on the participant's queue, before anything the room says next.
        p.outbox_mut().send(joined);
        self.participants.insert(key, p);
        if reply.send(Ok((key, id.to_string()))).is_err() {
            // Its session stopped waiting meanwhile: nobody takes part as this participant.
            self.remove_participant(key, None);
            return;
        }
        self.broadcast(
            key,
            &ServerMessage::ParticipantJoined {
                participant: ParticipantInfo {
                    id: id.to_string(),
                    name,
                    tracks: Vec::new(),
                },
            },
        );
        if auto_subscribe {
            let existing: Vec<_> = self.producers.keys().copied().collect();
            for producer in existing {
                self.add_consumer(key, producer);
            }
        }
    }

    /// Everyone but `except`, as the protocol describes participants.
    pub(super) fn participant_infos_except(&self, except: ParticipantId) -> Vec<ParticipantInfo> {
        self.participants
            .iter()
            .filter(|(k, _)| **k != except)
            .map(|(_, p)| ParticipantInfo {
                id: p.id().to_string(),
                name: p.name().to_owned(),
                tracks: p
                    .published()
                    .values()
                    .filter_map(|k| self.producers.get(k))
                    .map(|producer| producer.track())
                    .collect(),
            })
            .collect()
    }

    /// The ICE servers handed to participant `identity`: TURN entries with a shared secret
    /// get credentials of its own, valid for their `credential_ttl_secs` from now.
    pub(super) fn ice_servers_for(&self, identity: &str) -> Vec<signaling::IceServer> {
        let now = signaling::token::unix_now();
        self.ctx
            .config
            .ice_servers
            .iter()
            .map(|s| {
                let (username, credential) = match &s.secret {
                    Some(secret) => {
                        let c = turn_credentials(
                            secret.as_bytes(),
                            identity,
                            now,
                            s.credential_ttl_secs,
                        );
                        (Some(c.username), Some(c.credential))
                    }
                    None => (s.username.clone(), s.credential.clone()),
                };
                signaling::IceServer {
                    urls: s.urls.clone(),
                    username,
                    credential,
                }
            })
            .collect()
    }

    /// Remove a participant with everything it published and received; tell the others.
    pub(super) fn remove_participant(&mut self, key: ParticipantId, reason: Option<LeaveReason>) {
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        {
            let _g = p.span().enter();
            info!(reason = ?reason, "participant left");
        }
        self.ctx.routes.remove(p.ufrag());
        self.ctx.services.forget_resume(p.presence().resume_token());
        self.speakers.remove(&key);
        self.seat.participant_left();
        if let Some(reason) = reason {
            p.outbox_mut().end(reason);
        }
        for producer in p.consumers().keys() {
            if let Some(producer) = self.producers.get_mut(producer) {
                producer.remove_subscriber(key);
            }
        }
        let published: Vec<_> = p.published().values().copied().collect();
        for producer in published {
            self.unpublish(producer);
        }
        p.rtc_mut().disconnect();
        let mut ignored = std::collections::VecDeque::new();
        p.drain(
            self.ctx.media.as_mut(),
            &self.ctx.stats,
            &mut ignored,
            self.now,
        );
        self.broadcast(
            key,
            &ServerMessage::ParticipantLeft {
                participant_id: p.id().to_string(),
            },
        );
    }

    pub(super) fn handle_datagram(&mut self, datagram: Datagram) {
        let Some(destination) = self.local_address_for(&datagram) else {
            bump(self.ctx.stats.dropped(datagram.proto));
            return;
        };
        let Some(p) = self.participants.get_mut(&datagram.participant) else {
            bump(self.ctx.stats.dropped(datagram.proto));
            return;
        };
        let Ok(contents) = datagram.data.as_slice().try_into() else {
            bump(self.ctx.stats.rejected(datagram.proto));
            return;
        };
        let input = Input::Receive(
            datagram.at,
            Receive {
                proto: datagram.proto,
                source: datagram.source,
                destination,
                contents,
            },
        );
        if !p.rtc().accepts(&input) {
            bump(self.ctx.stats.rejected(datagram.proto));
            return;
        }
        if let Err(e) = p.rtc_mut().handle_input(input) {
            let _g = p.span().enter();
            debug!(error = %e, "datagram refused");
            bump(self.ctx.stats.rejected(datagram.proto));
        }
        p.drain(
            self.ctx.media.as_mut(),
            &self.ctx.stats,
            &mut self.events,
            self.now,
        );
        if !p.rtc().is_alive() {
            self.to_remove.push((p.id(), Some(LeaveReason::Timeout)));
        }
        let native = p.native_mut().is_some();
        if native && classify(&datagram.data) == Ok(DatagramKind::Rtcp) {
            self.native_feedback(datagram.participant, &datagram.data);
        }
    }

    /// The server candidate a datagram arrived on: the one with the address the socket
    /// reported, else the first of the sender's address family (behind NAT 1:1 the
    /// advertised address is not the one the datagram was sent to).
    fn local_address_for(&self, datagram: &Datagram) -> Option<std::net::SocketAddr> {
        let same_proto = || {
            self.candidate_addrs
                .iter()
                .filter(|(proto, _)| *proto == datagram.proto)
                .map(|(_, a)| *a)
        };
        let reported = datagram
            .local
            .and_then(|ip| same_proto().find(|a| a.ip() == ip));
        reported.or_else(|| same_proto().find(|a| a.is_ipv4() == datagram.source.is_ipv4()))
    }

    pub(super) fn handle_timeouts(&mut self, now: Instant) {
        let grace = self.resume_grace();
        let keys: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for key in keys {
            let Some(p) = self.participants.get_mut(&key) else {
                continue;
            };
            if p.timeout_due(now) {
                if let Err(e) = p.rtc_mut().handle_input(Input::Timeout(now)) {
                    let _g = p.span().enter();
                    warn!(error = %e, "timeout handling failed");
                }
                p.drain(
                    self.ctx.media.as_mut(),
                    &self.ctx.stats,
                    &mut self.events,
                    self.now,
                );
            }
            self.native_timeout(key, now);
            let Some(p) = self.participants.get_mut(&key) else {
                continue;
            };
            if !p.rtc().is_alive() {
                ::metrics::counter!(crate::metric_names::CONNECTION_FAILURES, "reason" => "peer_connection_closed")
                    .increment(1);
                self.to_remove.push((key, Some(LeaveReason::Timeout)));
                continue;
            }
            if p.presence().resume_overdue(now, grace) {
                let _g = p.span().enter();
                info!("signaling connection not resumed in time; removing participant");
                drop(_g);
                ::metrics::counter!(crate::metric_names::CONNECTION_FAILURES, "reason" => "signaling_lost")
                    .increment(1);
                self.to_remove.push((key, Some(LeaveReason::Timeout)));
                continue;
            }
            if let Some(overdue) = p.presence().path_overdue(now) {
                let reason = overdue.reason();
                ::metrics::counter!(crate::metric_names::CONNECTION_FAILURES, "reason" => reason)
                    .increment(1);
                let _g = p.span().enter();
                warn!("media path not connected in time; removing participant");
                drop(_g);
                self.to_remove.push((key, Some(LeaveReason::Timeout)));
                continue;
            }
            if p.offers_mut().pause_ended(now) {
                self.maybe_offer(key);
            }
        }
    }
}
