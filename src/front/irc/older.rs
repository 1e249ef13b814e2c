//! `CHATHISTORY` further back than a room's in-memory history
//! (`history.replay_lines` lines): the older lines are read from the record
//! (the server's SQLite database, or a cluster's PostgreSQL, whichever
//! [`store::open_record`] opens) and put before the in-memory ones, so that one
//! [`select`](super::chathistory::select) answers over both, with the same
//! limit. The lines come back as they were said (time, sender, text), so they
//! carry the `msgid` they had live.
//!
//! The record is read only when the in-memory lines cannot answer in full, on
//! the blocking pool, a few bounded reads a request ([`plan`]). Erased words
//! (`[erased]`) are never served: the in-memory history forgets them, and here
//! they are left out.

use std::ops::ControlFlow;

use super::chathistory::{limit, reference_time};
use super::message::msgid;
use crate::config::Config;
use crate::event::{EventKind, HistoryLine};
use crate::store::{self, RecordRead, Selection, ERASED};

/// How long a client's `CHATHISTORY` waits for the record before it is
/// answered from memory alone.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// One read of the record: some of a room's chat lines and actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The newest lines said at or before `until`.
    Newest {
        /// UTC milliseconds, included.
        until: i64,
    },
    /// The oldest lines said from `since` to `until`.
    Oldest {
        /// UTC milliseconds, included.
        since: i64,
        /// UTC milliseconds, included.
        until: i64,
    },
}

/// What a request needs from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The reads, each of at most `limit` lines.
    pub pieces: Vec<Piece>,
    /// The request's limit.
    pub limit: usize,
}

/// What to read from the record for `subcommand` with `args` (references,
/// then the limit; already accepted by `select`), given the room's in-memory
/// `lines` (oldest first) and the `answer` they alone give; nothing when that
/// answer is whole.
pub fn plan(
    lines: &[HistoryLine],
    subcommand: &str,
    args: &[&str],
    most: usize,
    answer: &[HistoryLine],
) -> Option<Plan> {
    // Without replay lines there is no history to ask for, in memory or not.
    let limit = limit(args, most).filter(|limit| *limit > 0)?;
    // The record is read up to the oldest line kept in memory, included: lines
    // said in the same millisecond may be on both sides of the cut.
    let start = lines.first().map_or(i64::MAX, |line| line.ts_ms);
    let refs = args.split_last().map_or(&[][..], |(_, refs)| refs);
    let times: Vec<i64> = refs.iter().filter_map(|r| reference_time(r)).collect();
    // An answer is whole when it has `limit` lines, unless older lines may
    // belong in it: the request points before the kept lines (the newest
    // `limit` after a point are kept whatever it is), or an AROUND was cut
    // short at the first kept line.
    let short = answer.len() < limit;
    let points_back = subcommand != "LATEST" && times.iter().any(|t| *t < start);
    let cut = subcommand == "AROUND" && answer.first().is_some_and(|a| Some(a) == lines.first());
    if !(short || points_back || cut) {
        return None;
    }
    // Every subcommand but AFTER may want the lines just before a reference,
    // and so, when it is among the kept lines, those before the kept ones.
    let back = subcommand != "AFTER";
    let mut pieces = Vec::new();
    if subcommand == "LATEST" {
        pieces.push(Piece::Newest { until: start });
    }
    for time in times {
        // The millisecond of the first kept line may have lines only the
        // record still has.
        if time <= start {
            pieces.push(Piece::Newest { until: time });
            pieces.push(Piece::Oldest {
                since: time,
                until: start,
            });
        } else if back {
            pieces.push(Piece::Newest { until: start });
        }
    }
    let mut unique = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if !unique.contains(&piece) {
            unique.push(piece);
        }
    }
    (!unique.is_empty()).then_some(Plan {
        pieces: unique,
        limit,
    })
}

/// The lines `plan` asks for in `room`, from the record the configuration
/// names, oldest first. It blocks: call it on the blocking pool.
pub fn read(config: &Config, room: &str, plan: &Plan) -> anyhow::Result<Vec<HistoryLine>> {
    let record = store::open_record(config)?;
    let mut lines = Vec::new();
    for piece in &plan.pieces {
        lines.extend(read_piece(&*record, room, *piece, plan.limit)?);
    }
    Ok(lines)
}

/// How far back the first read for the newest lines looks; each next one
/// looks eight times as far, and the last one to the beginning.
const FIRST_LOOK_MS: i64 = 60 * 60 * 1000;
const LONGEST_LOOK_MS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;

fn read_piece(
    record: &dyn RecordRead,
    room: &str,
    piece: Piece,
    limit: usize,
) -> anyhow::Result<Vec<HistoryLine>> {
    let window = |since: Option<i64>, until: i64| Selection {
        room: Some(room.to_owned()),
        since,
        until: Some(until.saturating_add(1)),
        skip_erase: true,
        in_order: true,
        ..Selection::default()
    };
    // Lines said in the same millisecond as a bound (a reference's, or the
    // oldest kept line's) are all read, beyond the limit: which of them the
    // answer starts after is only known once they are merged.
    match piece {
        Piece::Oldest { since, until } => {
            let (mut lines, mut later) = (Vec::new(), 0);
            lines_in(record, &window(Some(since), until), &mut |line| {
                later += usize::from(line.ts_ms > since);
                lines.push(line);
                match later < limit {
                    true => ControlFlow::Continue(()),
                    false => ControlFlow::Break(()),
                }
            })?;
            Ok(lines)
        }
        Piece::Newest { until } => {
            // The record has no "newest first" read: windows further and
            // further back, each read in order, until enough lines are found,
            // so a room's whole past is read only when it is asked for.
            let mut lines: Vec<HistoryLine> = Vec::new();
            let (mut end, mut look) = (until, FIRST_LOOK_MS);
            loop {
                let since = (look < LONGEST_LOOK_MS).then(|| end.saturating_sub(look));
                let mut found = Vec::new();
                lines_in(record, &window(since, end), &mut |line| {
                    found.push(line);
                    ControlFlow::Continue(())
                })?;
                found.append(&mut lines);
                lines = found;
                let earlier = lines.iter().filter(|l| l.ts_ms < until).count();
                match since {
                    Some(since) if earlier < limit => {
                        // The next window ends where this one began, excluded.
                        end = since - 1;
                        look = look.saturating_mul(8);
                    }
                    _ => break,
                }
            }
            let earlier = lines.iter().filter(|l| l.ts_ms < until).count();
            lines.drain(..earlier.saturating_sub(limit));
            Ok(lines)
        }
    }
}

/// Calls `each` with the chat lines and actions of `selection`, in order,
/// leaving out erased ones.
fn lines_in(
    record: &dyn RecordRead,
    selection: &Selection,
    each: &mut dyn FnMut(HistoryLine) -> ControlFlow<()>,
) -> anyhow::Result<()> {
    record.each_event(selection, &mut |event| {
        let action = match event.kind() {
            Some(EventKind::Chat) => false,
            Some(EventKind::Action) => true,
            _ => return ControlFlow::Continue(()),
        };
        match event.text {
            Some(text) if text != ERASED => each(HistoryLine {
                ts_ms: event.ts_ms,
                sender: event.sender.into(),
                text: text.into(),
                action,
            }),
            _ => ControlFlow::Continue(()),
        }
    })?;
    Ok(())
}

/// The record's `older` lines (as [`read`] gave them, in pieces) before the
/// in-memory `lines`: one list, oldest first, each line once. Of the lines of
/// the millisecond the kept ones begin with, those kept are taken from memory.
pub fn merge(mut older: Vec<HistoryLine>, lines: &[HistoryLine]) -> Vec<HistoryLine> {
    let id = |line: &HistoryLine| msgid(line.ts_ms, &line.sender, &line.text, line.action);
    let start = lines.first().map_or(i64::MAX, |line| line.ts_ms);
    let kept: Vec<String> = lines
        .iter()
        .take_while(|line| line.ts_ms == start)
        .map(id)
        .collect();
    // Stable: lines of one millisecond stay in the order they were said.
    older.sort_by_key(|line| line.ts_ms);
    let mut seen = std::collections::HashSet::new();
    older.retain(|line| {
        let id = id(line);
        line.ts_ms <= start && !kept.contains(&id) && seen.insert(id)
    });
    older.extend_from_slice(lines);
    older
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::irc::chathistory::select;

    fn line(ts_ms: i64, text: &str) -> HistoryLine {
        HistoryLine {
            ts_ms,
            sender: "ann".into(),
            text: text.into(),
            action: false,
        }
    }

    fn texts(lines: &[HistoryLine]) -> Vec<&str> {
        lines.iter().map(|l| &*l.text).collect()
    }

    #[test]
    fn the_record_is_read_only_for_what_memory_does_not_hold() {
        let kept = [line(5000, "five"), line(6000, "six")];
        let plan = |sub: &str, args: &[&str], answered: usize| {
            let answer = vec![line(9000, "an answer"); answered];
            plan(&kept, sub, args, 4, &answer).map(|p| p.pieces)
        };
        let five = format!("msgid={}", msgid(5000, "ann", "five", false));
        assert_eq!(plan("BEFORE", &[&five, "9"], 4), None, "answered in full");
        let at_start = vec![
            Piece::Newest { until: 5000 },
            Piece::Oldest {
                since: 5000,
                until: 5000,
            },
        ];
        assert_eq!(plan("BEFORE", &[&five, "9"], 0), Some(at_start.clone()));
        assert_eq!(
            plan("LATEST", &["*", "3"], 2),
            Some(vec![Piece::Newest { until: 5000 }])
        );
        let six = format!("msgid={}", msgid(6000, "ann", "six", false));
        assert_eq!(plan("AFTER", &[&six, "3"], 1), None, "newer lines are kept");
        assert_eq!(
            plan("BEFORE", &[&six, "3"], 1),
            Some(vec![Piece::Newest { until: 5000 }])
        );
        let early = "timestamp=1970-01-01T00:00:01.000Z";
        assert_eq!(
            plan("AROUND", &[early, "3"], 0),
            Some(vec![
                Piece::Newest { until: 1000 },
                Piece::Oldest {
                    since: 1000,
                    until: 5000
                }
            ])
        );
        assert_eq!(plan("BEFORE", &["msgid=unknown", "3"], 0), None);
        let nothing_kept = super::plan(&kept, "BEFORE", &[&five, "3"], 0, &[]);
        assert_eq!(nothing_kept, None, "history.replay_lines = 0");
        // Whole answers that still miss older lines.
        assert_eq!(
            plan("AFTER", &[early, "3"], 3),
            Some(vec![
                Piece::Newest { until: 1000 },
                Piece::Oldest {
                    since: 1000,
                    until: 5000
                }
            ])
        );
        let cut = super::plan(&kept, "AROUND", &[&five, "2"], 4, &kept).map(|p| p.pieces);
        assert_eq!(cut, Some(at_start));
        assert_eq!(plan("LATEST", &[early, "3"], 3), None);
    }

    #[test]
    fn older_lines_go_before_the_kept_ones_once_each() {
        let kept = [line(5000, "five b"), line(6000, "six")];
        // Two reads that overlap, and a line of the kept millisecond on both
        // sides of the cut.
        let older = vec![
            line(3000, "three"),
            line(4000, "four"),
            line(5000, "five a"),
            line(5000, "five b"),
            line(4000, "four"),
        ];
        let all = merge(older, &kept);
        assert_eq!(texts(&all), ["three", "four", "five a", "five b", "six"]);
        let six = format!("msgid={}", msgid(6000, "ann", "six", false));
        let before = select(&all, "BEFORE", &[&six, "3"], 10).unwrap();
        assert_eq!(texts(&before), ["four", "five a", "five b"]);
    }

    #[test]
    fn the_newest_lines_are_found_however_far_back_and_erased_ones_never() {
        use crate::event::Event;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.database = dir.path().join("chat.db");
        let day = 86_400_000;
        let said = |ts_ms: i64, kind: EventKind, room: &str, text: &str| Event {
            ts_ms,
            kind,
            room: room.into(),
            sender: "ann".into(),
            recipient: None,
            text: Some(text.to_owned()),
            session: 1,
            account: None,
        };
        let events = [
            said(0, EventKind::Chat, "lobby", "first"),
            said(400 * day, EventKind::Action, "lobby", "waves"),
            said(400 * day + 1, EventKind::Chat, "lab", "elsewhere"),
            said(401 * day, EventKind::Chat, "lobby", ERASED),
            said(401 * day + 5, EventKind::Leave, "lobby", "bye"),
            said(402 * day, EventKind::Chat, "lobby", "kept"),
        ];
        let mut conn = store::open_database(&config.storage.database).unwrap();
        store::insert_events(&mut conn, &events).unwrap();
        drop(conn);
        let read = |pieces: Vec<Piece>, limit: usize| {
            let lines = read(&config, "lobby", &Plan { pieces, limit }).unwrap();
            texts(&lines)
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
        };
        let before_kept = Piece::Newest { until: 402 * day };
        assert_eq!(read(vec![before_kept], 2), ["first", "waves", "kept"]);
        assert_eq!(read(vec![before_kept], 1), ["waves", "kept"]);
        let since_first = Piece::Oldest {
            since: 0,
            until: 402 * day,
        };
        assert_eq!(read(vec![since_first], 1), ["first", "waves"]);
        let older = read_piece(
            &*store::open_record(&config).unwrap(),
            "lobby",
            Piece::Newest { until: 400 * day },
            5,
        )
        .unwrap();
        assert!(older[1].action && older[1].ts_ms == 400 * day, "{older:?}");
    }
}
