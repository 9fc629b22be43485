//! How a datagram finds its participant: the participant it is for, the datagram as the socket
//! loops hand it to a room, and the routing table from server ICE ufrag to participant.
//! Sockets, shards, rooms and the registry all share these; this module imports none of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use sfu_core::ids::ParticipantId;
use str0m::net::Protocol;
use tokio::sync::mpsc;

/// A datagram routed to a participant of a room.
#[derive(Debug)]
pub struct Datagram {
    /// The participant it is for.
    pub participant: ParticipantId,
    /// Who sent it.
    pub source: SocketAddr,
    /// The local address it was sent to, where the socket reports it.
    pub local: Option<IpAddr>,
    /// The bytes.
    pub data: Vec<u8>,
    /// UDP, or TCP when it came over an ICE-TCP connection.
    pub proto: Protocol,
    /// When it was read from the socket.
    pub at: Instant,
}

/// Where datagrams for one participant go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The room task's datagram queue.
    pub datagrams: mpsc::Sender<Datagram>,
    /// The participant inside that room.
    pub participant: ParticipantId,
    /// The server's ICE password of this ufrag: a STUN check that names the ufrag binds its
    /// source to the participant only when its MESSAGE-INTEGRITY verifies with it.
    pub ice_password: Arc<str>,
}

/// Server ICE ufrag → route. Rooms add an entry per participant and remove it when it leaves.
pub type Routes = Arc<DashMap<String, Route>>;
