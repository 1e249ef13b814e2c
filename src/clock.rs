//! Server time: one timestamp per event, in UTC milliseconds for the record and in
//! `server.timestamp_format` for the wire.

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, TimeZone, Utc};

/// Formats timestamps the way the configuration says. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The strftime format, parsed once rather than on every line.
    items: Arc<[Item<'static>]>,
    utc: bool,
}

impl Clock {
    /// A clock for a format already checked by config validation; a bad format
    /// falls back to `%H:%M:%S`.
    pub fn new(format: &str, utc: bool) -> Self {
        let items = StrftimeItems::new(format)
            .parse_to_owned()
            .or_else(|_| StrftimeItems::new("%H:%M:%S").parse_to_owned())
            .unwrap_or_default();
        Clock {
            items: items.into(),
            utc,
        }
    }

    /// Now, in UTC milliseconds.
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }

    /// Builds one wire line, `[TIMESTAMP] BODY\n`, for the moment `ts_ms`.
    pub fn line(&self, ts_ms: i64, body: std::fmt::Arguments<'_>) -> Bytes {
        let mut text = String::with_capacity(64);
        text.push('[');
        self.write_timestamp(&mut text, ts_ms);
        text.push_str("] ");
        let _ = text.write_fmt(body);
        text.push('\n');
        Bytes::from(text)
    }

    fn write_timestamp(&self, out: &mut String, ts_ms: i64) {
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_default();
        let items = self.items.iter();
        let _ = if self.utc {
            write!(out, "{}", utc.format_with_items(items))
        } else {
            write!(
                out,
                "{}",
                utc.with_timezone(&Local).format_with_items(items)
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_line() {
        let clock = Clock::new("%Y-%m-%d %H:%M:%S%.3f", true);
        let line = clock.line(1_764_011_103_123, format_args!("* hi"));
        assert_eq!(&line[..], b"[2025-11-24 19:05:03.123] * hi\n");
    }
}
