//! The rooms' state for live dashboards (`/api/events`), shared by every viewer: taken at
//! most once per interval however many dashboards are open, so the room tasks (on the
//! media threads) and Redis answer one request per interval, not one per viewer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

/// The latest state taken, and when.
pub struct RoomsFeed {
    max_age: Duration,
    latest: Mutex<Option<(Instant, Arc<Value>)>>,
}

impl RoomsFeed {
    /// A feed whose state is taken again once it is `max_age` old.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            latest: Mutex::new(None),
        }
    }

    /// The state at `now`: the one taken last if younger than `max_age`, else what `take`
    /// returns. Viewers asking while it is being taken wait for it instead of taking
    /// their own.
    pub async fn current<F>(&self, now: Instant, take: F) -> Arc<Value>
    where
        F: Future<Output = Value>,
    {
        let mut latest = self.latest.lock().await;
        if let Some((at, state)) = latest.as_ref()
            && now.saturating_duration_since(*at) < self.max_age
        {
            return state.clone();
        }
        let state = Arc::new(take.await);
        *latest = Some((now, state.clone()));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn the_state_is_taken_once_per_interval_whatever_the_number_of_viewers() {
        // Requirement: viewers within one interval share one taking of the state; an older
        // state is taken again.
        let feed = RoomsFeed::new(Duration::from_millis(900));
        let takes = AtomicUsize::new(0);
        let take = || async {
            let n = takes.fetch_add(1, Ordering::Relaxed);
            json!({ "take": n })
        };
        let t0 = Instant::now();
        let (a, b) = tokio::join!(feed.current(t0, take()), feed.current(t0, take()));
        assert_eq!(
            (a, b),
            (json!({"take": 0}).into(), json!({"take": 0}).into())
        );
        let later = feed.current(t0 + Duration::from_millis(899), take()).await;
        assert_eq!(*later, json!({"take": 0}), "still fresh");
        assert_eq!(takes.load(Ordering::Relaxed), 1);
        let next = feed.current(t0 + Duration::from_millis(900), take()).await;
        assert_eq!(*next, json!({"take": 1}), "taken again once old");
        assert_eq!(takes.load(Ordering::Relaxed), 2);
    }
}
