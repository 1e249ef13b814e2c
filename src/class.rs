//! The class's timetable (SPEC 11): its time zone, and the sessions scheduled in
//! `[[class.sessions]]`, turned into the dated sessions that attendance is taken
//! for. Time zones come from the IANA database (`chrono-tz`), so a lecture at
//! 10:00 stays at 10:00 across a daylight-saving change.

use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// `[class]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassConfig {
    /// The IANA time zone the timetable is written in; empty = the machine's.
    pub timezone: Zone,
    /// The share of a session (in percent) a student must be online for to be
    /// present; saying anything in it counts too.
    pub present_percent: u32,
    /// The weekly timetable.
    pub sessions: Vec<Scheduled>,
}

impl Default for ClassConfig {
    fn default() -> Self {
        ClassConfig {
            timezone: Zone::Local,
            present_percent: 50,
            sessions: Vec::new(),
        }
    }
}

/// One `[[class.sessions]]` entry: the same hours on some days of every week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    /// `["Mon", "Wed"]` (or full names).
    pub days: Vec<Day>,
    /// `"10:00"`, in the class's time zone.
    pub start: ClockTime,
    /// `"11:30"`, after `start`.
    pub end: ClockTime,
    /// Only this room counts (without `#`); none = every room.
    #[serde(default)]
    pub room: Option<String>,
    /// What the session is called in reports.
    #[serde(default)]
    pub title: Option<String>,
}

/// One dated session: scheduled, or started and ended by staff in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSession {
    /// Its start, UTC milliseconds.
    pub start_ms: i64,
    /// Its end, UTC milliseconds.
    pub end_ms: i64,
    /// Only this room counts; `None` = every room.
    pub room: Option<String>,
    /// What it is called, if anything.
    pub title: Option<String>,
}

impl ClassConfig {
    /// What is wrong with the section, as `(key, reason)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=100).contains(&self.present_percent) {
            return Err(("class.present_percent", "must be 1 to 100".to_owned()));
        }
        for s in &self.sessions {
            if s.days.is_empty() {
                return Err(("class.sessions", "each needs at least one day".to_owned()));
            }
            if s.end.0 <= s.start.0 {
                let reason = format!("end {} is not after start {}", s.end, s.start);
                return Err(("class.sessions", reason));
            }
            if let Some(room) = &s.room {
                if crate::protocol::normalize_room(room).as_deref() != Ok(room) {
                    let reason = format!("room '{room}': rooms are 1-32 of a-z 0-9 _ -");
                    return Err(("class.sessions", reason));
                }
            }
        }
        Ok(())
    }

    /// The scheduled sessions that start in `from..until` (UTC ms), in order.
    pub fn scheduled_between(&self, from: i64, until: i64) -> Vec<ClassSession> {
        let (Some(first), Some(last)) = (self.timezone.date_of(from), self.timezone.date_of(until))
        else {
            return Vec::new();
        };
        let mut sessions = Vec::new();
        let mut day = first;
        while day <= last {
            for s in &self.sessions {
                if !s.days.iter().any(|d| d.0 == day.weekday()) {
                    continue;
                }
                let start_ms = self.timezone.at(day, s.start.0);
                if (from..until).contains(&start_ms) {
                    sessions.push(ClassSession {
                        start_ms,
                        end_ms: self.timezone.at(day, s.end.0),
                        room: s.room.clone(),
                        title: s.title.clone(),
                    });
                }
            }
            let Some(next) = day.checked_add_days(Days::new(1)) else {
                break;
            };
            day = next;
        }
        sessions.sort_by_key(|s| s.start_ms);
        sessions
    }
}

/// A time zone: the machine's, or one of the IANA database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Zone {
    /// The machine's.
    Local,
    /// A named zone, such as `Europe/Paris`.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `day` at `time` here, in UTC ms: in a daylight-saving gap, the first
    /// moment after it; in an overlap, the earlier.
    pub fn at(&self, day: NaiveDate, time: NaiveTime) -> i64 {
        fn at<Tz: TimeZone>(tz: &Tz, day: NaiveDate, time: NaiveTime) -> i64 {
            let local = day.and_time(time);
            (0..=2)
                .find_map(|hours| {
                    let shifted = local + chrono::Duration::hours(hours);
                    tz.from_local_datetime(&shifted).earliest()
                })
                .map_or_else(
                    || local.and_utc().timestamp_millis(),
                    |t| t.timestamp_millis(),
                )
        }
        match self {
            Zone::Local => at(&chrono::Local, day, time),
            Zone::Named(tz) => at(tz, day, time),
        }
    }

    /// The date here at the moment `ms` (UTC ms).
    pub fn date_of(&self, ms: i64) -> Option<NaiveDate> {
        let utc: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
        Some(match self {
            Zone::Local => utc.with_timezone(&chrono::Local).date_naive(),
            Zone::Named(tz) => utc.with_timezone(tz).date_naive(),
        })
    }

    /// The moment `ms` here as `2026-11-30 10:00`.
    pub fn minute_of(&self, ms: i64) -> String {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(ms) else {
            return String::new();
        };
        const FORMAT: &str = "%Y-%m-%d %H:%M";
        match self {
            Zone::Local => utc.with_timezone(&chrono::Local).format(FORMAT).to_string(),
            Zone::Named(tz) => utc.with_timezone(tz).format(FORMAT).to_string(),
        }
    }
}

impl TryFrom<String> for Zone {
    type Error = String;

    fn try_from(name: String) -> Result<Zone, String> {
        if name.trim().is_empty() {
            return Ok(Zone::Local);
        }
        name.trim()
            .parse()
            .map(Zone::Named)
            .map_err(|_| format!("unknown time zone {name:?} (an IANA name such as Europe/Paris)"))
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        match zone {
            Zone::Local => String::new(),
            Zone::Named(tz) => tz.name().to_owned(),
        }
    }
}

/// A day of the week, `Mon` or `Monday` in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day(pub Weekday);

impl TryFrom<String> for Day {
    type Error = String;

    fn try_from(name: String) -> Result<Day, String> {
        name.trim()
            .parse()
            .map(Day)
            .map_err(|_| format!("unknown day {name:?} (Mon, Tue, ... Sun)"))
    }
}

impl From<Day> for String {
    fn from(day: Day) -> String {
        day.0.to_string()
    }
}

/// A time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(pub NaiveTime);

impl TryFrom<String> for ClockTime {
    type Error = String;

    fn try_from(text: String) -> Result<ClockTime, String> {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map(ClockTime)
            .map_err(|_| format!("invalid time {text:?} (HH:MM, such as 10:00)"))
    }
}

impl From<ClockTime> for String {
    fn from(time: ClockTime) -> String {
        time.to_string()
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(toml: &str) -> ClassConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_weekly_timetable_gives_dated_sessions_in_its_time_zone() {
        let class = class(
            r#"
            timezone = "America/New_York"
            [[sessions]]
            days = ["Mon", "wednesday"]
            start = "10:00"
            end = "11:30"
            title = "Lecture"
            "#,
        );
        assert_eq!(class.check(), Ok(()));
        // Monday 2026-11-30 to Sunday 2026-12-06, UTC.
        let from = DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").unwrap();
        let until = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z").unwrap();
        let sessions = class.scheduled_between(from.timestamp_millis(), until.timestamp_millis());
        let starts: Vec<String> = sessions
            .iter()
            .map(|s| {
                let t = DateTime::from_timestamp_millis(s.start_ms).unwrap();
                t.to_rfc3339()
            })
            .collect();
        // 10:00 in New York is 15:00 UTC in winter.
        assert_eq!(
            starts,
            ["2026-11-30T15:00:00+00:00", "2026-12-02T15:00:00+00:00"]
        );
        assert_eq!(sessions[0].end_ms - sessions[0].start_ms, 90 * 60_000);
        assert_eq!(
            class.timezone.minute_of(sessions[0].start_ms),
            "2026-11-30 10:00"
        );
    }

    #[test]
    fn a_lecture_keeps_its_local_hour_across_daylight_saving() {
        let class = class(
            r#"
            timezone = "Europe/Paris"
            [[sessions]]
            days = ["Mon"]
            start = "09:00"
            end = "10:00"
            "#,
        );
        // Summer time ends on Sunday 2026-10-25.
        let from = DateTime::parse_from_rfc3339("2026-10-19T00:00:00Z").unwrap();
        let until = DateTime::parse_from_rfc3339("2026-10-27T00:00:00Z").unwrap();
        let sessions = class.scheduled_between(from.timestamp_millis(), until.timestamp_millis());
        let local: Vec<String> = sessions
            .iter()
            .map(|s| class.timezone.minute_of(s.start_ms))
            .collect();
        assert_eq!(local, ["2026-10-19 09:00", "2026-10-26 09:00"]);
        assert_eq!(
            sessions[1].start_ms - sessions[0].start_ms,
            (7 * 24 + 1) * 3_600_000
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_key() {
        assert!(toml::from_str::<ClassConfig>(r#"timezone = "Mars/Olympus""#).is_err());
        let bad_day = "[[sessions]]\ndays = [\"Funday\"]\nstart = \"10:00\"\nend = \"11:00\"";
        assert!(toml::from_str::<ClassConfig>(bad_day).is_err());
        let backwards = class("[[sessions]]\ndays = [\"Mon\"]\nstart = \"11:00\"\nend = \"10:00\"");
        assert_eq!(backwards.check().unwrap_err().0, "class.sessions");
        let percent = class("present_percent = 0");
        assert_eq!(percent.check().unwrap_err().0, "class.present_percent");
    }
}
