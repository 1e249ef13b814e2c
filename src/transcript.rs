//! The human-readable transcript: one greppable line per event, written to a
//! rotating file by the store and printed by `chat-server transcript`.
//!
//! Both use [`format_line`], so the file and the command always agree. Files
//! older than `storage.retention_days` are removed by [`expire_transcripts`].

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{TimeZone, Utc};
use tracing_appender::rolling::{RollingFileAppender, Rotation};

use crate::config::LogRotation;
use crate::event::{Event, EventKind};

/// The transcript line for one event, without the line ending, e.g.
/// `2026-11-24T19:05:03.123Z #lobby chat alice: hello`.
pub fn format_line(event: &Event) -> String {
    let ts = Utc
        .timestamp_millis_opt(event.ts_ms)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let text = event.text.as_deref().unwrap_or("");
    let (room, sender, kind) = (&event.room, &event.sender, event.kind);
    let to = event.recipient.as_deref().unwrap_or("?");
    match kind {
        EventKind::Chat
        | EventKind::Announce
        | EventKind::Poll
        | EventKind::Vote
        | EventKind::Close
        | EventKind::Ask => format!("{ts} #{room} {kind} {sender}: {text}"),
        EventKind::Private => format!("{ts} #{room} pm {sender} -> {to}: {text}"),
        EventKind::Join | EventKind::Op | EventKind::Lower => {
            format!("{ts} #{room} {kind} {sender}")
        }
        EventKind::Hand if !text.is_empty() => format!("{ts} #{room} hand {sender}: {text}"),
        EventKind::Hand => format!("{ts} #{room} hand {sender}"),
        EventKind::Call => format!("{ts} #{room} call {sender} -> {to}"),
        EventKind::Leave => format!("{ts} #{room} leave {sender} ({text})"),
        EventKind::Nick => format!("{ts} #{room} nick {sender} -> {text}"),
        EventKind::Kick | EventKind::Mute if !text.is_empty() => {
            format!("{ts} #{room} {kind} {sender} -> {to} ({text})")
        }
        EventKind::Kick | EventKind::Mute | EventKind::Unmute => {
            format!("{ts} #{room} {kind} {sender} -> {to}")
        }
        EventKind::Quiet | EventKind::Dm | EventKind::Session => {
            format!("{ts} #{room} {kind} {sender} {text}")
        }
        EventKind::Erase => format!("{ts} erase {sender} -> {to} ({text})"),
        EventKind::Action => format!("{ts} #{room} action * {sender} {text}"),
    }
}

/// Opens the rotating transcript file in `dir` (created if missing). The files are
/// named `transcript.YYYY-MM-DD[-HH[-MM]].log`; at most `max_files` are kept.
pub fn open(
    dir: &Path,
    rotation: LogRotation,
    max_files: usize,
) -> io::Result<RollingFileAppender> {
    std::fs::create_dir_all(dir)?;
    let rotation = match rotation {
        LogRotation::Minutely => Rotation::MINUTELY,
        LogRotation::Hourly => Rotation::HOURLY,
        LogRotation::Daily => Rotation::DAILY,
        LogRotation::Never => Rotation::NEVER,
    };
    RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix("transcript")
        .filename_suffix("log")
        .max_log_files(max_files.max(1))
        .build(dir)
        .map_err(io::Error::other)
}

/// The transcript as the store writes it: a rotating file that is opened again,
/// its folder created again, when the folder is removed or replaced while the
/// server runs. The appender alone would keep writing into the unlinked file, or
/// fail, until its next rotation, which may be a day away.
pub struct Transcript {
    dir: PathBuf,
    rotation: LogRotation,
    max_files: usize,
    /// The appender and the identity (device, inode) of the folder it writes in;
    /// `None` after a failed write, so that the next one starts afresh.
    appender: Option<(RollingFileAppender, (u64, u64))>,
}

impl Transcript {
    /// Opens the transcript in `dir` (created if missing).
    pub fn open(dir: &Path, rotation: LogRotation, max_files: usize) -> io::Result<Transcript> {
        let mut transcript = Transcript {
            dir: dir.to_owned(),
            rotation,
            max_files,
            appender: None,
        };
        transcript.reopen_if_moved()?;
        Ok(transcript)
    }

    /// The folder of the transcript files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `bytes`; returns how many were written, and the error that stopped
    /// it, if any. The caller keeps the rest and tries again later.
    pub fn write(&mut self, bytes: &[u8]) -> (usize, io::Result<()>) {
        if let Err(err) = self.reopen_if_moved() {
            return (0, Err(err));
        }
        let Some((appender, _)) = self.appender.as_mut() else {
            return (0, Err(io::Error::other("transcript is not open")));
        };
        let mut written = 0;
        while written < bytes.len() {
            match appender.write(&bytes[written..]) {
                Ok(0) => {
                    self.appender = None;
                    return (written, Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.appender = None;
                    return (written, Err(err));
                }
            }
        }
        (written, Ok(()))
    }

    /// One `stat` of the folder per batch: far cheaper than losing a day of lines.
    fn reopen_if_moved(&mut self) -> io::Result<()> {
        let current = std::fs::metadata(&self.dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| (m.dev(), m.ino()));
        if let (Some(current), Some((_, opened))) = (current, &self.appender) {
            if current == *opened {
                return Ok(());
            }
        }
        self.appender = None;
        let appender = open(&self.dir, self.rotation, self.max_files)?;
        let meta = std::fs::metadata(&self.dir)?;
        self.appender = Some((appender, (meta.dev(), meta.ino())));
        Ok(())
    }
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
