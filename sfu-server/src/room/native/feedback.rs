//! Reading what a subscriber's RTCP says about the streams we send: the packets of a
//! (decrypted) compound packet, parsed with str0m's RTCP types.

use str0m::media::KeyframeRequestKind;
use str0m::rtp::rtcp::Rtcp;

/// Length of an RTCP header, bytes.
const RTCP_HEADER_LEN: usize = 4;

/// The packets of the compound RTCP packet `compound` that parse; the walk stops at the
/// first header whose length does not fit.
pub fn packets(compound: &[u8]) -> impl Iterator<Item = Rtcp> + '_ {
    let mut rest = compound;
    std::iter::from_fn(move || {
        loop {
            if rest.len() < RTCP_HEADER_LEN {
                return None;
            }
            let words = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let len = (words + 1) * 4;
            if len > rest.len() {
                return None;
            }
            let (packet, after) = rest.split_at(len);
            rest = after;
            if let Ok(parsed) = Rtcp::try_from(unpadded(packet)) {
                return Some(parsed);
            }
        }
    })
}

/// A packet without its padding (the P bit: the last byte counts the padding bytes).
fn unpadded(packet: &[u8]) -> &[u8] {
    if packet[0] & 0x20 == 0 {
        return packet;
    }
    let pad = usize::from(packet.last().copied().unwrap_or(0));
    if pad == 0 || pad > packet.len() - RTCP_HEADER_LEN {
        return packet;
    }
    &packet[..packet.len() - pad]
}

/// The keyframe requests of one RTCP packet: each media SSRC asked for and how.
pub fn keyframe_requests(packet: &Rtcp) -> Vec<(u32, KeyframeRequestKind)> {
    match packet {
        Rtcp::Pli(pli) => vec![(*pli.ssrc, KeyframeRequestKind::Pli)],
        Rtcp::Fir(fir) => fir
            .reports
            .iter()
            .map(|entry| (*entry.ssrc, KeyframeRequestKind::Fir))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PLI from `sender` about `media`.
    fn pli(sender: u32, media: u32) -> Vec<u8> {
        let mut p = vec![0x81, 206, 0, 2];
        p.extend(sender.to_be_bytes());
        p.extend(media.to_be_bytes());
        p
    }

    /// A FIR from `sender` about `media`, request number `seq`.
    fn fir(sender: u32, media: u32, seq: u8) -> Vec<u8> {
        let mut p = vec![0x84, 206, 0, 4];
        p.extend(sender.to_be_bytes());
        p.extend([0; 4]);
        p.extend(media.to_be_bytes());
        p.extend([seq, 0, 0, 0]);
        p
    }

    /// An empty receiver report from `sender`.
    fn rr(sender: u32) -> Vec<u8> {
        let mut p = vec![0x80, 201, 0, 1];
        p.extend(sender.to_be_bytes());
        p
    }

    #[test]
    fn finds_the_keyframe_requests_of_a_compound_packet() {
        // Requirement: PLI and FIR anywhere in a compound packet name the SSRC they are
        // about; reports and unknown packets ask for nothing.
        let mut compound = rr(1);
        compound.extend(pli(1, 0xAABB));
        compound.extend([0x80, 204, 0, 1, 0, 0, 0, 1]);
        compound.extend(fir(1, 0xCCDD, 3));
        let asked: Vec<_> = packets(&compound)
            .flat_map(|p| keyframe_requests(&p))
            .collect();
        assert_eq!(
            asked,
            [
                (0xAABB, KeyframeRequestKind::Pli),
                (0xCCDD, KeyframeRequestKind::Fir)
            ]
        );
    }

    #[test]
    fn a_length_beyond_the_datagram_ends_the_walk() {
        // Requirement: garbage lengths never read past the packet; what came before counts.
        let mut compound = pli(1, 7);
        compound.extend([0x81, 206, 0, 9, 0, 0]);
        let asked: Vec<_> = packets(&compound)
            .flat_map(|p| keyframe_requests(&p))
            .collect();
        assert_eq!(asked, [(7, KeyframeRequestKind::Pli)]);
        assert_eq!(packets(&[0x81]).count(), 0);
        assert_eq!(packets(&[]).count(), 0);
    }
}
