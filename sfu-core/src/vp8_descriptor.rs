//! Writing rewritten [`Vp8Fields`] into a forwarded packet's VP8 payload descriptor
//! (RFC 7741 §4.2) in place, keeping the representation the publisher chose: a 7-bit
//! PictureID stays 7 bits (it gets the low bits of the rewritten one).

use crate::vp8_munger::Vp8Fields;

/// X: the extension byte follows the first descriptor byte.
const X: u8 = 0x80;
/// I: a PictureID is present.
const I: u8 = 0x80;
/// L: a TL0PICIDX is present.
const L: u8 = 0x40;
/// M: the PictureID is 15 bits long.
const M: u8 = 0x80;

/// Write `fields` into the descriptor at the start of `payload`. Fields the descriptor
/// does not carry are left out; `false` when the payload is too short for the
/// descriptor it announces (nothing is written then).
pub fn write_fields(payload: &mut [u8], fields: Vp8Fields) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & X == 0 {
        return true;
    }
    let Some(&ext) = payload.get(1) else {
        return false;
    };
    let mut at = 2;
    let mut picture_id_at = None;
    if ext & I != 0 {
        let Some(&b) = payload.get(at) else {
            return false;
        };
        let long = b & M != 0;
        picture_id_at = Some((at, long));
        at += if long { 2 } else { 1 };
    }
    let tl0_at = (ext & L != 0).then_some(at);
    let end = tl0_at.map_or(at, |t| t + 1);
    if payload.len() < end {
        return false;
    }
    if let (Some((at, long)), Some(id)) = (picture_id_at, fields.picture_id) {
        if long {
            let [hi, lo] = (id & 0x7FFF).to_be_bytes();
            payload[at] = M | hi;
            payload[at + 1] = lo;
        } else {
            payload[at] = u8::try_from(id & 0x7F).unwrap_or(0);
        }
    }
    if let (Some(at), Some(idx)) = (tl0_at, fields.tl0_pic_idx) {
        payload[at] = idx;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: Vp8Fields = Vp8Fields {
        picture_id: Some(0x0345),
        tl0_pic_idx: Some(3),
    };

    #[test]
    fn rewrites_each_descriptor_shape_in_its_own_representation() {
        // Requirement: 15-bit ids stay 15 bits, 7-bit ids get the low 7 bits, TL0PICIDX is
        // written where L says, and the VP8 payload after the descriptor is untouched.
        let table: [(&str, &[u8], &[u8]); 5] = [
            (
                "15-bit PictureID, TL0PICIDX, TID",
                &[0x90, 0xE0, 0x92, 0x34, 7, 0x20, 0x9d],
                &[0x90, 0xE0, 0x83, 0x45, 3, 0x20, 0x9d],
            ),
            (
                "7-bit PictureID, TL0PICIDX",
                &[0x90, 0xC0, 100, 9, 0x9d],
                &[0x90, 0xC0, 0x45, 3, 0x9d],
            ),
            (
                "PictureID only",
                &[0x90, 0x80, 0x80, 0x01, 0x9d],
                &[0x90, 0x80, 0x83, 0x45, 0x9d],
            ),
            (
                "TL0PICIDX only",
                &[0x90, 0x40, 9, 0x9d],
                &[0x90, 0x40, 3, 0x9d],
            ),
            ("no extension byte", &[0x10, 0x9d], &[0x10, 0x9d]),
        ];
        for (shape, before, want) in table {
            let mut payload = before.to_vec();
            assert!(write_fields(&mut payload, OUT), "{shape}");
            assert_eq!(payload, want, "{shape}");
        }
    }

    #[test]
    fn refuses_truncated_descriptors_without_writing() {
        // Requirement: a descriptor announcing more bytes than the packet has is left as it is.
        for before in [&[][..], &[0x90], &[0x90, 0x80], &[0x90, 0xC0, 0x80, 0x01]] {
            let mut payload = before.to_vec();
            assert!(!write_fields(&mut payload, OUT), "{before:?}");
            assert_eq!(payload, before);
        }
    }

    #[test]
    fn leaves_fields_without_a_rewrite_alone() {
        // Requirement: a field the munger has no value for keeps the publisher's.
        let mut payload = vec![0x90, 0xC0, 100, 9];
        assert!(write_fields(&mut payload, Vp8Fields::default()));
        assert_eq!(payload, [0x90, 0xC0, 100, 9]);
    }
}
