//! One signaling WebSocket: parse and validate client messages, hand them to the
//! participant's room, and write the room's messages back.
//!
//! A session is generic over its socket ([`SignalingSocket`]): axum's WebSocket in the
//! server, an in-memory one in the tests.

mod entry;
mod frames;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use signaling::{ClientMessage, ErrorCode, LeaveReason, Limits, ProtocolError, ServerMessage};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};

use self::entry::{Entry, Joined, enter_by_join, enter_by_resume};
pub use self::frames::SignalingSocket;
use self::frames::{
    SendFailure, close_refused, left_before_closing, next_message, reply_error, send, send_frame,
};
use crate::message_rate::MessageRate;
use crate::per_ip::PerIpPlace;
use crate::read_budget::ReadBudget;
use crate::registry::Registry;
use crate::room::{Outbound, RoomCommand};
use crate::stats::{Stats, bump};

/// Messages queued toward one client before it counts as too slow and is dropped.
const OUTBOUND_QUEUE: usize = 512;
/// How long a new socket may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a joined session enforces, from the server's config.
struct SessionRules {
    /// Sizes of messages and SDP.
    limits: Limits,
    /// Client messages per second before they are dropped.
    max_messages_per_second: u32,
    /// How long the client may stay silent (pongs count).
    idle_timeout: Duration,
}

impl SessionRules {
    fn of(config: &config::Config) -> Self {
        Self {
            limits: Limits {
                max_message_bytes: config.max_message_bytes,
                max_sdp_bytes: config.max_sdp_bytes,
                ..Limits::default()
            },
            max_messages_per_second: config.max_messages_per_second,
            idle_timeout: Duration::from_secs(config.ws_idle_timeout_secs),
        }
    }
}

/// When the client was last heard from (any frame, pongs included); shared by the reading
/// future and the keepalive check of one session.
struct LastHeard {
    base: Instant,
    millis: AtomicU64,
}

impl LastHeard {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(ms, Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        self.base
            .elapsed()
            .saturating_sub(Duration::from_millis(self.millis.load(Ordering::Relaxed)))
    }
}

/// What a signaling connection may send before it joins: a `join` or `resume` is a few
/// hundred bytes; more makes the server hold buffers for a client it has not admitted.
const MAX_BYTES_BEFORE_JOIN: usize = 16 * 1024;

/// A signaling connection's place among those that have not joined yet (in all and from its
/// address), and its read budget, limited until it joins.
pub struct UnjoinedPlace {
    _total: OwnedSemaphorePermit,
    _here: PerIpPlace,
    budget: Arc<ReadBudget>,
}

impl UnjoinedPlace {
    /// Hold both places; the connection may read [`MAX_BYTES_BEFORE_JOIN`] until it joins.
    pub fn new(total: OwnedSemaphorePermit, here: PerIpPlace, budget: Arc<ReadBudget>) -> Self {
        budget.limit_to(MAX_BYTES_BEFORE_JOIN);
        Self {
            _total: total,
            _here: here,
            budget,
        }
    }

    /// The connection is being sent away: what the client still sends is read and dropped
    /// for [`CLOSE_DRAIN`] without counting against the budget, so the close is not a reset.
    fn closing(&self) {
        self.budget.lift();
    }
}

impl Drop for UnjoinedPlace {
    fn drop(&mut self) {
        self.budget.lift();
    }
}

/// Serve one WebSocket until the client leaves, the socket drops or the room ends the session.
/// `unjoined` holds its place among the connections that have not joined yet, given back
/// once it joins.
pub async fn run<S: SignalingSocket>(
    mut socket: S,
    registry: Registry,
    stats: Arc<Stats>,
    unjoined: UnjoinedPlace,
) {
    let rules = SessionRules::of(registry.config());
    let limits = &rules.limits;
    let heard = LastHeard::new();
    let first = match tokio::time::timeout(
        JOIN_TIMEOUT,
        next_message(&mut socket, limits, &stats, &heard),
    )
    .await
    {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(_) => {
            let _ = reply_error(
                &mut socket,
                &stats,
                ProtocolError::bad_request(format!(
                    "no `join` within {} s",
                    JOIN_TIMEOUT.as_secs()
                )),
            )
            .await;
            close_refused(&mut socket, &unjoined).await;
            return;
        }
    };
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let entered = match first {
        Ok(ClientMessage::Join {
            room,
            name,
            token,
            auto_subscribe,
        }) => enter_by_join(&registry, room, name, token, auto_subscribe, out_tx).await,
        Ok(ClientMessage::Resume { resume_token }) => {
            enter_by_resume(&registry, &resume_token, out_tx).await
        }
        Ok(other) => Err(ProtocolError::bad_request(format!(
            "the first message must be `join` or `resume`, not `{}`",
            other.type_name()
        ))),
        Err(e) => Err(ProtocolError {
            code: e.code,
            message: format!("the first message must be a valid `join`: {}", e.message),
            refused: None,
        }),
    };
    let (room_id, joined) = match entered {
        Ok(Entry::Here(room_id, joined)) => (room_id, joined),
        Ok(Entry::Elsewhere { url, room }) => {
            bump(&stats.cluster_redirects);
            info!(room, url, "join redirected to the room's node");
            let _ = send(&mut socket, &ServerMessage::Redirect { url, room }).await;
            close_refused(&mut socket, &unjoined).await;
            return;
        }
        Err(e) => {
            let _ = reply_error(&mut socket, &stats, e).await;
            close_refused(&mut socket, &unjoined).await;
            return;
        }
    };
    drop(unjoined);
    let span = info_span!("session", room = %room_id, participant = %joined.participant_id);
    serve(socket, joined, out_rx, &rules, &stats)
        .instrument(span)
        .await;
}

/// Relay a joined participant's messages both ways until the session ends, then tell the
/// room how: left (or ended by the server), or lost (the participant may resume).
async fn serve<S: SignalingSocket>(
    mut socket: S,
    joined: Joined,
    mut out_rx: mpsc::Receiver<Outbound>,
    rules: &SessionRules,
    stats: &Stats,
) {
    let SessionRules {
        limits,
        max_messages_per_second,
        idle_timeout,
    } = rules;
    let (max_messages_per_second, idle_timeout) = (*max_messages_per_second, *idle_timeout);
    info!(connection = joined.connection, "joined");
    // Unless the client left or the server ended the session, the connection was lost and
    // the participant may still resume.
    let mut ended = SessionEnd::Lost;
    let mut failure: Option<SendFailure> = None;
    let mut rate = MessageRate::new(max_messages_per_second);
    let mut last_rate_error: Option<Instant> = None;
    let heard = LastHeard::new();
    // Ping every third of the idle timeout, so a live client answers twice before it expires.
    let mut keepalive = tokio::time::interval(idle_timeout / 3);
    loop {
        let sent = tokio::select! {
            _ = keepalive.tick() => {
                if heard.elapsed() >= idle_timeout {
                    warn!("nothing from the client for {} s; ending the session", idle_timeout.as_secs());
                    failure = send(&mut socket, &ServerMessage::Leave { reason: LeaveReason::Timeout }).await.err();
                    ended = SessionEnd::Ended;
                    break;
                }
                send_frame(&mut socket, Message::Ping(Vec::new().into())).await
            }
            incoming = next_message(&mut socket, limits, stats, &heard) => {
                let Some(incoming) = incoming else { break };
                let now = Instant::now();
                if !rate.admit(&incoming, now) {
                    bump(&stats.messages_rate_limited);
                    let message = format!("over {max_messages_per_second} messages per second; messages are being dropped");
                    if matches!(incoming, Ok(ClientMessage::Offer { .. })) {
                        // Every dropped offer is answered: the client waits for a reply to it.
                        let error = ProtocolError { code: ErrorCode::RateLimited, message, refused: None };
                        reply_error(&mut socket, stats, error.refusing_offer()).await
                    } else {
                        // One error a second at most: the reply must not become a flood itself.
                        if last_rate_error.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                            continue;
                        }
                        last_rate_error = Some(now);
                        reply_error(&mut socket, stats, ProtocolError { code: ErrorCode::RateLimited, message, refused: None, }).await
                    }
                } else {
                    match incoming {
                        Err(e) => reply_error(&mut socket, stats, e).await,
                        Ok(ClientMessage::Ping { ts }) => send(&mut socket, &ServerMessage::Pong { ts }).await,
                        Ok(ClientMessage::Join { .. } | ClientMessage::Resume { .. }) => {
                            reply_error(&mut socket, stats, ProtocolError::bad_request("already joined")).await
                        }
                        Ok(ClientMessage::Leave) => {
                            ended = SessionEnd::Left;
                            break;
                        }
                        Ok(message) => {
                            debug!(kind = message.type_name(), "client message");
                            if joined.commands.send(RoomCommand::Signal(joined.key, joined.connection, message)).await.is_err() {
                                break;
                            }
                            Ok(())
                        }
                    }
                }
            }
            outbound = out_rx.recv() => {
                let reason = match outbound {
                    Some(Outbound::Message(message)) => {
                        rate.server_sent(&message);
                        if let Err(f) = send(&mut socket, &message).await {
                            failure = Some(f);
                            break;
                        }
                        continue;
                    }
                    Some(Outbound::End(reason)) => reason,
                    None => LeaveReason::RoomClosed,
                };
                failure = send(&mut socket, &ServerMessage::Leave { reason }).await.err();
                ended = SessionEnd::Ended;
                break;
            }
        };
        if let Err(f) = sent {
            failure = Some(f);
            break;
        }
    }
    if matches!(failure, Some(SendFailure::Closed))
        && left_before_closing(&mut socket, limits, stats, &heard).await
    {
        ended = SessionEnd::Left;
    }
    let command = match ended {
        SessionEnd::Lost => RoomCommand::Disconnected(joined.key, joined.connection),
        SessionEnd::Left | SessionEnd::Ended => RoomCommand::Leave(joined.key, joined.connection),
    };
    let _ = joined.commands.send(command).await;
    match failure {
        // Its buffers are full: a close frame would wait too, so the socket is just dropped.
        Some(SendFailure::TooSlow) => {
            bump(&stats.slow_clients_dropped);
            warn!("the client stopped reading its messages; connection dropped");
        }
        Some(SendFailure::Closed) => {}
        None => {
            let _ = send_frame(&mut socket, Message::Close(None)).await;
        }
    }
    info!(?ended, "session ended");
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    /// The client sent `leave`.
    Left,
    /// The server ended it (removed, room closed, client silent too long).
    Ended,
    /// The connection dropped: the participant may `resume`.
    Lost,
}
