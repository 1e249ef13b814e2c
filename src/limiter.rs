//! Flood control: the chat rate of SPEC section 2, kept per login name.
//!
//! A client may send `burst` lines at once and `messages_per_sec` lines a second
//! after that. The bucket belongs to the name the client logged in with, not to
//! its connection, so reconnecting (or renaming) does not refill it. `governor`'s
//! keyed limiter holds one small cell per name and forgets names whose bucket has
//! refilled, so memory stays bounded however many names come and go.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Names checked between two sweeps of refilled buckets.
const SWEEP_EVERY: u32 = 4096;

/// The login name a bucket belongs to, lower-cased once when the client logs in
/// rather than on every line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// The key of `login` (any case).
    pub fn new(login: &str) -> RateKey {
        RateKey(login.to_ascii_lowercase())
    }
}

type Keyed<C> =
    RateLimiter<RateKey, DefaultKeyedStateStore<RateKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The chat rate per login name; see the module docs.
pub struct ChatRate<C: Clock = DefaultClock> {
    /// `None` when `messages_per_sec = 0`: no limit.
    limiter: Option<Keyed<C>>,
    checks: std::sync::atomic::AtomicU32,
}

impl ChatRate {
    /// `per_sec` lines a second after a burst of `burst` (`per_sec == 0`: no limit).
    pub fn new(per_sec: u32, burst: u32) -> ChatRate {
        ChatRate::with_clock(per_sec, burst, DefaultClock::default())
    }
}

impl<C: Clock> ChatRate<C> {
    /// The same, on a clock of the caller's (tests use a fake one).
    pub fn with_clock(per_sec: u32, burst: u32, clock: C) -> ChatRate<C> {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::dashmap_with_clock(Quota::per_second(rate).allow_burst(burst), clock)
        });
        ChatRate {
            limiter,
            checks: Default::default(),
        }
    }

    /// Takes one line from `login`'s bucket; `false` means the line must be refused.
    pub fn check(&self, login: &RateKey) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(login).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn burst_then_rate_per_name_across_reconnects() {
        let clock = FakeRelativeClock::default();
        let rate = ChatRate::with_clock(5, 10, clock.clone());
        let (amy, bob) = (RateKey::new("amy"), RateKey::new("bob"));
        assert!((0..10).all(|_| rate.check(&amy)));
        assert!(!rate.check(&amy));
        // Another connection under the same name (any case) shares the bucket.
        assert!(!rate.check(&RateKey::new("AMY")));
        assert!(rate.check(&bob));
        clock.advance(Duration::from_millis(200));
        assert!(rate.check(&amy));
        assert!(!rate.check(&amy));
        clock.advance(Duration::from_secs(60));
        assert_eq!((0..20).filter(|_| rate.check(&amy)).count(), 10);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let rate = ChatRate::new(0, 1);
        assert!((0..1000).all(|_| rate.check(&RateKey::new("amy"))));
    }
}
