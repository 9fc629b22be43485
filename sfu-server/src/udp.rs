//! A media socket's receive loop: route each datagram to its participant's room.
//!
//! A datagram is routed by the server ICE ufrag in its STUN USERNAME first; the
//! sender's address is then remembered, so later DTLS/SRTP datagrams from that
//! address follow the same route. Malformed datagrams (see [`datagram::classify`]) and
//! anything else without a route are dropped and counted.

use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState};
use sfu_core::datagram;
use str0m::net::Protocol;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::peer_addresses::PeerAddresses;
use crate::routing::{Datagram, Routes};
use crate::stats::{Stats, add, bump};

/// Kernel buffer asked for in each direction. Every participant of a media thread shares
/// its one socket, and the default (~200 KiB) overflows when many publishers' frames arrive at
/// once; Linux caps the request at `net.core.rmem_max` / `wmem_max`.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Bind the media socket with large kernel buffers. Returns it and the receive buffer
/// size the kernel granted.
pub fn bind_media_socket(addr: SocketAddr) -> std::io::Result<(UdpSocket, usize)> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, it only drops sooner under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size()?;
    Ok((UdpSocket::from_std(socket.into())?, granted))
}

/// The advertised addresses a reply names as its source. With the socket bound to a
/// wildcard address the kernel picks the source by route, so a client that reached a
/// secondary address would get answers from another one and drop them; every advertised
/// address of the bound family that is one of this host's interface addresses (`host`,
/// read at start) or loopback is named instead. Others, such as a NAT's public address,
/// cannot be a source and are left to the kernel. Empty for a socket bound to one address.
pub fn reply_addresses(bound: SocketAddr, advertised: &[IpAddr], host: &[IpAddr]) -> Vec<IpAddr> {
    if !bound.ip().is_unspecified() {
        return Vec::new();
    }
    advertised
        .iter()
        .copied()
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
        .filter(|ip| ip.is_loopback() || host.contains(ip))
        .collect()
}

/// Receive buffer: one datagram, or with UDP GRO up to 64 segments of one sender glued
/// together (the kernel's limit).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// One read from the socket: who sent it, the local address it was sent to (where the
/// kernel reports it), and the segment size when GRO glued several datagrams together.
struct Received {
    source: SocketAddr,
    local: Option<IpAddr>,
    len: usize,
    stride: usize,
}

/// Read the socket forever, handing datagrams to room tasks without ever waiting on one.
///
/// Reads go through quinn-udp, which asks the kernel for each datagram's destination
/// address (`IP_PKTINFO`): on a wildcard bind that tells the room which of its advertised
/// addresses the client used. Where quinn-udp cannot set the socket up, plain `recv_from`
/// is used and the destination is left unknown.
pub async fn receive_loop(socket: Arc<UdpSocket>, routes: Routes, stats: Arc<Stats>) {
    let state = UdpSocketState::new((&*socket).into())
        .inspect_err(
            |e| warn!(error = %e, "no per-datagram destination addresses on the UDP socket"),
        )
        .ok();
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut peers = PeerAddresses::default();
    loop {
        let received = match receive(&socket, state.as_ref(), &mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors (e.g. port unreachable from a vanished peer) surface here; keep serving.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let at = Instant::now();
        for datagram in segments(&buf[..received.len], received.stride) {
            route_datagram(datagram, &received, at, &routes, &mut peers, &stats);
        }
        peers.sweep(&routes);
    }
}

/// The datagrams of one read: `stride`-sized pieces of a GRO batch (the last may be
/// shorter), or the one datagram read, empty ones included (they are counted as malformed).
fn segments(read: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let empty = read.is_empty().then_some(read);
    read.chunks(stride.max(1)).chain(empty)
}

/// Wait for the next read from the socket into `buf`.
async fn receive(
    socket: &UdpSocket,
    state: Option<&UdpSocketState>,
    buf: &mut [u8],
) -> std::io::Result<Received> {
    let Some(state) = state else {
        let (len, source) = socket.recv_from(buf).await?;
        return Ok(Received {
            source,
            local: None,
            len,
            stride: len,
        });
    };
    let mut meta = [RecvMeta::default()];
    socket
        .async_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut [IoSliceMut::new(buf)], &mut meta)
        })
        .await?;
    let [meta] = meta;
    Ok(Received {
        source: meta.addr,
        local: meta.dst_ip.map(|ip| ip.to_canonical()),
        len: meta.len,
        stride: meta.stride,
    })
}

/// Check one datagram and queue it to its participant's room, or drop and count it.
fn route_datagram(
    datagram: &[u8],
    received: &Received,
    at: Instant,
    routes: &Routes,
    peers: &mut PeerAddresses,
    stats: &Stats,
) {
    let source = received.source;
    bump(&stats.udp_received);
    add(&stats.udp_received_bytes, datagram.len() as u64);
    if let Err(reason) = datagram::classify(datagram) {
        bump(&stats.udp_malformed);
        debug!(%source, %reason, "malformed datagram dropped");
        return;
    }
    let Some(route) = peers.route(datagram, source, at, routes) else {
        bump(&stats.udp_dropped);
        return;
    };
    let item = Datagram {
        participant: route.participant,
        source,
        local: received.local,
        proto: Protocol::Udp,
        data: datagram.to_vec(),
        at,
    };
    if route.datagrams.try_send(item).is_err() {
        bump(&stats.udp_dropped);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::routing::Route;
    use crate::udp_batch::UdpBatch;
    use sfu_core::ids::ParticipantId;

    /// The server ICE password of every test route.
    pub(crate) const TEST_ICE_PASSWORD: &str = "test-server-ice-password";

    /// A STUN binding request whose USERNAME names `ufrag` as the server's, signed with
    /// [`TEST_ICE_PASSWORD`].
    pub(crate) fn binding_request(ufrag: &str) -> Vec<u8> {
        crate::stun_auth::binding_request(ufrag, Some(TEST_ICE_PASSWORD))
    }

    /// A route to `participant` whose ufrag has [`TEST_ICE_PASSWORD`].
    pub(crate) fn test_route(
        datagrams: mpsc::Sender<crate::routing::Datagram>,
        participant: ParticipantId,
    ) -> Route {
        Route {
            datagrams,
            participant,
            ice_password: TEST_ICE_PASSWORD.into(),
        }
    }

    /// An SRTP-shaped datagram of `len` bytes with sequence number `seq`.
    fn rtp(seq: u8, len: usize) -> Vec<u8> {
        let mut packet = vec![0u8; len];
        packet[0] = 0x80;
        packet[1] = 96;
        packet[3] = seq;
        packet
    }

    #[tokio::test]
    async fn a_wildcard_socket_reports_the_address_each_datagram_was_sent_to() {
        // Requirement: bound to 0.0.0.0, the server learns which of its addresses a client
        // used (to answer from it), and a peer's GSO batch still reaches the room as
        // separate datagrams.
        let (socket, _) =
            bind_media_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).expect("bind wildcard");
        let port = socket.local_addr().expect("address").port();
        let routes: Routes = Arc::default();
        let (room_tx, mut room_rx) = mpsc::channel(16);
        routes.insert(
            "srvufrag".to_owned(),
            test_route(room_tx, ParticipantId::new(1)),
        );
        let stats = Arc::new(Stats::default());
        tokio::spawn(receive_loop(Arc::new(socket), routes, stats.clone()));

        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind peer");
        let secondary = SocketAddr::from(([127, 0, 0, 2], port));
        peer.send_to(&binding_request("srvufrag"), secondary)
            .await
            .expect("send check");
        let mut batch = UdpBatch::new(&peer);
        for seq in 0..3 {
            batch.push(&peer, None, secondary, &rtp(seq, 1200), &stats);
        }
        batch.flush(&peer, &stats);

        let mut got = Vec::new();
        for _ in 0..4 {
            let datagram = tokio::time::timeout(Duration::from_secs(2), room_rx.recv())
                .await
                .expect("datagram routed in time")
                .expect("route open");
            got.push((datagram.local, datagram.data.len(), datagram.data[3]));
        }
        let local = Some(IpAddr::from([127, 0, 0, 2]));
        let stun = binding_request("srvufrag");
        assert_eq!(
            got,
            vec![
                (local, stun.len(), stun[3]),
                (local, 1200, 0),
                (local, 1200, 1),
                (local, 1200, 2)
            ]
        );
    }

    #[tokio::test]
    async fn empty_and_unknown_datagrams_are_counted_as_malformed() {
        // Requirement: nothing the socket reads is dropped silently, an empty datagram
        // included.
        let (socket, _) = bind_media_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind media socket");
        let to = socket.local_addr().expect("address");
        let stats = Arc::new(Stats::default());
        tokio::spawn(receive_loop(
            Arc::new(socket),
            Routes::default(),
            stats.clone(),
        ));
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind peer");
        for datagram in [&[][..], &[0xFF, 1, 2, 3][..]] {
            peer.send_to(datagram, to).await.expect("send");
        }
        let counted = async {
            while stats
                .udp_malformed
                .load(std::sync::atomic::Ordering::Relaxed)
                < 2
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(2), counted)
            .await
            .expect("both datagrams counted as malformed");
        assert_eq!(
            stats
                .udp_received
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn replies_name_only_owned_addresses_and_only_on_a_wildcard_bind() {
        // Requirement: a NAT's public address is never used as a source (the send would
        // fail), even where the kernel would let a socket bind it (ip_nonlocal_bind), and a
        // socket bound to one address needs no explicit source.
        let loopback = IpAddr::from([127, 0, 0, 2]);
        let interface = IpAddr::from([10, 0, 0, 5]);
        let not_owned = IpAddr::from([192, 0, 2, 1]);
        let v6 = IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        let host = [IpAddr::from([127, 0, 0, 1]), interface];
        let wildcard = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 50000));
        assert_eq!(
            reply_addresses(wildcard, &[loopback, not_owned, interface, v6], &host),
            vec![loopback, interface]
        );
        let bound = SocketAddr::from(([127, 0, 0, 1], 50000));
        assert!(reply_addresses(bound, &[loopback], &host).is_empty());
    }
}
