//! Limits per address that survive reconnecting: new connections and wrong codes,
//! each counted in a window that slides over the last minute.
//!
//! Every wrong join code, personal code or instructor password counts against the
//! client's address, across all its connections and front ends. A correct code
//! resets nobody's count, so a student behind the class's NAT can slow guessing
//! down but cannot lock an instructor out for longer than a minute. What is refused
//! is logged at most once per address per minute, with the count, so a flood of
//! guesses or connections cannot flood the log.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window over which wrong codes are counted.
const WINDOW: Duration = Duration::from_secs(60);

/// Something counted per address in the last minute; see the module docs.
#[derive(Debug)]
pub struct AddressWindow {
    /// What is counted, for the log.
    what: &'static str,
    /// Allowed per address in the window; 0 = no limit.
    per_minute: u32,
    state: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Default)]
struct Failures {
    /// When each wrong code in the window was given, oldest first.
    times: VecDeque<Instant>,
    /// When the last log line for this address was written, and how many
    /// failures came since.
    logged: Option<Instant>,
    unlogged: u32,
}

/// An address that must wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// Whole seconds until the oldest failure leaves the window.
    pub retry_secs: u64,
}

/// Wrong codes and passwords per address.
pub type CodeGuard = AddressWindow;

impl AddressWindow {
    /// A guard allowing `per_minute` wrong codes per address (0 = unlimited).
    pub fn codes(per_minute: u32) -> AddressWindow {
        AddressWindow::new("wrong code", per_minute)
    }

    /// A guard allowing `per_minute` new connections per address (0 = unlimited).
    pub fn connects(per_minute: u32) -> AddressWindow {
        AddressWindow::new("too many connections", per_minute)
    }

    fn new(what: &'static str, per_minute: u32) -> AddressWindow {
        AddressWindow {
            what,
            per_minute,
            state: Mutex::default(),
        }
    }

    /// Counts one connection from `ip` if it is allowed one more now.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Locked> {
        if let Err(locked) = self.check(ip, now) {
            self.failed(ip, self.what, now);
            return Err(locked);
        }
        if self.per_minute > 0 {
            self.lock().entry(ip).or_default().times.push_back(now);
        }
        Ok(())
    }

    /// Whether `ip` may try now.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Locked> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut state = self.lock();
        let Some(failures) = state.get_mut(&ip) else {
            return Ok(());
        };
        failures.expire(now);
        if failures.times.len() < self.per_minute as usize {
            return Ok(());
        }
        let oldest = failures.times.front().copied().unwrap_or(now);
        let wait = (oldest + WINDOW).saturating_duration_since(now);
        Err(Locked {
            retry_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Counts one refusal of `ip` (a wrong code, a connection too many), logging
    /// at most once a minute per address.
    pub fn failed(&self, ip: IpAddr, what: &str, now: Instant) {
        let mut state = self.lock();
        let failures = state.entry(ip).or_default();
        failures.expire(now);
        failures.times.push_back(now);
        // Only the newest `per_minute` times decide anything: a flood costs no
        // more memory than the limit, and keeps the address waiting.
        if failures.times.len() > self.per_minute.max(1) as usize {
            failures.times.pop_front();
        }
        failures.unlogged += 1;
        let due = failures
            .logged
            .is_none_or(|at| now.saturating_duration_since(at) >= WINDOW);
        if due {
            tracing::warn!(
                address = %ip,
                count = failures.unlogged,
                "{what} (count since the last such line)"
            );
            failures.logged = Some(now);
            failures.unlogged = 0;
        }
        // Forget addresses that have gone quiet, so the map stays small.
        if state.len() > 4096 {
            state.retain(|_, f| {
                f.expire(now);
                !f.times.is_empty()
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Failures {
    fn expire(&mut self, now: Instant) {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let guard = CodeGuard::codes(3);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let other = IpAddr::from([10, 0, 0, 2]);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(guard.check(ip, t0), Ok(()));
            guard.failed(ip, "wrong code", t0 + Duration::from_secs(i * 10));
        }
        let t = t0 + Duration::from_secs(25);
        assert_eq!(guard.check(ip, t), Err(Locked { retry_secs: 35 }));
        assert_eq!(guard.check(other, t), Ok(()));
        // The first failure leaves the window after a minute: one more try.
        let t = t0 + Duration::from_secs(60);
        assert_eq!(guard.check(ip, t), Ok(()));
    }

    #[test]
    fn zero_means_no_limit() {
        let guard = CodeGuard::codes(0);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..100 {
            guard.failed(ip, "wrong code", now);
        }
        assert_eq!(guard.check(ip, now), Ok(()));
    }
}
