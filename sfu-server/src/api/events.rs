//! The live stream of every room's state (server-sent events), for the dashboard.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::json;

use super::rooms::other_nodes_rooms;
use crate::registry::Registry;

/// How often the live stream sends a fresh state of every room.
const EVENTS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Server-sent events: every second, `{"at_ms": .., "rooms": [RoomSnapshot, ..],
/// "other_nodes_rooms": [..]}` (the last: rooms of the cluster's other nodes, if any).
pub(super) async fn events(
    State(registry): State<Registry>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let started = tokio::time::Instant::now();
    let ticks = tokio::time::interval(EVENTS_INTERVAL);
    let stream =
        futures_util::stream::unfold((registry, ticks), move |(registry, mut ticks)| async move {
            ticks.tick().await;
            let state = registry
                .rooms_feed()
                .current(std::time::Instant::now(), rooms_state(&registry))
                .await;
            let data = json!({
                "at_ms": started.elapsed().as_millis(),
                "rooms": state["rooms"],
                "other_nodes_rooms": state["other_nodes_rooms"],
            })
            .to_string();
            Some((
                Ok(Event::default().event("rooms").data(data)),
                (registry, ticks),
            ))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Every room of this node and of the cluster's other nodes, for the live stream.
pub(super) async fn rooms_state(registry: &Registry) -> serde_json::Value {
    let mut rooms = registry.snapshots().await;
    rooms.sort_by(|a, b| a.room.cmp(&b.room));
    let others = other_nodes_rooms(registry).await;
    json!({ "rooms": rooms, "other_nodes_rooms": others })
}
