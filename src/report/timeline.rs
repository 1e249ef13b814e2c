//! The class's chat lines over time, for the instructor page's chart: counted per
//! minute, hour or day, whichever makes the range readable. Read through
//! [`RecordRead`] like the report, so a cluster's page charts PostgreSQL's record.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Serialize;

use super::tally::window;
use super::{Filter, ReportError};
use crate::event::EventKind;
use crate::store::RecordRead;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The class's chat lines over time, counted per bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Bucket width in milliseconds: a minute for up to six hours, an hour for up
    /// to two weeks, else a day.
    pub bucket_ms: i64,
    /// `[bucket start (UTC ms), messages]`, buckets without messages left out.
    pub points: Vec<(i64, i64)>,
}

/// The chat lines in the filter's room and window (the whole class: `user` is
/// not looked at).
pub fn timeline(records: &dyn RecordRead, filter: &Filter) -> Result<Timeline, ReportError> {
    let mut minutes: BTreeMap<i64, i64> = BTreeMap::new();
    records.each_event(&window(filter), &mut |event| {
        if matches!(event.kind(), Some(EventKind::Chat | EventKind::Action)) {
            *minutes.entry(event.ts_ms.div_euclid(MINUTE)).or_default() += 1;
        }
        ControlFlow::Continue(())
    })?;
    let span = match (minutes.keys().next(), minutes.keys().next_back()) {
        (Some(first), Some(last)) => (last - first) * MINUTE,
        _ => 0,
    };
    let bucket_ms = match span {
        s if s <= 6 * HOUR => MINUTE,
        s if s <= 14 * DAY => HOUR,
        _ => DAY,
    };
    let mut points: Vec<(i64, i64)> = Vec::new();
    for (minute, count) in minutes {
        let bucket = (minute * MINUTE).div_euclid(bucket_ms) * bucket_ms;
        match points.last_mut() {
            Some((last, total)) if *last == bucket => *total += count,
            _ => points.push((bucket, count)),
        }
    }
    Ok(Timeline { bucket_ms, points })
}
