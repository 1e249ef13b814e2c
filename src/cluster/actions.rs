//! Reading the stream's actions in order, from a given one, for as long as the node
//! runs: the one loop behind the live copy of the hub ([`super::Node`]) and the
//! recorder ([`super::record`]).
//!
//! An ordered consumer does not always survive a restarted nats-server, so it is
//! made again from the next sequence whenever it fails, ends, or the connection
//! comes back. Sequences already applied are skipped; a message that is not an
//! action is logged and skipped.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::switchboard::Entry;

/// How long to wait before trying again to make a consumer.
const RETRY: Duration = Duration::from_millis(250);

/// The stream's actions, one after another.
pub struct Actions {
    stream: stream::Stream,
    /// Bumped at every (re)connection to NATS.
    reconnected: watch::Receiver<u64>,
    messages: Option<consumer::pull::Ordered>,
    /// The sequence of the next action to read.
    next: u64,
}

impl Actions {
    /// Reads `stream` from sequence `from` (1: its first action; after a
    /// snapshot, the one after it).
    pub fn new(stream: stream::Stream, reconnected: watch::Receiver<u64>, from: u64) -> Actions {
        Actions {
            stream,
            reconnected,
            messages: None,
            next: from.max(1),
        }
    }

    /// The next action and its sequence. Waits as long as it takes, and may be
    /// dropped while it waits: nothing read is lost.
    pub async fn next(&mut self) -> (u64, Entry) {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                self.messages = self.follow().await;
                continue;
            };
            let item = tokio::select! {
                _ = self.reconnected.changed() => None,
                item = messages.next() => item,
            };
            let message = match item {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    tracing::debug!(%err, "reading the stream again");
                    self.messages = None;
                    continue;
                }
                None => {
                    self.messages = None;
                    continue;
                }
            };
            let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                continue;
            };
            if seq < self.next {
                continue;
            }
            self.next = seq + 1;
            match serde_json::from_slice::<Entry>(&message.payload) {
                Ok(entry) => return (seq, entry),
                Err(err) => tracing::warn!(seq, %err, "skipping a message that is not an action"),
            }
        }
    }

    /// A consumer from the next sequence; `None` after a pause when it cannot be
    /// made yet.
    async fn follow(&mut self) -> Option<consumer::pull::Ordered> {
        self.reconnected.borrow_and_update();
        if let Ok(info) = self.stream.get_info().await {
            let last = info.state.last_sequence;
            if info.state.first_sequence > self.next && info.state.messages > 0 {
                // Trimmed past what this copy has applied: only a snapshot newer
                // than the one it began from, or none, could make up for it.
                tracing::error!(
                    next = self.next,
                    first = info.state.first_sequence,
                    "the stream was trimmed past this node's place; restart it to load a newer snapshot"
                );
            }
            if last + 1 < self.next {
                // nats-server lost the stream's tail (a crash before it reached the
                // disk): the numbers already applied will be given to other
                // actions, which would be skipped.
                tracing::error!(
                    applied = self.next - 1,
                    last,
                    "the stream went back; restart every node to rebuild from it"
                );
            }
        }
        match ordered(&self.stream, self.next).await {
            Ok(messages) => Some(messages),
            Err(err) => {
                tracing::debug!(%err, "cannot read the stream yet");
                tokio::time::sleep(RETRY).await;
                None
            }
        }
    }
}

/// An ordered consumer of `stream` from sequence `from`.
async fn ordered(
    stream: &stream::Stream,
    from: u64,
) -> Result<consumer::pull::Ordered, async_nats::Error> {
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}
