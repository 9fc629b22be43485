//! The frames of one signaling connection: reading client messages within the limits,
//! writing replies within the send timeout, and the endings of a connection.

use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use signaling::{
    ClientMessage, ErrorCode, Limits, ProtocolError, ServerMessage, parse_client_message,
};
use tracing::{debug, warn};

use super::{LastHeard, MAX_BYTES_BEFORE_JOIN, UnjoinedPlace};
use crate::limits::Limit;
use crate::read_budget::OverBudget;
use crate::stats::{Stats, bump};

/// A client that does not read a message within this long is dropped, not buffered for.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the messages left on a failed connection are read, looking for `leave`.
const UNREAD_AFTER_FAILURE: Duration = Duration::from_millis(200);
/// How long a connection cut off for a frame too large is kept open after its reply.
const TOO_LARGE_LINGER: Duration = Duration::from_millis(500);
/// How long a connection sent away before joining is read after its close frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// What a session reads and writes: the frames of one WebSocket, as axum's `WebSocket`
/// gives them; tests drive a session through an in-memory one.
pub trait SignalingSocket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

impl<T> SignalingSocket for T where
    T: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}

/// Whether the messages still unread on a connection that failed include `leave`: a
/// client that sends `leave` and closes at once can make our next send fail before its
/// `leave` is read, and it must not be kept for a resume it will never make.
pub(super) async fn left_before_closing<S: SignalingSocket>(
    socket: &mut S,
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
pub(super) async fn close_refused<S: SignalingSocket>(socket: &mut S, unjoined: &UnjoinedPlace) {
    unjoined.closing();
    let _ = send_frame(socket, Message::Close(None)).await;
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(frame)) = socket.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The next client message, `None` when the socket is closed. The caller decides how to
/// answer protocol errors (and counts them when it replies).
pub(super) async fn next_message<S: SignalingSocket>(
    socket: &mut S,
    limits: &Limits,
    stats: &Stats,
    heard: &LastHeard,
) -> Option<Result<ClientMessage, ProtocolError>> {
    loop {
        let frame = match socket.next().await? {
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
pub(super) async fn reply_error<S: SignalingSocket>(
    socket: &mut S,
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
pub(super) enum SendFailure {
    /// The client did not take it within [`SEND_TIMEOUT`]: it stopped reading.
    TooSlow,
    /// The connection failed.
    Closed,
}

/// Send one message; a client that does not take it within [`SEND_TIMEOUT`] is treated as gone.
pub(super) async fn send<S: SignalingSocket>(
    socket: &mut S,
    message: &ServerMessage,
) -> Result<(), SendFailure> {
    send_frame(socket, Message::Text(message.to_json().into())).await
}

/// Send one frame within [`SEND_TIMEOUT`].
pub(super) async fn send_frame<S: SignalingSocket>(
    socket: &mut S,
    frame: Message,
) -> Result<(), SendFailure> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailure::Closed),
        Err(_) => Err(SendFailure::TooSlow),
    }
}
