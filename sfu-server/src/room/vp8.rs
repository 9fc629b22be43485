//! Reading and patching the VP8 payload descriptor of forwarded packets.

use sfu_core::codec::Codec;
use sfu_core::vp8_munger::Vp8Fields;
use str0m::rtp::{Vp8Descriptor, Vp8Patch, Vp8PatchError};

/// The parsed descriptor and its counters, for a VP8 packet whose descriptor parses.
pub fn read(codec: Codec, payload: &[u8]) -> Option<(Vp8Descriptor, Vp8Fields)> {
    if codec != Codec::Vp8 {
        return None;
    }
    let descriptor = Vp8Descriptor::parse(payload).ok()?;
    let fields = Vp8Fields {
        picture_id: descriptor.picture_id(),
        tl0_pic_idx: descriptor.tl0_pic_idx(),
    };
    Some((descriptor, fields))
}

/// The patch that writes `out` into a packet with `descriptor`. A 7-bit PictureID
/// gets the low 7 bits of the rewritten one.
pub fn patch(descriptor: &Vp8Descriptor, out: Vp8Fields) -> Option<Vp8Patch> {
    let build = |picture_id: Option<u16>| {
        let mut builder = descriptor.patch();
        if let Some(id) = picture_id {
            builder = builder.picture_id(id);
        }
        if let Some(idx) = out.tl0_pic_idx {
            builder = builder.tl0_pic_idx(idx);
        }
        builder.build()
    };
    match build(out.picture_id) {
        Ok(patch) => Some(patch),
        Err(Vp8PatchError::PictureIdTooLarge) => build(out.picture_id.map(|id| id & 0x7F)).ok(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload starting a partition: descriptor with PictureID (15 or 7 bits),
    /// TL0PICIDX and a TID byte, as Chromium sends with temporal layers.
    fn payload(picture_id: u16, long: bool, tl0: u8) -> Vec<u8> {
        let mut p = vec![0x90, 0xE0];
        if long {
            p.extend_from_slice(&(0x8000 | picture_id).to_be_bytes());
        } else {
            p.push(u8::try_from(picture_id).expect("7-bit id"));
        }
        p.extend_from_slice(&[tl0, 0x20, 0x00, 0x9d, 0x01, 0x2a]);
        p
    }

    #[test]
    fn reads_the_counters_of_vp8_packets_only() {
        // Requirement: the forwarder sees PictureID and TL0PICIDX of VP8 packets, nothing for other codecs or garbage.
        let fields = |picture_id, tl0| Vp8Fields {
            picture_id: Some(picture_id),
            tl0_pic_idx: Some(tl0),
        };
        let table = [
            (
                Codec::Vp8,
                payload(0x1234, true, 7),
                Some(fields(0x1234, 7)),
            ),
            (Codec::Vp8, payload(100, false, 9), Some(fields(100, 9))),
            (Codec::H264, payload(0x1234, true, 7), None),
            (Codec::Vp8, vec![0x90], None),
            (Codec::Vp8, vec![], None),
        ];
        for (codec, bytes, want) in table {
            assert_eq!(
                read(codec, &bytes).map(|(_, f)| f),
                want,
                "{codec:?} {bytes:?}"
            );
        }
    }

    #[test]
    fn patches_keep_the_descriptor_representation() {
        // Requirement: a rewritten PictureID always fits the field the publisher used.
        let out = Vp8Fields {
            picture_id: Some(0x0345),
            tl0_pic_idx: Some(3),
        };
        let (long, _) = read(Codec::Vp8, &payload(0x1234, true, 7)).expect("15-bit descriptor");
        let want_long = long.patch().picture_id(0x0345).tl0_pic_idx(3).build().ok();
        assert_eq!(patch(&long, out), want_long);
        let (short, _) = read(Codec::Vp8, &payload(100, false, 9)).expect("7-bit descriptor");
        let want_short = short.patch().picture_id(0x45).tl0_pic_idx(3).build().ok();
        assert_eq!(patch(&short, out), want_short);
        assert!(want_short.is_some());
    }
}
