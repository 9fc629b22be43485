//! Stopping on a signal: every client is told `leave` with reason `shutdown`, rooms close,
//! and the process exits within a bounded time (SIGTERM: 5 s, SIGINT: 1 s).

use std::time::Duration;

use signaling::LeaveReason;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::registry::Registry;
use crate::room::AdminRequest;

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
/// `deadline` passes.
pub async fn close_rooms(registry: &Registry, deadline: Instant) {
    let rooms = registry.rooms();
    info!(rooms = rooms.len(), "closing every room");
    for (_, handle) in rooms {
        let _ = handle
            .ask(|reply| AdminRequest::Close {
                reason: LeaveReason::Shutdown,
                reply,
            })
            .await;
    }
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
