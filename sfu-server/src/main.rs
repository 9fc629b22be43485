//! `sfu-server`: the SFU binary. See the README for how to run it.

mod access;
mod api;
mod cli;
mod cluster;
mod egress;
mod http;
mod http_serve;
mod interfaces;
mod kicked;
mod limits;
mod message_rate;
mod metric_names;
mod metrics;
mod node_services;
mod peer_addresses;
mod per_ip;
mod read_budget;
mod registry;
mod room;
mod rooms_feed;
mod routing;
mod sealed;
mod session;
mod shard;
mod shutdown;
mod stats;
mod stun_auth;
mod tcp;
mod udp;
mod udp_batch;
mod web;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::egress::TcpWriters;
use crate::registry::Registry;
use crate::routing::Routes;
use crate::stats::Stats;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let config = cli.load_config()?;
    if let Some(cli::Command::Token(args)) = &cli.command {
        let secret = config.auth_secret.as_deref().context(
            "no auth secret: give --auth-secret, SFU_AUTH_SECRET or auth_secret in the config file",
        )?;
        println!("{}", args.token(secret));
        return Ok(());
    }
    cli::init_logging(config.log_format);
    str0m_aws_lc_rs_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

/// Install the crypto providers: str0m's for DTLS and SRTP, rustls' for TLS to Redis.
fn str0m_aws_lc_rs_default() {
    str0m::crypto::from_feature_flags().install_process_default();
    // Redis over TLS (rediss://) goes through rustls, on the same aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn run(mut config: config::Config) -> anyhow::Result<()> {
    let bind = config.udp_listen.ip();
    if bind.is_unspecified() && config.advertise_ips.is_empty() {
        let found = interfaces::detect(bind).context("cannot list the network interfaces")?;
        anyhow::ensure!(
            !found.is_empty(),
            "udp_listen {} is a wildcard address and this host has no non-loopback {} address to \
             advertise: set advertise_ips (--advertise-ip) to the address clients reach",
            config.udp_listen,
            if bind.is_ipv4() { "IPv4" } else { "IPv6" }
        );
        info!(ips = ?found, "advertising the interface addresses in ICE candidates");
        config.advertise_ips = found;
    }
    let config = Arc::new(config);
    let stats = Arc::new(Stats::default());
    let routes = Routes::default();
    let tcp_writers = TcpWriters::default();
    let shards = shard::start(
        config.media_threads,
        config.udp_listen,
        &config.candidate_ips(),
        &tcp_writers,
        &routes,
        &stats,
    )
    .with_context(|| {
        format!(
            "cannot bind the UDP media socket(s) on {} ({} media threads)",
            config.udp_listen, config.media_threads
        )
    })?;
    let udp_addrs: Vec<String> = shards.iter().map(|s| s.udp_addr.to_string()).collect();
    let udp_addrs = udp_addrs.join(",");
    let udp_buffer = shards[0].udp_buffer;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot bind the HTTP listener on {}", config.http_listen))?;
    let http_addr = http
        .local_addr()
        .context("HTTP listener has no local address")?;

    let mut ice_tcp_note = String::new();
    let ice_tcp = match config.ice_tcp_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind the ICE-TCP listener on {addr}"))?;
            let bound = listener
                .local_addr()
                .context("ICE-TCP listener has no local address")?;
            ice_tcp_note = format!(" ice_tcp={bound}");
            Some((listener, bound))
        }
        None => None,
    };
    let registry = Registry::new(
        config.clone(),
        shards,
        ice_tcp.as_ref().map(|(_, bound)| *bound),
        stats.clone(),
        routes,
    );
    if let Some((listener, _)) = ice_tcp {
        tokio::spawn(tcp::accept_loop(
            listener,
            registry.routes(),
            tcp_writers,
            stats.clone(),
        ));
    }

    if let Some(redis_url) = &config.redis_url {
        let node_id = config
            .node_id
            .clone()
            .map_or_else(
                || signaling::token::random_secret().map(|s| format!("node-{}", &s[..8])),
                Ok,
            )
            .context("cannot name this node")?;
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("ws://{http_addr}/ws"));
        let ttl = std::time::Duration::from_secs(config.cluster_ttl_secs);
        let secret = config
            .cluster_secret
            .as_deref()
            .context("redis_url is set without cluster_secret")?;
        let cluster = cluster::Cluster::connect(
            redis_url,
            secret,
            node_id.clone(),
            url.clone(),
            ttl,
            registry.stats().clone(),
        )
        .await
        .context("cannot reach Redis at redis_url")?;
        registry.set_cluster(cluster.clone());
        tokio::spawn(cluster.heartbeat_loop(registry.clone()));
        info!(node = %node_id, %url, "cluster node registered in Redis");
    }

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
        let metrics_config = config.clone();
        tokio::spawn(async move {
            http_serve::serve(listener, app, &metrics_config, std::future::pending()).await;
        });
    }

    println!("sfu-server listening: http={http_addr} udp={udp_addrs}{metrics_note}{ice_tcp_note}");
    println!("open http://{http_addr}/ in two browser tabs to try a call");
    info!(%http_addr, udp = %udp_addrs, udp_buffer, candidates = ?config.candidate_ips(), "sfu-server started");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if config.media_threads < cores {
        info!(
            media_threads = config.media_threads,
            cores,
            "media uses {} of this host's {cores} cores: set media_threads (and open its UDP ports) to use more",
            config.media_threads
        );
    }

    let app = http::router(registry.clone(), stats);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_config = config.clone();
    let mut serving = tokio::spawn(async move {
        http_serve::serve(http, app, &http_config, async move {
            let _ = http_stopped.await;
        })
        .await;
    });
    let stop = tokio::select! {
        stop = shutdown::signal() => stop,
        ended = &mut serving => {
            ended.context("HTTP server task failed")?;
            return Ok(());
        }
    };
    let deadline = tokio::time::Instant::now() + stop.grace();
    info!(?stop, grace = ?stop.grace(), "shutdown signal received");
    registry.begin_draining();
    if let Some(cluster) = registry.cluster() {
        match tokio::time::timeout_at(deadline, cluster.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "cannot leave the cluster; its records expire by themselves")
            }
            Err(_) => warn!("leaving the cluster timed out; its records expire by themselves"),
        }
    }
    shutdown::close_rooms(&registry, deadline).await;
    let _ = stop_http.send(());
    if tokio::time::timeout_at(deadline, serving).await.is_err() {
        warn!("signaling connections still open at the shutdown deadline; exiting anyway");
    }
    info!("sfu-server stopped");
    Ok(())
}
