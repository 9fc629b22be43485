//! `loadtest`: synthetic WebRTC publishers and subscribers that load an SFU through its
//! signaling protocol and report what they measured (see `loadtest/README.md`).

mod cli;
mod connection;
mod endpoint;
mod garbage;
mod janus;
mod livekit;
mod livekit_signal;
mod media;
mod payload;
mod peer;
mod peer_result;
mod progress;
mod report;
mod rng;
mod scenario;
mod server_usage;
mod track_stats;
mod two_connections;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::Args;
use crate::progress::{Progress, STATUS_INTERVAL, StatusLine};
use crate::report::{Report, ServerCost};
use crate::scenario::{Scenario, Target};

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the scenario; `Ok(false)` when it ran but failed its checks.
fn run(args: Args) -> anyhow::Result<bool> {
    let base = match &args.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::default(),
    };
    let scenario = args.apply(base);
    scenario.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let server = args.server_pid.map(|pid| ServerWatch {
        pid,
        metrics_url: args.metrics_url.clone(),
    });
    let report = runtime.block_on(load(Arc::new(scenario.clone()), server))?;
    print!("{}", report::render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(report.passed)
}

/// The local server whose cost the run reports.
struct ServerWatch {
    pid: u32,
    /// Its Prometheus endpoint, for its forwarding latency (this SFU only).
    metrics_url: Option<String>,
}

/// A snapshot of the server's cost counters.
struct ServerSample {
    at: Instant,
    cpu: Duration,
    /// RTP packets the subscribers received so far.
    delivered: u64,
    /// The server's own forwarding counters (this SFU only).
    forwarded: Option<server_usage::Forwarded>,
    /// Its forwarding latency histogram, when its metrics were given.
    latency: Option<server_usage::LatencyBuckets>,
}

async fn sample_server(
    server: &ServerWatch,
    scenario: &Scenario,
    progress: &Progress,
) -> anyhow::Result<ServerSample> {
    let forwarded = match scenario.target {
        Target::Sfu => Some(server_usage::forwarded(&scenario.http_base()).await?),
        Target::Janus | Target::LiveKit => None,
    };
    let latency = match &server.metrics_url {
        Some(url) => Some(server_usage::forwarding_latency(url).await?),
        None => None,
    };
    Ok(ServerSample {
        at: Instant::now(),
        cpu: server_usage::cpu_time(server.pid)?,
        delivered: progress::get(&progress.rtp_received),
        forwarded,
        latency,
    })
}

async fn load(scenario: Arc<Scenario>, server: Option<ServerWatch>) -> anyhow::Result<Report> {
    let plans = scenario.peers();
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let stop_at = started + scenario.duration;
    let ramp_gap = Duration::from_secs_f64(1.0 / scenario.ramp);
    let ramp_end = started + ramp_gap * u32::try_from(plans.len()).unwrap_or(u32::MAX);
    // The server's cost is measured once everyone had time to connect, until the end.
    let warmup = (scenario.duration / 5).min(Duration::from_secs(5));
    let window_start = (ramp_end + warmup).min(stop_at - scenario.duration / 2);
    let window_end = stop_at - Duration::from_millis(200).min(scenario.duration / 10);

    let mut handles = Vec::with_capacity(plans.len());
    let spawner = {
        let scenario = scenario.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            for (i, plan) in plans.into_iter().enumerate() {
                let at = started + ramp_gap * u32::try_from(i).unwrap_or(u32::MAX);
                tokio::time::sleep_until(at.into()).await;
                handles.push(tokio::spawn(peer::run(
                    plan,
                    scenario.clone(),
                    progress.clone(),
                    stop_at,
                )));
            }
            handles
        })
    };
    let participants = scenario.peers().len();
    let mut status = StatusLine::new(participants);
    let mut first = None;
    let mut last = None;
    let mut next_status = Instant::now() + STATUS_INTERVAL;
    loop {
        let now = Instant::now();
        if let Some(server) = &server {
            if first.is_none() && now >= window_start {
                first = Some(sample_server(server, &scenario, &progress).await?);
            }
            if last.is_none() && now >= window_end {
                last = Some(sample_server(server, &scenario, &progress).await?);
            }
        }
        if now >= stop_at {
            break;
        }
        let finished = progress.finished.load(std::sync::atomic::Ordering::Relaxed);
        if now >= ramp_end && finished >= participants as u64 {
            break; // Every participant already stopped (e.g. the server went away).
        }
        if now >= next_status {
            status.update(&progress);
            next_status += STATUS_INTERVAL;
        }
        let mut wake = next_status.min(stop_at);
        if server.is_some() {
            for (taken, at) in [
                (first.is_some(), window_start),
                (last.is_some(), window_end),
            ] {
                if !taken {
                    wake = wake.min(at);
                }
            }
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    let handles = spawner.await?;
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await?);
    }
    status.update(&progress);
    status.finish();

    let (rooms, total) = report::summarize(&results, scenario.duration);
    let server = match (server, first, last) {
        (Some(server), Some(a), Some(b)) => Some(server_cost(server.pid, &a, &b)),
        _ => None,
    };
    let checks = report::checks(&total, &scenario);
    let errors = results
        .iter()
        .flat_map(|r| r.errors.iter().cloned())
        .take(20)
        .collect();
    Ok(Report {
        passed: checks.iter().all(|c| c.passed),
        rooms,
        total,
        server,
        loadtest_cpu_s: server_usage::cpu_time(std::process::id())
            .ok()
            .map(|d| d.as_secs_f64()),
        checks,
        errors,
    })
}

fn server_cost(pid: u32, a: &ServerSample, b: &ServerSample) -> ServerCost {
    let window_s = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let cpu_s = b.cpu.saturating_sub(a.cpu).as_secs_f64();
    let delivered = b.delivered.saturating_sub(a.delivered);
    let per_packet = |packets: u64| (packets > 0).then(|| cpu_s * 1e6 / packets as f64);
    let forwarded = a.forwarded.zip(b.forwarded).map(|(a, b)| {
        let packets = b.packets.saturating_sub(a.packets);
        let megabits = b.bytes.saturating_sub(a.bytes) as f64 * 8.0 / 1e6;
        (packets, megabits)
    });
    ServerCost {
        window_s,
        cpu_s,
        delivered_packets: delivered,
        delivered_per_s: delivered as f64 / window_s,
        cpu_us_per_delivered_packet: per_packet(delivered),
        forwarded_packets: forwarded.map(|(p, _)| p),
        forwarded_megabits: forwarded.map(|(_, m)| m),
        packets_per_s: forwarded.map(|(p, _)| p as f64 / window_s),
        cpu_us_per_packet: forwarded.and_then(|(p, _)| per_packet(p)),
        cpu_ms_per_megabit: forwarded.and_then(|(_, m)| (m > 0.0).then(|| cpu_s * 1e3 / m)),
        cores_used: cpu_s / window_s,
        peak_rss_mib: server_usage::peak_rss(pid)
            .ok()
            .map(|b| b as f64 / (1024.0 * 1024.0)),
        forwarding_latency: a
            .latency
            .as_ref()
            .zip(b.latency.as_ref())
            .and_then(|(a, b)| server_usage::latency_between(a, b)),
    }
}
