//! The human-readable transcript: one greppable line per event, written to a
//! rotating file by the store and printed by `chat-server transcript`.
//!
//! Both use [`format_line`], so the file and the command always agree.

use std::io;
use std::path::Path;

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
        EventKind::Chat | EventKind::Announce => format!("{ts} #{room} {kind} {sender}: {text}"),
        EventKind::Private => format!("{ts} #{room} pm {sender} -> {to}: {text}"),
        EventKind::Join | EventKind::Op => format!("{ts} #{room} {kind} {sender}"),
        EventKind::Leave => format!("{ts} #{room} leave {sender} ({text})"),
        EventKind::Nick => format!("{ts} #{room} nick {sender} -> {text}"),
        EventKind::Kick | EventKind::Mute if !text.is_empty() => {
            format!("{ts} #{room} {kind} {sender} -> {to} ({text})")
        }
        EventKind::Kick | EventKind::Mute | EventKind::Unmute => {
            format!("{ts} #{room} {kind} {sender} -> {to}")
        }
        EventKind::Quiet => format!("{ts} #{room} quiet {sender} {text}"),
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
