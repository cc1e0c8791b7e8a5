//! Abuse limits: token buckets per client IP and per identity, kept in
//! memory per replica (a replica's share of the traffic is what it limits),
//! and the client IP as a trusted proxy reports it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, FORWARDED};
use actix_web::HttpRequest;

use crate::clock::Clock;
use crate::configuration::{HttpSettings, RateSettings};

/// A token bucket per key: `burst` tokens, refilled at `per_minute`.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    clock: Arc<Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(settings: &RateSettings, clock: Arc<Clock>) -> Self {
        Self {
            burst: f64::from(settings.burst.max(1)),
            per_second: f64::from(settings.per_minute) / 60.0,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_second).min(self.burst),
            updated: now,
        }
    }

    /// How long until one token is available, given `tokens` now.
    fn wait(&self, tokens: f64) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64(((1.0 - tokens) / self.per_second).max(0.0))
    }

    /// Takes a token for `key`, or says how long to wait for one.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.instant();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.get(key).copied().unwrap_or(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let mut bucket = self.refilled(bucket, now);
        if bucket.tokens < 1.0 {
            let wait = self.wait(bucket.tokens);
            buckets.insert(key.to_string(), bucket);
            return Err(wait);
        }
        bucket.tokens -= 1.0;
        buckets.insert(key.to_string(), bucket);
        Ok(())
    }

    /// Like `take`, without taking: is `key` out of tokens right now?
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.instant();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            Some(bucket) => {
                let bucket = self.refilled(*bucket, now);
                if bucket.tokens < 1.0 {
                    Err(self.wait(bucket.tokens))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Forgets buckets that are full again, so memory follows live clients.
    pub fn prune(&self) -> usize {
        let now = self.clock.instant();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let before = buckets.len();
        buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < self.burst);
        before - buckets.len()
    }
}

/// Who the client is, as far as the limits can tell: the configured trusted
/// proxy header, else the peer address. Notices (once) when requests come
/// through a proxy that nobody told it about.
pub struct ClientAddresses {
    trusted_header: Option<HeaderName>,
    proxy_unconfigured: AtomicBool,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl ClientAddresses {
    pub fn new(settings: &HttpSettings) -> Result<Self, String> {
        let trusted_header = settings
            .client_ip_header()
            .map(|name| {
                HeaderName::try_from(name)
                    .map_err(|_| format!("http.client_ip_header {name:?} is not a header name"))
            })
            .transpose()?;
        Ok(Self {
            trusted_header,
            proxy_unconfigured: AtomicBool::new(false),
        })
    }

    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trusted_header.is_none()
            && !self.proxy_unconfigured.load(Ordering::Relaxed)
            && (req.headers().contains_key(X_FORWARDED_FOR)
                || req.headers().contains_key(FORWARDED))
            && !self.proxy_unconfigured.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "requests arrive through a proxy (X-Forwarded-For or Forwarded) but \
                 http.client_ip_header is not set: every client looks like the proxy's \
                 address to the rate limits; set it to the header your proxy writes"
            );
        }
        client_ip(req, self.trusted_header.as_ref())
    }

    /// True once a request came through a proxy while no client IP header
    /// is configured (then every client looks like one address).
    pub fn proxy_unconfigured(&self) -> bool {
        self.proxy_unconfigured.load(Ordering::Relaxed)
    }
}

/// The client's IP: the configured trusted proxy header when set (for
/// `X-Forwarded-For`, the last address, which our proxy appended), else the
/// peer address.
fn client_ip(req: &HttpRequest, trusted_header: Option<&HeaderName>) -> Option<IpAddr> {
    if let Some(name) = trusted_header {
        let from_header = req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if from_header.is_some() {
            return from_header;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limiter(burst: u32, per_minute: u32) -> RateLimiter {
        RateLimiter::new(&RateSettings { burst, per_minute }, Arc::default())
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let limiter = limiter(3, 60);
        for _ in 0..3 {
            assert!(limiter.take("a").is_ok());
        }
        let wait = limiter.take("a").expect_err("out of tokens");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.take("b").is_ok(), "keys are independent");
    }

    #[test]
    fn check_does_not_take() {
        let limiter = limiter(1, 1);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.take("a").is_ok());
        assert!(limiter.check("a").is_err());
    }

    #[test]
    fn full_buckets_are_pruned() {
        let clock = Arc::new(Clock::default());
        let limiter = RateLimiter::new(
            &RateSettings {
                burst: 2,
                per_minute: 60,
            },
            clock.clone(),
        );
        assert!(limiter.take("a").is_ok());
        assert_eq!(limiter.prune(), 0, "a is not full yet");
        clock.advance(Duration::from_millis(1100));
        assert_eq!(limiter.prune(), 1);
    }

    #[test]
    fn client_ip_honours_only_the_configured_header() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "203.0.113.7, 198.51.100.2"))
            .to_http_request();
        let header = |name: &str| HeaderName::try_from(name).expect("header");
        assert_eq!(client_ip(&req, None), "10.0.0.1".parse().ok());
        assert_eq!(
            client_ip(&req, Some(&header("X-Forwarded-For"))),
            "198.51.100.2".parse().ok()
        );
        assert_eq!(
            client_ip(&req, Some(&header("X-Real-IP"))),
            "10.0.0.1".parse().ok()
        );
    }

    fn addresses(header: &str) -> ClientAddresses {
        ClientAddresses::new(&HttpSettings {
            max_body_bytes: 1024,
            client_ip_header: header.to_string(),
        })
        .expect("addresses")
    }

    #[test]
    fn an_unconfigured_proxy_is_noticed() {
        let direct = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .to_http_request();
        let proxied = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .insert_header(("Forwarded", "for=203.0.113.7"))
            .to_http_request();
        let unconfigured = addresses("");
        unconfigured.client_ip(&direct);
        assert!(!unconfigured.proxy_unconfigured());
        assert_eq!(unconfigured.client_ip(&proxied), "10.0.0.1".parse().ok());
        assert!(unconfigured.proxy_unconfigured());

        let configured = addresses("X-Forwarded-For");
        configured.client_ip(&proxied);
        assert!(!configured.proxy_unconfigured(), "the header is configured");
        assert!(ClientAddresses::new(&HttpSettings {
            max_body_bytes: 1,
            client_ip_header: "bad header".into()
        })
        .is_err());
    }
}
