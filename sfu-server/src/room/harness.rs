//! Test harness: a room driven without its task, sockets or real time. Commands go in as
//! its sessions would send them, clients are str0m peers whose datagrams reach the room as
//! the UDP loop would hand them over, what the room transmits is captured and delivered
//! back, and the clock is the test's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signaling::{ClientMessage, ServerMessage};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::{JoinRequest, NodeContext, Outbound, Room, RoomCommand};
use crate::egress::Egress;
use crate::node_services::NodeServices;
use crate::routing::{Datagram, ParticipantKey, Routes};
use crate::shard::Shard;
use crate::stats::Stats;

/// Simulated time one step moves the clock by.
const STEP: Duration = Duration::from_millis(10);

/// A packet the room sent: from which of its addresses, to which client address.
struct Sent {
    source: SocketAddr,
    destination: SocketAddr,
    contents: Vec<u8>,
}

/// An egress that keeps what the room sends.
struct Capture(Arc<Mutex<Vec<Sent>>>);

impl Egress for Capture {
    fn transmit(
        &mut self,
        _proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        _stats: &Stats,
    ) {
        self.0.lock().expect("capture").push(Sent {
            source,
            destination,
            contents: contents.to_vec(),
        });
    }

    fn flush(&mut self, _stats: &Stats) {}
}

/// One participant as the test plays it: its key, its str0m peer, and what its session got.
pub struct Client {
    /// Its key in the room.
    pub key: ParticipantKey,
    /// Its WebRTC peer.
    pub rtc: Rtc,
    addr: SocketAddr,
    out: mpsc::Receiver<Outbound>,
    session: u64,
    /// Every message the room sent its current session, in order.
    pub messages: Vec<ServerMessage>,
    pending: Option<SdpPendingOffer>,
}

impl Client {
    /// The messages of one kind it got, by their `type`.
    pub fn received(&self, kind: &str) -> Vec<&ServerMessage> {
        self.messages
            .iter()
            .filter(|m| serde_json::to_value(m).is_ok_and(|v| v["type"] == kind))
            .collect()
    }
}

/// A room on a simulated clock, with a media thread of its own (for its seat on it).
pub struct Harness {
    /// The room under test.
    pub room: Room,
    /// The simulated clock.
    pub now: Instant,
    sent: Arc<Mutex<Vec<Sent>>>,
    next_client: u16,
    _shards: Vec<Shard>,
}

impl Harness {
    /// An empty room with `config`.
    pub fn new(config: config::Config) -> Self {
        let routes = Routes::default();
        let stats = Arc::new(Stats::default());
        let shards = crate::shard::start_on_loopback(1, &routes, &stats);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let ctx = NodeContext {
            services: NodeServices::default(),
            config: Arc::new(config),
            media: Box::new(Capture(sent.clone())),
            udp_addr: "10.9.0.1:5000".parse().expect("address"),
            ice_tcp_addr: None,
            stats,
            routes,
        };
        let now = Instant::now();
        let (datagrams, _) = mpsc::channel(1);
        let room = Room::new(
            sfu_core::ids::RoomId::from_wire("harness"),
            ctx,
            &shards[0],
            datagrams,
            now,
        );
        Self {
            room,
            now,
            sent,
            next_client: 1,
            _shards: shards,
        }
    }

    /// A participant named `name` joins (auto-subscribing); its `joined` is in its messages.
    pub fn join(&mut self, name: &str) -> Client {
        let (out, out_rx) = mpsc::channel(512);
        let (reply, mut answer) = oneshot::channel();
        self.room.now = self.now;
        self.room.handle_command(RoomCommand::Join(JoinRequest {
            name: name.into(),
            grants: Default::default(),
            identity: None,
            auto_subscribe: true,
            out,
            resume_token: format!("resume-{name}"),
            reply,
        }));
        self.room.settle();
        let (key, _) = answer
            .try_recv()
            .expect("the room answered")
            .expect("joined");
        let addr = SocketAddr::from(([10, 9, 1, 1], 6000 + self.next_client));
        self.next_client += 1;
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut client = Client {
            key,
            rtc,
            addr,
            out: out_rx,
            session: 0,
            messages: Vec::new(),
            pending: None,
        };
        self.collect(&mut client);
        client
    }

    /// `client` offers to send one track of `kind`.
    pub fn offer_track(&mut self, client: &mut Client, kind: MediaKind) {
        let mut change = client.rtc.sdp_api();
        change.add_media(kind, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        client.pending = Some(pending);
        self.signal(
            client,
            ClientMessage::Offer {
                sdp: offer.to_sdp_string(),
            },
        );
    }

    /// Hand `message` to the room as `client`'s session would.
    pub fn signal(&mut self, client: &mut Client, message: ClientMessage) {
        self.room.now = self.now;
        self.room
            .handle_command(RoomCommand::Signal(client.key, client.session, message));
        self.room.settle();
        self.collect(client);
    }

    /// `client`'s signaling connection drops (without `leave`).
    pub fn disconnect(&mut self, client: &Client) {
        self.room.now = self.now;
        self.room
            .handle_command(RoomCommand::Disconnected(client.key, client.session));
        self.room.settle();
    }

    /// `client` comes back on a new session with `token`, to be given `new_token`; its
    /// messages from now on are the new session's.
    pub fn resume(
        &mut self,
        client: &mut Client,
        token: &str,
        new_token: &str,
    ) -> Result<(String, u64), signaling::ProtocolError> {
        let (out, out_rx) = mpsc::channel(512);
        let (reply, mut answer) = oneshot::channel();
        self.room.now = self.now;
        self.room
            .handle_command(RoomCommand::Resume(super::ResumeRequest {
                key: client.key,
                resume_token: token.into(),
                new_resume_token: new_token.into(),
                out,
                reply,
            }));
        self.room.settle();
        let result = answer.try_recv().expect("the room answered");
        if let Ok((_, session)) = &result {
            client.out = out_rx;
            client.session = *session;
            client.messages.clear();
            self.collect(client);
        }
        result
    }

    /// Take what `client`'s session was sent; apply the server's answer to its offer.
    pub fn collect(&mut self, client: &mut Client) {
        while let Ok(outbound) = client.out.try_recv() {
            let Outbound::Message(message) = outbound else {
                continue;
            };
            if let ServerMessage::Answer { sdp, .. } = &message
                && let Some(pending) = client.pending.take()
            {
                let answer = SdpAnswer::from_sdp_string(sdp).expect("an answer");
                client
                    .rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .expect("the client takes the answer");
            }
            client.messages.push(message);
        }
    }

    /// Answer the server's latest offer to `client` as a browser would.
    pub fn answer_offer(&mut self, client: &mut Client) {
        let Some(ServerMessage::Offer { sdp, .. }) = client.received("offer").last().copied()
        else {
            panic!("no server offer to answer");
        };
        let offer = SdpOffer::from_sdp_string(sdp).expect("an offer");
        let answer = client
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("the client accepts the offer");
        self.signal(
            client,
            ClientMessage::Answer {
                sdp: answer.to_sdp_string(),
            },
        );
    }

    /// Move the clock by `duration`, in steps: the room's timers run, and datagrams move
    /// between the room and `clients` both ways.
    pub fn run_for(&mut self, duration: Duration, clients: &mut [&mut Client]) {
        let until = self.now + duration;
        while self.now < until {
            self.now += STEP;
            let now = self.now;
            self.room.now = now;
            self.room.handle_timeouts(now);
            if now >= self.room.next_tick {
                self.room.next_tick = now + super::TICK;
                self.room.tick(now);
            }
            self.room.settle();
            for client in clients.iter_mut() {
                self.exchange(client);
                self.collect(client);
            }
        }
    }

    /// Move one step's datagrams between the room and `client`.
    fn exchange(&mut self, client: &mut Client) {
        let now = self.now;
        let mut to_room = Vec::new();
        loop {
            match client.rtc.poll_output().expect("client output") {
                Output::Timeout(at) if at <= now => {
                    client
                        .rtc
                        .handle_input(Input::Timeout(now))
                        .expect("client timeout");
                }
                Output::Timeout(_) => break,
                Output::Transmit(t) => to_room.push(t.contents.to_vec()),
                Output::Event(_) => {}
            }
        }
        for data in to_room {
            self.room.handle_datagram(Datagram {
                participant: client.key,
                source: client.addr,
                local: None,
                data,
                proto: Protocol::Udp,
                at: now,
            });
        }
        self.room.settle();
        let sent: Vec<Sent> = {
            let mut all = self.sent.lock().expect("capture");
            let (mine, others) = all.drain(..).partition(|s| s.destination == client.addr);
            *all = others;
            mine
        };
        for packet in sent {
            let receive = Receive::new(Protocol::Udp, packet.source, client.addr, &packet.contents)
                .expect("a datagram");
            let _ = client.rtc.handle_input(Input::Receive(now, receive));
        }
    }
}

mod tests {
    use super::*;
    use signaling::ErrorCode;

    #[tokio::test]
    async fn a_publisher_and_a_subscriber_connect_and_negotiate() {
        // Requirement: the room answers a client's offer with the track ids it publishes,
        // offers them to the other participant, takes its answer, and both media paths
        // connect (ICE and DTLS through the room's own handling of datagrams; DTLS takes
        // 2 to 8 s of simulated time, by its retransmissions).
        let mut h = Harness::new(config::Config::default());
        let mut a = h.join("a");
        assert!(matches!(a.messages[0], ServerMessage::Joined { .. }));
        h.offer_track(&mut a, MediaKind::Audio);
        let ServerMessage::Answer { tracks, .. } = a.received("answer")[0].clone() else {
            panic!("an answer");
        };
        assert_eq!(tracks.len(), 1, "one track published");
        let mut b = h.join("b");
        h.run_for(Duration::from_secs(3), &mut [&mut a, &mut b]);
        let ServerMessage::Offer {
            tracks: offered, ..
        } = b.received("offer")[0]
        else {
            panic!("b is offered a's track");
        };
        assert_eq!(
            offered.values().collect::<Vec<_>>(),
            tracks.values().collect::<Vec<_>>()
        );
        h.answer_offer(&mut b);
        let started = h.now;
        while !(a.rtc.is_connected()
            && b.rtc.is_connected()
            && h.room.participants.values().all(|p| p.connected))
        {
            assert!(
                h.now - started < Duration::from_secs(30),
                "not connected in 30 s of simulated time: {:?}",
                h.room
                    .participants
                    .values()
                    .map(|p| &p.connection.timeline)
                    .collect::<Vec<_>>()
            );
            h.run_for(Duration::from_millis(100), &mut [&mut a, &mut b]);
        }
    }

    #[tokio::test]
    async fn the_server_offers_two_seconds_after_a_join_that_brings_no_offer() {
        // Requirement: after `joined` the server waits for the client's own first offer and
        // offers on its own only 2 s after a join that brought none (simulated time).
        let mut h = Harness::new(config::Config::default());
        let mut a = h.join("a");
        h.offer_track(&mut a, MediaKind::Audio);
        let mut b = h.join("b");
        h.run_for(Duration::from_millis(1900), &mut [&mut a, &mut b]);
        assert!(b.received("offer").is_empty(), "no server offer before 2 s");
        h.run_for(Duration::from_millis(200), &mut [&mut a, &mut b]);
        assert_eq!(b.received("offer").len(), 1, "the server offers at 2 s");
    }

    #[tokio::test]
    async fn a_refused_answer_is_told_and_the_tracks_are_offered_again() {
        // Requirement: an answer the server refuses (here its own offer sent back: both
        // sides ICE-lite) gets `bad_request`, and the same tracks are offered again a second
        // later, not at once and not only at the room's next change.
        let mut h = Harness::new(config::Config::default());
        let mut a = h.join("a");
        h.offer_track(&mut a, MediaKind::Audio);
        let mut b = h.join("b");
        h.run_for(Duration::from_millis(2100), &mut [&mut a, &mut b]);
        let first = b.received("offer").len();
        assert_eq!(first, 1);
        let ServerMessage::Offer { sdp, .. } = b.received("offer")[0].clone() else {
            unreachable!("an offer");
        };
        h.signal(&mut b, ClientMessage::Answer { sdp });
        let refused = b.received("error");
        assert!(
            matches!(refused.last(), Some(ServerMessage::Error { code: ErrorCode::BadRequest, message, .. }) if message.contains("answer not acceptable")),
            "{refused:?}"
        );
        h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
        assert_eq!(b.received("offer").len(), 1, "not offered again at once");
        h.run_for(Duration::from_millis(700), &mut [&mut a, &mut b]);
        let offers = b.received("offer");
        assert_eq!(offers.len(), 2, "offered again after a second");
        let tracks = |m: &ServerMessage| match m {
            ServerMessage::Offer { tracks, .. } => {
                let mut ids: Vec<String> = tracks.values().cloned().collect();
                ids.sort();
                ids
            }
            _ => Vec::new(),
        };
        assert_eq!(tracks(offers[1]), tracks(offers[0]), "the same tracks");
        assert!(!tracks(offers[0]).is_empty());
    }

    #[tokio::test]
    async fn offers_beyond_the_budget_are_refused_as_offers() {
        // Requirement: offers beyond max_offers_per_second get `rate_limited` naming the
        // refused offer; the budget refills with (simulated) time.
        let config = config::Config {
            max_offers_per_second: 2,
            ..config::Config::default()
        };
        let mut h = Harness::new(config);
        let mut a = h.join("a");
        for _ in 0..3 {
            h.offer_track(&mut a, MediaKind::Audio);
        }
        assert_eq!(a.received("answer").len(), 2);
        let refused = a.received("error");
        assert!(
            matches!(
                refused[..],
                [ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    refused: Some(signaling::Refused::Offer),
                    ..
                }]
            ),
            "{refused:?}"
        );
        h.run_for(Duration::from_secs(1), &mut [&mut a]);
        h.offer_track(&mut a, MediaKind::Audio);
        assert_eq!(a.received("answer").len(), 3, "the budget refilled");
    }

    #[tokio::test]
    async fn a_resumed_participant_gets_a_new_token_and_the_old_one_is_gone() {
        // Requirement: a participant whose connection dropped is taken back by `resume`
        // with its token, on a new session; `joined` carries a new token, and the old one
        // no longer takes anyone back.
        let mut h = Harness::new(config::Config::default());
        let mut a = h.join("a");
        h.disconnect(&a);
        let resumed = h.resume(&mut a, "resume-a", "second-token");
        assert_eq!(resumed.map(|(_, session)| session), Ok(1));
        let ServerMessage::Joined { resume_token, .. } = a.received("joined")[0].clone() else {
            unreachable!("joined")
        };
        assert_eq!(resume_token.as_deref(), Some("second-token"));
        let services = &h.room.ctx.services;
        assert!(services.resume_target("resume-a").is_none());
        assert!(services.resume_target("second-token").is_some());
        let replayed = h.resume(&mut a, "resume-a", "third-token");
        assert!(
            matches!(&replayed, Err(e) if e.code == ErrorCode::NotFound),
            "{replayed:?}"
        );
    }

    #[tokio::test]
    async fn a_participant_not_resumed_within_the_grace_is_removed() {
        // Requirement: a dropped participant keeps its place for resume_grace_secs
        // (simulated), then is removed; the others are told it left.
        let config = config::Config {
            resume_grace_secs: 5,
            ..config::Config::default()
        };
        let mut h = Harness::new(config);
        let mut a = h.join("a");
        let mut b = h.join("b");
        h.disconnect(&a);
        h.run_for(Duration::from_millis(4900), &mut [&mut b]);
        assert_eq!(h.room.participants.len(), 2, "still resumable");
        h.run_for(Duration::from_millis(200), &mut [&mut b]);
        assert_eq!(h.room.participants.len(), 1, "removed after the grace");
        assert_eq!(b.received("participant_left").len(), 1);
        assert!(h.resume(&mut a, "resume-a", "late").is_err());
    }

    #[tokio::test]
    async fn garbage_datagrams_are_refused_and_counted() {
        // Requirement: datagrams a participant's WebRTC stack cannot take are dropped and
        // counted; the participant stays.
        let mut h = Harness::new(config::Config::default());
        let a = h.join("a");
        for data in [
            vec![0u8; 0],
            vec![0xff; 40],
            b"\x80\x00garbage-rtp-ish".to_vec(),
        ] {
            h.room.handle_datagram(Datagram {
                participant: a.key,
                source: a.addr,
                local: None,
                data,
                proto: Protocol::Udp,
                at: h.now,
            });
        }
        let rejected = h
            .room
            .ctx
            .stats
            .udp_rejected
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(rejected, 3);
        assert_eq!(h.room.participants.len(), 1);
    }
}
