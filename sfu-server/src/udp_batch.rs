//! A pass's outgoing UDP datagrams, in as few system calls and kernel traversals as the
//! kernel allows. At the end of a pass the datagrams are grouped by destination (in the
//! order each destination first appeared, each one's own in the order queued), and a
//! destination's consecutive datagrams of the same size become one message with
//! `UDP_SEGMENT` (GSO), which the kernel splits into datagrams again: a pass forwarding
//! three packets of a frame to fifty subscribers makes fifty messages of three, not 150
//! datagrams. Single-datagram messages from one source leave together in one `sendmmsg`.
//! Where the kernel has no GSO, each datagram goes on its own.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use quinn_udp::{Transmit, UdpSocketState};
use tokio::net::UdpSocket;

use crate::stats::{Stats, add};

/// Datagrams coalesced into one GSO message at most (the kernel's limit is 64).
const MAX_SEGMENTS: usize = 32;
/// Bytes of one GSO message at most (the kernel's limit is 64 KiB).
const MAX_BATCH_BYTES: usize = 60 * 1024;
/// Messages queued before they are sent without waiting for the pass to end.
const MAX_MESSAGES: usize = 256;
/// Bytes queued before they are sent without waiting for the pass to end.
const MAX_QUEUED_BYTES: usize = 512 * 1024;

/// One queued message: datagrams for one destination, back to back in the queue's bytes.
#[derive(Debug, Clone, Copy)]
struct Message {
    destination: SocketAddr,
    /// The local address it goes out from, when the sender chose it.
    source: Option<IpAddr>,
    start: usize,
    bytes: usize,
    /// The size of every datagram but the last.
    segment: usize,
    count: usize,
    /// Its last datagram is shorter than the segment: GSO allows only the last one to be.
    closed: bool,
}

impl Message {
    /// Whether a datagram of `len` bytes for `destination` from `source` may join it.
    fn takes(
        &self,
        destination: SocketAddr,
        source: Option<IpAddr>,
        len: usize,
        max_segments: usize,
    ) -> bool {
        self.destination == destination
            && self.source == source
            && !self.closed
            && len <= self.segment
            && self.count < max_segments
            && self.bytes + len <= MAX_BATCH_BYTES
    }
}

/// Add `contents` for `destination` from `source` to the last of `messages` when it takes
/// it, or as a new message; its bytes go to the end of `buf`.
fn append(
    messages: &mut Vec<Message>,
    buf: &mut Vec<u8>,
    destination: SocketAddr,
    source: Option<IpAddr>,
    contents: &[u8],
    max_segments: usize,
) {
    let len = contents.len();
    match messages.last_mut() {
        Some(last) if last.takes(destination, source, len, max_segments) => {
            last.bytes += len;
            last.count += 1;
            last.closed = len < last.segment;
        }
        _ => messages.push(Message {
            destination,
            source,
            start: buf.len(),
            bytes: len,
            segment: len,
            count: 1,
            closed: false,
        }),
    }
    buf.extend_from_slice(contents);
}

/// The datagrams waiting to be sent at the end of a pass.
pub struct UdpBatch {
    state: Option<Arc<UdpSocketState>>,
    buf: Vec<u8>,
    messages: Vec<Message>,
    /// The socket is IPv6 (IPv4 addresses go as IPv4-mapped ones).
    v6_socket: bool,
    /// Reused while grouping: the bytes and messages regrouped by destination, each
    /// destination's rank, and each message's (rank, index).
    grouped_buf: Vec<u8>,
    grouped: Vec<Message>,
    ranks: HashMap<(SocketAddr, Option<IpAddr>), usize>,
    order: Vec<(usize, usize)>,
}

impl Clone for UdpBatch {
    /// A batch for another room over the same socket: shares the socket state, not the
    /// waiting datagrams.
    fn clone(&self) -> Self {
        Self::with_state(self.state.clone(), self.v6_socket)
    }
}

impl UdpBatch {
    /// A batch for `socket`; without GSO support it sends every datagram on its own.
    ///
    /// The GSO capabilities are probed on a throwaway socket of the same family, because
    /// probing also switches on receive options (UDP GRO among them) that only a reader
    /// splitting GRO batches, as the media receive loop does, may have on its socket.
    pub fn new(socket: &UdpSocket) -> Self {
        let v6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        let probe_addr = if v6_socket {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
        };
        let state = std::net::UdpSocket::bind(probe_addr)
            .and_then(|probe| UdpSocketState::new((&probe).into()))
            .ok()
            .map(Arc::new);
        Self::with_state(state, v6_socket)
    }

    fn with_state(state: Option<Arc<UdpSocketState>>, v6_socket: bool) -> Self {
        Self {
            state,
            buf: Vec::new(),
            messages: Vec::new(),
            v6_socket,
            grouped_buf: Vec::new(),
            grouped: Vec::new(),
            ranks: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Datagrams one message may carry now: quinn-udp lowers this to 1 when the kernel or
    /// the device turns GSO down at send time.
    fn max_segments(&self) -> usize {
        self.state
            .as_ref()
            .map_or(1, |s| s.max_gso_segments().clamp(1, MAX_SEGMENTS))
    }

    /// Queue `contents` for `destination`, from local address `source` (`None`: the
    /// kernel picks); a full queue is sent first.
    pub fn push(
        &mut self,
        socket: &UdpSocket,
        source: Option<IpAddr>,
        destination: SocketAddr,
        contents: &[u8],
        stats: &Stats,
    ) {
        let max_segments = self.max_segments();
        let joins = self
            .messages
            .last()
            .is_some_and(|last| last.takes(destination, source, contents.len(), max_segments));
        if !joins
            && (self.messages.len() >= MAX_MESSAGES
                || self.buf.len() + contents.len() > MAX_QUEUED_BYTES)
        {
            self.flush(socket, stats);
        }
        append(
            &mut self.messages,
            &mut self.buf,
            destination,
            source,
            contents,
            max_segments,
        );
    }

    /// Send everything queued, grouped by destination: runs of single-datagram messages
    /// from the same source in one `sendmmsg`, GSO messages one by one. A full socket
    /// buffer drops what it refuses (counted, as UDP would); a message the kernel refuses
    /// as GSO goes out again one datagram at a time.
    pub fn flush(&mut self, socket: &UdpSocket, stats: &Stats) {
        self.group_by_destination();
        let mut dropped = 0;
        let mut i = 0;
        while i < self.messages.len() {
            let first = self.messages[i];
            let run = if first.count == 1 && self.state.is_some() {
                self.messages[i..]
                    .iter()
                    .take_while(|m| m.count == 1 && m.source == first.source)
                    .count()
            } else {
                1
            };
            dropped += if run > 1 {
                self.send_many(socket, &self.messages[i..i + run])
            } else {
                self.send_message(socket, &first)
            };
            i += run;
        }
        add(&stats.udp_send_dropped, dropped as u64);
        self.buf.clear();
        self.messages.clear();
    }

    /// Regroup the queued messages by destination and source, in the order each first
    /// appeared, merging each destination's datagrams into as few messages as GSO allows.
    /// Nothing changes when every message has a destination of its own.
    fn group_by_destination(&mut self) {
        if self.messages.len() < 2 {
            return;
        }
        self.ranks.clear();
        self.order.clear();
        for (i, m) in self.messages.iter().enumerate() {
            let next = self.ranks.len();
            let rank = *self.ranks.entry((m.destination, m.source)).or_insert(next);
            self.order.push((rank, i));
        }
        if self.ranks.len() == self.messages.len() {
            return;
        }
        self.order.sort_unstable();
        let max_segments = self.max_segments();
        self.grouped_buf.clear();
        self.grouped.clear();
        for &(_, i) in &self.order {
            let m = self.messages[i];
            for datagram in self.buf[m.start..m.start + m.bytes].chunks(m.segment.max(1)) {
                append(
                    &mut self.grouped,
                    &mut self.grouped_buf,
                    m.destination,
                    m.source,
                    datagram,
                    max_segments,
                );
            }
        }
        std::mem::swap(&mut self.buf, &mut self.grouped_buf);
        std::mem::swap(&mut self.messages, &mut self.grouped);
    }

    /// The datagrams of `message`, back to back.
    fn bytes_of(&self, message: &Message) -> &[u8] {
        &self.buf[message.start..message.start + message.bytes]
    }

    /// One message on its own; returns how many of its datagrams could not be sent.
    fn send_message(&self, socket: &UdpSocket, message: &Message) -> usize {
        let segment_size = (message.count > 1).then_some(message.segment);
        match self.send(socket, message, self.bytes_of(message), segment_size) {
            Ok(()) => 0,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && message.count > 1 => {
                self.send_each(socket, message)
            }
            Err(_) => message.count,
        }
    }

    /// Single-datagram `messages` from one source in as few `sendmmsg` calls as the
    /// kernel takes; returns how many could not be sent. A message the kernel refuses
    /// for another reason than a full buffer is tried again on its own.
    fn send_many(&self, socket: &UdpSocket, messages: &[Message]) -> usize {
        let v6_socket = self.v6_socket;
        let slices: Vec<[IoSlice<'_>; 1]> = messages
            .iter()
            .map(|m| [IoSlice::new(self.bytes_of(m))])
            .collect();
        let addresses: Vec<Option<SockaddrStorage>> = messages
            .iter()
            .map(|m| {
                Some(SockaddrStorage::from(wire_address(
                    m.destination,
                    v6_socket,
                )))
            })
            .collect();
        let info = messages[0].source.map(|ip| PacketInfo::new(ip, v6_socket));
        let cmsgs: Vec<ControlMessage<'_>> = info.iter().map(PacketInfo::message).collect();
        let space = info.as_ref().map(PacketInfo::space);
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(messages.len(), space);
        let (mut done, mut dropped) = (0, 0);
        while done < messages.len() {
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                &slices[done..],
                &addresses[done..],
                &cmsgs,
                MsgFlags::empty(),
            )
            .map(Iterator::count);
            match sent {
                Ok(n) if n > 0 => done += n,
                Err(Errno::EAGAIN) => {
                    dropped += 1;
                    done += 1;
                }
                _ => {
                    dropped += self.send_message(socket, &messages[done]);
                    done += 1;
                }
            }
        }
        dropped
    }

    /// The datagrams of a GSO `message` one per call; returns how many could not be sent.
    fn send_each(&self, socket: &UdpSocket, message: &Message) -> usize {
        self.bytes_of(message)
            .chunks(message.segment.max(1))
            .filter(|datagram| self.send(socket, message, datagram, None).is_err())
            .count()
    }

    /// One send: through quinn-udp (GSO when `segment_size` is set, from the message's
    /// source address when it has one), or a plain `send_to` without the socket state,
    /// where GSO is off and a message holds exactly one datagram.
    fn send(
        &self,
        socket: &UdpSocket,
        message: &Message,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> std::io::Result<()> {
        match &self.state {
            Some(state) => {
                let transmit = Transmit {
                    destination: message.destination,
                    ecn: None,
                    contents,
                    segment_size,
                    src_ip: message.source,
                };
                state.try_send(socket.into(), &transmit)
            }
            None => socket
                .try_send_to(contents, message.destination)
                .map(|_| ()),
        }
    }
}

/// `destination` as the socket takes it: an IPv4 address becomes IPv4-mapped on an IPv6
/// socket.
fn wire_address(destination: SocketAddr, v6_socket: bool) -> SocketAddr {
    match destination {
        SocketAddr::V4(v4) if v6_socket => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        other => other,
    }
}

/// The control message that names a datagram's source address (`IP_PKTINFO` or
/// `IPV6_PKTINFO`, by the socket's family).
enum PacketInfo {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl PacketInfo {
    fn new(source: IpAddr, v6_socket: bool) -> Self {
        match source {
            IpAddr::V4(ip) if !v6_socket => Self::V4(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            other => {
                let ip = match other {
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                    IpAddr::V6(ip) => ip,
                };
                Self::V6(libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                })
            }
        }
    }

    fn message(&self) -> ControlMessage<'_> {
        match self {
            Self::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Self::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        }
    }

    /// A buffer with room for exactly this one control message: the kernel reads all of
    /// it as control messages.
    fn space(&self) -> Vec<u8> {
        match self {
            Self::V4(_) => nix::cmsg_space!(libc::in_pktinfo),
            Self::V6(_) => nix::cmsg_space!(libc::in6_pktinfo),
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
        let message = batch.messages[0];
        assert_eq!(batch.send_each(&sender, &message), 0);
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

    #[tokio::test]
    async fn a_pass_of_fan_out_reaches_every_destination_in_order_from_its_source() {
        // Requirement: one packet to each of many subscribers, three times over (the
        // single-datagram messages go out together), with a two-packet burst to one of
        // them in between (a GSO message): every subscriber gets its datagrams whole, in
        // order, from the source address named, and nothing counts as dropped.
        let sender = UdpSocket::bind("0.0.0.0:0").await.expect("bind wildcard");
        let port = sender.local_addr().expect("address").port();
        let mut receivers = Vec::new();
        for _ in 0..12 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.expect("bind receiver"));
        }
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        let source = Some(IpAddr::from([127, 0, 0, 2]));
        for round in 0..3u8 {
            for receiver in &receivers {
                let to = receiver.local_addr().expect("address");
                batch.push(&sender, source, to, &[round; 900], &stats);
            }
            if round == 1 {
                let to = receivers[0].local_addr().expect("address");
                for _ in 0..2 {
                    batch.push(&sender, source, to, &[7; 1000], &stats);
                }
            }
        }
        batch.flush(&sender, &stats);
        let mut buf = [0u8; 2048];
        for (i, receiver) in receivers.iter().enumerate() {
            let mut expected = vec![(0, 900), (1, 900)];
            if i == 0 {
                expected.extend([(7, 1000), (7, 1000)]);
            }
            expected.push((2, 900));
            for want in expected {
                let (n, from) =
                    tokio::time::timeout(Duration::from_secs(2), receiver.recv_from(&mut buf))
                        .await
                        .expect("datagram in time")
                        .expect("receive");
                assert_eq!((buf[0], n), want, "receiver {i}");
                assert_eq!(from, SocketAddr::from(([127, 0, 0, 2], port)));
            }
        }
        let dropped = stats
            .udp_send_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, 0);
    }

    #[tokio::test]
    async fn a_datagram_the_kernel_refuses_is_counted_and_the_rest_still_go() {
        // Requirement: in a run sent together, a datagram the kernel refuses (here an IPv6
        // destination on an IPv4 socket) is dropped and counted; the ones after it arrive.
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind sender");
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        let unreachable = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9));
        batch.push(&sender, None, a.local_addr().expect("a"), &[1; 100], &stats);
        batch.push(&sender, None, unreachable, &[2; 100], &stats);
        batch.push(&sender, None, b.local_addr().expect("b"), &[3; 100], &stats);
        batch.flush(&sender, &stats);
        assert_eq!(receive_all(&a).await, [(1, 100)]);
        assert_eq!(receive_all(&b).await, [(3, 100)]);
        let dropped = stats
            .udp_send_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, 1);
    }

    #[tokio::test]
    async fn a_pass_interleaving_destinations_becomes_one_message_per_destination() {
        // Requirement: three packets forwarded to each of two subscribers in turn (as a
        // pass queues them) leave as one GSO message per subscriber, each with its own
        // datagrams in order; a destination met only once keeps its single datagram.
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind sender");
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
        let c = UdpSocket::bind("127.0.0.1:0").await.expect("bind c");
        let (to_a, to_b, to_c) = (
            a.local_addr().expect("a"),
            b.local_addr().expect("b"),
            c.local_addr().expect("c"),
        );
        let stats = Stats::default();
        let mut batch = UdpBatch::new(&sender);
        for i in 0..3u8 {
            batch.push(&sender, None, to_a, &[i; 1200], &stats);
            batch.push(&sender, None, to_b, &[10 + i; 1200], &stats);
        }
        batch.push(&sender, None, to_c, &[20; 300], &stats);
        batch.group_by_destination();
        let shape: Vec<(SocketAddr, usize)> = batch
            .messages
            .iter()
            .map(|m| (m.destination, m.count))
            .collect();
        // Without GSO the datagrams stay single, but grouped all the same.
        let expected = if batch.max_segments() >= 3 {
            vec![(to_a, 3), (to_b, 3), (to_c, 1)]
        } else {
            vec![
                (to_a, 1),
                (to_a, 1),
                (to_a, 1),
                (to_b, 1),
                (to_b, 1),
                (to_b, 1),
                (to_c, 1),
            ]
        };
        assert_eq!(shape, expected);
        batch.flush(&sender, &stats);
        assert_eq!(receive_all(&a).await, [(0, 1200), (1, 1200), (2, 1200)]);
        assert_eq!(receive_all(&b).await, [(10, 1200), (11, 1200), (12, 1200)]);
        assert_eq!(receive_all(&c).await, [(20, 300)]);
    }
}
