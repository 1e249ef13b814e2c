//! Limits per address across nodes: every node publishes what it counts
//! (connections admitted, codes given; [`Counted`]) to a stream that keeps only
//! the last minute, the window those limits count over, and adds what the other
//! nodes published to its own counts. So twenty guesses spread over three nodes
//! lock an address on all three, as twenty on one server would, and a node that
//! starts reads the minute before it.
//!
//! Counting stays local and immediate: a node never waits for NATS to decide a
//! login, and what another node counted arrives within milliseconds. While NATS
//! is away each node counts alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::access::{AddressWindow, CodeGuard, Counted};

/// The stream of counts, and its one subject.
pub const STREAM: &str = "CLASSCHAT_COUNTS";
/// The subject counts are published on.
pub const SUBJECT: &str = "classchat.counts";

/// How long counts are kept: the limits' window.
const KEPT: Duration = Duration::from_secs(60);

/// Counts waiting to be published, at most; beyond, a count stays local.
const QUEUE: usize = 4096;

/// How long to wait before trying again to reach the stream.
const RETRY: Duration = Duration::from_millis(250);

/// One count as it travels: which node counted it.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    node: u64,
    counted: Counted,
}

/// Shares `connects` and `codes` with the other nodes until `stop`. Counts wait
/// in a queue from the moment this is called, and are published once the stream
/// exists (what is published before is stored nowhere): the guesses made while a
/// node starts count on the others too.
pub fn share(
    client: async_nats::Client,
    js: jetstream::Context,
    node: u64,
    connects: Arc<AddressWindow>,
    codes: Arc<CodeGuard>,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (tell, told) = mpsc::channel(QUEUE);
    connects.shared.connect(tell.clone());
    codes.shared.connect(tell);
    run(client, js, node, connects, codes, told, stop)
}

async fn run(
    client: async_nats::Client,
    js: jetstream::Context,
    node: u64,
    connects: Arc<AddressWindow>,
    codes: Arc<CodeGuard>,
    mut told: mpsc::Receiver<Counted>,
    stop: CancellationToken,
) {
    while let Err(err) = js.get_or_create_stream(config()).await {
        tracing::debug!(%err, "cannot reach the counts' stream yet");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
    let publish = async {
        while let Some(counted) = told.recv().await {
            let message = Message { node, counted };
            let payload = serde_json::to_vec(&message).expect("a count serializes");
            // Core NATS: the stream stores it, nobody waits for an answer.
            if let Err(err) = client.publish(SUBJECT, payload.into()).await {
                tracing::debug!(%err, "a count was not shared");
            }
        }
    };
    let follow = async {
        let mut next = None;
        loop {
            let Some(messages) = follow_from(&js, next).await else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            let mut messages = messages;
            while let Some(Ok(message)) = messages.next().await {
                if let Ok(info) = message.info() {
                    next = Some(info.stream_sequence + 1);
                }
                let Ok(Message {
                    node: from,
                    counted,
                }) = serde_json::from_slice(&message.payload)
                else {
                    continue;
                };
                if from == node {
                    continue;
                }
                match counted {
                    Counted::Connect { ip } => connects.counted_elsewhere(ip, Instant::now()),
                    Counted::Code { ip, name } => codes.counted_elsewhere(ip, &name),
                }
            }
            // The consumer failed or the connection came back: read on from the
            // next count.
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = publish => {}
        _ = follow => {}
    }
}

/// An ordered consumer of the counts from `next` (from the oldest kept, the
/// first time); `None` when the stream cannot be reached yet.
async fn follow_from(
    js: &jetstream::Context,
    next: Option<u64>,
) -> Option<consumer::pull::Ordered> {
    let stream = match js.get_or_create_stream(config()).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(%err, "cannot reach the counts' stream yet");
            return None;
        }
    };
    let deliver_policy = match next {
        None => consumer::DeliverPolicy::All,
        Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .ok()?;
    consumer.messages().await.ok()
}

/// The counts' stream: in memory, each count kept for the limits' window.
fn config() -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        storage: stream::StorageType::Memory,
        max_age: KEPT,
        ..Default::default()
    }
}
