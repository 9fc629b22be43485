//! Values a node writes to Redis for the others, sealed with the cluster secret (HMAC-SHA256),
//! so that a node acts only on what another node of the cluster wrote: whoever can write to
//! Redis cannot make it redirect clients (who resend their join tokens) to a URL of theirs.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// What Redis holds: the value and its MAC.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    value: String,
    mac: String,
}

/// `value` sealed under `secret`, as stored.
pub fn seal(value: &str, secret: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mac = URL_SAFE_NO_PAD.encode(hmac::sign(&key, value.as_bytes()));
    let sealed = Sealed {
        value: value.to_owned(),
        mac,
    };
    // Serializing two strings cannot fail.
    serde_json::to_string(&sealed).unwrap_or_default()
}

/// The value of a stored seal, if it was sealed under `secret` and not altered since.
pub fn open(stored: &str, secret: &[u8]) -> Option<String> {
    let sealed: Sealed = serde_json::from_str(stored).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(&sealed.mac).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, sealed.value.as_bytes(), &mac).ok()?;
    Some(sealed.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_sealed_with_the_secret_open() {
        // Requirement: a record opens only when sealed with the cluster's secret and unaltered;
        // a forged, altered, unsealed or differently sealed one does not.
        let secret = b"cluster-secret-0123456789abcdef0123";
        let record = r#"{"id":"a","url":"ws://a/ws"}"#;
        let stored = seal(record, secret);
        assert_eq!(open(&stored, secret).as_deref(), Some(record));
        let altered = stored.replace("ws://a/ws", "ws://evil/ws");
        assert_ne!(altered, stored);
        for (case, forged) in [
            ("altered", altered),
            (
                "another secret",
                seal(record, b"another-secret-0123456789abcdef0123"),
            ),
            ("not sealed", record.to_owned()),
            ("no mac", r#"{"value":"x","mac":""}"#.to_owned()),
            ("garbage", "\u{0}".to_owned()),
        ] {
            assert_eq!(open(&forged, secret), None, "{case}");
        }
    }
}
