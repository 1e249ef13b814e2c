//! Snapshots of the hub, so that a starting node does not replay the stream from
//! its first action (SPEC section 9, "Bounded start").
//!
//! The node that writes the record (the holder of the [`lease`](super::lease))
//! also saves its live copy of the hub every `cluster.snapshot_every` actions, as
//! one object of a JetStream object store ([`BUCKET`]), named after the stream
//! and the last sequence it covers. The state is copied under the switchboard's
//! lock (a clone, microseconds for a class) and serialized and stored by a task
//! of its own, so the stream is followed meanwhile. A node that starts loads the
//! newest snapshot and reads the stream from the sequence after it; a recorder
//! that takes the lease over loads the newest one at or below what PostgreSQL
//! holds, so that it replays, without writing, only the few actions between the
//! snapshot and PostgreSQL's last row, and writes every one after.
//!
//! After each snapshot the stream is trimmed: below the older of the two newest
//! snapshots that PostgreSQL covers (the only one, if one does), and the older
//! snapshots are deleted. So the record never loses an action it has not written,
//! a recorder always finds a snapshot at or below its watermark with the stream
//! after it, and a node that began from the newest snapshot a moment before a
//! newer one was saved still finds every action it needs. While PostgreSQL is
//! down nothing after its last row is trimmed; snapshots go on, so nodes still
//! start quickly.
//!
//! Snapshots live next to the stream, in NATS, so that a node starts while
//! PostgreSQL is down as before. They hold the rooms' history tails: an `erase`
//! reaches them as the snapshots are replaced (the live copy forgets erased lines),
//! and every node forgets the erased lines again when it starts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, object_store::ObjectStore, stream};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::hub::{Hub, Saved, Settings};

/// The object store bucket.
pub const BUCKET: &str = "CLASSCHAT_SNAPSHOTS";

/// How long one store operation may take before it is given up on (the next
/// snapshot tries again).
const WITHIN: Duration = Duration::from_secs(30);

/// One snapshot as stored.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The stream it belongs to (see [`super::stream_id`]).
    stream: String,
    /// The last stream sequence applied to it.
    seq: u64,
    /// The settings fingerprint of the hub that saved it.
    settings: u64,
    /// The state.
    hub: Saved,
}

/// What the recorder of this node tells its snapshots: whether it holds the
/// lease (only the writer saves), and how far PostgreSQL holds the record.
#[derive(Default)]
pub struct Duty {
    holding: AtomicBool,
    recorded: AtomicU64,
}

impl Duty {
    /// This node writes the record (`true`) or no longer does.
    pub fn hold(&self, holding: bool) {
        self.holding.store(holding, Ordering::Relaxed);
    }

    /// Everything up to `seq` is in PostgreSQL.
    pub fn recorded(&self, seq: u64) {
        self.recorded.fetch_max(seq, Ordering::Relaxed);
    }

    fn holds(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }
}

/// The snapshots of one stream.
#[derive(Clone)]
pub struct Snapshots {
    js: jetstream::Context,
    /// The stream's creation time: snapshots of an older stream of the same name
    /// are never loaded.
    stream: String,
}

impl Snapshots {
    /// The snapshots of the stream whose id is `stream`.
    pub fn new(js: jetstream::Context, stream: String) -> Snapshots {
        Snapshots { js, stream }
    }

    /// The bucket, made by whichever node comes first.
    async fn bucket(&self) -> Result<Bucket, async_nats::Error> {
        Bucket::open(&self.js).await
    }

    fn name(&self, seq: u64) -> String {
        format!("{}-{seq:020}", self.stream)
    }

    /// Every object's name, and the sequences of this stream's snapshots,
    /// ascending.
    async fn list(&self, bucket: &Bucket) -> Result<(Vec<String>, Vec<u64>), async_nats::Error> {
        let names = bucket.names().await?;
        let prefix = format!("{}-", self.stream);
        let mut seqs: Vec<u64> = names
            .iter()
            .filter_map(|name| name.strip_prefix(&prefix)?.parse().ok())
            .collect();
        seqs.sort_unstable();
        Ok((names, seqs))
    }

    /// The newest snapshot (at most `at_most`, if given) as a hub under
    /// `settings`, and the sequence it covers; `None` when there is none that
    /// loads, and the stream must be read from its start (if it was not
    /// trimmed: see [`trimmed`]).
    pub async fn load(&self, at_most: Option<u64>, settings: &Settings) -> Option<(u64, Hub)> {
        let loaded = tokio::time::timeout(WITHIN, self.try_load(at_most)).await;
        let (seq, snapshot) = match loaded {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return None,
            Ok(Err(err)) => {
                tracing::warn!(%err, "cannot read the snapshots; beginning without one");
                return None;
            }
            Err(_) => {
                tracing::warn!("the snapshots took too long to read; beginning without one");
                return None;
            }
        };
        if snapshot.settings != settings.fingerprint() {
            tracing::warn!(
                seq,
                "the newest snapshot was saved under other [server], [limits] or [history] \
                 settings; it is used under this node's"
            );
        }
        Some((seq, Hub::restore(settings.clone(), snapshot.hub)))
    }

    async fn try_load(
        &self,
        at_most: Option<u64>,
    ) -> Result<Option<(u64, Snapshot)>, async_nats::Error> {
        let bucket = self.bucket().await?;
        let (_, seqs) = self.list(&bucket).await?;
        for &seq in seqs.iter().rev() {
            if at_most.is_some_and(|most| seq > most) {
                continue;
            }
            let mut bytes = Vec::new();
            let read = async {
                let mut object = bucket.store.get(self.name(seq)).await?;
                object.read_to_end(&mut bytes).await?;
                Ok::<_, async_nats::Error>(())
            };
            if let Err(err) = read.await {
                tracing::warn!(seq, %err, "cannot read a snapshot; trying an older one");
                continue;
            }
            let parsed =
                tokio::task::spawn_blocking(move || serde_json::from_slice::<Snapshot>(&bytes))
                    .await?;
            match parsed {
                Ok(snapshot) if snapshot.stream == self.stream && snapshot.seq == seq => {
                    return Ok(Some((seq, snapshot)))
                }
                Ok(_) => tracing::warn!(seq, "a snapshot names another stream; skipped"),
                Err(err) => {
                    tracing::warn!(seq, %err, "a snapshot does not load; trying an older one")
                }
            }
        }
        Ok(None)
    }

    /// Saves `hub` as the state after `seq`.
    async fn save(&self, seq: u64, settings: u64, hub: Saved) -> Result<(), async_nats::Error> {
        let snapshot = Snapshot {
            stream: self.stream.clone(),
            seq,
            settings,
            hub,
        };
        let bytes = tokio::task::spawn_blocking(move || serde_json::to_vec(&snapshot)).await??;
        let bucket = self.bucket().await?;
        bucket
            .store
            .put(self.name(seq).as_str(), &mut bytes.as_slice())
            .await?;
        tracing::info!(seq, bytes = bytes.len(), "saved a snapshot of the chat");
        Ok(())
    }

    /// Trims `actions` below the snapshot [`keep_from`] chooses for `recorded`,
    /// and deletes the snapshots before it (and any of another stream).
    async fn trim(&self, actions: &stream::Stream, recorded: u64) -> Result<(), async_nats::Error> {
        let bucket = self.bucket().await?;
        let (names, seqs) = self.list(&bucket).await?;
        let Some(keep) = keep_from(&seqs, recorded) else {
            return Ok(());
        };
        let prefix = format!("{}-", self.stream);
        for name in names {
            let older = match name.strip_prefix(&prefix) {
                Some(seq) => seq.parse::<u64>().is_ok_and(|seq| seq < keep),
                None => true,
            };
            if older {
                bucket.delete(&name).await?;
            }
        }
        let purged = actions.purge().sequence(keep + 1).await?;
        if purged.purged > 0 {
            tracing::info!(
                below = keep + 1,
                purged = purged.purged,
                "trimmed the stream below the oldest snapshot kept"
            );
        }
        Ok(())
    }
}

/// The object store, and the stream behind it.
struct Bucket {
    store: ObjectStore,
    stream: stream::Stream,
}

impl Bucket {
    /// Made as the stream behind it, as [`super::lease`] does, for nats-server
    /// 2.9.
    async fn open(js: &jetstream::Context) -> Result<Bucket, async_nats::Error> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: format!("OBJ_{BUCKET}"),
                subjects: vec![format!("$O.{BUCKET}.C.>"), format!("$O.{BUCKET}.M.>")],
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                allow_direct: true,
                ..Default::default()
            })
            .await?;
        let store = js.get_object_store(BUCKET).await?;
        Ok(Bucket { store, stream })
    }

    /// The subject of `name`'s description (the object store's layout).
    fn meta(name: &str) -> String {
        format!("$O.{BUCKET}.M.{}", URL_SAFE.encode(name))
    }

    /// Every object's name. Read from the stream's subjects rather than with the
    /// object store's list, which can wait for ever when an object is deleted
    /// while it reads; [`Bucket::delete`] leaves no subject behind.
    async fn names(&self) -> Result<Vec<String>, async_nats::Error> {
        let prefix = Bucket::meta("");
        let mut subjects = self.stream.info_with_subjects(format!("{prefix}>")).await?;
        let mut names = Vec::new();
        while let Some((subject, _)) = subjects.try_next().await? {
            let decoded = subject
                .strip_prefix(&prefix)
                .and_then(|encoded| URL_SAFE.decode(encoded).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            names.extend(decoded);
        }
        Ok(names)
    }

    /// Deletes `name`, its description too.
    async fn delete(&self, name: &str) -> Result<(), async_nats::Error> {
        self.store.delete(name).await?;
        self.stream.purge().filter(Bucket::meta(name)).await?;
        Ok(())
    }
}

/// The sequences of the snapshots in the bucket, of any stream, ascending (for
/// tests and operators).
pub async fn sequences(js: &jetstream::Context) -> Result<Vec<u64>, async_nats::Error> {
    let names = Bucket::open(js).await?.names().await?;
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|name| name.rsplit_once('-')?.1.parse().ok())
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The stream's first sequence if it was trimmed (its first action, a node's
/// start, is never erased: anything else missing there was trimmed), so that
/// the state cannot be rebuilt without a snapshot; `None` if it is whole.
pub async fn trimmed(actions: &stream::Stream) -> Result<Option<u64>, async_nats::Error> {
    let info = tokio::time::timeout(WITHIN, actions.get_info()).await??;
    let state = info.state;
    Ok((state.first_sequence > 1 && state.messages > 0).then_some(state.first_sequence))
}

/// The snapshot below which the stream and older snapshots can go, given the
/// snapshots' sequences (ascending) and PostgreSQL's watermark: the older of the
/// two newest that PostgreSQL covers, or the only one; `None` if it covers none.
pub fn keep_from(seqs: &[u64], recorded: u64) -> Option<u64> {
    let covered: Vec<u64> = seqs.iter().copied().filter(|&s| s <= recorded).collect();
    match covered.len() {
        0 => None,
        1 => Some(covered[0]),
        n => Some(covered[n - 2]),
    }
}

/// A state to be saved: the sequence it follows, the settings' fingerprint and
/// the state.
type Due = (u64, u64, Saved);

/// The live copy's side: decides when a snapshot is due and hands the state to
/// the saving task, never waiting for it.
pub struct Saving {
    every: u64,
    /// The sequence of the last snapshot handed over (or begun from).
    last: u64,
    duty: Arc<Duty>,
    settings: u64,
    /// The state waiting to be saved: one at most, the newest.
    waiting: Arc<Mutex<Option<Due>>>,
    /// Wakes the saving task; full when a wake-up is already pending.
    wake: mpsc::Sender<()>,
}

impl Saving {
    /// Saves at every multiple of `every` after `last` (the sequence of the
    /// snapshot the node began from, or 0), while `duty` says this node writes
    /// the record; the saving task ends when this is dropped.
    pub fn start(
        snapshots: Snapshots,
        actions: stream::Stream,
        duty: Arc<Duty>,
        every: u64,
        last: u64,
        settings: u64,
    ) -> Saving {
        let waiting: Arc<Mutex<Option<Due>>> = Arc::default();
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let task_duty = duty.clone();
        let task_waiting = waiting.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                let due = task_waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                let Some((seq, settings, hub)) = due else {
                    continue;
                };
                let done = async {
                    snapshots.save(seq, settings, hub).await?;
                    let recorded = task_duty.recorded.load(Ordering::Relaxed);
                    snapshots.trim(&actions, recorded).await
                };
                match tokio::time::timeout(WITHIN, done).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::warn!(seq, %err, "a snapshot was not saved"),
                    Err(_) => tracing::warn!(seq, "a snapshot took too long to save"),
                }
            }
        });
        Saving {
            every: every.max(1),
            last,
            duty,
            settings,
            waiting,
            wake,
        }
    }

    /// Called after the live copy applied `seq`: copies the state if a snapshot
    /// is due. Due at each multiple of `every` (or the first action after it
    /// this node applies), whatever the sequence the node began from, so the
    /// newest snapshot is never much more than `every` actions behind the
    /// stream, even after a change of writer.
    pub fn after(&mut self, seq: u64, board: &crate::switchboard::Switchboard) {
        if seq / self.every <= self.last / self.every || !self.duty.holds() {
            return;
        }
        // While the last one is still being saved, this one waits, replacing
        // any older one not begun yet: actions come in bursts, and the last
        // boundary of a burst must be saved even if nothing follows it.
        let due = (seq, self.settings, board.saved());
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(due);
        let _ = self.wake.try_send(());
        self.last = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::keep_from;

    #[test]
    fn the_stream_is_kept_from_a_snapshot_postgresql_covers() {
        assert_eq!(keep_from(&[], 1_000), None);
        // PostgreSQL is behind every snapshot: nothing goes.
        assert_eq!(keep_from(&[100, 200], 99), None);
        assert_eq!(keep_from(&[100, 200], 150), Some(100));
        // The older of the two newest covered, so a node that started from the
        // newer one's predecessor a moment ago still finds its actions.
        assert_eq!(keep_from(&[100, 200, 300], 300), Some(200));
        assert_eq!(keep_from(&[100, 200, 300, 400], 350), Some(200));
    }
}
