//! The rooms: list (this node's and the cluster's other nodes'), detail, kick, mute, close.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sfu_core::ids::RoomId;

use super::error::{ApiError, not_found};
use crate::registry::{Registry, RoomHandle};
use crate::room::AdminRequest;

/// One line of the room list.
#[derive(Debug, Serialize)]
pub(super) struct RoomSummary {
    room: String,
    participants: usize,
    producers: usize,
    consumers: usize,
    ingress_bps: u64,
    forwarded_packets: u64,
    age_secs: f64,
    /// This node's name, when it is one of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// A room of another node of the cluster, as that node last reported it.
#[derive(Debug, Serialize)]
pub(super) struct OtherNodeRoom {
    room: String,
    participants: usize,
    node: String,
    node_url: String,
}

/// A line of the room list: this node's rooms in full, other nodes' in brief.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum ListedRoom {
    Here(RoomSummary),
    OtherNode(OtherNodeRoom),
}

impl ListedRoom {
    fn name(&self) -> &str {
        match self {
            ListedRoom::Here(r) => &r.room,
            ListedRoom::OtherNode(r) => &r.room,
        }
    }
}

/// Rooms of the other nodes of the cluster (none without one, or when Redis fails).
pub(super) async fn other_nodes_rooms(registry: &Registry) -> Vec<OtherNodeRoom> {
    let Some(cluster) = registry.cluster() else {
        return Vec::new();
    };
    let nodes = match cluster.nodes(registry).await {
        Ok(nodes) => nodes,
        Err(e) => {
            crate::stats::bump(&registry.stats().cluster_errors);
            tracing::warn!(error = %e, "cannot list the cluster's rooms");
            return Vec::new();
        }
    };
    nodes
        .into_iter()
        .filter(|n| n.id != cluster.node_id())
        .flat_map(|n| {
            n.rooms.into_iter().map(move |r| OtherNodeRoom {
                room: r.room,
                participants: r.participants,
                node: n.id.clone(),
                node_url: n.url.clone(),
            })
        })
        .collect()
}

/// The body of a mute request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MuteBody {
    muted: bool,
}

/// The room named `room` on this node, or `not_found`.
fn room_handle(registry: &Registry, room: &str) -> Result<RoomHandle, ApiError> {
    registry
        .existing_room(&RoomId::from_wire(room))
        .ok_or_else(|| not_found(format!("no room `{room}`")))
}

/// The error for a room that did not answer in time.
fn busy(room: &str) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("room `{room}` did not answer in time"),
    )
}

/// `GET /api/rooms`: this node's rooms in full, the cluster's other nodes' in brief.
pub(super) async fn list_rooms(State(registry): State<Registry>) -> Json<Vec<ListedRoom>> {
    let node = registry.cluster().map(|c| c.node_id().to_owned());
    let mut rooms: Vec<ListedRoom> = registry
        .snapshots()
        .await
        .into_iter()
        .map(|s| {
            ListedRoom::Here(RoomSummary {
                participants: s.participants.len(),
                producers: s.producers(),
                consumers: s.consumers(),
                ingress_bps: s.ingress_bps(),
                forwarded_packets: s.forwarded_packets,
                age_secs: s.age_secs,
                room: s.room,
                node: node.clone(),
            })
        })
        .collect();
    rooms.extend(
        other_nodes_rooms(&registry)
            .await
            .into_iter()
            .map(ListedRoom::OtherNode),
    );
    rooms.sort_by(|a, b| a.name().cmp(b.name()));
    Json(rooms)
}

/// `GET /api/rooms/{room}`: one room's snapshot.
pub(super) async fn room_detail(
    State(registry): State<Registry>,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    let snapshot = handle
        .ask(AdminRequest::Snapshot)
        .await
        .ok_or_else(|| busy(&room))?;
    Ok(Json(snapshot).into_response())
}

/// `POST /api/rooms/{room}/participants/{participant}/kick`.
pub(super) async fn kick(
    State(registry): State<Registry>,
    Path((room, participant)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    let participant_id = participant.clone();
    let found = handle
        .ask(|reply| AdminRequest::Kick {
            participant_id,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    if !found {
        return Err(not_found(format!(
            "no participant `{participant}` in room `{room}`"
        )));
    }
    Ok(Json(json!({"kicked": participant})).into_response())
}

/// `POST /api/rooms/{room}/tracks/{track}/mute` with `{"muted": bool}`.
pub(super) async fn mute(
    State(registry): State<Registry>,
    Path((room, track)): Path<(String, String)>,
    body: Result<Json<MuteBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(MuteBody { muted }) = body.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected {{\"muted\": true|false}}: {e}"),
        )
    })?;
    let handle = room_handle(&registry, &room)?;
    let track_id = track.clone();
    let found = handle
        .ask(|reply| AdminRequest::Mute {
            track_id,
            muted,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    if !found {
        return Err(not_found(format!("no track `{track}` in room `{room}`")));
    }
    Ok(Json(json!({"track": track, "muted": muted})).into_response())
}

/// `DELETE /api/rooms/{room}`: everyone is sent away with `room_closed`.
pub(super) async fn close_room(
    State(registry): State<Registry>,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let handle = room_handle(&registry, &room)?;
    handle
        .ask(|reply| AdminRequest::Close {
            reason: signaling::LeaveReason::RoomClosed,
            reply,
        })
        .await
        .ok_or_else(|| busy(&room))?;
    Ok(Json(json!({"closed": room})).into_response())
}
