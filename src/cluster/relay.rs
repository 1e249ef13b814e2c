//! The way out to the stream: one task per node publishes its actions in the order
//! its members made them, several in flight at once, and checks every
//! acknowledgement.
//!
//! Each action carries a `Nats-Msg-Id` (node number and a counter), so a publish
//! retried after a lost acknowledgement is stored once. A departure that cannot be
//! published is retried until it is; anything else that fails is refused to the
//! member who sent it (`! Messages cannot be delivered right now; ...`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

use crate::switchboard::{Entry, Relay, Switchboard};

use super::SUBJECT;

/// Actions published but not yet acknowledged, at most.
const IN_FLIGHT: usize = 256;

/// Actions waiting to be published past which members' requests are refused
/// (departures are always kept).
const MAX_WAITING: usize = 10_000;

/// How long a departure waits before it is published again.
const RETRY: Duration = Duration::from_millis(500);

/// The [`Relay`] a node's switchboard sends through.
pub struct Publisher {
    client: async_nats::Client,
    queue: mpsc::UnboundedSender<Entry>,
    waiting: Arc<AtomicUsize>,
}

/// The publishing task's end of the queue, started by [`Outbound::run`] once the
/// switchboard it reports to exists.
pub struct Outbound {
    queue: mpsc::UnboundedReceiver<Entry>,
    waiting: Arc<AtomicUsize>,
    js: jetstream::Context,
    node: u64,
}

/// A publisher for node `node` and the task that empties its queue.
pub fn channel(
    client: async_nats::Client,
    js: jetstream::Context,
    node: u64,
) -> (Publisher, Outbound) {
    let (tx, rx) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    let publisher = Publisher {
        client,
        queue: tx,
        waiting: waiting.clone(),
    };
    let outbound = Outbound {
        queue: rx,
        waiting,
        js,
        node,
    };
    (publisher, outbound)
}

impl Relay for Publisher {
    fn is_up(&self) -> bool {
        self.client.connection_state() == State::Connected
            && self.waiting.load(Ordering::Relaxed) < MAX_WAITING
    }

    fn send(&self, entry: Entry) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // The receiver lives as long as the node; after it, nothing is sent anyway.
        let _ = self.queue.send(entry);
    }
}

impl Outbound {
    /// Publishes until the switchboard (holding the [`Publisher`]) is gone and
    /// everything queued is acknowledged or handed to a retry. Refusals go to
    /// `board`, held weakly so that dropping it ends this task.
    pub async fn run(mut self, board: Weak<Switchboard>) {
        let mut counter: u64 = 0;
        let mut acks = FuturesOrdered::new();
        let mut open = true;
        while open || !acks.is_empty() {
            tokio::select! {
                entry = self.queue.recv(), if open && acks.len() < IN_FLIGHT => {
                    let Some(entry) = entry else {
                        open = false;
                        continue;
                    };
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    counter += 1;
                    let id = format!("{}-{counter}", self.node);
                    // Sent here, one after another, so the stream keeps this
                    // node's order; only the acknowledgements are awaited together.
                    match send(&self.js, &entry, &id).await {
                        Ok(ack) => acks.push_back(async move {
                            let stored = ack.await.is_ok();
                            (entry, id, stored)
                        }),
                        Err(_) => failed(&self.js, entry, id, &board),
                    }
                }
                Some((entry, id, stored)) = acks.next() => {
                    if !stored {
                        failed(&self.js, entry, id, &board);
                    }
                }
            }
        }
    }
}

/// A departure is published again until it is stored; anything else is refused
/// to the member who sent it.
fn failed(js: &jetstream::Context, entry: Entry, id: String, board: &Weak<Switchboard>) {
    if entry.action.is_departure() {
        tokio::spawn(publish_until_stored(js.clone(), entry, id));
    } else if let Some(board) = board.upgrade() {
        board.undelivered(&entry);
    }
}

/// Hands one entry to the NATS client; the future it returns resolves when
/// JetStream has stored it.
async fn send(
    js: &jetstream::Context,
    entry: &Entry,
    id: &str,
) -> Result<PublishAckFuture, async_nats::Error> {
    let payload = serde_json::to_vec(entry)?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(id);
    Ok(js.send_publish(SUBJECT, message).await?)
}

async fn publish(
    js: &jetstream::Context,
    entry: &Entry,
    id: &str,
) -> Result<(), async_nats::Error> {
    send(js, entry, id).await?.await?;
    Ok(())
}

async fn publish_until_stored(js: jetstream::Context, entry: Entry, id: String) {
    loop {
        tokio::time::sleep(RETRY).await;
        match publish(&js, &entry, &id).await {
            Ok(()) => return,
            Err(err) => tracing::debug!(%err, "departure not published yet; retrying"),
        }
    }
}
