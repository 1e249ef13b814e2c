//! The `export` and `erase` commands, for SQLite and a cluster's PostgreSQL;
//! `chat-server` only parses their arguments.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::erase;
use super::export;
use super::rewrite::Rewrites;
use crate::report::{self, StudentScope};
use crate::store::postgres::{self, Blocking};
use crate::store::sqlite::{self, Checkpoint};
use crate::store::{self, Counts, RecordErase, RecordRead, StoreError};

/// Where the record is.
#[derive(Debug, Clone)]
pub enum Target {
    /// A single server's database, and the folder of its transcript files.
    Sqlite {
        /// The database file.
        database: PathBuf,
        /// `log.dir`.
        transcripts: PathBuf,
    },
    /// A cluster's PostgreSQL.
    Postgres {
        /// `storage.postgres_url`.
        url: String,
        /// `cluster.nats_url`, for `erase` to delete the stream's copies.
        nats: Option<String>,
    },
}

/// `--format` of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object: the student, their roster entry, their events.
    Json,
    /// One row per event.
    Csv,
}

/// What `erase` is asked to do.
#[derive(Debug, Clone)]
pub struct EraseRequest {
    /// Any name the student used.
    pub student: String,
    /// Who runs it, for the `erase` event (`--by`, else `$USER`).
    pub operator: String,
    /// `--yes`: no question asked.
    pub yes: bool,
}

/// Prints the student's record in `format`.
pub fn export(
    target: &Target,
    student: &str,
    format: ExportFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let records = open_records(target)?;
    let Some(record) = export::student_record(&*records, student)? else {
        bail!("no student used the name {student:?}");
    };
    match format {
        ExportFormat::Json => export::write_json(&record, out)?,
        ExportFormat::Csv => export::write_csv(&record, out)?,
    }
    Ok(())
}

/// Erases the student's words and says what changed.
pub fn erase(target: &Target, request: &EraseRequest, out: &mut dyn Write) -> anyhow::Result<()> {
    match target {
        Target::Sqlite {
            database,
            transcripts,
        } => erase_sqlite(database, transcripts, request, out),
        Target::Postgres { url, nats } => erase_postgres(url, nats.as_deref(), request, out),
    }
}

fn erase_sqlite(
    database: &Path,
    transcripts: &Path,
    request: &EraseRequest,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if !database.exists() {
        bail!("no database at {}", database.display());
    }
    let mut conn = store::open_database(database)?;
    // Holding the lock keeps a server from starting while the files are rewritten;
    // when a server holds it, that server rewrites them.
    let ((_lock, server), scope, counts) = erase_words(&mut conn, request, out, || {
        match store::lock_database(database) {
            Ok(lock) => Ok((Some(lock), None)),
            Err(StoreError::InUse { pid, .. }) => Ok((None, Some(pid))),
            Err(err) => Err(err.into()),
        }
    })?;
    let erased = erase::erased_events(&conn, Some(&scope.sessions))?;
    writeln!(out, "database {}: {counts} erased", database.display())?;
    match sqlite::checkpoint(&conn, database) {
        Checkpoint::Truncated => writeln!(
            out,
            "database: the old words are overwritten (secure_delete) and the write-ahead log is emptied"
        )?,
        Checkpoint::NotTruncated(why) => writeln!(
            out,
            "database: the write-ahead log could not be emptied ({why}); it may hold the old words \
             until the server's next checkpoint: run `chat-server erase` again later, or stop the server and run it again"
        )?,
    }
    match server {
        Some(pid) => writeln!(
            out,
            "transcripts {}: the running chat-server (pid {pid}) rewrites them and stops replaying \
             the erased lines within seconds",
            transcripts.display()
        )?,
        None => {
            let files = Rewrites::of(&erased)
                .rewrite_dir(transcripts)
                .with_context(|| {
                    format!(
                        "cannot rewrite the transcripts in {}",
                        transcripts.display()
                    )
                })?;
            writeln!(
                out,
                "transcripts {}: {} files rewritten",
                transcripts.display(),
                files.len()
            )?;
            for (file, lines) in files {
                writeln!(out, "  {}: {lines} lines", file.display())?;
            }
        }
    }
    let unsaved = store::unsaved_path(database);
    if unsaved.exists() {
        writeln!(
            out,
            "note: {} holds events not yet in the database; the next start imports them, \
             and erase must then be run again",
            unsaved.display()
        )?;
    }
    recorded(request, &scope, out)
}

fn erase_postgres(
    url: &str,
    nats: Option<&str>,
    request: &EraseRequest,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut postgres = Blocking::connect(url)?;
    let ((), scope, counts) = erase_words(&mut postgres, request, out, || Ok(()))?;
    writeln!(out, "PostgreSQL: {counts} erased; the table was vacuumed")?;
    let Blocking {
        runtime, client, ..
    } = &postgres;
    let seqs = runtime.block_on(postgres::stream_seqs(client, &scope.sessions))?;
    match nats {
        Some(nats) => {
            let (deleted, gone) = runtime
                .block_on(erase::delete_from_stream(nats, &seqs))
                .map_err(|e| anyhow::anyhow!("cannot delete the stream's copies: {e}"))?;
            writeln!(
                out,
                "stream: {deleted} messages deleted ({gone} were gone already); \
                 the running nodes stop replaying the erased lines within seconds"
            )?;
        }
        None => writeln!(
            out,
            "stream: not changed ({} messages hold the words): give --nats URL or --config \
             to delete them; the running nodes stop replaying the erased lines within seconds",
            seqs.len()
        )?,
    }
    recorded(request, &scope, out)
}

/// What erasing is on every back end: finds the student, says what will change
/// and asks ([`confirm`]), runs `before` (once confirmed), replaces the words and
/// records the `erase` event. Returns what `before` gave, the student and what
/// changed.
fn erase_words<T>(
    record: &mut dyn RecordErase,
    request: &EraseRequest,
    out: &mut dyn Write,
    before: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, StudentScope, Counts)> {
    let scope = find(record, &request.student)?;
    let counts = record.count_words(&scope.sessions)?;
    confirm(&scope, &counts.to_string(), request, out)?;
    let before = before()?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let event = |counts| erase::erase_event(&scope, &request.operator, counts, now_ms);
    let counts = record.erase_words(&scope.sessions, &event)?;
    Ok((before, scope, counts))
}

/// The last line of an erase.
fn recorded(
    request: &EraseRequest,
    scope: &StudentScope,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "recorded: erase by {} of {}",
        request.operator, scope.name
    )?;
    Ok(())
}

fn find(records: &dyn RecordRead, name: &str) -> anyhow::Result<StudentScope> {
    match report::student_events(records, name)? {
        Some((scope, _)) => Ok(scope),
        None => bail!("no student used the name {name:?}"),
    }
}

/// Says what will change and, without `--yes`, asks on the terminal.
fn confirm(
    scope: &StudentScope,
    counts: &str,
    request: &EraseRequest,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let also = match scope.other_names.is_empty() {
        true => String::new(),
        false => format!(" (also {})", scope.other_names.join(", ")),
    };
    writeln!(out, "erasing the words of {}{also}: {counts}", scope.name)?;
    out.flush()?;
    if request.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not erasing: standard input is not a terminal to confirm on; add --yes to erase without asking");
    }
    eprint!("Type yes to erase them for good: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not erased");
    }
    Ok(())
}

/// The record to read, from either back end.
fn open_records(target: &Target) -> anyhow::Result<Box<dyn RecordRead>> {
    match target {
        Target::Sqlite { database, .. } => {
            if !database.exists() {
                bail!("no database at {}", database.display());
            }
            Ok(Box::new(store::open_read_only(database)?))
        }
        Target::Postgres { url, .. } => Ok(Box::new(Blocking::connect(url)?)),
    }
}
