//! SRTP and SRTCP protection of what the SFU sends (RFC 3711, RFC 7714), keyed once per
//! session from the DTLS-SRTP keying material (RFC 5764) and applied in place, so
//! forwarding a packet allocates nothing and sets up no key.
//!
//! - [`Profile`]: the negotiated protection profile and its lengths.
//! - [`MasterKey`]: one direction's master key and salt, split out of the keying material.
//! - [`SrtpSender`]: session keys derived once, then RTP and SRTCP protected in place
//!   ([`SrtpSender::protect_rtp`], [`SrtpSender::protect_rtcp`]).
//! - [`SrtpReceiver`]: the peer's SRTCP (its feedback on what we send) authenticated,
//!   decrypted in place and refused when replayed.

mod cipher;
mod kdf;
mod receiver;
mod sender;

pub use receiver::SrtpReceiver;
pub use sender::SrtpSender;

use thiserror::Error;

/// A DTLS-SRTP protection profile (RFC 5764, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80`: AES-128 counter mode, HMAC-SHA1 tag of 80 bits.
    Aes128CmSha1_80,
    /// `SRTP_AEAD_AES_128_GCM`.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM`.
    AeadAes256Gcm,
}

impl Profile {
    /// Length of its master key, bytes.
    pub const fn master_key_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 | Self::AeadAes128Gcm => 16,
            Self::AeadAes256Gcm => 32,
        }
    }

    /// Length of its master salt, bytes.
    pub const fn master_salt_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => 14,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
        }
    }

    /// Length of the DTLS keying material it takes: both directions' keys and salts.
    pub const fn keying_material_len(self) -> usize {
        2 * (self.master_key_len() + self.master_salt_len())
    }

    /// Bytes protection adds to an RTP packet (its tag).
    pub const fn rtp_overhead(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => kdf::HMAC_TAG_LEN,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Bytes protection adds to an RTCP packet (its tag and the E flag with the index).
    pub const fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + SRTCP_INDEX_LEN
    }
}

/// Length of an AES-GCM tag, bytes.
const GCM_TAG_LEN: usize = 16;
/// Length of the E flag and SRTCP index that end a protected RTCP packet, bytes.
const SRTCP_INDEX_LEN: usize = 4;

/// Why a packet or key could not be protected or set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// The keying material does not have the profile's length.
    #[error("keying material of {got} bytes, {profile:?} takes {expected}")]
    KeyingMaterialLength {
        /// The profile.
        profile: Profile,
        /// What it takes.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The packet is shorter than its header, or its header length is out of bounds.
    #[error("a packet of {len} bytes cannot have a header of {header_len}")]
    Malformed {
        /// The packet's length.
        len: usize,
        /// The header length given.
        header_len: usize,
    },
    /// The packet's tag does not match: altered, or not protected with these keys.
    #[error("the packet failed authentication")]
    Authentication,
    /// The packet's index was accepted already, or is too old to tell.
    #[error("SRTCP index {0} replayed or too old")]
    Replayed(u32),
    /// The cryptographic library refused a key or an operation.
    #[error("the cryptographic library refused the operation")]
    Crypto,
}

/// One direction's master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    key: Vec<u8>,
    salt: Vec<u8>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// The master keys of what we send and of what we receive, from the DTLS keying
    /// material of `profile` (client key, server key, client salt, server salt, RFC 5764
    /// §4.2); `we_are_client` is our DTLS role.
    pub fn split(
        profile: Profile,
        material: &[u8],
        we_are_client: bool,
    ) -> Result<(Self, Self), SrtpError> {
        let expected = profile.keying_material_len();
        if material.len() != expected {
            return Err(SrtpError::KeyingMaterialLength {
                profile,
                expected,
                got: material.len(),
            });
        }
        let (k, s) = (profile.master_key_len(), profile.master_salt_len());
        let half = |client: bool| {
            let (key_at, salt_at) = if client { (0, 2 * k) } else { (k, 2 * k + s) };
            Self {
                key: material[key_at..key_at + k].to_vec(),
                salt: material[salt_at..salt_at + s].to_vec(),
            }
        };
        Ok((half(we_are_client), half(!we_are_client)))
    }

    /// A master key and salt as they are (for tests and known keys).
    pub fn new(key: &[u8], salt: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            salt: salt.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keying_material_is_split_by_role() {
        // Requirement: RFC 5764 §4.2 order (client key, server key, client salt, server
        // salt); what we send uses our role's half, what we receive the other.
        for profile in [
            Profile::Aes128CmSha1_80,
            Profile::AeadAes128Gcm,
            Profile::AeadAes256Gcm,
        ] {
            let (k, s) = (profile.master_key_len(), profile.master_salt_len());
            let material: Vec<u8> = (0..profile.keying_material_len())
                .map(|i| u8::try_from(i).expect("under 256"))
                .collect();
            let (ours, theirs) = MasterKey::split(profile, &material, true).expect("split");
            assert_eq!(ours.key, &material[..k]);
            assert_eq!(theirs.key, &material[k..2 * k]);
            assert_eq!(ours.salt, &material[2 * k..2 * k + s]);
            assert_eq!(theirs.salt, &material[2 * k + s..]);
            let (server_ours, server_theirs) =
                MasterKey::split(profile, &material, false).expect("split");
            assert_eq!((server_ours, server_theirs), (theirs, ours));
            assert!(matches!(
                MasterKey::split(profile, &material[1..], true),
                Err(SrtpError::KeyingMaterialLength { .. })
            ));
        }
        assert_eq!(Profile::Aes128CmSha1_80.keying_material_len(), 60);
        assert_eq!(Profile::AeadAes256Gcm.keying_material_len(), 88);
        assert_eq!(Profile::AeadAes128Gcm.rtcp_overhead(), 20);
        assert_eq!(Profile::Aes128CmSha1_80.rtp_overhead(), 10);
    }
}
