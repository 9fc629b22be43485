//! The SFU's forwarding decisions, as pure functions over values.
//!
//! Nothing here does I/O or reads a clock: every function that needs time takes
//! `now` as an argument, so each decision is unit tested without a network.
//!
//! - [`ids`]: one id type per room, participant and producer (`PA_7`, `TR_3` on the wire).
//! - [`codec`]: reading the few facts the SFU needs from VP8/H264 payloads (keyframes).
//! - [`munger`]: the [`RtpMunger`](munger::RtpMunger) that gives a subscriber one gap-free
//!   sequence/timestamp space across source switches.
//! - [`vp8_munger`]: continuous VP8 PictureID / TL0PICIDX across source switches.
//! - [`forwarder`]: the per-consumer [`Forwarder`](forwarder::Forwarder) that decides, packet by
//!   packet, forward (with rewritten numbers) or drop.
//! - [`layers`]: layer choice ([`LayerChoice`](layers::LayerChoice): which simulcast layer a
//!   consumer gets) and bandwidth sharing across one subscriber's consumers.
//! - [`bandwidth`]: one subscriber's bandwidth over time: probe target, video budget and
//!   the grace before a shortage pauses a consumer.
//! - [`negotiation`]: where a consumer's m-line is in its subscriber's offer/answer.
//! - [`sdp`]: the one fact read from offer SDP text itself (the BUNDLE group).
//! - [`publish`]: whether an offer may publish what it sends, within grants and caps.
//! - [`rids`]: the simulcast rid (`q`/`h`/`f`) of each layer, and back.
//! - [`dynacast`]: which simulcast layers a publisher is asked to send, debounced.
//! - [`monitor`]: which layers of a producer are arriving, and their bitrates.
//! - [`speakers`]: active speaker ranking from audio levels.
//! - [`rate`]: a token bucket for per-connection message rates.
//! - [`throttle`]: keyframe request throttling toward publishers.
//! - [`stun`]: reading the ICE username fragment that routes a datagram.
//! - [`datagram`]: structural checks (RFC 7983 kind, header lengths) of media-port datagrams.
//! - [`srtp`]: SRTP/SRTCP protection of what the SFU sends, keyed once per session.
//! - [`retransmission`]: what an RTX answer to a NACK is rebuilt from.
//! - [`sender_report`]: the sender report and SDES CNAME a sender owes each stream.
//! - [`rtp_out`]: the RTP header and one-byte extensions of a packet the SFU sends.
//! - [`twcc`]: reading TWCC feedback: which numbered packets arrived, and when.
//! - [`congestion`]: a subscriber's send-side bandwidth estimate and its probes.
//! - [`vp8_descriptor`]: rewritten VP8 counters written into a payload descriptor.

pub mod bandwidth;
pub mod codec;
pub mod congestion;
pub mod datagram;
pub mod dynacast;
pub mod forwarder;
pub mod ids;
pub mod layers;
pub mod monitor;
pub mod munger;
pub mod negotiation;
pub mod publish;
pub mod rate;
pub mod retransmission;
pub mod rids;
pub mod rtp_out;
pub mod sdp;
pub mod sender_report;
pub mod speakers;
pub mod srtp;
pub mod stun;
pub mod throttle;
pub mod twcc;
pub mod vp8_descriptor;
pub mod vp8_munger;
