//! Serving the HTTP listener: request headers must arrive within a timeout (a client that
//! trickles them is cut off), connections are capped in total and per client address, and
//! each request carries the caller's address ([`ConnectInfo`]) and its connection's
//! [`ReadBudget`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::limits::{self, Limit};
use crate::per_ip::{PerIp, PerIpPlace};
use crate::read_budget::{Budgeted, ReadBudget};

/// How long a client may take to send a request's headers (each request of a connection).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What one connection holds while it lives: its places under both caps.
struct Places {
    _total: OwnedSemaphorePermit,
    _per_ip: PerIpPlace,
}

/// Serve `app` on `listener` until `stop` resolves, then wait for the requests in flight
/// (upgraded WebSockets live on in their own tasks).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &config::Config,
    stop: impl Future<Output = ()>,
) {
    let total = Arc::new(Semaphore::new(config.max_http_connections));
    let per_ip = PerIp::new(config.max_http_connections_per_ip);
    // Every connection task holds a sender: once all have ended, `in_flight` reads `None`.
    let (alive, mut in_flight) = mpsc::channel::<()>(1);
    let (stopping, stopped) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(total_place) = total.clone().try_acquire_owned() else {
            limits::hit(Limit::HttpConnections);
            debug!(%peer, "HTTP connection refused: max_http_connections reached");
            continue;
        };
        let Some(ip_place) = per_ip.admit(peer.ip()) else {
            limits::hit(Limit::HttpConnectionsPerIp);
            debug!(%peer, "HTTP connection refused: max_http_connections_per_ip reached");
            continue;
        };
        let budget = Arc::new(ReadBudget::default());
        let places = Places {
            _total: total_place,
            _per_ip: ip_place,
        };
        let io = TokioIo::new(Budgeted::new(stream, budget.clone(), places));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(budget.clone());
            app.clone().oneshot(request)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(io, service)
            .with_upgrades();
        let alive = alive.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { while !*stopped.borrow_and_update() && stopped.changed().await.is_ok() {} } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                if e.is_timeout() {
                    limits::hit(Limit::HeaderTimeout);
                }
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            drop(alive);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(alive);
    let _ = in_flight.recv().await;
}
