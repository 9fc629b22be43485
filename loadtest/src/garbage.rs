//! Hostile input for the server's media port: the malformed and forged datagrams a broken
//! or hostile client could send from its own address in the middle of a call. With
//! `--garbage-per-sec`, every participant interleaves them with its real media, so a run
//! shows whether the server drops them and keeps everyone's media flowing.

use crate::rng::Rng;

/// The kinds of bad datagram, sent in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GarbageKind {
    /// A zero-length datagram.
    Empty,
    /// A first byte of no protocol on the media port.
    UnknownProtocol,
    /// A STUN header cut short.
    StunCutShort,
    /// A STUN header whose length runs past the datagram.
    StunBadLength,
    /// A well-formed STUN binding request for a username fragment nobody has.
    StunUnknownUser,
    /// A DTLS record longer than the datagram.
    DtlsBadLength,
    /// A well-formed DTLS handshake record full of noise.
    DtlsNoiseHandshake,
    /// A well-formed DTLS application-data record full of noise.
    DtlsNoiseApplicationData,
    /// An RTP header cut short.
    RtpCutShort,
    /// An RTP header extension running past the datagram.
    RtpBadExtension,
    /// Well-formed SRTP from an unknown SSRC with a forged payload and tag.
    SrtpForged,
    /// An RTCP length running past the datagram.
    RtcpBadLength,
    /// A well-formed SRTCP sender report with a forged body and tag.
    SrtcpForged,
    /// Random bytes of random length.
    Noise,
}

impl GarbageKind {
    /// Every kind, in the order they are sent.
    pub const ALL: [GarbageKind; 14] = [
        GarbageKind::Empty,
        GarbageKind::UnknownProtocol,
        GarbageKind::StunCutShort,
        GarbageKind::StunBadLength,
        GarbageKind::StunUnknownUser,
        GarbageKind::DtlsBadLength,
        GarbageKind::DtlsNoiseHandshake,
        GarbageKind::DtlsNoiseApplicationData,
        GarbageKind::RtpCutShort,
        GarbageKind::RtpBadExtension,
        GarbageKind::SrtpForged,
        GarbageKind::RtcpBadLength,
        GarbageKind::SrtcpForged,
        GarbageKind::Noise,
    ];
}

const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Produces the bad datagrams, each kind in turn, with seeded noise.
#[derive(Debug)]
pub struct Garbage {
    rng: Rng,
    next: usize,
}

impl Garbage {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            next: 0,
        }
    }

    /// The next bad datagram.
    pub fn next_datagram(&mut self) -> Vec<u8> {
        let kind = GarbageKind::ALL[self.next % GarbageKind::ALL.len()];
        self.next += 1;
        self.datagram(kind)
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.next_u64() as u8).collect()
    }

    fn datagram(&mut self, kind: GarbageKind) -> Vec<u8> {
        match kind {
            GarbageKind::Empty => Vec::new(),
            GarbageKind::UnknownProtocol => [vec![70], self.noise(60)].concat(),
            GarbageKind::StunCutShort => [vec![0, 1, 0, 0], STUN_COOKIE.to_vec()].concat(),
            GarbageKind::StunBadLength => {
                [vec![0, 1, 0, 200], STUN_COOKIE.to_vec(), self.noise(20)].concat()
            }
            GarbageKind::StunUnknownUser => {
                let username = b"nobody00:garbage";
                let mut m = vec![0, 1, 0, (4 + username.len()) as u8];
                m.extend_from_slice(&STUN_COOKIE);
                m.extend(self.noise(12));
                m.extend_from_slice(&[0x00, 0x06, 0x00, username.len() as u8]);
                m.extend_from_slice(username);
                m
            }
            GarbageKind::DtlsBadLength => [
                vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 9, 0x10, 0x00],
                self.noise(30),
            ]
            .concat(),
            GarbageKind::DtlsNoiseHandshake => self.dtls_record(22, 0, 120),
            GarbageKind::DtlsNoiseApplicationData => self.dtls_record(23, 1, 200),
            GarbageKind::RtpCutShort => vec![0x80, 96, 0, 1, 0],
            GarbageKind::RtpBadExtension => {
                let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0xDE, 0xAD, 0xBE, 0xEF];
                p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0xFF]);
                p.extend(self.noise(20));
                p
            }
            GarbageKind::SrtpForged => {
                let mut p = vec![0x80, 96];
                p.extend(self.noise(10));
                p.extend(self.noise(400));
                p
            }
            GarbageKind::RtcpBadLength => [vec![0x80, 200, 0x00, 0xF0], self.noise(24)].concat(),
            GarbageKind::SrtcpForged => {
                let mut p = vec![0x80, 200, 0x00, 0x06];
                p.extend(self.noise(24 + 4 + 10));
                p
            }
            GarbageKind::Noise => {
                let len = (self.rng.next_u64() % 1200) as usize + 1;
                self.noise(len)
            }
        }
    }

    fn dtls_record(&mut self, content_type: u8, epoch: u8, len: u16) -> Vec<u8> {
        let mut r = vec![content_type, 0xFE, 0xFD, 0, epoch, 0, 0, 0, 0, 0, 7];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(self.noise(usize::from(len)));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_every_kind_in_turn_and_repeats() {
        // Requirement: one cycle covers every kind of bad input; sizes stay within a datagram.
        let mut garbage = Garbage::new(1);
        let cycle: Vec<Vec<u8>> = (0..GarbageKind::ALL.len())
            .map(|_| garbage.next_datagram())
            .collect();
        assert!(
            cycle[0].is_empty(),
            "the cycle starts with an empty datagram"
        );
        assert_eq!(cycle[1][0], 70);
        assert_eq!(
            &cycle[4][4..8],
            &STUN_COOKIE,
            "a STUN message with the cookie"
        );
        assert_eq!(cycle[6][0], 22, "a DTLS handshake record");
        assert_eq!(cycle[6].len(), 13 + 120, "its length matches its header");
        assert_eq!(cycle[10][0] >> 6, 2, "forged SRTP is RTP version 2");
        assert!(cycle.iter().all(|d| d.len() <= 1200));
        assert!(garbage.next_datagram().is_empty(), "then it starts over");
    }

    #[test]
    fn malformed_kinds_are_malformed_and_forged_kinds_well_formed() {
        // Requirement: the kinds test what they say: the malformed ones fail the server's
        // structural check, the forged ones pass it and reach a participant's WebRTC stack.
        use sfu_core::datagram::classify;
        let mut garbage = Garbage::new(3);
        for kind in GarbageKind::ALL {
            let datagram = garbage.datagram(kind);
            let forged = matches!(
                kind,
                GarbageKind::StunUnknownUser
                    | GarbageKind::DtlsNoiseHandshake
                    | GarbageKind::DtlsNoiseApplicationData
                    | GarbageKind::SrtpForged
                    | GarbageKind::SrtcpForged
            );
            match (kind, classify(&datagram)) {
                (GarbageKind::Noise, _) => {}
                (_, Ok(_)) => assert!(forged, "{kind:?} passed the structural check"),
                (_, Err(reason)) => assert!(!forged, "{kind:?} refused: {reason}"),
            }
        }
    }
}
