//! The service's sense of time. Ceremony expiry and the rate limits read it
//! here, so tests can move time forward instead of sleeping through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Wall-clock and monotonic time, plus an offset that only ever grows.
#[derive(Debug, Default)]
pub struct Clock {
    /// Milliseconds added to both clocks (tests move time forward with it).
    offset_ms: AtomicU64,
}

impl Clock {
    fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.offset()).unwrap_or(chrono::Duration::zero())
    }

    pub fn instant(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_both_clocks() {
        let clock = Clock::default();
        let (wall, mono) = (clock.now(), clock.instant());
        clock.advance(Duration::from_secs(600));
        assert!(clock.now() - wall >= chrono::Duration::seconds(600));
        assert!(clock.instant() - mono >= Duration::from_secs(600));
    }
}
