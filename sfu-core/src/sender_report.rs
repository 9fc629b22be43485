//! The RTCP a sender owes its receivers for each stream: a sender report (RFC 3550 §6.4.1)
//! tying the stream's RTP clock to wallclock time, which receivers need for lip sync and
//! round-trip times, followed by an SDES CNAME chunk (§6.5) in one compound packet.

use std::time::Duration;

/// RTCP packet type of a sender report.
const SR: u8 = 200;
/// RTCP packet type of source descriptions.
const SDES: u8 = 202;
/// SDES item type of the canonical name.
const CNAME: u8 = 1;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// What one sender report says about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Wallclock time, 64-bit NTP format (see [`ntp_time`]).
    pub ntp: u64,
    /// The RTP timestamp of that same instant (see [`rtp_time_at`]).
    pub rtp_timestamp: u32,
    /// Packets sent so far (wrapping).
    pub packets: u32,
    /// Payload octets sent so far (wrapping).
    pub octets: u32,
}

/// Write the compound packet of `info`'s sender report and its SDES CNAME `cname` (at
/// most 255 bytes; longer is cut) into `out`, replacing what was there.
pub fn write_sender_report(out: &mut Vec<u8>, info: &SenderInfo, cname: &[u8]) {
    out.clear();
    out.extend_from_slice(&[0x80, SR, 0, 6]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packets.to_be_bytes());
    out.extend_from_slice(&info.octets.to_be_bytes());

    let cname = &cname[..cname.len().min(255)];
    let sdes_at = out.len();
    out.extend_from_slice(&[0x81, SDES, 0, 0]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.push(CNAME);
    out.push(u8::try_from(cname.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(cname);
    // The item list ends with a null octet, and the chunk with padding to a word.
    out.push(0);
    while !(out.len() - sdes_at).is_multiple_of(4) {
        out.push(0);
    }
    let words = u16::try_from((out.len() - sdes_at) / 4 - 1).unwrap_or(u16::MAX);
    out[sdes_at + 2..sdes_at + 4].copy_from_slice(&words.to_be_bytes());
}

/// The 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point) of a wallclock time
/// given as the time since the Unix epoch.
pub fn ntp_time(since_unix_epoch: Duration) -> u64 {
    let seconds = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let fraction = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// The RTP timestamp `elapsed` after a packet stamped `last`, on a clock of `clock_rate`
/// ticks per second.
pub fn rtp_time_at(last: u32, elapsed: Duration, clock_rate: u32) -> u32 {
    let ticks = elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
    last.wrapping_add(u32::try_from(ticks & 0xFFFF_FFFF).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_sender_report_with_its_cname_padded_to_words() {
        // Requirement: RFC 3550 layout: SR of 28 bytes (length 6), SDES chunk with the CNAME
        // item, a null octet and padding to a 32-bit boundary; lengths count words minus one.
        let info = SenderInfo {
            ssrc: 0x0102_0304,
            ntp: 0x1122_3344_5566_7788,
            rtp_timestamp: 0xAABB_CCDD,
            packets: 7,
            octets: 0x0100,
        };
        let mut out = vec![0xFF; 3];
        write_sender_report(&mut out, &info, b"abc");
        let want: Vec<u8> = [
            &[0x80, 200, 0, 6, 1, 2, 3, 4][..],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            &[0xAA, 0xBB, 0xCC, 0xDD, 0, 0, 0, 7, 0, 0, 1, 0],
            &[0x81, 202, 0, 3, 1, 2, 3, 4, 1, 3, b'a', b'b', b'c', 0, 0, 0],
        ]
        .concat();
        assert_eq!(out, want);
        for (cname, sdes_len) in [(&b""[..], 12), (b"abcd", 16), (b"abcdef", 20)] {
            write_sender_report(&mut out, &info, cname);
            assert_eq!(out.len() - 28, sdes_len, "{cname:?}");
            assert_eq!(usize::from(out[31]) * 4 + 4, sdes_len, "{cname:?}");
            assert_eq!(
                out[28 + 8 + 2 + cname.len()],
                0,
                "null octet after {cname:?}"
            );
        }
    }

    #[test]
    fn wallclock_and_rtp_clock_conversions() {
        // Requirement: NTP counts from 1900 in 32.32; RTP time advances at the clock rate.
        assert_eq!(ntp_time(Duration::ZERO), NTP_UNIX_OFFSET << 32);
        assert_eq!(
            ntp_time(Duration::from_millis(1500)),
            ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31)
        );
        let table = [
            (1000, Duration::from_millis(20), 48_000, 1960),
            (1000, Duration::from_secs(1), 90_000, 91_000),
            (u32::MAX, Duration::from_millis(1), 90_000, 89),
            (5, Duration::ZERO, 90_000, 5),
        ];
        for (last, elapsed, rate, want) in table {
            assert_eq!(rtp_time_at(last, elapsed, rate), want, "{last} {elapsed:?}");
        }
    }
}
