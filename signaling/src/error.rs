//! Error codes and the error a bad client message turns into.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, unknown type, missing or invalid field, or a message out of order.
    BadRequest,
    /// Missing or invalid credentials.
    Unauthorized,
    /// Valid credentials that do not allow this.
    Forbidden,
    /// The named track, participant or room does not exist.
    NotFound,
    /// The room has no room for another participant.
    RoomFull,
    /// Too many messages.
    RateLimited,
    /// A frame over the size limit.
    TooLarge,
    /// Something failed inside the server.
    Internal,
}

impl ErrorCode {
    /// Every code, for exporters that list them all.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RoomFull,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::Internal,
    ];

    /// The wire spelling, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The client message an `error` refuses, named when the client waits for a reply to it
/// (`error.refused`): a refused `offer` gets no `answer`, so the client rolls it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// The client's `offer`: it is ignored and will not be answered.
    Offer,
}

/// A client message that cannot be accepted, with the code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ProtocolError {
    /// The code to send back.
    pub code: ErrorCode,
    /// What to tell the person reading it.
    pub message: String,
    /// The message refused, when the client waits for a reply to it (`error.refused`).
    pub refused: Option<Refused>,
}

impl ProtocolError {
    /// A `bad_request` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message: message.into(),
            refused: None,
        }
    }

    /// A `too_large` error.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::TooLarge,
            message: message.into(),
            refused: None,
        }
    }

    /// The same error, refusing the client's `offer` (which will not be answered).
    pub fn refusing_offer(self) -> Self {
        Self {
            refused: Some(Refused::Offer),
            ..self
        }
    }
}
