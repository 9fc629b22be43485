//! One direction's session ciphers (RTP or RTCP), derived once from a master key, and
//! the pieces of the SRTP and SRTCP transforms both directions share.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::kdf::{HMAC_TAG_LEN, Label, derive};
use super::{MasterKey, Profile, SrtpError};

/// Length of the RTCP header and sender SSRC, which SRTCP leaves unencrypted.
pub const RTCP_CLEAR_LEN: usize = 8;
/// The E flag of an SRTCP index: the packet is encrypted.
pub const SRTCP_ENCRYPTED: u32 = 1 << 31;

/// One direction's cipher, keyed once.
pub enum Cipher {
    /// AES-128 counter mode with an HMAC-SHA1 tag.
    Cm(Box<CmKeys>),
    /// AES-GCM.
    Gcm { aead: LessSafeKey, salt: [u8; 12] },
}

/// The keys of the AES-CM profile.
pub struct CmKeys {
    /// AES-128 in counter mode, its key schedule done.
    pub aes: EncryptingKey,
    /// The HMAC-SHA1 key.
    pub auth: hmac::Key,
    /// The session salt.
    pub salt: [u8; 14],
}

/// Which packets a session cipher protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packets {
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
}

impl Cipher {
    /// The session cipher of `profile` for `packets`, from `master`.
    pub fn session(
        profile: Profile,
        master: &MasterKey,
        packets: Packets,
    ) -> Result<Self, SrtpError> {
        let (cipher_label, auth_label, salt_label) = match packets {
            Packets::Rtp => (Label::RtpCipher, Label::RtpAuth, Label::RtpSalt),
            Packets::Rtcp => (Label::RtcpCipher, Label::RtcpAuth, Label::RtcpSalt),
        };
        match profile {
            Profile::Aes128CmSha1_80 => {
                let mut key = [0u8; 16];
                let mut auth = [0u8; 20];
                let mut salt = [0u8; 14];
                derive(master, cipher_label, &mut key)?;
                derive(master, auth_label, &mut auth)?;
                derive(master, salt_label, &mut salt)?;
                Self::cm(&key, &auth, salt)
            }
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                let mut key = vec![0u8; profile.master_key_len()];
                let mut salt = [0u8; 12];
                derive(master, cipher_label, &mut key)?;
                derive(master, salt_label, &mut salt)?;
                Self::gcm(&key, salt)
            }
        }
    }

    /// The AES-CM cipher of these session keys.
    pub fn cm(key: &[u8; 16], auth: &[u8; 20], salt: [u8; 14]) -> Result<Self, SrtpError> {
        let key = UnboundCipherKey::new(&AES_128, key).map_err(|_| SrtpError::Crypto)?;
        Ok(Self::Cm(Box::new(CmKeys {
            aes: EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
            salt,
        })))
    }

    /// The AES-GCM cipher of this session key and salt.
    pub fn gcm(key: &[u8], salt: [u8; 12]) -> Result<Self, SrtpError> {
        let algorithm = if key.len() == 32 {
            &AES_256_GCM
        } else {
            &AES_128_GCM
        };
        let key = UnboundKey::new(algorithm, key).map_err(|_| SrtpError::Crypto)?;
        Ok(Self::Gcm {
            aead: LessSafeKey::new(key),
            salt,
        })
    }
}

/// XOR `with` into `into`.
pub fn xor(into: &mut [u8], with: &[u8]) {
    for (a, b) in into.iter_mut().zip(with) {
        *a ^= b;
    }
}

/// Encrypt `data` in place with the AES counter-mode keystream starting at block `iv`.
pub fn ctr(aes: &EncryptingKey, iv: [u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
    aes.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map(|_| ())
        .map_err(|_| SrtpError::Crypto)
}

/// The 80-bit HMAC-SHA1 tag of `parts`, in order.
pub fn hmac_tag(key: &hmac::Key, parts: &[&[u8]]) -> [u8; HMAC_TAG_LEN] {
    let mut context = hmac::Context::with_key(key);
    for part in parts {
        context.update(part);
    }
    let mut tag = [0u8; HMAC_TAG_LEN];
    tag.copy_from_slice(&context.sign().as_ref()[..HMAC_TAG_LEN]);
    tag
}

/// The AES-CM counter block of SRTCP packet `index` from `ssrc`.
pub fn rtcp_cm_iv(salt: &[u8; 14], ssrc: &[u8; 4], index: u32) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    xor(&mut iv[4..8], ssrc);
    xor(&mut iv[10..14], &index.to_be_bytes());
    iv
}

/// The AES-GCM nonce of SRTCP packet `index` from `ssrc`.
pub fn rtcp_gcm_iv(salt: &[u8; 12], ssrc: &[u8; 4], index: u32) -> [u8; 12] {
    let mut iv = *salt;
    xor(&mut iv[2..6], ssrc);
    xor(&mut iv[8..12], &index.to_be_bytes());
    iv
}
