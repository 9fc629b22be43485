//! The SFU's forwarding decisions, as pure functions over values.
//!
//! Nothing here does I/O or reads a clock: every function that needs time takes
//! `now` as an argument, so each decision is unit tested without a network.
//!
//! - [`ids`]: newtype ids for rooms, participants, producers and consumers.
//! - [`codec`]: reading the few facts the SFU needs from VP8/H264 payloads (keyframes).
//! - [`munger`]: the [`RtpMunger`](munger::RtpMunger) that gives a subscriber one gap-free
//!   sequence/timestamp space across source switches.
//! - [`vp8_munger`]: continuous VP8 PictureID / TL0PICIDX across source switches.
//! - [`forwarder`]: the per-consumer [`Forwarder`](forwarder::Forwarder) that decides, packet by
//!   packet, forward (with rewritten numbers) or drop.
//! - [`layers`]: the LayerSelector (which simulcast layer a consumer gets) and bandwidth
//!   sharing across one subscriber's consumers.
//! - [`sdp`]: the one fact read from offer SDP text itself (the BUNDLE group).
//! - [`publish`]: whether an offer may publish what it sends, within grants and caps.
//! - [`dynacast`]: debouncing which simulcast layers a publisher is asked to send.
//! - [`monitor`]: which layers of a producer are arriving, and their bitrates.
//! - [`speakers`]: active speaker ranking from audio levels.
//! - [`rate`]: a token bucket for per-connection message rates.
//! - [`throttle`]: keyframe request throttling toward publishers.
//! - [`stun`]: reading the ICE username fragment that routes a datagram.
//! - [`datagram`]: structural checks (RFC 7983 kind, header lengths) of media-port datagrams.

pub mod bandwidth;
pub mod codec;
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
pub mod rids;
pub mod sdp;
pub mod speakers;
pub mod stun;
pub mod throttle;
pub mod vp8_munger;
