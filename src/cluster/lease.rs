//! Who writes the record: a lease in a NATS key-value bucket (SPEC section 9,
//! "One writer").
//!
//! The lease is one key, [`KEY`], holding the writer's node number. A node takes
//! it by creating the key, which JetStream allows only while it does not exist,
//! and keeps it by updating it every [`RENEW`] at the revision it last wrote, which
//! JetStream allows only if nobody wrote in between. The bucket keeps a value for
//! [`TTL`] only, so the key of a writer that died (or lost NATS) vanishes within
//! [`TTL`] of its last renewal, and the next node that tries takes it over.
//!
//! A lease is a hint, not a lock: a writer that stalls past [`TTL`] may still
//! finish a transaction after another node has taken over. The record's key
//! (`seq`, `idx`) makes that harmless (see [`super::record`]); the lease only
//! makes it rare, so that one node, not every node, does the writing.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bucket.
pub const BUCKET: &str = "CLASSCHAT_WRITER";
/// The one key in it.
pub const KEY: &str = "record";

/// How long the lease lasts after its last renewal.
const TTL: Duration = Duration::from_secs(5);
/// How often the writer renews it.
const RENEW: Duration = Duration::from_secs(1);
/// How often a node that does not hold the lease tries to take it.
const TRY_EVERY: Duration = Duration::from_secs(1);
/// A writer stops this long before its lease could have lapsed, so that it has
/// stopped by the time another node can take over.
const MARGIN: Duration = Duration::from_millis(500);

/// The lease as one node sees it.
pub struct Lease {
    js: jetstream::Context,
    node: u64,
    /// The bucket, once opened (again after an error, in case NATS lost it).
    kv: Option<kv::Store>,
}

/// The lease while this node holds it.
pub struct Held {
    kv: kv::Store,
    node: u64,
    /// The revision this node last wrote.
    revision: u64,
    /// Until when nobody else can have taken it, going by the last renewal.
    valid_until: Instant,
}

impl Lease {
    /// The lease for node number `node`.
    pub fn new(js: jetstream::Context, node: u64) -> Lease {
        Lease { js, node, kv: None }
    }

    /// Waits until this node holds the lease; `None` if `stop` comes first.
    pub async fn acquire(&mut self, stop: &CancellationToken) -> Option<Held> {
        loop {
            let sent = Instant::now();
            if let Some(held) = self.try_acquire(sent).await {
                return Some(held);
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(TRY_EVERY) => {}
            }
        }
    }

    async fn try_acquire(&mut self, sent: Instant) -> Option<Held> {
        let kv = match &self.kv {
            Some(kv) => kv.clone(),
            None => match open_bucket(&self.js).await {
                Ok(kv) => self.kv.insert(kv).clone(),
                Err(err) => {
                    tracing::debug!(%err, "cannot open the writer's lease bucket yet");
                    return None;
                }
            },
        };
        match kv.create(KEY, self.node.to_string().into()).await {
            Ok(revision) => Some(Held {
                kv,
                node: self.node,
                revision,
                valid_until: sent + TTL,
            }),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => None,
            Err(err) => {
                tracing::debug!(%err, "cannot try the writer's lease");
                self.kv = None;
                None
            }
        }
    }
}

impl Held {
    /// Renews the lease for as long as it can; returns once it may have lost it
    /// (another node took it, or no renewal got through in time).
    pub async fn keep(&mut self) {
        let mut tick = tokio::time::interval(RENEW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.valid_until - MARGIN;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick() => {}
            }
            let sent = Instant::now();
            let value = self.node.to_string().into();
            let renewed = self.kv.update(KEY, value, self.revision);
            match tokio::time::timeout_at(deadline, renewed).await {
                Ok(Ok(revision)) => {
                    self.revision = revision;
                    self.valid_until = sent + TTL;
                }
                Ok(Err(err)) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => return,
                Ok(Err(err)) => tracing::debug!(%err, "the writer's lease was not renewed"),
                Err(_) => return,
            }
        }
    }

    /// Gives the lease up, so that another node takes over at once instead of
    /// after [`TTL`]; only if this node still holds it.
    pub async fn release(self) {
        let released = self.kv.delete_expect_revision(KEY, Some(self.revision));
        match tokio::time::timeout(RENEW, released).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%err, "the writer's lease was not released"),
            Err(_) => tracing::debug!("the writer's lease was not released in time"),
        }
    }
}

/// The bucket: one value per key, kept for [`TTL`] after it was written, made
/// by whichever node comes first. Made as the stream behind a bucket rather than
/// with `create_key_value`, whose account query fails on nats-server 2.9
/// (Debian 12's).
async fn open_bucket(js: &jetstream::Context) -> Result<kv::Store, async_nats::Error> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{BUCKET}"),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: TTL,
        duplicate_window: TTL,
        storage: stream::StorageType::Memory,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(BUCKET).await?)
}
