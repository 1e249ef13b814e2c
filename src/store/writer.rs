//! The writer thread: batches events into the database and the transcript, and
//! keeps what either refuses until it takes it.
//!
//! Each sink has its own pending events and its own retry schedule, so a locked
//! database never holds back the transcript, nor a removed log folder the
//! database. The queue is drained all the while: nothing upstream ever waits.

use std::fmt::Display;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::insert_counting;
use super::unsaved::Spill;
use crate::event::Event;
use crate::transcript::{self, Transcript};

/// Most events written in one transaction, or gathered before a write.
const MAX_BATCH: usize = 8192;

/// The first wait after a refused write; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The longest wait between two tries of a failing sink.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// What the writer thread is asked to do.
pub(super) enum Request {
    Record(Event),
    /// Delete what is older than `storage.retention_days` (SPEC 12).
    Expire {
        cutoff_ms: i64,
    },
    /// Replace the lines of these erased events in every transcript file.
    RewriteTranscripts(Vec<Event>),
    /// Write what is queued before this and stop.
    Close,
}

/// How insistently a sink is asked to write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// When its batch is due, or its next retry.
    OnSchedule,
    /// Closing: now, unless it is waiting for its next retry.
    Closing,
    /// The last try before giving up: now.
    Last,
}

/// One sink's failure state: logged once when it starts and once when it ends.
struct Retry {
    what: &'static str,
    failing_since: Option<Instant>,
    delay: Duration,
    next_try: Instant,
}

impl Retry {
    fn new(what: &'static str) -> Self {
        Retry {
            what,
            failing_since: None,
            delay: FIRST_RETRY,
            next_try: Instant::now(),
        }
    }

    fn may_try(&self, now: Instant, attempt: Attempt) -> bool {
        attempt == Attempt::Last || self.failing_since.is_none() || now >= self.next_try
    }

    fn failed(&mut self, now: Instant, err: &dyn Display, waiting: usize) {
        if self.failing_since.is_none() {
            tracing::error!(
                %err,
                waiting,
                "{} write failed; keeping the events and retrying",
                self.what
            );
            self.failing_since = Some(now);
            self.delay = FIRST_RETRY;
        } else {
            tracing::debug!(%err, waiting, "{} write failed again", self.what);
            self.delay = (self.delay * 2).min(MAX_RETRY);
        }
        self.next_try = now + self.delay;
    }

    /// `delayed`: every event that waited for this write, written now or next.
    fn succeeded(&mut self, delayed: usize) {
        if let Some(since) = self.failing_since.take() {
            tracing::warn!(
                delayed,
                seconds = since.elapsed().as_secs_f64(),
                "{} writes again; the delayed events follow in order",
                self.what
            );
        }
    }
}

/// The database side: events not yet committed, oldest first.
struct Database {
    conn: Connection,
    pending: Vec<Event>,
    /// The pending events, also on disk while the database refuses them.
    spill: Spill,
    /// The spill file could not be written either (logged once).
    spill_failed: bool,
    /// When to write next; `None` while nothing is pending.
    due: Option<Instant>,
    retry: Retry,
    backlog: Arc<AtomicUsize>,
}

impl Database {
    fn push(&mut self, event: Event, now: impl FnOnce() -> Instant) {
        self.pending.push(event);
        schedule(&mut self.due, self.pending.len(), &self.retry, now);
    }

    fn write(&mut self, now: Instant, attempt: Attempt) {
        if !is_due(self.due, now, &self.retry, attempt) {
            return;
        }
        let n = self.pending.len().min(MAX_BATCH);
        let from_file = self.spill.taking(n);
        let taken = from_file.map_or(0, |(_, count)| count);
        match insert_counting(&mut self.conn, &self.pending[..n], from_file) {
            Ok(()) => {
                self.retry.succeeded(self.pending.len());
                self.spill.committed(taken);
                self.pending.drain(..n);
                self.backlog.fetch_sub(n, Ordering::Relaxed);
                self.due = (!self.pending.is_empty()).then_some(now);
            }
            Err(err) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.retry.failed(now, &err, self.pending.len());
                self.due = Some(self.retry.next_try);
            }
        }
    }
}

impl Database {
    /// While the database refuses events, keeps them in the unsaved-events file
    /// too, so that even a `kill -9` does not lose them.
    fn spill(&mut self) {
        if self.retry.failing_since.is_none() {
            return;
        }
        match self.spill.keep(&self.pending) {
            Ok(()) => self.spill_failed = false,
            Err(err) if !self.spill_failed => {
                self.spill_failed = true;
                tracing::error!(%err, "cannot save the waiting events beside the database either; keeping them in memory");
            }
            Err(_) => {}
        }
    }
}

/// The transcript side: formatted lines not yet written, oldest first.
struct TranscriptSink {
    transcript: Transcript,
    pending: Vec<u8>,
    lines: usize,
    due: Option<Instant>,
    retry: Retry,
}

impl TranscriptSink {
    fn push(&mut self, event: &Event, now: impl FnOnce() -> Instant) {
        let _ = writeln!(self.pending, "{}", transcript::format_line(event));
        self.lines += 1;
        schedule(&mut self.due, self.lines, &self.retry, now);
    }

    fn write(&mut self, now: Instant, attempt: Attempt) {
        if !is_due(self.due, now, &self.retry, attempt) {
            return;
        }
        match self.transcript.write(&self.pending) {
            (_, Ok(())) => {
                self.retry.succeeded(self.lines);
                self.pending.clear();
                self.lines = 0;
                self.due = None;
            }
            (written, Err(err)) => {
                self.lines -= self.pending[..written]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                self.pending.drain(..written);
                self.retry.failed(now, &err, self.lines);
                self.due = Some(self.retry.next_try);
            }
        }
    }
}

/// Sets a sink's next write after an event joins its pending ones: a healthy sink
/// waits for the rest of its batch, at most [`BATCH_INTERVAL`](super::BATCH_INTERVAL)
/// or [`MAX_BATCH`] events; a failing one keeps its retry time.
fn schedule(
    due: &mut Option<Instant>,
    pending: usize,
    retry: &Retry,
    now: impl FnOnce() -> Instant,
) {
    if retry.failing_since.is_some() {
        return;
    }
    if due.is_none() {
        *due = Some(now() + super::BATCH_INTERVAL);
    }
    if pending >= MAX_BATCH {
        *due = Some(Instant::now());
    }
}

fn is_due(due: Option<Instant>, now: Instant, retry: &Retry, attempt: Attempt) -> bool {
    match (due, attempt) {
        (None, _) => false,
        (Some(due), Attempt::OnSchedule) => now >= due,
        (Some(_), attempt) => retry.may_try(now, attempt),
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    database: Database,
    transcript: TranscriptSink,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        transcript: Transcript,
        backlog: Arc<AtomicUsize>,
        spill: Spill,
    ) -> Self {
        Writer {
            database: Database {
                conn,
                pending: Vec::new(),
                spill,
                spill_failed: false,
                due: None,
                retry: Retry::new("database"),
                backlog,
            },
            transcript: TranscriptSink {
                transcript,
                pending: Vec::new(),
                lines: 0,
                due: None,
                retry: Retry::new("transcript"),
            },
        }
    }

    /// Serves requests until asked to close, then keeps trying for at most
    /// `grace`; returns the events the database never took, and the spill that
    /// holds the first of them.
    pub(super) fn run(
        mut self,
        requests: mpsc::Receiver<Request>,
        grace: Duration,
    ) -> (Vec<Event>, Spill) {
        'serve: loop {
            let request = match self.next_due() {
                None => requests
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(due) => {
                    let wait = due.saturating_duration_since(Instant::now());
                    if wait <= super::BATCH_INTERVAL {
                        // A batch is gathering: sleep through the rest of it and
                        // take everything at once. A writer blocked in `recv` is
                        // woken by every event, a system call on the chat's thread.
                        std::thread::sleep(wait);
                        loop {
                            match requests.try_recv() {
                                Ok(Request::Close) | Err(mpsc::TryRecvError::Disconnected) => {
                                    break 'serve
                                }
                                Ok(request) => self.handle(request),
                                Err(mpsc::TryRecvError::Empty) => break,
                            }
                        }
                        self.write(Instant::now(), Attempt::OnSchedule);
                        continue;
                    }
                    requests.recv_timeout(wait)
                }
            };
            match request {
                Ok(Request::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(request) => self.handle(request),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            self.write(Instant::now(), Attempt::OnSchedule);
        }
        self.finish(grace)
    }

    fn next_due(&self) -> Option<Instant> {
        match (self.database.due, self.transcript.due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn write(&mut self, now: Instant, attempt: Attempt) {
        self.database.write(now, attempt);
        self.database.spill();
        self.transcript.write(now, attempt);
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Close => {}
            Request::Record(event) => {
                let mut now = None;
                let mut clock = || *now.get_or_insert_with(Instant::now);
                self.transcript.push(&event, &mut clock);
                self.database.push(event, &mut clock);
            }
            Request::Expire { cutoff_ms } => self.expire(cutoff_ms),
            Request::RewriteTranscripts(erased) => self.rewrite_transcripts(&erased),
        }
    }

    /// Retention on this thread: the chat's runtime never waits for the delete,
    /// and no append races a file's removal.
    fn expire(&mut self, cutoff_ms: i64) {
        match super::sqlite::expire_before(&self.database.conn, cutoff_ms) {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted events past storage.retention_days"),
            Err(err) => {
                tracing::warn!(%err, "cannot delete events past storage.retention_days; trying again tomorrow")
            }
        }
        crate::transcript::expire_transcripts(self.transcript.transcript.dir(), cutoff_ms);
    }

    /// Erasure on this thread, which alone appends to the transcript: lines still
    /// waiting to be written are rewritten too, then every file in place (the
    /// appender keeps its file open, so a file is never replaced, only rewritten).
    fn rewrite_transcripts(&mut self, erased: &[Event]) {
        use crate::student_data::rewrite::Rewrites;
        let rewrites = Rewrites::of(erased);
        if rewrites.is_empty() {
            return;
        }
        let pending = String::from_utf8_lossy(&self.transcript.pending).into_owned();
        let (pending, _) = rewrites.apply(&pending);
        self.transcript.pending = pending.into_bytes();
        match rewrites.rewrite_dir(self.transcript.transcript.dir()) {
            Ok(files) => {
                let lines: usize = files.iter().map(|(_, n)| n).sum();
                tracing::info!(
                    files = files.len(),
                    lines,
                    "erased words removed from the transcript files"
                );
            }
            Err(err) => tracing::error!(%err, "cannot rewrite the transcript files after an erase"),
        }
    }

    fn finish(mut self, grace: Duration) -> (Vec<Event>, Spill) {
        let give_up = Instant::now() + grace;
        let mut attempt = Attempt::Closing;
        loop {
            self.write(Instant::now(), attempt);
            if attempt == Attempt::Last {
                break;
            }
            let Some(next) = self.next_due() else { break };
            if next >= give_up {
                attempt = Attempt::Last;
            }
            std::thread::sleep(next.min(give_up).saturating_duration_since(Instant::now()));
        }
        if self.transcript.lines > 0 {
            tracing::error!(
                lines = self.transcript.lines,
                "transcript lines could not be written before the server stopped; \
                 the database has them for `chat-server transcript`"
            );
        }
        (self.database.pending, self.database.spill)
    }
}
