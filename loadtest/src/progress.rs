//! Live progress shared by every synthetic participant, and the status line that shows it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Run-wide counters (relaxed atomics: statistics only).
#[derive(Debug, Default)]
pub struct Progress {
    /// Participants that joined the room.
    pub joined: AtomicU64,
    /// Participants whose ICE and DTLS completed.
    pub connected: AtomicU64,
    /// Received tracks that delivered at least one frame.
    pub tracks_receiving: AtomicU64,
    /// Payload bytes sent.
    pub bytes_sent: AtomicU64,
    /// Payload bytes received.
    pub bytes_received: AtomicU64,
    /// RTP packets of the received media (from the frames' sequence number ranges).
    pub rtp_received: AtomicU64,
    /// Errors of any kind.
    pub errors: AtomicU64,
    /// Participants finished.
    pub finished: AtomicU64,
}

/// Add `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Read a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Prints the status line once a second until told to stop.
pub struct StatusLine {
    started: Instant,
    last: Instant,
    last_sent: u64,
    last_received: u64,
    interactive: bool,
    participants: usize,
}

impl StatusLine {
    /// A status line for a run of `participants`.
    pub fn new(participants: usize) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            last_sent: 0,
            last_received: 0,
            interactive: std::io::stderr().is_terminal(),
            participants,
        }
    }

    /// Print one update (on a terminal, over the previous one; otherwise every 5 s).
    pub fn update(&mut self, p: &Progress) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-3);
        let sent = get(&p.bytes_sent);
        let received = get(&p.bytes_received);
        let line = format!(
            "t={:>4}s joined {}/{} connected {} tracks receiving {} send {:.1} Mbit/s recv {:.1} Mbit/s errors {}",
            self.started.elapsed().as_secs(),
            get(&p.joined),
            self.participants,
            get(&p.connected),
            get(&p.tracks_receiving),
            (sent - self.last_sent) as f64 * 8.0 / dt / 1e6,
            (received - self.last_received) as f64 * 8.0 / dt / 1e6,
            get(&p.errors),
        );
        let due = self.interactive || self.started.elapsed().as_secs().is_multiple_of(5);
        self.last = now;
        self.last_sent = sent;
        self.last_received = received;
        if !due {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.interactive {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// End the line (on a terminal).
    pub fn finish(&self) {
        if self.interactive {
            eprintln!();
        }
    }
}

/// How often the status line refreshes.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
