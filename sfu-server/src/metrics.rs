//! Prometheus metrics at `/metrics`, on a listener of their own.
//!
//! Node-wide series come from the `metrics` recorder: the counters of [`Stats`] are copied
//! in at scrape time, histograms and labelled counters are recorded where things happen.
//! Per-room series (`room` label) are rendered from live room snapshots at scrape time, so a
//! closed room's series disappear with it; only the `metrics_max_rooms` largest rooms get
//! their own series. Every metric is listed in `METRICS.md`.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::access;
use crate::limits::{LIMITS_HIT, Limit};
use crate::metric_names::{
    CONNECTION_FAILURE_REASONS, CONNECTION_FAILURES, FORWARDING_SECONDS, JOIN_SECONDS,
    KEYFRAME_WAIT_SECONDS, SIGNALING_ERRORS,
};
use crate::registry::Registry;
use crate::room::RoomSnapshot;
use crate::stats::{COUNTERS, Stats, StatsSnapshot};

const KEYFRAME_WAIT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];
const JOIN_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0];
const FORWARDING_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
];

/// The installed recorder's handle, for rendering.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

/// Install the process-wide recorder (once, at start-up).
pub fn install() -> anyhow::Result<Exporter> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(JOIN_SECONDS.into()), JOIN_BUCKETS)
        .context("join latency buckets")?
        .set_buckets_for_metric(Matcher::Full(FORWARDING_SECONDS.into()), FORWARDING_BUCKETS)
        .context("forwarding latency buckets")?
        .set_buckets_for_metric(
            Matcher::Full(KEYFRAME_WAIT_SECONDS.into()),
            KEYFRAME_WAIT_BUCKETS,
        )
        .context("keyframe wait buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder is already installed")?;
    describe();
    register_at_zero();
    Ok(Exporter { handle })
}

/// Create every labelled series and histogram up front, so dashboards and `rate()` see
/// them (at zero) before the first event.
fn register_at_zero() {
    for code in signaling::ErrorCode::ALL {
        metrics::counter!(SIGNALING_ERRORS, "code" => code.as_str()).absolute(0);
    }
    for reason in CONNECTION_FAILURE_REASONS {
        metrics::counter!(CONNECTION_FAILURES, "reason" => reason).absolute(0);
    }
    for limit in Limit::ALL {
        metrics::counter!(LIMITS_HIT, "limit" => limit.label()).absolute(0);
    }
    for (door, reason) in access::REFUSED_LABELS {
        metrics::counter!(access::REFUSED_REQUESTS, "door" => door, "reason" => reason).absolute(0);
    }
    for name in [JOIN_SECONDS, FORWARDING_SECONDS, KEYFRAME_WAIT_SECONDS] {
        let _ = metrics::histogram!(name);
    }
}

fn describe() {
    metrics::describe_histogram!(
        JOIN_SECONDS,
        metrics::Unit::Seconds,
        "Time from a join to its ICE+DTLS being connected."
    );
    metrics::describe_histogram!(
        FORWARDING_SECONDS,
        metrics::Unit::Seconds,
        "Time inside the SFU from a packet's receipt to its last forwarded copy."
    );
    metrics::describe_histogram!(
        KEYFRAME_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time a consumer waited for the keyframe that starts or switches its layer."
    );
    metrics::describe_counter!(
        SIGNALING_ERRORS,
        "Signaling errors sent to clients, by code."
    );
    metrics::describe_counter!(
        LIMITS_HIT,
        "Times a per-participant limit refused or dropped something, by limit."
    );
    metrics::describe_counter!(
        access::REFUSED_REQUESTS,
        "HTTP requests refused at /ws or /api: not a local caller in development mode, a page of a foreign origin, or no valid admin credential."
    );
    metrics::describe_counter!(
        CONNECTION_FAILURES,
        "Participants removed because their media path failed, by reason."
    );
    for (name, what) in COUNTERS {
        let what: Vec<&str> = what.split_whitespace().collect();
        metrics::describe_counter!(format!("sfu_{name}_total"), what.join(" "));
    }
}

#[derive(Clone)]
struct MetricsState {
    exporter: Exporter,
    registry: Registry,
    stats: Arc<Stats>,
}

/// The routes of the metrics listener.
pub fn router(exporter: Exporter, registry: Registry, stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState {
            exporter,
            registry,
            stats,
        })
}

async fn scrape(State(state): State<MetricsState>) -> impl IntoResponse {
    let rooms = state.registry.snapshots().await;
    let (_, participants) = state.registry.counts();
    record_node(&state.stats.snapshot(), rooms.len(), participants, &rooms);
    metrics::gauge!("sfu_runtime_tasks").set(state.registry.alive_tasks() as f64);
    let mut text = state.exporter.handle.render();
    render_rooms(&mut text, rooms, state.registry.config().metrics_max_rooms);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Copy the node's counters and gauges into the recorder.
fn record_node(
    stats: &StatsSnapshot,
    rooms: usize,
    participants: usize,
    snapshots: &[RoomSnapshot],
) {
    for (name, value) in stats.counters() {
        metrics::counter!(format!("sfu_{name}_total")).absolute(value);
    }
    metrics::gauge!("sfu_rooms").set(rooms as f64);
    metrics::gauge!("sfu_participants").set(participants as f64);
    let producers: usize = snapshots.iter().map(RoomSnapshot::producers).sum();
    let consumers: usize = snapshots.iter().map(RoomSnapshot::consumers).sum();
    metrics::gauge!("sfu_producers").set(producers as f64);
    metrics::gauge!("sfu_consumers").set(consumers as f64);
    if let Some(cpu) = process_cpu() {
        metrics::gauge!("process_cpu_seconds_total").set(cpu.as_secs_f64());
    }
    if let Some(rss) = process_rss_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
}

/// CPU time of this process, all threads.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(total))
}

/// Resident memory of this process.
fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// One per-room series family.
struct RoomSeries {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&RoomSnapshot) -> f64,
}

const ROOM_SERIES: &[RoomSeries] = &[
    RoomSeries {
        name: "sfu_room_participants",
        kind: "gauge",
        help: "Participants in the room.",
        value: |r| r.participants.len() as f64,
    },
    RoomSeries {
        name: "sfu_room_producers",
        kind: "gauge",
        help: "Tracks published in the room.",
        value: |r| r.producers() as f64,
    },
    RoomSeries {
        name: "sfu_room_consumers",
        kind: "gauge",
        help: "Tracks forwarded to subscribers in the room.",
        value: |r| r.consumers() as f64,
    },
    RoomSeries {
        name: "sfu_room_ingress_bits_per_second",
        kind: "gauge",
        help: "Bitrate arriving from the room's publishers (all layers).",
        value: |r| r.ingress_bps() as f64,
    },
    RoomSeries {
        name: "sfu_room_forwarded_packets_total",
        kind: "counter",
        help: "RTP packets forwarded to the room's subscribers.",
        value: |r| r.forwarded_packets as f64,
    },
    RoomSeries {
        name: "sfu_room_forwarded_bytes_total",
        kind: "counter",
        help: "RTP payload bytes forwarded to the room's subscribers.",
        value: |r| r.forwarded_bytes as f64,
    },
];

/// Append the per-room series of the `cap` largest rooms, and how many rooms had none.
fn render_rooms(out: &mut String, mut rooms: Vec<RoomSnapshot>, cap: usize) {
    rooms.sort_by(|a, b| {
        b.participants
            .len()
            .cmp(&a.participants.len())
            .then_with(|| a.room.cmp(&b.room))
    });
    let left_out = rooms.len().saturating_sub(cap);
    rooms.truncate(cap);
    for series in ROOM_SERIES {
        let _ = writeln!(out, "# HELP {} {}", series.name, series.help);
        let _ = writeln!(out, "# TYPE {} {}", series.name, series.kind);
        for room in &rooms {
            let _ = writeln!(
                out,
                "{}{{room=\"{}\"}} {}",
                series.name,
                escape_label(&room.room),
                (series.value)(room)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sfu_rooms_without_series Rooms left out of the per-room series (over metrics_max_rooms).\n\
         # TYPE sfu_rooms_without_series gauge\nsfu_rooms_without_series {left_out}"
    );
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::ParticipantSnapshot;

    fn room(name: &str, participants: usize) -> RoomSnapshot {
        RoomSnapshot {
            room: name.to_owned(),
            age_secs: 1.0,
            forwarded_packets: 10,
            forwarded_bytes: 1000,
            participants: (0..participants)
                .map(|i| ParticipantSnapshot {
                    id: format!("PA_{i}"),
                    name: String::new(),
                    connected: true,
                    joined_secs: 1.0,
                    bandwidth_estimate_bps: None,
                    published: Vec::new(),
                    consumers: Vec::new(),
                    connection: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_largest_rooms_get_series() {
        // Requirement: per-room series stay bounded by metrics_max_rooms, largest rooms first,
        // and the number left out is exported.
        let mut out = String::new();
        render_rooms(
            &mut out,
            vec![room("small", 1), room("big", 5), room("mid", 3)],
            2,
        );
        assert!(
            out.contains("sfu_room_participants{room=\"big\"} 5"),
            "{out}"
        );
        assert!(
            out.contains("sfu_room_participants{room=\"mid\"} 3"),
            "{out}"
        );
        assert!(!out.contains("room=\"small\""), "{out}");
        assert!(out.contains("sfu_rooms_without_series 1"), "{out}");
        assert!(
            out.contains("sfu_room_forwarded_packets_total{room=\"big\"} 10"),
            "{out}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        // Requirement: any room name yields valid exposition text.
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn reads_this_process() {
        // Requirement: process CPU and memory come from the kernel's accounting.
        assert!(process_cpu().is_some_and(|d| d > Duration::ZERO));
        assert!(process_rss_bytes().is_some_and(|b| b > 1024 * 1024));
    }
}
