//! How a signaling connection gets into a room: `join` (token, kicked identities, the
//! cluster's placement, the room's answer) or `resume` (the resume token).

use std::time::Duration;

use sfu_core::ids::{ParticipantId, RoomId};
use signaling::token::{self as auth, Grants};
use signaling::{ErrorCode, ProtocolError};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::cluster::Placement;
use crate::registry::Registry;
use crate::room::{Identity, JoinRequest, Outbound, ResumeRequest, RoomCommand};
use crate::stats::bump;

/// How long a room may take to take and answer a join.
const JOIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a join is retried when it races with its room closing.
const JOIN_ATTEMPTS: usize = 3;

/// A session that got into a room: the participant, its room's queue, and which signaling
/// connection of the participant it is.
pub(super) struct Joined {
    pub(super) key: ParticipantId,
    pub(super) participant_id: String,
    pub(super) commands: mpsc::Sender<RoomCommand>,
    /// Which signaling connection of the participant this is (0 for the join, one more per
    /// resume).
    pub(super) connection: u64,
}

/// Where a first message took the session.
pub(super) enum Entry {
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
pub(super) async fn enter_by_join(
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
pub(super) async fn enter_by_resume(
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
    let (participant_id, connection) = match ask_room(
        &handle.commands,
        RoomCommand::Resume(request),
        answer,
        JOIN_ANSWER_TIMEOUT,
    )
    .await
    {
        RoomAnswer::Answered(answer) => answer?,
        RoomAnswer::Gone => return Err(gone()),
        RoomAnswer::TimedOut => return Err(room_too_slow()),
    };
    Ok(Entry::Here(
        room_id,
        Joined {
            key,
            participant_id,
            commands: handle.commands,
            connection,
        },
    ))
}

/// Who joins: the name to use, what it may do, and who its token says it is.
struct Admission {
    name: String,
    grants: Grants,
    identity: Option<Identity>,
}

/// The refusal of a join or resume its room did not answer within the timeout.
fn room_too_slow() -> ProtocolError {
    ProtocolError {
        code: ErrorCode::RateLimited,
        message: "the room did not answer in time; try again shortly".into(),
        refused: None,
    }
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

/// Join `room_id` on this node, making its room if needed (again, if it closed meanwhile).
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
            RoomAnswer::TimedOut => return Err(room_too_slow()),
        };
        let (key, participant_id) = answer?;
        return Ok(Joined {
            key,
            participant_id,
            commands: handle.commands,
            connection: 0,
        });
    }
    Err(ProtocolError {
        code: ErrorCode::Internal,
        message: "the room could not be joined, try again".into(),
        refused: None,
    })
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
