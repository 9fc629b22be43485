//! SRTP key derivation (RFC 3711 §4.3, key derivation rate 0; RFC 7714 §11 for AES-GCM):
//! each session key is the AES counter-mode keystream of the master key, started from the
//! master salt with the key's label folded in.

use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;

use super::{MasterKey, SrtpError};

/// Length of the HMAC-SHA1 tag SRTP keeps (80 bits).
pub const HMAC_TAG_LEN: usize = 10;

/// What a session key is for (the labels of RFC 3711 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The RTP encryption key.
    RtpCipher = 0,
    /// The RTP authentication key (AES-CM profile only).
    RtpAuth = 1,
    /// The RTP salt.
    RtpSalt = 2,
    /// The RTCP encryption key.
    RtcpCipher = 3,
    /// The RTCP authentication key (AES-CM profile only).
    RtcpAuth = 4,
    /// The RTCP salt.
    RtcpSalt = 5,
}

/// Fill `out` with the session key `label` of `master`.
pub fn derive(master: &MasterKey, label: Label, out: &mut [u8]) -> Result<(), SrtpError> {
    let algorithm = match master.key.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(SrtpError::Crypto),
    };
    let key = UnboundCipherKey::new(algorithm, &master.key).map_err(|_| SrtpError::Crypto)?;
    let aes = EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?;
    // x = (label || r) XOR master_salt, r = 0; the counter block is x · 2^16. A salt shorter
    // than 112 bits (AES-GCM's 96) sits in the block's leading bytes.
    let mut iv = [0u8; 16];
    iv[..master.salt.len()].copy_from_slice(&master.salt);
    iv[7] ^= label as u8;
    out.fill(0);
    aes.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| SrtpError::Crypto)?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// RFC 3711 Appendix B.3: key derivation test vectors.
    #[test]
    fn session_keys_match_rfc_3711() {
        let master = MasterKey::new(
            &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &hex("0EC675AD498AFEEBB6960B3AABE6"),
        );
        for (label, expected) in [
            (Label::RtpCipher, "C61E7A93744F39EE10734AFE3FF7A087"),
            (Label::RtpSalt, "30CBBC08863D8C85D49DB34A9AE1"),
            (Label::RtpAuth, "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"),
        ] {
            let expected = hex(expected);
            let mut out = vec![0u8; expected.len()];
            derive(&master, label, &mut out).expect("derive");
            assert_eq!(out, expected, "{label:?}");
        }
        let odd = MasterKey::new(&[0; 20], &[0; 14]);
        assert_eq!(
            derive(&odd, Label::RtpCipher, &mut [0; 16]),
            Err(SrtpError::Crypto)
        );
    }

    /// Bytes from hex digits.
    pub(in crate::srtp) fn hex(digits: &str) -> Vec<u8> {
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digits"))
            .collect()
    }
}
