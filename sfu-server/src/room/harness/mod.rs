//! Test harness: a room driven without its task, sockets or real time. Commands go in as
//! its sessions would send them, clients are str0m peers whose datagrams reach the room as
//! the UDP loop would hand them over, what the room transmits is captured and delivered
//! back, and the clock is the test's.

mod input_tests;
mod native_tests;
mod negotiation_tests;
mod resume_tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfu_core::ids::ParticipantId;
use signaling::{ClientMessage, ServerMessage};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::{JoinRequest, NodeContext, Outbound, Room, RoomCommand};
use crate::egress::Egress;
use crate::node_services::NodeServices;
use crate::routing::{Datagram, Routes};
use crate::shard::Shard;
use crate::stats::Stats;

/// A client's `subscribe` to `track_id` at the default quality.
pub fn subscribe(track_id: impl Into<String>) -> ClientMessage {
    ClientMessage::Subscribe {
        track_id: track_id.into(),
        quality: Default::default(),
        paused: false,
    }
}

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

/// Which datagrams a simulated network loses.
pub type Loss = Box<dyn FnMut(&[u8]) -> bool>;

/// One participant as the test plays it: its key, its str0m peer, and what its session got.
pub struct Client {
    /// Its key in the room.
    pub key: ParticipantId,
    /// Its WebRTC peer.
    pub rtc: Rtc,
    addr: SocketAddr,
    out: mpsc::Receiver<Outbound>,
    connection: u64,
    /// Every message the room sent its current session, in order.
    pub messages: Vec<ServerMessage>,
    /// The media frames its peer received: m-line and data.
    pub media: Vec<(str0m::media::Mid, Vec<u8>)>,
    /// Keyframe requests its peer received for what it sends.
    pub keyframe_requests: Vec<str0m::media::KeyframeRequest>,
    /// Every datagram the room sent it, as it went on the wire.
    pub wire: Vec<Vec<u8>>,
    /// Datagrams from the room the network loses on the way to it.
    pub loses: Option<Loss>,
    /// The network between it and the room carries nothing, either way.
    pub cut: bool,
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
            shards[0].seat_room(),
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
        self.join_with(name, true)
    }

    /// A participant named `name` joins, subscribing to every track or only to those it
    /// asks for.
    pub fn join_with(&mut self, name: &str, auto_subscribe: bool) -> Client {
        let (out, out_rx) = mpsc::channel(512);
        let (reply, mut answer) = oneshot::channel();
        self.room.now = self.now;
        self.room.handle_command(RoomCommand::Join(JoinRequest {
            name: name.into(),
            grants: Default::default(),
            identity: None,
            auto_subscribe,
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
            connection: 0,
            messages: Vec::new(),
            media: Vec::new(),
            keyframe_requests: Vec::new(),
            wire: Vec::new(),
            loses: None,
            cut: false,
            pending: None,
        };
        self.collect(&mut client);
        client
    }

    /// `client` offers to send one track of `kind`.
    pub fn offer_track(&mut self, client: &mut Client, kind: MediaKind) {
        self.offer_tracks(client, &[kind]);
    }

    /// `client` offers to send one track of each of `kinds`, in one offer.
    pub fn offer_tracks(&mut self, client: &mut Client, kinds: &[MediaKind]) {
        let mut change = client.rtc.sdp_api();
        for kind in kinds {
            change.add_media(*kind, Direction::SendOnly, None, None, None);
        }
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
            .handle_command(RoomCommand::Signal(client.key, client.connection, message));
        self.room.settle();
        self.collect(client);
    }

    /// `client`'s signaling connection drops (without `leave`).
    pub fn disconnect(&mut self, client: &Client) {
        self.room.now = self.now;
        self.room
            .handle_command(RoomCommand::Disconnected(client.key, client.connection));
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
        if let Ok((_, connection)) = &result {
            client.out = out_rx;
            client.connection = *connection;
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

    /// Run until `a`, `b` and every participant in the room are connected (ICE and DTLS),
    /// within 30 s of simulated time.
    pub fn run_until_connected(&mut self, a: &mut Client, b: &mut Client) {
        let started = self.now;
        while !(a.rtc.is_connected()
            && b.rtc.is_connected()
            && self
                .room
                .participants
                .values()
                .all(|p| p.presence().is_connected()))
        {
            assert!(
                self.now - started < Duration::from_secs(30),
                "not connected in 30 s of simulated time: {:?}",
                self.room
                    .participants
                    .values()
                    .map(|p| &p.media_path().timeline)
                    .collect::<Vec<_>>()
            );
            self.run_for(Duration::from_millis(100), &mut [&mut *a, &mut *b]);
        }
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
        // Every step, as a client's timer loop would: str0m does not always ask for a
        // timeout when a negotiation gives its ICE agent pairs to check.
        client
            .rtc
            .handle_input(Input::Timeout(now))
            .expect("client timeout");
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
                Output::Event(str0m::Event::MediaData(data)) => {
                    client.media.push((data.mid, data.data.to_vec()));
                }
                Output::Event(str0m::Event::KeyframeRequest(request)) => {
                    client.keyframe_requests.push(request);
                }
                Output::Event(_) => {}
            }
        }
        if client.cut {
            to_room.clear();
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
            client.wire.push(packet.contents.clone());
            if client.cut
                || client
                    .loses
                    .as_mut()
                    .is_some_and(|lost| lost(&packet.contents))
            {
                continue;
            }
            let receive = Receive::new(Protocol::Udp, packet.source, client.addr, &packet.contents)
                .expect("a datagram");
            let _ = client.rtc.handle_input(Input::Receive(now, receive));
        }
    }
}
