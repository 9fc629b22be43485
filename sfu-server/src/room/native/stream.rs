//! One m-line's stream in our own egress: the SSRC it is sent with, the header
//! extensions its subscriber negotiated, and how each forwarded packet is written.

use std::time::Instant;

use sfu_core::retransmission::{SentHistory, SentPacket};
use sfu_core::rtp_out::{ExtensionIds, ExtensionValues, Header, write_header};
use sfu_core::sender_report::{SenderInfo, ntp_time, rtp_time_at};
use sfu_core::vp8_descriptor::write_fields;
use sfu_core::vp8_munger::Vp8Fields;

use super::stream_stats::StreamStats;
use str0m::media::Mid;
use str0m::rtp::{Extension, ExtensionMap};

/// A packet to forward on one m-line, with its numbers already rewritten.
#[derive(Debug, Clone, Copy)]
pub struct OutPacket<'a> {
    /// The subscriber's payload type for the packet's codec.
    pub payload_type: u8,
    /// The publisher's marker bit.
    pub marker: bool,
    /// Extended outgoing sequence number (the high bits are the rollover counter).
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub timestamp: u32,
    /// The publisher's payload, as it arrived.
    pub payload: &'a [u8],
    /// The RFC 6464 audio level byte, when the publisher sent one.
    pub audio_level: Option<u8>,
    /// The video orientation byte, when the publisher sent one.
    pub video_orientation: Option<u8>,
    /// Rewritten VP8 descriptor counters, for VP8 packets.
    pub vp8: Option<Vp8Fields>,
    /// The payload's id in its producer's history, when it may be retransmitted.
    pub payload_id: Option<u64>,
}

/// The RTP clock rate of every video codec (RFC 3551, RFC 7741, RFC 6184).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Sequence numbers a video stream can retransmit: about a second of a high layer.
const SENT_HISTORY: usize = 512;

/// What one m-line sends with.
#[derive(Debug)]
pub struct OutStream {
    ssrc: u32,
    /// The SSRC of its retransmissions (RFC 4588).
    rtx_ssrc: u32,
    /// The next extended sequence number of its retransmissions.
    rtx_seq: u64,
    mid: Mid,
    ids: ExtensionIds,
    /// What it sent lately that may be sent again.
    sent: SentHistory,
    /// Its RTP clock, ticks per second.
    clock_rate: u32,
    /// Packets and payload octets sent (wrapping, as RTCP counts them).
    packets: u32,
    octets: u32,
    /// The RTP timestamp and payload type of the newest packet, and when it was sent.
    last: Option<(u32, u8, Instant)>,
    /// When its last sender report went out.
    reported_at: Option<Instant>,
    /// What it sent and what its subscriber reported of it.
    stats: StreamStats,
}

impl OutStream {
    /// The stream of m-line `mid` sent as `ssrc`, with the extensions of `extmap` (the
    /// subscriber's side of the m-line).
    pub fn new(ssrc: u32, mid: Mid, extmap: &ExtensionMap, clock_rate: u32) -> Self {
        let id = |ext: Extension| extmap.id_of(ext).and_then(ExtensionIds::one_byte);
        Self {
            ssrc,
            rtx_ssrc: 0,
            rtx_seq: 0,
            mid,
            sent: SentHistory::new(SENT_HISTORY),
            clock_rate,
            packets: 0,
            octets: 0,
            last: None,
            reported_at: None,
            stats: StreamStats::default(),
            ids: ExtensionIds {
                mid: id(Extension::RtpMid),
                transport_seq: id(Extension::TransportSequenceNumber),
                abs_send_time: id(Extension::AbsoluteSendTime),
                audio_level: id(Extension::AudioLevel),
                video_orientation: id(Extension::VideoOrientation),
            },
        }
    }

    /// Whether it carries video (its RTP clock is video's 90 kHz).
    pub fn is_video(&self) -> bool {
        self.clock_rate == VIDEO_CLOCK_RATE
    }

    /// The same stream sent as `ssrc`, its retransmissions as `rtx_ssrc`.
    pub fn with_ssrcs(self, ssrc: u32, rtx_ssrc: u32) -> Self {
        Self {
            ssrc,
            rtx_ssrc,
            ..self
        }
    }

    /// Its SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Its retransmissions' SSRC.
    pub fn rtx_ssrc(&self) -> u32 {
        self.rtx_ssrc
    }

    /// What it sent and what its subscriber reported of it.
    pub fn stats_mut(&mut self) -> &mut StreamStats {
        &mut self.stats
    }

    /// What it sent lately that may be sent again.
    pub fn sent_mut(&mut self) -> &mut SentHistory {
        &mut self.sent
    }

    /// Write `packet` into `buf` (replacing what was there) as this stream's, with
    /// transport-wide number `transport_seq`, and return its header length. The MID goes
    /// in every packet: the subscriber binds our SSRC to the m-line by it.
    pub fn write(
        &mut self,
        buf: &mut Vec<u8>,
        packet: &OutPacket<'_>,
        transport_seq: u16,
        now: Instant,
    ) -> usize {
        self.packets = self.packets.wrapping_add(1);
        let octets = u32::try_from(packet.payload.len()).unwrap_or(u32::MAX);
        self.octets = self.octets.wrapping_add(octets);
        self.last = Some((packet.timestamp, packet.payload_type, now));
        if let Some(payload_id) = packet.payload_id {
            self.sent.record(SentPacket {
                seq: packet.seq,
                timestamp: packet.timestamp,
                marker: packet.marker,
                payload_type: packet.payload_type,
                payload_id,
                vp8: packet.vp8,
                sent_at: now,
            });
        }
        let header = Header {
            payload_type: packet.payload_type,
            marker: packet.marker,
            seq: low_16(packet.seq),
            timestamp: packet.timestamp,
            ssrc: self.ssrc,
            padding: false,
        };
        let values = ExtensionValues {
            mid: Some(self.mid.as_bytes()),
            transport_seq: Some(transport_seq),
            abs_send_time: None,
            audio_level: packet.audio_level,
            video_orientation: packet.video_orientation,
        };
        let header_len = write_header(buf, &header, &self.ids, &values);
        buf.extend_from_slice(packet.payload);
        if let Some(fields) = packet.vp8 {
            write_fields(&mut buf[header_len..], fields);
        }
        header_len
    }
}

impl OutStream {
    /// Its sender report at `now` (wallclock `since_unix_epoch`), when one is due: it has
    /// sent media and reported last `interval` ago or more.
    pub fn report_due(
        &mut self,
        now: Instant,
        since_unix_epoch: std::time::Duration,
        interval: std::time::Duration,
    ) -> Option<SenderInfo> {
        let (last_ts, _, last_at) = self.last?;
        if self
            .reported_at
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
        {
            return None;
        }
        self.reported_at = Some(now);
        Some(SenderInfo {
            ssrc: self.ssrc,
            ntp: ntp_time(since_unix_epoch),
            rtp_timestamp: rtp_time_at(
                last_ts,
                now.saturating_duration_since(last_at),
                self.clock_rate,
            ),
            packets: self.packets,
            octets: self.octets,
        })
    }

    /// Write the retransmission of `sent` (payload `payload`) into `buf` as an RTX packet
    /// of payload type `rtx_pt`: the original sequence number leads the payload (RFC 4588
    /// §4). Returns its header length and its extended RTX sequence number.
    pub fn write_rtx(
        &mut self,
        buf: &mut Vec<u8>,
        sent: &SentPacket,
        payload: &[u8],
        rtx_pt: u8,
        transport_seq: u16,
    ) -> (usize, u64) {
        let (header_len, rtx_seq) = self.write_rtx_header(
            buf,
            RtxHeader {
                payload_type: rtx_pt,
                marker: sent.marker,
                timestamp: sent.timestamp,
                transport_seq,
                padding: false,
            },
        );
        buf.extend_from_slice(&low_16(sent.seq).to_be_bytes());
        buf.extend_from_slice(payload);
        if let Some(fields) = sent.vp8 {
            write_fields(&mut buf[header_len + 2..], fields);
        }
        (header_len, rtx_seq)
    }

    /// Write the header of the next packet of its RTX stream into `buf`; returns its
    /// length and the packet's extended RTX sequence number.
    fn write_rtx_header(&mut self, buf: &mut Vec<u8>, rtx: RtxHeader) -> (usize, u64) {
        let rtx_seq = self.rtx_seq;
        self.rtx_seq += 1;
        let header = Header {
            payload_type: rtx.payload_type,
            marker: rtx.marker,
            seq: low_16(rtx_seq),
            timestamp: rtx.timestamp,
            ssrc: self.rtx_ssrc,
            padding: rtx.padding,
        };
        let values = ExtensionValues {
            mid: Some(self.mid.as_bytes()),
            transport_seq: Some(rtx.transport_seq),
            ..ExtensionValues::default()
        };
        (write_header(buf, &header, &self.ids, &values), rtx_seq)
    }

    /// The payload type of the media it sent last, if it sent any.
    pub fn last_payload_type(&self) -> Option<u8> {
        self.last.map(|(_, pt, _)| pt)
    }

    /// Write a padding-only packet of `padding` bytes (1 to 255) into `buf` on its RTX
    /// stream (payload type `rtx_pt`, at the newest media timestamp), as probes are sent:
    /// the receiver counts it for bandwidth and drops it. Returns its header length and
    /// extended RTX sequence number.
    pub fn write_padding(
        &mut self,
        buf: &mut Vec<u8>,
        rtx_pt: u8,
        transport_seq: u16,
        padding: u8,
    ) -> (usize, u64) {
        let (header_len, rtx_seq) = self.write_rtx_header(
            buf,
            RtxHeader {
                payload_type: rtx_pt,
                marker: false,
                timestamp: self.last.map_or(0, |(ts, _, _)| ts),
                transport_seq,
                padding: true,
            },
        );
        let padding = padding.max(1);
        buf.resize(header_len + usize::from(padding), 0);
        if let Some(count) = buf.last_mut() {
            *count = padding;
        }
        (header_len, rtx_seq)
    }
}

/// What differs between the packets of an RTX stream.
#[derive(Debug, Clone, Copy)]
struct RtxHeader {
    payload_type: u8,
    marker: bool,
    timestamp: u32,
    transport_seq: u16,
    padding: bool,
}

/// The low 16 bits of an extended sequence number: the one on the wire.
pub fn low_16(seq: u64) -> u16 {
    u16::try_from(seq & 0xFFFF).unwrap_or(0)
}

/// The rollover counter of an extended sequence number.
pub fn rollover(seq: u64) -> u32 {
    u32::try_from((seq >> 16) & 0xFFFF_FFFF).unwrap_or(0)
}
