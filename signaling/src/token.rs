//! Join tokens (the `token` of `join`): HS256 JSON Web Tokens signed with the server's
//! `auth_secret`, carrying who joins (identity, name), which room, until when, and what
//! they may do (grants). Applications and the loadtest sign them; the server verifies them.
//!
//! HMAC comes from aws-lc-rs, the crypto library str0m already uses for DTLS/SRTP.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a participant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Send audio/video tracks.
    pub can_publish: bool,
    /// Receive other participants' tracks.
    pub can_subscribe: bool,
    /// Send data channel messages that are relayed to the room.
    pub can_publish_data: bool,
    /// Use the admin API and the dashboard.
    pub admin: bool,
}

impl Default for Grants {
    /// A regular participant: publish, subscribe and send data; not admin.
    fn default() -> Self {
        Self {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            admin: false,
        }
    }
}

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Identity of the participant (the application's user id).
    pub sub: String,
    /// Display name (overrides the `join` message's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The only room the token lets its holder join.
    pub room: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What the holder may do (all but `admin` when absent).
    #[serde(default)]
    pub grants: Grants,
}

/// Why a token is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts with JSON inside, or not HS256.
    #[error("the token is not a valid HS256 JWT")]
    Malformed,
    /// Signed with another secret, or altered.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Sign `claims` into a token.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    // Serializing plain strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Check a token's form, signature and validity period at `now` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Malformed);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signing_input = &token[..token.len() - signature.len() - 1];
    hmac::verify(&key, signing_input.as_bytes(), &decode(signature)?)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// The system's random generator failed: no secret can be made.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the system random generator failed")]
pub struct RandomUnavailable;

/// A fresh random secret (128 bits, hex), e.g. for `joined.resume_token`.
pub fn random_secret() -> Result<String, RandomUnavailable> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomUnavailable)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims {
            sub: "alice".to_owned(),
            name: Some("Alice".to_owned()),
            room: "demo".to_owned(),
            exp: 2_000,
            nbf: Some(1_000),
            grants: Grants {
                can_publish: false,
                ..Grants::default()
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_within_its_validity() {
        // Requirement: tokens from `sign` are accepted with their claims between nbf and exp.
        let token = sign(&claims(), SECRET);
        assert_eq!(verify(&token, SECRET, 1_500), Ok(claims()));
        assert_eq!(verify(&token, SECRET, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&token, SECRET, 999), Err(TokenError::NotYetValid));
    }

    #[test]
    fn forged_altered_and_malformed_tokens_are_refused() {
        // Requirement: only tokens signed with our secret, unaltered, in HS256 are accepted.
        let token = sign(&claims(), SECRET);
        assert_eq!(
            verify(&token, b"another secret of 32 bytes......", 1_500),
            Err(TokenError::BadSignature)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut other = claims();
        other.room = "other".to_owned();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).expect("json"));
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&parts.join("."), SECRET, 1_500),
            Err(TokenError::BadSignature)
        );
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            token.split('.').nth(1).expect("payload")
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**", none_alg.as_str()] {
            assert_eq!(
                verify(bad, SECRET, 1_500),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn grants_default_to_a_regular_participant() {
        // Requirement: a token without grants publishes, subscribes and sends data, but is not admin.
        let json = r#"{"sub":"bob","room":"r","exp":10}"#;
        let claims: Claims = serde_json::from_str(json).expect("claims");
        assert_eq!(claims.grants, Grants::default());
        assert!(!claims.grants.admin);
        let partial: Grants = serde_json::from_str(r#"{"can_publish":false}"#).expect("grants");
        assert!(!partial.can_publish && partial.can_subscribe);
    }
}
