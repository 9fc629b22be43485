//! Resuming through the room harness: tokens, the grace period, what the others see.

use super::*;
use signaling::ErrorCode;

#[tokio::test]
async fn a_resumed_participant_gets_a_new_token_and_the_old_one_is_gone() {
    // Requirement: a participant whose connection dropped is taken back by `resume`
    // with its token, on a new session; `joined` carries a new token, and the old one
    // no longer takes anyone back. The others never see it leave, past the grace too.
    let mut h = Harness::new(config::Config {
        resume_grace_secs: 5,
        ..config::Config::default()
    });
    let mut a = h.join("a");
    let mut b = h.join("b");
    h.disconnect(&a);
    h.run_for(Duration::from_secs(2), &mut [&mut b]);
    let resumed = h.resume(&mut a, "resume-a", "second-token");
    assert_eq!(resumed.map(|(_, connection)| connection), Ok(1));
    let ServerMessage::Joined { resume_token, .. } = a.received("joined")[0].clone() else {
        unreachable!("joined")
    };
    assert_eq!(resume_token.as_deref(), Some("second-token"));
    let services = &h.room.ctx.services;
    assert!(services.resume_target("resume-a").is_none());
    assert!(services.resume_target("second-token").is_some());
    let replayed = h.resume(&mut a, "resume-a", "third-token");
    assert!(
        matches!(&replayed, Err(e) if e.code == ErrorCode::NotFound),
        "{replayed:?}"
    );
    h.run_for(Duration::from_secs(6), &mut [&mut a, &mut b]);
    assert!(
        b.received("participant_left").is_empty(),
        "{:?}",
        b.messages
    );
    assert_eq!(h.room.participants.len(), 2);
}

#[tokio::test]
async fn a_participant_not_resumed_within_the_grace_is_removed() {
    // Requirement: a dropped participant keeps its place for resume_grace_secs
    // (simulated), then is removed; the others are told it left.
    let config = config::Config {
        resume_grace_secs: 5,
        ..config::Config::default()
    };
    let mut h = Harness::new(config);
    let mut a = h.join("a");
    let mut b = h.join("b");
    h.disconnect(&a);
    h.run_for(Duration::from_millis(4900), &mut [&mut b]);
    assert_eq!(h.room.participants.len(), 2, "still resumable");
    h.run_for(Duration::from_millis(200), &mut [&mut b]);
    assert_eq!(h.room.participants.len(), 1, "removed after the grace");
    assert_eq!(b.received("participant_left").len(), 1);
    assert!(h.resume(&mut a, "resume-a", "late").is_err());
}
