//! Test harness: a server `Rtc` built as for a participant, sending one video m-line to a
//! str0m client, the two connected in memory on a simulated clock. It lets tests check what
//! our str0m settings do on the wire without sockets or real time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::peer_connection;

/// Simulated time between two steps of both peers.
const STEP: Duration = Duration::from_millis(5);
/// Simulated time the connection may take to come up.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// What happens to one datagram from the server to the client.
pub enum Fate {
    /// Delivered now.
    Deliver,
    /// Lost.
    Drop,
    /// Delivered at the first step at or after this time.
    HoldUntil(Instant),
}

/// A connected server and client.
pub struct RtcPair {
    /// The server side, made by [`peer_connection::new_rtc`].
    server: Rtc,
    /// A str0m client in RTP mode that receives the server's video.
    client: Rtc,
    /// The simulated clock.
    pub now: Instant,
    /// The server's sending m-line.
    mid: Mid,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
    held: Vec<(Instant, Vec<u8>)>,
    /// Every event the server emitted.
    pub server_events: Vec<Event>,
    /// Every event the client emitted.
    client_events: Vec<Event>,
}

impl RtcPair {
    /// Negotiate one send-only video m-line from the server and run both peers until ICE and
    /// DTLS are up.
    pub fn connected() -> Self {
        let now = Instant::now();
        let server_addr: SocketAddr = "10.9.0.1:5000".parse().expect("address");
        let client_addr: SocketAddr = "10.9.0.2:6000".parse().expect("address");
        let (mut server, _) = peer_connection::new_rtc(
            &[(Protocol::Udp, server_addr)],
            config::EgressMode::Str0m,
            now,
        )
        .expect("server rtc");
        let mut client = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .build(now);
        client.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
        let mut change = server.sdp_api();
        let mid = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("publisher".into()),
            Some("track".into()),
            None,
        );
        let (offer, pending) = change.apply().expect("server offer");
        let answer = client.sdp_api().accept_offer(offer).expect("client answer");
        server
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("server accepts the answer");
        let mut pair = Self {
            server,
            client,
            now,
            mid,
            server_addr,
            client_addr,
            held: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
        };
        let deadline = now + CONNECT_WITHIN;
        while !(pair.server.is_connected() && pair.client.is_connected()) {
            assert!(
                pair.now < deadline,
                "the pair did not connect in simulated time"
            );
            pair.step(&mut |_| Fate::Deliver);
        }
        pair
    }

    /// The server's payload type for VP8.
    fn vp8_pt(&self) -> Pt {
        self.server
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8)
            .expect("VP8 negotiated")
            .pt()
    }

    /// The SSRC of the server's video stream.
    pub fn video_ssrc(&mut self) -> u32 {
        let mut api = self.server.direct_api();
        let stream = api
            .stream_tx_by_mid(self.mid, None)
            .expect("sending stream");
        *stream.ssrc()
    }

    /// Write one video packet into the server's stream, as the forwarding path does.
    pub fn write_video(&mut self, seq: u64, payload: Vec<u8>) {
        let pt = self.vp8_pt();
        let now = self.now;
        let mut api = self.server.direct_api();
        let stream = api
            .stream_tx_by_mid(self.mid, None)
            .expect("sending stream");
        let timestamp = u32::try_from(seq % u64::from(u32::MAX)).expect("fits") * 3000;
        stream
            .write_rtp(RtpWrite::new(pt, SeqNo::from(seq), timestamp, now, payload).nackable(true));
    }

    /// Advance the clock by one step: run both peers' timers and move every datagram, the
    /// server's through `fate`.
    pub fn step(&mut self, fate: &mut dyn FnMut(&[u8]) -> Fate) {
        self.now += STEP;
        let now = self.now;
        for rtc in [&mut self.server, &mut self.client] {
            rtc.handle_input(Input::Timeout(now)).expect("timeout");
        }
        let (released, still_held) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.held = still_held;
        let mut to_client: Vec<Vec<u8>> = released.into_iter().map(|(_, d)| d).collect();
        for datagram in drain(&mut self.server, now, &mut self.server_events) {
            match fate(&datagram) {
                Fate::Deliver => to_client.push(datagram),
                Fate::Drop => {}
                Fate::HoldUntil(at) => self.held.push((at, datagram)),
            }
        }
        let to_server = drain(&mut self.client, now, &mut self.client_events);
        deliver(
            &mut self.client,
            now,
            self.server_addr,
            self.client_addr,
            &to_client,
        );
        deliver(
            &mut self.server,
            now,
            self.client_addr,
            self.server_addr,
            &to_server,
        );
    }

    /// Sequence numbers of the RTP packets the client received (retransmissions included,
    /// under their original number).
    pub fn client_received(&self) -> Vec<u64> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                Event::RtpPacket(p) => Some(*p.seq_no),
                _ => None,
            })
            .collect()
    }
}

/// The SSRC and sequence number of an SRTP datagram (the RTP header is not encrypted), or
/// `None` for anything else.
pub fn rtp_ssrc_seq(datagram: &[u8]) -> Option<(u32, u16)> {
    let is_rtp =
        datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(200..=206).contains(&datagram[1]);
    is_rtp.then(|| {
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        (ssrc, u16::from_be_bytes([datagram[2], datagram[3]]))
    })
}

fn drain(rtc: &mut Rtc, now: Instant, events: &mut Vec<Event>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match rtc.poll_output().expect("poll") {
            Output::Timeout(at) if at <= now => {
                rtc.handle_input(Input::Timeout(now)).expect("timeout");
            }
            Output::Timeout(_) => return out,
            Output::Transmit(t) => out.push(t.contents.to_vec()),
            Output::Event(e) => events.push(e),
        }
    }
}

fn deliver(rtc: &mut Rtc, now: Instant, from: SocketAddr, to: SocketAddr, datagrams: &[Vec<u8>]) {
    for datagram in datagrams {
        let receive = Receive::new(Protocol::Udp, from, to, datagram).expect("datagram");
        rtc.handle_input(Input::Receive(now, receive))
            .expect("receive");
    }
}
