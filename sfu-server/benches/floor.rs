//! The floor cost of forwarding one packet on this machine, next to our own part of it.
//!
//! - `srtp_*`: protecting (per subscriber) and unprotecting (once) a 1,200-byte packet with
//!   the crypto str0m uses (its aws-lc-rs provider), for the AES-CM-SHA1-80 and AES-GCM
//!   profiles; `*_prekeyed_hmac` keeps the HMAC key set up between packets, which str0m's
//!   provider does not.
//! - `send_*`: handing 1,200-byte datagrams to the kernel on loopback, one `send_to` each
//!   or 32 in one GSO `sendmsg` (a receiver thread drains them).
//! - `egress_srtp_*`: the same protection by the egress' own `sfu_core::srtp::SrtpSender`:
//!   session keys set up once, the packet encrypted in place in its buffer.
//! - `decide`: our per-subscriber decision (Forwarder and RtpMunger), no crypto, no I/O.
//! - `fanout`: the whole floor per forwarded packet: unprotect once, then per subscriber
//!   decide, protect and send.
//!
//! Run: `cargo bench -p sfu-server --bench floor`; `cargo test -p sfu-server --bench floor`
//! runs each once (CI's short mode).

use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use divan::Bencher;
use divan::counter::ItemsCount;
use sfu_core::forwarder::{Decision, Forwarder, PacketInfo};
use sfu_core::srtp::{MasterKey, Profile, SrtpSender};
use str0m::crypto::{AeadAes256GcmCipher, Aes128CmSha1_80Cipher, CryptoProvider};

fn main() {
    divan::main();
}

/// Size of a forwarded video packet (header, payload and tag together stay under the MTU).
const PACKET: usize = 1200;
/// RTP fixed header.
const HEADER: usize = 12;
/// AES-CM-SHA1-80 authentication tag.
const CM_TAG: usize = 10;
/// AES-GCM tag.
const GCM_TAG: usize = 16;
/// Datagrams per GSO send.
const GSO_BATCH: usize = 32;

fn provider() -> CryptoProvider {
    str0m::crypto::from_feature_flags()
}

/// An RTP packet: fixed header with sequence number `seq`, then payload.
fn rtp_packet(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&90_000u32.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

/// One direction of an SRTP session: what the fan-out benchmark needs of each profile.
trait SrtpSession {
    /// A session for sending (`true`) or receiving.
    fn open(encrypt: bool) -> Self;
    /// Payload bytes of a `PACKET`-sized SRTP packet.
    const PAYLOAD: usize;
    /// Encrypt and authenticate `packet` into `out`.
    fn seal(&mut self, packet: &[u8], out: &mut Vec<u8>);
    /// Check and decrypt `srtp` into `out`.
    fn open_packet(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> bool;
}

impl SrtpSession for CmSession {
    const PAYLOAD: usize = PACKET - HEADER - CM_TAG;
    fn open(encrypt: bool) -> Self {
        CmSession::new(encrypt)
    }
    fn seal(&mut self, packet: &[u8], out: &mut Vec<u8>) {
        self.protect(packet, out, false);
    }
    fn open_packet(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> bool {
        self.unprotect(srtp, out)
    }
}

impl SrtpSession for GcmSession {
    const PAYLOAD: usize = PACKET - HEADER - GCM_TAG;
    fn open(encrypt: bool) -> Self {
        GcmSession::new(encrypt)
    }
    fn seal(&mut self, packet: &[u8], out: &mut Vec<u8>) {
        self.protect(packet, out);
    }
    fn open_packet(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> bool {
        self.unprotect(srtp, out)
    }
}

/// One direction of an AES-CM-SHA1-80 SRTP session (RFC 3711), as str0m computes it.
struct CmSession {
    cipher: Box<dyn Aes128CmSha1_80Cipher>,
    auth_key: [u8; 20],
    prekeyed: aws_lc_rs::hmac::Key,
    salt: [u8; 14],
    provider: CryptoProvider,
}

impl CmSession {
    fn new(encrypt: bool) -> Self {
        let provider = provider();
        let auth_key = [7u8; 20];
        Self {
            cipher: provider
                .srtp_provider
                .aes_128_cm_sha1_80()
                .create_cipher([3u8; 16], encrypt),
            auth_key,
            prekeyed: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                &auth_key,
            ),
            salt: [5u8; 14],
            provider,
        }
    }

    fn iv(&self, packet: &[u8]) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        let ssrc = &packet[8..12];
        for i in 0..4 {
            iv[4 + i] ^= ssrc[i];
        }
        iv[12] ^= packet[2];
        iv[13] ^= packet[3];
        iv
    }

    /// Encrypt and authenticate `packet` into `out`; `prekeyed` reuses the HMAC key.
    fn protect(&mut self, packet: &[u8], out: &mut Vec<u8>, prekeyed: bool) {
        out.clear();
        out.extend_from_slice(&packet[..HEADER]);
        out.resize(packet.len(), 0);
        let iv = self.iv(packet);
        self.cipher
            .encrypt(&iv, &packet[HEADER..], &mut out[HEADER..])
            .expect("encrypt");
        let roc = 0u32.to_be_bytes();
        let tag = self.tag(out, &roc, prekeyed);
        out.extend_from_slice(&tag[..CM_TAG]);
    }

    /// Check the tag of `srtp` and decrypt it into `out`.
    fn unprotect(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> bool {
        let (body, tag) = srtp.split_at(srtp.len() - CM_TAG);
        let roc = 0u32.to_be_bytes();
        if self.tag(body, &roc, false)[..CM_TAG] != *tag {
            return false;
        }
        out.clear();
        out.extend_from_slice(&body[..HEADER]);
        out.resize(body.len(), 0);
        let iv = self.iv(body);
        self.cipher
            .decrypt(&iv, &body[HEADER..], &mut out[HEADER..])
            .is_ok()
    }

    fn tag(&self, body: &[u8], roc: &[u8], prekeyed: bool) -> [u8; 20] {
        if prekeyed {
            let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.prekeyed);
            ctx.update(body);
            ctx.update(roc);
            let mut tag = [0u8; 20];
            tag.copy_from_slice(ctx.sign().as_ref());
            tag
        } else {
            self.provider
                .sha1_hmac_provider
                .sha1_hmac(&self.auth_key, &[body, roc])
        }
    }
}

/// One direction of an AEAD-AES-256-GCM SRTP session (RFC 7714), str0m's preferred profile.
struct GcmSession {
    cipher: Box<dyn AeadAes256GcmCipher>,
    salt: [u8; 12],
}

impl GcmSession {
    fn new(encrypt: bool) -> Self {
        Self {
            cipher: provider()
                .srtp_provider
                .aead_aes_256_gcm()
                .create_cipher([9u8; 32], encrypt),
            salt: [1u8; 12],
        }
    }

    fn iv(&self, packet: &[u8]) -> [u8; 12] {
        let mut iv = self.salt;
        for i in 0..4 {
            iv[2 + i] ^= packet[8 + i];
        }
        iv[10] ^= packet[2];
        iv[11] ^= packet[3];
        iv
    }

    fn protect(&mut self, packet: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&packet[..HEADER]);
        out.resize(packet.len() + GCM_TAG, 0);
        let iv = self.iv(packet);
        self.cipher
            .encrypt(
                &iv,
                &packet[..HEADER],
                &packet[HEADER..],
                &mut out[HEADER..],
            )
            .expect("encrypt");
    }

    fn unprotect(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        out.extend_from_slice(&srtp[..HEADER]);
        out.resize(srtp.len(), 0);
        let iv = self.iv(srtp);
        match self
            .cipher
            .decrypt(&iv, &[&srtp[..HEADER]], &srtp[HEADER..], &mut out[HEADER..])
        {
            Ok(n) => {
                out.truncate(HEADER + n);
                true
            }
            Err(_) => false,
        }
    }
}

#[divan::bench]
fn srtp_cm_protect(bencher: Bencher) {
    let mut session = CmSession::new(true);
    let packet = rtp_packet(1, PACKET - HEADER - CM_TAG);
    let mut out = Vec::with_capacity(PACKET + 64);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| session.protect(divan::black_box(&packet), &mut out, false));
}

#[divan::bench]
fn srtp_cm_protect_prekeyed_hmac(bencher: Bencher) {
    let mut session = CmSession::new(true);
    let packet = rtp_packet(1, PACKET - HEADER - CM_TAG);
    let mut out = Vec::with_capacity(PACKET + 64);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| session.protect(divan::black_box(&packet), &mut out, true));
}

#[divan::bench]
fn srtp_cm_unprotect(bencher: Bencher) {
    let mut sender = CmSession::new(true);
    let mut receiver = CmSession::new(false);
    let mut srtp = Vec::new();
    sender.protect(&rtp_packet(1, PACKET - HEADER - CM_TAG), &mut srtp, false);
    let mut out = Vec::with_capacity(PACKET + 64);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        assert!(receiver.unprotect(divan::black_box(&srtp), &mut out));
    });
}

#[divan::bench]
fn srtp_gcm256_protect(bencher: Bencher) {
    let mut session = GcmSession::new(true);
    let packet = rtp_packet(1, PACKET - HEADER - GCM_TAG);
    let mut out = Vec::with_capacity(PACKET + 64);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| session.protect(divan::black_box(&packet), &mut out));
}

#[divan::bench]
fn srtp_gcm256_unprotect(bencher: Bencher) {
    let mut sender = GcmSession::new(true);
    let mut receiver = GcmSession::new(false);
    let mut srtp = Vec::new();
    sender.protect(&rtp_packet(1, PACKET - HEADER - GCM_TAG), &mut srtp);
    let mut out = Vec::with_capacity(PACKET + 64);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        assert!(receiver.unprotect(divan::black_box(&srtp), &mut out));
    });
}

/// Our own sender's protection of one `PACKET`-sized packet in place, `profile` keyed once;
/// the buffer is refilled from `plain` each time, as a pooled buffer would be.
fn bench_egress_srtp(bencher: Bencher, profile: Profile) {
    let master = MasterKey::new(
        &vec![9u8; profile.master_key_len()],
        &vec![1u8; profile.master_salt_len()],
    );
    let sender = SrtpSender::new(profile, &master).expect("session keys");
    let plain = rtp_packet(1, PACKET - HEADER - profile.rtp_overhead());
    let mut buf = Vec::with_capacity(PACKET + 64);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        buf.clear();
        buf.extend_from_slice(divan::black_box(&plain));
        sender.protect_rtp(&mut buf, HEADER, 0).expect("protect");
    });
}

#[divan::bench]
fn egress_srtp_cm_protect(bencher: Bencher) {
    bench_egress_srtp(bencher, Profile::Aes128CmSha1_80);
}

#[divan::bench]
fn egress_srtp_gcm256_protect(bencher: Bencher) {
    bench_egress_srtp(bencher, Profile::AeadAes256Gcm);
}

/// A loopback receiver drained by its own thread, so the sender measures a live path.
fn drained_receiver() -> SocketAddr {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let addr = receiver.local_addr().expect("receiver address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while receiver.recv(&mut buf).is_ok() {}
    });
    addr
}

#[divan::bench]
fn send_one_per_syscall(bencher: Bencher) {
    let destination = drained_receiver();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let datagram = vec![0x80u8; PACKET];
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let _ = socket.send_to(divan::black_box(&datagram), destination);
    });
}

/// The same on a socket connected to its destination, so the kernel keeps the route instead
/// of looking it up for every datagram: what a socket per subscriber would save on sends.
#[divan::bench]
fn send_connected_one_per_syscall(bencher: Bencher) {
    let destination = drained_receiver();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    socket.connect(destination).expect("connect sender");
    let datagram = vec![0x80u8; PACKET];
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let _ = socket.send(divan::black_box(&datagram));
    });
}

#[divan::bench]
fn send_gso_batch(bencher: Bencher) {
    let destination = drained_receiver();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let state = quinn_udp::UdpSocketState::new((&socket).into()).expect("socket state");
    let batch = state.max_gso_segments().clamp(1, GSO_BATCH);
    let contents = vec![0x80u8; PACKET * batch];
    let transmit = quinn_udp::Transmit {
        destination,
        ecn: None,
        contents: &contents,
        segment_size: (batch > 1).then_some(PACKET),
        src_ip: None,
    };
    bencher.counter(ItemsCount::new(batch)).bench_local(|| {
        let _ = state.try_send((&socket).into(), divan::black_box(&transmit));
    });
}

/// Packets of a video track's low layer, with a keyframe first.
fn packet_info(seq: u64, arrival: Instant) -> PacketInfo {
    PacketInfo {
        layer: 0,
        seq,
        timestamp: (seq / 4) as u32 * 3000,
        keyframe_start: seq == 0,
        arrival,
        vp8: None,
    }
}

#[divan::bench]
fn decide(bencher: Bencher) {
    let mut forwarder = Forwarder::new(true, 90_000);
    let now = Instant::now();
    let mut seq = 0u64;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let decision = forwarder.decide(&packet_info(seq, now));
        seq += 1;
        assert!(matches!(decision, Decision::Forward(..)));
    });
}

/// Subscribers of one publisher in the fan-out benchmarks.
const FANOUT: &[usize] = &[1, 10, 50];

/// The whole floor for one incoming packet and `subscribers` receivers: unprotect once,
/// then per subscriber decide, protect and send (one `send_to` each), with the SRTP
/// profile `S` (AES-CM-SHA1-80, or AES-256-GCM which str0m prefers).
#[divan::bench(types = [CmSession, GcmSession], args = FANOUT)]
fn fanout<S: SrtpSession>(bencher: Bencher, subscribers: usize) {
    let mut publisher = S::open(true);
    let mut ingress = S::open(false);
    let mut egress: Vec<(Forwarder, S)> = (0..subscribers)
        .map(|_| (Forwarder::new(true, 90_000), S::open(true)))
        .collect();
    let destination = drained_receiver();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let mut srtp = Vec::new();
    publisher.seal(&rtp_packet(0, S::PAYLOAD), &mut srtp);
    let (mut plain, mut out) = (Vec::with_capacity(PACKET), Vec::with_capacity(PACKET + 64));
    let now = Instant::now();
    let mut seq = 0u64;
    bencher
        .counter(ItemsCount::new(subscribers))
        .bench_local(|| {
            assert!(ingress.open_packet(&srtp, &mut plain));
            let info = packet_info(seq, now);
            seq += 1;
            for (forwarder, session) in &mut egress {
                if let Decision::Forward(forwarded) = forwarder.decide(&info) {
                    plain[2..4].copy_from_slice(&(forwarded.munged.seq as u16).to_be_bytes());
                    session.seal(&plain, &mut out);
                    let _ = socket.send_to(&out, destination);
                }
            }
        });
}
