//! The final report: per room and in total, as a table for people and JSON for machines,
//! and the pass/fail verdict against the scenario's thresholds.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::peer_result::PeerResult;
use crate::scenario::Scenario;
use crate::server_usage::ForwardingLatency;

/// Percentiles of a distribution, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples_ms` (sorted here).
    pub fn of(samples_ms: &mut [f64]) -> Option<Self> {
        if samples_ms.is_empty() {
            return None;
        }
        samples_ms.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = ((p / 100.0) * samples_ms.len() as f64).ceil() as usize;
            samples_ms[rank.clamp(1, samples_ms.len()) - 1]
        };
        Some(Self {
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
        })
    }
}

/// What one room (or the whole run) measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Room name, or "total".
    pub room: String,
    /// Publishing participants.
    pub publishers: u32,
    /// Receive-only participants.
    pub subscribers: u32,
    /// (receiver, track) pairs that should have delivered media.
    pub tracks_expected: u64,
    /// Of those, pairs that delivered at least one frame.
    pub tracks_received: u64,
    /// The pairs that did not, as "receiver <- track"; a receiver's tracks that delivered
    /// frames but belong to no other member are listed as "receiver <- track (unknown)".
    pub missing_tracks: Vec<String>,
    /// Received payload bitrate, Mbit/s.
    pub receive_mbps: f64,
    /// Sent payload bitrate, Mbit/s.
    pub send_mbps: f64,
    /// Frames received.
    pub frames: u64,
    /// Frames missing.
    pub frames_lost: u64,
    /// Missing over expected frames.
    pub loss: f64,
    /// RTP packets of the received frames.
    pub packets: u64,
    /// RTP packets missing (by sequence number) in the received streams.
    pub packets_lost: u64,
    /// Missing over expected packets.
    pub packet_loss: f64,
    /// Duplicate frames.
    pub duplicates: u64,
    /// Reordered frames.
    pub reordered: u64,
    /// One-way frame latency, publisher send to subscriber receive.
    pub latency_ms: Option<Percentiles>,
    /// Mean RFC 3550 jitter over tracks, ms.
    pub jitter_ms: f64,
    /// WebSocket open to ICE+DTLS connected.
    pub join_ms: Option<Percentiles>,
    /// Simulcast layer changes seen by receivers.
    pub layer_switches: u64,
    /// Frames that arrived after a gap in their track's RTP sequence numbers.
    pub rtp_gaps: u64,
    /// Participants that stopped before the end (connection lost, server gone).
    pub participants_failed: u64,
    /// Data channel messages sent.
    pub data_sent: u64,
    /// Data channel messages received.
    pub data_received: u64,
    /// Malformed and forged datagrams sent to the server (`garbage_per_sec`).
    pub garbage_sent: u64,
    /// Errors (signaling, connection, corrupted or misattributed frames).
    pub errors: u64,
}

/// The server's cost over the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerCost {
    /// Seconds of the window.
    pub window_s: f64,
    /// CPU seconds the server used.
    pub cpu_s: f64,
    /// RTP packets the subscribers received in the window, counted by this load generator
    /// the same way for every target.
    pub delivered_packets: u64,
    /// Delivered packets per second.
    pub delivered_per_s: f64,
    /// CPU microseconds per delivered packet.
    pub cpu_us_per_delivered_packet: Option<f64>,
    /// Packets it says it forwarded (its `/healthz` counters; this SFU only).
    pub forwarded_packets: Option<u64>,
    /// Payload megabits it says it forwarded.
    pub forwarded_megabits: Option<f64>,
    /// Forwarded packets per second.
    pub packets_per_s: Option<f64>,
    /// CPU microseconds per forwarded packet.
    pub cpu_us_per_packet: Option<f64>,
    /// CPU milliseconds per forwarded megabit.
    pub cpu_ms_per_megabit: Option<f64>,
    /// Share of one core used.
    pub cores_used: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Forwarding latency inside the server, from its own histogram (`--metrics-url`).
    pub forwarding_latency: Option<ForwardingLatency>,
}

/// A threshold and whether the run met it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Met or not.
    pub passed: bool,
}

/// Everything the run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per room.
    pub rooms: Vec<Summary>,
    /// All rooms together.
    pub total: Summary,
    /// The server's cost, when `--server-pid` was given.
    pub server: Option<ServerCost>,
    /// CPU seconds this load generator used.
    pub loadtest_cpu_s: Option<f64>,
    /// The verdicts.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
    /// The first errors seen.
    pub errors: Vec<String>,
}

/// Summarise `results` of a run that lasted `duration`.
pub fn summarize(results: &[PeerResult], duration: Duration) -> (Vec<Summary>, Summary) {
    let mut by_room: BTreeMap<&str, Vec<&PeerResult>> = BTreeMap::new();
    for r in results {
        by_room.entry(r.plan.room.as_str()).or_default().push(r);
    }
    let rooms: Vec<Summary> = by_room
        .iter()
        .map(|(room, members)| summarize_room(room, members, duration))
        .collect();
    let all: Vec<&PeerResult> = results.iter().collect();
    // Expected tracks only make sense within a room: the total adds up the rooms'.
    let mut total = summarize_room("total", &all, duration);
    total.tracks_expected = rooms.iter().map(|s| s.tracks_expected).sum();
    total.tracks_received = rooms.iter().map(|s| s.tracks_received).sum();
    total.missing_tracks = rooms
        .iter()
        .flat_map(|s| s.missing_tracks.iter().cloned())
        .collect();
    (rooms, total)
}

fn collect_samples(members: &[&PeerResult], latencies: &mut Vec<f64>, joins: &mut Vec<f64>) {
    for m in members {
        for (_, stats) in m.received.values() {
            latencies.extend(stats.latencies_us.iter().map(|us| f64::from(*us) / 1000.0));
        }
        if let Some(j) = m.join_time {
            joins.push(j.as_secs_f64() * 1000.0);
        }
    }
}

fn summarize_room(room: &str, members: &[&PeerResult], duration: Duration) -> Summary {
    let secs = duration.as_secs_f64().max(1e-3);
    let mut s = Summary {
        room: room.to_owned(),
        ..Summary::default()
    };
    let mut jitters = Vec::new();
    for m in members {
        if m.plan.publishes {
            s.publishers += 1;
        } else {
            s.subscribers += 1;
        }
        let own: HashSet<&String> = m.published.iter().collect();
        let others: HashSet<&String> = members
            .iter()
            .filter(|o| o.plan.index != m.plan.index)
            .flat_map(|o| o.published.iter())
            .collect();
        s.tracks_expected += others.len() as u64;
        let receiver = m.participant_id.as_deref().unwrap_or("?");
        for track_id in &others {
            if m.received.get(*track_id).is_none_or(|(_, t)| t.frames == 0) {
                s.missing_tracks.push(format!("{receiver} <- {track_id}"));
            }
        }
        for (track_id, (_, stats)) in &m.received {
            if others.contains(track_id) && stats.frames > 0 {
                s.tracks_received += 1;
            } else if !own.contains(track_id) && stats.frames > 0 {
                s.missing_tracks
                    .push(format!("{receiver} <- {track_id} (unknown)"));
            }
            if own.contains(track_id) {
                continue;
            }
            s.frames += stats.frames;
            s.frames_lost += stats.lost();
            s.duplicates += stats.duplicates;
            s.reordered += stats.reordered;
            s.layer_switches += u64::from(stats.layer_switches);
            s.rtp_gaps += stats.rtp_gaps;
            s.packets += stats.rtp_packets;
            s.packets_lost += stats.rtp_lost();
            s.receive_mbps += stats.bytes as f64 * 8.0 / secs / 1e6;
            jitters.push(stats.jitter_us() / 1000.0);
        }
        s.send_mbps += m.bytes_sent as f64 * 8.0 / secs / 1e6;
        s.data_sent += m.data_sent;
        s.data_received += m.data_received;
        s.garbage_sent += m.garbage_sent;
        s.errors += m.error_count;
        s.participants_failed += u64::from(m.ended_early);
    }
    s.missing_tracks.sort();
    let expected_packets = s.packets + s.packets_lost;
    s.packet_loss = if expected_packets == 0 {
        0.0
    } else {
        s.packets_lost as f64 / expected_packets as f64
    };
    let expected = s.frames + s.frames_lost;
    s.loss = if expected == 0 {
        0.0
    } else {
        s.frames_lost as f64 / expected as f64
    };
    s.jitter_ms = if jitters.is_empty() {
        0.0
    } else {
        jitters.iter().sum::<f64>() / jitters.len() as f64
    };
    let mut latencies = Vec::new();
    let mut joins = Vec::new();
    collect_samples(members, &mut latencies, &mut joins);
    s.latency_ms = Percentiles::of(&mut latencies);
    s.join_ms = Percentiles::of(&mut joins);
    s
}

/// How many missing tracks a failed delivery check names.
const MISSING_SHOWN: usize = 6;

/// The verdicts for `total` under `scenario`'s thresholds.
pub fn checks(total: &Summary, scenario: &Scenario) -> Vec<Check> {
    let mut delivered = format!("{}/{}", total.tracks_received, total.tracks_expected);
    if !total.missing_tracks.is_empty() {
        let shown = total.missing_tracks.iter().take(MISSING_SHOWN);
        let listed: Vec<&str> = shown.map(String::as_str).collect();
        delivered += &format!("; missing: {}", listed.join(", "));
        if total.missing_tracks.len() > MISSING_SHOWN {
            delivered += &format!(" and {} more", total.missing_tracks.len() - MISSING_SHOWN);
        }
    }
    let mut out = vec![Check {
        what: format!("every expected track delivered media ({delivered})"),
        passed: total.tracks_received == total.tracks_expected && total.tracks_expected > 0,
    }];
    let participants = u64::from(total.publishers + total.subscribers);
    out.push(Check {
        what: format!(
            "every participant stayed until the end ({}/{participants})",
            participants - total.participants_failed
        ),
        passed: total.participants_failed == 0,
    });
    if let Some(max) = scenario.max_loss {
        out.push(Check {
            what: format!(
                "frame loss {:.3}% <= {:.3}%",
                total.loss * 100.0,
                max * 100.0
            ),
            passed: total.loss <= max,
        });
    }
    if let Some(max) = scenario.max_p99_latency_ms {
        let p99 = total.latency_ms.map(|l| l.p99);
        out.push(Check {
            what: format!(
                "p99 latency {} <= {max:.1} ms",
                p99.map_or("n/a".to_owned(), |v| format!("{v:.1} ms"))
            ),
            passed: p99.is_some_and(|v| v <= max),
        });
    }
    out
}

/// The report as a text table.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let ms = |p: Option<Percentiles>| {
        p.map_or("-".to_owned(), |p| {
            format!("{:.1}/{:.1}/{:.1}", p.p50, p.p95, p.p99)
        })
    };
    let join =
        |p: Option<Percentiles>| p.map_or("-".to_owned(), |p| format!("{:.0}/{:.0}", p.p50, p.p95));
    let _ = writeln!(
        out,
        "{:<12} {:>4} {:>4} {:>11} {:>9} {:>9} {:>8} {:>10} {:>20} {:>8} {:>12} {:>8} {:>5} {:>6}",
        "room",
        "pub",
        "sub",
        "tracks",
        "send Mb/s",
        "recv Mb/s",
        "loss %",
        "pkt loss %",
        "latency p50/95/99 ms",
        "jitter",
        "join p50/95",
        "switches",
        "gaps",
        "errors"
    );
    for s in report.rooms.iter().chain(std::iter::once(&report.total)) {
        let _ = writeln!(
            out,
            "{:<12} {:>4} {:>4} {:>11} {:>9.2} {:>9.2} {:>8.3} {:>10.3} {:>20} {:>8.2} {:>12} {:>8} {:>5} {:>6}",
            s.room,
            s.publishers,
            s.subscribers,
            format!("{}/{}", s.tracks_received, s.tracks_expected),
            s.send_mbps,
            s.receive_mbps,
            s.loss * 100.0,
            s.packet_loss * 100.0,
            ms(s.latency_ms),
            s.jitter_ms,
            join(s.join_ms),
            s.layer_switches,
            s.rtp_gaps,
            s.errors,
        );
    }
    if report.total.data_sent > 0 {
        let _ = writeln!(
            out,
            "data channel: {} messages sent, {} received",
            report.total.data_sent, report.total.data_received
        );
    }
    if report.total.garbage_sent > 0 {
        let _ = writeln!(
            out,
            "hostile input: {} malformed or forged datagrams sent to the server",
            report.total.garbage_sent
        );
    }
    if let Some(c) = &report.server {
        let or_dash =
            |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        let _ = writeln!(
            out,
            "server: {:.1} s window, {:.2} CPU s ({:.1}% of a core), peak RSS {}",
            c.window_s,
            c.cpu_s,
            c.cores_used * 100.0,
            c.peak_rss_mib
                .map_or("-".to_owned(), |v| format!("{v:.1} MiB")),
        );
        let _ = writeln!(
            out,
            "server cost: {} µs CPU per delivered packet ({} RTP packets received by subscribers, {:.0}/s)",
            or_dash(c.cpu_us_per_delivered_packet, 2),
            c.delivered_packets,
            c.delivered_per_s,
        );
        if let Some(forwarded) = c.forwarded_packets {
            let _ = writeln!(
                out,
                "server's own count: {forwarded} packets forwarded ({}/s), {} Mbit; {} µs CPU per forwarded packet, {} ms CPU per forwarded Mbit",
                or_dash(c.packets_per_s, 0),
                or_dash(c.forwarded_megabits, 1),
                or_dash(c.cpu_us_per_packet, 2),
                or_dash(c.cpu_ms_per_megabit, 2),
            );
        }
    }
    if let Some(latency) = report.server.as_ref().and_then(|c| c.forwarding_latency) {
        let at_most = |v: Option<f64>| {
            v.map_or("above the histogram's last bound".to_owned(), |v| {
                format!("<= {v} ms")
            })
        };
        let _ = writeln!(
            out,
            "forwarding latency inside the server (its sfu_forwarding_seconds): p50 {}, p99 {} over {} forwarded packets",
            at_most(latency.p50_ms_at_most),
            at_most(latency.p99_ms_at_most),
            latency.samples,
        );
    }
    if let Some(cpu) = report.loadtest_cpu_s {
        let _ = writeln!(out, "loadtest itself: {cpu:.2} CPU s");
    }
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for c in &report.checks {
        let _ = writeln!(out, "{} {}", if c.passed { "PASS" } else { "FAIL" }, c.what);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::FrameHeader;
    use crate::scenario::PeerPlan;
    use crate::track_stats::TrackStats;
    use signaling::MediaKind;
    use std::collections::HashMap;

    fn peer(index: u32, room: &str, publishes: bool, published: &[&str]) -> PeerResult {
        PeerResult {
            plan: PeerPlan {
                index,
                room: room.to_owned(),
                publishes,
            },
            participant_id: Some(format!("PA_{index}")),
            join_time: Some(Duration::from_millis(100 * u64::from(index + 1))),
            published: published.iter().map(|t| (*t).to_owned()).collect(),
            received: HashMap::new(),
            bytes_sent: 1_000_000,
            data_sent: 0,
            data_received: 0,
            garbage_sent: 0,
            error_count: 0,
            errors: Vec::new(),
            ended_early: false,
            started: std::time::Instant::now(),
        }
    }

    fn receive(p: &mut PeerResult, track: &str, publisher: &str, seqs: &[u32], latency_us: u64) {
        let mut stats = TrackStats::new(publisher.to_owned());
        for seq in seqs {
            let header = FrameHeader {
                layer: 0,
                seq: *seq,
                sent_at_us: 1_000_000,
                publisher: publisher.to_owned(),
            };
            assert!(stats.on_frame(&header, 1000, 1_000_000 + latency_us));
        }
        p.received
            .insert(track.to_owned(), (MediaKind::Video, stats));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        // Requirement: p50/p95/p99 are values that occurred, by nearest rank.
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            Percentiles::of(&mut v),
            Some(Percentiles {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0
            })
        );
        assert_eq!(
            Percentiles::of(&mut [7.0]),
            Some(Percentiles {
                p50: 7.0,
                p95: 7.0,
                p99: 7.0
            })
        );
        assert_eq!(Percentiles::of(&mut []), None);
    }

    #[test]
    fn rooms_count_expected_tracks_loss_and_latency() {
        // Requirement: every receiver should get every other publisher's tracks in its room; loss and latency add up.
        let mut a = peer(0, "r0", true, &["TA"]);
        let mut b = peer(1, "r0", true, &["TB"]);
        let mut s = peer(2, "r0", false, &[]);
        receive(&mut a, "TB", "PA_1", &[0, 1, 2, 3], 2_000);
        receive(&mut b, "TA", "PA_0", &[0, 1, 3], 4_000);
        receive(&mut s, "TA", "PA_0", &[0, 1, 2, 3], 2_000);
        let mut lonely = peer(3, "r1", true, &["TC"]);
        lonely.ended_early = true;
        let (rooms, total) = summarize(&[a, b, s, lonely], Duration::from_secs(1));
        let r0 = &rooms[0];
        assert_eq!((r0.publishers, r0.subscribers), (2, 1));
        assert_eq!(
            (r0.tracks_expected, r0.tracks_received),
            (4, 3),
            "s never got TB"
        );
        assert_eq!((r0.frames, r0.frames_lost), (11, 1));
        assert!((r0.loss - 1.0 / 12.0).abs() < 1e-12);
        assert_eq!(r0.latency_ms.map(|l| (l.p50, l.p99)), Some((2.0, 4.0)));
        assert_eq!(r0.join_ms.map(|j| j.p50), Some(200.0));
        assert_eq!(rooms[1].tracks_expected, 0, "alone in its room");
        assert_eq!((total.tracks_expected, total.tracks_received), (4, 3));
        assert_eq!(total.missing_tracks, ["PA_2 <- TB"]);
        assert_eq!(total.frames, 11);
        assert_eq!(total.publishers, 3);
        let scenario = Scenario {
            max_loss: Some(0.01),
            max_p99_latency_ms: Some(10.0),
            ..Scenario::default()
        };
        let verdicts: Vec<bool> = checks(&total, &scenario).iter().map(|c| c.passed).collect();
        assert_eq!(total.participants_failed, 1);
        assert_eq!(
            verdicts,
            vec![false, false, false, true],
            "tracks missing, one participant failed, loss too high, latency fine"
        );
    }

    #[test]
    fn missing_and_unknown_tracks_are_named_in_the_delivery_check() {
        // Requirement: a failed delivery check says which receiver lacks which track, and
        // which frames arrived on a track id no other member published.
        let mut a = peer(0, "r0", true, &["TA"]);
        let b = peer(1, "r0", true, &["TB"]);
        receive(&mut a, "TB?", "PA_1", &[0, 1], 1_000);
        let (_, total) = summarize(&[a, b], Duration::from_secs(1));
        assert_eq!(
            total.missing_tracks,
            ["PA_0 <- TB", "PA_0 <- TB? (unknown)", "PA_1 <- TA"]
        );
        let delivery = &checks(&total, &Scenario::default())[0];
        assert!(!delivery.passed);
        assert_eq!(
            delivery.what,
            "every expected track delivered media (0/2; missing: PA_0 <- TB, \
             PA_0 <- TB? (unknown), PA_1 <- TA)"
        );

        let crowd: Vec<PeerResult> = (0..4)
            .map(|i| peer(i, "r0", true, &[&format!("T{i}")]))
            .collect();
        let (_, total) = summarize(&crowd, Duration::from_secs(1));
        assert_eq!(total.missing_tracks.len(), 12);
        assert!(
            checks(&total, &Scenario::default())[0]
                .what
                .ends_with(" and 6 more)")
        );
    }
}
