//! Protecting what we send: RTP and SRTCP packets encrypted and tagged in place with
//! session keys set up once.

use aws_lc_rs::aead::{Aad, Nonce};

use super::cipher::{
    Cipher, CmKeys, Packets, RTCP_CLEAR_LEN, SRTCP_ENCRYPTED, ctr, hmac_tag, rtcp_cm_iv,
    rtcp_gcm_iv, xor,
};
use super::{MasterKey, Profile, SRTCP_INDEX_LEN, SrtpError};

/// The protection of everything one participant's connection sends: RTP and RTCP session
/// keys derived once from our master key.
pub struct SrtpSender {
    rtp: Cipher,
    rtcp: Cipher,
}

impl SrtpSender {
    /// Session keys of `profile` from our `master` key.
    pub fn new(profile: Profile, master: &MasterKey) -> Result<Self, SrtpError> {
        Ok(Self {
            rtp: Cipher::session(profile, master, Packets::Rtp)?,
            rtcp: Cipher::session(profile, master, Packets::Rtcp)?,
        })
    }

    /// Protect the RTP packet in `packet` (its header `header_len` bytes long, CSRCs and
    /// extensions included) in place: its payload encrypted and the tag appended. `roc` is
    /// the stream's rollover counter (the sequence number's wraps). With the profile's
    /// [`Profile::rtp_overhead`] spare in its capacity, nothing is allocated.
    pub fn protect_rtp(
        &self,
        packet: &mut Vec<u8>,
        header_len: usize,
        roc: u32,
    ) -> Result<(), SrtpError> {
        if header_len < 12 || packet.len() < header_len {
            return Err(SrtpError::Malformed {
                len: packet.len(),
                header_len,
            });
        }
        let ssrc: [u8; 4] = packet[8..12].try_into().map_err(|_| SrtpError::Crypto)?;
        let seq = [packet[2], packet[3]];
        let roc = roc.to_be_bytes();
        match &self.rtp {
            Cipher::Cm(keys) => {
                let CmKeys { aes, auth, salt } = &**keys;
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                xor(&mut iv[4..8], &ssrc);
                xor(&mut iv[8..12], &roc);
                xor(&mut iv[12..14], &seq);
                ctr(aes, iv, &mut packet[header_len..])?;
                let tag = hmac_tag(auth, &[packet, &roc]);
                packet.extend_from_slice(&tag);
            }
            Cipher::Gcm { aead, salt } => {
                let mut iv = *salt;
                xor(&mut iv[2..6], &ssrc);
                xor(&mut iv[6..10], &roc);
                xor(&mut iv[10..12], &seq);
                let (header, payload) = packet.split_at_mut(header_len);
                let tag = aead
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        payload,
                    )
                    .map_err(|_| SrtpError::Crypto)?;
                packet.extend_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    /// Protect the RTCP compound packet in `packet` in place as SRTCP packet `index` (31
    /// bits; one more for every packet sent on this connection): encrypted after the
    /// sender's SSRC, then the E flag with the index and the tag. With the profile's
    /// [`Profile::rtcp_overhead`] spare in its capacity, nothing is allocated.
    pub fn protect_rtcp(&self, packet: &mut Vec<u8>, index: u32) -> Result<(), SrtpError> {
        if packet.len() < RTCP_CLEAR_LEN {
            return Err(SrtpError::Malformed {
                len: packet.len(),
                header_len: RTCP_CLEAR_LEN,
            });
        }
        let ssrc: [u8; 4] = packet[4..8].try_into().map_err(|_| SrtpError::Crypto)?;
        let index = index & !SRTCP_ENCRYPTED;
        let e_index = (index | SRTCP_ENCRYPTED).to_be_bytes();
        match &self.rtcp {
            Cipher::Cm(keys) => {
                let CmKeys { aes, auth, salt } = &**keys;
                ctr(
                    aes,
                    rtcp_cm_iv(salt, &ssrc, index),
                    &mut packet[RTCP_CLEAR_LEN..],
                )?;
                packet.extend_from_slice(&e_index);
                let tag = hmac_tag(auth, &[packet]);
                packet.extend_from_slice(&tag);
            }
            Cipher::Gcm { aead, salt } => {
                let iv = rtcp_gcm_iv(salt, &ssrc, index);
                let mut aad = [0u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_CLEAR_LEN].copy_from_slice(&packet[..RTCP_CLEAR_LEN]);
                aad[RTCP_CLEAR_LEN..].copy_from_slice(&e_index);
                let tag = aead
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(aad),
                        &mut packet[RTCP_CLEAR_LEN..],
                    )
                    .map_err(|_| SrtpError::Crypto)?;
                packet.extend_from_slice(tag.as_ref());
                packet.extend_from_slice(&e_index);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::kdf::tests::hex;
    use super::*;

    /// RFC 7714 §16's session key and salt (RTP and RTCP alike).
    fn rfc_7714_sender() -> SrtpSender {
        let key = hex("000102030405060708090a0b0c0d0e0f");
        let salt: [u8; 12] = hex("517569642070726f2071756f")
            .try_into()
            .expect("12 bytes");
        let cipher = || Cipher::gcm(&key, salt).expect("a key");
        SrtpSender {
            rtp: cipher(),
            rtcp: cipher(),
        }
    }

    #[test]
    fn rtp_is_protected_as_in_rfc_7714() {
        // RFC 7714 §16.1.1: AEAD_AES_128_GCM encryption of an RTP packet.
        let mut packet = hex(concat!(
            "8040f17b8041f8d35501a0b2",
            "47616c6c696120657374206f6d6e6973206469766973612069",
            "6e207061727465732074726573"
        ));
        packet.reserve(Profile::AeadAes128Gcm.rtp_overhead());
        let capacity = packet.capacity();
        rfc_7714_sender()
            .protect_rtp(&mut packet, 12, 0)
            .expect("protect");
        let expected = hex(concat!(
            "8040f17b8041f8d35501a0b2",
            "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b",
            "36de3adf8833899d7f27beb16a9152cf765ee4390cce"
        ));
        assert_eq!(packet, expected);
        assert_eq!(packet.capacity(), capacity, "protected in place");
    }

    #[test]
    fn rtcp_is_protected_as_in_rfc_7714() {
        // RFC 7714 §17.1: AEAD_AES_128_GCM encryption of an RTCP packet, SRTCP index 0x5d4.
        let mut packet = hex(concat!(
            "81c8000d4d6172734e5450314e545032525450200000042a0000e930",
            "4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
        ));
        rfc_7714_sender()
            .protect_rtcp(&mut packet, 0x5d4)
            .expect("protect");
        let expected = hex(concat!(
            "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda",
            "4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4"
        ));
        assert_eq!(packet, expected);
    }

    #[test]
    fn the_cm_profile_encrypts_the_payload_and_tags_the_packet() {
        // Requirement: AES-CM leaves the header in the clear, encrypts the payload with the
        // keystream of (salt, SSRC, index), and appends the 80-bit HMAC-SHA1 of the packet
        // and its rollover counter; every field changes the result.
        let master = MasterKey::new(&[7; 16], &[5; 14]);
        let sender = SrtpSender::new(Profile::Aes128CmSha1_80, &master).expect("keys");
        let plain = {
            let mut p = vec![
                0x80, 96, 0x12, 0x34, 0, 0, 0x0b, 0xb8, 0xca, 0xfe, 0xba, 0xbe,
            ];
            p.extend(std::iter::repeat_n(0xab, 100));
            p
        };
        let protect = |packet: &[u8], roc| {
            let mut out = packet.to_vec();
            sender.protect_rtp(&mut out, 12, roc).expect("protect");
            out
        };
        let sealed = protect(&plain, 0);
        assert_eq!(sealed.len(), plain.len() + 10);
        assert_eq!(sealed[..12], plain[..12], "the header stays readable");
        assert_ne!(sealed[12..112], plain[12..], "the payload is encrypted");
        assert_ne!(protect(&plain, 1)[12..], sealed[12..], "the ROC counts");
        let mut other_ssrc = plain.clone();
        other_ssrc[11] ^= 1;
        assert_ne!(protect(&other_ssrc, 0)[12..112], sealed[12..112]);
        // Encrypting twice with one keystream gives the plain text back.
        let mut twice = sealed[..112].to_vec();
        sender.protect_rtp(&mut twice, 12, 0).expect("protect");
        assert_eq!(twice[..112], plain[..]);
        let mut rtcp = vec![0x80, 200, 0, 6, 0xca, 0xfe, 0xba, 0xbe];
        rtcp.extend([1u8; 20]);
        sender.protect_rtcp(&mut rtcp, 7).expect("protect");
        assert_eq!(rtcp.len(), 28 + 4 + 10);
        assert_eq!(rtcp[28..32], [0x80, 0, 0, 7], "E flag and index");
    }

    #[test]
    fn malformed_packets_are_refused() {
        let sender = rfc_7714_sender();
        let mut short = vec![0x80, 96, 0, 1];
        assert!(matches!(
            sender.protect_rtp(&mut short, 12, 0),
            Err(SrtpError::Malformed { .. })
        ));
        assert!(sender.protect_rtp(&mut vec![0; 20], 24, 0).is_err());
        assert!(sender.protect_rtcp(&mut vec![0; 7], 0).is_err());
    }
}
