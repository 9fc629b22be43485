//! What sends a participant's packets out: its media thread's UDP socket (batched, GSO) or
//! the ICE-TCP connection a packet belongs to. Rooms write through [`Egress`], which
//! [`MediaOut`] is on a live server (and a test's capture is in a room test); the socket
//! loops and the ICE-TCP acceptor fill in its parts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dashmap::DashMap;
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::stats::{Stats, bump};
use crate::udp_batch::UdpBatch;

/// The writer of each live ICE-TCP connection, by the client's address.
pub type TcpWriters = Arc<DashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>;

/// Where a room's outgoing packets go.
pub trait Egress: Send {
    /// Send one packet from local candidate `source` without waiting; what cannot be sent
    /// is dropped and counted.
    fn transmit(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        stats: &Stats,
    );

    /// Send what [`Egress::transmit`] queued.
    fn flush(&mut self, stats: &Stats);
}

/// Where a participant's outgoing packets go: the shared UDP socket, or the ICE-TCP
/// connection they belong to.
#[derive(Clone)]
pub struct MediaOut {
    /// Its media thread's UDP socket.
    pub udp: Arc<UdpSocket>,
    /// Live ICE-TCP connections.
    pub tcp: TcpWriters,
    /// UDP datagrams waiting to go out together (GSO) at the next flush.
    pub batch: UdpBatch,
    /// Local addresses a UDP packet names as its source when its candidate is one of them
    /// (see `udp::reply_addresses`).
    pub reply_from: Arc<[IpAddr]>,
}

impl MediaOut {
    /// Output over a UDP media socket and the node's ICE-TCP connections.
    pub fn new(udp: UdpSocket, tcp: TcpWriters, reply_from: Vec<IpAddr>) -> Self {
        Self {
            batch: UdpBatch::new(&udp),
            udp: Arc::new(udp),
            tcp,
            reply_from: reply_from.into(),
        }
    }
}

impl Egress for MediaOut {
    /// Send one packet from local candidate `source` without waiting: UDP ones queue in the
    /// batch until [`Self::flush`], TCP ones go to their connection's writer. A full buffer
    /// or a gone connection drops the packet (counted).
    fn transmit(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        stats: &Stats,
    ) {
        match proto {
            Protocol::Udp => {
                let from = self
                    .reply_from
                    .contains(&source.ip())
                    .then_some(source.ip());
                self.batch
                    .push(&self.udp, from, destination, contents, stats)
            }
            _ => {
                let sent = self
                    .tcp
                    .get(&destination)
                    .is_some_and(|writer| writer.try_send(contents.to_vec()).is_ok());
                if !sent {
                    bump(&stats.tcp_send_dropped);
                }
            }
        }
    }

    /// Send the queued UDP datagrams.
    fn flush(&mut self, stats: &Stats) {
        self.batch.flush(&self.udp, stats);
    }
}
