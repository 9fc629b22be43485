//! Time-limited TURN credentials (the "TURN REST API" scheme that coturn's
//! `use-auth-secret` / `static-auth-secret` checks): the username is
//! `<expiry unix time>:<identity>` and the password is the base64 HMAC-SHA1 of the
//! username under the secret shared with the TURN server. The TURN server needs no
//! user database and refuses the credentials once the expiry has passed.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A TURN username and password valid until `expires` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `<expiry>:<identity>`.
    pub username: String,
    /// Base64 HMAC-SHA1 of the username under the shared secret.
    pub credential: String,
    /// Unix time after which the TURN server refuses them.
    pub expires: u64,
}

/// Credentials for `identity` valid for `ttl_secs` from `now_unix`.
pub fn turn_credentials(
    secret: &[u8],
    identity: &str,
    now_unix: u64,
    ttl_secs: u64,
) -> TurnCredentials {
    let expires = now_unix.saturating_add(ttl_secs);
    let username = format!("{expires}:{identity}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let credential = STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref());
    TurnCredentials {
        username,
        credential,
        expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_turn_rest_scheme() {
        // Requirement: the credentials are exactly what coturn computes from its
        // static-auth-secret (reference value from Python's hmac/hashlib/base64).
        let c = turn_credentials(b"turn-shared-secret", "PA_1", 1_700_000_000, 3600);
        assert_eq!(c.username, "1700003600:PA_1");
        assert_eq!(c.credential, "n/BbKC7wVIpOayuZ2b6ylJyXMZ8=");
        assert_eq!(c.expires, 1_700_003_600);
    }

    #[test]
    fn differ_by_identity_expiry_and_secret() {
        // Requirement: a credential only fits its own username and secret.
        let base = turn_credentials(b"s", "a", 100, 10);
        assert_ne!(
            base.credential,
            turn_credentials(b"s", "b", 100, 10).credential
        );
        assert_ne!(
            base.credential,
            turn_credentials(b"s", "a", 101, 10).credential
        );
        assert_ne!(
            base.credential,
            turn_credentials(b"t", "a", 100, 10).credential
        );
        assert_eq!(turn_credentials(b"s", "a", u64::MAX, 10).expires, u64::MAX);
    }
}
