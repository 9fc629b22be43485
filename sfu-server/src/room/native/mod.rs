//! Our own egress for forwarded media (`egress = "native"`): each subscriber's
//! forwarded RTP is written, SRTP-protected in place and sent by us instead of by str0m's
//! send streams; str0m keeps ICE, DTLS, SCTP and everything the subscriber sends.
//!
//! - [`keys`]: the SRTP keys, tapped from str0m's DTLS handshake.
//! - [`stream`]: one m-line's SSRC and header extensions, and writing a packet.
//! - [`feedback`]: the subscriber's SRTCP about our streams, opened and read.
//! - [`stream_stats`]: each stream's counts and receiver reports, as str0m's statistics.
//!
//! Every packet carries our transport-wide sequence number; the subscriber's TWCC
//! feedback drives its downlink estimate ([`sfu_core::congestion`]), whose probes go
//! out as padding on a video stream's RTX SSRC.
//!
//! Every m-line gets an SSRC of ours that str0m does not use, so our SRTP and SRTCP
//! never share a nonce with str0m's; the SDP we send carries no `a=ssrc` lines, and
//! receivers bind our SSRCs to m-lines by the MID each packet carries.

pub mod feedback;
pub mod keys;
pub mod stream;
pub mod stream_stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu_core::congestion::Congestion;
use sfu_core::retransmission::{NotResent, PayloadHistory};
use sfu_core::sender_report::write_sender_report;
use sfu_core::srtp::{MasterKey, SrtpError, SrtpReceiver, SrtpSender};
use sfu_core::twcc::{self, Arrival};
use str0m::Rtc;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Transmit};
use str0m::rtp::rtcp::Rtcp;
use str0m::stats::MediaEgressStats;
use tracing::warn;

use crate::egress::Egress;
use crate::stats::Stats;
use keys::{KeyingSlot, SrtpKeying};
use stream::{OutPacket, OutStream, rollover};

/// Why a packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// DTLS has not given the keys yet, or ICE no path.
    NotReady,
    /// The m-line has no media section (it went away).
    NoMline,
    /// Protection failed.
    Protection,
}

/// Where a subscriber's downlink estimate starts before feedback refines it, bits per
/// second (as with str0m's egress).
pub(crate) const INITIAL_ESTIMATE_BPS: u64 = 1_000_000;
/// Padding bytes of one probe packet (the most one RTP packet's padding count can say).
const PROBE_PADDING: u8 = 255;
/// A probe packet's size on the wire, about: padding, header with MID and transport
/// number, SRTP tag.
const PROBE_PACKET_BYTES: usize = 300;

/// One subscriber's side of our egress.
pub struct NativeEgress {
    keying: KeyingSlot,
    keys: Option<Keys>,
    /// Where str0m sends this connection's DTLS and RTCP: the nominated pair.
    path: Option<Path>,
    streams: HashMap<Mid, OutStream>,
    /// The packet being written (reused: no allocation once grown).
    buf: Vec<u8>,
    /// The downlink estimate, and the transport-wide numbers it counts packets by.
    congestion: Congestion,
    /// The arrivals of the TWCC report being read (reused).
    arrivals: Vec<Arrival>,
    /// The subscriber's SRTCP packet being opened, or ours being written (reused).
    rtcp_buf: Vec<u8>,
    /// The index of the next SRTCP packet we send.
    srtcp_index: u32,
    /// The CNAME of our streams on this connection.
    cname: String,
    /// The estimator's restarts counted so far.
    restarts_told: u64,
}

/// How often each stream sends a sender report (RFC 3550 allows about 5 s; browsers
/// sync audio and video sooner with reports every second).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a subscriber's RTCP asked of the streams we send it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Keyframe requests (PLI, FIR), by the m-line they are about.
    pub keyframe_requests: Vec<(Mid, KeyframeRequestKind)>,
    /// Sequence numbers NACKed (RFC 4585 generic NACK), by m-line.
    pub nacks: Vec<(Mid, u16)>,
    /// TWCC reports read.
    pub twcc_reports: u64,
}

/// The shortest time between two sends of one packet: a NACK sent before the
/// retransmission arrived asks again for what is on its way.
const MIN_RESEND_INTERVAL: Duration = Duration::from_millis(30);

/// The session keys of both directions.
struct Keys {
    send: SrtpSender,
    receive: SrtpReceiver,
}

/// A nominated candidate pair: how packets to the subscriber go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Path {
    proto: Protocol,
    source: SocketAddr,
    destination: SocketAddr,
}

/// Room a packet needs beyond its RTP bytes: the longest tag of any profile.
const TAG_ROOM: usize = 16;

impl NativeEgress {
    /// The egress of a connection whose keys will appear in `keying`, made at `now`.
    pub fn new(keying: KeyingSlot, now: Instant) -> Self {
        Self {
            keying,
            keys: None,
            path: None,
            streams: HashMap::new(),
            buf: Vec::with_capacity(1500),
            congestion: Congestion::new(INITIAL_ESTIMATE_BPS, now),
            arrivals: Vec::new(),
            rtcp_buf: Vec::with_capacity(1500),
            srtcp_index: 0,
            cname: format!("sfu-{:08x}", random_u32()),
            restarts_told: 0,
        }
    }

    /// Learn the nominated pair from what str0m sends at `now`: everything but STUN goes
    /// to it (RFC 7983: a first byte of 0 to 3 is STUN). A new pair is a new path: its
    /// estimate starts again.
    pub fn observe(&mut self, transmit: &Transmit, now: Instant) {
        if transmit.contents.first().is_some_and(|b| *b > 3) {
            let path = Path {
                proto: transmit.proto,
                source: transmit.source,
                destination: transmit.destination,
            };
            if self.path.replace(path).is_some_and(|old| old != path) {
                self.congestion.restart(now);
            }
        }
    }

    /// How many times its estimate started again (a new path, or feedback back after a
    /// silence) since last asked.
    pub fn take_estimate_restarts(&mut self) -> u64 {
        let restarts = self.congestion.restarts();
        restarts - std::mem::replace(&mut self.restarts_told, restarts)
    }

    /// The keys, derived on first use after the handshake gave them.
    fn keys(&mut self) -> Option<&mut Keys> {
        if self.keys.is_none() {
            let keying = self.keying.get()?;
            match derive(keying) {
                Ok(keys) => self.keys = Some(keys),
                Err(e) => {
                    warn!(error = %e, "SRTP keys of the DTLS handshake unusable");
                    return None;
                }
            }
        }
        self.keys.as_mut()
    }

    /// Forward `packet` on m-line `mid` of `rtc`: write it, protect it, hand it to `media`.
    pub fn send(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        packet: &OutPacket<'_>,
        media: &mut dyn Egress,
        stats: &Stats,
        now: Instant,
    ) -> Result<(), NotSent> {
        let path = self.path.ok_or(NotSent::NotReady)?;
        if self.keys().is_none() {
            return Err(NotSent::NotReady);
        }
        if !self.streams.contains_key(&mid) {
            let stream = self.new_stream(rtc, mid).ok_or(NotSent::NoMline)?;
            self.streams.insert(mid, stream);
        }
        let stream = self.streams.get_mut(&mid).ok_or(NotSent::NoMline)?;
        if stream.is_video() {
            // Probes can ride its RTX stream from now on.
            self.congestion.start(now);
        }
        self.buf.reserve(packet.payload.len() + 64 + TAG_ROOM);
        let header_len = stream.write(&mut self.buf, packet, self.congestion.next_seq(), now);
        let keys = self.keys.as_ref().ok_or(NotSent::NotReady)?;
        keys.send
            .protect_rtp(&mut self.buf, header_len, rollover(packet.seq))
            .map_err(|_| NotSent::Protection)?;
        self.congestion.on_sent(self.buf.len(), None, now);
        stream.stats_mut().sent(self.buf.len());
        media.transmit(path.proto, path.source, path.destination, &self.buf, stats);
        Ok(())
    }

    /// A stream for m-line `mid`: an SSRC neither str0m nor another of our streams uses,
    /// and the subscriber's extension ids.
    fn new_stream(&self, rtc: &mut Rtc, mid: Mid) -> Option<OutStream> {
        let media = rtc.media(mid)?;
        let clock_rate = match media.kind() {
            str0m::media::MediaKind::Audio => 48_000,
            str0m::media::MediaKind::Video => stream::VIDEO_CLOCK_RATE,
        };
        let stream = OutStream::new(0, mid, media.remote_extmap(), clock_rate);
        let mut api = rtc.direct_api();
        let mut taken = |ssrc: u32| {
            ssrc == 0
                || api.stream_tx(&ssrc.into()).is_some()
                || self
                    .streams
                    .values()
                    .any(|s| s.ssrc() == ssrc || s.rtx_ssrc() == ssrc)
        };
        let ssrc = std::iter::repeat_with(random_u32).find(|s| !taken(*s))?;
        let rtx_ssrc = std::iter::repeat_with(random_u32).find(|s| *s != ssrc && !taken(*s))?;
        Some(stream.with_ssrcs(ssrc, rtx_ssrc))
    }

    /// Send again, as RTX, the packet m-line `mid` sent as `seq`, its payload taken from
    /// `payloads` (its producer's). `Ok(false)` when there is nothing to send: unknown,
    /// too old, just resent, or no RTX negotiated.
    #[allow(clippy::too_many_arguments)]
    pub fn resend(
        &mut self,
        rtc: &Rtc,
        mid: Mid,
        seq: u16,
        payloads: &PayloadHistory,
        media: &mut dyn Egress,
        stats: &Stats,
        now: Instant,
    ) -> Result<bool, NotSent> {
        let path = self.path.ok_or(NotSent::NotReady)?;
        let Some(stream) = self.streams.get_mut(&mid) else {
            return Ok(false);
        };
        let sent = match stream.sent_mut().resend(seq, now, MIN_RESEND_INTERVAL) {
            Ok(sent) => sent,
            Err(NotResent::Unknown | NotResent::TooSoon) => return Ok(false),
        };
        let Some(payload) = payloads.get(sent.payload_id) else {
            return Ok(false);
        };
        let rtx_pt = rtc
            .codec_config()
            .iter()
            .find(|p| *p.pt() == sent.payload_type)
            .and_then(|p| p.resend());
        let Some(rtx_pt) = rtx_pt else {
            return Ok(false);
        };
        let transport_seq = self.congestion.next_seq();
        self.buf.reserve(payload.len() + 66 + TAG_ROOM);
        let (header_len, rtx_seq) =
            stream.write_rtx(&mut self.buf, &sent, payload, *rtx_pt, transport_seq);
        let keys = self.keys.as_ref().ok_or(NotSent::NotReady)?;
        keys.send
            .protect_rtp(&mut self.buf, header_len, rollover(rtx_seq))
            .map_err(|_| NotSent::Protection)?;
        self.congestion.on_sent(self.buf.len(), None, now);
        stream.stats_mut().sent(self.buf.len());
        media.transmit(path.proto, path.source, path.destination, &self.buf, stats);
        Ok(true)
    }

    /// Send the sender reports (with SDES CNAME) that are due at `now`, wallclock
    /// `since_unix_epoch`: one SRTCP compound packet per stream that sent media.
    pub fn send_reports(
        &mut self,
        now: Instant,
        since_unix_epoch: Duration,
        media: &mut dyn Egress,
        stats: &Stats,
    ) -> u64 {
        let (Some(path), Some(keys)) = (self.path, self.keys.as_ref()) else {
            return 0;
        };
        let mut sent = 0;
        for stream in self.streams.values_mut() {
            let Some(info) = stream.report_due(now, since_unix_epoch, REPORT_INTERVAL) else {
                continue;
            };
            write_sender_report(&mut self.rtcp_buf, &info, self.cname.as_bytes());
            self.rtcp_buf.reserve(TAG_ROOM + 4);
            let index = self.srtcp_index;
            self.srtcp_index = (index + 1) & 0x7FFF_FFFF;
            if keys.send.protect_rtcp(&mut self.rtcp_buf, index).is_ok() {
                stream.stats_mut().sender_report_sent(info.ntp, now);
                media.transmit(
                    path.proto,
                    path.source,
                    path.destination,
                    &self.rtcp_buf,
                    stats,
                );
                sent += 1;
            }
        }
        sent
    }

    /// Open an SRTCP packet from the subscriber (authenticated, decrypted, refused when
    /// replayed) and read what it asks of our streams. Before the keys are known, nothing.
    pub fn on_rtcp(&mut self, sealed: &[u8], now: Instant) -> Result<Feedback, SrtpError> {
        let mut asked = Feedback::default();
        if self.keys().is_none() {
            return Ok(asked);
        }
        let Some(keys) = self.keys.as_mut() else {
            return Ok(asked);
        };
        self.rtcp_buf.clear();
        self.rtcp_buf.extend_from_slice(sealed);
        keys.receive.unprotect_rtcp(&mut self.rtcp_buf)?;
        for raw in feedback::packets(&self.rtcp_buf) {
            if twcc::is_twcc(raw) {
                if let Ok(header) = twcc::parse(raw, &mut self.arrivals) {
                    self.congestion.on_feedback(&header, &self.arrivals, now);
                    asked.twcc_reports += 1;
                }
                continue;
            }
            let Ok(packet) = Rtcp::try_from(raw) else {
                continue;
            };
            for block in feedback::report_blocks(&packet) {
                if let Some((_, stream)) = stream_of(&mut self.streams, *block.ssrc) {
                    stream.stats_mut().on_report(block, now);
                }
            }
            for (ssrc, kind) in feedback::keyframe_requests(&packet) {
                if let Some((mid, stream)) = stream_of(&mut self.streams, ssrc) {
                    let pli = u64::from(kind == KeyframeRequestKind::Pli);
                    stream.stats_mut().feedback(0, pli, 1 - pli);
                    asked.keyframe_requests.push((mid, kind));
                }
            }
            if let Some((ssrc, seqs)) = feedback::nacked(&packet)
                && let Some((mid, stream)) = stream_of(&mut self.streams, ssrc)
            {
                stream.stats_mut().feedback(1, 0, 0);
                asked.nacks.extend(seqs.map(|seq| (mid, seq)));
            }
        }
        Ok(asked)
    }

    /// Each stream's statistics that are due at `now` (one per stream and second).
    pub fn stats_due(&mut self, now: Instant) -> Vec<MediaEgressStats> {
        self.streams
            .iter_mut()
            .filter_map(|(mid, stream)| stream.stats_mut().due(*mid, now))
            .collect()
    }
}

impl NativeEgress {
    /// When its estimator next wants [`on_timeout`](Self::on_timeout).
    pub fn timeout_at(&self) -> Instant {
        self.congestion.next_timeout()
    }

    /// The subscriber's consumers would take `bps` if the downlink allowed.
    pub fn want(&mut self, bps: u64, now: Instant) {
        self.congestion.want(bps, now);
    }

    /// The downlink estimate, bits per second, when it changed since last asked.
    pub fn poll_estimate(&mut self) -> Option<u64> {
        self.congestion.poll_estimate()
    }

    /// Whether its estimator stopped working (it panicked; the estimate stays).
    pub fn estimator_broken(&self) -> bool {
        self.congestion.is_broken()
    }

    /// The estimator's periodic work at `now`, and the probe packets due: padding on the
    /// RTX stream of a video m-line that sent media. Returns how many probe packets left.
    pub fn on_timeout(
        &mut self,
        rtc: &Rtc,
        media: &mut dyn Egress,
        stats: &Stats,
        now: Instant,
    ) -> u64 {
        self.congestion.on_timeout(now);
        let mut sent = 0;
        while let Some(tag) = self.congestion.probe_due(PROBE_PACKET_BYTES, now) {
            let (Some(path), Some(keys)) = (self.path, self.keys.as_ref()) else {
                break;
            };
            let Some((stream, rtx_pt)) = self.streams.values_mut().find_map(|stream| {
                let pt = stream.last_payload_type()?;
                let rtx = rtc
                    .codec_config()
                    .iter()
                    .find(|p| *p.pt() == pt && p.spec().codec.is_video())
                    .and_then(|p| p.resend())?;
                Some((stream, *rtx))
            }) else {
                break;
            };
            let transport_seq = self.congestion.next_seq();
            self.buf.reserve(usize::from(PROBE_PADDING) + 64 + TAG_ROOM);
            let (header_len, rtx_seq) =
                stream.write_padding(&mut self.buf, rtx_pt, transport_seq, PROBE_PADDING);
            if keys
                .send
                .protect_rtp(&mut self.buf, header_len, rollover(rtx_seq))
                .is_err()
            {
                break;
            }
            self.congestion.on_sent(self.buf.len(), Some(tag), now);
            media.transmit(path.proto, path.source, path.destination, &self.buf, stats);
            sent += 1;
        }
        sent
    }
}

/// The m-line of `streams` we send as `ssrc`, and its stream.
fn stream_of(streams: &mut HashMap<Mid, OutStream>, ssrc: u32) -> Option<(Mid, &mut OutStream)> {
    streams
        .iter_mut()
        .find_map(|(mid, s)| (s.ssrc() == ssrc).then_some((*mid, s)))
}

/// Both directions' session keys from what the handshake gave.
fn derive(keying: &SrtpKeying) -> Result<Keys, SrtpError> {
    let (ours, theirs) = MasterKey::split(keying.profile, &keying.material, keying.we_are_client)?;
    Ok(Keys {
        send: SrtpSender::new(keying.profile, &ours)?,
        receive: SrtpReceiver::new(keying.profile, &theirs)?,
    })
}

/// A random SSRC candidate.
fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // The system RNG does not fail on Linux; a zero SSRC is refused as taken.
    let _filled = aws_lc_rs::rand::fill(&mut bytes);
    u32::from_be_bytes(bytes)
}
