//! Which nodes are alive: each node says so on a plain NATS subject every second,
//! and each watches for the others. A node that owns members but has been silent
//! for [`GONE_AFTER`] while this node could hear it is declared gone, through the
//! stream ([`Action::NodeGone`](crate::switchboard::Action::NodeGone)), so every
//! node removes its members at the same point of the one order. Several survivors
//! may declare the same node; the second declaration finds nobody left.
//!
//! Silence only counts while this node hears its own beats come back: when NATS
//! goes away or stalls, every node hears nothing from anyone, and none of that
//! means a node died (the client may still believe it is connected for a while).
//! A declaration that cannot be published is not kept for later either; the next
//! beat decides again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::switchboard::Switchboard;

use super::ALIVE;

/// How often a node says it is alive, and checks on the others.
const BEAT: Duration = Duration::from_secs(1);

/// How recent this node's own last beat must be for the others' silence to count.
const ECHO: Duration = Duration::from_secs(3);

/// Silence after which a node counts as gone. With one beat to notice and the
/// stream's round trip, its members' leaves are seen well within SPEC's 15 s.
pub const GONE_AFTER: Duration = Duration::from_secs(8);

/// Says this node is alive and declares silent ones gone, until `stop`.
pub async fn watch(
    client: async_nats::Client,
    board: Arc<Switchboard>,
    me: u64,
    stop: CancellationToken,
) {
    let mut heard = match client.subscribe(ALIVE).await {
        Ok(subscription) => subscription,
        Err(err) => {
            tracing::error!(%err, "cannot watch the other nodes; dead nodes will not be noticed");
            return;
        }
    };
    let mut beat = tokio::time::interval(BEAT);
    let mut last_heard: HashMap<u64, Instant> = HashMap::new();
    let mut declared: HashMap<u64, Instant> = HashMap::new();
    let mut connected_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(message) = heard.next() => {
                if let Some(node) = std::str::from_utf8(&message.payload).ok().and_then(|s| s.parse().ok()) {
                    last_heard.insert(node, Instant::now());
                }
            }
            _ = beat.tick() => {
                let now = Instant::now();
                let _ = client.publish(ALIVE, me.to_string().into()).await;
                let hears_itself = last_heard.get(&me).is_some_and(|t| now - *t <= ECHO);
                if client.connection_state() != State::Connected || !hears_itself {
                    connected_since = None;
                    continue;
                }
                let since = *connected_since.get_or_insert(now);
                for node in board.member_nodes() {
                    if node == me {
                        continue;
                    }
                    let heard = last_heard.get(&node).map_or(since, |t| (*t).max(since));
                    let again = declared.get(&node).is_none_or(|t| now - *t > GONE_AFTER);
                    if now - heard > GONE_AFTER && again {
                        tracing::warn!(node, "a node stopped answering; its members are gone");
                        declared.insert(node, now);
                        board.declare_gone(node);
                    }
                }
            }
        }
    }
}
