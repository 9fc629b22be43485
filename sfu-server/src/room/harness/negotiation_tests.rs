//! Negotiation through the room harness: offers and answers both ways, their order and
//! timing, refusals and budgets.

use super::*;
use signaling::ErrorCode;

#[tokio::test]
async fn a_publisher_and_a_subscriber_connect_and_negotiate() {
    // Requirement: the room answers a client's offer with the track ids it publishes,
    // offers them to the other participant, takes its answer, and both media paths
    // connect (ICE and DTLS through the room's own handling of datagrams; DTLS takes
    // 2 to 8 s of simulated time, by its retransmissions).
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    assert!(matches!(a.messages[0], ServerMessage::Joined { .. }));
    h.offer_track(&mut a, MediaKind::Audio);
    let ServerMessage::Answer { tracks, .. } = a.received("answer")[0].clone() else {
        panic!("an answer");
    };
    assert_eq!(tracks.len(), 1, "one track published");
    let mut b = h.join("b");
    h.run_for(Duration::from_secs(3), &mut [&mut a, &mut b]);
    let ServerMessage::Offer {
        tracks: offered, ..
    } = b.received("offer")[0]
    else {
        panic!("b is offered a's track");
    };
    assert_eq!(
        offered.values().collect::<Vec<_>>(),
        tracks.values().collect::<Vec<_>>()
    );
    h.answer_offer(&mut b);
    h.run_until_connected(&mut a, &mut b);
}

#[tokio::test]
async fn the_server_offers_two_seconds_after_a_join_that_brings_no_offer() {
    // Requirement: after `joined` the server waits for the client's own first offer and
    // offers on its own only 2 s after a join that brought none (simulated time).
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    h.offer_track(&mut a, MediaKind::Audio);
    let mut b = h.join("b");
    h.run_for(Duration::from_millis(1900), &mut [&mut a, &mut b]);
    assert!(b.received("offer").is_empty(), "no server offer before 2 s");
    h.run_for(Duration::from_millis(200), &mut [&mut a, &mut b]);
    assert_eq!(b.received("offer").len(), 1, "the server offers at 2 s");
}

#[tokio::test]
async fn a_refused_answer_is_told_and_the_tracks_are_offered_again() {
    // Requirement: an answer the server refuses (here its own offer sent back: both
    // sides ICE-lite) gets `bad_request`, and the same tracks are offered again a second
    // later, not at once and not only at the room's next change.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    h.offer_track(&mut a, MediaKind::Audio);
    let mut b = h.join("b");
    h.run_for(Duration::from_millis(2100), &mut [&mut a, &mut b]);
    let first = b.received("offer").len();
    assert_eq!(first, 1);
    let ServerMessage::Offer { sdp, .. } = b.received("offer")[0].clone() else {
        unreachable!("an offer");
    };
    h.signal(&mut b, ClientMessage::Answer { sdp });
    let refused = b.received("error");
    assert!(
        matches!(refused.last(), Some(ServerMessage::Error { code: ErrorCode::BadRequest, message, .. }) if message.contains("answer not acceptable")),
        "{refused:?}"
    );
    h.run_for(Duration::from_millis(500), &mut [&mut a, &mut b]);
    assert_eq!(b.received("offer").len(), 1, "not offered again at once");
    h.run_for(Duration::from_millis(700), &mut [&mut a, &mut b]);
    let offers = b.received("offer");
    assert_eq!(offers.len(), 2, "offered again after a second");
    let tracks = |m: &ServerMessage| match m {
        ServerMessage::Offer { tracks, .. } => {
            let mut ids: Vec<String> = tracks.values().cloned().collect();
            ids.sort();
            ids
        }
        _ => Vec::new(),
    };
    assert_eq!(tracks(offers[1]), tracks(offers[0]), "the same tracks");
    assert!(!tracks(offers[0]).is_empty());
}

#[tokio::test]
async fn offers_beyond_the_budget_are_refused_as_offers() {
    // Requirement: offers beyond max_offers_per_second get `rate_limited` naming the
    // refused offer; the budget refills with (simulated) time.
    let config = config::Config {
        max_offers_per_second: 2,
        ..config::Config::default()
    };
    let mut h = Harness::new(config);
    let mut a = h.join("a");
    for _ in 0..3 {
        h.offer_track(&mut a, MediaKind::Audio);
    }
    assert_eq!(a.received("answer").len(), 2);
    let refused = a.received("error");
    assert!(
        matches!(
            refused[..],
            [ServerMessage::Error {
                code: ErrorCode::RateLimited,
                refused: Some(signaling::Refused::Offer),
                ..
            }]
        ),
        "{refused:?}"
    );
    h.run_for(Duration::from_secs(1), &mut [&mut a]);
    h.offer_track(&mut a, MediaKind::Audio);
    assert_eq!(a.received("answer").len(), 3, "the budget refilled");
}

/// The track ids a server offer or answer names, sorted.
fn track_ids(message: &ServerMessage) -> Vec<String> {
    let tracks = match message {
        ServerMessage::Offer { tracks, .. } | ServerMessage::Answer { tracks, .. } => tracks,
        _ => return Vec::new(),
    };
    let mut ids: Vec<String> = tracks.values().cloned().collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_track_published_late_is_announced_then_offered() {
    // Requirement: a track published after the others joined is announced to them with
    // `track_published` (its id, owner and kind) before the server's offer that carries it;
    // the publisher's answer names the same ids.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    let mut b = h.join("b");
    h.run_for(Duration::from_secs(3), &mut [&mut a, &mut b]);
    let offers_before = b.received("offer").len();
    h.offer_tracks(&mut a, &[MediaKind::Audio, MediaKind::Video]);
    let published = track_ids(a.received("answer")[0]);
    assert_eq!(published.len(), 2, "the answer names both tracks");
    h.run_for(Duration::from_millis(100), &mut [&mut a, &mut b]);
    let ServerMessage::Joined { participant_id, .. } = &a.messages[0] else {
        unreachable!("joined first");
    };
    let announced: Vec<usize> = published
        .iter()
        .map(|id| {
            b.messages
                .iter()
                .position(|m| matches!(m, ServerMessage::TrackPublished { track } if &track.id == id && &track.participant_id == participant_id))
                .unwrap_or_else(|| panic!("no track_published for {id}: {:?}", b.messages))
        })
        .collect();
    let offered = b
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, ServerMessage::Offer { .. }))
        .nth(offers_before)
        .expect("an offer carrying the new tracks");
    assert_eq!(track_ids(offered.1), published);
    assert!(
        announced.iter().all(|&at| at < offered.0),
        "announced first"
    );
}

#[tokio::test]
async fn a_client_offer_during_the_server_offer_waits_for_its_answer() {
    // Requirement (glare): the server is the impolite peer. A client offer that arrives
    // while the server's offer is unanswered is ignored, neither answered nor refused; once
    // the client answered (after rolling back), its offer again is answered.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    h.offer_track(&mut a, MediaKind::Audio);
    let mut b = h.join("b");
    h.run_for(Duration::from_millis(2100), &mut [&mut a, &mut b]);
    assert_eq!(b.received("offer").len(), 1, "the server's offer is out");
    h.offer_track(&mut b, MediaKind::Video);
    assert!(b.received("answer").is_empty(), "{:?}", b.messages);
    assert!(b.received("error").is_empty(), "{:?}", b.messages);
    b.pending = None;
    h.answer_offer(&mut b);
    h.offer_track(&mut b, MediaKind::Video);
    let answers = b.received("answer");
    assert_eq!(answers.len(), 1, "{:?}", b.messages);
    assert_eq!(track_ids(answers[0]).len(), 1);
}

#[tokio::test]
async fn a_participant_without_auto_subscribe_is_offered_only_what_it_subscribes_to() {
    // Requirement: with `auto_subscribe` false nothing is offered until `subscribe`; then
    // exactly that track is, and `unsubscribe` takes it out of the next offer.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    h.offer_tracks(&mut a, &[MediaKind::Audio, MediaKind::Video]);
    let published = track_ids(a.received("answer")[0]);
    let mut c = h.join_with("c", false);
    h.run_for(Duration::from_secs(3), &mut [&mut a, &mut c]);
    assert!(c.received("offer").is_empty(), "offered before subscribing");
    let wanted = published[0].clone();
    h.signal(&mut c, subscribe(wanted.clone()));
    h.run_for(Duration::from_millis(100), &mut [&mut a, &mut c]);
    let offers = c.received("offer");
    assert_eq!(offers.len(), 1);
    assert_eq!(track_ids(offers[0]), vec![wanted.clone()]);
    h.answer_offer(&mut c);
    h.signal(&mut c, ClientMessage::Unsubscribe { track_id: wanted });
    h.run_for(Duration::from_millis(100), &mut [&mut a, &mut c]);
    let offers = c.received("offer");
    assert_eq!(offers.len(), 2, "an offer stopping the track");
    assert!(track_ids(offers[1]).is_empty(), "{:?}", offers[1]);
    assert!(c.received("error").is_empty(), "{:?}", c.messages);
}

#[tokio::test]
async fn an_offer_with_more_tracks_than_allowed_is_refused() {
    // Requirement: an offer that would publish more than max_tracks_per_participant tracks
    // gets `too_large`, marked as a refused offer, and publishes nothing.
    let config = config::Config {
        max_tracks_per_participant: 1,
        ..config::Config::default()
    };
    let mut h = Harness::new(config);
    let mut a = h.join("a");
    h.offer_tracks(&mut a, &[MediaKind::Audio, MediaKind::Video]);
    assert!(a.received("answer").is_empty());
    let refused = a.received("error");
    assert!(
        matches!(
            refused[..],
            [ServerMessage::Error {
                code: ErrorCode::TooLarge,
                refused: Some(signaling::Refused::Offer),
                message,
            }] if message.contains("2 tracks")
        ),
        "{refused:?}"
    );
    assert!(h.room.producers.is_empty());
}
