//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing) for clients whose UDP is
//! blocked.
//!
//! Each accepted connection carries one participant's STUN, DTLS and SRTP as frames with
//! a 16-bit length prefix. Its first frame must be a STUN check naming a participant's
//! ufrag: that routes the connection. Frames then go to the room like UDP datagrams, and
//! what the room transmits to the connection's remote address goes back through the
//! connection's writer (see [`MediaOut`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sfu_core::{datagram, stun};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::registry::{Route, Routes};
use crate::room::Datagram;
use crate::stats::{Stats, add, bump};

/// The writer of each live ICE-TCP connection, by the client's address.
pub type TcpWriters = Arc<DashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>;

/// Frames queued toward one TCP client before more are dropped (as UDP would drop them).
const WRITE_QUEUE: usize = 1024;
/// Time a new connection has to send its first STUN check.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a participant's outgoing packets go: the shared UDP socket, or the ICE-TCP
/// connection they belong to.
#[derive(Clone)]
pub struct MediaOut {
    /// The one UDP media socket.
    pub udp: Arc<UdpSocket>,
    /// Live ICE-TCP connections.
    pub tcp: TcpWriters,
}

impl MediaOut {
    /// Send one packet without waiting; a full buffer or a gone connection drops it (counted).
    pub fn transmit(
        &self,
        proto: Protocol,
        destination: SocketAddr,
        contents: &[u8],
        stats: &Stats,
    ) {
        let sent = match proto {
            Protocol::Udp => self.udp.try_send_to(contents, destination).is_ok(),
            _ => self
                .tcp
                .get(&destination)
                .is_some_and(|writer| writer.try_send(contents.to_vec()).is_ok()),
        };
        if !sent {
            bump(&stats.udp_send_dropped);
        }
    }
}

/// Accept ICE-TCP connections forever.
pub async fn accept_loop(
    listener: TcpListener,
    routes: Routes,
    writers: TcpWriters,
    stats: Arc<Stats>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(
                    stream,
                    remote,
                    routes.clone(),
                    writers.clone(),
                    stats.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One connection: route it by its first STUN check, then pass frames both ways until
/// either side ends.
async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    routes: Routes,
    writers: TcpWriters,
    stats: Arc<Stats>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut reader)).await;
    let Ok(Some(first)) = first else {
        bump(&stats.tcp_refused);
        return;
    };
    let Some(mut route) =
        stun::local_ufrag(&first).and_then(|ufrag| routes.get(ufrag).map(|r| r.clone()))
    else {
        bump(&stats.tcp_refused);
        debug!(%remote, "ICE-TCP connection without a known ufrag refused");
        return;
    };
    info!(%remote, participant = ?route.participant, "ICE-TCP connection");
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    writers.insert(remote, tx);
    let write_half = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            if writer.write_all(&len.to_be_bytes()).await.is_err()
                || writer.write_all(&frame).await.is_err()
            {
                break;
            }
        }
    });
    let mut next = Some(first);
    while let Some(frame) = next {
        add(&stats.udp_received_bytes, frame.len() as u64);
        bump(&stats.udp_received);
        if !deliver(frame, remote, &routes, &mut route, &stats) {
            break;
        }
        next = read_frame(&mut reader).await;
    }
    writers.remove(&remote);
    write_half.abort();
    info!(%remote, "ICE-TCP connection closed");
}

/// Hand one frame to the connection's room; false once the room is gone.
fn deliver(
    frame: Vec<u8>,
    remote: SocketAddr,
    routes: &Routes,
    route: &mut Route,
    stats: &Stats,
) -> bool {
    if datagram::classify(&frame).is_err() {
        bump(&stats.udp_malformed);
        return true;
    }
    // An ICE restart moves the participant to a new ufrag on the same connection.
    if let Some(moved) =
        stun::local_ufrag(&frame).and_then(|ufrag| routes.get(ufrag).map(|r| r.clone()))
    {
        *route = moved;
    }
    let item = Datagram {
        participant: route.participant,
        source: remote,
        proto: Protocol::Tcp,
        data: frame,
        at: Instant::now(),
    };
    match route.datagrams.try_send(item) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            bump(&stats.udp_dropped);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
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
