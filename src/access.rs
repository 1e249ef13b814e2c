//! Limits per address that survive reconnecting: new connections, counted in a
//! window that slides over the last minute ([`AddressWindow`]), and code checks
//! ([`CodeGuard`]).
//!
//! Every join code, personal code or instructor password given is counted before
//! it is checked, against the name it was given for from that address, and
//! against the address across all names, connections and front ends. Guessing
//! one name from an address locks that name from there; guessing across names
//! locks the address only at a higher count. So one student behind a classroom's
//! NAT cannot lock the instructor out by guessing at classmates' codes, and a
//! burst of parallel attempts is refused before any is computed.
//!
//! The checks themselves (argon2, 19 MiB and tens of milliseconds each) run at
//! most `access.parallel_checks` at once and one per address at once, so no
//! burst of log-ins can take the server's memory. What is refused is logged at
//! most once per address per minute, with the count, so a flood of guesses or
//! connections cannot flood the log.
//!
//! In a cluster every node counts what the others counted too: each counted
//! connection and code attempt is handed to [`Shared`] (see
//! [`cluster::counters`](crate::cluster::counters)), which tells the other nodes,
//! and what they tell is added with [`AddressWindow::counted_elsewhere`] and
//! [`CodeGuard::counted_elsewhere`]; so N nodes allow no more than one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Something one node counted, as the other nodes are told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counted {
    /// A connection admitted from `ip`.
    Connect {
        /// The client's address.
        ip: IpAddr,
    },
    /// A code or password given for `name` from `ip`, counted before its check.
    Code {
        /// The client's address.
        ip: IpAddr,
        /// The name it was given for, as counted (trimmed, lower-cased, bounded).
        name: String,
    },
}

/// Where a node's counts go to be told to the other nodes; unset on a single
/// server. Telling never waits: when the queue is full, a count stays local.
#[derive(Debug, Default)]
pub struct Shared(std::sync::OnceLock<mpsc::Sender<Counted>>);

impl Shared {
    /// From now on, counts are sent to `others`.
    pub fn connect(&self, others: mpsc::Sender<Counted>) {
        let _ = self.0.set(others);
    }

    fn tell(&self, counted: Counted) {
        if let Some(others) = self.0.get() {
            if others.try_send(counted).is_err() {
                tracing::debug!("a count was not shared: the queue to the other nodes is full");
            }
        }
    }
}

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
    /// The other nodes, in a cluster.
    pub shared: Shared,
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

impl AddressWindow {
    /// A guard allowing `per_minute` new connections per address (0 = unlimited).
    pub fn connects(per_minute: u32) -> AddressWindow {
        AddressWindow::new("too many connections", per_minute)
    }

    fn new(what: &'static str, per_minute: u32) -> AddressWindow {
        AddressWindow {
            what,
            per_minute,
            state: Mutex::default(),
            shared: Shared::default(),
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
            self.shared.tell(Counted::Connect { ip });
        }
        Ok(())
    }

    /// Counts a connection another node admitted from `ip`, as of `now`.
    pub fn counted_elsewhere(&self, ip: IpAddr, now: Instant) {
        if self.per_minute == 0 {
            return;
        }
        let mut state = self.lock();
        let failures = state.entry(ip).or_default();
        failures.expire(now);
        failures.times.push_back(now);
        // As in `failed`: only the newest `per_minute` times decide anything.
        if failures.times.len() > self.per_minute as usize {
            failures.times.pop_front();
        }
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

/// How long a code waits for its turn among the parallel checks before it is
/// refused: long enough for a classroom behind one address to log in at the
/// start of a lecture, short enough that nothing piles up behind a flood.
const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Names whose counts are checked between two sweeps of refilled buckets.
const SWEEP_EVERY: u32 = 1024;

/// Code checks: counted per (address, name) and per address, and run a few at a
/// time; see the module docs.
pub struct CodeGuard {
    /// Attempts at one name from one address (`access.code_attempts_per_minute`).
    per_name: Option<DefaultKeyedRateLimiter<(IpAddr, String)>>,
    /// Attempts from one address at any names
    /// (`access.code_attempts_per_minute_per_ip`).
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Checks running at once, all addresses together (`access.parallel_checks`).
    running: Arc<Semaphore>,
    /// Addresses with a check running: one at a time each.
    checking: Arc<Mutex<HashSet<IpAddr>>>,
    /// When each address was last logged, and its refusals since.
    logged: Mutex<HashMap<IpAddr, (Option<Instant>, u32)>>,
    counted: std::sync::atomic::AtomicU32,
    /// The other nodes, in a cluster.
    pub shared: Shared,
}

/// One attempt's turn to be checked, given back when dropped.
struct Turn {
    _running: Option<OwnedSemaphorePermit>,
    checking: Arc<Mutex<HashSet<IpAddr>>>,
    ip: Option<IpAddr>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            lock(&self.checking).remove(&ip);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let per_minute = NonZeroU32::new(per_minute)?;
    Some(RateLimiter::keyed(
        Quota::per_minute(per_minute).allow_burst(per_minute),
    ))
}

impl CodeGuard {
    /// `per_name` attempts a minute at one name from one address, `per_address`
    /// at any names (0 = no limit for either), `parallel` checks at once.
    pub fn new(per_name: u32, per_address: u32, parallel: usize) -> CodeGuard {
        CodeGuard {
            per_name: limiter(per_name),
            per_address: limiter(per_address),
            running: Arc::new(Semaphore::new(parallel.max(1))),
            checking: Arc::default(),
            logged: Mutex::default(),
            counted: Default::default(),
            shared: Shared::default(),
        }
    }

    /// Checks a code given for `name` from `ip` with `verify`, which runs on the
    /// blocking pool once the attempt is counted and has its turn. `what` names
    /// the code in the log. `Err` means the attempt was refused unchecked.
    pub async fn check<F>(
        &self,
        ip: Option<IpAddr>,
        name: &str,
        what: &'static str,
        verify: F,
    ) -> Result<bool, Locked>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        if let Some(ip) = ip {
            if let Err(locked) = self.count(ip, name) {
                self.refused(ip, what);
                return Err(locked);
            }
        }
        let Some(turn) = self.turn(ip).await else {
            if let Some(ip) = ip {
                self.refused(ip, what);
            }
            return Err(Locked { retry_secs: 1 });
        };
        let right = tokio::task::spawn_blocking(verify).await.unwrap_or(false);
        drop(turn);
        if !right {
            if let Some(ip) = ip {
                self.refused(ip, what);
            }
        }
        Ok(right)
    }

    /// Counts one attempt, before it is checked, so a burst sent in parallel is
    /// refused as surely as one sent in turn.
    fn count(&self, ip: IpAddr, name: &str) -> Result<(), Locked> {
        // Bounded, so a flood of long made-up names costs no memory.
        let name: String = name.trim().chars().take(64).collect();
        let name = name.to_lowercase();
        self.count_as(ip, &name)?;
        self.shared.tell(Counted::Code { ip, name });
        Ok(())
    }

    /// Counts an attempt another node counted (for `name` as it counted it).
    pub fn counted_elsewhere(&self, ip: IpAddr, name: &str) {
        let name: String = name.chars().take(64).collect();
        let _ = self.count_as(ip, &name);
    }

    fn count_as(&self, ip: IpAddr, name: &str) -> Result<(), Locked> {
        let n = self
            .counted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.per_name.iter().for_each(|l| l.retain_recent());
            self.per_address.iter().for_each(|l| l.retain_recent());
        }
        let now = DefaultClock::default().now();
        let wait = |not: governor::NotUntil<_>| Locked {
            retry_secs: not.wait_time_from(now).as_secs_f64().ceil().max(1.0) as u64,
        };
        if let Some(per_name) = &self.per_name {
            per_name.check_key(&(ip, name.to_owned())).map_err(wait)?;
        }
        if let Some(per_address) = &self.per_address {
            per_address.check_key(&ip).map_err(wait)?;
        }
        Ok(())
    }

    /// Waits (a little) for a place among the running checks, one per address.
    async fn turn(&self, ip: Option<IpAddr>) -> Option<Turn> {
        // The address's own place first: an address with many attempts waiting
        // must not hold the shared places while it waits for its own.
        let wait = async {
            if let Some(ip) = ip {
                let mut backoff = Duration::from_millis(5);
                while !lock(&self.checking).insert(ip) {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
            }
            let mut turn = Turn {
                _running: None,
                checking: self.checking.clone(),
                ip,
            };
            turn._running = Some(self.running.clone().acquire_owned().await.ok()?);
            Some(turn)
        };
        tokio::time::timeout(CHECK_WAIT, wait).await.ok().flatten()
    }

    /// Logs a refused or wrong code at most once a minute per address.
    fn refused(&self, ip: IpAddr, what: &str) {
        let now = Instant::now();
        let mut logged = lock(&self.logged);
        if logged.len() > 4096 {
            logged.retain(|_, (at, _)| {
                at.is_some_and(|at| now.saturating_duration_since(at) < WINDOW)
            });
        }
        let (at, count) = logged.entry(ip).or_default();
        *count += 1;
        if at.is_none_or(|at| now.saturating_duration_since(at) >= WINDOW) {
            tracing::warn!(address = %ip, count = *count, "{what} (count since the last such line)");
            *at = Some(now);
            *count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let guard = AddressWindow::connects(3);
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
        let guard = AddressWindow::connects(0);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..100 {
            guard.failed(ip, "wrong code", now);
        }
        assert_eq!(guard.check(ip, now), Ok(()));
    }
}

#[cfg(test)]
mod code_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[tokio::test]
    async fn guesses_lock_the_name_guessed_before_the_address() {
        let guard = CodeGuard::new(3, 5, 4);
        for _ in 0..3 {
            assert_eq!(
                guard.check(Some(IP), "amy", "test", || false).await,
                Ok(false)
            );
        }
        // A fourth try at amy is refused unchecked, in any spelling.
        assert!(guard
            .check(Some(IP), " AMY", "test", || true)
            .await
            .is_err());
        // Other names from the same address are still checked, up to the
        // address's own limit.
        assert_eq!(
            guard.check(Some(IP), "prof", "test", || true).await,
            Ok(true)
        );
        assert_eq!(
            guard.check(Some(IP), "bob", "test", || false).await,
            Ok(false)
        );
        assert!(guard.check(Some(IP), "cat", "test", || true).await.is_err());
        // Another address is not affected.
        let other = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(
            guard.check(Some(other), "amy", "test", || true).await,
            Ok(true)
        );
    }

    #[tokio::test]
    async fn attempts_counted_on_another_node_lock_here_too() {
        let (here, there) = (CodeGuard::new(3, 5, 4), CodeGuard::new(3, 5, 4));
        let (tell, mut told) = mpsc::channel(16);
        there.shared.connect(tell);
        for code in ["a", "b", "c"] {
            assert_eq!(
                there.check(Some(IP), " Amy", code, || false).await,
                Ok(false)
            );
        }
        while let Ok(Counted::Code { ip, name }) = told.try_recv() {
            here.counted_elsewhere(ip, &name);
        }
        assert!(here.check(Some(IP), "amy", "test", || true).await.is_err());
        assert_eq!(here.check(Some(IP), "bob", "test", || true).await, Ok(true));
    }

    #[test]
    fn connections_admitted_elsewhere_count_here() {
        let (here, there) = (AddressWindow::connects(2), AddressWindow::connects(2));
        let (tell, mut told) = mpsc::channel(16);
        there.shared.connect(tell);
        let now = Instant::now();
        assert_eq!(there.admit(IP, now), Ok(()));
        assert_eq!(there.admit(IP, now), Ok(()));
        while let Ok(Counted::Connect { ip }) = told.try_recv() {
            here.counted_elsewhere(ip, now);
        }
        assert!(here.admit(IP, now).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_is_counted_before_it_is_checked_and_run_one_at_a_time() {
        let guard = Arc::new(CodeGuard::new(20, 60, 4));
        let (running, most, checked) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let attempts = (0..300).map(|_| {
            let (guard, running, most, checked) = (
                guard.clone(),
                running.clone(),
                most.clone(),
                checked.clone(),
            );
            tokio::spawn(async move {
                guard
                    .check(Some(IP), "prof", "test", move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        checked.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        false
                    })
                    .await
            })
        });
        let mut refused = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            if attempt.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert_eq!(checked.load(Ordering::SeqCst), 20);
        assert_eq!(refused, 280);
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "one check at a time per address"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_parallel_checks_run_at_once_across_addresses() {
        let guard = Arc::new(CodeGuard::new(20, 60, 3));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let attempts: Vec<_> = (0..12u8)
            .map(|host| {
                let (guard, running, most) = (guard.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let ip = IpAddr::from([10, 0, 1, host]);
                    guard
                        .check(Some(ip), "prof", "test", move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            false
                        })
                        .await
                })
            })
            .collect();
        for attempt in attempts {
            assert_eq!(attempt.await.unwrap(), Ok(false), "each is checked in turn");
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?} at once");
    }
}
