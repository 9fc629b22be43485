//! Stopping on a signal: every client is told `leave` with reason `shutdown`, rooms close,
//! and the process exits within a bounded time (SIGTERM: 5 s, SIGINT: 1 s).

use std::time::Duration;

use signaling::LeaveReason;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::registry::Registry;
use crate::room::{AdminRequest, RoomCommand};

/// Which signal asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the orderly stop of a service manager.
    Terminate,
    /// SIGINT (Ctrl-C): a person wants it gone, faster.
    Interrupt,
}

impl Stop {
    /// How long clients get to be told and rooms to close before the process exits anyway.
    pub fn grace(self) -> Duration {
        match self {
            Stop::Terminate => Duration::from_secs(5),
            Stop::Interrupt => Duration::from_secs(1),
        }
    }
}

/// Resolves with the first SIGTERM or SIGINT.
pub async fn signal() -> Stop {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
            return Stop::Interrupt;
        }
    };
    tokio::select! {
        _ = ctrl_c => Stop::Interrupt,
        _ = term.recv() => Stop::Terminate,
    }
}

/// Tell every room to close with reason `shutdown`, then wait until they are gone or
/// `deadline` passes. A room whose command queue is full is waited for (until the deadline),
/// not skipped: its participants would otherwise get no `leave`.
pub async fn close_rooms(registry: &Registry, deadline: Instant) {
    let rooms = registry.rooms();
    info!(rooms = rooms.len(), "closing every room");
    let closes = rooms.into_iter().map(|(id, handle)| async move {
        let (reply, _) = oneshot::channel();
        let close = RoomCommand::Admin(AdminRequest::Close {
            reason: LeaveReason::Shutdown,
            reply,
        });
        let sent = tokio::time::timeout_at(deadline, handle.commands.send(close)).await;
        if sent.is_err() {
            warn!(room = %id, "the room's command queue stayed full; it was not told to close");
        }
    });
    futures_util::future::join_all(closes).await;
    while registry.counts().0 > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (left, participants) = registry.counts();
    if left > 0 {
        warn!(
            rooms = left,
            participants, "rooms still open at the shutdown deadline"
        );
    }
}
