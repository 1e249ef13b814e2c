//! Counting: the events a filter selects, and one streaming pass over them that
//! tallies what each student did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use super::{Filter, ReportError};
use crate::event::EventKind;
use crate::store::{RecordRead, Selection};

/// The room of a filter as it is stored: `#Lab` and `lab` are both `lab`.
pub(super) fn room_of(filter: &Filter) -> Option<String> {
    let room = filter.room.as_deref()?.trim();
    Some(room.strip_prefix('#').unwrap_or(room).to_ascii_lowercase())
}

/// The room and time window of a filter, as a selection of events.
pub(super) fn window(filter: &Filter) -> Selection {
    Selection {
        room: room_of(filter),
        since: filter.since,
        until: filter.until,
        ..Selection::default()
    }
}

/// Who the counted events belong to: students by index, found by session or by
/// any of their names. Identity decides it; counting only asks.
pub(super) trait Students {
    /// The student a connection belongs to.
    fn of_session(&self, session: i64) -> Option<usize>;
    /// The student known by `name`.
    fn named(&self, name: &str) -> Option<usize>;
}

/// Something counted for each student, by index into the students.
pub(super) type PerStudent<T> = HashMap<usize, T>;

/// What one student did among the filtered events.
pub(super) struct Tally {
    pub(super) messages: u64,
    pub(super) private_messages: u64,
    pub(super) words: u64,
    pub(super) rooms: BTreeSet<String>,
    pub(super) first_ms: i64,
    pub(super) last_ms: i64,
    pub(super) instructor: bool,
    pub(super) moderation_actions: u64,
    pub(super) kicked: u64,
    pub(super) muted: u64,
    /// The sessions these events came from: the role an `/op` gave holds for the
    /// whole session, so these decide the `instructor` mark.
    pub(super) sessions: BTreeSet<i64>,
    pub(super) hands: u64,
    pub(super) questions: u64,
    /// Each poll's last vote: poll number to `CHOICE) TEXT`.
    pub(super) answers: BTreeMap<u64, String>,
}

impl Tally {
    /// Nothing counted yet: first and last seen at the far ends, so that the first
    /// event or stretch online sets both.
    pub(super) fn empty() -> Tally {
        Tally {
            messages: 0,
            private_messages: 0,
            words: 0,
            rooms: BTreeSet::new(),
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            instructor: false,
            moderation_actions: 0,
            kicked: 0,
            muted: 0,
            sessions: BTreeSet::new(),
            hands: 0,
            questions: 0,
            answers: BTreeMap::new(),
        }
    }

    /// Counts one event the student sent; `kind` is `None` for a kind this version
    /// does not know, which still counts as being seen.
    fn sent(&mut self, ts: i64, room: &str, kind: Option<EventKind>, text: Option<&str>) {
        use EventKind::*;
        (self.first_ms, self.last_ms) = (self.first_ms.min(ts), self.last_ms.max(ts));
        if !self.rooms.contains(room) {
            self.rooms.insert(room.to_owned());
        }
        match kind {
            // An action (`/me`) is said in the room like any chat line.
            Some(Chat | Action) => self.messages += 1,
            Some(Private) => self.private_messages += 1,
            Some(Op) => self.instructor = true,
            Some(Kick | Mute | Unmute | Announce | Quiet | Dm | Call | Poll | Close | Session) => {
                self.moderation_actions += 1
            }
            Some(Hand) => self.hands += 1,
            Some(Ask) => self.questions += 1,
            Some(Vote) => {
                // `N: CHOICE) TEXT`; a later vote in the same poll replaces it.
                let vote = text.and_then(|t| t.split_once(": "));
                if let Some((poll, answer)) = vote.and_then(|(n, a)| Some((n.parse().ok()?, a))) {
                    self.answers.insert(poll, answer.to_owned());
                }
            }
            Some(Join | Leave | Nick | Erase | Lower) | None => {}
        }
        if matches!(kind, Some(Chat | Action | Private)) {
            let words = text.unwrap_or("").split_whitespace().count();
            self.words += words as u64;
        }
    }
}

/// Kicks and mutes aimed at one student, counted apart from what they sent.
#[derive(Default)]
pub(super) struct Targeted {
    kicked: u64,
    muted: u64,
}

impl Targeted {
    /// The student a kick or mute is aimed at: whoever used the recipient name, in
    /// any case. A name never used as a sender belongs to no one.
    fn target(
        ids: &dyn Students,
        kind: Option<EventKind>,
        recipient: Option<&str>,
    ) -> Option<usize> {
        match kind {
            Some(EventKind::Kick | EventKind::Mute) => ids.named(recipient?),
            _ => None,
        }
    }

    fn count(&mut self, kind: Option<EventKind>) {
        match kind {
            Some(EventKind::Kick) => self.kicked += 1,
            Some(EventKind::Mute) => self.muted += 1,
            _ => {}
        }
    }
}

/// Streams the filtered events and counts them per student; students without a
/// matching event of their own get no tally. Kicks and mutes come back apart, to
/// be added with [`add_targeted`] once every row is known.
pub(super) fn tally_events(
    records: &dyn RecordRead,
    selection: &Selection,
    ids: &dyn Students,
) -> Result<(PerStudent<Tally>, PerStudent<Targeted>), ReportError> {
    let mut tallies: HashMap<usize, Tally> = HashMap::new();
    let mut targeted: HashMap<usize, Targeted> = HashMap::new();
    records.each_event(selection, &mut |event| {
        let kind = event.kind();
        if let Some(student) = Targeted::target(ids, kind, event.recipient) {
            targeted.entry(student).or_default().count(kind);
        }
        if let Some(student) = ids.of_session(event.session) {
            let tally = tallies.entry(student).or_insert_with(Tally::empty);
            tally.sessions.insert(event.session);
            tally.sent(event.ts_ms, event.room, kind, event.text);
        }
        ControlFlow::Continue(())
    })?;
    Ok((tallies, targeted))
}

/// Kicks and mutes count on the rows there are; being kicked or muted alone does
/// not make a row.
pub(super) fn add_targeted(
    tallies: &mut HashMap<usize, Tally>,
    targeted: HashMap<usize, Targeted>,
) {
    for (student, targeted) in targeted {
        if let Some(tally) = tallies.get_mut(&student) {
            (tally.kicked, tally.muted) = (targeted.kicked, targeted.muted);
        }
    }
}
