//! The service's sense of time. Ceremony expiry and the rate limits read it
//! here, so tests can move time forward instead of sleeping through it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Wall-clock and monotonic time, plus an offset: tests move time forward
/// with it, and set a wall clock behind to stand for a host whose clock is.
#[derive(Debug, Default)]
pub struct Clock {
    /// Milliseconds added to both clocks; only ever grows.
    offset_ms: AtomicI64,
    /// Milliseconds taken off the wall clock alone (a host's skew).
    behind_ms: AtomicI64,
}

impl Clock {
    fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms() - self.behind_ms.load(Ordering::Relaxed),
            )
    }

    pub fn instant(&self) -> Instant {
        Instant::now() + Duration::from_millis(u64::try_from(self.offset_ms()).unwrap_or(0))
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets the wall clock `by` behind true time, as on a host whose clock
    /// is late (the monotonic clock, which only measures intervals, stays).
    pub fn set_behind(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.behind_ms.store(ms, Ordering::Relaxed);
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

    #[test]
    fn a_clock_behind_is_behind() {
        let clock = Clock::default();
        clock.set_behind(Duration::from_secs(600));
        let late = Utc::now() - clock.now();
        assert!(late >= chrono::Duration::seconds(599), "{late}");
    }
}
