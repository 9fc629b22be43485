//! Bad input through the room harness: garbage datagrams, candidates and ids.

use super::*;

#[tokio::test]
async fn garbage_datagrams_are_refused_and_counted_by_transport() {
    // Requirement: datagrams a participant's WebRTC stack cannot take are dropped and
    // counted; so are ICE-TCP frames for a room with no ICE-TCP address, as ICE-TCP, not
    // UDP. The participant stays.
    let mut h = Harness::new(config::Config::default());
    let a = h.join("a");
    let garbage = [
        vec![0u8; 0],
        vec![0xff; 40],
        b"\x80\x00garbage-rtp-ish".to_vec(),
    ];
    for (proto, data) in garbage
        .iter()
        .map(|d| (Protocol::Udp, d))
        .chain(garbage[1..].iter().map(|d| (Protocol::Tcp, d)))
    {
        h.room.handle_datagram(Datagram {
            participant: a.key,
            source: a.addr,
            local: None,
            data: data.clone(),
            proto,
            at: h.now,
        });
    }
    let stats = &h.room.ctx.stats;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&stats.udp_rejected), 3);
    assert_eq!(count(&stats.tcp_dropped), 2);
    assert_eq!(count(&stats.udp_dropped), 0);
    assert_eq!(h.room.participants.len(), 1);
}

/// A `candidate` message for a host candidate at `port`.
fn candidate(port: u16) -> ClientMessage {
    ClientMessage::Candidate {
        candidate: Some(signaling::IceCandidateInit {
            candidate: format!("candidate:1 1 udp 2122260223 10.9.8.7 {port} typ host"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: None,
            username_fragment: None,
        }),
    }
}

/// The errors `client` got, as (code, message).
fn errors(client: &Client) -> Vec<(signaling::ErrorCode, String)> {
    client
        .received("error")
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn candidates_beyond_the_per_participant_limit_get_too_large() {
    // Requirement: a client cannot grow the server's candidate lists without end: past 64
    // distinct remote addresses a candidate gets `too_large`; an address already known is
    // no new entry.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    for port in 20000..20064 {
        h.signal(&mut a, candidate(port));
    }
    h.signal(&mut a, candidate(20000));
    assert_eq!(errors(&a), [], "within the limit");
    h.signal(&mut a, candidate(20064));
    let refused = errors(&a);
    assert!(
        matches!(&refused[..], [(signaling::ErrorCode::TooLarge, m)] if m.contains("64 remote candidates")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn track_ids_that_name_no_track_get_not_found() {
    // Requirement: subscribe, unsubscribe and mute with an id that names no track of the
    // room, spelled wrongly or not, get `not_found`; the participant stays.
    let mut h = Harness::new(config::Config::default());
    let mut a = h.join("a");
    h.offer_track(&mut a, MediaKind::Audio);
    let ServerMessage::Answer { tracks, .. } = a.received("answer")[0].clone() else {
        panic!("an answer");
    };
    let published = tracks.values().next().expect("a track").clone();
    let number = published.trim_start_matches("TR_");
    let mut b = h.join_with("b", false);
    let wrong = [
        "no-such-track".to_owned(),
        "TR_999".to_owned(),
        format!("TR_0{number}"),
        format!("tr_{number}"),
        format!("TR_{number} "),
        number.to_owned(),
    ];
    for id in &wrong {
        h.signal(&mut b, subscribe(id.clone()));
        h.signal(
            &mut b,
            ClientMessage::Unsubscribe {
                track_id: id.clone(),
            },
        );
        h.signal(
            &mut b,
            ClientMessage::Mute {
                track_id: id.clone(),
                muted: true,
            },
        );
    }
    let refused = errors(&b);
    assert_eq!(refused.len(), 3 * wrong.len(), "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|(code, _)| *code == signaling::ErrorCode::NotFound),
        "{refused:?}"
    );
    assert_eq!(h.room.participants.len(), 2);
    h.signal(&mut b, subscribe(published));
    assert_eq!(errors(&b).len(), 3 * wrong.len(), "the right id works");
}
