//! Flood control: a token bucket per client.
//!
//! A client may send `burst` lines at once and `rate` lines a second after that.
//! The bucket is owned by the client's own reader task, so it needs no lock, and it
//! takes the time as an argument, so its tests need no clock.

use std::time::Instant;

/// A token bucket; see the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second; 0 means unlimited.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket: `burst` lines may be sent right away. `rate == 0` never refuses.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one; `false` means the line must be refused.
    pub fn check(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(5, 10, start);
        assert!((0..10).all(|_| limiter.check(start)));
        assert!(!limiter.check(start));
        assert!(limiter.check(start + Duration::from_millis(200)));
        assert!(!limiter.check(start + Duration::from_millis(210)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| limiter.check(later)).count(), 10);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(0, 1, now);
        assert!((0..1000).all(|_| limiter.check(now)));
    }
}
