//! One m-line's stream in our own egress: the SSRC it is sent with, the header
//! extensions its subscriber negotiated, and how each forwarded packet is written.

use sfu_core::rtp_out::{ExtensionIds, ExtensionValues, Header, write_header};
use sfu_core::vp8_descriptor::write_fields;
use sfu_core::vp8_munger::Vp8Fields;
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
}

/// What one m-line sends with.
#[derive(Debug)]
pub struct OutStream {
    ssrc: u32,
    mid: Mid,
    ids: ExtensionIds,
}

impl OutStream {
    /// The stream of m-line `mid` sent as `ssrc`, with the extensions of `extmap` (the
    /// subscriber's side of the m-line).
    pub fn new(ssrc: u32, mid: Mid, extmap: &ExtensionMap) -> Self {
        let id = |ext: Extension| extmap.id_of(ext).and_then(ExtensionIds::one_byte);
        Self {
            ssrc,
            mid,
            ids: ExtensionIds {
                mid: id(Extension::RtpMid),
                transport_seq: id(Extension::TransportSequenceNumber),
                abs_send_time: id(Extension::AbsoluteSendTime),
                audio_level: id(Extension::AudioLevel),
                video_orientation: id(Extension::VideoOrientation),
            },
        }
    }

    /// The same stream sent as `ssrc`.
    pub fn with_ssrc(self, ssrc: u32) -> Self {
        Self { ssrc, ..self }
    }

    /// Its SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Write `packet` into `buf` (replacing what was there) as this stream's, with
    /// transport-wide number `transport_seq`, and return its header length. The MID goes
    /// in every packet: the subscriber binds our SSRC to the m-line by it.
    pub fn write(&self, buf: &mut Vec<u8>, packet: &OutPacket<'_>, transport_seq: u16) -> usize {
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

/// The low 16 bits of an extended sequence number: the one on the wire.
pub fn low_16(seq: u64) -> u16 {
    u16::try_from(seq & 0xFFFF).unwrap_or(0)
}

/// The rollover counter of an extended sequence number.
pub fn rollover(seq: u64) -> u32 {
    u32::try_from((seq >> 16) & 0xFFFF_FFFF).unwrap_or(0)
}
