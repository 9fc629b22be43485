//! The SRTP keys of a participant's connection, tapped from its DTLS handshake for our
//! own egress: str0m's DTLS, wrapped so that the keying material and the profile it
//! hands str0m, and our DTLS role, are copied into the participant's [`KeyingSlot`].
//!
//! str0m takes its crypto as `'static` providers, so the wrapper is one static provider
//! for every connection. Each connection creates its DTLS instance synchronously while
//! its `Rtc` is built, which is when [`build_tapped`] hands that instance its slot.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sfu_core::srtp::Profile;
use str0m::config::CryptoProvider;
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::{Rtc, RtcConfig};

/// What the DTLS handshake gave one connection for SRTP.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    /// The negotiated protection profile.
    pub profile: Profile,
    /// The exported keying material: both directions' master keys and salts.
    pub material: Vec<u8>,
    /// Our DTLS role: client (active) or server.
    pub we_are_client: bool,
}

impl std::fmt::Debug for SrtpKeying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeying")
            .field("profile", &self.profile)
            .field("we_are_client", &self.we_are_client)
            .finish_non_exhaustive()
    }
}

/// Where one connection's keys appear once its handshake is done.
pub type KeyingSlot = Arc<OnceLock<SrtpKeying>>;

thread_local! {
    /// The slot of the connection being built on this thread.
    static BUILDING: RefCell<Option<KeyingSlot>> = const { RefCell::new(None) };
}

/// Build an `Rtc` from `config` whose DTLS copies its keys into the returned slot.
pub fn build_tapped(config: RtcConfig, now: Instant) -> (Rtc, KeyingSlot) {
    let slot = KeyingSlot::default();
    BUILDING.with(|b| *b.borrow_mut() = Some(slot.clone()));
    let rtc = config.set_crypto_provider(tapping_provider()).build(now);
    BUILDING.with(|b| b.borrow_mut().take());
    (rtc, slot)
}

/// str0m's crypto with its DTLS provider wrapped by [`TappingDtls`].
fn tapping_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = str0m::crypto::from_feature_flags();
            provider.dtls_provider = &TAPPING;
            Arc::new(provider)
        })
        .clone()
}

/// The DTLS provider str0m would use.
fn inner_provider() -> &'static dyn DtlsProvider {
    static INNER: OnceLock<&'static dyn DtlsProvider> = OnceLock::new();
    *INNER.get_or_init(|| str0m::crypto::from_feature_flags().dtls_provider)
}

/// The one tapping DTLS provider.
static TAPPING: TappingDtls = TappingDtls;

/// Creates str0m's DTLS instances, each wrapped in a [`TappedInstance`] when a slot waits.
#[derive(Debug)]
struct TappingDtls;

impl DtlsProvider for TappingDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        inner_provider().generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = inner_provider().new_dtls(cert, now, dtls_version, mtu)?;
        Ok(match BUILDING.with(|b| b.borrow_mut().take()) {
            Some(slot) => Box::new(TappedInstance {
                inner,
                slot,
                active: false,
            }),
            None => inner,
        })
    }

    fn is_test(&self) -> bool {
        inner_provider().is_test()
    }
}

/// One connection's DTLS, copying its keys into its slot on the way to str0m.
#[derive(Debug)]
struct TappedInstance {
    inner: Box<dyn DtlsInstance>,
    slot: KeyingSlot,
    active: bool,
}

impl DtlsInstance for TappedInstance {
    fn set_active(&mut self, active: bool) {
        self.active = active;
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &output
            && let Some(profile) = our_profile(*profile)
        {
            let _first = self.slot.set(SrtpKeying {
                profile,
                material: material.to_vec(),
                we_are_client: self.active,
            });
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// Our name of a DTLS-SRTP profile; `None` for one we do not implement.
fn our_profile(profile: SrtpProfile) -> Option<Profile> {
    match profile {
        SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
        SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
        SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
        _ => None,
    }
}
