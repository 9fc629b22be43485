//! Checking what a peer sends us over SRTCP (its receiver reports, NACKs, keyframe requests
//! and congestion feedback about the streams we send): authenticated, decrypted in place,
//! and refused when replayed.

use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::hmac;

use super::cipher::{
    Cipher, CmKeys, Packets, RTCP_CLEAR_LEN, SRTCP_ENCRYPTED, ctr, rtcp_cm_iv, rtcp_gcm_iv,
};
use super::kdf::HMAC_TAG_LEN;
use super::{GCM_TAG_LEN, MasterKey, Profile, SRTCP_INDEX_LEN, SrtpError};

/// How many SRTCP indexes behind the highest one seen may still arrive (RFC 3711 §3.3.2
/// asks for at least 64).
const REPLAY_WINDOW: u32 = 64;

/// The SRTCP a peer sends us, keyed once from its master key.
pub struct SrtpReceiver {
    rtcp: Cipher,
    /// One window per sending SSRC: each of the peer's RTCP senders counts its own
    /// indexes (RFC 3711 §3.2.3), newest-used first.
    replay: Vec<(u32, ReplayWindow)>,
}

/// Sending SSRCs whose replay windows are kept (a browser sends RTCP from a few).
const MAX_RTCP_SENDERS: usize = 16;

impl SrtpReceiver {
    /// Session keys of `profile` from the peer's `master` key.
    pub fn new(profile: Profile, master: &MasterKey) -> Result<Self, SrtpError> {
        Ok(Self {
            rtcp: Cipher::session(profile, master, Packets::Rtcp)?,
            replay: Vec::new(),
        })
    }

    /// Check the SRTCP packet in `packet` and decrypt it in place: on success `packet` holds
    /// the plain RTCP compound packet. A packet that fails its tag, is malformed, or repeats
    /// an index its sender had accepted already is refused and leaves the replay state as
    /// it was.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = match self.rtcp {
            Cipher::Cm(_) => HMAC_TAG_LEN,
            Cipher::Gcm { .. } => GCM_TAG_LEN,
        };
        let len = packet.len();
        let malformed = SrtpError::Malformed {
            len,
            header_len: RTCP_CLEAR_LEN + tag_len + SRTCP_INDEX_LEN,
        };
        if len < RTCP_CLEAR_LEN + tag_len + SRTCP_INDEX_LEN {
            return Err(malformed);
        }
        let ssrc: [u8; 4] = packet[4..8].try_into().map_err(|_| SrtpError::Crypto)?;
        let index_at = match self.rtcp {
            Cipher::Cm(_) => len - tag_len - SRTCP_INDEX_LEN,
            Cipher::Gcm { .. } => len - SRTCP_INDEX_LEN,
        };
        let e_index: [u8; 4] = packet[index_at..index_at + SRTCP_INDEX_LEN]
            .try_into()
            .map_err(|_| SrtpError::Crypto)?;
        let word = u32::from_be_bytes(e_index);
        let encrypted = word & SRTCP_ENCRYPTED != 0;
        let index = word & !SRTCP_ENCRYPTED;
        let sender = u32::from_be_bytes(ssrc);
        let window = self
            .replay
            .iter()
            .find(|(s, _)| *s == sender)
            .map(|(_, w)| *w)
            .unwrap_or_default();
        if !window.is_new(index) {
            return Err(SrtpError::Replayed(index));
        }
        match &self.rtcp {
            Cipher::Cm(keys) => {
                let CmKeys { aes, auth, salt } = &**keys;
                let (signed, tag) = packet.split_at(len - tag_len);
                let mut context = hmac::Context::with_key(auth);
                context.update(signed);
                let expected = context.sign();
                if !constant_time_eq(&expected.as_ref()[..HMAC_TAG_LEN], tag) {
                    return Err(SrtpError::Authentication);
                }
                packet.truncate(index_at);
                if encrypted {
                    ctr(
                        aes,
                        rtcp_cm_iv(salt, &ssrc, index),
                        &mut packet[RTCP_CLEAR_LEN..],
                    )?;
                }
            }
            Cipher::Gcm { aead, salt } => {
                let nonce = Nonce::assume_unique_for_key(rtcp_gcm_iv(salt, &ssrc, index));
                let mut aad = [0u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_CLEAR_LEN].copy_from_slice(&packet[..RTCP_CLEAR_LEN]);
                aad[RTCP_CLEAR_LEN..].copy_from_slice(&e_index);
                packet.truncate(index_at);
                if encrypted {
                    let opened = aead
                        .open_in_place(nonce, Aad::from(aad), &mut packet[RTCP_CLEAR_LEN..])
                        .map_err(|_| SrtpError::Authentication)?
                        .len();
                    packet.truncate(RTCP_CLEAR_LEN + opened);
                } else {
                    // Authenticated only: the whole packet is associated data, the tag
                    // that of an empty plaintext.
                    let body = index_at - tag_len;
                    let mut aad = packet[..body].to_vec();
                    aad.extend_from_slice(&e_index);
                    let mut tag = packet[body..].to_vec();
                    aead.open_in_place(nonce, Aad::from(aad), &mut tag)
                        .map_err(|_| SrtpError::Authentication)?;
                    packet.truncate(body);
                }
            }
        }
        self.accept(sender, window, index);
        Ok(())
    }

    /// Record `index` as accepted from `sender`, whose window was `window`.
    fn accept(&mut self, sender: u32, mut window: ReplayWindow, index: u32) {
        window.accept(index);
        self.replay.retain(|(s, _)| *s != sender);
        self.replay.insert(0, (sender, window));
        self.replay.truncate(MAX_RTCP_SENDERS);
    }
}

/// Whether two tags are equal, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The SRTCP indexes accepted lately: the highest, and which of the 64 before it.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    highest: Option<u32>,
    /// Bit `n` set: index `highest - n` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `index` was not accepted yet and is not too old to tell.
    fn is_new(&self, index: u32) -> bool {
        match self.highest {
            None => true,
            Some(highest) if index > highest => true,
            Some(highest) => {
                let behind = highest - index;
                behind < REPLAY_WINDOW && self.seen & (1 << behind) == 0
            }
        }
    }

    /// `index` was accepted.
    fn accept(&mut self, index: u32) {
        match self.highest {
            Some(highest) if index <= highest => self.seen |= 1 << (highest - index),
            Some(highest) => {
                let ahead = index - highest;
                self.seen = if ahead < REPLAY_WINDOW {
                    (self.seen << ahead) | 1
                } else {
                    1
                };
                self.highest = Some(index);
            }
            None => {
                self.seen = 1;
                self.highest = Some(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SrtpSender;
    use super::super::kdf::tests::hex;
    use super::*;

    fn rfc_7714_receiver() -> SrtpReceiver {
        let salt: [u8; 12] = hex("517569642070726f2071756f")
            .try_into()
            .expect("12 bytes");
        SrtpReceiver {
            rtcp: Cipher::gcm(&hex("000102030405060708090a0b0c0d0e0f"), salt).expect("key"),
            replay: Vec::new(),
        }
    }

    const PLAIN: &str = concat!(
        "81c8000d4d6172734e5450314e545032525450200000042a0000e930",
        "4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    );

    #[test]
    fn rfc_7714_rtcp_is_opened() {
        // RFC 7714 §17.1 (encrypted) and §17.2 (authenticated only), index 0x5d4.
        let mut encrypted = hex(concat!(
            "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda",
            "4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4"
        ));
        rfc_7714_receiver()
            .unprotect_rtcp(&mut encrypted)
            .expect("opened");
        assert_eq!(encrypted, hex(PLAIN));
        let mut tagged = hex(PLAIN);
        tagged.extend(hex("841dd9683dd78ec92ae58790125f62b3000005d4"));
        rfc_7714_receiver()
            .unprotect_rtcp(&mut tagged)
            .expect("authenticated");
        assert_eq!(tagged, hex(PLAIN));
    }

    #[test]
    fn what_our_sender_protects_is_opened_and_nothing_twice() {
        // Requirement: both profiles round-trip; a changed byte, a replayed index or one
        // older than the window is refused, and a refusal changes no state.
        for profile in [Profile::Aes128CmSha1_80, Profile::AeadAes256Gcm] {
            let master = MasterKey::new(
                &vec![3u8; profile.master_key_len()],
                &vec![4u8; profile.master_salt_len()],
            );
            let sender = SrtpSender::new(profile, &master).expect("keys");
            let mut receiver = SrtpReceiver::new(profile, &master).expect("keys");
            let rtcp = {
                let mut p = vec![0x81, 205, 0, 3, 0xca, 0xfe, 0xba, 0xbe];
                p.extend([0x11, 0x22, 0x33, 0x44, 0, 7, 0, 0]);
                p
            };
            let sealed = |index| {
                let mut p = rtcp.clone();
                sender.protect_rtcp(&mut p, index).expect("protect");
                p
            };
            let mut tampered = sealed(1);
            tampered[10] ^= 1;
            assert_eq!(
                receiver.unprotect_rtcp(&mut tampered),
                Err(SrtpError::Authentication),
                "{profile:?}"
            );
            for index in [1, 3, 2, 200] {
                let mut p = sealed(index);
                receiver.unprotect_rtcp(&mut p).expect("opened");
                assert_eq!(p, rtcp, "{profile:?} index {index}");
            }
            for index in [3, 200, 136] {
                assert_eq!(
                    receiver.unprotect_rtcp(&mut sealed(index)),
                    Err(SrtpError::Replayed(index)),
                    "{profile:?} index {index}"
                );
            }
            receiver
                .unprotect_rtcp(&mut sealed(137))
                .expect("inside the window");
            assert!(receiver.unprotect_rtcp(&mut vec![0; 12]).is_err());
            let mut other_sender = rtcp.clone();
            other_sender[4] ^= 0xFF;
            sender.protect_rtcp(&mut other_sender, 3).expect("protect");
            receiver
                .unprotect_rtcp(&mut other_sender)
                .expect("another SSRC counts its own indexes");
        }
    }

    #[test]
    fn the_replay_window_slides() {
        let mut window = ReplayWindow::default();
        for (index, new) in [
            (5, true),
            (5, false),
            (4, true),
            (70, true),
            (6, false),
            (7, true),
        ] {
            assert_eq!(window.is_new(index), new, "index {index}");
            if new {
                window.accept(index);
            }
        }
        window.accept(1_000);
        assert!(!window.is_new(70), "far behind");
        assert!(window.is_new(999));
    }
}
