//! The VP8 part of munging: one continuous PictureID and TL0PICIDX space per consumer.
//!
//! Each simulcast layer numbers its pictures on its own. A decoder that sees the
//! PictureID jump (or go back) at a layer switch may treat the frames in between
//! as lost and ask for recovery, so, like sequence numbers, the two VP8 payload
//! descriptor counters are re-based at every source switch to continue right
//! after the last value forwarded.

/// The VP8 payload descriptor counters of one packet (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Fields {
    /// PictureID, 15-bit space (a 7-bit PictureID is a value below 128).
    pub picture_id: Option<u16>,
    /// TL0PICIDX: index of the base temporal layer picture.
    pub tl0_pic_idx: Option<u8>,
}

/// Size of the PictureID space: 15 bits.
const PICTURE_ID_SPACE: u32 = 1 << 15;
/// Size of the TL0PICIDX space: 8 bits.
const TL0_PIC_IDX_SPACE: u32 = 1 << 8;

/// An offset mapping of one wrapping counter, remembering the newest value sent.
#[derive(Debug, Clone, Copy)]
struct WrappingMap {
    space: u32,
    offset: u32,
    newest_out: u32,
}

impl WrappingMap {
    /// Start a source whose first value is `first`: it continues after `previous`'s newest
    /// value, or keeps its own numbering when nothing was sent before.
    fn start(space: u32, first: u32, previous: Option<WrappingMap>) -> Self {
        let out = previous.map_or(first, |p| (p.newest_out + 1) % space);
        Self {
            space,
            offset: (out + space - first) % space,
            newest_out: out,
        }
    }

    fn map(&mut self, value: u32) -> u32 {
        let out = (value + self.offset) % self.space;
        let ahead = (out + self.space - self.newest_out) % self.space;
        if ahead != 0 && ahead < self.space / 2 {
            self.newest_out = out;
        }
        out
    }
}

/// Rewrites PictureID and TL0PICIDX of the packets forwarded to one consumer.
#[derive(Debug, Clone, Default)]
pub struct Vp8Munger {
    picture_id: Option<WrappingMap>,
    tl0_pic_idx: Option<WrappingMap>,
}

impl Vp8Munger {
    /// A munger that has forwarded nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new source starts with this packet (normally the first packet of a keyframe):
    /// its counters continue right after the last values forwarded.
    pub fn switch_source(&mut self, first: Vp8Fields) {
        if let Some(id) = first.picture_id {
            self.picture_id = Some(WrappingMap::start(
                PICTURE_ID_SPACE,
                u32::from(id),
                self.picture_id,
            ));
        }
        if let Some(idx) = first.tl0_pic_idx {
            self.tl0_pic_idx = Some(WrappingMap::start(
                TL0_PIC_IDX_SPACE,
                u32::from(idx),
                self.tl0_pic_idx,
            ));
        }
    }

    /// The outgoing counters of a packet of the current source. A field the packet
    /// does not carry stays `None`; a field seen for the first time keeps its value.
    pub fn rewrite(&mut self, fields: Vp8Fields) -> Vp8Fields {
        let picture_id = fields.picture_id.map(|id| {
            let map = self
                .picture_id
                .get_or_insert_with(|| WrappingMap::start(PICTURE_ID_SPACE, u32::from(id), None));
            low_bits_u16(map.map(u32::from(id)))
        });
        let tl0_pic_idx = fields.tl0_pic_idx.map(|idx| {
            let map = self
                .tl0_pic_idx
                .get_or_insert_with(|| WrappingMap::start(TL0_PIC_IDX_SPACE, u32::from(idx), None));
            low_bits_u8(map.map(u32::from(idx)))
        });
        Vp8Fields {
            picture_id,
            tl0_pic_idx,
        }
    }
}

/// A value already reduced below 2^15 as `u16`.
fn low_bits_u16(value: u32) -> u16 {
    u16::try_from(value & 0xFFFF).unwrap_or_default()
}

/// A value already reduced below 2^8 as `u8`.
fn low_bits_u8(value: u32) -> u8 {
    u8::try_from(value & 0xFF).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(picture_id: u16, tl0_pic_idx: u8) -> Vp8Fields {
        Vp8Fields {
            picture_id: Some(picture_id),
            tl0_pic_idx: Some(tl0_pic_idx),
        }
    }

    /// Steps of a consumer's life: `Some(first)` switches source at that packet.
    enum Step {
        Switch(Vp8Fields),
        Packet(Vp8Fields),
    }

    fn run(steps: &[Step]) -> Vec<Vp8Fields> {
        let mut munger = Vp8Munger::new();
        steps
            .iter()
            .map(|step| match step {
                Step::Switch(first) => {
                    munger.switch_source(*first);
                    munger.rewrite(*first)
                }
                Step::Packet(f) => munger.rewrite(*f),
            })
            .collect()
    }

    #[test]
    fn counters_stay_continuous_across_sources() {
        use Step::{Packet, Switch};
        let table: Vec<(&str, Vec<Step>, Vec<Vp8Fields>)> = vec![
            (
                "the first source keeps its own numbering",
                vec![
                    Switch(fields(500, 7)),
                    Packet(fields(500, 7)),
                    Packet(fields(501, 8)),
                ],
                vec![fields(500, 7), fields(500, 7), fields(501, 8)],
            ),
            (
                "a switch continues right after the newest values forwarded",
                vec![
                    Switch(fields(100, 10)),
                    Packet(fields(101, 11)),
                    Switch(fields(9000, 200)),
                    Packet(fields(9000, 200)),
                    Packet(fields(9001, 201)),
                ],
                vec![
                    fields(100, 10),
                    fields(101, 11),
                    fields(102, 12),
                    fields(102, 12),
                    fields(103, 13),
                ],
            ),
            (
                "a late packet of an older picture does not move the base of the next switch",
                vec![
                    Switch(fields(10, 1)),
                    Packet(fields(12, 3)),
                    Packet(fields(11, 2)),
                    Switch(fields(50, 50)),
                ],
                vec![fields(10, 1), fields(12, 3), fields(11, 2), fields(13, 4)],
            ),
            (
                "PictureID wraps at 2^15 and TL0PICIDX at 2^8",
                vec![
                    Switch(fields(32_767, 255)),
                    Packet(fields(0, 0)),
                    Switch(fields(40, 40)),
                ],
                vec![fields(32_767, 255), fields(0, 0), fields(1, 1)],
            ),
            (
                "a switch from the top of the space wraps to zero",
                vec![Switch(fields(32_767, 255)), Switch(fields(5, 5))],
                vec![fields(32_767, 255), fields(0, 0)],
            ),
            (
                "a packet without the fields passes with none",
                vec![Switch(fields(5, 5)), Packet(Vp8Fields::default())],
                vec![fields(5, 5), Vp8Fields::default()],
            ),
        ];
        for (requirement, steps, want) in table {
            assert_eq!(run(&steps), want, "{requirement}");
        }
    }

    #[test]
    fn a_field_first_seen_later_keeps_its_value_then_continues() {
        let mut munger = Vp8Munger::new();
        let no_tl0 = Vp8Fields {
            picture_id: Some(3),
            tl0_pic_idx: None,
        };
        munger.switch_source(no_tl0);
        assert_eq!(munger.rewrite(no_tl0), no_tl0);
        assert_eq!(munger.rewrite(fields(4, 9)), fields(4, 9));
        munger.switch_source(fields(70, 70));
        assert_eq!(munger.rewrite(fields(70, 70)), fields(5, 10));
    }
}
