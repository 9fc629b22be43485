//! The admin REST API under `/api/`: rooms (list, detail, kick, mute, close), join
//! tokens, and the live stream of the rooms' state.
//!
//! Every request needs an admin credential (`Authorization: Bearer <admin_token>`, or a
//! join token granting `admin`) once `admin_token` or `auth_secret` is configured; without
//! either the API serves local callers only. Pages of other origins are refused, and get no
//! CORS permission unless listed in `allowed_origins`. Errors are JSON
//! `{"error": {"code": ..., "message": ...}}` with a matching status code.

mod auth;
mod error;
mod events;
mod rooms;
mod tokens;

use axum::Router;
use axum::http::{Method, header};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::registry::Registry;

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
        .route("/rooms", get(rooms::list_rooms))
        .route(
            "/rooms/{room}",
            get(rooms::room_detail).delete(rooms::close_room),
        )
        .route(
            "/rooms/{room}/participants/{participant}/kick",
            post(rooms::kick),
        )
        .route("/rooms/{room}/tracks/{track}/mute", post(rooms::mute))
        .route("/events", get(events::events))
        .route("/tokens", post(tokens::create_token))
        .fallback(|| async { error::not_found("no such API endpoint".to_owned()) })
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            auth::require_admin,
        ))
        .layer(cors)
        .with_state(registry)
}
