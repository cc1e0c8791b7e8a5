//! Abuse limits: token buckets per client IP and per identity, kept in
//! memory per replica (a replica's share of the traffic is what it limits),
//! and the client IP as a trusted proxy reports it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::configuration::RateSettings;

/// A token bucket per key: `burst` tokens, refilled at `per_minute`.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(settings: &RateSettings) -> Self {
        Self {
            burst: f64::from(settings.burst.max(1)),
            per_second: f64::from(settings.per_minute) / 60.0,
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
        let now = Instant::now();
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
        let now = Instant::now();
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
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let before = buckets.len();
        buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < self.burst);
        before - buckets.len()
    }
}

/// The client's IP: the configured trusted proxy header when set (for
/// `X-Forwarded-For`, the last address, which our proxy appended), else the
/// peer address.
pub fn client_ip(req: &HttpRequest, trusted_header: Option<&str>) -> Option<IpAddr> {
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
        RateLimiter::new(&RateSettings { burst, per_minute })
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
        let limiter = limiter(2, 60);
        assert!(limiter.take("a").is_ok());
        assert_eq!(limiter.prune(), 0, "a is not full yet");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(limiter.prune(), 1);
    }

    #[test]
    fn client_ip_honours_only_the_configured_header() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "203.0.113.7, 198.51.100.2"))
            .to_http_request();
        assert_eq!(client_ip(&req, None), "10.0.0.1".parse().ok());
        assert_eq!(
            client_ip(&req, Some("X-Forwarded-For")),
            "198.51.100.2".parse().ok()
        );
        assert_eq!(client_ip(&req, Some("X-Real-IP")), "10.0.0.1".parse().ok());
    }
}
