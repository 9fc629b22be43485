//! One subscriber's send-side bandwidth estimate from TWCC feedback about the packets we
//! send it, with the probes that find out how much more it can take.
//!
//! The estimate itself is Google Congestion Control, as Chrome runs it for what it
//! sends, through the `goog_cc` port of libwebrtc: delay trend, loss, acknowledged rate,
//! and its probe controller (initial probes, probes when the wanted rate rises, periodic
//! probes while the media leaves room). What is ours:
//! - [`sent`]: transport-wide numbering of what we send, and its memory for feedback;
//! - [`prober`]: probe clusters paced at their rate;
//! - [`Congestion`]: time as an argument, feedback matched to what was sent, the
//!   controller's updates turned into an estimate and probes, and a fresh start when the
//!   path changes or comes back after [`FEEDBACK_SILENCE`].
//!
//! The port's ALR detector reads the process clock for one value (when the
//! application-limited region started); every other time is the one passed in.

pub mod prober;
pub mod sent;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use goog_cc::network_control::{NetworkControllerConfig, NetworkControllerInterface};
use goog_cc::transport::{
    NetworkAvailability, NetworkControlUpdate, PacedPacketInfo, PacketResult, ProcessInterval,
    SentPacket, StreamsConfig, TargetRateConstraints, TransportPacketsFeedback,
};
use goog_cc::units::{DataRate, DataSize, Timestamp};
use goog_cc::{GoogCcConfig, GoogCcNetworkController};

use crate::twcc::{Arrival, TwccHeader, extend_reference};
use prober::{ProbePlan, Prober};
use sent::{ProbeTag, SentLog};

/// How often the controller wants its periodic update (libwebrtc's process interval).
pub const PROCESS_INTERVAL: Duration = Duration::from_millis(25);
/// How long packets may go unanswered by any report before the path counts as having
/// been dead: the report that ends such a silence restarts the estimate.
pub const FEEDBACK_SILENCE: Duration = Duration::from_secs(5);
/// The lowest estimate ever reported, bits per second (an audio stream still fits).
pub const MIN_BPS: u64 = 30_000;
/// The highest estimate ever reported, bits per second.
pub const MAX_BPS: u64 = 50_000_000;

/// One subscriber's downlink estimator.
pub struct Congestion {
    controller: GoogCcNetworkController,
    /// The estimate it starts from, and starts again from after [`restart`](Self::restart).
    start_bps: u64,
    /// What the subscriber would take, as last told by [`want`](Self::want).
    wanted: Option<u64>,
    /// Our time zero: `Timestamp`s count microseconds from it.
    epoch: Instant,
    log: SentLog,
    prober: Prober,
    /// The first report's extended reference time (the receiver's clock starts there).
    remote_zero: Option<i64>,
    /// The last report's extended reference time.
    remote_last: Option<i64>,
    /// Losses of a report that had no arrival, kept for the next one (the controller
    /// needs at least one arrival per report).
    held_losses: Vec<PacketResult>,
    next_process: Instant,
    target: Option<u64>,
    reported: Option<u64>,
    /// Whether probes can be sent (see [`start`](Self::start)).
    started: bool,
    /// When the oldest packet no report has answered yet left.
    unanswered_since: Option<Instant>,
    /// How many times it started again (see [`restart`](Self::restart)).
    restarts: u64,
    /// The controller panicked once; it is no longer asked anything.
    broken: bool,
}

impl Congestion {
    /// An estimator starting at `start_bps`, at `now`.
    pub fn new(start_bps: u64, now: Instant) -> Self {
        let start_bps = start_bps.clamp(MIN_BPS, MAX_BPS);
        Self {
            controller: controller(start_bps),
            start_bps,
            wanted: None,
            epoch: now,
            log: SentLog::default(),
            prober: Prober::default(),
            remote_zero: None,
            remote_last: None,
            held_losses: Vec::new(),
            next_process: now,
            target: None,
            reported: None,
            started: false,
            unanswered_since: None,
            restarts: 0,
            broken: false,
        }
    }

    /// The path to the subscriber changed at `now`, or came back after
    /// [`FEEDBACK_SILENCE`] (which [`on_feedback`](Self::on_feedback) notices): what was
    /// learned of the old one no longer holds (without feedback the estimate decays toward
    /// the minimum, and would climb back from there slowly). The estimate starts again
    /// from the start rate, with the initial probes once probes can be sent; feedback about
    /// packets sent before is ignored. The numbering goes on.
    pub fn restart(&mut self, now: Instant) {
        if self.broken {
            return;
        }
        self.restarts += 1;
        self.unanswered_since = None;
        self.controller = controller(self.start_bps);
        self.epoch = now;
        self.log.forget();
        self.prober = Prober::default();
        self.remote_zero = None;
        self.held_losses.clear();
        self.next_process = now;
        self.target = Some(self.start_bps);
        if let Some(bps) = self.wanted {
            self.want(bps, now);
        }
        if std::mem::replace(&mut self.started, false) {
            self.start(now);
        }
    }

    /// Probes can be sent from `now` on (there is a stream to pad on): the controller's
    /// initial probes go out. Later calls change nothing.
    pub fn start(&mut self, now: Instant) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.update(now, |c, at_time| {
            c.on_network_availability(NetworkAvailability {
                at_time,
                network_available: true,
            })
        });
    }

    /// When it next wants [`on_timeout`](Self::on_timeout): its periodic update or a
    /// probe packet.
    pub fn next_timeout(&self) -> Instant {
        match self.prober.next_at() {
            Some(probe) => probe.min(self.next_process),
            None => self.next_process,
        }
    }

    /// The periodic update, when due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if now < self.next_process {
            return;
        }
        self.next_process = now + PROCESS_INTERVAL;
        self.update(now, |c, at_time| {
            c.on_process_interval(ProcessInterval {
                at_time,
                pacer_queue: None,
            })
        });
    }

    /// The subscriber would take `bps` if it could (what its consumers want): a rise
    /// above the estimate may be probed for.
    pub fn want(&mut self, bps: u64, now: Instant) {
        self.wanted = Some(bps);
        self.update(now, |c, at_time| {
            c.on_streams_config(StreamsConfig {
                at_time,
                max_total_allocated_bitrate: Some(rate(bps)),
                ..Default::default()
            })
        });
    }

    /// The transport-wide sequence number the next packet sent will carry.
    pub fn next_seq(&self) -> u16 {
        self.log.next_seq()
    }

    /// A packet of `bytes` leaves at `now` (for probe cluster `probe`): its transport-wide
    /// sequence number.
    pub fn on_sent(&mut self, bytes: usize, probe: Option<ProbeTag>, now: Instant) -> u16 {
        let seq = self.log.record(now, bytes, probe);
        self.unanswered_since.get_or_insert(now);
        let sent = SentPacket {
            send_time: self.timestamp(now),
            size: DataSize::from_bytes(bytes as i64),
            pacing_info: pacing_info(probe),
            sequence_number: seq as i64,
            ..Default::default()
        };
        self.update(now, |c, _| c.on_sent_packet(sent));
        seq
    }

    /// A TWCC report (`header`, its `arrivals`) arrived at `now`. The first one after
    /// [`FEEDBACK_SILENCE`] restarts the estimate.
    pub fn on_feedback(&mut self, header: &TwccHeader, arrivals: &[Arrival], now: Instant) {
        let silent_since = self.unanswered_since.take();
        if silent_since
            .is_some_and(|since| now.saturating_duration_since(since) >= FEEDBACK_SILENCE)
        {
            self.restart(now);
        }
        let reference = extend_reference(self.remote_last, header.reference_time);
        self.remote_last = Some(reference);
        let zero = *self.remote_zero.get_or_insert(reference);
        let mut results = std::mem::take(&mut self.held_losses);
        let mut received = false;
        for arrival in arrivals {
            let Some(sent) = self.log.get_mut(arrival.seq) else {
                continue;
            };
            if sent.acked {
                continue;
            }
            let receive_time = match arrival.at_us {
                Some(us) => {
                    sent.acked = true;
                    received = true;
                    Timestamp::from_micros(reference - zero + us)
                }
                None => Timestamp::plus_infinity(),
            };
            let sent = *sent;
            results.push(PacketResult {
                sent_packet: SentPacket {
                    send_time: self.timestamp(sent.at),
                    size: DataSize::from_bytes(i64::from(sent.bytes)),
                    pacing_info: pacing_info(sent.probe),
                    sequence_number: sent.seq as i64,
                    ..Default::default()
                },
                receive_time,
                ..Default::default()
            });
        }
        if !received {
            results.truncate(sent::REMEMBERED);
            self.held_losses = results;
            return;
        }
        let feedback = TransportPacketsFeedback {
            feedback_time: self.timestamp(now),
            packet_feedbacks: results,
            ..Default::default()
        };
        self.update(now, move |c, _| c.on_transport_packets_feedback(feedback));
    }

    /// The estimate, bits per second, when it changed since last asked.
    pub fn poll_estimate(&mut self) -> Option<u64> {
        let target = self.target?;
        (self.reported != Some(target)).then(|| {
            self.reported = Some(target);
            target
        })
    }

    /// Whether a probe packet of `bytes` is due at `now`: the cluster to send it for.
    pub fn probe_due(&mut self, bytes: usize, now: Instant) -> Option<ProbeTag> {
        self.prober.poll(bytes, now)
    }

    /// How many times the estimate started again since it was made.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Whether the controller panicked and was switched off (the estimate stays).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Microseconds since our epoch, as the controller counts time.
    fn timestamp(&self, at: Instant) -> Timestamp {
        Timestamp::from_micros(at.saturating_duration_since(self.epoch).as_micros() as i64)
    }

    /// Ask the controller something at `now` and act on its answer: a new target rate,
    /// probes to send. A panic inside it switches it off instead of taking the room down.
    fn update(
        &mut self,
        now: Instant,
        ask: impl FnOnce(&mut GoogCcNetworkController, Timestamp) -> NetworkControlUpdate,
    ) {
        if self.broken {
            return;
        }
        let at_time = self.timestamp(now);
        let controller = &mut self.controller;
        let Ok(update) = catch_unwind(AssertUnwindSafe(|| ask(controller, at_time))) else {
            self.broken = true;
            return;
        };
        if let Some(target) = update.target_rate {
            let bps = target
                .target_rate
                .bps()
                .clamp(MIN_BPS as i64, MAX_BPS as i64);
            self.target = Some(bps as u64);
        }
        for probe in update.probe_cluster_configs {
            let Ok(rate_bps) = u64::try_from(probe.target_data_rate.bps()) else {
                continue;
            };
            let plan = ProbePlan {
                cluster: probe.id,
                rate_bps,
                min_probes: probe.target_probe_count,
                duration: Duration::from_micros(probe.target_duration.us().max(0) as u64),
            };
            self.prober.push(plan, now);
        }
    }
}

/// A controller starting at `start_bps`, at time zero, told to probe while the media
/// leaves room.
fn controller(start_bps: u64) -> GoogCcNetworkController {
    let at_time = Timestamp::from_micros(0);
    let config = NetworkControllerConfig {
        constraints: TargetRateConstraints {
            at_time,
            min_data_rate: Some(rate(MIN_BPS)),
            max_data_rate: Some(rate(MAX_BPS)),
            starting_rate: Some(rate(start_bps)),
        },
        stream_based_config: StreamsConfig {
            at_time,
            requests_alr_probing: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    GoogCcNetworkController::new(
        config,
        GoogCcConfig {
            feedback_only: true,
        },
    )
}

/// `bps` as the controller's rate type.
fn rate(bps: u64) -> DataRate {
    DataRate::from_bits_per_sec(bps as i64)
}

/// The pacing facts the controller reads of a sent packet.
fn pacing_info(probe: Option<ProbeTag>) -> PacedPacketInfo {
    match probe {
        Some(tag) => PacedPacketInfo::new(
            tag.cluster,
            i64::from(tag.min_probes),
            i64::from(tag.min_bytes),
        ),
        None => PacedPacketInfo::default(),
    }
}

#[cfg(test)]
mod tests;
