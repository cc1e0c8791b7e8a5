//! What a passkey login may cost, and who pays when it is abused.
//!
//! A signature cannot be guessed, so these limits protect the service and
//! Kratos, not the account: they shed load where it is cheap and never
//! refuse a correctly signed assertion because of what others sent.
//! - every login request, per client address (before anything else);
//! - failed logins per client address: past it, that address is refused
//!   before verification (the one limit a person can meet through others:
//!   only those who share their address, and only until `Retry-After`);
//! - failed logins per identity: counted after verification, so past it only
//!   further failures answer 429;
//! - Kratos identity searches for identifier logins, all clients together,
//!   with each identifier's result reused for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::configuration::LimitSettings;
use crate::domain::IdentityId;
use crate::limits::RateLimiter;

/// Identifiers whose search result is remembered, at most.
const CACHED_IDENTIFIERS: usize = 10_000;

/// Which limit refused a request (the metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    LoginPerIp,
    FailedLoginsPerIp,
    FailedLoginsPerIdentity,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "login_per_ip",
            Limit::FailedLoginsPerIp => "failed_logins_per_ip",
            Limit::FailedLoginsPerIdentity => "failed_logins_per_identity",
        }
    }
}

/// A refusal: which limit, and when the next request passes.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub limit: Limit,
    pub retry_after: Duration,
}

pub struct LoginLimits {
    requests_per_ip: RateLimiter,
    failures_per_ip: RateLimiter,
    failures_per_identity: RateLimiter,
    identifier_lookups: RateLimiter,
    identifiers: IdentifierCache,
}

impl LoginLimits {
    pub fn new(settings: &LimitSettings, clock: Arc<Clock>) -> Self {
        Self {
            requests_per_ip: RateLimiter::new(&settings.login_per_ip, clock.clone()),
            failures_per_ip: RateLimiter::new(&settings.failed_logins_per_ip, clock.clone()),
            failures_per_identity: RateLimiter::new(
                &settings.failed_logins_per_identity,
                clock.clone(),
            ),
            identifier_lookups: RateLimiter::new(&settings.identifier_lookups, clock.clone()),
            identifiers: IdentifierCache::new(settings.identifier_cache_ttl, clock),
        }
    }

    /// Every login request (options and verify), per client address.
    pub fn request(&self, client: &str) -> Result<(), Refused> {
        self.requests_per_ip
            .take(client)
            .map_err(|retry_after| Refused {
                limit: Limit::LoginPerIp,
                retry_after,
            })
    }

    /// Before a verify is looked at: is this address out of failures?
    pub fn before_verify(&self, client: &str) -> Result<(), Refused> {
        self.failures_per_ip
            .check(client)
            .map_err(|retry_after| Refused {
                limit: Limit::FailedLoginsPerIp,
                retry_after,
            })
    }

    /// Counts a failed login against its address and, when known, its
    /// identity; says whether either is past its limit now.
    pub fn failed(&self, client: &str, identity: Option<IdentityId>) -> Result<(), Refused> {
        let by_address = self.failures_per_ip.take(client);
        let by_identity = match identity {
            Some(identity) => self.failures_per_identity.take(&identity.to_string()),
            None => Ok(()),
        };
        match (by_address, by_identity) {
            (Err(retry_after), _) => Err(Refused {
                limit: Limit::FailedLoginsPerIp,
                retry_after,
            }),
            (_, Err(retry_after)) => Err(Refused {
                limit: Limit::FailedLoginsPerIdentity,
                retry_after,
            }),
            _ => Ok(()),
        }
    }

    /// The remembered search result for `identifier`: `Some(None)` when
    /// Kratos knew no such identity, `None` when it must be asked.
    pub fn cached_identity(&self, identifier: &str) -> Option<Option<IdentityId>> {
        self.identifiers.get(identifier)
    }

    /// Whether Kratos may be asked for one more identifier now.
    pub fn lookup_allowed(&self) -> bool {
        self.identifier_lookups.take("kratos").is_ok()
    }

    pub fn remember_identity(&self, identifier: &str, identity: Option<IdentityId>) {
        self.identifiers.insert(identifier, identity);
    }

    /// Forgets what has expired, so memory follows live clients.
    pub fn prune(&self) {
        self.requests_per_ip.prune();
        self.failures_per_ip.prune();
        self.failures_per_identity.prune();
        self.identifier_lookups.prune();
        self.identifiers.prune();
    }
}

/// Identifier search results, each reused until its time is up.
struct IdentifierCache {
    ttl: Duration,
    clock: Arc<Clock>,
    entries: Mutex<HashMap<String, (Instant, Option<IdentityId>)>>,
}

impl IdentifierCache {
    fn new(ttl: Duration, clock: Arc<Clock>) -> Self {
        Self {
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, identifier: &str) -> Option<Option<IdentityId>> {
        let now = self.clock.instant();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(identifier)
            .filter(|(until, _)| *until > now)
            .map(|(_, identity)| *identity)
    }

    fn insert(&self, identifier: &str, identity: Option<IdentityId>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = self.clock.instant();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHED_IDENTIFIERS {
            entries.retain(|_, (until, _)| *until > now);
        }
        // Full of live entries: this result is simply not remembered.
        if entries.len() < CACHED_IDENTIFIERS {
            entries.insert(identifier.to_string(), (now + self.ttl, identity));
        }
    }

    fn prune(&self) {
        let now = self.clock.instant();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (until, _)| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::RateSettings;

    fn settings() -> LimitSettings {
        let rate = |burst, per_minute| RateSettings { burst, per_minute };
        LimitSettings {
            login_per_ip: rate(100, 100),
            ipv6_prefix_length: 64,
            failed_logins_per_ip: rate(3, 1),
            failed_logins_per_identity: rate(2, 1),
            identifier_lookups: rate(2, 1),
            identifier_cache_ttl: Duration::from_secs(60),
            passkeys_per_identity: Default::default(),
        }
    }

    #[test]
    fn failures_of_others_never_check_the_identity() {
        let limits = LoginLimits::new(&settings(), Arc::default());
        let victim = IdentityId::new(uuid::Uuid::new_v4());
        for _ in 0..2 {
            assert!(limits.failed("attacker", Some(victim)).is_ok());
        }
        let refused = limits
            .failed("attacker", Some(victim))
            .expect_err("past the identity's limit");
        assert_eq!(refused.limit, Limit::FailedLoginsPerIdentity);
        // What runs before verification looks at the address alone.
        assert!(limits.before_verify("victim's address").is_ok());
        let refused = limits
            .before_verify("attacker")
            .expect_err("the attacker's address is out of failures");
        assert_eq!(refused.limit, Limit::FailedLoginsPerIp);
    }

    #[test]
    fn identifier_results_are_reused_until_their_time_is_up() {
        let clock = Arc::new(Clock::default());
        let limits = LoginLimits::new(&settings(), clock.clone());
        let identity = IdentityId::new(uuid::Uuid::new_v4());
        assert_eq!(limits.cached_identity("a@example.com"), None);
        limits.remember_identity("a@example.com", Some(identity));
        limits.remember_identity("b@example.com", None);
        assert_eq!(
            limits.cached_identity("a@example.com"),
            Some(Some(identity))
        );
        assert_eq!(limits.cached_identity("b@example.com"), Some(None));
        clock.advance(Duration::from_secs(61));
        assert_eq!(limits.cached_identity("a@example.com"), None);
    }

    #[test]
    fn identifier_lookups_have_one_budget() {
        let limits = LoginLimits::new(&settings(), Arc::default());
        assert!(limits.lookup_allowed());
        assert!(limits.lookup_allowed());
        assert!(!limits.lookup_allowed());
    }
}
