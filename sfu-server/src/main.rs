//! `sfu-server`: the SFU binary. See the README for how to run it.

mod api;
mod cli;
mod http;
mod metrics;
mod registry;
mod room;
mod session;
mod stats;
mod udp;
mod web;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::registry::Registry;
use crate::stats::Stats;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let config = cli.load_config()?;
    cli::init_logging(config.log_format);
    str0m_aws_lc_rs_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

/// Install the crypto provider str0m uses for DTLS and SRTP.
fn str0m_aws_lc_rs_default() {
    str0m::crypto::from_feature_flags().install_process_default();
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (udp, udp_buffer) = udp::bind_media_socket(config.udp_listen)
        .with_context(|| format!("cannot bind the UDP media socket on {}", config.udp_listen))?;
    let udp_addr = udp
        .local_addr()
        .context("UDP socket has no local address")?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot bind the HTTP listener on {}", config.http_listen))?;
    let http_addr = http
        .local_addr()
        .context("HTTP listener has no local address")?;

    let stats = Arc::new(Stats::default());
    let udp = Arc::new(udp);
    let registry = Registry::new(config.clone(), udp.clone(), udp_addr, stats.clone());
    tokio::spawn(udp::receive_loop(udp, registry.routes(), stats.clone()));

    let mut metrics_note = String::new();
    if config.metrics_enabled {
        let exporter = metrics::install()?;
        let listener = TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot bind the metrics listener on {}",
                    config.metrics_listen
                )
            })?;
        let metrics_addr = listener
            .local_addr()
            .context("metrics listener has no local address")?;
        metrics_note = format!(" metrics={metrics_addr}");
        let app = metrics::router(exporter, registry.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!(error = %e, "metrics listener failed");
            }
        });
    }

    println!("sfu-server listening: http={http_addr} udp={udp_addr}{metrics_note}");
    println!("open http://{http_addr}/ in two browser tabs to try a call");
    info!(%http_addr, %udp_addr, udp_buffer, candidates = ?config.candidate_ips(), "sfu-server started");

    let app = http::router(registry, stats);
    axum::serve(http, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    info!("sfu-server stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown signal received");
}
