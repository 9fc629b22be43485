//! The synthetic payload: what every frame a publisher sends carries so that a
//! subscriber can check it and time it.
//!
//! Video frames start with a VP8 frame tag (and, for keyframes, the VP8 start
//! code and size) so the SFU sees real keyframe structure; then, as for audio:
//!
//! ```text
//! "LT1" | layer u8 | frame seq u32 | sent at µs since the Unix epoch u64 |
//! publisher id length u8 | publisher id | filler (byte i = seq + i, wrapping)
//! ```
//!
//! The filler is a pattern, not random, so the receiver verifies every byte.

use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

const MAGIC: &[u8; 3] = b"LT1";
/// VP8 keyframe: frame tag with P=0 and show_frame, start code, 1280x720.
const VP8_KEYFRAME_HEADER: [u8; 10] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02];
/// VP8 interframe: frame tag with P=1 and show_frame.
const VP8_INTERFRAME_HEADER: [u8; 3] = [0x11, 0x02, 0x00];

/// What a frame says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// Simulcast layer index (0 = q) it was sent on; 0 for audio and single-layer video.
    pub layer: u8,
    /// Frame number within its track (the same number on every layer).
    pub seq: u32,
    /// Send time, microseconds since the Unix epoch (publisher and subscriber share a clock).
    pub sent_at_us: u64,
    /// The publisher's participant id.
    pub publisher: String,
}

/// Why a received frame is not what its publisher sent.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, or no magic where it should be.
    #[error("not a loadtest frame")]
    NotOurs,
    /// The filler differs at some byte.
    #[error("payload corrupted at byte {0}")]
    Corrupted(usize),
}

/// Whether the frame is video (with a VP8 prefix) and a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Opus-sized audio: no prefix.
    Audio,
    /// VP8 keyframe.
    VideoKey,
    /// VP8 interframe.
    VideoDelta,
}

impl FrameKind {
    fn prefix(self) -> &'static [u8] {
        match self {
            FrameKind::Audio => &[],
            FrameKind::VideoKey => &VP8_KEYFRAME_HEADER,
            FrameKind::VideoDelta => &VP8_INTERFRAME_HEADER,
        }
    }
}

/// Build a frame of (at least) `size` bytes.
pub fn encode(kind: FrameKind, header: &FrameHeader, size: usize) -> Vec<u8> {
    let id = header.publisher.as_bytes();
    let id_len = u8::try_from(id.len()).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(size.max(64));
    out.extend_from_slice(kind.prefix());
    out.extend_from_slice(MAGIC);
    out.push(header.layer);
    out.extend_from_slice(&header.seq.to_be_bytes());
    out.extend_from_slice(&header.sent_at_us.to_be_bytes());
    out.push(id_len);
    out.extend_from_slice(&id[..usize::from(id_len)]);
    let filler_start = out.len();
    let seed = header.seq as u8;
    out.extend((0..size.saturating_sub(filler_start)).map(|i| seed.wrapping_add(i as u8)));
    out
}

/// Read and verify a received frame.
pub fn decode(frame: &[u8]) -> Result<FrameHeader, PayloadError> {
    let start = [FrameKind::Audio, FrameKind::VideoKey, FrameKind::VideoDelta]
        .into_iter()
        .map(|k| k.prefix())
        .find(|p| frame.starts_with(p) && frame[p.len()..].starts_with(MAGIC))
        .map(|p| p.len() + MAGIC.len())
        .ok_or(PayloadError::NotOurs)?;
    let rest = &frame[start..];
    let fixed = 1 + 4 + 8 + 1;
    if rest.len() < fixed {
        return Err(PayloadError::NotOurs);
    }
    let layer = rest[0];
    let seq = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
    let mut at = [0u8; 8];
    at.copy_from_slice(&rest[5..13]);
    let sent_at_us = u64::from_be_bytes(at);
    let id_len = usize::from(rest[13]);
    let id = rest
        .get(fixed..fixed + id_len)
        .ok_or(PayloadError::NotOurs)?;
    let publisher = String::from_utf8_lossy(id).into_owned();
    let filler_start = start + fixed + id_len;
    let seed = seq as u8;
    if let Some(bad) = frame[filler_start..]
        .iter()
        .enumerate()
        .position(|(i, b)| *b != seed.wrapping_add(i as u8))
    {
        return Err(PayloadError::Corrupted(filler_start + bad));
    }
    Ok(FrameHeader {
        layer,
        seq,
        sent_at_us,
        publisher,
    })
}

/// Microseconds since the Unix epoch (the clock publishers and subscribers share).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            layer: 2,
            seq: 0x0102_0304,
            sent_at_us: 1_700_000_000_123_456,
            publisher: "PA_12".to_owned(),
        }
    }

    #[test]
    fn frames_round_trip_for_every_kind() {
        // Requirement: a subscriber reads back exactly what the publisher put in, at any size.
        for kind in [FrameKind::Audio, FrameKind::VideoKey, FrameKind::VideoDelta] {
            for size in [0, 10, 31, 1200, 20_000] {
                let frame = encode(kind, &header(), size);
                assert!(frame.len() >= size, "{kind:?} {size}");
                assert_eq!(decode(&frame), Ok(header()), "{kind:?} {size}");
            }
        }
    }

    #[test]
    fn video_frames_carry_vp8_keyframe_structure() {
        // Requirement: the SFU sees keyframes as keyframes (VP8 P bit clear, start code).
        let key = encode(FrameKind::VideoKey, &header(), 100);
        assert_eq!(key[0] & 0x01, 0);
        assert_eq!(&key[3..6], &[0x9d, 0x01, 0x2a]);
        let delta = encode(FrameKind::VideoDelta, &header(), 100);
        assert_eq!(delta[0] & 0x01, 1);
    }

    #[test]
    fn damaged_frames_are_refused() {
        // Requirement: corrupted or foreign payloads are counted as errors, never accepted.
        let mut frame = encode(FrameKind::VideoDelta, &header(), 500);
        frame[400] ^= 0xFF;
        assert_eq!(decode(&frame), Err(PayloadError::Corrupted(400)));
        assert_eq!(decode(b"hello world"), Err(PayloadError::NotOurs));
        assert_eq!(decode(&[]), Err(PayloadError::NotOurs));
        let short = encode(FrameKind::Audio, &header(), 0);
        assert_eq!(decode(&short[..8]), Err(PayloadError::NotOurs));
    }
}
