//! Media shards. A shard is one thread running a single-threaded runtime that owns one UDP
//! media socket, that socket's receive loop and the rooms placed on the shard, so a packet
//! is received, forwarded and sent on one thread, with no hand-over between threads on the
//! way (docs/PERFORMANCE.md has the measurement). Signaling, HTTP and ICE-TCP stay on the
//! main runtime and reach rooms through channels.
//!
//! Rooms run as tasks pinned to their shard's thread (a `LocalSet`): a room never moves
//! between threads, so it may hold what cannot (each subscriber's downlink estimator).

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::egress::{MediaOut, TcpWriters};
use crate::routing::Routes;
use crate::stats::{Stats, bump};
use crate::{interfaces, udp};

/// One media shard, as the rest of the node sees it.
pub struct Shard {
    /// Runs tasks on the shard's thread.
    pub runtime: Handle,
    /// Starts tasks pinned to the shard's thread (see [`Shard::spawn_pinned`]).
    pinned: mpsc::UnboundedSender<PinnedStart>,
    /// Pinned tasks alive (the runtime's task count does not see them).
    pinned_alive: Arc<AtomicUsize>,
    /// Where its rooms' packets go out: its UDP socket, or the node's ICE-TCP connections.
    pub media: MediaOut,
    /// Its socket's bound address.
    pub udp_addr: SocketAddr,
    /// The receive buffer the kernel granted its socket, in bytes.
    pub udp_buffer: usize,
    load: Arc<Load>,
}

/// The start of a pinned task, sent to the shard's thread to run there.
type PinnedStart = Box<dyn FnOnce() + Send>;

/// How a pinned task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// It returned (or its shard stopped).
    Finished,
    /// It panicked.
    Panicked,
}

impl Shard {
    /// Run the future `make` builds as a task of the shard's thread that never moves to
    /// another thread, so the future need not be `Send`. The receiver tells how it ended.
    pub fn spawn_pinned<F, Fut>(&self, make: F) -> oneshot::Receiver<TaskEnd>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (ended_tx, ended) = oneshot::channel();
        let alive = self.pinned_alive.clone();
        alive.fetch_add(1, Ordering::Relaxed);
        let start: PinnedStart = Box::new(move || {
            let task = tokio::task::spawn_local(make());
            tokio::task::spawn_local(async move {
                let end = match task.await {
                    Err(e) if e.is_panic() => TaskEnd::Panicked,
                    _ => TaskEnd::Finished,
                };
                alive.fetch_sub(1, Ordering::Relaxed);
                let _gone = ended_tx.send(end);
            });
        });
        if let Err(refused) = self.pinned.send(start) {
            // The shard's thread is gone: the task never starts (its receiver says so).
            drop(refused);
            self.pinned_alive.fetch_sub(1, Ordering::Relaxed);
        }
        ended
    }

    /// Tasks alive on the shard's thread: its runtime's and its pinned ones.
    pub fn alive_tasks(&self) -> usize {
        self.runtime.metrics().num_alive_tasks() + self.pinned_alive.load(Ordering::Relaxed)
    }
}

/// Start every pinned task the shard is sent, on its thread, for as long as it runs.
async fn start_pinned(mut starts: mpsc::UnboundedReceiver<PinnedStart>) {
    while let Some(start) = starts.recv().await {
        start();
    }
}

/// What a shard carries: its open rooms and their participants.
#[derive(Default)]
struct Load {
    rooms: AtomicUsize,
    participants: AtomicUsize,
}

/// A room's seat on a shard: the shard counts the room, and the participants it reports,
/// until this is dropped.
pub struct ShardSeat {
    load: Arc<Load>,
    participants: usize,
}

impl ShardSeat {
    /// One more participant in the room.
    pub fn participant_joined(&mut self) {
        self.participants += 1;
        self.load.participants.fetch_add(1, Ordering::Relaxed);
    }

    /// One participant fewer in the room.
    pub fn participant_left(&mut self) {
        if self.participants > 0 {
            self.participants -= 1;
            self.load.participants.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ShardSeat {
    fn drop(&mut self) {
        self.load.rooms.fetch_sub(1, Ordering::Relaxed);
        self.load
            .participants
            .fetch_sub(self.participants, Ordering::Relaxed);
    }
}

impl Shard {
    /// (participants, rooms) on this shard now: a new room goes to the lowest.
    pub fn load(&self) -> (usize, usize) {
        (
            self.load.participants.load(Ordering::Relaxed),
            self.load.rooms.load(Ordering::Relaxed),
        )
    }

    /// Count one more room on this shard until its seat is dropped.
    pub fn seat_room(&self) -> ShardSeat {
        self.load.rooms.fetch_add(1, Ordering::Relaxed);
        ShardSeat {
            load: self.load.clone(),
            participants: 0,
        }
    }
}

/// Start `count` shards: bind their sockets (at `first`, then on the following ports; each
/// on a free port when `first`'s port is 0) and start each one's thread with its receive
/// loop. Replies name their source address as [`udp::reply_addresses`] says for `advertised`
/// and this host's interface addresses (none named when they cannot be listed).
pub fn start(
    count: usize,
    first: SocketAddr,
    advertised: &[IpAddr],
    tcp: &TcpWriters,
    routes: &Routes,
    stats: &Arc<Stats>,
) -> std::io::Result<Vec<Shard>> {
    let host = interfaces::host_addresses().unwrap_or_default();
    let reply_from = udp::reply_addresses(first, advertised, &host);
    (0..count)
        .map(|index| {
            let port = match first.port() {
                0 => 0,
                base => u16::try_from(usize::from(base) + index).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("no port {index} after {base}"),
                    )
                })?,
            };
            let addr = SocketAddr::new(first.ip(), port);
            start_one(index, addr, reply_from.clone(), tcp, routes, stats)
        })
        .collect()
}

fn start_one(
    index: usize,
    addr: SocketAddr,
    reply_from: Vec<IpAddr>,
    tcp: &TcpWriters,
    routes: &Routes,
    stats: &Arc<Stats>,
) -> std::io::Result<Shard> {
    let runtime = ShardRuntime(Some(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    ));
    let (socket, udp_buffer) = {
        let _on_shard = runtime.get().enter();
        udp::bind_media_socket(addr)?
    };
    let udp_addr = socket.local_addr()?;
    let media = MediaOut::new(socket, tcp.clone(), reply_from);
    let (socket, routes, loop_stats) = (media.udp.clone(), routes.clone(), stats.clone());
    let receive = restart_on_panic(
        move || udp::receive_loop(socket.clone(), routes.clone(), loop_stats.clone()),
        stats.clone(),
    );
    let (pinned, starts) = mpsc::unbounded_channel();
    let shard = Shard {
        runtime: runtime.get().handle().clone(),
        pinned,
        pinned_alive: Arc::default(),
        media,
        udp_addr,
        udp_buffer,
        load: Arc::default(),
    };
    std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.spawn_local(start_pinned(starts));
            local.block_on(runtime.get(), receive)
        })?;
    Ok(shard)
}

/// A shard's runtime, shut down without waiting when dropped. The shards are started from
/// the main runtime, where dropping a runtime panics: a shard that fails to start (its
/// port is taken) must come back as an error, not bring the server down with a panic.
struct ShardRuntime(Option<tokio::runtime::Runtime>);

impl ShardRuntime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for ShardRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Run the loop `start` makes for as long as the thread lives, starting a new one when it
/// panics (counted): the thread's runtime, and with it every room on the thread, would
/// otherwise end with the loop, and the emptied thread would take every new room.
async fn restart_on_panic<F, L>(mut start: F, stats: Arc<Stats>)
where
    F: FnMut() -> L,
    L: Future<Output = ()>,
{
    loop {
        if AssertUnwindSafe(start()).catch_unwind().await.is_ok() {
            return;
        }
        error!("the UDP receive loop panicked; starting it again");
        bump(&stats.udp_receive_restarts);
    }
}

/// `count` media threads on loopback ports the system picks, for tests.
#[cfg(test)]
pub fn start_on_loopback(count: usize, routes: &Routes, stats: &Arc<Stats>) -> Vec<Shard> {
    start(
        count,
        "127.0.0.1:0".parse().expect("address"),
        &[],
        &TcpWriters::default(),
        routes,
        stats,
    )
    .expect("media threads on loopback")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_media_port_in_use_is_an_error_not_a_panic() {
        // Requirement: a server whose media port is taken stops with the bind error.
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let result = start(
            1,
            taken.local_addr().expect("bound"),
            &[],
            &TcpWriters::default(),
            &Routes::default(),
            &Arc::new(Stats::default()),
        );
        let error = result.err().expect("a taken port must not start a shard");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn a_panicking_loop_is_started_again_and_counted() {
        // Requirement: a panic in a media thread's receive loop does not end the thread:
        // the loop starts again, and the restart is counted.
        let stats = Arc::new(Stats::default());
        let mut starts = 0;
        restart_on_panic(
            || {
                starts += 1;
                let panics = starts < 3;
                async move {
                    assert!(!panics, "a receive loop panics, as a test asked");
                }
            },
            stats.clone(),
        )
        .await;
        assert_eq!(starts, 3);
        assert_eq!(stats.udp_receive_restarts.load(Ordering::Relaxed), 2);
    }
}
