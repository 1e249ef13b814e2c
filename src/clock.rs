//! Server time: one timestamp per event, in UTC milliseconds for the record and in
//! `server.timestamp_format` for the wire.

use std::fmt::Write;
use std::sync::Arc;

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

    /// Appends the timestamp of the moment `ts_ms` in the configured format.
    pub fn write_timestamp(&self, out: &mut String, ts_ms: i64) {
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
    fn formats_a_timestamp() {
        let clock = Clock::new("%Y-%m-%d %H:%M:%S%.3f", true);
        let mut out = String::new();
        clock.write_timestamp(&mut out, 1_764_011_103_123);
        assert_eq!(out, "2025-11-24 19:05:03.123");
    }
}
