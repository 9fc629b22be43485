//! What the SFU reads from video payloads: whether a packet starts a keyframe.
//!
//! Parsing is defensive: any payload too short or malformed for its codec is
//! "not a keyframe start", never a panic.

/// The codecs the SFU forwards and knows how to inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// H.264 video.
    H264,
    /// Anything else: forwarded without inspection.
    Other,
}

impl Codec {
    /// Whether packets of this codec carry video frames (and so need keyframes to start decoding).
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::H264)
    }
}

/// Whether this RTP payload is the first packet of a keyframe.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_keyframe_start(payload),
        Codec::H264 => h264_keyframe_start(payload),
        Codec::Opus | Codec::Other => false,
    }
}

/// VP8 (RFC 7741): the payload descriptor's S bit with partition 0, then a frame
/// header whose P bit (inverse key frame flag) is 0.
fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut offset = 1;
    if extended {
        let Some(&ext) = payload.get(offset) else {
            return false;
        };
        offset += 1;
        if ext & 0x80 != 0 {
            // Picture id: one byte, or two when its M bit is set.
            let Some(&pid) = payload.get(offset) else {
                return false;
            };
            offset += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            offset += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            offset += 1; // TID / KEYIDX
        }
    }
    payload.get(offset).is_some_and(|header| header & 0x01 == 0)
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// H.264 (RFC 6184): an SPS or IDR NAL unit, alone, inside a STAP-A, or as the start of an FU-A.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1F {
        H264_IDR | H264_SPS => true,
        H264_STAP_A => stap_a_has_keyframe(&payload[1..]),
        H264_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1F, H264_IDR | H264_SPS)),
        _ => false,
    }
}

fn stap_a_has_keyframe(mut rest: &[u8]) -> bool {
    while rest.len() >= 3 {
        let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let nal_type = rest[2] & 0x1F;
        if matches!(nal_type, H264_IDR | H264_SPS) {
            return true;
        }
        if size == 0 || rest.len() < 2 + size {
            return false;
        }
        rest = &rest[2 + size..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_recognised_through_every_descriptor_shape() {
        // Requirement: a VP8 keyframe start is found whatever optional descriptor fields precede it.
        let cases: &[(&str, &[u8], bool)] = &[
            ("minimal descriptor, key frame", &[0x10, 0x00], true),
            ("minimal descriptor, delta frame", &[0x10, 0x01], false),
            ("not start of partition", &[0x00, 0x00], false),
            ("start of partition 1", &[0x11, 0x00], false),
            ("7-bit picture id", &[0x90, 0x80, 0x05, 0x00], true),
            ("15-bit picture id", &[0x90, 0x80, 0x85, 0x05, 0x00], true),
            (
                "15-bit picture id, delta",
                &[0x90, 0x80, 0x85, 0x05, 0x01],
                false,
            ),
            (
                "picture id + tl0 + tid",
                &[0x90, 0xE0, 0x85, 0x05, 0x07, 0x40, 0x00],
                true,
            ),
            ("truncated after X", &[0x90], false),
            ("truncated picture id", &[0x90, 0x80], false),
            (
                "descriptor without frame header",
                &[0x90, 0x80, 0x05],
                false,
            ),
            ("empty", &[], false),
        ];
        for (what, payload, expected) in cases {
            assert_eq!(is_keyframe_start(Codec::Vp8, payload), *expected, "{what}");
        }
    }

    #[test]
    fn h264_keyframes_are_recognised_in_single_stap_a_and_fu_a_packets() {
        // Requirement: an H.264 keyframe (SPS or IDR) is found in each packetization mode.
        let cases: &[(&str, &[u8], bool)] = &[
            ("single IDR", &[0x65, 0x88], true),
            ("single SPS", &[0x67, 0x42], true),
            ("single non-IDR slice", &[0x41, 0x9a], false),
            (
                "STAP-A with SPS, PPS",
                &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce],
                true,
            ),
            (
                "STAP-A with only PPS",
                &[0x78, 0x00, 0x02, 0x68, 0xce],
                false,
            ),
            (
                "STAP-A with bad size",
                &[0x78, 0x00, 0x09, 0x68, 0xce],
                false,
            ),
            ("FU-A start of IDR", &[0x7c, 0x85, 0x88], true),
            ("FU-A middle of IDR", &[0x7c, 0x05, 0x88], false),
            ("FU-A start of slice", &[0x7c, 0x81, 0x9a], false),
            ("truncated FU-A", &[0x7c], false),
            ("empty", &[], false),
        ];
        for (what, payload, expected) in cases {
            assert_eq!(is_keyframe_start(Codec::H264, payload), *expected, "{what}");
        }
    }

    #[test]
    fn audio_is_never_a_keyframe() {
        // Requirement: audio packets never wait for or count as keyframes.
        assert!(!is_keyframe_start(Codec::Opus, &[0x10, 0x00]));
        assert!(!Codec::Opus.is_video());
        assert!(Codec::Vp8.is_video() && Codec::H264.is_video());
    }
}
