//! Join tokens signed with the server's auth secret, for applications' backends.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use signaling::token::{self, Claims, Grants};

use super::error::ApiError;
use crate::registry::Registry;

/// A request for a join token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
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

/// Sign a join token with the server's auth secret.
pub(super) async fn create_token(
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
