//! The one UDP socket's receive loop: route each datagram to its participant's room.
//!
//! A datagram is routed by the server ICE ufrag in its STUN USERNAME first; the
//! sender's address is then remembered, so later DTLS/SRTP datagrams from that
//! address follow the same route. Malformed datagrams (see [`datagram::classify`]) and
//! anything else without a route are dropped and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sfu_core::{datagram, stun};
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::registry::{Route, Routes};
use crate::room::Datagram;
use crate::stats::{Stats, add, bump};

/// Kernel buffer asked for in each direction. Every participant's media shares this one
/// socket, and the default (~200 KiB) overflows when many publishers' frames arrive at
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

/// Largest datagram accepted; WebRTC packets stay well under the MTU.
const MAX_DATAGRAM: usize = 2048;
/// Size at which stale address entries are first swept.
const ADDRESS_SWEEP_START: usize = 1024;

/// Read the socket forever, handing datagrams to room tasks without ever waiting on one.
pub async fn receive_loop(socket: Arc<UdpSocket>, routes: Routes, stats: Arc<Stats>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut by_address: HashMap<SocketAddr, String> = HashMap::new();
    let mut sweep_at = ADDRESS_SWEEP_START;
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors (e.g. port unreachable from a vanished peer) surface here; keep serving.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        bump(&stats.udp_received);
        add(&stats.udp_received_bytes, len as u64);
        let datagram = &buf[..len];
        if let Err(reason) = datagram::classify(datagram) {
            bump(&stats.udp_malformed);
            debug!(%source, %reason, "malformed datagram dropped");
            continue;
        }
        let Some(route) = find_route(datagram, source, &routes, &mut by_address) else {
            bump(&stats.udp_dropped);
            continue;
        };
        let item = Datagram {
            participant: route.participant,
            source,
            proto: Protocol::Udp,
            data: datagram.to_vec(),
            at: Instant::now(),
        };
        if route.datagrams.try_send(item).is_err() {
            bump(&stats.udp_dropped);
        }
        if by_address.len() >= sweep_at {
            by_address.retain(|_, ufrag| routes.contains_key(ufrag));
            sweep_at = (by_address.len() * 2).max(ADDRESS_SWEEP_START);
            if by_address.len() > 100_000 {
                warn!(entries = by_address.len(), "many live UDP peer addresses");
            }
        }
    }
}

fn find_route(
    datagram: &[u8],
    source: SocketAddr,
    routes: &Routes,
    by_address: &mut HashMap<SocketAddr, String>,
) -> Option<Route> {
    if let Some(ufrag) = stun::local_ufrag(datagram) {
        let route = routes.get(ufrag)?.clone();
        if by_address.get(&source).map(String::as_str) != Some(ufrag) {
            by_address.insert(source, ufrag.to_owned());
        }
        return Some(route);
    }
    let ufrag = by_address.get(&source)?;
    match routes.get(ufrag) {
        Some(route) => Some(route.clone()),
        None => {
            by_address.remove(&source);
            None
        }
    }
}
