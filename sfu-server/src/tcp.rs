//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing) for clients whose UDP is
//! blocked.
//!
//! Each accepted connection carries one participant's STUN, DTLS and SRTP as frames with
//! a 16-bit length prefix. Its first frame must be a STUN check naming a participant's
//! ufrag: that routes the connection. Frames then go to the room like UDP datagrams, and
//! what the room transmits to the connection's remote address goes back through the
//! connection's writer (see [`crate::egress::MediaOut`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sfu_core::ids::ParticipantId;
use sfu_core::{datagram, stun};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, info};

use crate::egress::TcpWriters;
use crate::routing::{Datagram, Route, Routes};
use crate::stats::{Stats, add, bump};
use crate::stun_auth;

/// Frames queued toward one TCP client before more are dropped (as UDP would drop them).
const WRITE_QUEUE: usize = 1024;
/// Time a new connection has to send its first STUN check.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// A routed connection silent for this long is closed (ICE consent checks come every few
/// seconds while a participant is alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time one frame may take to be written before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections that have not yet named a participant, at most; more are closed at once.
const MAX_UNROUTED: usize = 256;
/// Connections one participant may hold at once (a browser opens one per ICE-TCP candidate
/// pair it checks, and those of an ICE restart overlap the old ones for a while); more are
/// refused, so that naming a ufrag cannot hold descriptors without end.
const MAX_PER_PARTICIPANT: usize = 8;

/// Accept ICE-TCP connections forever.
pub async fn accept_loop(
    listener: TcpListener,
    routes: Routes,
    writers: TcpWriters,
    stats: Arc<Stats>,
) {
    let unrouted = Arc::new(Semaphore::new(MAX_UNROUTED));
    let per_participant = PerParticipant::default();
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Ok(permit) = unrouted.clone().try_acquire_owned() else {
                    bump(&stats.tcp_refused);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    remote,
                    routes: routes.clone(),
                    writers: writers.clone(),
                    per_participant: per_participant.clone(),
                    stats: stats.clone(),
                };
                tokio::spawn(connection.serve(stream, permit));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One accepted ICE-TCP connection and what it needs from the node.
struct Connection {
    remote: SocketAddr,
    routes: Routes,
    writers: TcpWriters,
    per_participant: PerParticipant,
    stats: Arc<Stats>,
}

/// Live routed connections per participant.
#[derive(Clone, Default)]
struct PerParticipant(Arc<DashMap<ParticipantId, usize>>);

impl PerParticipant {
    /// Count one more connection of `participant`, unless it holds [`MAX_PER_PARTICIPANT`].
    fn admit(&self, participant: ParticipantId) -> Option<ParticipantSlot> {
        let mut count = self.0.entry(participant).or_insert(0);
        if *count >= MAX_PER_PARTICIPANT {
            return None;
        }
        *count += 1;
        Some(ParticipantSlot {
            counts: self.clone(),
            participant,
        })
    }
}

/// One counted connection of a participant, uncounted when dropped.
struct ParticipantSlot {
    counts: PerParticipant,
    participant: ParticipantId,
}

impl Drop for ParticipantSlot {
    fn drop(&mut self) {
        if let Some(mut count) = self.counts.0.get_mut(&self.participant) {
            *count = count.saturating_sub(1);
        }
        self.counts
            .0
            .remove_if(&self.participant, |_, count| *count == 0);
    }
}

impl Connection {
    /// Route the connection by its first STUN check, then pass frames both ways until
    /// either side ends, the connection idles, or its participant is gone.
    async fn serve(self, stream: TcpStream, unrouted: OwnedSemaphorePermit) {
        let remote = self.remote;
        let (mut reader, writer) = stream.into_split();
        let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut reader)).await;
        let Ok(Some(first)) = first else {
            bump(&self.stats.tcp_refused);
            return;
        };
        let Some((mut ufrag, mut route)) = verified_route(&self.routes, &first) else {
            bump(&self.stats.tcp_refused);
            debug!(%remote, "ICE-TCP connection without a verified check for a known ufrag refused");
            return;
        };
        drop(unrouted);
        let Some(_slot) = self.per_participant.admit(route.participant) else {
            bump(&self.stats.tcp_refused);
            debug!(%remote, participant = ?route.participant, "ICE-TCP connection over the participant's limit refused");
            return;
        };
        info!(%remote, participant = ?route.participant, "ICE-TCP connection");
        let (tx, rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        self.writers.insert(remote, tx.clone());
        let mut write_half = tokio::spawn(write_frames(writer, rx, self.stats.clone()));
        let mut next = Some(first);
        while let Some(frame) = next {
            add(&self.stats.tcp_received_bytes, frame.len() as u64);
            bump(&self.stats.tcp_received);
            if !self.deliver(frame, &mut ufrag, &mut route) {
                break;
            }
            // A writer that gave up (its client stopped reading) ends the connection: reading
            // on would keep it open with nothing ever sent back.
            next = tokio::select! {
                frame = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader)) => frame.ok().flatten(),
                _ = &mut write_half => {
                    debug!(%remote, "ICE-TCP writes stalled; closing the connection");
                    None
                }
            };
        }
        // A newer connection from the same address keeps its own writer.
        self.writers
            .remove_if(&remote, |_, current| current.same_channel(&tx));
        write_half.abort();
        info!(%remote, "ICE-TCP connection closed");
    }

    /// Hand one frame to the connection's room; false once its participant or room is gone.
    fn deliver(&self, frame: Vec<u8>, ufrag: &mut String, route: &mut Route) -> bool {
        if datagram::classify(&frame).is_err() {
            bump(&self.stats.tcp_malformed);
            return true;
        }
        // An ICE restart moves the participant to a new ufrag on the same connection; a
        // connection never moves to another participant (it holds its place under this
        // participant's cap), and a check that does not verify is dropped.
        if stun::local_ufrag(&frame).is_some() {
            match verified_route(&self.routes, &frame) {
                Some((moved_ufrag, moved)) if moved.participant == route.participant => {
                    *ufrag = moved_ufrag;
                    *route = moved;
                }
                _ => {
                    bump(&self.stats.tcp_dropped);
                    return self.routes.contains_key(ufrag.as_str());
                }
            }
        } else if !self.routes.contains_key(ufrag.as_str()) {
            return false;
        }
        let item = Datagram {
            participant: route.participant,
            source: self.remote,
            local: None,
            proto: Protocol::Tcp,
            data: frame,
            at: Instant::now(),
        };
        match route.datagrams.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&self.stats.tcp_dropped);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Write queued frames with their length prefix until the queue closes or a write stalls.
async fn write_frames(
    mut writer: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    stats: Arc<Stats>,
) {
    while let Some(frame) = frames.recv().await {
        let Ok(len) = u16::try_from(frame.len()) else {
            // RFC 4571 frames carry at most 65,535 bytes.
            bump(&stats.tcp_send_dropped);
            continue;
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            writer.write_all(&len.to_be_bytes()).await?;
            writer.write_all(&frame).await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            break;
        }
    }
}

/// The next RFC 4571 frame, `None` at the end of the stream or on an error.
async fn read_frame(reader: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    reader.read_exact(&mut len).await.ok()?;
    let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

/// The ufrag and route a STUN check names, when its MESSAGE-INTEGRITY verifies.
fn verified_route(routes: &Routes, frame: &[u8]) -> Option<(String, Route)> {
    let ufrag = stun::local_ufrag(frame)?;
    let route = routes.get(ufrag)?;
    stun_auth::verified(frame, &route.ice_password).then(|| (ufrag.to_owned(), route.clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::udp::tests::{binding_request, test_route};

    /// A connection to `addr` whose first frame is a check naming `srvufrag`.
    async fn connect_with_check(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let check = binding_request("srvufrag");
        let len = u16::try_from(check.len()).expect("short check");
        stream.write_all(&len.to_be_bytes()).await.expect("write");
        stream.write_all(&check).await.expect("write");
        stream
    }

    /// An accept loop on a loopback port, routing ufrag `srvufrag` to one participant.
    struct Accepting {
        addr: SocketAddr,
        routes: Routes,
        writers: TcpWriters,
        stats: Arc<Stats>,
        room: mpsc::Receiver<Datagram>,
    }

    impl Accepting {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let routes: Routes = Arc::default();
            let (datagrams, room) = mpsc::channel(64);
            routes.insert(
                "srvufrag".to_owned(),
                test_route(datagrams, ParticipantId::new(1)),
            );
            let (writers, stats) = (TcpWriters::default(), Arc::new(Stats::default()));
            tokio::spawn(accept_loop(
                listener,
                routes.clone(),
                writers.clone(),
                stats.clone(),
            ));
            Self {
                addr,
                routes,
                writers,
                stats,
                room,
            }
        }
    }

    /// Wait for the next datagram the connections route to the room.
    async fn routed(room: &mut mpsc::Receiver<Datagram>) {
        tokio::time::timeout(Duration::from_secs(2), room.recv())
            .await
            .expect("routed in time")
            .expect("route open");
    }

    #[tokio::test]
    async fn a_connection_whose_writes_stall_is_closed() {
        // Requirement: when a client stops reading, its connection is closed once a write has
        // stalled for WRITE_TIMEOUT, not kept reading (and routing) with nothing sent back.
        let node = Accepting::start().await;
        let (addr, writers, mut room_rx) = (node.addr, node.writers, node.room);
        let mut client = connect_with_check(addr).await;
        routed(&mut room_rx).await;
        let writer = writers.iter().next().expect("a writer").value().clone();
        // More than the kernel buffers hold, while the client reads nothing.
        for _ in 0..WRITE_QUEUE {
            if writer.try_send(vec![0u8; 60_000]).is_err() {
                break;
            }
        }
        tokio::time::sleep(WRITE_TIMEOUT + Duration::from_secs(1)).await;
        assert!(writers.is_empty(), "its writer is still listed");
        // What the client sends now no longer reaches the room: the connection is closed.
        let check = binding_request("srvufrag");
        let len = u16::try_from(check.len()).expect("short check");
        let _ = client.write_all(&len.to_be_bytes()).await;
        let _ = client.write_all(&check).await;
        let late = tokio::time::timeout(Duration::from_secs(1), room_rx.recv()).await;
        assert!(
            !matches!(late, Ok(Some(_))),
            "a frame read after the writes stalled"
        );
    }

    #[tokio::test]
    async fn a_participant_holds_a_bounded_number_of_connections() {
        // Requirement: naming a participant's ufrag does not let a client hold connections
        // (and descriptors) without end: beyond the limit they are refused and counted, and a
        // closed one frees its place.
        let node = Accepting::start().await;
        let (addr, stats, mut room_rx) = (node.addr, node.stats, node.room);

        let mut held = Vec::new();
        for _ in 0..MAX_PER_PARTICIPANT {
            held.push(connect_with_check(addr).await);
            routed(&mut room_rx).await;
        }
        for _ in 0..2 {
            let mut refused = connect_with_check(addr).await;
            let mut buf = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut buf))
                .await
                .expect("closed in time");
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
        assert_eq!(stats.tcp_refused.load(Ordering::Relaxed), 2);

        drop(held.remove(0));
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.push(connect_with_check(addr).await);
        routed(&mut room_rx).await;
        assert_eq!(stats.tcp_refused.load(Ordering::Relaxed), 2);
    }

    /// Send one RFC 4571 frame.
    async fn send_frame(stream: &mut TcpStream, frame: &[u8]) {
        let len = u16::try_from(frame.len()).expect("short frame");
        stream.write_all(&len.to_be_bytes()).await.expect("write");
        stream.write_all(frame).await.expect("write");
    }

    #[tokio::test]
    async fn only_verified_checks_route_a_connection() {
        // Requirement: a connection is routed only by a check whose MESSAGE-INTEGRITY verifies;
        // once routed it cannot move to another participant's ufrag (escaping that
        // participant's cap), and unverified checks on it are dropped.
        let node = Accepting::start().await;
        let (addr, stats, mut room_rx) = (node.addr, node.stats, node.room);
        let mut forged = TcpStream::connect(addr).await.expect("connect");
        send_frame(
            &mut forged,
            &crate::stun_auth::binding_request("srvufrag", None),
        )
        .await;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), forged.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "an unsigned first check is refused: {read:?}"
        );
        assert_eq!(stats.tcp_refused.load(Ordering::Relaxed), 1);

        let (other_tx, mut other_rx) = mpsc::channel(4);
        node.routes.insert(
            "other".to_owned(),
            test_route(other_tx, ParticipantId::new(2)),
        );
        let mut client = connect_with_check(addr).await;
        routed(&mut room_rx).await;
        send_frame(&mut client, &binding_request("other")).await;
        send_frame(
            &mut client,
            &crate::stun_auth::binding_request("srvufrag", None),
        )
        .await;
        send_frame(&mut client, &binding_request("srvufrag")).await;
        routed(&mut room_rx).await;
        assert!(
            other_rx.try_recv().is_err(),
            "the connection moved to another participant"
        );
        assert!(
            room_rx.try_recv().is_err(),
            "an unverified check was routed"
        );
    }
}
