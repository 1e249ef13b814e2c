//! Cluster mode (SPEC section 9): several `chat-server` nodes behind a TCP load
//! balancer behave as one server, on NATS JetStream and PostgreSQL.
//!
//! Every node keeps a whole copy of the [`Hub`] and changes it only by applying
//! the actions in one JetStream stream, in the stream's order (see
//! [`action`]). What a member does is published
//! ([`relay`]), comes back to every node (`follow`) and is applied there; each
//! node delivers the resulting lines to the members connected to it. So every
//! member of a room sees its lines in one order, a name is taken by whichever
//! claim the stream stored first, and `/who`, `/rooms`, `/msg`, history and
//! moderation work across nodes with no protocol of our own: the stream's order is
//! the only agreement there is. A node that dies is noticed by the others
//! ([`liveness`]); the record is written to PostgreSQL from the same stream by
//! one node at a time, the holder of a lease ([`record`], [`lease`]).
//!
//! A starting node loads the newest [`snapshot`] of the hub and replays the
//! stream from the action after it, then accepts clients; the writer of the
//! record saves a snapshot every `cluster.snapshot_every` actions and trims the
//! stream below the snapshots PostgreSQL covers, so a start takes about as long
//! whatever the term's length (docs/PERFORMANCE.md).

mod actions;
pub mod counters;
pub mod lease;
pub mod liveness;
pub mod record;
pub mod relay;
pub mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::event::{Event, EventSink};
use crate::hub::{ConnId, History, Hub, Settings};
use crate::store::postgres;
use crate::switchboard::{action, Action, Entry, Switchboard};
use actions::Actions;

/// The stream every node publishes its actions to.
pub const STREAM: &str = "CLASSCHAT";
/// Its one subject: one subject, one order.
pub const SUBJECT: &str = "classchat.actions";
/// Where nodes say they are alive (plain NATS, not stored).
pub const ALIVE: &str = "classchat.alive";

/// How long a publish waits for JetStream to store it before the member is told
/// it could not be delivered.
const ACK_WAIT: Duration = Duration::from_secs(3);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS could not be reached.
    #[error("cannot reach NATS at {url}: {reason}")]
    Nats {
        /// `cluster.nats_url`.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The PostgreSQL database records an earlier stream.
    #[error("{0}")]
    OtherStream(String),
    /// NATS answered, but JetStream did not do what was asked.
    #[error("JetStream at {url}: {reason} (is nats-server running with -js?)")]
    JetStream {
        /// `cluster.nats_url`.
        url: String,
        /// What the server said.
        reason: String,
    },
}

/// A running node: its switchboard and the tasks that connect it to the others.
pub struct Node {
    /// The switchboard the front ends use.
    pub board: Arc<Switchboard>,
    /// This node's number.
    pub number: u64,
    stop: CancellationToken,
    /// Publishes; ends by itself once the switchboard is dropped.
    outbound: JoinHandle<()>,
    /// Follow the stream and watch the other nodes; end when `stop` is cancelled.
    followers: Vec<JoinHandle<()>>,
    record: record::Recorder,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The last stream sequence applied to the live copy.
    applied: watch::Receiver<u64>,
}

/// Events are recorded by [`record`], from the stream; the live copy records none.
struct RecordedElsewhere;

impl EventSink for RecordedElsewhere {
    fn record(&self, _: Event) {}
}

impl Node {
    /// Connects to NATS and PostgreSQL, takes a node number, rebuilds the state
    /// from the stream and starts following it.
    pub async fn start(config: &ValidConfig, clock: Clock) -> Result<Node, ClusterError> {
        // Errors are printed and logged: no password in them.
        let shown = without_credentials(&config.cluster.nats_url);
        let nats_error = |err: &dyn std::fmt::Display| ClusterError::Nats {
            url: shown.clone(),
            reason: err.to_string(),
        };
        let js_error = |err: &dyn std::fmt::Display| ClusterError::JetStream {
            url: shown.clone(),
            reason: err.to_string(),
        };
        // Bumped at every (re)connection: a consumer does not always survive a
        // restarted server, so the followers make theirs again then.
        let (connected, reconnected) = watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .name("classchat")
            .event_callback(move |event| {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("connected to NATS");
                        connected.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost NATS; chat is refused until it is back");
                    }
                    _ => {}
                }
                std::future::ready(())
            })
            .connection_timeout(Duration::from_secs(5))
            // Back within a second of NATS coming back, never hammering it.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100 * attempts.min(10) as u64)
            })
            .connect(&config.cluster.nats_url)
            .await
            .map_err(|e| nats_error(&e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(ACK_WAIT)
            .build(client.clone());
        let stream = open_stream(&js).await.map_err(|e| js_error(&e))?;
        // Refused at once where it can be told; with PostgreSQL down, the recorder
        // checks when it comes back.
        let id = stream_id(&stream);
        let checked = tokio::time::timeout(ACK_WAIT, async {
            let client = postgres::connect(&config.storage.postgres_url).await?;
            check_record(&client, &id).await
        });
        if let Ok(Err(RecordError::OtherStream)) = checked.await {
            let mismatch = RecordError::OtherStream.to_string();
            return Err(ClusterError::OtherStream(mismatch));
        }
        let started = Entry {
            at: clock.now_ms(),
            node: 0,
            action: Action::NodeStarted {
                settings: Settings::from_config(config).fingerprint(),
            },
        };
        let payload = serde_json::to_vec(&started).expect("an entry serializes");
        let number = js
            .publish(SUBJECT, payload.into())
            .await
            .map_err(|e| js_error(&e))?
            .await
            .map_err(|e| js_error(&e))?
            .sequence;

        let settings = Settings::from_config(config);
        let snapshots = snapshot::Snapshots::new(js.clone(), id.clone());
        let (from, hub) = match snapshots.load(None, &settings).await {
            Some((seq, hub)) => {
                tracing::info!(
                    seq,
                    "loaded the newest snapshot; replaying the stream after it"
                );
                (seq, hub)
            }
            None => {
                // Replaying a trimmed stream from its first action left would
                // give a state that never was.
                match snapshot::trimmed(&stream).await {
                    Ok(None) => {}
                    Ok(Some(first)) => {
                        return Err(js_error(&format!(
                            "the stream {STREAM} begins at action {first}, and no snapshot of \
                             the chat (object store {}) loads to begin from",
                            snapshot::BUCKET
                        )))
                    }
                    Err(err) => return Err(js_error(&err)),
                }
                let history = History::new(config.history.replay_lines);
                (0, Hub::new(settings.clone(), history))
            }
        };
        let duty = Arc::new(snapshot::Duty::default());
        let saving = snapshot::Saving::start(
            snapshots.clone(),
            stream.clone(),
            duty.clone(),
            config.cluster.snapshot_every,
            from,
            settings.fingerprint(),
        );
        let (publisher, outbound) = relay::channel(client.clone(), js.clone(), number);
        let board = Arc::new(Switchboard::node(
            hub,
            RecordedElsewhere,
            clock.clone(),
            number,
            publisher,
        ));
        let stop = CancellationToken::new();
        // From the snapshot's place: one saved after this node's own start
        // action already covers it.
        let (caught_up, mut ready) = watch::channel(from);
        let outbound = tokio::spawn(outbound.run(Arc::downgrade(&board)));
        let mut followers = vec![tokio::spawn(follow(
            Actions::new(stream.clone(), reconnected.clone(), from + 1),
            board.clone(),
            caught_up,
            saving,
            stop.clone(),
        ))];
        let record = record::Recorder::start(
            lease::Lease::new(js.clone(), number),
            record::Turns {
                stream,
                reconnected,
                url: config.storage.postgres_url.clone(),
                settings,
                replay_lines: config.history.replay_lines,
                clock,
                node: number,
                snapshots,
                duty,
            },
        );
        // Clients come in once this node knows everything up to its own start;
        // until then its idea of who is connected where is history, and no node
        // is declared gone on it.
        let _ = ready.wait_for(|seq| *seq >= number).await;
        board.caught_up();
        followers.push(tokio::spawn(liveness::watch(
            client.clone(),
            board.clone(),
            number,
            stop.clone(),
        )));
        tracing::info!(node = number, "joined the cluster");
        Ok(Node {
            board,
            number,
            stop,
            outbound,
            followers,
            record,
            client,
            js,
            applied: ready,
        })
    }

    /// The last stream sequence this node's copy of the hub has applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Shares the limits per address of `cx` with the other nodes until `stop`
    /// (see [`counters`]).
    pub fn share_counters(
        &self,
        cx: &crate::front::Context,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        counters::share(
            self.client.clone(),
            self.js.clone(),
            self.number,
            cx.connects.clone(),
            cx.codes.clone(),
            stop,
        )
    }

    /// The first connection id this node hands out.
    pub fn first_id(&self) -> ConnId {
        action::first_id(self.number)
    }

    /// Stops following the stream, publishes what is still queued and stores what
    /// is still unacknowledged (within `grace`), and, if this node writes the
    /// record, writes what it has read and hands the lease on.
    pub async fn close(self, grace: Duration) {
        let Node {
            board,
            stop,
            outbound,
            followers,
            record,
            ..
        } = self;
        stop.cancel();
        for task in followers {
            let _ = task.await;
        }
        // The publisher lives in the switchboard; without it, the outbound task
        // ends once everything it holds is stored.
        drop(board);
        if tokio::time::timeout(grace, outbound).await.is_err() {
            tracing::warn!("some departures were not published before the node stopped");
        }
        record.close(grace).await;
    }
}

/// What tells this stream from one of the same name made after it was deleted:
/// its creation time.
fn stream_id(stream: &stream::Stream) -> String {
    stream
        .cached_info()
        .created
        .unix_timestamp_nanos()
        .to_string()
}

/// Why the record cannot be written.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "the PostgreSQL database (storage.postgres_url) records an earlier JetStream stream \
         {STREAM}, since deleted and made anew; the new one's actions would be taken for ones \
         already written: give the nodes a new database for the new stream"
    )]
    OtherStream,
}

/// Creates the tables if need be and checks that the database records `stream`
/// (see [`postgres::claim_stream`]).
async fn check_record(client: &tokio_postgres::Client, stream: &str) -> Result<(), RecordError> {
    postgres::migrate(client).await?;
    let recorded = postgres::claim_stream(client, STREAM, stream).await?;
    match recorded == stream {
        true => Ok(()),
        false => Err(RecordError::OtherStream),
    }
}

/// The stream, created by whichever node comes first.
async fn open_stream(js: &jetstream::Context) -> Result<stream::Stream, async_nats::Error> {
    let config = stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    // Two nodes starting together may both try to create it; the second one's
    // attempt then finds it.
    match js.get_or_create_stream(config.clone()).await {
        Ok(stream) => Ok(stream),
        Err(_) => Ok(js.get_or_create_stream(config).await?),
    }
}

/// Applies the stream's actions to `board` in order, for as long as the node
/// runs; `caught_up` holds the last sequence applied.
async fn follow(
    mut actions: Actions,
    board: Arc<Switchboard>,
    caught_up: watch::Sender<u64>,
    mut saving: snapshot::Saving,
    stop: CancellationToken,
) {
    loop {
        let (seq, entry) = tokio::select! {
            _ = stop.cancelled() => return,
            next = actions.next() => next,
        };
        board.replay(entry);
        saving.after(seq, &board);
        caught_up.send_replace(seq);
    }
}

/// A URL as it may be printed: `nats://user:secret@host` becomes `nats://host`.
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn printed_urls_carry_no_password() {
        assert_eq!(
            without_credentials("nats://node:s3cret@10.0.0.5:4222"),
            "nats://10.0.0.5:4222"
        );
        assert_eq!(
            without_credentials("nats://10.0.0.5:4222"),
            "nats://10.0.0.5:4222"
        );
        assert_eq!(without_credentials("10.0.0.5:4222"), "10.0.0.5:4222");
    }
}
