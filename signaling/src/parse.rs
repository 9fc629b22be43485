//! Turning one text frame into a validated [`ClientMessage`].

use serde_json::Value;

use crate::client::ClientMessage;
use crate::error::ProtocolError;

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted frame, in bytes.
    pub max_message_bytes: usize,
    /// Largest accepted room name, in bytes.
    pub max_room_name_bytes: usize,
    /// Largest accepted display name, in bytes.
    pub max_display_name_bytes: usize,
    /// Largest accepted SDP in an offer or answer, in bytes.
    pub max_sdp_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_room_name_bytes: 128,
            max_display_name_bytes: 128,
            max_sdp_bytes: 48 * 1024,
        }
    }
}

/// Parse and validate one client text frame.
///
/// Errors say which rule was broken: `too_large` for an oversized frame,
/// `bad_request` for malformed JSON, a missing or unknown `type`, a missing or
/// mistyped field, or a field value outside its rules (empty room, overlong name…).
pub fn parse_client_message(text: &str, limits: &Limits) -> Result<ClientMessage, ProtocolError> {
    if text.len() > limits.max_message_bytes {
        return Err(ProtocolError::too_large(format!(
            "message of {} bytes is over the limit of {} bytes",
            text.len(),
            limits.max_message_bytes
        )));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::bad_request(format!("malformed JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ProtocolError::bad_request(
            "a message must be a JSON object",
        ));
    };
    let type_name = match object.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(ProtocolError::bad_request("field `type` must be a string")),
        None => return Err(ProtocolError::bad_request("missing field `type`")),
    };
    if !ClientMessage::TYPES.contains(&type_name.as_str()) {
        return Err(ProtocolError::bad_request(format!(
            "unknown message type `{type_name}`"
        )));
    }
    let message: ClientMessage = serde_json::from_value(value).map_err(|e| {
        let error = ProtocolError::bad_request(format!("invalid `{type_name}` message: {e}"));
        if type_name == "offer" {
            error.refusing_offer()
        } else {
            error
        }
    })?;
    validate(&message, limits)?;
    Ok(message)
}

fn validate(message: &ClientMessage, limits: &Limits) -> Result<(), ProtocolError> {
    match message {
        ClientMessage::Join { room, name, .. } => {
            check_room_name(room, limits)?;
            if name.len() > limits.max_display_name_bytes {
                return Err(ProtocolError::bad_request(format!(
                    "`name` is longer than {} bytes",
                    limits.max_display_name_bytes
                )));
            }
            if name.chars().any(char::is_control) {
                return Err(ProtocolError::bad_request(
                    "`name` must not contain control characters",
                ));
            }
        }
        ClientMessage::Offer { sdp } | ClientMessage::Answer { sdp } => {
            let refusal = if sdp.len() > limits.max_sdp_bytes {
                Some(ProtocolError::too_large(format!(
                    "`sdp` of {} bytes is over the limit of {} bytes",
                    sdp.len(),
                    limits.max_sdp_bytes
                )))
            } else if !sdp.starts_with("v=0") {
                Some(ProtocolError::bad_request(
                    "`sdp` is not a session description (must start with v=0)",
                ))
            } else {
                None
            };
            if let Some(refusal) = refusal {
                return Err(if matches!(message, ClientMessage::Offer { .. }) {
                    refusal.refusing_offer()
                } else {
                    refusal
                });
            }
        }
        ClientMessage::Subscribe { track_id, .. }
        | ClientMessage::Unsubscribe { track_id }
        | ClientMessage::Mute { track_id, .. } => {
            if track_id.is_empty() {
                return Err(ProtocolError::bad_request("`track_id` must not be empty"));
            }
        }
        ClientMessage::Resume { resume_token } => {
            if resume_token.is_empty() || resume_token.len() > 128 {
                return Err(ProtocolError::bad_request(
                    "`resume_token` must be 1 to 128 characters",
                ));
            }
        }
        ClientMessage::Candidate { .. } | ClientMessage::Leave | ClientMessage::Ping { .. } => {}
    }
    Ok(())
}

fn check_room_name(room: &str, limits: &Limits) -> Result<(), ProtocolError> {
    if room.is_empty() {
        return Err(ProtocolError::bad_request("`room` must not be empty"));
    }
    if room.len() > limits.max_room_name_bytes {
        return Err(ProtocolError::bad_request(format!(
            "`room` is longer than {} bytes",
            limits.max_room_name_bytes
        )));
    }
    if room.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request(
            "`room` must not contain control characters",
        ));
    }
    Ok(())
}
