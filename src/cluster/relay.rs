//! The way out to the stream: one task per node publishes its actions in the order
//! its members made them, several in flight at once, and checks every
//! acknowledgement.
//!
//! Each action carries a `Nats-Msg-Id` (node number and a counter). A publish whose
//! acknowledgement does not come may still have been stored, so it is never
//! simply refused: it is published again under the same id, which JetStream
//! stores at most once within its duplicate window, until it is acknowledged.
//! Meanwhile nothing after it is sent (so one member's actions keep their order)
//! and the node counts as cut off: new requests are refused with `! Messages
//! cannot be delivered right now; ...`, departures wait their turn. Only an action
//! still unacknowledged after 90 s (`GIVE_UP`) is refused to its member; a log-in given
//! up on is followed by its departure, in case it was stored after all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::switchboard::{Entry, Relay, Switchboard};

use super::SUBJECT;

/// Actions published but not yet acknowledged, at most.
const IN_FLIGHT: usize = 256;

/// Actions waiting to be published past which members' requests are refused
/// (departures are always kept).
const MAX_WAITING: usize = 10_000;

/// How long an unacknowledged action waits before it is published again.
const RETRY: Duration = Duration::from_millis(250);

/// How long an action is published again before it is given up on: well inside
/// the stream's duplicate window (two minutes), so a copy stored meanwhile is
/// still recognized.
const GIVE_UP: Duration = Duration::from_secs(90);

/// The [`Relay`] a node's switchboard sends through.
pub struct Publisher {
    client: async_nats::Client,
    queue: mpsc::UnboundedSender<Entry>,
    waiting: Arc<AtomicUsize>,
    /// An action is being published again: the stream is out of reach, whatever
    /// the client's connection state says.
    stalled: Arc<AtomicBool>,
}

/// The publishing task's end of the queue, started by [`Outbound::run`] once the
/// switchboard it reports to exists.
pub struct Outbound {
    queue: mpsc::UnboundedReceiver<Entry>,
    waiting: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
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
    let stalled = Arc::new(AtomicBool::new(false));
    let publisher = Publisher {
        client,
        queue: tx,
        waiting: waiting.clone(),
        stalled: stalled.clone(),
    };
    let outbound = Outbound {
        queue: rx,
        waiting,
        stalled,
        js,
        node,
    };
    (publisher, outbound)
}

impl Relay for Publisher {
    fn is_up(&self) -> bool {
        self.client.connection_state() == State::Connected
            && !self.stalled.load(Ordering::Relaxed)
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
    /// everything queued is stored or given up on. Refusals go to `board`, held
    /// weakly so that dropping it ends this task.
    pub async fn run(mut self, board: Weak<Switchboard>) {
        let mut counter: u64 = 0;
        let mut acks = FuturesOrdered::new();
        // Unacknowledged actions, in order, with when they were first sent.
        let mut again: VecDeque<(Entry, String, Instant)> = VecDeque::new();
        let mut open = true;
        while open || !acks.is_empty() || !again.is_empty() {
            if acks.is_empty() && !again.is_empty() {
                self.publish_again(&mut again, &board).await;
                continue;
            }
            tokio::select! {
                entry = self.queue.recv(), if open && again.is_empty() && acks.len() < IN_FLIGHT => {
                    let Some(entry) = entry else {
                        open = false;
                        continue;
                    };
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    counter += 1;
                    let id = format!("{}-{counter}", self.node);
                    // Sent here, one after another, so the stream keeps this
                    // node's order; only the acknowledgements are awaited together.
                    let sent = send(&self.js, &entry, &id).await;
                    acks.push_back(async move {
                        let stored = match sent {
                            Ok(ack) => ack.await.is_ok(),
                            Err(_) => false,
                        };
                        (entry, id, stored)
                    });
                }
                Some((entry, id, stored)) = acks.next() => {
                    if !stored {
                        self.stalled.store(true, Ordering::Relaxed);
                        again.push_back((entry, id, Instant::now()));
                    }
                }
            }
        }
    }

    /// Publishes the first unacknowledged action again, until it is stored or
    /// given up on; the node is no longer cut off once none is left.
    async fn publish_again(
        &self,
        again: &mut VecDeque<(Entry, String, Instant)>,
        board: &Weak<Switchboard>,
    ) {
        let Some((entry, id, since)) = again.front() else {
            return;
        };
        if publish(&self.js, entry, id).await.is_ok() {
            again.pop_front();
        } else if since.elapsed() > GIVE_UP && !entry.action.is_departure() {
            let (entry, _, _) = again.pop_front().expect("front exists");
            if let Some(board) = board.upgrade() {
                board.undelivered(&entry);
            }
        } else {
            tokio::time::sleep(RETRY).await;
        }
        if again.is_empty() {
            self.stalled.store(false, Ordering::Relaxed);
        }
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
