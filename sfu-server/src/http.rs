//! HTTP routes: the web client, the signaling WebSocket and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::access::{self, Door};
use crate::api;
use crate::limits::{self, Limit};
use crate::per_ip::PerIp;
use crate::read_budget::ReadBudget;
use crate::registry::Registry;
use crate::session;
use crate::session::UnjoinedPlace;
use crate::stats::{Stats, bump};
use crate::web;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    stats: Arc<Stats>,
    /// Places for signaling connections that have not joined yet.
    unjoined: Arc<Semaphore>,
    /// Of those, the places per client address.
    unjoined_per_ip: Arc<PerIp>,
}

/// All routes of the HTTP listener.
pub fn router(registry: Registry, stats: Arc<Stats>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", web::INDEX_HTML) }),
        )
        .route(
            "/sfu-client.js",
            get(|| async { asset("text/javascript; charset=utf-8", web::SFU_CLIENT_JS) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", web::APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", web::STYLE_CSS) }),
        )
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", web::DASHBOARD_HTML) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", web::DASHBOARD_JS) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", web::DASHBOARD_CSS) }),
        )
        .route("/healthz", get(healthz))
        .route("/ws", get(websocket))
        .with_state(AppState {
            unjoined: Arc::new(Semaphore::new(registry.config().max_unjoined_connections)),
            unjoined_per_ip: PerIp::new(registry.config().max_unjoined_connections_per_ip),
            registry: registry.clone(),
            stats,
        })
        // Nested, so the admin door (and its refusal counts) covers `/api/*` only.
        .nest("/api", api::router(registry))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// What the pages may load and connect to: their own scripts and styles, media from
/// WebRTC, WebSockets to any node of the cluster; never framed, no referrer sent.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    if content_type.starts_with("text/html") {
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let (rooms, participants) = state.registry.counts();
    Json(json!({
        "status": "ok",
        "rooms": rooms,
        "participants": participants,
        "tasks": state.registry.alive_tasks(),
        "counters": state.stats.snapshot(),
    }))
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(budget): Extension<Arc<ReadBudget>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = access::admit(
        state.registry.config(),
        Door::Signaling,
        Some(peer),
        &headers,
    ) {
        return (refused.status, refused.message).into_response();
    }
    let Ok(unjoined) = state.unjoined.clone().try_acquire_owned() else {
        bump(&state.stats.ws_refused);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many signaling connections waiting to join; try again shortly",
        )
            .into_response();
    };
    let Some(unjoined_here) = state.unjoined_per_ip.admit(peer.ip()) else {
        limits::hit(Limit::UnjoinedPerIp);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many signaling connections from this address waiting to join; try again shortly",
        )
            .into_response();
    };
    let unjoined = UnjoinedPlace::new(unjoined, unjoined_here, budget);
    let max = state.registry.config().max_message_bytes;
    // Frames up to 16× the protocol limit are read so an oversized one can be answered
    // with `too_large` instead of a dropped connection; beyond that the socket closes.
    upgrade
        .max_message_size(max.saturating_mul(16).max(2 * 1024 * 1024))
        .max_frame_size(max.saturating_mul(16).max(2 * 1024 * 1024))
        .on_upgrade(move |socket| session::run(socket, state.registry, state.stats, unjoined))
}
