//! The record of a cluster: one node at a time, the holder of the writer's
//! [`lease`](super::lease), reads the stream with a copy of the hub of its own, at
//! PostgreSQL's pace, and writes the events each action produced, keyed by the
//! action's stream sequence and their place among its events.
//!
//! The key makes the table exactly-once whatever happens: a writer that restarts,
//! has a batch delivered twice, or overlaps for a moment with the next one (a
//! lease is a hint, not a lock) writes rows that are already there, and they are
//! left alone (`ON CONFLICT DO NOTHING`). The writer writes in sequence order, a
//! batch per transaction, so the highest `seq` in the table is a point below which
//! nothing is missing. A node that takes the lease over rebuilds its hub from the
//! newest [`snapshot`](super::snapshot) at or below that point (or the stream's
//! start), replays the stream from there without writing up to that point, and
//! writes what follows it: nothing lost, nothing twice.
//! The other nodes do not read the stream for the record at all. While PostgreSQL
//! is unreachable the writer stops reading and keeps its lease; the actions wait
//! in JetStream, and chat goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::stream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::event::{Event, EventSink};
use crate::hub::{History, Hub, Settings};
use crate::store::postgres;
use crate::switchboard::Switchboard;

use super::actions::Actions;
use super::lease::Lease;

/// The writer's `application_name` in PostgreSQL, followed by its node number.
pub const WRITER: &str = "classchat record writer";

/// Rows per transaction, at most.
const BATCH: usize = 2_000;

/// How long a partial batch waits for more before it is written, at most.
const FLUSH_AFTER: Duration = Duration::from_millis(50);

/// The longest wait between attempts to reach PostgreSQL.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The events the recorder's hub produced for the action being applied.
#[derive(Default, Clone)]
struct Collected(Arc<Mutex<Vec<Event>>>);

impl Collected {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for Collected {
    fn record(&self, event: Event) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }
}

/// The recording task of one node: waits for the lease, writes while it holds it.
pub struct Recorder {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What a turn at writing starts from: a hub of its own, from a snapshot (or
/// new), and the stream after it.
pub struct Turns {
    /// The stream recorded.
    pub stream: stream::Stream,
    /// Bumped at every (re)connection to NATS.
    pub reconnected: watch::Receiver<u64>,
    /// `storage.postgres_url`.
    pub url: String,
    /// The hub's settings.
    pub settings: Settings,
    /// `history.replay_lines`.
    pub replay_lines: usize,
    /// The server's clock.
    pub clock: Clock,
    /// This node's number, shown in PostgreSQL as the writer's.
    pub node: u64,
    /// Where a turn finds the state to start from.
    pub snapshots: super::snapshot::Snapshots,
    /// Told whether this node writes, and how far.
    pub duty: Arc<super::snapshot::Duty>,
}

impl Recorder {
    /// Takes turns at writing the record with the other nodes, through `lease`.
    pub fn start(lease: Lease, turns: Turns) -> Recorder {
        let stop = CancellationToken::new();
        let task = tokio::spawn(take_turns(lease, turns, stop.clone()));
        Recorder { stop, task }
    }

    /// Writes what has been read, trying for at most `grace`, and gives the lease
    /// up; anything not written stays in the stream for the next writer.
    pub async fn close(self, grace: Duration) {
        let Recorder { stop, mut task } = self;
        stop.cancel();
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Waits for the lease, writes while it holds it, and waits again if it loses it,
/// until `stop`.
async fn take_turns(mut lease: Lease, turns: Turns, stop: CancellationToken) {
    loop {
        let Some(mut held) = lease.acquire(&stop).await else {
            return;
        };
        tracing::info!(node = turns.node, "this node writes the record");
        turns.duty.hold(true);
        tokio::select! {
            // Ends only once stopped, after the last flush.
            _ = turns.write(stop.clone()) => {
                turns.duty.hold(false);
                held.release().await;
                return;
            }
            _ = held.keep() => {
                turns.duty.hold(false);
                tracing::warn!("this node lost the record's lease; another node writes the record");
            }
        }
    }
}

impl Turns {
    /// One turn: the hub of the newest snapshot at or below PostgreSQL's last
    /// row (or a new hub and the stream from its start), the stream after it,
    /// and rows for what PostgreSQL does not hold yet; until `stop`.
    async fn write(&self, stop: CancellationToken) {
        let mut writer = Writer {
            stream: super::stream_id(&self.stream),
            url: self.url.clone(),
            node: self.node,
            client: None,
            written: 0,
            batch: Vec::new(),
            stop,
            duty: self.duty.clone(),
        };
        if !writer.connect().await {
            return;
        }
        let (from, hub) = loop {
            if let Some(loaded) = self
                .snapshots
                .load(Some(writer.written), &self.settings)
                .await
            {
                break loaded;
            }
            // A trimmed stream replayed without its snapshot would give events
            // of a state that never was: better to write nothing until one loads.
            match super::snapshot::trimmed(&self.stream).await {
                Ok(None) => {
                    let history = History::new(self.replay_lines);
                    break (0, Hub::new(self.settings.clone(), history));
                }
                Ok(Some(first)) => tracing::error!(
                    first,
                    recorded = writer.written,
                    "the stream was trimmed and no snapshot at or below PostgreSQL's last row \
                     loads; the record waits"
                ),
                Err(err) => tracing::warn!(%err, "cannot read the stream's bounds yet"),
            }
            tokio::select! {
                _ = writer.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        };
        tracing::info!(
            from = from + 1,
            recorded = writer.written,
            "the record's copy of the chat replays the stream"
        );
        let collected = Collected::default();
        let board = Switchboard::recorder(hub, collected.clone(), self.clock.clone());
        let actions = Actions::new(self.stream.clone(), self.reconnected.clone(), from + 1);
        record(actions, board, collected, writer).await;
    }
}

async fn record(
    mut actions: Actions,
    board: Switchboard,
    collected: Collected,
    mut writer: Writer,
) {
    // When the partial batch is written even if actions keep coming: counted from
    // its first row, not from the last action, or steady chat would hold it until
    // it filled.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let (seq, entry) = tokio::select! {
            _ = writer.stop.cancelled() => return writer.finish().await,
            next = actions.next() => next,
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                writer.flush().await;
                due = None;
                continue;
            }
        };
        board.replay(entry);
        let events = collected.take();
        if seq > writer.written {
            let rows = events.into_iter().enumerate();
            writer
                .batch
                .extend(rows.map(|(idx, event)| (seq, idx as u32, event)));
        }
        if writer.batch.len() >= BATCH {
            writer.flush().await;
            due = None;
        } else if due.is_none() && !writer.batch.is_empty() {
            due = Some(tokio::time::Instant::now() + FLUSH_AFTER);
        }
    }
}

/// The PostgreSQL end: a connection made again whenever it fails.
struct Writer {
    /// The creation time of the stream recorded (see [`postgres::claim_stream`]).
    stream: String,
    url: String,
    /// This node's number, for PostgreSQL's list of connections.
    node: u64,
    client: Option<tokio_postgres::Client>,
    /// The highest sequence known to be in the table.
    written: u64,
    batch: Vec<(u64, u32, Event)>,
    stop: CancellationToken,
    /// Told how far the table is, for the stream to be trimmed no further.
    duty: Arc<super::snapshot::Duty>,
}

impl Writer {
    /// Connects, creates the tables if need be and reads how far the table is;
    /// retries until it works. `false`: stopped first.
    async fn connect(&mut self) -> bool {
        let mut wait = Duration::from_millis(50);
        let mut reported = false;
        loop {
            match self.try_connect().await {
                Ok(()) => {
                    if reported {
                        tracing::info!("PostgreSQL reachable again; writing the record");
                    }
                    return true;
                }
                Err(err @ super::RecordError::OtherStream) if !reported => {
                    tracing::error!("{err}");
                    reported = true;
                }
                Err(err) if !reported => {
                    tracing::warn!(%err, "cannot write the record to PostgreSQL; the events wait in JetStream");
                    reported = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(wait) => wait = (wait * 2).min(MAX_BACKOFF),
            }
        }
    }

    async fn try_connect(&mut self) -> Result<(), super::RecordError> {
        let client = postgres::connect(&self.url).await?;
        // An operator (or a test) sees in `pg_stat_activity` which node writes.
        let name = format!("SET application_name = '{WRITER} {}'", self.node);
        client.batch_execute(&name).await?;
        super::check_record(&client, &self.stream).await?;
        self.written = self.written.max(postgres::watermark(&client).await?);
        self.duty.recorded(self.written);
        self.client = Some(client);
        Ok(())
    }

    /// Writes the batch, reconnecting until it is written; gives up only when the
    /// node stops (the events are still in the stream).
    async fn flush(&mut self) {
        while !self.batch.is_empty() {
            if let Some(client) = self.client.as_mut() {
                match postgres::insert_events(client, &self.batch).await {
                    Ok(()) => {
                        self.written = self.batch.last().map_or(self.written, |row| row.0);
                        self.duty.recorded(self.written);
                        self.batch.clear();
                        return;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "writing the record failed");
                        self.client = None;
                    }
                }
            }
            if !self.connect().await {
                return;
            }
            // Another node may have written some of the batch meanwhile.
            let written = self.written;
            self.batch.retain(|row| row.0 > written);
        }
    }

    async fn finish(mut self) {
        self.flush().await;
    }
}
