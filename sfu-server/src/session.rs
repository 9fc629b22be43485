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
use crate::room::{Identity, JoinRequest, Outbound, ParticipantKey, ResumeRequest, RoomCommand};
use crate::stats::{Stats, bump};

/// Messages queued toward one client before it counts as too slow and is dropped.
const OUTBOUND_QUEUE: usize = 512;
/// How long a new socket may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
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
            close_refused(&mut socket).await;
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
        }),
    };
    let (room_id, joined) = match entered {
        Ok(Entry::Here(room_id, joined)) => (room_id, joined),
        Ok(Entry::Elsewhere { url, room }) => {
            bump(&stats.cluster_redirects);
            info!(room, url, "join redirected to the room's node");
            let _ = send(&mut socket, &ServerMessage::Redirect { url, room }).await;
            close_refused(&mut socket).await;
            return;
        }
        Err(e) => {
            let _ = reply_error(&mut socket, &stats, e).await;
            close_refused(&mut socket).await;
            return;
        }
    };
    drop(unjoined);
    let span = info_span!("session", room = %room_id, participant = %joined.participant_id);
    let rates = Rates {
        messages: registry.config().max_messages_per_second,
        offers: registry.config().max_offers_per_second,
    };
    let idle_timeout = Duration::from_secs(registry.config().ws_idle_timeout_secs);
    serve(socket, joined, out_rx, &limits, rates, idle_timeout, &stats)
        .instrument(span)
        .await;
}

/// How many messages, and offers among them, a client may send per second.
#[derive(Debug, Clone, Copy)]
struct Rates {
    messages: u32,
    offers: u32,
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
        && let Some(until) = registry.kicked().kept_out_until(
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
        });
    }
    // Placement asks Redis, so it counts as a join in progress too.
    let Some(_permit) = registry.begin_join() else {
        return Err(ProtocolError {
            code: ErrorCode::RateLimited,
            message: "too many joins in progress on this server, try again shortly".into(),
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
    };
    let (room_id, key) = registry.resume_target(resume_token).ok_or_else(gone)?;
    let handle = registry.existing_room(&room_id).ok_or_else(gone)?;
    let (reply, answer) = oneshot::channel();
    let request = ResumeRequest {
        key,
        resume_token: resume_token.to_owned(),
        out,
        reply,
    };
    handle
        .commands
        .send(RoomCommand::Resume(request))
        .await
        .map_err(|_| gone())?;
    let (participant_id, session) = answer.await.map_err(|_| gone())??;
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
        });
    };
    let claims =
        auth::verify(token, secret.as_bytes(), auth::unix_now()).map_err(|e| ProtocolError {
            code: ErrorCode::Unauthorized,
            message: e.to_string(),
        })?;
    if claims.room != room {
        return Err(ProtocolError {
            code: ErrorCode::Forbidden,
            message: format!("the token is for room `{}`, not `{room}`", claims.room),
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
            });
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let request = JoinRequest {
            resume_token: auth::random_secret(),
            name: admission.name.clone(),
            grants: admission.grants,
            identity: admission.identity.clone(),
            auto_subscribe,
            out: out.clone(),
            reply: reply_tx,
        };
        if handle
            .commands
            .send(RoomCommand::Join(request))
            .await
            .is_err()
        {
            continue; // The room task ended between lookup and send; a new one is created.
        }
        match reply_rx.await {
            Ok(Ok((key, participant_id))) => {
                return Ok(Joined {
                    key,
                    participant_id,
                    commands: handle.commands,
                    session: 0,
                });
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => continue, // The room closed while our join was queued.
        }
    }
    Err(ProtocolError {
        code: ErrorCode::Internal,
        message: "the room could not be joined, try again".into(),
    })
}

async fn serve(
    mut socket: WebSocket,
    joined: Joined,
    mut out_rx: mpsc::Receiver<Outbound>,
    limits: &Limits,
    rates: Rates,
    idle_timeout: Duration,
    stats: &Stats,
) {
    info!(session = joined.session, "joined");
    // Unless the client left or the server ended the session, the connection was lost and
    // the participant may still resume.
    let mut ended = SessionEnd::Lost;
    let mut failure: Option<SendFailure> = None;
    let mut rate = MessageRate::new(rates.messages, rates.offers);
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
                    // One error a second at most: the reply must not become a flood itself.
                    if last_rate_error.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                        continue;
                    }
                    last_rate_error = Some(now);
                    reply_error(&mut socket, stats, ProtocolError {
                        code: ErrorCode::RateLimited,
                        message: format!("over {} messages per second; messages are being dropped", rates.messages),
                    }).await
                } else if matches!(incoming, Ok(ClientMessage::Offer { .. })) && !rate.admit_offer(now) {
                    // Every refused offer is answered: the client waits for an answer to it.
                    crate::limits::hit(crate::limits::Limit::OffersPerSecond);
                    reply_error(&mut socket, stats, ProtocolError {
                        code: ErrorCode::RateLimited,
                        message: format!("over {} offers per second; this offer is ignored: roll it back and offer again later", rates.offers),
                    }).await
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
async fn close_refused(socket: &mut WebSocket) {
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
    })
}

/// Send an `error` reply, counted once in the total and once by its code.
async fn reply_error(
    socket: &mut WebSocket,
    stats: &Stats,
    error: ProtocolError,
) -> Result<(), SendFailure> {
    bump(&stats.signaling_errors);
    ::metrics::counter!(crate::metrics::SIGNALING_ERRORS, "code" => error.code.as_str())
        .increment(1);
    warn!(code = error.code.as_str(), message = %error.message, "refused client message");
    send(socket, &ServerMessage::error(error.code, error.message)).await
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
