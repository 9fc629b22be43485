//! Structural checks of a datagram on the media port before any WebRTC stack sees it.
//!
//! RFC 7983 tells STUN, DTLS and SRTP/SRTCP apart by the first byte; each kind then has
//! a header whose lengths must agree with the datagram's. A datagram that fails these
//! checks cannot be valid for any participant, so it is dropped and counted here,
//! whoever sent it. (Well-formed SRTP that fails authentication is the WebRTC stack's
//! to drop.)

use thiserror::Error;

/// The kind of a well-formed datagram, by RFC 7983 demultiplexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// A STUN message (ICE connectivity checks).
    Stun,
    /// One or more DTLS records.
    Dtls,
    /// An SRTP packet.
    Rtp,
    /// An SRTCP compound packet.
    Rtcp,
}

/// Why a datagram was dropped as malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    /// The first byte belongs to no protocol spoken on the media port.
    #[error("first byte {0} belongs to no protocol of the media port")]
    UnknownProtocol(u8),
    /// Empty datagram.
    #[error("empty datagram")]
    Empty,
    /// STUN shorter than its header, without the magic cookie, or with a wrong length.
    #[error("malformed STUN header")]
    Stun,
    /// A DTLS record header that is cut short, of an unknown type or version, or longer
    /// than the datagram.
    #[error("malformed DTLS record")]
    Dtls,
    /// An RTP header (with its CSRCs and extension) and a tag that do not fit.
    #[error("malformed RTP header")]
    Rtp,
    /// An SRTCP packet too short for its first header's length, index and tag.
    #[error("malformed RTCP header")]
    Rtcp,
}

const STUN_HEADER: usize = 20;
const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const DTLS_RECORD_HEADER: usize = 13;
const RTP_HEADER: usize = 12;
/// The shortest SRTP/SRTCP authentication tag of any profile (AES_CM_128_HMAC_SHA1_32).
const MIN_AUTH_TAG: usize = 4;
/// SRTCP's E flag and index, after the compound packet.
const SRTCP_INDEX: usize = 4;

/// Check a datagram's structure and say what it is.
pub fn classify(datagram: &[u8]) -> Result<DatagramKind, Malformed> {
    let first = *datagram.first().ok_or(Malformed::Empty)?;
    match first {
        0..=3 => check_stun(datagram).map(|()| DatagramKind::Stun),
        20..=63 => check_dtls(datagram).map(|()| DatagramKind::Dtls),
        128..=191 => {
            let payload_type = datagram.get(1).ok_or(Malformed::Rtp)? & 0x7F;
            // RFC 5761: RTCP packet types 200..=206 and the rest of 192..=223 are RTCP
            // once the marker bit is folded into the type.
            if (64..=95).contains(&payload_type) {
                check_rtcp(datagram).map(|()| DatagramKind::Rtcp)
            } else {
                check_rtp(datagram).map(|()| DatagramKind::Rtp)
            }
        }
        other => Err(Malformed::UnknownProtocol(other)),
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    let pair = bytes.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([pair[0], pair[1]])))
}

fn check_stun(datagram: &[u8]) -> Result<(), Malformed> {
    if datagram.len() < STUN_HEADER || datagram[4..8] != STUN_COOKIE {
        return Err(Malformed::Stun);
    }
    let body = be16(datagram, 2).ok_or(Malformed::Stun)?;
    if body % 4 != 0 || STUN_HEADER + body != datagram.len() {
        return Err(Malformed::Stun);
    }
    Ok(())
}

/// DTLS 1.2 records (first byte 20..=31: a content type) each carry a 13-byte header
/// whose length must stay within the datagram; DTLS 1.3's unified headers (32..=63)
/// are variable and only checked for a minimum size.
fn check_dtls(datagram: &[u8]) -> Result<(), Malformed> {
    if datagram[0] >= 32 {
        return if datagram.len() >= 2 {
            Ok(())
        } else {
            Err(Malformed::Dtls)
        };
    }
    let mut rest = datagram;
    while !rest.is_empty() {
        let header = rest.get(..DTLS_RECORD_HEADER).ok_or(Malformed::Dtls)?;
        let content_type = header[0];
        let version_major = header[1];
        if !(20..=25).contains(&content_type) || version_major != 0xFE {
            return Err(Malformed::Dtls);
        }
        let length = be16(header, 11).ok_or(Malformed::Dtls)?;
        rest = rest
            .get(DTLS_RECORD_HEADER + length..)
            .ok_or(Malformed::Dtls)?;
    }
    Ok(())
}

fn check_rtp(datagram: &[u8]) -> Result<(), Malformed> {
    if datagram.len() < RTP_HEADER {
        return Err(Malformed::Rtp);
    }
    let csrcs = usize::from(datagram[0] & 0x0F);
    let mut header = RTP_HEADER + 4 * csrcs;
    if datagram[0] & 0x10 != 0 {
        let words = be16(datagram, header + 2).ok_or(Malformed::Rtp)?;
        header += 4 + 4 * words;
    }
    if header + MIN_AUTH_TAG > datagram.len() {
        return Err(Malformed::Rtp);
    }
    Ok(())
}

/// Only SRTCP's first header is in the clear: its length must fit before the index and tag.
fn check_rtcp(datagram: &[u8]) -> Result<(), Malformed> {
    let words = be16(datagram, 2).ok_or(Malformed::Rtcp)?;
    let first_packet = 4 * (words + 1);
    if first_packet < 8 || first_packet + SRTCP_INDEX + MIN_AUTH_TAG > datagram.len() {
        return Err(Malformed::Rtcp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(body_len: u16, total_body: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&body_len.to_be_bytes());
        m.extend_from_slice(&STUN_COOKIE);
        m.extend_from_slice(&[9; 12]);
        m.extend(std::iter::repeat_n(0u8, total_body));
        m
    }

    fn dtls_record(content_type: u8, major: u8, length: u16, actual: usize) -> Vec<u8> {
        let mut r = vec![content_type, major, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1];
        r.extend_from_slice(&length.to_be_bytes());
        r.extend(std::iter::repeat_n(0xAB, actual));
        r
    }

    fn rtp(first: u8, ext_words: Option<u16>, payload: usize) -> Vec<u8> {
        let mut p = vec![first, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 42];
        p.extend(std::iter::repeat_n(1u8, 4 * usize::from(first & 0x0F)));
        if let Some(words) = ext_words {
            p.extend_from_slice(&[0xBE, 0xDE]);
            p.extend_from_slice(&words.to_be_bytes());
            p.extend(std::iter::repeat_n(0u8, 4 * usize::from(words)));
        }
        p.extend(std::iter::repeat_n(7u8, payload));
        p
    }

    fn rtcp(first: u8, words: u16, total: usize) -> Vec<u8> {
        let mut p = vec![first, 200];
        p.extend_from_slice(&words.to_be_bytes());
        p.resize(total, 0x55);
        p
    }

    #[test]
    fn classifies_well_formed_datagrams() {
        // Requirement: what browsers send on the media port passes, by RFC 7983 kind.
        let cases: Vec<(&str, Vec<u8>, DatagramKind)> = vec![
            ("stun binding, empty body", stun(0, 0), DatagramKind::Stun),
            ("stun with attributes", stun(8, 8), DatagramKind::Stun),
            (
                "one handshake record",
                dtls_record(22, 0xFE, 5, 5),
                DatagramKind::Dtls,
            ),
            (
                "two records in one datagram",
                [dtls_record(20, 0xFE, 1, 1), dtls_record(22, 0xFE, 40, 40)].concat(),
                DatagramKind::Dtls,
            ),
            (
                "dtls 1.3 unified header",
                vec![0x2C, 1, 2, 3],
                DatagramKind::Dtls,
            ),
            ("rtp", rtp(0x80, None, 100), DatagramKind::Rtp),
            ("rtp with csrcs", rtp(0x82, None, 10), DatagramKind::Rtp),
            (
                "rtp with one-byte extensions",
                rtp(0x90, Some(2), 10),
                DatagramKind::Rtp,
            ),
            (
                "rtp with marker set",
                {
                    let mut p = rtp(0x80, None, 10);
                    p[1] = 0x80 | 96;
                    p
                },
                DatagramKind::Rtp,
            ),
            (
                "srtcp sender report",
                rtcp(0x80, 6, 28 + 4 + 10),
                DatagramKind::Rtcp,
            ),
            (
                "srtcp receiver report",
                {
                    let mut p = rtcp(0x81, 7, 32 + 4 + 10);
                    p[1] = 201;
                    p
                },
                DatagramKind::Rtcp,
            ),
        ];
        for (name, datagram, kind) in cases {
            assert_eq!(classify(&datagram), Ok(kind), "{name}");
        }
    }

    #[test]
    fn drops_malformed_datagrams_with_their_reason() {
        // Requirement: cut-short, inconsistent or unknown datagrams are refused, each with
        // a reason, before any WebRTC stack parses them.
        let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
            ("empty", vec![], Malformed::Empty),
            (
                "zrtp range",
                vec![16, 0, 0, 0],
                Malformed::UnknownProtocol(16),
            ),
            (
                "turn channel range",
                vec![64, 0, 0, 4],
                Malformed::UnknownProtocol(64),
            ),
            ("high byte", vec![250; 40], Malformed::UnknownProtocol(250)),
            ("stun cut short", stun(0, 0)[..12].to_vec(), Malformed::Stun),
            (
                "stun without cookie",
                {
                    let mut m = stun(0, 0);
                    m[4] = 0;
                    m
                },
                Malformed::Stun,
            ),
            ("stun length past the end", stun(16, 8), Malformed::Stun),
            (
                "stun length not a multiple of 4",
                stun(6, 6),
                Malformed::Stun,
            ),
            (
                "dtls header cut short",
                dtls_record(22, 0xFE, 5, 5)[..8].to_vec(),
                Malformed::Dtls,
            ),
            (
                "dtls record longer than the datagram",
                dtls_record(22, 0xFE, 500, 20),
                Malformed::Dtls,
            ),
            (
                "dtls unknown content type",
                dtls_record(30, 0xFE, 1, 1),
                Malformed::Dtls,
            ),
            (
                "dtls wrong version",
                dtls_record(22, 0x03, 1, 1),
                Malformed::Dtls,
            ),
            (
                "second dtls record cut short",
                [dtls_record(22, 0xFE, 2, 2), vec![22, 0xFE]].concat(),
                Malformed::Dtls,
            ),
            ("dtls 1.3 one byte", vec![0x2C], Malformed::Dtls),
            ("rtp one byte", vec![0x80], Malformed::Rtp),
            (
                "rtp header cut short",
                rtp(0x80, None, 0)[..8].to_vec(),
                Malformed::Rtp,
            ),
            ("rtp without a tag", rtp(0x80, None, 2), Malformed::Rtp),
            (
                "rtp csrcs past the end",
                rtp(0x8F, None, 0)[..20].to_vec(),
                Malformed::Rtp,
            ),
            (
                "rtp extension past the end",
                {
                    let mut p = rtp(0x90, Some(1), 10);
                    p[14..16].copy_from_slice(&200u16.to_be_bytes());
                    p
                },
                Malformed::Rtp,
            ),
            (
                "version 3",
                rtcp(0xC0, 6, 64),
                Malformed::UnknownProtocol(0xC0),
            ),
            (
                "rtcp length of zero words",
                rtcp(0x80, 0, 4 + 4 + 10),
                Malformed::Rtcp,
            ),
            (
                "rtcp length past the end",
                rtcp(0x80, 100, 40),
                Malformed::Rtcp,
            ),
            (
                "rtcp without index and tag",
                rtcp(0x80, 6, 28),
                Malformed::Rtcp,
            ),
            ("rtcp two bytes", vec![0x80, 200], Malformed::Rtcp),
        ];
        for (name, datagram, reason) in cases {
            assert_eq!(classify(&datagram), Err(reason), "{name}");
        }
    }
}
