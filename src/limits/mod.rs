//! Abuse limits: keyed GCRA limiters (governor) per client address and per
//! identity, kept in memory per replica (a replica's share of the traffic is
//! what it limits), read on the service's clock so tests can move time.

mod clients;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::Quota;

use crate::clock::Clock;
use crate::configuration::RateSettings;

pub use clients::{rate_key, ClientAddresses};

/// `burst` cells per key, one more every `60 / per_minute` seconds.
pub struct RateLimiter {
    cells: governor::RateLimiter<Probe, Cells, ServiceClock, NoOpMiddleware<Duration>>,
    clock: ServiceClock,
}

/// Without a rate, a cell comes back once an hour: governor needs one, and
/// an hour is what `Retry-After` said when refills were off.
const NO_REFILL: Duration = Duration::from_secs(3600);
/// Keeps `burst × interval` inside governor's nanosecond arithmetic (u64).
const MAX_BURST: u32 = 1_000_000;

impl RateLimiter {
    pub fn new(settings: &RateSettings, clock: Arc<Clock>) -> Self {
        let interval = match settings.per_minute {
            0 => NO_REFILL,
            n => Duration::from_secs(60) / n,
        };
        let burst = NonZeroU32::new(settings.burst.clamp(1, MAX_BURST)).unwrap_or(NonZeroU32::MIN);
        // `interval` is at least 60 s / u32::MAX, never zero.
        let quota = Quota::with_period(interval)
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let clock = ServiceClock::new(clock);
        Self {
            cells: governor::RateLimiter::new(quota, Cells::default(), clock.clone()),
            clock,
        }
    }

    /// Takes a cell for `key`, or says how long until one is available.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.decide(Probe::take(key))
    }

    /// Like `take`, without taking: would a cell for `key` be there now?
    /// Governor has no peek, so the store runs its decision and keeps the
    /// old state (see `Cells`).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.decide(Probe::peek(key))
    }

    fn decide(&self, probe: Probe) -> Result<(), Duration> {
        self.cells
            .check_key(&probe)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose state is a fresh one again, so memory follows
    /// live clients (governor keeps each one refill interval longer).
    pub fn prune(&self) -> usize {
        let before = self.cells.len();
        self.cells.retain_recent();
        before.saturating_sub(self.cells.len())
    }
}

/// The service's clock as governor reads it: time since the limiter was
/// made, so advancing the service's clock moves every limiter too.
#[derive(Clone)]
struct ServiceClock {
    clock: Arc<Clock>,
    origin: Instant,
}

impl ServiceClock {
    fn new(clock: Arc<Clock>) -> Self {
        let origin = clock.instant();
        Self { clock, origin }
    }
}

impl GovernorClock for ServiceClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.clock.instant().saturating_duration_since(self.origin)
    }
}

/// A limiter key, and whether the decision is kept (`take`) or only
/// reported (`check`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Probe {
    key: String,
    keep: bool,
}

impl Probe {
    fn take(key: &str) -> Self {
        Self {
            key: key.to_string(),
            keep: true,
        }
    }

    fn peek(key: &str) -> Self {
        Self {
            key: key.to_string(),
            keep: false,
        }
    }
}

/// Governor's own keyed store, which a peek reads without writing back.
#[derive(Default)]
struct Cells(HashMapStateStore<String>);

impl StateStore for Cells {
    type Key = Probe;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if probe.keep {
            return self.0.measure_and_replace(&probe.key, f);
        }
        // A peek answers governor's decision as an "error", which the store
        // never writes back.
        let peeked = self.0.measure_and_replace(&probe.key, |state| {
            Err::<(std::convert::Infallible, Nanos), _>(f(state).map(|(decision, _)| decision))
        });
        match peeked {
            Ok(never) => match never {},
            Err(decision) => decision,
        }
    }
}

impl ShrinkableKeyedStateStore<Probe> for Cells {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32) -> (RateLimiter, Arc<Clock>) {
        let clock = Arc::new(Clock::default());
        let limiter = RateLimiter::new(&RateSettings { burst, per_minute }, clock.clone());
        (limiter, clock)
    }

    #[test]
    fn a_key_allows_its_burst_then_refuses() {
        let (limiter, _) = limiter(3, 60);
        for _ in 0..3 {
            assert!(limiter.take("a").is_ok());
        }
        let wait = limiter.take("a").expect_err("out of cells");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.take("b").is_ok(), "keys are independent");
    }

    #[test]
    fn the_wait_passes_on_the_service_clock() {
        let (limiter, clock) = limiter(2, 6);
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_ok());
        let wait = limiter.take("a").expect_err("out of cells");
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "one cell every 10 s: {wait:?}"
        );
        clock.advance(wait / 2);
        assert!(limiter.take("a").is_err(), "halfway is not enough");
        clock.advance(wait);
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_err(), "one cell came back, not two");
    }

    #[test]
    fn check_does_not_take() {
        let (limiter, _) = limiter(1, 1);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.take("a").is_ok());
        let wait = limiter.check("a").expect_err("out of cells");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(limiter.check("a").is_err(), "still out, nothing taken");
        assert!(limiter.check("b").is_ok());
        assert!(limiter.take("b").is_ok(), "a peek left b's cell in place");
    }

    #[test]
    fn without_a_rate_cells_come_back_slowly_and_nothing_panics() {
        let (none, clock) = limiter(0, 0);
        assert!(none.take("a").is_ok(), "a burst of 0 is one cell");
        let wait = none.take("a").expect_err("out of cells");
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        clock.advance(NO_REFILL);
        assert!(none.take("a").is_ok());
        let (huge, _) = limiter(u32::MAX, u32::MAX);
        assert!(huge.take("a").is_ok());
    }

    #[test]
    fn idle_keys_are_pruned() {
        let (limiter, clock) = limiter(2, 60);
        assert!(limiter.take("a").is_ok());
        assert!(limiter.check("b").is_ok());
        assert_eq!(limiter.prune(), 1, "b was only looked at");
        assert_eq!(limiter.prune(), 0, "a is not full yet");
        clock.advance(Duration::from_millis(2100));
        assert_eq!(limiter.prune(), 1);
    }
}
