//! Who may use the API: callers the door admits ([`access::admit`]) that carry the admin
//! credential (the admin token, or a join token granting `admin`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use signaling::token;

use super::error::ApiError;
use crate::access::{self, Door};
use crate::registry::Registry;

/// Refuse requests that may not reach the admin API: callers the door turns away
/// ([`access::check`]), then requests without the admin credential.
///
/// The token may also come as the `access_token` query parameter (RFC 6750 §2.3,
/// percent-encoded), for browsers' `EventSource`, which cannot send headers.
pub(super) async fn require_admin(
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
pub(super) fn admin_allowed(
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
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use signaling::token::{Claims, Grants};

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
