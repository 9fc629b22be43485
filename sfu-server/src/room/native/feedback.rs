//! Reading what a subscriber's RTCP says about the streams we send: the packets of a
//! (decrypted) compound packet, parsed with str0m's RTCP types (TWCC with
//! [`sfu_core::twcc`]).

use str0m::media::KeyframeRequestKind;
use str0m::rtp::rtcp::{ReceptionReport, Rtcp};

/// Length of an RTCP header, bytes.
const RTCP_HEADER_LEN: usize = 4;

/// The packets of the compound RTCP packet `compound`, without their padding; the walk
/// stops at the first header whose length does not fit.
pub fn packets(compound: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut rest = compound;
    std::iter::from_fn(move || {
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
        Some(unpadded(packet))
    })
}

/// The packets of `compound` that str0m's RTCP types parse.
#[cfg(test)]
fn parsed(compound: &[u8]) -> impl Iterator<Item = Rtcp> + '_ {
    packets(compound).filter_map(|p| Rtcp::try_from(p).ok())
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

/// The report blocks of one RTCP packet (a receiver report's, or a sender report's).
pub fn report_blocks(packet: &Rtcp) -> impl Iterator<Item = &ReceptionReport> {
    let blocks = match packet {
        Rtcp::ReceiverReport(rr) => Some(&rr.reports),
        Rtcp::SenderReport(sr) => Some(&sr.reports),
        _ => None,
    };
    blocks.into_iter().flatten()
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

/// The media SSRC a NACK is about and the sequence numbers it asks for (each entry a
/// number and a bitmask of the 16 after it, RFC 4585 §6.2.1).
pub fn nacked(packet: &Rtcp) -> Option<(u32, impl Iterator<Item = u16> + '_)> {
    let Rtcp::Nack(nack) = packet else {
        return None;
    };
    let seqs = nack.reports.iter().flat_map(|entry| {
        let (pid, blp) = (entry.pid, entry.blp);
        std::iter::once(pid).chain(
            (0..16u16)
                .filter(move |bit| blp & (1 << bit) != 0)
                .map(move |bit| pid.wrapping_add(bit + 1)),
        )
    });
    Some((*nack.ssrc, seqs))
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
        let asked: Vec<_> = parsed(&compound)
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
    fn a_nack_names_its_packet_and_the_bitmask_after_it() {
        // Requirement: PID and each BLP bit (bit i: PID + i + 1) are asked for, across the wrap.
        let mut p = vec![0x81, 205, 0, 3];
        p.extend(1u32.to_be_bytes());
        p.extend(0xAABBu32.to_be_bytes());
        p.extend([0xFF, 0xFE, 0b1000_0000, 0b0000_0101]);
        let nack: Vec<Rtcp> = parsed(&p).collect();
        let (ssrc, seqs) = nacked(&nack[0]).expect("a NACK");
        assert_eq!(ssrc, 0xAABB);
        assert_eq!(seqs.collect::<Vec<_>>(), [65_534, 65_535, 1, 14]);
        assert!(nacked(&nack[0]).is_some());
        let pli: Vec<Rtcp> = parsed(&pli(1, 2)).collect();
        assert!(nacked(&pli[0]).is_none());
    }

    #[test]
    fn a_length_beyond_the_datagram_ends_the_walk() {
        // Requirement: garbage lengths never read past the packet; what came before counts.
        let mut compound = pli(1, 7);
        compound.extend([0x81, 206, 0, 9, 0, 0]);
        let asked: Vec<_> = parsed(&compound)
            .flat_map(|p| keyframe_requests(&p))
            .collect();
        assert_eq!(asked, [(7, KeyframeRequestKind::Pli)]);
        assert_eq!(packets(&[0x81]).count(), 0);
        assert_eq!(packets(&[]).count(), 0);
    }
}
