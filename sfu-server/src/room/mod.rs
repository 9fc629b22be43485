//! A room: one task owning every participant's `Rtc`, its producers and consumers.
//!
//! Signaling reaches the room as [`RoomCommand`]s; media arrives as
//! [`Datagram`]s from the UDP loop. Everything inside runs on the room's task,
//! so forwarding is a plain synchronous loop with no locks.

mod data;
mod forwarding;
mod lifecycle;
mod negotiation;
mod participant;
mod producer;
mod signal;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu_core::ids::RoomId;
use signaling::{LeaveReason, ProtocolError, ServerMessage};
use str0m::Event;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span};

use crate::registry::NodeContext;
use participant::Participant;
use producer::{Producer, ProducerKey};

/// Datagrams queued toward one room before new ones are dropped (and counted).
const DATAGRAM_QUEUE: usize = 4096;
/// Signaling commands queued toward one room.
const COMMAND_QUEUE: usize = 256;
/// Upper bound on how long the room sleeps when no participant needs a timeout sooner.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// A participant's key inside its room (never reused in a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParticipantKey(pub u64);

/// A datagram routed to a participant of this room.
#[derive(Debug)]
pub struct Datagram {
    /// The participant it is for.
    pub participant: ParticipantKey,
    /// Who sent it.
    pub source: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
    /// When it was read from the socket.
    pub at: Instant,
}

/// A request to join the room.
#[derive(Debug)]
pub struct JoinRequest {
    /// Display name.
    pub name: String,
    /// Subscribe to every track automatically.
    pub auto_subscribe: bool,
    /// Where the room sends this participant's messages.
    pub out: mpsc::Sender<Outbound>,
    /// The participant's key and id, or why it was refused.
    pub reply: oneshot::Sender<Result<(ParticipantKey, String), ProtocolError>>,
}

/// What a signaling session sends to its room.
#[derive(Debug)]
pub enum RoomCommand {
    /// A new participant.
    Join(JoinRequest),
    /// A client message of a joined participant.
    Signal(ParticipantKey, signaling::ClientMessage),
    /// The participant left or its socket closed.
    Leave(ParticipantKey),
}

/// What a room sends to a signaling session.
#[derive(Debug)]
pub enum Outbound {
    /// A message for the client.
    Message(ServerMessage),
    /// The server ends the session for this reason.
    End(LeaveReason),
}

/// Start a room task; returns its command queue.
pub fn spawn(id: RoomId, generation: u64, ctx: NodeContext) -> mpsc::Sender<RoomCommand> {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (datagram_tx, datagram_rx) = mpsc::channel(DATAGRAM_QUEUE);
    let span = info_span!("room", room = %id);
    let room = Room {
        id,
        generation,
        candidate_addrs: candidate_addrs(&ctx),
        ctx,
        datagram_tx,
        participants: HashMap::new(),
        producers: HashMap::new(),
        events: VecDeque::new(),
        to_remove: Vec::new(),
    };
    tokio::spawn(room.run(commands_rx, datagram_rx).instrument(span));
    commands_tx
}

fn candidate_addrs(ctx: &NodeContext) -> Vec<SocketAddr> {
    ctx.config
        .candidate_ips()
        .into_iter()
        .map(|ip| SocketAddr::new(ip, ctx.udp_addr.port()))
        .collect()
}

/// The room's state, owned by its task.
pub(crate) struct Room {
    id: RoomId,
    generation: u64,
    ctx: NodeContext,
    candidate_addrs: Vec<SocketAddr>,
    datagram_tx: mpsc::Sender<Datagram>,
    participants: HashMap<ParticipantKey, Participant>,
    producers: HashMap<ProducerKey, Producer>,
    /// Events drained from participants' `Rtc`s, handled in order.
    events: VecDeque<(ParticipantKey, Event)>,
    /// Participants to remove once the current step is done, with the reason told to them.
    to_remove: Vec<(ParticipantKey, Option<LeaveReason>)>,
}

impl Room {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<RoomCommand>,
        mut datagrams: mpsc::Receiver<Datagram>,
    ) {
        info!("room opened");
        loop {
            let deadline = self.next_deadline(Instant::now());
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                Some(datagram) = datagrams.recv() => self.handle_datagram(datagram),
                _ = tokio::time::sleep_until(deadline.into()) => self.handle_timeouts(Instant::now()),
            }
            self.settle();
            if self.participants.is_empty() {
                break;
            }
        }
        self.ctx.registry.remove_room(&self.id, self.generation);
        // Joins that raced with the closing are dropped here; their sessions retry on a new room.
        commands.close();
        while commands.try_recv().is_ok() {}
        info!("room closed");
    }

    fn handle_command(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join(request) => self.join(request),
            RoomCommand::Signal(key, message) => self.signal(key, message),
            RoomCommand::Leave(key) => self.to_remove.push((key, None)),
        }
    }

    /// Handle queued events and removals until nothing is left to do.
    fn settle(&mut self) {
        loop {
            if let Some((key, event)) = self.events.pop_front() {
                self.handle_event(key, event);
                continue;
            }
            if let Some((key, reason)) = self.to_remove.pop() {
                self.remove_participant(key, reason);
                continue;
            }
            break;
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        self.participants
            .values()
            .map(Participant::next_deadline)
            .fold(now + IDLE_TICK, Instant::min)
    }

    /// Queue a message to one participant; a client too slow to take it is removed.
    fn send_to(&mut self, key: ParticipantKey, message: ServerMessage) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        if p.out.try_send(Outbound::Message(message)).is_err() {
            crate::stats::bump(&self.ctx.stats.slow_clients_dropped);
            self.to_remove.push((key, Some(LeaveReason::Timeout)));
        }
    }

    /// Queue a message to every participant but `except`.
    fn broadcast(&mut self, except: ParticipantKey, message: &ServerMessage) {
        let keys: Vec<ParticipantKey> = self
            .participants
            .keys()
            .copied()
            .filter(|k| *k != except)
            .collect();
        for key in keys {
            self.send_to(key, message.clone());
        }
    }
}
