//! `CHATHISTORY` (IRCv3 draft/chathistory): a client that keeps its own log
//! asks for the lines it misses instead of being given the replay on joining.
//! Answered from the history the room keeps for replays and, further back,
//! from the record ([`older`](super::older)); never more than
//! `history.replay_lines` lines at once (`CHATHISTORY=` in `005`), and only for
//! the channel the client is in: classchat shows a room's words to those who
//! join it.

use chrono::DateTime;

use super::message::{msgid, msgid_time};
use crate::event::HistoryLine;

/// Why a request cannot be answered: the `FAIL` code and its text.
#[derive(Debug, PartialEq, Eq)]
pub struct Fail {
    /// `INVALID_PARAMS`, `UNKNOWN_COMMAND`.
    pub code: &'static str,
    /// What to tell the user.
    pub text: &'static str,
}

const BAD_REF: Fail = Fail {
    code: "INVALID_PARAMS",
    text: "A reference is timestamp=YYYY-MM-DDThh:mm:ss.sssZ or msgid=ID",
};

/// Where a reference (`timestamp=…`, `msgid=…`) falls among the lines: the
/// first line at or after it, and the first line after it.
#[derive(Debug, Clone, Copy)]
struct Place {
    at: usize,
    after: usize,
}

fn timestamp_ms(time: &str) -> Result<i64, Fail> {
    Ok(DateTime::parse_from_rfc3339(time)
        .map_err(|_| BAD_REF)?
        .timestamp_millis())
}

/// The time a reference points at, where it says: a `timestamp=`, or one of
/// this server's `msgid=`s, which begin with when the line was said.
pub fn reference_time(reference: &str) -> Option<i64> {
    if let Some(time) = reference.strip_prefix("timestamp=") {
        return timestamp_ms(time).ok();
    }
    reference.strip_prefix("msgid=").and_then(msgid_time)
}

/// The limit a request asks for (its last parameter), at most `most`; `None`
/// when it is not a number of at least 1.
pub fn limit(args: &[&str], most: usize) -> Option<usize> {
    let limit = args.last()?.parse::<usize>().ok()?;
    (limit > 0).then(|| limit.min(most))
}

fn place(lines: &[HistoryLine], reference: &str) -> Result<Option<Place>, Fail> {
    if let Some(time) = reference.strip_prefix("timestamp=") {
        let ms = timestamp_ms(time)?;
        let at = lines.partition_point(|l| l.ts_ms < ms);
        let after = lines.partition_point(|l| l.ts_ms <= ms);
        return Ok(Some(Place { at, after }));
    }
    if let Some(id) = reference.strip_prefix("msgid=") {
        let found = lines
            .iter()
            .position(|l| msgid(l.ts_ms, &l.sender, &l.text, l.action) == id);
        return Ok(found.map(|at| Place { at, after: at + 1 }));
    }
    Err(BAD_REF)
}

/// The lines of `lines` (a room's history, oldest first) that `subcommand`
/// with `args` (the references, then the limit) asks for, oldest first, at most
/// `most`. A reference to a line no longer kept selects nothing.
pub fn select(
    lines: &[HistoryLine],
    subcommand: &str,
    args: &[&str],
    most: usize,
) -> Result<Vec<HistoryLine>, Fail> {
    let refs = args.split_last().map_or(&[][..], |(_, refs)| refs);
    let Some(limit) = limit(args, most) else {
        return Err(Fail {
            code: "INVALID_PARAMS",
            text: "The last parameter is how many lines, at least 1",
        });
    };
    let last = |range: &[HistoryLine]| range[range.len().saturating_sub(limit)..].to_vec();
    let first = |range: &[HistoryLine]| range[..range.len().min(limit)].to_vec();
    let one = |i: usize| -> Result<Option<Place>, Fail> {
        match refs.get(i) {
            Some(reference) => place(lines, reference),
            None => Err(BAD_REF),
        }
    };
    Ok(match subcommand {
        "LATEST" if refs.first() == Some(&"*") => last(lines),
        "LATEST" => one(0)?.map_or_else(Vec::new, |p| last(&lines[p.after..])),
        "BEFORE" => one(0)?.map_or_else(Vec::new, |p| last(&lines[..p.at])),
        "AFTER" => one(0)?.map_or_else(Vec::new, |p| first(&lines[p.after..])),
        "AROUND" => one(0)?.map_or_else(Vec::new, |p| {
            let start = p.at.saturating_sub(limit / 2);
            first(&lines[start..])
        }),
        "BETWEEN" => match (one(0)?, one(1)?) {
            (Some(a), Some(b)) if a.at <= b.at => first(&lines[a.after..b.at.max(a.after)]),
            (Some(a), Some(b)) => last(&lines[b.after..a.at.max(b.after)]),
            _ => Vec::new(),
        },
        _ => {
            return Err(Fail {
                code: "INVALID_PARAMS",
                text: "Use LATEST, BEFORE, AFTER, AROUND or BETWEEN",
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<HistoryLine> {
        (1..=6)
            .map(|i| HistoryLine {
                ts_ms: i * 1000,
                sender: "ann".into(),
                text: format!("line {i}").into(),
                action: false,
            })
            .collect()
    }

    fn texts(lines: Vec<HistoryLine>) -> Vec<String> {
        lines.iter().map(|l| l.text.to_string()).collect()
    }

    #[test]
    fn each_subcommand_selects_its_lines_oldest_first() {
        let lines = history();
        let ask = |sub: &str, args: &[&str]| texts(select(&lines, sub, args, 4).unwrap());
        assert_eq!(ask("LATEST", &["*", "2"]), ["line 5", "line 6"]);
        assert_eq!(ask("LATEST", &["*", "50"]).len(), 4, "at most replay_lines");
        let third = "timestamp=1970-01-01T00:00:03.000Z";
        assert_eq!(ask("BEFORE", &[third, "5"]), ["line 1", "line 2"]);
        assert_eq!(ask("AFTER", &[third, "2"]), ["line 4", "line 5"]);
        assert_eq!(ask("LATEST", &[third, "9"]), ["line 4", "line 5", "line 6"]);
        assert_eq!(ask("AROUND", &[third, "2"]), ["line 2", "line 3"]);
        let fifth = format!("msgid={}", msgid(5000, "ann", "line 5", false));
        assert_eq!(ask("BETWEEN", &[third, &fifth, "9"]), ["line 4"]);
        assert_eq!(ask("BETWEEN", &[&fifth, third, "9"]), ["line 4"]);
        assert_eq!(ask("BEFORE", &["msgid=gone", "9"]), Vec::<String>::new());
        assert_eq!(
            select(&lines, "BEFORE", &["yesterday", "9"], 4),
            Err(BAD_REF)
        );
        assert!(select(&lines, "LATEST", &["*", "0"], 4).is_err());
        assert!(select(&lines, "SIDEWAYS", &["*", "2"], 4).is_err());
    }

    #[test]
    fn a_reference_says_its_time_where_it_can() {
        assert_eq!(
            reference_time("timestamp=1970-01-01T00:00:03.000Z"),
            Some(3000)
        );
        let id = msgid(1_764_011_103_123, "ann", "hi", false);
        assert_eq!(
            reference_time(&format!("msgid={id}")),
            Some(1_764_011_103_123)
        );
        assert_eq!(reference_time("msgid=gone"), None);
        assert_eq!(reference_time("msgid=12-34"), None);
        assert_eq!(reference_time("*"), None);
        assert_eq!(limit(&["*", "50"], 4), Some(4));
        assert_eq!(limit(&["*", "0"], 4), None);
    }
}
