//! A room: one task owning every participant's `Rtc`, its producers and consumers.
//!
//! Signaling reaches the room as [`RoomCommand`]s; media arrives as
//! [`Datagram`]s from the UDP loop. Everything inside runs on the room's task,
//! so forwarding is a plain synchronous loop with no locks.

mod admin;
mod consumer;
mod data;
mod forwarding;
#[cfg(test)]
mod harness;
mod layers;
mod lifecycle;
mod native;
mod negotiation;
mod offer_state;
mod outbox;
mod participant;
mod path_view;
mod peer_connection;
mod presence;
mod producer;
mod resume;
#[cfg(test)]
mod rtc_pair;
mod rtcp_stats;
mod signal;
mod vp8;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu_core::ids::{ParticipantId, ProducerId, RoomId};

use sfu_core::speakers::SpeakerRanking;
use signaling::{LeaveReason, ProtocolError, ServerMessage};
use str0m::Event;
use str0m::net::Protocol;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span};

#[cfg(test)]
pub use self::admin::ParticipantSnapshot;
pub use self::admin::{AdminRequest, RoomSnapshot};
use crate::egress::Egress;
use crate::node_services::NodeServices;
use crate::routing::{Datagram, Routes};
use crate::shard::{Shard, ShardSeat};
use crate::stats::Stats;
use outbox::Delivery;
use participant::Participant;
use producer::Producer;

/// Datagrams queued toward one room before new ones are dropped (and counted).
const DATAGRAM_QUEUE: usize = 4096;
/// Signaling commands queued toward one room.
const COMMAND_QUEUE: usize = 256;
/// Queued datagrams one pass of the room loop handles before it forwards and drains.
const DATAGRAMS_PER_PASS: usize = 64;
/// How often layers are re-chosen, dynacast updated and speakers ranked.
const TICK: Duration = Duration::from_millis(250);
/// Least time between two `speakers` messages.
const SPEAKERS_INTERVAL: Duration = Duration::from_millis(300);

/// Everything a room task needs from the node.
pub struct NodeContext {
    /// Resume tokens, kicked identities and key numbers, shared by the node's rooms.
    pub services: NodeServices,
    /// Validated configuration.
    pub config: std::sync::Arc<config::Config>,
    /// Where participants' packets go out: the room's shard's media socket or their ICE-TCP
    /// connection.
    pub media: Box<dyn Egress>,
    /// The bound address of the room's shard's media socket.
    pub udp_addr: SocketAddr,
    /// The ICE-TCP listener's bound address, when it runs.
    pub ice_tcp_addr: Option<SocketAddr>,
    /// Counters.
    pub stats: std::sync::Arc<Stats>,
    /// The UDP routing table.
    pub routes: Routes,
}

/// A started room task: where to send it commands and datagrams, and its end (a task that
/// panicked ends with an error saying so).
pub struct RoomTask {
    /// Commands (joins, signaling) to the room.
    pub commands: mpsc::Sender<RoomCommand>,
    /// The room's datagram queue (what its routes point at).
    pub datagrams: mpsc::Sender<Datagram>,
    /// Resolves when the task ends, telling how.
    pub ended: tokio::sync::oneshot::Receiver<crate::shard::TaskEnd>,
}

/// A request to join the room.
#[derive(Debug)]
pub struct JoinRequest {
    /// Display name.
    pub name: String,
    /// What its token allows.
    pub grants: signaling::token::Grants,
    /// Its token's identity (`sub`) and expiry (Unix seconds); `None` without tokens.
    pub identity: Option<Identity>,
    /// Subscribe to every track automatically.
    pub auto_subscribe: bool,
    /// Where the room sends this participant's messages.
    pub out: mpsc::Sender<Outbound>,
    /// The secret for `resume`, told in `joined`.
    pub resume_token: String,
    /// The participant's key and id, or why it was refused.
    pub reply: oneshot::Sender<Result<(ParticipantId, String), ProtocolError>>,
}

/// Who a join token says a participant is, and until when it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`: one participant per identity in a room.
    pub sub: String,
    /// The token's `exp`.
    pub expires: u64,
}

/// A request to take back a participant whose signaling connection was lost.
#[derive(Debug)]
pub struct ResumeRequest {
    /// The participant.
    pub key: ParticipantId,
    /// The secret its `joined` carried.
    pub resume_token: String,
    /// The secret that replaces it (a resume token works once).
    pub new_resume_token: String,
    /// Where the room sends its messages from now on.
    pub out: mpsc::Sender<Outbound>,
    /// Its participant id and the number of its new signaling connection, or why it cannot be resumed.
    pub reply: oneshot::Sender<Result<(String, u64), ProtocolError>>,
}

/// What a signaling session sends to its room.
#[derive(Debug)]
pub enum RoomCommand {
    /// A new participant.
    Join(JoinRequest),
    /// A client message of a joined participant's signaling connection (number); ignored
    /// when a resume has replaced that connection.
    Signal(ParticipantId, u64, signaling::ClientMessage),
    /// Session (number) of the participant left (`leave`) or was ended; ignored when the
    /// participant has been resumed by a newer connection since.
    Leave(ParticipantId, u64),
    /// This signaling connection (number) of the participant dropped without `leave`.
    Disconnected(ParticipantId, u64),
    /// A client takes back its participant.
    Resume(ResumeRequest),
    /// An operator's request (admin API, dashboard, metrics).
    Admin(AdminRequest),
    /// Tests only: make the room task panic, as a bug or unsurvivable input would.
    #[cfg(test)]
    Panic,
}

/// What a room sends to a signaling session.
#[derive(Debug)]
pub enum Outbound {
    /// A message for the client.
    Message(ServerMessage),
    /// The server ends the session for this reason.
    End(LeaveReason),
}

/// Start a room task on `shard`.
pub fn spawn(id: RoomId, ctx: NodeContext, shard: &Shard) -> RoomTask {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (datagram_tx, datagram_rx) = mpsc::channel(DATAGRAM_QUEUE);
    let span = info_span!("room", room = %id);
    let seat = shard.seat_room();
    let room_datagrams = datagram_tx.clone();
    // A panic (a bug, or input str0m does not survive) ends this task alone: the unwinding
    // drops the room, which tells its participants the room closed.
    let ended = shard.spawn_pinned(move || {
        let room = Room::new(id, ctx, seat, room_datagrams, Instant::now());
        room.run(commands_rx, datagram_rx).instrument(span)
    });
    RoomTask {
        commands: commands_tx,
        datagrams: datagram_tx,
        ended,
    }
}

/// The server's ICE candidates: each advertised IP with the UDP port, and with the
/// ICE-TCP port when that listener runs.
fn candidate_addrs(ctx: &NodeContext) -> Vec<(Protocol, SocketAddr)> {
    let ports = std::iter::once((Protocol::Udp, ctx.udp_addr.port()))
        .chain(ctx.ice_tcp_addr.map(|a| (Protocol::Tcp, a.port())));
    ports
        .flat_map(|(proto, port)| {
            ctx.config
                .candidate_ips()
                .into_iter()
                .map(move |ip| (proto, SocketAddr::new(ip, port)))
        })
        .collect()
}

/// The room's state, owned by its task.
pub(crate) struct Room {
    id: RoomId,
    /// The time of this wake-up, read once when the task wakes; every handler of the pass
    /// takes its time from here, so a test can drive the room on a clock of its own.
    now: Instant,
    ctx: NodeContext,
    candidate_addrs: Vec<(Protocol, SocketAddr)>,
    datagram_tx: mpsc::Sender<Datagram>,
    participants: HashMap<ParticipantId, Participant>,
    producers: HashMap<ProducerId, Producer>,
    /// Events drained from participants' `Rtc`s, handled in order.
    events: VecDeque<(ParticipantId, Event)>,
    /// Participants to remove once the current step is done, with the reason told to them.
    to_remove: Vec<(ParticipantId, Option<LeaveReason>)>,
    /// Subscribers written to since their last drain: drained once the queued datagrams and
    /// events are handled, so a burst goes out together.
    to_drain: Vec<ParticipantId>,
    /// Subscribers given new consumers in the current step: offered once it is done, so
    /// tracks published together are offered together.
    offers_due: Vec<ParticipantId>,
    /// When layers, dynacast and speakers are next reviewed.
    next_tick: Instant,
    /// Active speaker ranking from audio levels.
    speakers: SpeakerRanking<ParticipantId>,
    /// When the room opened.
    opened_at: Instant,
    /// RTP packets forwarded in this room.
    forwarded_packets: u64,
    /// RTP payload bytes forwarded in this room.
    forwarded_bytes: u64,
    /// Time inside the SFU per forwarded packet (handle kept: recorded per packet).
    forwarding_seconds: ::metrics::Histogram,
    /// Receipt times of the packets forwarded in this pass, recorded in
    /// `forwarding_seconds` once their subscribers are drained.
    forwarded_arrivals: Vec<Instant>,
    /// Whether some participant's messages wait behind its session's full queue (the
    /// room then tries to move them on after each pass).
    outboxes_backlogged: bool,
    /// Time consumers waited for the keyframe that starts or switches a layer.
    keyframe_wait_seconds: ::metrics::Histogram,
    /// Counts the room and its participants on its shard while it is open.
    seat: ShardSeat,
}

/// What woke the room task.
enum Wake {
    Command(RoomCommand),
    Datagram(Datagram),
    Timer,
}

impl Room {
    /// A room with no participants yet, placed on `shard`, opened at `now`; `datagram_tx` is
    /// its datagram queue (what its participants' routes point at).
    fn new(
        id: RoomId,
        ctx: NodeContext,
        seat: ShardSeat,
        datagram_tx: mpsc::Sender<Datagram>,
        now: Instant,
    ) -> Self {
        Room {
            id,
            candidate_addrs: candidate_addrs(&ctx),
            ctx,
            datagram_tx,
            participants: HashMap::new(),
            producers: HashMap::new(),
            events: VecDeque::new(),
            to_remove: Vec::new(),
            to_drain: Vec::new(),
            offers_due: Vec::new(),
            now,
            next_tick: now + TICK,
            speakers: SpeakerRanking::new(SPEAKERS_INTERVAL),
            opened_at: now,
            forwarded_packets: 0,
            forwarded_bytes: 0,
            forwarding_seconds: ::metrics::histogram!(crate::metric_names::FORWARDING_SECONDS),
            forwarded_arrivals: Vec::new(),
            outboxes_backlogged: false,
            keyframe_wait_seconds: ::metrics::histogram!(
                crate::metric_names::KEYFRAME_WAIT_SECONDS
            ),
            seat,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<RoomCommand>,
        mut datagrams: mpsc::Receiver<Datagram>,
    ) {
        info!("room opened");
        loop {
            let deadline = self.next_deadline(self.now);
            let woke = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => Wake::Command(command),
                    None => break,
                },
                Some(datagram) = datagrams.recv() => Wake::Datagram(datagram),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            // The one reading of the clock per wake-up: every handler of this pass takes it.
            self.now = Instant::now();
            match woke {
                Wake::Command(command) => self.handle_command(command),
                Wake::Datagram(datagram) => {
                    self.handle_datagram(datagram);
                    for _ in 1..DATAGRAMS_PER_PASS {
                        let Ok(datagram) = datagrams.try_recv() else {
                            break;
                        };
                        self.handle_datagram(datagram);
                    }
                }
                Wake::Timer => {
                    let now = self.now;
                    self.handle_timeouts(now);
                    if now >= self.next_tick {
                        self.next_tick = now + TICK;
                        self.tick(now);
                    }
                }
            }
            self.settle();
            if self.participants.is_empty() {
                break;
            }
        }
        // Joins that raced with the closing are dropped here; their sessions retry on a new room.
        commands.close();
        while commands.try_recv().is_ok() {}
        info!("room closed");
    }

    fn handle_command(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join(request) => self.join(request),
            RoomCommand::Signal(key, connection, message) => {
                if self.is_current_connection(key, connection) {
                    self.signal(key, message);
                }
            }
            RoomCommand::Leave(key, connection) => self.leave(key, connection),
            RoomCommand::Disconnected(key, connection) => self.disconnected(key, connection),
            RoomCommand::Resume(request) => self.resume(request),
            RoomCommand::Admin(request) => self.admin(request),
            #[cfg(test)]
            RoomCommand::Panic => panic!("a room task panics, as a test asked"),
        }
    }

    /// Handle queued events, drain the subscribers written to, and remove who leaves, until
    /// nothing is left to do.
    fn settle(&mut self) {
        loop {
            if let Some((key, event)) = self.events.pop_front() {
                self.handle_event(key, event);
                continue;
            }
            if let Some(key) = self.offers_due.pop() {
                self.maybe_offer(key);
                continue;
            }
            if let Some(key) = self.to_drain.pop() {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.clear_drain_due();
                    p.drain(
                        self.ctx.media.as_mut(),
                        &self.ctx.stats,
                        &mut self.events,
                        self.now,
                    );
                }
                continue;
            }
            if let Some((key, reason)) = self.to_remove.pop() {
                self.remove_participant(key, reason);
                continue;
            }
            // What our own egress queued while forwarding.
            self.ctx.media.flush(&self.ctx.stats);
            self.flush_outboxes();
            // A measurement of the pass itself, so the real clock, not the wake-up's.
            let now = Instant::now();
            for arrival in self.forwarded_arrivals.drain(..) {
                self.forwarding_seconds
                    .record(now.saturating_duration_since(arrival).as_secs_f64());
            }
            break;
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        self.participants
            .values()
            .map(|p| p.next_deadline(self.resume_grace()))
            .fold(self.next_tick.max(now), Instant::min)
    }

    /// Periodic review: every subscriber's layers, dynacast, active speakers.
    fn tick(&mut self, now: Instant) {
        let keys: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for key in keys {
            self.allocate_layers(key, now);
        }
        self.update_dynacast(now);
        self.send_sender_reports(now);
        if let Some(ranking) = self.speakers.poll(now) {
            let speakers = ranking
                .into_iter()
                .filter_map(|(key, level)| {
                    Some(signaling::Speaker {
                        participant_id: self.participants.get(&key)?.id().to_string(),
                        level,
                    })
                })
                .collect();
            self.broadcast_all(&ServerMessage::Speakers { speakers });
        }
    }

    /// How long a participant without signaling connection waits for `resume`.
    fn resume_grace(&self) -> Duration {
        Duration::from_secs(self.ctx.config.resume_grace_secs)
    }

    /// Queue a message to every participant.
    fn broadcast_all(&mut self, message: &ServerMessage) {
        self.broadcast_except(None, message);
    }

    /// Queue a message to one participant. What its session cannot take yet waits in its
    /// outbox, coalesced; only a session that takes nothing at all is removed (told
    /// `timeout`; its session counts it when its blocked send times out).
    fn send_to(&mut self, key: ParticipantId, message: ServerMessage) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if p.presence().is_signaling_lost() {
            // It gets the room's whole state again when it resumes.
            return;
        }
        let delivery = p.outbox_mut().send(message);
        self.outboxes_backlogged |= p.outbox().is_backlogged();
        self.delivered(key, delivery);
    }

    /// Act on what became of a message toward participant `key`.
    fn delivered(&mut self, key: ParticipantId, delivery: Delivery) {
        match delivery {
            Delivery::Queued => {}
            Delivery::Overflow => {
                if !self.to_remove.iter().any(|(k, _)| *k == key) {
                    self.to_remove.push((key, Some(LeaveReason::Timeout)));
                }
            }
            Delivery::SessionGone => {
                // Its session ended; whether it left or may resume comes next from the session.
                if let Some(p) = self.participants.get_mut(&key) {
                    p.presence_mut().signaling_lost(self.now);
                }
            }
        }
    }

    /// Move waiting messages onto the sessions' queues, as far as they have room.
    fn flush_outboxes(&mut self) {
        if !self.outboxes_backlogged {
            return;
        }
        let backlogged: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| p.outbox().is_backlogged() && !p.presence().is_signaling_lost())
            .map(|p| p.id())
            .collect();
        let mut still_backlogged = false;
        for key in backlogged {
            if let Some(p) = self.participants.get_mut(&key) {
                let delivery = p.outbox_mut().flush();
                self.delivered(key, delivery);
            }
            still_backlogged |= self
                .participants
                .get(&key)
                .is_some_and(|p| p.outbox().is_backlogged() && !p.presence().is_signaling_lost());
        }
        self.outboxes_backlogged = still_backlogged;
    }

    /// Refuse a participant's message with an `error` reply, counted as a signaling error.
    fn reply_error(&mut self, key: ParticipantId, code: signaling::ErrorCode, message: String) {
        crate::stats::count_signaling_error(&self.ctx.stats, code);
        self.send_to(key, ServerMessage::error(code, message));
    }

    /// Refuse a participant's offer, which is not answered: the `error` says so.
    fn refuse_offer(&mut self, key: ParticipantId, code: signaling::ErrorCode, message: String) {
        crate::stats::count_signaling_error(&self.ctx.stats, code);
        self.send_to(key, ServerMessage::offer_refused(code, message));
    }

    /// Queue a message to every participant but `except`.
    fn broadcast(&mut self, except: ParticipantId, message: &ServerMessage) {
        self.broadcast_except(Some(except), message);
    }

    fn broadcast_except(&mut self, except: Option<ParticipantId>, message: &ServerMessage) {
        let keys: Vec<ParticipantId> = self
            .participants
            .keys()
            .copied()
            .filter(|k| Some(*k) != except)
            .collect();
        for key in keys {
            self.send_to(key, message.clone());
        }
    }
}
