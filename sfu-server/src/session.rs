//! One signaling WebSocket: parse and validate client messages, hand them to the
//! participant's room, and write the room's messages back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use sfu_core::ids::RoomId;
use signaling::token::{self as auth, Grants};
use signaling::{
    ClientMessage, ErrorCode, LeaveReason, Limits, ProtocolError, ServerMessage,
    parse_client_message,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cluster::Placement;
use crate::limits::Limit;
use crate::message_rate::MessageRate;
use crate::per_ip::PerIpPlace;
use crate::read_budget::{OverBudget, ReadBudget};
use crate::registry::Registry;
use crate::room::{Identity, JoinRequest, Outbound, ResumeRequest, RoomCommand};
use crate::routing::ParticipantKey;
use crate::stats::{Stats, bump};

/// Messages queued toward one client before it counts as too slow and is dropped.
const OUTBOUND_QUEUE: usize = 512;
/// How long a new socket may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a room may take to take and answer a join.
const JOIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a join is retried when it races with its room closing.
const JOIN_ATTEMPTS: usize = 3;
/// A client that does not read a message within this long is dropped, not buffered for.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the messages left on a failed connection are read, looking for `leave`.
const UNREAD_AFTER_FAILURE: Duration = Duration::from_millis(200);
/// How long a connection cut off for a frame too large is kept open after its reply.
const TOO_LARGE_LINGER: Duration = Duration::from_millis(500);
/// How long a connection sent away before joining is read after its close frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);
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
pub async fn run(
    mut socket: WebSocket,
    registry: Registry,
    stats: Arc<Stats>,
    unjoined: UnjoinedPlace,
) {
    let limits = Limits {
        max_message_bytes: registry.config().max_message_bytes,
        max_sdp_bytes: registry.config().max_sdp_bytes,
        ..Limits::default()
    };
    let heard = LastHeard::new();
    let first = match tokio::time::timeout(
        JOIN_TIMEOUT,
        next_message(&mut socket, &limits, &stats, &heard),
    )
    .await
    {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(_) => {
            let _ = reply_error(
                &mut socket,
                &stats,
                ProtocolError::bad_request("no `join` within 30 s"),
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
    let max_messages_per_second = registry.config().max_messages_per_second;
    let idle_timeout = Duration::from_secs(registry.config().ws_idle_timeout_secs);
    serve(
        socket,
        joined,
        out_rx,
        &limits,
        max_messages_per_second,
        idle_timeout,
        &stats,
    )
    .instrument(span)
    .await;
}

struct Joined {
    key: ParticipantKey,
    participant_id: String,
    commands: mpsc::Sender<RoomCommand>,
    /// Which session of the participant this is (0 for the join, one more per resume).
    session: u64,
}

/// Where a first message took the session.
enum Entry {
    /// Into a room of this node.
    Here(RoomId, Joined),
    /// The room lives on another node of the cluster.
    Elsewhere {
        /// That node's signaling URL.
        url: String,
        /// The room asked for.
        room: String,
    },
}

/// Enter a room with `join`: check the token, find the room's node, then join here.
async fn enter_by_join(
    registry: &Registry,
    room: String,
    name: String,
    token: Option<String>,
    auto_subscribe: bool,
    out: mpsc::Sender<Outbound>,
) -> Result<Entry, ProtocolError> {
    let Admission {
        name,
        grants,
        identity,
    } = authorize(registry.config(), &room, name, token.as_deref())?;
    if let Some(identity) = &identity
        && let Some(until) = registry.services().kicked().kept_out_until(
            &RoomId::from_wire(room.as_str()),
            &identity.sub,
            auth::unix_now(),
        )
    {
        return Err(ProtocolError {
            code: ErrorCode::Forbidden,
            message: format!(
                "this identity was kicked out of room `{room}`; it may join again once its \
                 token expires (in {} s)",
                until.saturating_sub(auth::unix_now())
            ),
            refused: None,
        });
    }
    // Placement asks Redis, so it counts as a join in progress too.
    let Some(_permit) = registry.begin_join() else {
        return Err(ProtocolError {
            code: ErrorCode::RateLimited,
            message: "too many joins in progress on this server, try again shortly".into(),
            refused: None,
        });
    };
    if let Some(cluster) = registry.cluster() {
        match cluster.place(&room, registry).await {
            Ok(Placement::Here) => {}
            Ok(Placement::Elsewhere(url)) => return Ok(Entry::Elsewhere { url, room }),
            Err(e) => {
                bump(&registry.stats().cluster_errors);
                warn!(error = %e, room, "room placement failed; serving the join on this node");
            }
        }
    }
    if registry.draining() {
        return Err(shutting_down());
    }
    let room_id = RoomId::from_wire(room);
    let admission = Admission {
        name,
        grants,
        identity,
    };
    let joined = join(registry, &room_id, admission, auto_subscribe, out).await?;
    Ok(Entry::Here(room_id, joined))
}

/// Take back a participant whose connection was lost, with its resume token.
async fn enter_by_resume(
    registry: &Registry,
    resume_token: &str,
    out: mpsc::Sender<Outbound>,
) -> Result<Entry, ProtocolError> {
    let gone = || ProtocolError {
        code: ErrorCode::NotFound,
        message: "nothing to resume: unknown or expired resume token".into(),
        refused: None,
    };
    if registry.draining() {
        return Err(shutting_down());
    }
    let (room_id, key) = registry
        .services()
        .resume_target(resume_token)
        .ok_or_else(gone)?;
    let handle = registry.existing_room(&room_id).ok_or_else(gone)?;
    let (reply, answer) = oneshot::channel();
    let request = ResumeRequest {
        key,
        resume_token: resume_token.to_owned(),
        new_resume_token: fresh_secret()?,
        out,
        reply,
    };
    let (participant_id, session) = match ask_room(
        &handle.commands,
        RoomCommand::Resume(request),
        answer,
        JOIN_ANSWER_TIMEOUT,
    )
    .await
    {
        RoomAnswer::Answered(answer) => answer?,
        RoomAnswer::Gone => return Err(gone()),
        RoomAnswer::TimedOut => {
            return Err(ProtocolError {
                code: ErrorCode::RateLimited,
                message: "the room did not answer in time; try again shortly".into(),
                refused: None,
            });
        }
    };
    Ok(Entry::Here(
        room_id,
        Joined {
            key,
            participant_id,
            commands: handle.commands,
            session,
        },
    ))
}

/// Who joins: the name to use, what it may do, and who its token says it is.
struct Admission {
    name: String,
    grants: Grants,
    identity: Option<Identity>,
}

/// The refusal of a join or resume while the server stops.
fn shutting_down() -> ProtocolError {
    ProtocolError {
        code: ErrorCode::RateLimited,
        message: "this server is shutting down; join again in a moment".into(),
        refused: None,
    }
}

/// A new resume token; a system without randomness gets `internal`, never a guessable one.
fn fresh_secret() -> Result<String, ProtocolError> {
    auth::random_secret().map_err(|e| {
        warn!(error = %e, "no resume token could be made");
        ProtocolError {
            code: ErrorCode::Internal,
            message: "the server cannot make a session secret right now".into(),
            refused: None,
        }
    })
}

/// Check the join token when the server has an auth secret.
fn authorize(
    config: &config::Config,
    room: &str,
    name: String,
    token: Option<&str>,
) -> Result<Admission, ProtocolError> {
    let Some(secret) = &config.auth_secret else {
        return Ok(Admission {
            name,
            grants: Grants::default(),
            identity: None,
        });
    };
    let Some(token) = token else {
        return Err(ProtocolError {
            code: ErrorCode::Unauthorized,
            message: "this server needs a join token (`token` in `join`)".into(),
            refused: None,
        });
    };
    let claims =
        auth::verify(token, secret.as_bytes(), auth::unix_now()).map_err(|e| ProtocolError {
            code: ErrorCode::Unauthorized,
            message: e.to_string(),
            refused: None,
        })?;
    if claims.room != room {
        return Err(ProtocolError {
            code: ErrorCode::Forbidden,
            message: format!("the token is for room `{}`, not `{room}`", claims.room),
            refused: None,
        });
    }
    Ok(Admission {
        name: claims.name.unwrap_or(name),
        grants: claims.grants,
        identity: Some(Identity {
            sub: claims.sub,
            expires: claims.exp,
        }),
    })
}

/// What became of a request to a room.
#[derive(Debug)]
enum RoomAnswer<T> {
    /// The room answered.
    Answered(T),
    /// The room task is gone (its queue closed, or it dropped the request).
    Gone,
    /// The room took longer than the timeout to take or answer the request; the room drops
    /// it when it comes to it (its reply is closed).
    TimedOut,
}

/// Send `command` to a room and wait for the answer on `reply`, within `timeout` in all: a
/// room too busy to take or answer a join must not hold the client (and its place) for good.
async fn ask_room<T>(
    commands: &mpsc::Sender<RoomCommand>,
    command: RoomCommand,
    reply: oneshot::Receiver<T>,
    timeout: Duration,
) -> RoomAnswer<T> {
    let asked = async {
        if commands.send(command).await.is_err() {
            return RoomAnswer::Gone;
        }
        reply.await.map_or(RoomAnswer::Gone, RoomAnswer::Answered)
    };
    tokio::time::timeout(timeout, asked)
        .await
        .unwrap_or(RoomAnswer::TimedOut)
}

async fn join(
    registry: &Registry,
    room_id: &RoomId,
    admission: Admission,
    auto_subscribe: bool,
    out: mpsc::Sender<Outbound>,
) -> Result<Joined, ProtocolError> {
    for _ in 0..JOIN_ATTEMPTS {
        let Some(handle) = registry.room(room_id) else {
            return Err(ProtocolError {
                code: ErrorCode::RoomFull,
                message: format!(
                    "this server has reached its limit of {} rooms",
                    registry.config().max_rooms
                ),
                refused: None,
            });
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let request = JoinRequest {
            resume_token: fresh_secret()?,
            name: admission.name.clone(),
            grants: admission.grants,
            identity: admission.identity.clone(),
            auto_subscribe,
            out: out.clone(),
            reply: reply_tx,
        };
        let answer = match ask_room(
            &handle.commands,
            RoomCommand::Join(request),
            reply_rx,
            JOIN_ANSWER_TIMEOUT,
        )
        .await
        {
            RoomAnswer::Answered(answer) => answer,
            // The room task ended meanwhile (or before our join was handled); a new one is made.
            RoomAnswer::Gone => continue,
            RoomAnswer::TimedOut => {
                return Err(ProtocolError {
                    code: ErrorCode::RateLimited,
                    message: "the room did not answer in time; try again shortly".into(),
                    refused: None,
                });
            }
        };
        let (key, participant_id) = answer?;
        return Ok(Joined {
            key,
            participant_id,
            commands: handle.commands,
            session: 0,
        });
    }
    Err(ProtocolError {
        code: ErrorCode::Internal,
        message: "the room could not be joined, try again".into(),
        refused: None,
    })
}

async fn serve(
    mut socket: WebSocket,
    joined: Joined,
    mut out_rx: mpsc::Receiver<Outbound>,
    limits: &Limits,
    max_messages_per_second: u32,
    idle_timeout: Duration,
    stats: &Stats,
) {
    info!(session = joined.session, "joined");
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
                            if joined.commands.send(RoomCommand::Signal(joined.key, joined.session, message)).await.is_err() {
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
        SessionEnd::Lost => RoomCommand::Disconnected(joined.key, joined.session),
        SessionEnd::Left | SessionEnd::Ended => RoomCommand::Leave(joined.key, joined.session),
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

/// Whether the messages still unread on a connection that failed include `leave`: a
/// client that sends `leave` and closes at once can make our next send fail before its
/// `leave` is read, and it must not be kept for a resume it will never make.
async fn left_before_closing(
    socket: &mut WebSocket,
    limits: &Limits,
    stats: &Stats,
    heard: &LastHeard,
) -> bool {
    let unread = async {
        while let Some(message) = next_message(socket, limits, stats, heard).await {
            if matches!(message, Ok(ClientMessage::Leave)) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(UNREAD_AFTER_FAILURE, unread)
        .await
        .unwrap_or(false)
}

/// End a connection sent away before joining with the closing handshake, reading (and
/// dropping) what the client still sends for a moment: unread data would make the kernel
/// reset the connection, and the client could lose the reply and the close with it.
async fn close_refused(socket: &mut WebSocket, unjoined: &UnjoinedPlace) {
    unjoined.closing();
    let _ = send_frame(socket, Message::Close(None)).await;
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(frame)) = socket.recv().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
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

/// The next client message, `None` when the socket is closed. The caller decides how to
/// answer protocol errors (and counts them when it replies).
async fn next_message(
    socket: &mut WebSocket,
    limits: &Limits,
    stats: &Stats,
    heard: &LastHeard,
) -> Option<Result<ClientMessage, ProtocolError>> {
    loop {
        let frame = match socket.recv().await? {
            Ok(frame) => frame,
            Err(e) => {
                debug!(error = %e, "WebSocket read failed");
                if let Some(error) = too_large_read(e, limits) {
                    let _ = reply_error(socket, stats, error).await;
                    let _ = send_frame(socket, Message::Close(None)).await;
                    // The rest of the frame stays unread, so closing resets the connection:
                    // give the reply time to reach the client first.
                    tokio::time::sleep(TOO_LARGE_LINGER).await;
                }
                return None;
            }
        };
        heard.touch();
        let parsed = match frame {
            Message::Text(text) => parse_client_message(text.as_str(), limits),
            Message::Binary(_) => Err(ProtocolError::bad_request(
                "binary frames are not part of the protocol; send JSON text",
            )),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return None,
        };
        bump(&stats.ws_messages);
        return Some(parsed);
    }
}

/// The `too_large` reply to a read that failed for its size: a frame over the read limit,
/// or more sent before joining than [`MAX_BYTES_BEFORE_JOIN`]. The connection closes after
/// it (the rest of the frame cannot be skipped). Other read failures get no reply.
fn too_large_read(error: axum::Error, limits: &Limits) -> Option<ProtocolError> {
    let error = error.into_inner();
    let ws_error = error.downcast_ref::<tokio_tungstenite::tungstenite::Error>()?;
    let (limit, message) = match ws_error {
        tokio_tungstenite::tungstenite::Error::Capacity(_) => (
            Limit::FrameSize,
            format!(
                "a frame far over the {} bytes a message may have; closing",
                limits.max_message_bytes
            ),
        ),
        tokio_tungstenite::tungstenite::Error::Io(io)
            if io.get_ref().is_some_and(|e| e.is::<OverBudget>()) =>
        {
            (
                Limit::BytesBeforeJoin,
                format!("over {MAX_BYTES_BEFORE_JOIN} bytes sent before `join`; closing"),
            )
        }
        _ => return None,
    };
    crate::limits::hit(limit);
    Some(ProtocolError {
        code: ErrorCode::TooLarge,
        message,
        refused: None,
    })
}

/// Send an `error` reply, counted once in the total and once by its code.
async fn reply_error(
    socket: &mut WebSocket,
    stats: &Stats,
    error: ProtocolError,
) -> Result<(), SendFailure> {
    crate::stats::count_signaling_error(stats, error.code);
    warn!(code = error.code.as_str(), message = %error.message, "refused client message");
    let reply = ServerMessage::Error {
        code: error.code,
        message: error.message,
        refused: error.refused,
    };
    send(socket, &reply).await
}

/// Why a message could not be sent.
#[derive(Debug)]
enum SendFailure {
    /// The client did not take it within [`SEND_TIMEOUT`]: it stopped reading.
    TooSlow,
    /// The connection failed.
    Closed,
}

/// Send one message; a client that does not take it within [`SEND_TIMEOUT`] is treated as gone.
async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), SendFailure> {
    send_frame(socket, Message::Text(message.to_json().into())).await
}

/// Send one frame within [`SEND_TIMEOUT`].
async fn send_frame(socket: &mut WebSocket, frame: Message) -> Result<(), SendFailure> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Closed),
        Err(_) => Err(SendFailure::TooSlow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_room_that_does_not_answer_times_out() {
        // Requirement: a join queued to a room that never gets to it (or never answers) ends
        // with a timeout instead of holding the client; a room that is gone is told apart.
        let (commands, _held) = mpsc::channel(1);
        let (_reply, answer) = oneshot::channel::<()>();
        let asked = ask_room(
            &commands,
            RoomCommand::Panic,
            answer,
            Duration::from_millis(50),
        )
        .await;
        assert!(matches!(asked, RoomAnswer::TimedOut), "{asked:?}");
        let (full, _held_too) = mpsc::channel(1);
        full.try_send(RoomCommand::Panic).expect("room for one");
        let (_reply, answer) = oneshot::channel::<()>();
        let queued = ask_room(&full, RoomCommand::Panic, answer, Duration::from_millis(50)).await;
        assert!(
            matches!(queued, RoomAnswer::TimedOut),
            "a full queue: {queued:?}"
        );
        let (gone, receiver) = mpsc::channel(1);
        drop(receiver);
        let (_reply, answer) = oneshot::channel::<()>();
        let closed = ask_room(&gone, RoomCommand::Panic, answer, Duration::from_secs(5)).await;
        assert!(matches!(closed, RoomAnswer::Gone), "{closed:?}");
        let (commands, mut receiver) = mpsc::channel(1);
        let (reply, answer) = oneshot::channel();
        tokio::spawn(async move {
            receiver.recv().await;
            let _ = reply.send(7);
        });
        let answered = ask_room(
            &commands,
            RoomCommand::Panic,
            answer,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(answered, RoomAnswer::Answered(7)), "{answered:?}");
    }

    #[tokio::test]
    async fn a_stopping_server_takes_no_joins_or_resumes() {
        // Requirement: once shutdown began, joins and resumes are refused (rate_limited: come
        // back in a moment), not admitted into rooms that are closing.
        let registry = crate::registry::tests::registry(config::Config::default()).await;
        let (out, _messages) = mpsc::channel(8);
        let entered =
            enter_by_join(&registry, "r".into(), "n".into(), None, true, out.clone()).await;
        assert!(matches!(entered, Ok(Entry::Here(..))), "before shutdown");
        registry.begin_draining();
        let refused =
            enter_by_join(&registry, "r".into(), "n".into(), None, true, out.clone()).await;
        let Err(error) = refused else {
            panic!("a join while stopping was admitted");
        };
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert!(error.message.contains("shutting down"), "{}", error.message);
        let resumed = enter_by_resume(&registry, "any-token", out).await;
        assert!(matches!(
            resumed,
            Err(ProtocolError {
                code: ErrorCode::RateLimited,
                ..
            })
        ));
    }
}
