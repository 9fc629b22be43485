//! Every message of PROTOCOL.md round-trips through JSON, and every malformed
//! input gets the error code the contract names.

use serde_json::json;
use signaling::{
    ClientMessage, ErrorCode, ForwardedQuality, IceCandidateInit, IceServer, LeaveReason, Limits,
    MediaKind, Participant, Quality, Refused, ServerMessage, Speaker, Track, parse_client_message,
};

fn track() -> Track {
    Track {
        id: "TR_3".into(),
        participant_id: "PA_2".into(),
        kind: MediaKind::Video,
        muted: false,
        simulcast: vec!["q".into(), "h".into(), "f".into()],
        codec: "VP8".into(),
    }
}

fn parse(v: serde_json::Value) -> Result<ClientMessage, signaling::ProtocolError> {
    parse_client_message(&v.to_string(), &Limits::default())
}

#[test]
fn every_client_message_round_trips() {
    // Requirement: each client message type serializes to the wire form and parses back unchanged.
    let candidate = IceCandidateInit {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: Some("abcd".into()),
    };
    let messages = vec![
        ClientMessage::Join {
            room: "demo".into(),
            name: "alice".into(),
            token: Some("t".into()),
            auto_subscribe: false,
        },
        ClientMessage::Offer {
            sdp: "v=0\r\n".into(),
        },
        ClientMessage::Answer {
            sdp: "v=0\r\n".into(),
        },
        ClientMessage::Candidate {
            candidate: Some(candidate),
        },
        ClientMessage::Candidate { candidate: None },
        ClientMessage::Subscribe {
            track_id: "TR_1".into(),
            quality: Quality::Low,
            paused: true,
        },
        ClientMessage::Unsubscribe {
            track_id: "TR_1".into(),
        },
        ClientMessage::Mute {
            track_id: "TR_1".into(),
            muted: true,
        },
        ClientMessage::Leave,
        ClientMessage::Ping {
            ts: Some(serde_json::Number::from(42)),
        },
    ];
    for message in messages {
        let text = serde_json::to_string(&message).expect("serializes");
        let back = parse_client_message(&text, &Limits::default()).expect("parses");
        assert_eq!(back, message, "round trip of {text}");
    }
}

#[test]
fn client_messages_use_the_documented_wire_names() {
    // Requirement: field names and defaults are exactly those of PROTOCOL.md.
    assert_eq!(
        parse(json!({"type":"join","room":"demo","name":"alice"})).expect("join"),
        ClientMessage::Join {
            room: "demo".into(),
            name: "alice".into(),
            token: None,
            auto_subscribe: true
        }
    );
    assert_eq!(
        parse(json!({"type":"subscribe","track_id":"TR_3"})).expect("subscribe"),
        ClientMessage::Subscribe {
            track_id: "TR_3".into(),
            quality: Quality::Auto,
            paused: false
        }
    );
    assert_eq!(
        parse(
            json!({"type":"candidate","candidate":{"candidate":"c","sdpMid":"1","sdpMLineIndex":1}})
        )
        .expect("candidate"),
        ClientMessage::Candidate {
            candidate: Some(IceCandidateInit {
                candidate: "c".into(),
                sdp_mid: Some("1".into()),
                sdp_m_line_index: Some(1),
                username_fragment: None
            })
        }
    );
    assert_eq!(
        parse(json!({"type":"candidate","candidate":null})).expect("end of candidates"),
        ClientMessage::Candidate { candidate: None }
    );
    assert_eq!(
        parse(json!({"type":"ping"})).expect("ping"),
        ClientMessage::Ping { ts: None }
    );
    assert_eq!(
        parse(json!({"type":"leave","extra":"ignored"})).expect("unknown fields are ignored"),
        ClientMessage::Leave
    );
}

#[test]
fn every_server_message_round_trips() {
    // Requirement: each server message type serializes to the wire form and parses back unchanged.
    let participant = Participant {
        id: "PA_2".into(),
        name: "bob".into(),
        tracks: vec![track()],
    };
    let tracks = [("2".to_string(), "TR_3".to_string())]
        .into_iter()
        .collect();
    let messages = vec![
        ServerMessage::Joined {
            participant_id: "PA_1".into(),
            room: "demo".into(),
            participants: vec![participant.clone()],
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                username: Some("u".into()),
                credential: Some("c".into()),
            }],
            resume_token: Some("rt".into()),
        },
        ServerMessage::ParticipantJoined { participant },
        ServerMessage::ParticipantLeft {
            participant_id: "PA_2".into(),
        },
        ServerMessage::TrackPublished { track: track() },
        ServerMessage::TrackUnpublished {
            track_id: "TR_3".into(),
        },
        ServerMessage::TrackMuted {
            track_id: "TR_3".into(),
            muted: true,
        },
        ServerMessage::Offer {
            sdp: "v=0".into(),
            tracks,
        },
        ServerMessage::Answer {
            sdp: "v=0".into(),
            tracks: Default::default(),
        },
        ServerMessage::Candidate { candidate: None },
        ServerMessage::Quality {
            track_id: "TR_3".into(),
            quality: ForwardedQuality::Off,
        },
        ServerMessage::Layers {
            track_id: "TR_3".into(),
            rids: vec!["q".into(), "h".into()],
        },
        ServerMessage::Speakers {
            speakers: vec![Speaker {
                participant_id: "PA_2".into(),
                level: 0.5,
            }],
        },
        ServerMessage::error(ErrorCode::RoomFull, "full"),
        ServerMessage::offer_refused(ErrorCode::RateLimited, "slow down"),
        ServerMessage::Pong {
            ts: Some(serde_json::Number::from(7)),
        },
        ServerMessage::Leave {
            reason: LeaveReason::Shutdown,
        },
        ServerMessage::Redirect {
            url: "ws://10.0.0.2:8080/ws".into(),
            room: "demo".into(),
        },
    ];
    for message in messages {
        let text = message.to_json();
        let back: ServerMessage = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, message, "round trip of {text}");
    }
}

#[test]
fn server_messages_match_the_documented_examples() {
    // Requirement: the JSON on the wire is exactly the shape of PROTOCOL.md's example.
    let joined = ServerMessage::Joined {
        participant_id: "PA_1".into(),
        room: "demo".into(),
        participants: vec![],
        ice_servers: vec![],
        resume_token: None,
    };
    assert_eq!(
        serde_json::to_value(&joined).expect("json"),
        json!({"type":"joined","participant_id":"PA_1","room":"demo","participants":[],"ice_servers":[]})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::TrackPublished { track: track() }).expect("json"),
        json!({"type":"track_published","track":{"id":"TR_3","participant_id":"PA_2","kind":"video","muted":false,"simulcast":["q","h","f"],"codec":"VP8"}})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Quality {
            track_id: "TR_3".into(),
            quality: ForwardedQuality::Low
        })
        .expect("json"),
        json!({"type":"quality","track_id":"TR_3","quality":"low"})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Leave {
            reason: LeaveReason::RoomClosed
        })
        .expect("json"),
        json!({"type":"leave","reason":"room_closed"})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Layers {
            track_id: "TR_3".into(),
            rids: vec!["q".into()]
        })
        .expect("json"),
        json!({"type":"layers","track_id":"TR_3","rids":["q"]})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Pong { ts: None }).expect("json"),
        json!({"type":"pong"})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Redirect {
            url: "ws://10.0.0.2:8080/ws".into(),
            room: "demo".into()
        })
        .expect("json"),
        json!({"type":"redirect","url":"ws://10.0.0.2:8080/ws","room":"demo"})
    );
}

#[test]
fn malformed_inputs_get_the_right_error_codes() {
    // Requirement: every malformed input is refused with the code PROTOCOL.md names.
    let limits = Limits::default();
    let cases: Vec<(String, ErrorCode, &str)> = vec![
        ("not json".into(), ErrorCode::BadRequest, "malformed JSON"),
        (
            serde_json::json!({"type": "offer", "sdp": format!("v=0\r\n{}", "a".repeat(48 * 1024))})
                .to_string(),
            ErrorCode::TooLarge,
            "`sdp` of",
        ),
        ("[1,2]".into(), ErrorCode::BadRequest, "JSON object"),
        (
            r#"{"room":"x"}"#.into(),
            ErrorCode::BadRequest,
            "missing field `type`",
        ),
        (
            r#"{"type":5}"#.into(),
            ErrorCode::BadRequest,
            "must be a string",
        ),
        (
            r#"{"type":"dance"}"#.into(),
            ErrorCode::BadRequest,
            "unknown message type",
        ),
        (
            r#"{"type":"join","name":"a"}"#.into(),
            ErrorCode::BadRequest,
            "room",
        ),
        (
            r#"{"type":"candidate"}"#.into(),
            ErrorCode::BadRequest,
            "candidate",
        ),
        (
            r#"{"type":"join","room":"","name":"a"}"#.into(),
            ErrorCode::BadRequest,
            "must not be empty",
        ),
        (
            format!(
                r#"{{"type":"join","room":"{}","name":"a"}}"#,
                "r".repeat(129)
            ),
            ErrorCode::BadRequest,
            "longer than",
        ),
        (
            format!(
                r#"{{"type":"join","room":"r","name":"{}"}}"#,
                "n".repeat(129)
            ),
            ErrorCode::BadRequest,
            "longer than",
        ),
        (
            r#"{"type":"join","room":"r\u0001","name":"a"}"#.into(),
            ErrorCode::BadRequest,
            "control",
        ),
        (r#"{"type":"offer"}"#.into(), ErrorCode::BadRequest, "sdp"),
        (
            r#"{"type":"offer","sdp":"hello"}"#.into(),
            ErrorCode::BadRequest,
            "v=0",
        ),
        (
            r#"{"type":"answer","sdp":42}"#.into(),
            ErrorCode::BadRequest,
            "answer",
        ),
        (
            r#"{"type":"subscribe"}"#.into(),
            ErrorCode::BadRequest,
            "track_id",
        ),
        (
            r#"{"type":"subscribe","track_id":"TR_1","quality":"ultra"}"#.into(),
            ErrorCode::BadRequest,
            "unknown variant `ultra`",
        ),
        (
            r#"{"type":"unsubscribe","track_id":""}"#.into(),
            ErrorCode::BadRequest,
            "must not be empty",
        ),
        (
            r#"{"type":"mute","track_id":"TR_1"}"#.into(),
            ErrorCode::BadRequest,
            "muted",
        ),
        (
            r#"{"type":"candidate","candidate":{"sdpMid":"0"}}"#.into(),
            ErrorCode::BadRequest,
            "candidate",
        ),
        (
            format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70_000)),
            ErrorCode::TooLarge,
            "over the limit",
        ),
    ];
    for (input, code, needle) in cases {
        let err = parse_client_message(&input, &limits).expect_err(&input[..input.len().min(80)]);
        assert_eq!(err.code, code, "code for {}", &input[..input.len().min(80)]);
        assert!(
            err.message.contains(needle),
            "message {:?} should mention {needle:?}",
            err.message
        );
    }
}

#[test]
fn errors_refusing_an_offer_say_so() {
    // Requirement: a refused `offer` is never answered, so its error names it
    // (`refused: "offer"`); other errors carry no `refused` at all.
    let limits = Limits::default();
    let big = json!({"type": "offer", "sdp": format!("v=0\r\n{}", "a".repeat(48 * 1024))});
    let cases = [
        (big.to_string(), Some(Refused::Offer)),
        (r#"{"type":"offer"}"#.to_string(), Some(Refused::Offer)),
        (
            r#"{"type":"offer","sdp":"hello"}"#.to_string(),
            Some(Refused::Offer),
        ),
        (r#"{"type":"answer","sdp":"hello"}"#.to_string(), None),
        (r#"{"type":"ping","ts":"x"}"#.to_string(), None),
    ];
    for (input, refused) in cases {
        let err = parse_client_message(&input, &limits).expect_err(&input[..input.len().min(60)]);
        assert_eq!(err.refused, refused, "{}", &input[..input.len().min(60)]);
    }
    let wire = |m: ServerMessage| serde_json::to_value(m).expect("serializes");
    assert_eq!(
        wire(ServerMessage::offer_refused(
            ErrorCode::RateLimited,
            "later"
        )),
        json!({"type": "error", "code": "rate_limited", "message": "later", "refused": "offer"})
    );
    assert_eq!(
        wire(ServerMessage::error(ErrorCode::NotFound, "gone")),
        json!({"type": "error", "code": "not_found", "message": "gone"})
    );
}

#[test]
fn error_codes_have_their_wire_spelling() {
    // Requirement: error codes are the snake_case names listed in PROTOCOL.md.
    let codes = [
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::Unauthorized, "unauthorized"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::RoomFull, "room_full"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::Internal, "internal"),
    ];
    for (code, name) in codes {
        assert_eq!(code.as_str(), name);
        assert_eq!(serde_json::to_value(code).expect("json"), json!(name));
    }
}
