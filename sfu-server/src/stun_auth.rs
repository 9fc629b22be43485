//! Whether a STUN check comes from the peer it names: its MESSAGE-INTEGRITY verifies with
//! the server's ICE password of the ufrag in its USERNAME. The ufrag is readable on the wire
//! and a UDP source address can be forged, so only a check that verifies may bind an address
//! (or an ICE-TCP connection) to a participant.

use aws_lc_rs::hmac;
use str0m::ice::StunMessage;

/// Whether `datagram` is a STUN message whose MESSAGE-INTEGRITY verifies with `password`.
pub fn verified(datagram: &[u8], password: &str) -> bool {
    StunMessage::parse(datagram).is_ok_and(|message| message.verify(password.as_bytes(), sha1_hmac))
}

/// HMAC-SHA1 (RFC 5389 §15.4) of `parts` under `key`.
fn sha1_hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(context.sign().as_ref());
    out
}

/// A binding request from a client, as a browser sends it: USERNAME `<ufrag>:client`,
/// signed with `password` (none: unsigned, as a forger without it would send).
#[cfg(test)]
pub fn binding_request(ufrag: &str, password: Option<&str>) -> Vec<u8> {
    let username = format!("{ufrag}:client");
    let message =
        StunMessage::binding_request(&username, str0m::ice::TransId::new(), true, 7, 1_000, false);
    let mut buf = vec![0u8; 1500];
    let len = message
        .to_bytes(password.map(str::as_bytes), &mut buf, sha1_hmac)
        .expect("a binding request fits");
    buf.truncate(len);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_check_signed_with_the_password_verifies() {
        // Requirement: a check verifies only with the password of the ufrag it names; an
        // unsigned, wrongly signed or altered one does not, nor anything not STUN.
        let signed = binding_request("srvufrag", Some("the-server-password"));
        assert!(verified(&signed, "the-server-password"));
        assert!(!verified(&signed, "another-password"));
        assert!(!verified(
            &binding_request("srvufrag", None),
            "the-server-password"
        ));
        let mut altered = signed.clone();
        let last = altered.len() - 30;
        altered[last] ^= 1;
        assert!(!verified(&altered, "the-server-password"));
        assert!(!verified(&[0x80, 96, 0, 1], "the-server-password"));
        assert!(!verified(&[], "the-server-password"));
    }
}
