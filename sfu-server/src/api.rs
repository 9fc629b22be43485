//! The admin REST API under `/api/`: list rooms, room detail, kick, mute, close.
//!
//! Every request needs an admin credential (`Authorization: Bearer <admin_token>`, or a
//! join token granting `admin`) once `admin_token` or `auth_secret` is configured; without
//! either the API serves local callers only. Pages of other origins are refused, and get no
//! CORS permission unless listed in `allowed_origins`. Errors are JSON
//! `{"error": {"code": ..., "message": ...}}` with a matching status code.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sfu_core::ids::RoomId;
use signaling::token::{self, Claims, Grants};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::access::{self, Door};
use crate::registry::{Registry, RoomHandle};
use crate::room::AdminRequest;

/// An API error: status, machine code, message for people.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_found", what)
}

/// One line of the room list.
#[derive(Debug, Serialize)]
struct RoomSummary {
    room: String,
    participants: usize,
    producers: usize,
    consumers: usize,
    ingress_bps: u64,
    forwarded_packets: u64,
    age_secs: f64,
    /// This node's name, when it is one of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// A room of another node of the cluster, as that node last reported it.
#[derive(Debug, Serialize)]
struct OtherNodeRoom {
    room: String,
    participants: usize,
    node: String,
    node_url: String,
}

/// A line of the room list: this node's rooms in full, other nodes' in brief.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ListedRoom {
    Here(RoomSummary),
    OtherNode(OtherNodeRoom),
}

impl ListedRoom {
    fn name(&self) -> &str {
        match self {
            ListedRoom::Here(r) => &r.room,
            ListedRoom::OtherNode(r) => &r.room,
        }
    }
}

/// Rooms of the other nodes of the cluster (none without one, or when Redis fails).
async fn other_nodes_rooms(registry: &Registry) -> Vec<OtherNodeRoom> {
    let Some(cluster) = registry.cluster() else {
        return Vec::new();
    };
    let nodes = match cluster.nodes(registry).await {
        Ok(nodes) => nodes,
        Err(e) => {
            crate::stats::bump(&registry.stats().cluster_errors);
            tracing::warn!(error = %e, "cannot list the cluster's rooms");
            return Vec::new();
        }
    };
    nodes
        .into_iter()
        .filter(|n| n.id != cluster.node_id())
        .flat_map(|n| {
            n.rooms.into_iter().map(move |r| OtherNodeRoom {
                room: r.room,
                participants: r.participants,
                node: n.id.clone(),
                node_url: n.url.clone(),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    muted: bool,
}

/// A request for a join token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    room: String,
    identity: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    grants: Grants,
    #[serde(default = "default_token_ttl")]
    ttl_secs: u64,
}

fn default_token_ttl() -> u64 {
    3600
}

/// Longest validity the API signs tokens for (one day): a token is a bearer credential,
/// and a kicked identity stays out only until its token expires.
const MAX_TOKEN_TTL_SECS: u64 = 86_400;

/// The `/api/` routes, behind the admin credential check, with CORS permission for the
/// configured `allowed_origins` only.
pub fn router(registry: Registry) -> Router {
    let allowed: Vec<axum::http::HeaderValue> = registry
        .config()
        .allowed_origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600));
    Router::new()
        .route("/rooms", get(list_rooms))
        .route("/rooms/{room}", get(room_detail).delete(close_room))
        .route("/rooms/{room}/participants/{participant}/kick", post(kick))
        .route("/rooms/{room}/tracks/{track}/mute", post(mute))
        .route("/events", get(events))
        .route("/tokens", post(create_token))
        .fallback(|| async { not_found("no such API endpoint".to_owned()) })
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            require_admin,
        ))
        .layer(cors)
        .with_state(registry)
}

/// Refuse requests that may not reach the admin API: callers the door turns away
/// ([`access::check`]), then requests without the admin credential.
///
/// The token may also come as the `access_token` query parameter (RFC 6750 §2.3,
/// percent-encoded), for browsers' `EventSource`, which cannot send headers.
pub async fn require_admin(
    State(registry): State<Registry>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Err(refused) = access::admit(registry.config(), Door::Admin, peer, request.headers()) {
        return ApiError(refused.status, "forbidden", refused.message).into_response();
    }
    let from_query = request
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find_map(|(k, v)| (k == "access_token").then_some(v))
        })
        .and_then(|t| axum::http::HeaderValue::from_str(&format!("Bearer {t}")).ok());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .or(from_query.as_ref());
    match admin_allowed(registry.config(), authorization) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            access::count_refusal(Door::Admin, "credential");
            e.into_response()
        }
    }
}

/// Whether the request carries the admin credential: the admin token, or a join token
/// signed with the auth secret that grants `admin`. Without either configured the API is
/// open (its door let only local callers this far).
fn admin_allowed(
    config: &config::Config,
    authorization: Option<&axum::http::HeaderValue>,
) -> Result<(), ApiError> {
    if !config.admin_needs_credential() {
        return Ok(());
    }
    let given = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an admin credential as `Authorization: Bearer <token>`".into(),
        ));
    };
    if let Some(token) = &config.admin_token
        && same_secret(given.as_bytes(), token.as_bytes())
    {
        return Ok(());
    }
    if let Some(secret) = &config.auth_secret
        && let Ok(claims) = token::verify(given, secret.as_bytes(), token::unix_now())
    {
        return if claims.grants.admin {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this join token does not grant admin".into(),
            ))
        };
    }
    Err(ApiError(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "wrong admin credential".into(),
    ))
}

/// Compare secrets without stopping at the first difference.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn room_handle(registry: &Registry, room: &str) -> Result<RoomHandle, ApiError> {
    registry
        .existing_room(&RoomId::from_wire(room))
        .ok_or_else(|| not_found(format!("no room `{room}`")))
}

fn busy(room: &str) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("room `{room}` did not answer in time"),
    )
}

async fn list_rooms(State(registry): State<Registry>) -> Json<Vec<ListedRoom>> {
    let node = registry.cluster().map(|c| c.node_id().to_owned());
    let mut rooms: Vec<ListedRoom> = registry
        .snapshots()
        .await
        .into_iter()
        .map(|s| {
            ListedRoom::Here(RoomSummary {
                participants: s.participants.len(),
                producers: s.producers(),
                consumers: s.consumers(),
                ingress_bps: s.ingress_bps(),
                forwarded_packets: s.forwarded_packets,
                age_secs: s.age_secs,
                room: s.room,
                node: node.clone(),
            })
        })
        .collect();
    rooms.extend(
        other_nodes_rooms(&registry)
            .await
            .into_iter()
            .map(ListedRoom::OtherNode),
    );
    rooms.sort_by(|a, b| a.name().cmp(b.name()));
    Json(rooms)
}

async fn room_detail(
    State(registry): State<Registry>,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    let snapshot = handle
        .ask(AdminRequest::Snapshot)
        .await
        .ok_or_else(|| busy(&room))?;
    Ok(Json(snapshot).into_response())
}

async fn kick(
    State(registry): State<Registry>,
    Path((room, participant)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    let participant_id = participant.clone();
    let found = handle
        .ask(|reply| AdminRequest::Kick {
            participant_id,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    if !found {
        return Err(not_found(format!(
            "no participant `{participant}` in room `{room}`"
        )));
    }
    Ok(Json(json!({"kicked": participant})).into_response())
}

async fn mute(
    State(registry): State<Registry>,
    Path((room, track)): Path<(String, String)>,
    body: Result<Json<MuteBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(MuteBody { muted }) = body.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected {{\"muted\": true|false}}: {e}"),
        )
    })?;
    let handle = room_handle(&registry, &room)?;
    let track_id = track.clone();
    let found = handle
        .ask(|reply| AdminRequest::Mute {
            track_id,
            muted,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    if !found {
        return Err(not_found(format!("no track `{track}` in room `{room}`")));
    }
    Ok(Json(json!({"track": track, "muted": muted})).into_response())
}

async fn close_room(
    State(registry): State<Registry>,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    handle
        .ask(|reply| AdminRequest::Close {
            reason: signaling::LeaveReason::RoomClosed,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    Ok(Json(json!({"closed": room})).into_response())
}

/// Sign a join token with the server's auth secret.
async fn create_token(
    State(registry): State<Registry>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "expected {{\"room\", \"identity\", \"name\"?, \"grants\"?, \"ttl_secs\"?}}: {e}"
            ),
        )
    })?;
    let Some(secret) = registry.config().auth_secret.as_deref() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "unavailable",
            "this server has no auth_secret: joins need no token".into(),
        ));
    };
    if request.room.is_empty()
        || request.identity.is_empty()
        || !(1..=MAX_TOKEN_TTL_SECS).contains(&request.ttl_secs)
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "room and identity must not be empty and ttl_secs must be within 1..={MAX_TOKEN_TTL_SECS}"
            ),
        ));
    }
    let expires = token::unix_now() + request.ttl_secs;
    let claims = Claims {
        sub: request.identity,
        name: request.name,
        room: request.room,
        exp: expires,
        nbf: None,
        grants: request.grants,
    };
    let token = token::sign(&claims, secret.as_bytes());
    Ok(Json(json!({"token": token, "expires": expires})).into_response())
}

/// How often the live stream sends a fresh state of every room.
const EVENTS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Server-sent events: every second, `{"at_ms": .., "rooms": [RoomSnapshot, ..],
/// "other_nodes_rooms": [..]}` (the last: rooms of the cluster's other nodes, if any).
async fn events(
    State(registry): State<Registry>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let started = tokio::time::Instant::now();
    let ticks = tokio::time::interval(EVENTS_INTERVAL);
    let stream =
        futures_util::stream::unfold((registry, ticks), move |(registry, mut ticks)| async move {
            ticks.tick().await;
            let state = registry
                .rooms_feed()
                .current(std::time::Instant::now(), rooms_state(&registry))
                .await;
            let data = json!({
                "at_ms": started.elapsed().as_millis(),
                "rooms": state["rooms"],
                "other_nodes_rooms": state["other_nodes_rooms"],
            })
            .to_string();
            Some((
                Ok(Event::default().event("rooms").data(data)),
                (registry, ticks),
            ))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Every room of this node and of the cluster's other nodes, for the live stream.
async fn rooms_state(registry: &Registry) -> serde_json::Value {
    let mut rooms = registry.snapshots().await;
    rooms.sort_by(|a, b| a.room.cmp(&b.room));
    let others = other_nodes_rooms(registry).await;
    json!({ "rooms": rooms, "other_nodes_rooms": others })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(token: Option<&str>, secret: Option<&str>) -> config::Config {
        config::Config {
            admin_token: token.map(str::to_owned),
            auth_secret: secret.map(str::to_owned),
            ..config::Config::default()
        }
    }

    #[test]
    fn the_admin_credential_is_checked() {
        // Requirement: once an admin token or an auth secret is configured, every request
        // needs the admin token or an admin join token; without either, the API is open (to
        // the local callers its door admits).
        let token = "0123456789abcdef";
        let good = HeaderValue::from_static("Bearer 0123456789abcdef");
        let wrong = HeaderValue::from_static("Bearer 0123456789abcdeX");
        let bare = HeaderValue::from_static("0123456789abcdef");
        let status = |r: Result<(), ApiError>| r.err().map(|e| e.0);
        let with_token = config(Some(token), None);
        assert_eq!(status(admin_allowed(&with_token, Some(&good))), None);
        for (case, header) in [
            ("wrong", Some(&wrong)),
            ("no Bearer", Some(&bare)),
            ("none", None),
        ] {
            assert_eq!(
                status(admin_allowed(&with_token, header)),
                Some(StatusCode::UNAUTHORIZED),
                "{case}"
            );
        }
        assert_eq!(status(admin_allowed(&config(None, None), None)), None);
        let secret = "0123456789abcdef0123456789abcdef";
        let jwt = |admin: bool| {
            let claims = Claims {
                sub: "ops".into(),
                name: None,
                room: "any".into(),
                exp: token::unix_now() + 60,
                nbf: None,
                grants: Grants {
                    admin,
                    ..Grants::default()
                },
            };
            HeaderValue::from_str(&format!(
                "Bearer {}",
                token::sign(&claims, secret.as_bytes())
            ))
            .expect("header")
        };
        let with_both = config(Some(token), Some(secret));
        assert_eq!(
            status(admin_allowed(&with_both, Some(&jwt(true)))),
            None,
            "admin grant"
        );
        assert_eq!(
            status(admin_allowed(&with_both, Some(&jwt(false)))),
            Some(StatusCode::FORBIDDEN),
            "a participant's token is not an admin credential"
        );
        assert_eq!(
            status(admin_allowed(&with_both, Some(&good))),
            None,
            "the admin token still works"
        );
        let secret_only = config(None, Some(secret));
        assert_eq!(
            status(admin_allowed(&secret_only, None)),
            Some(StatusCode::UNAUTHORIZED),
            "an auth secret alone closes the API to callers without a credential"
        );
        assert_eq!(status(admin_allowed(&secret_only, Some(&jwt(true)))), None);
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
