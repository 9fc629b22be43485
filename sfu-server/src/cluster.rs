//! Several nodes as one service, coordinated through Redis (optional: `redis_url`).
//!
//! Every node writes `sfu:node:<id>` (its signaling URL, load and rooms) with a TTL and
//! refreshes it on a heartbeat. A room belongs to one node, recorded in `sfu:room:<room>`
//! with the same TTL and refreshed by its owner while the room lives. The first join of
//! a room places it on the least-loaded live node; a join arriving at any other node is
//! answered with a redirect to the owner. A dead node stops refreshing, so its records
//! expire and the next join places its rooms again. Node records are sealed with the
//! cluster secret ([`sealed`](crate::sealed)); a record that does not open is ignored, so
//! clients are redirected only to nodes of the cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::stats::Stats;

/// Deletes a key only while it still holds the given value (an owner releasing its room).
const DELETE_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
/// Sets a key (with a TTL) only when it is missing or already holds the given value, and
/// returns the value it holds afterwards: a node refreshing or claiming its room without
/// taking it from another node.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return ARGV[1] end \
    return v";
/// Placement attempts before a join is served locally.
const PLACE_ATTEMPTS: usize = 3;
/// Time a room placed here has to appear in the registry before its record is released.
const PLACEMENT_GRACE: Duration = Duration::from_secs(5);

/// What a node publishes about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub id: String,
    /// Its signaling WebSocket URL.
    pub url: String,
    /// Participants on it: its load.
    pub participants: usize,
    /// Its rooms.
    pub rooms: Vec<RoomLoad>,
}

/// One room of a node, as listed cluster-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomLoad {
    /// Room name.
    pub room: String,
    /// Participants in it.
    pub participants: usize,
}

/// Where a join for a room goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node owns the room.
    Here,
    /// Another node owns it: its signaling URL.
    Elsewhere(String),
}

/// This node's membership of the cluster.
#[derive(Clone)]
pub struct Cluster {
    redis: ConnectionManager,
    secret: Arc<[u8]>,
    node_id: String,
    url: String,
    ttl: Duration,
    /// Rooms this node owns in Redis, with when each was last live (or placed), to release
    /// the ones that closed.
    owned: Arc<Mutex<HashMap<String, Instant>>>,
    /// Set once the node left the cluster (shutdown): no more heartbeats.
    left: Arc<AtomicBool>,
    /// The node's counters (cluster errors, conflicts, forged records).
    stats: Arc<Stats>,
    /// Digests of the records found not to verify, so each is counted and warned about
    /// once, not on every lookup that reads it again.
    forged_seen: Arc<std::sync::Mutex<HashSet<u64>>>,
}

/// What the cluster needs to know of this node: its rooms, its load, whether it stops.
pub trait NodeLoad: Send + Sync {
    /// The rooms open here.
    fn open_rooms(&self) -> Vec<String>;
    /// Participants in each room open here (rooms too busy to answer are left out).
    fn room_participants(&self) -> impl Future<Output = HashMap<String, usize>> + Send;
    /// Participants on this node.
    fn participants(&self) -> usize;
    /// Whether `room` is open here.
    fn hosts(&self, room: &str) -> bool;
    /// Whether this node is stopping.
    fn draining(&self) -> bool;
}

/// Forged records remembered at most; beyond, the memory starts afresh.
const MAX_FORGED_SEEN: usize = 1024;

fn node_key(id: &str) -> String {
    format!("sfu:node:{id}")
}

fn room_key(room: &str) -> String {
    format!("sfu:room:{room}")
}

/// Delete `room`'s owner record while `owner` still holds it (never another node's).
async fn release(redis: &mut ConnectionManager, room: &str, owner: &str) -> redis::RedisResult<()> {
    let _: i64 = redis::cmd("EVAL")
        .arg(DELETE_IF_OWNER)
        .arg(1)
        .arg(room_key(room))
        .arg(owner)
        .query_async(redis)
        .await?;
    Ok(())
}

/// The node to place a new room on: fewest participants; on a tie this node, then by name.
/// A node that is stopping (`draining`) is no candidate for itself.
pub fn least_loaded<'a>(
    nodes: &'a [NodeRecord],
    this_node: &str,
    draining: bool,
) -> Option<&'a NodeRecord> {
    nodes
        .iter()
        .filter(|n| !(draining && n.id == this_node))
        .min_by_key(|n| (n.participants, n.id != this_node, n.id.clone()))
}

impl Cluster {
    /// Connect to Redis as node `node_id`, reachable by clients at `url`, sealing records
    /// with `secret`.
    pub async fn connect(
        redis_url: &str,
        secret: &str,
        node_id: String,
        url: String,
        ttl: Duration,
        stats: Arc<Stats>,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(redis_url)?;
        let redis = ConnectionManager::new(client).await?;
        Ok(Self {
            redis,
            secret: secret.as_bytes().into(),
            node_id,
            url,
            ttl,
            owned: Arc::default(),
            left: Arc::default(),
            stats,
            forged_seen: Arc::default(),
        })
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Refresh this node's records forever, every third of the TTL.
    pub async fn heartbeat_loop(self, node: impl NodeLoad + 'static) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        let mut healthy = true;
        loop {
            tick.tick().await;
            if self.left.load(Ordering::Acquire) {
                return;
            }
            match self.heartbeat(&node).await {
                Ok(()) if !healthy => {
                    info!("Redis reachable again");
                    healthy = true;
                }
                Ok(()) => {}
                Err(e) => {
                    if healthy {
                        warn!(error = %e, "cluster heartbeat failed; this node's rooms may be placed elsewhere");
                    }
                    healthy = false;
                    crate::stats::bump(&self.stats.cluster_errors);
                }
            }
        }
    }

    async fn heartbeat(&self, node: &impl NodeLoad) -> redis::RedisResult<()> {
        let record = self.own_record(node).await;
        let ttl = self.ttl.as_secs();
        let mut redis = self.redis.clone();
        let json = serde_json::to_string(&record).unwrap_or_default();
        let stored = crate::sealed::seal(&json, &self.secret);
        let _: () = redis.set_ex(node_key(&self.node_id), stored, ttl).await?;
        let live: HashSet<String> = record.rooms.into_iter().map(|r| r.room).collect();
        let now = Instant::now();
        let mut owned = self.owned.lock().await;
        for room in &live {
            self.claim(&mut redis, room).await?;
            owned.insert(room.clone(), now);
        }
        let closed: Vec<String> = owned
            .iter()
            .filter(|(room, seen)| {
                !live.contains(*room) && now.duration_since(**seen) > PLACEMENT_GRACE
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in closed {
            release(&mut redis, &room, &self.node_id).await?;
            owned.remove(&room);
        }
        Ok(())
    }

    /// Refresh or claim `room` for this node unless another node holds it. A room live here
    /// that another node holds is warned about and counted: this node's records expired
    /// (Redis unreachable longer than the TTL) and the other node took the room meanwhile,
    /// so its new joins go there.
    async fn claim(&self, redis: &mut ConnectionManager, room: &str) -> redis::RedisResult<()> {
        let holder: String = redis::cmd("EVAL")
            .arg(CLAIM)
            .arg(1)
            .arg(room_key(room))
            .arg(&self.node_id)
            .arg(self.ttl.as_secs())
            .query_async(redis)
            .await?;
        if holder != self.node_id {
            warn!(
                room,
                holder, "room live here is owned by another node in Redis"
            );
            crate::stats::bump(&self.stats.cluster_conflicts);
        }
        Ok(())
    }

    /// This node's record with its rooms, for the heartbeat.
    async fn own_record(&self, node: &impl NodeLoad) -> NodeRecord {
        let counts = node.room_participants().await;
        node_record(&self.node_id, &self.url, node.open_rooms(), &counts)
    }

    /// Every live node's record; this node's own carries its current load (without its
    /// rooms, which callers take from the registry).
    pub async fn nodes(&self, node: &impl NodeLoad) -> redis::RedisResult<Vec<NodeRecord>> {
        let mut redis = self.redis.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("sfu:node:*")
                .arg("COUNT")
                .arg(100)
                .query_async(&mut redis)
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut nodes = vec![NodeRecord {
            id: self.node_id.clone(),
            url: self.url.clone(),
            participants: node.participants(),
            rooms: Vec::new(),
        }];
        let own_key = node_key(&self.node_id);
        keys.retain(|k| *k != own_key);
        if !keys.is_empty() {
            let values: Vec<Option<String>> = redis.mget(&keys).await?;
            nodes.extend(keys.iter().zip(values).filter_map(|(key, stored)| {
                let id = key.strip_prefix("sfu:node:")?;
                self.open_record(id, &stored?)
            }));
        }
        Ok(nodes)
    }

    /// Where a join for `room` goes: its owner, or, for a room nobody owns, the
    /// least-loaded live node, recorded as the owner. A room already live on this node
    /// stays here. A node that is stopping (draining) places no room on itself: its own
    /// rooms are closing, and a room it owns goes to another node.
    pub async fn place(&self, room: &str, node: &impl NodeLoad) -> redis::RedisResult<Placement> {
        let mut redis = self.redis.clone();
        let draining = node.draining();
        if !draining && node.hosts(room) {
            self.claim(&mut redis, room).await?;
            return Ok(Placement::Here);
        }
        let key = room_key(room);
        for _ in 0..PLACE_ATTEMPTS {
            let owner: Option<String> = redis.get(&key).await?;
            if let Some(owner) = owner {
                if owner == self.node_id && !draining {
                    return Ok(Placement::Here);
                }
                if owner == self.node_id {
                    release(&mut redis, room, &owner).await?;
                    continue;
                }
                let record: Option<String> = redis.get(node_key(&owner)).await?;
                if let Some(node) = record.and_then(|stored| self.open_record(&owner, &stored)) {
                    return Ok(Placement::Elsewhere(node.url));
                }
                // Its owner is gone: release the room and place it again.
                release(&mut redis, room, &owner).await?;
                continue;
            }
            let nodes = self.nodes(node).await?;
            let Some(chosen) = least_loaded(&nodes, &self.node_id, draining) else {
                return Ok(Placement::Here);
            };
            let placed: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&chosen.id)
                .arg("NX")
                .arg("EX")
                .arg(self.ttl.as_secs())
                .query_async(&mut redis)
                .await?;
            if placed.is_some() {
                info!(room, node = %chosen.id, "room placed");
                return Ok(if chosen.id == self.node_id {
                    self.owned
                        .lock()
                        .await
                        .insert(room.to_owned(), Instant::now());
                    Placement::Here
                } else {
                    Placement::Elsewhere(chosen.url.clone())
                });
            }
        }
        Ok(Placement::Here)
    }

    /// Node `id`'s record, if it was sealed with the cluster secret and names that node;
    /// one that does not open was not written by a node of this cluster: ignored, and
    /// warned about and counted the first time it is read.
    fn open_record(&self, id: &str, stored: &str) -> Option<NodeRecord> {
        let record = crate::sealed::open(stored, &self.secret)
            .and_then(|json| serde_json::from_str::<NodeRecord>(&json).ok())
            .filter(|record| record.id == id)
            .filter(|record| record.url.starts_with("ws://") || record.url.starts_with("wss://"));
        if record.is_none() && self.first_sight_of_forged(id, stored) {
            warn!(
                node = id,
                "a node record in Redis does not verify with the cluster secret; ignored"
            );
            crate::stats::bump(&self.stats.cluster_forged_records);
        }
        record
    }

    /// Whether this forged record (`stored` under node `id`) was not seen before.
    fn first_sight_of_forged(&self, id: &str, stored: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (id, stored).hash(&mut hasher);
        let mut seen = self
            .forged_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_FORGED_SEEN {
            seen.clear();
        }
        seen.insert(hasher.finish())
    }

    /// Leave the cluster on shutdown: remove this node's record and release its rooms, so
    /// that no join is sent to it while its records would otherwise live on.
    pub async fn leave(&self) -> redis::RedisResult<()> {
        self.left.store(true, Ordering::Release);
        let mut redis = self.redis.clone();
        let _: i64 = redis.del(node_key(&self.node_id)).await?;
        let owned: Vec<String> = self
            .owned
            .lock()
            .await
            .drain()
            .map(|(room, _)| room)
            .collect();
        for room in owned {
            release(&mut redis, &room, &self.node_id).await?;
        }
        info!("left the cluster");
        Ok(())
    }
}

/// A node's record: every room open on it (`open`), with its participants where the room
/// answered its snapshot (`counts`). A room too busy to answer in time is still listed, with
/// none: left out, its placement would be released and the room opened again elsewhere.
fn node_record(
    id: &str,
    url: &str,
    open: impl IntoIterator<Item = String>,
    counts: &HashMap<String, usize>,
) -> NodeRecord {
    let rooms: Vec<RoomLoad> = open
        .into_iter()
        .map(|room| RoomLoad {
            participants: counts.get(&room).copied().unwrap_or(0),
            room,
        })
        .collect();
    NodeRecord {
        id: id.to_owned(),
        url: url.to_owned(),
        participants: rooms.iter().map(|r| r.participants).sum(),
        rooms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_that_does_not_answer_in_time_stays_in_the_node_record() {
        // Requirement: the heartbeat lists every open room, so a busy one keeps its placement.
        let counts = HashMap::from([("a".to_owned(), 3)]);
        let record = node_record(
            "n1",
            "ws://n1/ws",
            ["a".to_owned(), "busy".to_owned()],
            &counts,
        );
        let rooms: Vec<(&str, usize)> = record
            .rooms
            .iter()
            .map(|r| (r.room.as_str(), r.participants))
            .collect();
        assert_eq!(rooms, vec![("a", 3), ("busy", 0)]);
        assert_eq!(record.participants, 3);
    }

    fn node(id: &str, participants: usize) -> NodeRecord {
        NodeRecord {
            id: id.to_owned(),
            url: format!("ws://{id}/ws"),
            participants,
            rooms: Vec::new(),
        }
    }

    #[test]
    fn new_rooms_go_to_the_least_loaded_node_and_ties_stay_here() {
        // Requirement: placement by load; among equally loaded nodes this one wins, then names.
        let nodes = [node("a", 5), node("b", 2), node("c", 2)];
        let chosen = |nodes: &[NodeRecord], this: &str, draining: bool| {
            least_loaded(nodes, this, draining).map(|n| n.id.clone())
        };
        assert_eq!(chosen(&nodes, "a", false).as_deref(), Some("b"));
        assert_eq!(chosen(&nodes, "c", false).as_deref(), Some("c"));
        assert_eq!(
            chosen(&[node("a", 0), node("b", 0)], "b", false).as_deref(),
            Some("b")
        );
        assert!(least_loaded(&[], "a", false).is_none());
        // Requirement: a stopping node places no new room on itself, however idle it is.
        assert_eq!(chosen(&nodes, "c", true).as_deref(), Some("b"));
        assert_eq!(
            chosen(&[node("a", 0), node("b", 9)], "a", true).as_deref(),
            Some("b")
        );
        assert!(least_loaded(&[node("a", 0)], "a", true).is_none());
    }
}
