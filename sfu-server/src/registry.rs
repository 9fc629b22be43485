//! The room registry: room id → room task, which media shard a new room goes to, and
//! forgetting a room when its task ends (its routes and resume tokens too, if it panicked).
//!
//! Its maps are looked up when joining, never per forwarded packet per subscriber.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use sfu_core::ids::RoomId;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::cluster::{Cluster, NodeLoad};
use crate::node_services::NodeServices;
use crate::room::{self, AdminRequest, NodeContext, RoomCommand, RoomSnapshot};
use crate::rooms_feed::RoomsFeed;
use crate::routing::{Datagram, Routes};
use crate::shard::Shard;
use crate::stats::Stats;

/// A running room task, as seen from outside.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    /// Commands (joins, signaling) to the room task.
    pub commands: mpsc::Sender<RoomCommand>,
    generation: u64,
}

/// How old the live dashboards' shared state of the rooms may get (a little under their
/// one-second interval, so each viewer's tick sees a state taken since its last one).
const ROOMS_FEED_MAX_AGE: Duration = Duration::from_millis(900);

/// How long an operator's request waits for a room's answer.
const ADMIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

impl RoomHandle {
    /// Send an operator's request and wait for the answer; `None` when the room is gone
    /// or too busy to answer in time.
    pub async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> AdminRequest,
    ) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(RoomCommand::Admin(request(reply)))
            .ok()?;
        tokio::time::timeout(ADMIN_ANSWER_TIMEOUT, answer)
            .await
            .ok()?
            .ok()
    }
}

struct Inner {
    config: Arc<config::Config>,
    shards: Vec<Shard>,
    ice_tcp_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    rooms: DashMap<RoomId, RoomHandle>,
    routes: Routes,
    pending_joins: AtomicUsize,
    generations: AtomicU64,
    services: NodeServices,
    cluster: OnceLock<Cluster>,
    rooms_feed: RoomsFeed,
    draining: std::sync::atomic::AtomicBool,
}

/// A join being processed; dropping it ends the count.
pub struct JoinPermit {
    inner: Arc<Inner>,
}

impl Drop for JoinPermit {
    fn drop(&mut self) {
        self.inner.pending_joins.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Shared entry point to all rooms of this node.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// An empty registry for a node with these media shards, config and routing table.
    pub fn new(
        config: Arc<config::Config>,
        shards: Vec<Shard>,
        ice_tcp_addr: Option<SocketAddr>,
        stats: Arc<Stats>,
        routes: Routes,
    ) -> Self {
        assert!(!shards.is_empty(), "a node needs a media shard");
        Self {
            inner: Arc::new(Inner {
                config,
                shards,
                ice_tcp_addr,
                stats,
                rooms: DashMap::new(),
                routes,
                pending_joins: AtomicUsize::new(0),
                generations: AtomicU64::new(0),
                services: NodeServices::default(),
                cluster: OnceLock::new(),
                rooms_feed: RoomsFeed::new(ROOMS_FEED_MAX_AGE),
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The node's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// The rooms' state shared by every live dashboard.
    pub fn rooms_feed(&self) -> &RoomsFeed {
        &self.inner.rooms_feed
    }

    /// Join the cluster (multi-node); call once, at start.
    pub fn set_cluster(&self, cluster: Cluster) {
        let _ = self.inner.cluster.set(cluster);
    }

    /// The cluster this node belongs to, if it runs as one of several.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get()
    }

    /// The validated configuration.
    pub fn config(&self) -> &config::Config {
        &self.inner.config
    }

    /// The UDP routing table.
    pub fn routes(&self) -> Routes {
        self.inner.routes.clone()
    }

    /// (rooms, participants) currently on this node (participants as its media shards count
    /// them).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.inner.rooms.len(),
            self.inner.shards.iter().map(|s| s.load().0).sum(),
        )
    }

    /// Tasks alive in the server's runtimes (the main one and every media shard's):
    /// sessions, rooms, listeners. Back at its baseline once every participant has gone, or
    /// something leaks.
    pub fn alive_tasks(&self) -> usize {
        let shards: usize = self.inner.shards.iter().map(Shard::alive_tasks).sum();
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            + shards
    }

    /// The resume tokens and kicked identities the node's rooms share.
    pub fn services(&self) -> &NodeServices {
        &self.inner.services
    }

    /// The room's handle, starting its task if it does not exist yet; `None` when that would
    /// open more than `max_rooms` rooms.
    pub fn room(&self, id: &RoomId) -> Option<RoomHandle> {
        if let Some(existing) = self.existing_room(id) {
            if !existing.commands.is_closed() {
                return Some(existing);
            }
            // A task that panicked, not yet forgotten: a new room takes the name.
            self.remove_room(id, existing.generation);
        }
        if self.inner.rooms.len() >= self.inner.config.max_rooms {
            return None;
        }
        let handle = self
            .inner
            .rooms
            .entry(id.clone())
            .or_insert_with(|| {
                let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed);
                let shard = self.least_loaded_shard();
                let task = room::spawn(id.clone(), self.node_context(shard), shard);
                self.watch(id.clone(), generation, task.datagrams, task.ended, shard);
                RoomHandle {
                    commands: task.commands,
                    generation,
                }
            })
            .clone();
        Some(handle)
    }

    /// Count a join in progress; `None` when `max_pending_joins` are already being processed.
    pub fn begin_join(&self) -> Option<JoinPermit> {
        let pending = &self.inner.pending_joins;
        let before = pending.fetch_add(1, Ordering::AcqRel);
        if before >= self.inner.config.max_pending_joins {
            pending.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(JoinPermit {
            inner: self.inner.clone(),
        })
    }

    /// The server is stopping: it takes no new joins or resumes, and places no new room on
    /// itself.
    pub fn begin_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Whether the server is stopping (see [`Registry::begin_draining`]).
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Every room's id and handle.
    pub fn rooms(&self) -> Vec<(RoomId, RoomHandle)> {
        self.inner
            .rooms
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// The handle of a room that exists (never starts one).
    pub fn existing_room(&self, id: &RoomId) -> Option<RoomHandle> {
        self.inner.rooms.get(id).map(|e| e.value().clone())
    }

    /// Snapshots of every room, asked all at once (rooms that do not answer within a
    /// second are left out).
    pub async fn snapshots(&self) -> Vec<RoomSnapshot> {
        let asks = self
            .rooms()
            .into_iter()
            .map(|(_, handle)| async move { handle.ask(AdminRequest::Snapshot).await });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The task of room `id` (`generation`, datagram queue `datagrams`) panicked: forget
    /// the room, the UDP routes into its queue and the resume tokens of the participants
    /// they led to, so that nothing points at the dead task.
    pub fn room_crashed(&self, id: &RoomId, generation: u64, datagrams: &mpsc::Sender<Datagram>) {
        let mut gone = Vec::new();
        self.inner.routes.retain(|_, route| {
            let dead = route.datagrams.same_channel(datagrams);
            if dead {
                gone.push(route.participant);
            }
            !dead
        });
        self.inner.services.forget_resumes_of(&gone);
        self.remove_room(id, generation);
        crate::stats::bump(&self.inner.stats.rooms_crashed);
    }

    /// Forget a room whose task is ending, unless a newer task already took its name.
    pub fn remove_room(&self, id: &RoomId, generation: u64) {
        self.inner
            .rooms
            .remove_if(id, |_, handle| handle.generation == generation);
    }

    /// The shard a new room goes to: the one with the fewest participants, then the fewest
    /// open rooms (the first of those on a tie).
    fn least_loaded_shard(&self) -> &Shard {
        self.inner
            .shards
            .iter()
            .min_by_key(|shard| shard.load())
            .expect("a node has a media shard")
    }

    /// Forget room `id` (`generation`) when its task ends; one that panicked takes its
    /// routes and resume tokens with it, and is counted.
    fn watch(
        &self,
        id: RoomId,
        generation: u64,
        datagrams: mpsc::Sender<Datagram>,
        ended: oneshot::Receiver<crate::shard::TaskEnd>,
        shard: &Shard,
    ) {
        let registry = self.clone();
        shard.runtime.spawn(async move {
            match ended.await {
                Ok(crate::shard::TaskEnd::Panicked) => {
                    error!(room = %id, "room task panicked; its participants are sent away and its name freed");
                    registry.room_crashed(&id, generation, &datagrams);
                }
                _ => registry.remove_room(&id, generation),
            }
        });
    }

    fn node_context(&self, shard: &Shard) -> NodeContext {
        NodeContext {
            services: self.inner.services.clone(),
            config: self.inner.config.clone(),
            media: Box::new(shard.media.clone()),
            udp_addr: shard.udp_addr,
            ice_tcp_addr: self.inner.ice_tcp_addr,
            stats: self.inner.stats.clone(),
            routes: self.inner.routes.clone(),
        }
    }
}

impl NodeLoad for Registry {
    fn open_rooms(&self) -> Vec<String> {
        self.rooms()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    async fn room_participants(&self) -> HashMap<String, usize> {
        self.snapshots()
            .await
            .into_iter()
            .map(|s| (s.room, s.participants.len()))
            .collect()
    }

    fn participants(&self) -> usize {
        self.counts().1
    }

    fn hosts(&self, room: &str) -> bool {
        self.existing_room(&RoomId::from_wire(room.to_owned()))
            .is_some()
    }

    fn draining(&self) -> bool {
        Registry::draining(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sfu_core::ids::ParticipantId;

    /// A registry with two media threads on loopback.
    pub(crate) async fn registry(config: config::Config) -> Registry {
        let routes = Routes::default();
        let stats = Arc::new(Stats::default());
        let shards = crate::shard::start_on_loopback(2, &routes, &stats);
        Registry::new(Arc::new(config), shards, None, stats, routes)
    }

    #[tokio::test]
    async fn joins_in_progress_are_capped_and_released() {
        // Requirement: no more than max_pending_joins joins are processed at once; a finished
        // one frees its place.
        let r = registry(config::Config {
            max_pending_joins: 2,
            ..config::Config::default()
        })
        .await;
        let first = r.begin_join().expect("first");
        let _second = r.begin_join().expect("second");
        assert!(r.begin_join().is_none(), "a third at once is refused");
        drop(first);
        assert!(r.begin_join().is_some(), "a place freed by a finished join");
    }

    #[tokio::test]
    async fn rooms_beyond_the_cap_are_not_opened() {
        // Requirement: a join that would open more than max_rooms rooms finds no room, while
        // existing rooms stay reachable.
        let r = registry(config::Config {
            max_rooms: 1,
            ..config::Config::default()
        })
        .await;
        let a = RoomId::from_wire("a");
        assert!(r.room(&a).is_some());
        assert!(r.room(&RoomId::from_wire("b")).is_none());
        assert!(r.room(&a).is_some(), "the existing room is still found");
        assert_eq!(r.counts().0, 1);
    }

    #[tokio::test]
    async fn new_rooms_go_to_the_media_thread_with_the_fewest_participants_then_rooms() {
        // Requirement: rooms spread over the media threads: a new one goes to the thread
        // with the fewest participants, and with the fewest open rooms among those.
        let r = registry(config::Config::default()).await;
        let rooms =
            |r: &Registry| -> Vec<usize> { r.inner.shards.iter().map(|s| s.load().1).collect() };
        r.room(&RoomId::from_wire("a")).expect("room a");
        assert_eq!(rooms(&r), vec![1, 0]);
        r.room(&RoomId::from_wire("b")).expect("room b");
        assert_eq!(rooms(&r), vec![1, 1]);
        r.room(&RoomId::from_wire("a")).expect("room a again");
        assert_eq!(rooms(&r), vec![1, 1], "an open room is not placed again");

        let mut busy = r.inner.shards[0].seat_room();
        busy.participant_joined();
        let _idle = r.inner.shards[1].seat_room();
        assert_eq!(r.inner.shards[0].load(), (1, 2));
        assert_eq!(r.inner.shards[1].load(), (0, 2));
        r.room(&RoomId::from_wire("c")).expect("room c");
        assert_eq!(
            rooms(&r),
            vec![2, 3],
            "the thread without participants takes it, though it has more rooms"
        );
        drop(busy);
        assert_eq!(
            r.inner.shards[0].load(),
            (0, 1),
            "a closed room takes its participants along"
        );
    }

    /// Join room `id` as a participant named `name`; its messages arrive on the receiver.
    async fn join(
        r: &Registry,
        id: &RoomId,
        name: &str,
    ) -> (RoomHandle, ParticipantId, mpsc::Receiver<room::Outbound>) {
        let handle = r.room(id).expect("room");
        let (out, out_rx) = mpsc::channel(64);
        let (reply, answer) = oneshot::channel();
        let request = room::JoinRequest {
            name: name.into(),
            grants: Default::default(),
            identity: None,
            auto_subscribe: true,
            out,
            resume_token: format!("token-{name}"),
            reply,
        };
        handle
            .commands
            .send(RoomCommand::Join(request))
            .await
            .expect("room takes the join");
        let (key, _) = answer.await.expect("answered").expect("joined");
        (handle, key, out_rx)
    }

    #[tokio::test]
    async fn a_panicking_room_is_forgotten_and_the_others_keep_serving() {
        // Requirement: a room task that panics takes nothing else down: its participants
        // are told the room closed, its routes and resume tokens go, it is counted, the
        // next join to its name opens a new room, and another room is unaffected.
        let r = registry(config::Config::default()).await;
        let (a, b) = (RoomId::from_wire("a"), RoomId::from_wire("b"));
        let (crashing, _, mut ann) = join(&r, &a, "ann").await;
        let (_, bob_key, _bob) = join(&r, &b, "bob").await;
        assert_eq!(r.inner.routes.len(), 2);
        assert!(r.services().resume_target("token-ann").is_some());

        crashing
            .commands
            .send(RoomCommand::Panic)
            .await
            .expect("room takes the command");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while ann.recv().await.is_some() {}
        })
        .await;
        assert!(closed.is_ok(), "ann's session learns that the room closed");
        let counted = tokio::time::timeout(Duration::from_secs(5), async {
            while r.inner.stats.rooms_crashed.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(counted.is_ok(), "the crash is counted");
        assert_eq!(r.inner.stats.rooms_crashed.load(Ordering::Relaxed), 1);
        assert!(
            r.services().resume_target("token-ann").is_none(),
            "ann's resume token is gone"
        );
        assert!(
            r.services().resume_target("token-bob").is_some(),
            "bob's is kept"
        );
        let routes: Vec<ParticipantId> = r
            .inner
            .routes
            .iter()
            .map(|e| e.value().participant)
            .collect();
        assert_eq!(routes, vec![bob_key], "only bob's route is left");
        assert!(r.existing_room(&b).is_some(), "room b is still open");

        let (reopened, _, _) = join(&r, &a, "cat").await;
        assert_ne!(
            reopened.generation, crashing.generation,
            "a new room took the name"
        );
        join(&r, &b, "dan").await;
    }

    #[tokio::test]
    async fn a_room_whose_task_ended_unforgotten_is_replaced_at_the_next_join() {
        // Requirement: between a room task's panic and its cleanup, a join does not queue
        // into the dead task: a new room takes the name.
        let r = registry(config::Config::default()).await;
        let id = RoomId::from_wire("x");
        let (commands, dead_task) = mpsc::channel(1);
        drop(dead_task);
        r.inner.rooms.insert(
            id.clone(),
            RoomHandle {
                commands,
                generation: u64::MAX,
            },
        );
        let handle = r.room(&id).expect("room");
        assert!(!handle.commands.is_closed());
        assert_ne!(handle.generation, u64::MAX);
    }
}
