//! Writing the RTP header of a packet the SFU sends: the fixed header (RFC 3550 §5.1) and
//! the one-byte header extensions (RFC 8285 §4.2) it carries, into a buffer the caller
//! reuses, so writing a packet allocates nothing once the buffer has grown.

use std::time::Duration;

/// RTP version 2, the top bits of the first header byte.
const VERSION: u8 = 0x80;
/// The P bit: the packet ends with padding.
const PADDING: u8 = 0x20;
/// The X bit: a header extension follows the fixed header.
const EXTENSION: u8 = 0x10;
/// The marker bit in the second header byte.
const MARKER: u8 = 0x80;
/// Length of the fixed header (no CSRCs), bytes.
pub const FIXED_HEADER_LEN: usize = 12;
/// The "defined by profile" value of the one-byte extension form.
const ONE_BYTE_PROFILE: [u8; 2] = [0xBE, 0xDE];
/// Highest id the one-byte form can carry.
const MAX_ONE_BYTE_ID: u8 = 14;
/// Longest element the one-byte form can carry, bytes.
const MAX_ONE_BYTE_LEN: usize = 16;

/// The ids a subscriber's m-line negotiated for the extensions we write (`None`: not
/// negotiated, or an id the one-byte form cannot carry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionIds {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid`.
    pub mid: Option<u8>,
    /// Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions).
    pub transport_seq: Option<u8>,
    /// `abs-send-time`.
    pub abs_send_time: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464).
    pub audio_level: Option<u8>,
    /// `urn:3gpp:video-orientation`.
    pub video_orientation: Option<u8>,
}

impl ExtensionIds {
    /// `id` when the one-byte form can carry it.
    pub fn one_byte(id: u8) -> Option<u8> {
        (1..=MAX_ONE_BYTE_ID).contains(&id).then_some(id)
    }
}

/// The extension values of one packet; each is written when present and negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionValues<'a> {
    /// The m-line's MID (1 to 16 bytes).
    pub mid: Option<&'a [u8]>,
    /// Transport-wide sequence number.
    pub transport_seq: Option<u16>,
    /// Send time, 24 bits of 6.18 fixed-point seconds (see [`abs_send_time`]).
    pub abs_send_time: Option<u32>,
    /// The audio level byte (see [`audio_level_byte`]).
    pub audio_level: Option<u8>,
    /// The video orientation byte (C, F, R1, R0 bits).
    pub video_orientation: Option<u8>,
}

/// The fixed header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit (last packet of a video frame, start of an audio talkspurt).
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Sender SSRC.
    pub ssrc: u32,
    /// Whether the packet ends with padding.
    pub padding: bool,
}

/// Write `header` and its extensions into `out` (cleared first) and return the header
/// length, extensions included: the payload goes right after it.
pub fn write_header(
    out: &mut Vec<u8>,
    header: &Header,
    ids: &ExtensionIds,
    values: &ExtensionValues<'_>,
) -> usize {
    out.clear();
    out.extend_from_slice(&[0; FIXED_HEADER_LEN]);
    out[1] = header.payload_type & 0x7F | if header.marker { MARKER } else { 0 };
    out[2..4].copy_from_slice(&header.seq.to_be_bytes());
    out[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    let mut first = VERSION | if header.padding { PADDING } else { 0 };

    out.extend_from_slice(&ONE_BYTE_PROFILE);
    out.extend_from_slice(&[0, 0]);
    let elements_at = out.len();
    let mid = values
        .mid
        .filter(|m| (1..=MAX_ONE_BYTE_LEN).contains(&m.len()));
    push_element(out, ids.mid, mid);
    let seq = values.transport_seq.map(u16::to_be_bytes);
    push_element(out, ids.transport_seq, seq.as_ref().map(|b| &b[..]));
    let send_time = values.abs_send_time.map(u32::to_be_bytes);
    push_element(out, ids.abs_send_time, send_time.as_ref().map(|b| &b[1..]));
    let level = values.audio_level.map(|b| [b]);
    push_element(out, ids.audio_level, level.as_ref().map(|b| &b[..]));
    let orientation = values.video_orientation.map(|b| [b]);
    push_element(
        out,
        ids.video_orientation,
        orientation.as_ref().map(|b| &b[..]),
    );

    if out.len() == elements_at {
        out.truncate(FIXED_HEADER_LEN);
    } else {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        let words = u16::try_from((out.len() - elements_at) / 4).unwrap_or(u16::MAX);
        out[elements_at - 2..elements_at].copy_from_slice(&words.to_be_bytes());
        first |= EXTENSION;
    }
    out[0] = first;
    out.len()
}

/// Append one one-byte element when its id is negotiated and it has a value.
fn push_element(out: &mut Vec<u8>, id: Option<u8>, value: Option<&[u8]>) {
    let (Some(id), Some(value)) = (id.and_then(ExtensionIds::one_byte), value) else {
        return;
    };
    let Some(len_minus_one) = value.len().checked_sub(1).filter(|l| *l < MAX_ONE_BYTE_LEN) else {
        return;
    };
    out.push(id << 4 | u8::try_from(len_minus_one).unwrap_or(0));
    out.extend_from_slice(value);
}

/// The abs-send-time value of a send time given as the time since any fixed epoch: 24
/// bits of seconds in 6.18 fixed point, wrapping every 64 s.
pub fn abs_send_time(since_epoch: Duration) -> u32 {
    let fixed = (since_epoch.as_nanos() << 18) / 1_000_000_000;
    u32::try_from(fixed & 0xFF_FFFF).unwrap_or(0)
}

/// The audio level byte of RFC 6464: the voice activity flag and the level in -dBov
/// (0 loudest, 127 silence).
pub fn audio_level_byte(level_dbov: i8, voice_activity: bool) -> u8 {
    let level = level_dbov.unsigned_abs().min(127);
    if voice_activity { 0x80 | level } else { level }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Header = Header {
        payload_type: 96,
        marker: true,
        seq: 0x1234,
        timestamp: 0xAABB_CCDD,
        ssrc: 0x0102_0304,
        padding: false,
    };

    #[test]
    fn writes_the_fixed_header_alone_without_extensions() {
        // Requirement: no negotiated extension, no X bit and no extension block.
        let mut out = vec![9; 40];
        let values = ExtensionValues {
            mid: Some(b"0"),
            ..ExtensionValues::default()
        };
        let len = write_header(&mut out, &HEADER, &ExtensionIds::default(), &values);
        assert_eq!(len, 12);
        assert_eq!(
            out,
            [
                0x80, 0xE0, 0x12, 0x34, 0xAA, 0xBB, 0xCC, 0xDD, 0x01, 0x02, 0x03, 0x04
            ]
        );
    }

    #[test]
    fn writes_negotiated_extensions_in_the_one_byte_form_padded_to_words() {
        // Requirement: each negotiated extension with a value is one element (id, length-1),
        // the block is padded to 32-bit words and its length counts words (RFC 8285).
        let ids = ExtensionIds {
            mid: Some(4),
            transport_seq: Some(3),
            abs_send_time: Some(2),
            audio_level: Some(1),
            video_orientation: Some(13),
        };
        let table: [(ExtensionValues<'_>, &[u8]); 3] = [
            (
                ExtensionValues {
                    mid: Some(b"12"),
                    transport_seq: Some(0x0506),
                    ..ExtensionValues::default()
                },
                &[0xBE, 0xDE, 0, 2, 0x41, b'1', b'2', 0x31, 0x05, 0x06, 0, 0],
            ),
            (
                ExtensionValues {
                    abs_send_time: Some(0x00AB_CDEF),
                    audio_level: Some(0x9E),
                    video_orientation: Some(3),
                    ..ExtensionValues::default()
                },
                &[
                    0xBE, 0xDE, 0, 2, 0x22, 0xAB, 0xCD, 0xEF, 0x10, 0x9E, 0xD0, 0x03,
                ],
            ),
            (
                ExtensionValues {
                    mid: Some(b"a-mid-too-long-for-one-byte"),
                    ..ExtensionValues::default()
                },
                &[],
            ),
        ];
        for (values, want_block) in table {
            let mut out = Vec::new();
            let len = write_header(&mut out, &HEADER, &ids, &values);
            assert_eq!(len, 12 + want_block.len(), "{values:?}");
            assert_eq!(&out[12..], want_block, "{values:?}");
            let x_bit = out[0] & EXTENSION != 0;
            assert_eq!(x_bit, !want_block.is_empty(), "{values:?}");
        }
    }

    #[test]
    fn leaves_out_ids_the_one_byte_form_cannot_carry() {
        // Requirement: ids 0 and 15 and above are never written as one-byte elements.
        for id in [0, 15, 200] {
            let ids = ExtensionIds {
                transport_seq: Some(id),
                ..ExtensionIds::default()
            };
            let values = ExtensionValues {
                transport_seq: Some(1),
                ..ExtensionValues::default()
            };
            let mut out = Vec::new();
            assert_eq!(
                write_header(&mut out, &HEADER, &ids, &values),
                12,
                "id {id}"
            );
        }
        assert_eq!(ExtensionIds::one_byte(14), Some(14));
        assert_eq!(ExtensionIds::one_byte(15), None);
    }

    #[test]
    fn sets_the_padding_bit_and_masks_the_payload_type() {
        // Requirement: P is written when asked; a payload type never spills into the marker.
        let header = Header {
            padding: true,
            marker: false,
            payload_type: 0xFF,
            ..HEADER
        };
        let mut out = Vec::new();
        write_header(
            &mut out,
            &header,
            &ExtensionIds::default(),
            &ExtensionValues::default(),
        );
        assert_eq!(out[0], 0xA0);
        assert_eq!(out[1], 0x7F);
    }

    #[test]
    fn send_times_are_six_dot_eighteen_fixed_point_wrapping_at_64_seconds() {
        // Requirement: abs-send-time counts 2^18 per second in 24 bits.
        let table = [
            (Duration::ZERO, 0),
            (Duration::from_secs(1), 1 << 18),
            (Duration::from_millis(500), 1 << 17),
            (Duration::from_secs(64), 0),
            (Duration::from_secs(65), 1 << 18),
        ];
        for (since, want) in table {
            assert_eq!(abs_send_time(since), want, "{since:?}");
        }
    }

    #[test]
    fn audio_levels_carry_the_voice_flag_and_the_magnitude() {
        // Requirement: RFC 6464 byte: V in the top bit, -dBov below, capped at 127.
        let table = [
            (-37, true, 0xA5),
            (-37, false, 0x25),
            (0, true, 0x80),
            (-128, false, 127),
        ];
        for (level, voice, want) in table {
            assert_eq!(audio_level_byte(level, voice), want, "{level} {voice}");
        }
    }
}
