//! LiveKit's signaling connection: the WebSocket at `/rtc` carrying one binary protobuf
//! `SignalRequest` (ours) or `SignalResponse` (the server's) per message, opened with a join
//! token signed by the API key and secret.
//!
//! Protocol 16 gives the classic flow of two peer connections per participant (LiveKit
//! switches to one only when the client sends a `join_request`, which we never do).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{SignalRequest, SignalResponse, signal_request, signal_response};
use livekit_token::{AccessToken, VideoGrants};
use prost::Message as _;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::connection::{JOIN_TIMEOUT, Signaling};

/// The signaling protocol version we speak: two peer connections, the subscriber's primary.
const PROTOCOL: u32 = 16;
/// The API key `livekit-server --dev` accepts.
pub const DEV_API_KEY: &str = "devkey";
/// The secret of [`DEV_API_KEY`].
pub const DEV_API_SECRET: &str = "secret";

/// Who a join token admits, where, and for how long.
pub struct JoinGrant<'a> {
    /// The API key the server knows.
    pub api_key: &'a str,
    /// Its secret.
    pub api_secret: &'a str,
    /// The participant's identity (and display name).
    pub identity: &'a str,
    /// The room to join (LiveKit takes it from the token only).
    pub room: &'a str,
    /// Whether it may publish.
    pub publishes: bool,
    /// How long the token is valid.
    pub ttl: Duration,
}

/// A join token for `grant`.
pub fn join_token(grant: &JoinGrant) -> anyhow::Result<String> {
    let grants = VideoGrants {
        room_join: true,
        room: grant.room.to_owned(),
        can_publish: Some(grant.publishes),
        can_subscribe: Some(true),
        can_publish_data: Some(false),
        ..VideoGrants::default()
    };
    Ok(AccessToken::with_api_key(grant.api_key, grant.api_secret)
        .with_identity(grant.identity)
        .with_name(grant.identity)
        .with_ttl(grant.ttl)
        .with_grants(grants)
        .to_jwt()?)
}

/// The signaling URL for a server at `base` (`ws://host:port`, a trailing path ignored).
pub fn rtc_url(base: &str) -> String {
    let host = base
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    format!("ws://{host}/rtc?protocol={PROTOCOL}&auto_subscribe=1&adaptive_stream=0")
}

/// One participant's signaling WebSocket to LiveKit.
pub struct LiveKitSignal {
    /// The WebSocket.
    pub ws: Signaling,
}

impl LiveKitSignal {
    /// Open the signaling connection of the participant `token` admits.
    pub async fn connect(base: &str, token: &str) -> anyhow::Result<Self> {
        let url = rtc_url(base);
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        let (ws, _) = tokio::time::timeout(JOIN_TIMEOUT, connect_async(request))
            .await
            .map_err(|_| anyhow::anyhow!("WebSocket connect to {url} timed out"))?
            .map_err(|e| anyhow::anyhow!("LiveKit refused the connection to {url}: {e}"))?;
        Ok(Self { ws })
    }

    /// Send one request.
    pub async fn send(&mut self, message: signal_request::Message) -> anyhow::Result<()> {
        let request = SignalRequest {
            message: Some(message),
        };
        self.ws
            .send(Message::binary(request.encode_to_vec()))
            .await?;
        Ok(())
    }

    /// The next message from the server (messages it sends empty are skipped).
    pub async fn next(&mut self) -> anyhow::Result<signal_response::Message> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(message) = SignalResponse::decode(bytes.as_ref())?.message {
                        return Ok(message);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    anyhow::bail!("LiveKit closed the signaling connection: {frame:?}")
                }
                None => anyhow::bail!("LiveKit closed the signaling connection"),
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("LiveKit signaling failed: {e}"),
            }
        }
    }

    /// Leave the room and close the connection.
    pub async fn leave(&mut self) {
        let leave = livekit_protocol::LeaveRequest::default();
        let _ = self.send(signal_request::Message::Leave(leave)).await;
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_asks_for_two_peer_connections_and_full_quality() {
        // Requirement: protocol 16 without a join request is LiveKit's two-connection flow;
        // adaptive stream off, so subscribers get the layer they ask for.
        for base in [
            "ws://10.77.0.1:7880",
            "ws://10.77.0.1:7880/",
            "ws://10.77.0.1:7880/rtc",
        ] {
            assert_eq!(
                rtc_url(base),
                "ws://10.77.0.1:7880/rtc?protocol=16&auto_subscribe=1&adaptive_stream=0"
            );
        }
    }

    #[test]
    fn a_join_token_grants_the_room_and_publishing_only_to_publishers() {
        // Requirement: LiveKit reads the room and the grants from the token.
        let grant = |publishes| JoinGrant {
            api_key: DEV_API_KEY,
            api_secret: DEV_API_SECRET,
            identity: "load-3",
            room: "load-1",
            publishes,
            ttl: Duration::from_secs(60),
        };
        let verifier = livekit_token::TokenVerifier::with_api_key(DEV_API_KEY, DEV_API_SECRET);
        for publishes in [true, false] {
            let token = join_token(&grant(publishes)).expect("a token");
            let claims = verifier.verify(&token).expect("signed with the dev secret");
            assert_eq!(claims.sub, "load-3");
            assert_eq!(claims.video.room, "load-1");
            assert!(claims.video.room_join && claims.video.can_subscribe());
            assert_eq!(claims.video.can_publish(), publishes);
        }
        let other = livekit_token::TokenVerifier::with_api_key(DEV_API_KEY, "another");
        assert!(
            other
                .verify(&join_token(&grant(true)).expect("a token"))
                .is_err()
        );
    }
}
