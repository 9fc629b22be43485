//! Whether a participant is there: its media path (ICE and DTLS up, lost, back) and its
//! signaling connection (current, lost, resumed), with the deadlines that remove it.

use std::time::{Duration, Instant};

/// A participant's connection state over time.
pub struct Presence {
    joined_at: Instant,
    /// ICE and DTLS are up now.
    connected: bool,
    /// ICE and DTLS completed at least once.
    connected_once: bool,
    /// The media path must be up by then, or the participant is removed.
    connect_deadline: Option<Instant>,
    /// Since when its signaling connection has been gone (it may still `resume`).
    signaling_lost_at: Option<Instant>,
    /// Number of its current signaling connection (0, then one more per resume).
    connection: u64,
    /// The secret that lets a new signaling connection take the participant back.
    resume_token: String,
}

/// Why a participant's media path is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathOverdue {
    /// It never connected within the connect timeout.
    NeverConnected,
    /// It connected, lost its path and did not get it back in time.
    Lost,
}

impl PathOverdue {
    /// The `reason` label of the connection-failure counter.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NeverConnected => "ice_connect_timeout",
            Self::Lost => "media_path_lost",
        }
    }
}

impl Presence {
    /// A participant joining at `now`: its media path must be up within `connect_timeout`
    /// (one that never negotiates must not keep its seat).
    pub fn new(now: Instant, connect_timeout: Duration, resume_token: String) -> Self {
        Self {
            joined_at: now,
            connected: false,
            connected_once: false,
            connect_deadline: Some(now + connect_timeout),
            signaling_lost_at: None,
            connection: 0,
            resume_token,
        }
    }

    /// When it joined.
    pub fn joined_at(&self) -> Instant {
        self.joined_at
    }

    /// How long it has been in the room at `now`.
    pub fn since_join(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.joined_at)
    }

    /// Whether ICE and DTLS are up now.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// ICE and DTLS completed; says whether for the first time.
    pub fn dtls_connected(&mut self) -> bool {
        let first = !self.connected_once;
        self.connected = true;
        self.connected_once = true;
        self.connect_deadline = None;
        first
    }

    /// ICE lost its path: it must come back within `timeout`.
    pub fn ice_disconnected(&mut self, now: Instant, timeout: Duration) {
        self.connected = false;
        self.connect_deadline = Some(now + timeout);
    }

    /// ICE has a path again: a participant that connected before (DTLS survived the
    /// outage) stays.
    pub fn ice_back(&mut self) {
        if self.connected_once {
            self.connected = true;
            self.connect_deadline = None;
        }
    }

    /// Whether its media path is overdue at `now`, and why.
    pub fn path_overdue(&self, now: Instant) -> Option<PathOverdue> {
        match self.connect_deadline {
            Some(deadline) if deadline <= now && self.connected_once => Some(PathOverdue::Lost),
            Some(deadline) if deadline <= now => Some(PathOverdue::NeverConnected),
            _ => None,
        }
    }

    /// Its signaling connection is gone (counted from the first time it was noticed).
    pub fn signaling_lost(&mut self, now: Instant) {
        self.signaling_lost_at.get_or_insert(now);
    }

    /// Whether its signaling connection is gone.
    pub fn is_signaling_lost(&self) -> bool {
        self.signaling_lost_at.is_some()
    }

    /// Whether it was away longer than `grace` at `now` without resuming.
    pub fn resume_overdue(&self, now: Instant, grace: Duration) -> bool {
        self.signaling_lost_at.is_some_and(|t| t + grace <= now)
    }

    /// The number of its current signaling connection.
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// The token that takes it back.
    pub fn resume_token(&self) -> &str {
        &self.resume_token
    }

    /// A new signaling connection took it back: the connection number moves on and
    /// `new_token` replaces the token, which is returned.
    pub fn resumed(&mut self, new_token: String) -> String {
        self.signaling_lost_at = None;
        self.connection += 1;
        std::mem::replace(&mut self.resume_token, new_token)
    }

    /// The new connection never learnt its token: `old` stays the way back. Returns the
    /// token given up.
    pub fn keep_token(&mut self, old: String) -> String {
        std::mem::replace(&mut self.resume_token, old)
    }

    /// The earliest deadline that would remove it: its media path, or its resume `grace`.
    pub fn deadline(&self, grace: Duration) -> Option<Instant> {
        let resume = self.signaling_lost_at.map(|t| t + grace);
        [self.connect_deadline, resume].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(20);

    #[test]
    fn the_media_path_must_come_up_and_come_back_in_time() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut presence = Presence::new(t0, CONNECT, "r1".into());
        assert_eq!(presence.deadline(GRACE), Some(at(10)));
        assert_eq!(presence.path_overdue(at(9)), None);
        assert_eq!(
            presence.path_overdue(at(10)),
            Some(PathOverdue::NeverConnected)
        );
        presence.ice_back();
        assert!(
            !presence.is_connected(),
            "ICE alone before DTLS is not connected"
        );
        assert!(presence.dtls_connected(), "the first connection");
        assert_eq!(presence.path_overdue(at(10)), None);
        assert_eq!(presence.deadline(GRACE), None);
        presence.ice_disconnected(at(30), CONNECT);
        assert!(!presence.is_connected());
        assert_eq!(presence.path_overdue(at(40)), Some(PathOverdue::Lost));
        presence.ice_back();
        assert!(presence.is_connected());
        assert_eq!(presence.path_overdue(at(40)), None);
        assert!(!presence.dtls_connected(), "not the first connection");
        assert_eq!(PathOverdue::Lost.reason(), "media_path_lost");
    }

    #[test]
    fn a_lost_signaling_connection_can_be_resumed_within_the_grace() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut presence = Presence::new(t0, CONNECT, "r1".into());
        presence.dtls_connected();
        presence.signaling_lost(at(5));
        presence.signaling_lost(at(8));
        assert!(presence.is_signaling_lost());
        assert_eq!(
            presence.deadline(GRACE),
            Some(at(25)),
            "counted from the first loss"
        );
        assert!(!presence.resume_overdue(at(24), GRACE));
        assert!(presence.resume_overdue(at(25), GRACE));
        assert_eq!(presence.resumed("r2".into()), "r1");
        assert_eq!((presence.connection(), presence.resume_token()), (1, "r2"));
        assert!(!presence.is_signaling_lost());
        assert_eq!(presence.keep_token("r1".into()), "r2");
        assert_eq!(presence.resume_token(), "r1");
    }
}
