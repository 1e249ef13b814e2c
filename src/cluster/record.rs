//! The record of a cluster: every node reads the stream with a copy of the hub of
//! its own, at PostgreSQL's pace, and writes the events each action produced,
//! keyed by the action's stream sequence and their place among its events.
//!
//! The key makes the table exactly-once whatever happens: a node that restarts or
//! has a batch delivered twice writes rows that are already there, and they are
//! left alone (`ON CONFLICT DO NOTHING`). Every node writes everything, in
//! sequence order, a batch per transaction, so the highest `seq` in the table is a
//! point below which nothing is missing: a node resumes writing after it, and the
//! record is complete while any one node runs. While PostgreSQL is unreachable
//! the recorder stops reading; the actions wait in JetStream, and chat goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::event::{Event, EventSink};
use crate::hub::{History, Hub, Settings};
use crate::store::postgres;
use crate::switchboard::Switchboard;

use super::actions::Actions;

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

/// The recording task of one node.
pub struct Recorder {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts recording `stream` into the PostgreSQL database at `url`.
    pub fn start(
        actions: Actions,
        url: String,
        settings: Settings,
        replay_lines: usize,
        clock: Clock,
    ) -> Recorder {
        let collected = Collected::default();
        let hub = Hub::new(settings, History::new(replay_lines));
        let board = Switchboard::recorder(hub, collected.clone(), clock);
        let stop = CancellationToken::new();
        let writer = Writer {
            stream: actions.stream_id(),
            url,
            client: None,
            written: 0,
            batch: Vec::new(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(record(actions, board, collected, writer));
        Recorder { stop, task }
    }

    /// Writes what has been read, trying for at most `grace`; anything not written
    /// stays in the stream for the other nodes or the next start.
    pub async fn close(self, grace: Duration) {
        let Recorder { stop, mut task } = self;
        stop.cancel();
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn record(
    mut actions: Actions,
    board: Switchboard,
    collected: Collected,
    mut writer: Writer,
) {
    if !writer.connect().await {
        return;
    }
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
    client: Option<tokio_postgres::Client>,
    /// The highest sequence known to be in the table.
    written: u64,
    batch: Vec<(u64, u32, Event)>,
    stop: CancellationToken,
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
        super::check_record(&client, &self.stream).await?;
        self.written = self.written.max(postgres::watermark(&client).await?);
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
