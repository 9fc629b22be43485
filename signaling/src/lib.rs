//! The signaling protocol spoken between the SFU and its clients over WebSocket.
//!
//! `PROTOCOL.md` beside this crate is the contract; this crate is its code:
//! serde types for every message ([`ClientMessage`], [`ServerMessage`]), the
//! shared value types ([`Participant`], [`Track`], …) and [`parse_client_message`],
//! which turns one text frame into a validated message or a [`ProtocolError`]
//! carrying the [`ErrorCode`] to reply with.

mod backlog;
mod client;
mod error;
mod parse;
mod server;
pub mod token;
pub mod turn;
mod types;

pub use backlog::Backlog;
pub use client::ClientMessage;
pub use error::{ErrorCode, ProtocolError, Refused};
pub use parse::{Limits, parse_client_message};
pub use server::{LeaveReason, ServerMessage};
pub use types::{
    ForwardedQuality, IceCandidateInit, IceServer, MediaKind, Participant, Quality, Speaker, Track,
    TrackMap,
};
