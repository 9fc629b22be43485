//! UDP generic segmentation offload (GSO) for a subscriber's bursts: the datagrams str0m
//! releases for one participant in one drain go to one address, and consecutive ones of the
//! same size are handed to the kernel as one `sendmsg` with `UDP_SEGMENT`, which the kernel
//! splits into datagrams again. Where the kernel has no GSO, each datagram goes on its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use quinn_udp::{Transmit, UdpSocketState};
use tokio::net::UdpSocket;

use crate::stats::{Stats, add};

/// Datagrams coalesced into one send at most (the kernel's limit is 64).
const MAX_SEGMENTS: usize = 32;
/// Bytes of one coalesced send at most (the kernel's limit is 64 KiB).
const MAX_BATCH_BYTES: usize = 60 * 1024;

/// The datagrams waiting to go to one destination as one send.
pub struct UdpBatch {
    state: Option<Arc<UdpSocketState>>,
    buf: Vec<u8>,
    destination: Option<SocketAddr>,
    /// The local address they go out from, when the sender chose it.
    source: Option<IpAddr>,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the batch: GSO allows only the last segment to be short.
    closed: bool,
}

impl Clone for UdpBatch {
    /// A batch for another room over the same socket: shares the socket state, not the
    /// waiting datagrams.
    fn clone(&self) -> Self {
        Self::with_state(self.state.clone())
    }
}

impl UdpBatch {
    /// A batch for `socket`; without GSO support it sends every datagram on its own.
    ///
    /// The GSO capabilities are probed on a throwaway socket of the same family, because
    /// probing also switches on receive options (UDP GRO among them) that only a reader
    /// splitting GRO batches, as the media receive loop does, may have on its socket.
    pub fn new(socket: &UdpSocket) -> Self {
        let probe_addr = match socket.local_addr() {
            Ok(SocketAddr::V6(_)) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            _ => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        };
        let state = std::net::UdpSocket::bind(probe_addr)
            .and_then(|probe| UdpSocketState::new((&probe).into()))
            .ok()
            .map(Arc::new);
        Self::with_state(state)
    }

    fn with_state(state: Option<Arc<UdpSocketState>>) -> Self {
        Self {
            state,
            buf: Vec::new(),
            destination: None,
            source: None,
            segment: 0,
            count: 0,
            closed: false,
        }
    }

    /// Datagrams one send may carry now: quinn-udp lowers this to 1 when the kernel or the
    /// device turns GSO down at send time.
    fn max_segments(&self) -> usize {
        self.state
            .as_ref()
            .map_or(1, |s| s.max_gso_segments().clamp(1, MAX_SEGMENTS))
    }

    /// Queue `contents` for `destination`, from local address `source` (`None`: the
    /// kernel picks), sending what was queued first when it cannot share a send with this
    /// datagram.
    pub fn push(
        &mut self,
        socket: &UdpSocket,
        source: Option<IpAddr>,
        destination: SocketAddr,
        contents: &[u8],
        stats: &Stats,
    ) {
        let fits = self.count > 0
            && self.destination == Some(destination)
            && self.source == source
            && !self.closed
            && contents.len() <= self.segment
            && self.count < self.max_segments()
            && self.buf.len() + contents.len() <= MAX_BATCH_BYTES;
        if !fits {
            self.flush(socket, stats);
            self.destination = Some(destination);
            self.source = source;
            self.segment = contents.len();
        }
        self.buf.extend_from_slice(contents);
        self.count += 1;
        self.closed = contents.len() < self.segment;
    }

    /// Send everything queued. A full socket buffer drops the whole batch (counted, as UDP
    /// would); a batch the kernel refuses as GSO goes out again one datagram at a time.
    pub fn flush(&mut self, socket: &UdpSocket, stats: &Stats) {
        let Some(destination) = self.destination.take() else {
            return;
        };
        let segment_size = (self.count > 1).then_some(self.segment);
        let dropped = match self.send(socket, destination, &self.buf, segment_size) {
            Ok(()) => 0,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && self.count > 1 => {
                self.send_each(socket, destination)
            }
            Err(_) => self.count,
        };
        add(&stats.udp_send_dropped, dropped as u64);
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }

    /// Send the queued datagrams one per call; returns how many could not be sent.
    fn send_each(&self, socket: &UdpSocket, destination: SocketAddr) -> usize {
        self.buf
            .chunks(self.segment.max(1))
            .filter(|datagram| self.send(socket, destination, datagram, None).is_err())
            .count()
    }

    /// One send: through quinn-udp (GSO when `segment_size` is set, from the batch's source
    /// address when it has one), or a plain `send_to` without the socket state, where GSO is
    /// off and a batch holds exactly one datagram.
    fn send(
        &self,
        socket: &UdpSocket,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> std::io::Result<()> {
        match &self.state {
            Some(state) => {
                let transmit = Transmit {
                    destination,
                    ecn: None,
                    contents,
                    segment_size,
                    src_ip: self.source,
                };
                state.try_send(socket.into(), &transmit)
            }
            None => socket.try_send_to(contents, destination).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every datagram that arrives within 200 ms of the previous one, as (fill byte, length);
    /// a datagram not filled with one byte value shows as (255, 0).
    async fn receive_all(socket: &UdpSocket) -> Vec<(u8, usize)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
        {
            let uniform = buf[..n].iter().all(|b| *b == buf[0]);
            got.push(if uniform { (buf[0], n) } else { (255, 0) });
        }
        got
    }

    #[tokio::test]
    async fn every_datagram_arrives_whole_and_in_order() {
        // Requirement: coalescing is invisible to the receiver: the same datagrams, same
        // bytes, same order, whatever their sizes and destinations.
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind sender");
        let (to_a, to_b) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        let datagram = |i: u8, len: usize| vec![i; len];
        // A frame of equal packets and a short last one, a datagram for another
        // destination, one more for the first, then more than one batch's worth.
        let expected_a = [(1, 1200), (2, 1200), (3, 1200), (4, 700), (5, 1200)];
        for &(i, len) in &expected_a[..4] {
            batch.push(&sender, None, to_a, &datagram(i, len), &stats);
        }
        batch.push(&sender, None, to_b, &datagram(9, 300), &stats);
        batch.push(&sender, None, to_a, &datagram(5, 1200), &stats);
        for i in 0..40u8 {
            batch.push(&sender, None, to_b, &datagram(i, 100), &stats);
        }
        batch.flush(&sender, &stats);
        assert_eq!(receive_all(&a).await, expected_a);
        let expected_b: Vec<(u8, usize)> = std::iter::once((9, 300))
            .chain((0..40u8).map(|i| (i, 100)))
            .collect();
        assert_eq!(receive_all(&b).await, expected_b);
        assert_eq!(
            stats
                .udp_send_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn a_batch_refused_as_gso_goes_out_one_datagram_at_a_time() {
        // Requirement: when the kernel or device refuses a GSO send, no datagram is lost:
        // the same batch goes out again datagram by datagram, short last one included.
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind receiver");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind sender");
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        let to = receiver.local_addr().expect("receiver");
        for (i, len) in [(1u8, 1000), (2, 1000), (3, 400)] {
            batch.push(&sender, None, to, &vec![i; len], &stats);
        }
        assert_eq!(batch.send_each(&sender, to), 0);
        assert_eq!(
            receive_all(&receiver).await,
            [(1, 1000), (2, 1000), (3, 400)]
        );
    }

    #[tokio::test]
    async fn the_media_socket_still_receives_single_datagrams() {
        // Requirement: batching sends leaves the socket's receive side alone. A socket with
        // UDP GRO on would get a peer's GSO batch as one glued datagram from `recv_from`.
        let media = UdpSocket::bind("127.0.0.1:0").await.expect("bind media");
        let _media_batch = UdpBatch::new(&media);
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind peer");
        let stats = Stats::default();
        let mut peer_batch = UdpBatch::new(&peer);
        let to_media = media.local_addr().expect("media");
        for i in 0..4u8 {
            peer_batch.push(&peer, None, to_media, &[i; 1200], &stats);
        }
        peer_batch.flush(&peer, &stats);
        let expected: Vec<(u8, usize)> = (0..4u8).map(|i| (i, 1200)).collect();
        assert_eq!(receive_all(&media).await, expected);
    }

    #[tokio::test]
    async fn a_batch_goes_out_from_the_source_address_it_names() {
        // Requirement: from a socket bound to 0.0.0.0, a reply to a client that reached the
        // server's secondary address 127.0.0.2 comes from 127.0.0.2, not the kernel's pick.
        let sender = UdpSocket::bind("0.0.0.0:0").await.expect("bind wildcard");
        let port = sender.local_addr().expect("address").port();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind receiver");
        let to = receiver.local_addr().expect("address");
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        let mut buf = [0u8; 2048];
        for source in [[127, 0, 0, 2], [127, 0, 0, 1]] {
            for i in 0..2u8 {
                batch.push(&sender, Some(IpAddr::from(source)), to, &[i; 500], &stats);
            }
            batch.flush(&sender, &stats);
            for _ in 0..2 {
                let (_, from) =
                    tokio::time::timeout(Duration::from_secs(2), receiver.recv_from(&mut buf))
                        .await
                        .expect("datagram in time")
                        .expect("receive");
                assert_eq!(from, SocketAddr::from((source, port)));
            }
        }
    }
}
