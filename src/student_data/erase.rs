//! `chat-server erase --student NAME`: a student's words replaced by
//! [`ERASED`] in the record, and an `erase` event naming who did it.
//!
//! Their words are their chat lines, the private messages they sent and the
//! reasons they gave for leaving, from any of their connections. The rows stay,
//! so a report made before the erase is still explained by the record: the same
//! messages are counted, only their words are gone. Private messages others sent
//! them are the others' words and stay.
//!
//! Counting and replacing the words is the record's own
//! ([`RecordErase`](crate::store::RecordErase)), the same on either back end; this
//! module makes the `erase` event and does what else each back end needs.
//! SQLite keeps old contents in free space and in the write-ahead log, so the
//! update runs with `secure_delete` (freed space is overwritten) and is followed
//! by a checkpoint that empties the log ([`checkpoint`](crate::store::sqlite::checkpoint)).

use std::ops::ControlFlow;
use std::time::Duration;

use rusqlite::Connection;

use super::ERASED;
use crate::event::{Event, EventKind};
use crate::report::StudentScope;
pub use crate::store::Counts;
use crate::store::{DbError, RecordRead, Selection, StudentKeys};

/// The `erase` event for `scope`, run by `operator`.
pub fn erase_event(scope: &StudentScope, operator: &str, counts: Counts, now_ms: i64) -> Event {
    Event {
        ts_ms: now_ms,
        kind: EventKind::Erase,
        room: "".into(),
        sender: operator.into(),
        recipient: Some(scope.name.as_str().into()),
        text: Some(format!("{counts} erased")),
        session: 0,
        account: None,
    }
}

/// Every erased chat line, private message, leave reason, question and hand, in the record's
/// order: of these connections, or of everyone's (what a running server removes
/// from its transcripts and replay).
pub fn erased_events(
    records: &dyn RecordRead,
    sessions: Option<&[i64]>,
) -> Result<Vec<Event>, DbError> {
    let selection = Selection {
        student: sessions.map(|sessions| StudentKeys {
            sessions: sessions.to_vec(),
            names: Vec::new(),
        }),
        in_order: true,
        ..Selection::default()
    };
    let mut events = Vec::new();
    let mut failed = None;
    records.each_event(&selection, &mut |stored| {
        let words = matches!(
            stored.kind,
            "chat" | "action" | "pm" | "leave" | "ask" | "hand"
        );
        if !words || stored.text != Some(ERASED) {
            return ControlFlow::Continue(());
        }
        match stored.to_event() {
            Ok(event) => {
                events.push(event);
                ControlFlow::Continue(())
            }
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    failed.map_or(Ok(events), Err)
}

/// [`erased_events`] of everyone in a SQLite database.
pub fn erased_sqlite(conn: &Connection) -> Result<Vec<Event>, DbError> {
    erased_events(conn, None)
}

/// Deletes these messages from the cluster's stream; JetStream overwrites a
/// deleted message's bytes unless told not to. Returns how many were deleted and
/// how many were gone already (deleted before, or trimmed).
pub async fn delete_from_stream(
    nats_url: &str,
    seqs: &[u64],
) -> Result<(usize, usize), async_nats::Error> {
    let client = async_nats::ConnectOptions::new()
        .name("classchat-erase")
        .connection_timeout(Duration::from_secs(5))
        .connect(nats_url)
        .await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(crate::cluster::STREAM).await?;
    let (mut deleted, mut gone) = (0, 0);
    for &seq in seqs {
        match stream.delete_message(seq).await {
            Ok(true) => deleted += 1,
            Ok(false) => gone += 1,
            Err(err) if err.to_string().contains("no message found") => gone += 1,
            Err(err) => return Err(err.into()),
        }
    }
    Ok((deleted, gone))
}
