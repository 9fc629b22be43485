//! Sessions driven through an in-memory socket against a registry with real rooms: what a
//! client sees for each kind of message, without a browser or a network connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;

use super::{UnjoinedPlace, run};
use crate::per_ip::PerIp;
use crate::read_budget::ReadBudget;
use crate::registry::Registry;
use crate::registry::tests::registry;

/// How long a test waits for one reply.
const REPLY_WITHIN: Duration = Duration::from_secs(5);

/// The server's end of an in-memory WebSocket.
struct MemorySocket {
    from_client: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
    to_client: mpsc::UnboundedSender<Message>,
}

impl Stream for MemorySocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.from_client.poll_recv(cx)
    }
}

impl Sink<Message> for MemorySocket {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: Message) -> Result<(), Self::Error> {
        self.to_client
            .send(frame)
            .map_err(|_| axum::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's end: what it sends, and the server's frames as they come.
struct Client {
    to_server: Option<mpsc::UnboundedSender<Result<Message, axum::Error>>>,
    from_server: mpsc::UnboundedReceiver<Message>,
    session: JoinHandle<()>,
}

impl Client {
    /// Open a session on `registry`, as the HTTP front end does for an upgraded socket.
    fn connect(registry: &Registry) -> Self {
        let (to_server, from_client) = mpsc::unbounded_channel();
        let (to_client, from_server) = mpsc::unbounded_channel();
        let socket = MemorySocket {
            from_client,
            to_client,
        };
        let total = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a place");
        let here = PerIp::new(1)
            .admit("192.0.2.1".parse().expect("address"))
            .expect("a place");
        let unjoined = UnjoinedPlace::new(total, here, Arc::new(ReadBudget::default()));
        let session = tokio::spawn(run(
            socket,
            registry.clone(),
            registry.stats().clone(),
            unjoined,
        ));
        Self {
            to_server: Some(to_server),
            from_server,
            session,
        }
    }

    /// Send one frame; a session that stopped reading drops it.
    fn frame(&self, frame: Message) {
        if let Some(to_server) = &self.to_server {
            let _ = to_server.send(Ok(frame));
        }
    }

    /// Send one JSON message.
    fn send(&self, message: Value) {
        self.frame(Message::Text(message.to_string().into()));
    }

    /// The next message, skipping the server's pings; `None` once the server closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(REPLY_WITHIN, self.from_server.recv())
                .await
                .expect("a reply in time")?;
            match frame {
                Message::Text(text) => {
                    return Some(
                        serde_json::from_str(text.as_str()).expect("JSON from the server"),
                    );
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next message of type `kind`, skipping the others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self
                .next()
                .await
                .unwrap_or_else(|| panic!("closed before `{kind}`"));
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Join `room` as `name`; the `joined` message.
    async fn join(&mut self, room: &str, name: &str) -> Value {
        self.send(json!({ "type": "join", "room": room, "name": name }));
        let joined = self.next().await.expect("a reply to join");
        assert_eq!(joined["type"], "joined", "{joined}");
        joined
    }

    /// The connection drops without `leave`.
    fn drop_connection(&mut self) {
        self.to_server = None;
    }

    /// Wait until the session task is over.
    async fn ended(self) {
        tokio::time::timeout(REPLY_WITHIN, self.session)
            .await
            .expect("the session ends")
            .expect("the session did not panic");
    }
}

/// A registry whose clients may send `per_second` messages a second.
async fn registry_with_rate(per_second: u32) -> Registry {
    registry(config::Config {
        max_messages_per_second: per_second,
        ..config::Config::default()
    })
    .await
}

/// How many signaling errors the registry's node counted.
fn signaling_errors(registry: &Registry) -> u64 {
    registry
        .stats()
        .signaling_errors
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_joined_session_answers_pings_and_refuses_a_second_join() {
    // Requirement: a joined client gets `pong` with its `ts`; `join` or `resume` again is
    // `bad_request` and the session carries on.
    let registry = registry(config::Config::default()).await;
    let mut c = Client::connect(&registry);
    let joined = c.join("r", "ann").await;
    assert!(
        joined["participant_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("PA_")),
        "{joined}"
    );
    c.send(json!({ "type": "ping", "ts": 7 }));
    assert_eq!(
        c.next().await,
        Some(json!({ "type": "pong", "ts": 7 })),
        "pong"
    );
    for again in [
        json!({ "type": "join", "room": "r", "name": "ann" }),
        json!({ "type": "resume", "resume_token": "x" }),
    ] {
        c.send(again);
        let refused = c.next().await.expect("a reply");
        assert_eq!(refused["code"], "bad_request", "{refused}");
        assert_eq!(refused["message"], "already joined");
    }
    c.send(json!({ "type": "ping", "ts": 8 }));
    assert_eq!(c.next().await, Some(json!({ "type": "pong", "ts": 8 })));
}

#[tokio::test]
async fn malformed_messages_get_bad_request_and_the_session_stays() {
    // Requirement: bad JSON, an unknown type, a message missing a field and a binary frame
    // each get a `bad_request` error, counted; the connection stays open and usable.
    let registry = registry(config::Config::default()).await;
    let mut c = Client::connect(&registry);
    c.join("r", "ann").await;
    let before = signaling_errors(&registry);
    let bad = [
        Message::Text("{not json".into()),
        Message::Text(r#"{"type":"no_such_type"}"#.into()),
        Message::Text(r#"{"type":"offer"}"#.into()),
        Message::Binary(vec![1, 2, 3].into()),
    ];
    let count = bad.len() as u64;
    for frame in bad {
        c.frame(frame);
        let refused = c.next().await.expect("a reply");
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["code"], "bad_request", "{refused}");
    }
    assert_eq!(signaling_errors(&registry) - before, count);
    c.send(json!({ "type": "ping", "ts": 1 }));
    assert_eq!(c.next().await, Some(json!({ "type": "pong", "ts": 1 })));
}

#[tokio::test]
async fn a_first_message_other_than_join_is_refused_and_closed() {
    // Requirement: before `join` only `join` or `resume` is taken; anything else, garbage
    // included, gets `bad_request` and the server closes the connection.
    let registry = registry(config::Config::default()).await;
    for (first, says) in [
        (
            Message::Text(r#"{"type":"offer","sdp":"v=0"}"#.into()),
            "must be `join` or `resume`, not `offer`",
        ),
        (Message::Text("garbage".into()), "must be a valid `join`"),
    ] {
        let mut c = Client::connect(&registry);
        c.frame(first);
        let refused = c.next().await.expect("a reply");
        assert_eq!(refused["code"], "bad_request", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{refused}"
        );
        assert_eq!(c.next().await, None, "then a close frame");
        c.drop_connection();
        c.ended().await;
    }
    assert_eq!(registry.counts(), (0, 0), "no room was made");
}

#[tokio::test]
async fn a_flood_gets_one_rate_limited_error_and_a_leave_still_gets_through() {
    // Requirement: messages over max_messages_per_second are dropped with one
    // `rate_limited` error for the burst; a `leave` in the flood is not dropped: the others
    // are told at once.
    let registry = registry_with_rate(5).await;
    let mut flooder = Client::connect(&registry);
    let id = flooder.join("r", "flooder").await["participant_id"].clone();
    let mut other = Client::connect(&registry);
    other.join("r", "other").await;
    for ts in 0..30 {
        flooder.send(json!({ "type": "ping", "ts": ts }));
    }
    flooder.send(json!({ "type": "leave" }));
    let left = other.next_of("participant_left").await;
    assert_eq!(left["participant_id"], id);
    let mut replies = Vec::new();
    while let Some(message) = flooder.next().await {
        replies.push(message);
    }
    let pongs = replies.iter().filter(|m| m["type"] == "pong").count();
    let limited = replies
        .iter()
        .filter(|m| m["code"] == "rate_limited")
        .count();
    assert!((5..30).contains(&pongs), "{pongs} pongs for 30 pings");
    assert_eq!(limited, 1, "one error for the whole burst: {replies:?}");
    assert!(
        registry
            .stats()
            .messages_rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 20
    );
}

#[tokio::test]
async fn every_offer_over_the_rate_is_answered_as_a_refused_offer() {
    // Requirement: the client waits for a reply to each offer, so every offer the rate
    // drops gets its own error marked `refused: "offer"`, not one per burst.
    let registry = registry_with_rate(3).await;
    let mut c = Client::connect(&registry);
    c.join("r", "ann").await;
    let offers = 12;
    for _ in 0..offers {
        c.send(json!({ "type": "offer", "sdp": "v=0\r\n" }));
    }
    let mut refused = 0;
    let mut rate_limited = 0;
    while refused < offers {
        let reply = c.next().await.expect("a reply to every offer");
        if reply["type"] == "error" {
            assert_eq!(reply["refused"], "offer", "{reply}");
            refused += 1;
            rate_limited += usize::from(reply["code"] == "rate_limited");
        }
    }
    assert!(
        rate_limited >= offers - 3,
        "{rate_limited} dropped by the rate"
    );
}

#[tokio::test]
async fn a_lost_connection_is_taken_back_by_resume() {
    // Requirement: a connection that drops without `leave` leaves its participant
    // resumable; `resume` with the token gets `joined` again with the same id, the room's
    // state and a new token, and the old token then finds nothing; unknown tokens too.
    let registry = registry(config::Config::default()).await;
    let mut observer = Client::connect(&registry);
    observer.join("r", "observer").await;
    let mut first = Client::connect(&registry);
    let joined = first.join("r", "mover").await;
    first.drop_connection();
    first.ended().await;
    let mut second = Client::connect(&registry);
    second.send(json!({ "type": "resume", "resume_token": joined["resume_token"] }));
    let resumed = second.next().await.expect("a reply to resume");
    assert_eq!(resumed["type"], "joined", "{resumed}");
    assert_eq!(resumed["participant_id"], joined["participant_id"]);
    assert_eq!(resumed["room"], "r");
    assert!(
        resumed["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "observer")),
        "{resumed}"
    );
    assert_ne!(resumed["resume_token"], joined["resume_token"]);
    for token in [joined["resume_token"].clone(), json!("ffffffffffffffff")] {
        let mut replay = Client::connect(&registry);
        replay.send(json!({ "type": "resume", "resume_token": token }));
        let refused = replay.next().await.expect("a reply");
        assert_eq!(refused["code"], "not_found", "{refused}");
    }
    second.send(json!({ "type": "ping", "ts": 3 }));
    assert_eq!(
        second.next().await,
        Some(json!({ "type": "pong", "ts": 3 }))
    );
    second.send(json!({ "type": "leave" }));
    let left = observer.next_of("participant_left").await;
    assert_eq!(left["participant_id"], joined["participant_id"]);
}

#[tokio::test]
async fn a_resume_while_the_old_connection_is_open_replaces_it() {
    // Requirement: resuming while the old connection is still open moves the participant to
    // the new one; the old one gets `leave` `replaced` and is closed.
    let registry = registry(config::Config::default()).await;
    let mut first = Client::connect(&registry);
    let joined = first.join("r", "twice").await;
    let mut second = Client::connect(&registry);
    second.send(json!({ "type": "resume", "resume_token": joined["resume_token"] }));
    let resumed = second.next().await.expect("a reply");
    assert_eq!(resumed["participant_id"], joined["participant_id"]);
    assert_eq!(
        first.next_of("leave").await,
        json!({ "type": "leave", "reason": "replaced" })
    );
    assert_eq!(first.next().await, None, "the old connection is closed");
    second.send(json!({ "type": "ping", "ts": 9 }));
    assert_eq!(
        second.next().await,
        Some(json!({ "type": "pong", "ts": 9 }))
    );
}

#[tokio::test]
async fn a_silent_client_is_told_timeout() {
    // Requirement: a client that sends nothing, not even pongs to the server's pings, for
    // ws_idle_timeout_secs gets `leave` `timeout` and is closed.
    let registry = registry(config::Config {
        ws_idle_timeout_secs: 3,
        ..config::Config::default()
    })
    .await;
    let mut c = Client::connect(&registry);
    c.join("r", "quiet").await;
    let started = tokio::time::Instant::now();
    let leave = tokio::time::timeout(Duration::from_secs(10), c.next_of("leave"))
        .await
        .expect("leave within 10 s");
    assert_eq!(leave, json!({ "type": "leave", "reason": "timeout" }));
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(c.next().await, None);
}

#[tokio::test]
async fn a_frame_over_the_read_limit_gets_too_large_and_closes() {
    // Requirement: a frame the socket refuses for its size is answered `too_large` before
    // the connection closes, and counted as a limit hit.
    let registry = registry(config::Config::default()).await;
    let mut c = Client::connect(&registry);
    c.join("r", "big").await;
    let too_long =
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size: 4 << 20,
            max_size: 2 << 20,
        });
    if let Some(to_server) = &c.to_server {
        let _ = to_server.send(Err(axum::Error::new(too_long)));
    }
    let refused = c.next().await.expect("a reply");
    assert_eq!(refused["code"], "too_large", "{refused}");
    assert_eq!(c.next().await, None);
}

#[tokio::test]
async fn rooms_and_participants_over_their_limits_get_room_full() {
    // Requirement: the participant after max_participants_per_room and the room after
    // max_rooms get `room_full`, naming the limit; the others stay.
    let registry = registry(config::Config {
        max_rooms: 1,
        max_participants_per_room: 1,
        ..config::Config::default()
    })
    .await;
    let mut first = Client::connect(&registry);
    first.join("r1", "first").await;
    for (room, says) in [("r1", "full"), ("r2", "1 rooms")] {
        let mut c = Client::connect(&registry);
        c.send(json!({ "type": "join", "room": room, "name": "late" }));
        let refused = c.next().await.expect("a reply");
        assert_eq!(refused["code"], "room_full", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{refused}"
        );
    }
    first.send(json!({ "type": "ping", "ts": 2 }));
    assert_eq!(first.next().await, Some(json!({ "type": "pong", "ts": 2 })));
}

#[tokio::test]
async fn an_sdp_over_max_sdp_bytes_is_refused_as_too_large() {
    // Requirement: the configured max_sdp_bytes holds on the session: a bigger offer gets
    // `too_large`, marked as a refused offer, and the session stays.
    let registry = registry(config::Config {
        max_sdp_bytes: 2048,
        ..config::Config::default()
    })
    .await;
    let mut c = Client::connect(&registry);
    c.join("r", "big").await;
    let sdp = format!("v=0\r\na=x-pad:{}\r\n", "p".repeat(3000));
    c.send(json!({ "type": "offer", "sdp": sdp }));
    let refused = c.next().await.expect("a reply");
    assert_eq!(refused["code"], "too_large", "{refused}");
    assert_eq!(refused["refused"], "offer", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("2048")),
        "{refused}"
    );
    c.send(json!({ "type": "ping", "ts": 4 }));
    assert_eq!(c.next().await, Some(json!({ "type": "pong", "ts": 4 })));
}
