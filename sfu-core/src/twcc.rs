//! Reading transport-wide congestion control feedback (TWCC, draft-holmer-rmcat-
//! transport-wide-cc-extensions-01 §3.1): which of the packets we numbered a receiver got,
//! and when, in its clock.

use thiserror::Error;

/// RTCP payload type of transport-layer feedback.
pub const RTPFB: u8 = 205;
/// Feedback message type of TWCC within [`RTPFB`].
pub const TWCC_FMT: u8 = 15;
/// The most statuses one report may carry before it is refused (a browser reports a few
/// hundred at most; the bound keeps a hostile count from growing buffers).
pub const MAX_STATUSES: usize = 8192;

/// Bytes before the first chunk: RTCP header, two SSRCs, base, count, reference, counter.
const FIXED_LEN: usize = 20;
/// Receive deltas and reference time are multiples of these, microseconds.
const DELTA_UNIT_US: i64 = 250;
const REFERENCE_UNIT_US: i64 = 64_000;

/// Why a packet is not TWCC feedback we can read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TwccError {
    /// It is another RTCP packet.
    #[error("not a TWCC feedback packet")]
    NotTwcc,
    /// Its chunks or deltas end before its statuses do.
    #[error("TWCC feedback truncated")]
    Truncated,
    /// It reports more packets than [`MAX_STATUSES`].
    #[error("TWCC feedback reports too many packets")]
    TooMany,
}

/// The fixed part of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccHeader {
    /// The transport-wide sequence number of the first packet reported.
    pub base_seq: u16,
    /// The 24-bit reference time (units of 64 ms, wrapping) the deltas start from.
    pub reference_time: u32,
    /// The receiver's counter of its feedback packets.
    pub feedback_count: u8,
}

/// What one report says of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The packet's transport-wide sequence number.
    pub seq: u16,
    /// When it arrived, microseconds after the report's reference time; `None`: not received.
    pub at_us: Option<i64>,
}

/// Whether an RTCP packet (one of a compound) is TWCC feedback.
pub fn is_twcc(packet: &[u8]) -> bool {
    packet.len() >= 2 && packet[1] == RTPFB && packet[0] & 0x1F == TWCC_FMT
}

/// Read one TWCC feedback packet (without padding) into `arrivals` (cleared first), in
/// sequence order.
pub fn parse(packet: &[u8], arrivals: &mut Vec<Arrival>) -> Result<TwccHeader, TwccError> {
    arrivals.clear();
    if !is_twcc(packet) {
        return Err(TwccError::NotTwcc);
    }
    if packet.len() < FIXED_LEN {
        return Err(TwccError::Truncated);
    }
    let base_seq = u16::from_be_bytes([packet[12], packet[13]]);
    let count = usize::from(u16::from_be_bytes([packet[14], packet[15]]));
    if count > MAX_STATUSES {
        return Err(TwccError::TooMany);
    }
    let header = TwccHeader {
        base_seq,
        reference_time: u32::from_be_bytes([0, packet[16], packet[17], packet[18]]),
        feedback_count: packet[19],
    };
    let mut at = FIXED_LEN;
    let mut seq = base_seq;
    while arrivals.len() < count {
        let chunk = packet.get(at..at + 2).ok_or(TwccError::Truncated)?;
        at += 2;
        let chunk = u16::from_be_bytes([chunk[0], chunk[1]]);
        for symbol in Chunk(chunk).symbols().take(count - arrivals.len()) {
            arrivals.push(Arrival {
                seq,
                // Placeholder for the status until the deltas are read below.
                at_us: (symbol != 0).then_some(i64::from(symbol)),
            });
            seq = seq.wrapping_add(1);
        }
    }
    let mut since_reference = 0i64;
    for arrival in arrivals.iter_mut() {
        let Some(symbol) = arrival.at_us else {
            continue;
        };
        let delta = match symbol {
            1 => {
                let byte = *packet.get(at).ok_or(TwccError::Truncated)?;
                at += 1;
                i64::from(byte)
            }
            2 => {
                let bytes = packet.get(at..at + 2).ok_or(TwccError::Truncated)?;
                at += 2;
                i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))
            }
            // Reserved symbol: nothing to read; the packet counts as not received.
            _ => {
                arrival.at_us = None;
                continue;
            }
        };
        since_reference += delta * DELTA_UNIT_US;
        arrival.at_us = Some(since_reference);
    }
    Ok(header)
}

/// A report's reference time, microseconds, from its 24-bit field extended past the
/// wrap by the `previous` extended value (a receiver's clock only moves forward by less
/// than half the range between reports).
pub fn extend_reference(previous: Option<i64>, reference_time: u32) -> i64 {
    const RANGE: i64 = 1 << 24;
    let raw = i64::from(reference_time & 0xFF_FFFF);
    let Some(previous) = previous else {
        return raw * REFERENCE_UNIT_US;
    };
    let previous_units = previous.div_euclid(REFERENCE_UNIT_US);
    let mut diff = (raw - previous_units).rem_euclid(RANGE);
    if diff >= RANGE / 2 {
        diff -= RANGE;
    }
    (previous_units + diff) * REFERENCE_UNIT_US
}

/// One 16-bit packet status chunk.
struct Chunk(u16);

impl Chunk {
    /// Its status symbols, in order: 0 not received, 1 small delta, 2 large or negative
    /// delta, 3 reserved.
    fn symbols(&self) -> impl Iterator<Item = u8> {
        let chunk = self.0;
        let (len, width) = if chunk & 0x8000 == 0 {
            // Run length: one symbol, repeated.
            (usize::from(chunk & 0x1FFF), 0)
        } else if chunk & 0x4000 == 0 {
            (14, 1)
        } else {
            (7, 2)
        };
        (0..len).map(move |i| match width {
            0 => ((chunk >> 13) & 0b11) as u8,
            1 => ((chunk >> (13 - i)) & 1) as u8,
            _ => ((chunk >> (12 - 2 * i)) & 0b11) as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report about packets from `base` (`count` of them), reference `reference`,
    /// with `chunks` and `deltas` as written.
    fn report(base: u16, count: u16, reference: u32, chunks: &[u16], deltas: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80 | TWCC_FMT, RTPFB, 0, 0];
        p.extend(1u32.to_be_bytes());
        p.extend(2u32.to_be_bytes());
        p.extend(base.to_be_bytes());
        p.extend(count.to_be_bytes());
        p.extend(&reference.to_be_bytes()[1..]);
        p.push(7);
        for c in chunks {
            p.extend(c.to_be_bytes());
        }
        p.extend(deltas);
        p
    }

    fn read(p: &[u8]) -> Result<(TwccHeader, Vec<Arrival>), TwccError> {
        let mut arrivals = Vec::new();
        parse(p, &mut arrivals).map(|h| (h, arrivals))
    }

    fn at(seq: u16, us: Option<i64>) -> Arrival {
        Arrival { seq, at_us: us }
    }

    #[test]
    fn reads_run_length_and_both_vector_chunks() {
        // Requirement: each chunk kind gives its statuses in order; small deltas are one
        // unsigned byte, large ones two signed bytes, both in 250 µs, cumulative.
        let table: [(&str, Vec<u8>, Vec<Arrival>); 4] = [
            (
                "run of three received, small deltas",
                report(10, 3, 5, &[0b0010_0000_0000_0011], &[4, 0, 8]),
                vec![at(10, Some(1000)), at(11, Some(1000)), at(12, Some(3000))],
            ),
            (
                "run of two lost",
                report(65_535, 2, 5, &[0b0000_0000_0000_0010], &[]),
                vec![at(65_535, None), at(0, None)],
            ),
            (
                "one-bit vector: received, lost, received (count cuts the 14)",
                report(1, 3, 0, &[0b1010_1000_0000_0000], &[1, 2]),
                vec![at(1, Some(250)), at(2, None), at(3, Some(750))],
            ),
            (
                "two-bit vector: large negative, small, lost",
                report(100, 3, 0, &[0b1110_0100_0000_0000], &[0xFF, 0xFC, 0x08]),
                vec![at(100, Some(-1000)), at(101, Some(1000)), at(102, None)],
            ),
        ];
        for (name, packet, want) in table {
            let (_, got) = read(&packet).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
        let (header, _) = read(&report(9, 1, 0xABCDEF, &[0x2001], &[1])).expect("parses");
        assert_eq!(
            header,
            TwccHeader {
                base_seq: 9,
                reference_time: 0xABCDEF,
                feedback_count: 7
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        // Requirement: other packets, missing chunks or deltas and absurd counts are errors,
        // never reads past the packet.
        assert_eq!(read(&[0x81, 205, 0, 2]), Err(TwccError::NotTwcc));
        let mut pli = report(0, 1, 0, &[0x2001], &[1]);
        pli[1] = 206;
        assert_eq!(read(&pli), Err(TwccError::NotTwcc));
        assert_eq!(read(&report(0, 1, 0, &[], &[])), Err(TwccError::Truncated));
        assert_eq!(
            read(&report(0, 2, 0, &[0x2002], &[1])),
            Err(TwccError::Truncated)
        );
        assert_eq!(
            read(&report(0, 9000, 0, &[0x3FFF], &[])),
            Err(TwccError::TooMany)
        );
        assert_eq!(
            read(&report(0, 1, 0, &[0x4001], &[1])),
            Err(TwccError::Truncated)
        );
    }

    #[test]
    fn the_reference_time_is_extended_across_its_wrap() {
        // Requirement: the 24-bit reference keeps counting up through the wrap, and a
        // slightly older report stays slightly older.
        let table = [
            (None, 10, 10 * REFERENCE_UNIT_US),
            (Some(10 * REFERENCE_UNIT_US), 12, 12 * REFERENCE_UNIT_US),
            (Some(10 * REFERENCE_UNIT_US), 9, 9 * REFERENCE_UNIT_US),
            (
                Some(0xFF_FFFF * REFERENCE_UNIT_US),
                1,
                (0xFF_FFFF + 2) * REFERENCE_UNIT_US,
            ),
        ];
        for (previous, raw, want) in table {
            assert_eq!(extend_reference(previous, raw), want, "{previous:?} {raw}");
        }
    }
}
