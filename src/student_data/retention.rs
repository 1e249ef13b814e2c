//! `storage.retention_days`: events and transcript files older than that are
//! deleted at start and once a day.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

/// Deletes the events before `cutoff_ms`; returns how many. `secure_delete`
/// overwrites the freed space, so the deleted words leave no copy in the file.
pub fn expire_sqlite(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.pragma_update(None, "secure_delete", true)?;
    conn.execute("DELETE FROM events WHERE ts_ms < ?1", [cutoff_ms])
}

/// Deletes the events before `cutoff_ms` from a cluster's PostgreSQL; returns how
/// many. Any node may do it: deleting twice deletes nothing more.
pub async fn expire_postgres(
    client: &tokio_postgres::Client,
    cutoff_ms: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM events WHERE ts_ms < $1", &[&cutoff_ms])
        .await
}

/// Whether `name` is one of the transcript's files (`transcript.DATE.log`).
pub fn is_transcript_file(name: &str) -> bool {
    name.starts_with("transcript") && name.ends_with(".log")
}

/// Removes the transcript files in `dir` last written before `cutoff_ms`; returns
/// how many. A file still being appended to was written recently, so it stays.
/// Failures are logged: a file that cannot be removed today is tried again
/// tomorrow.
pub fn expire_transcripts(dir: &Path, cutoff_ms: i64) -> usize {
    let cutoff = SystemTime::UNIX_EPOCH + Duration::from_millis(cutoff_ms.max(0) as u64);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_transcript_file(&name.to_string_lossy()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < cutoff);
        if !old {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!(%err, file = %entry.path().display(),
                "cannot remove a transcript file past storage.retention_days"),
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed transcript files past storage.retention_days"
        );
    }
    removed
}
