//! The tools of a live class (SPEC 11): whom students may message privately,
//! raised hands, polls and anonymous questions. Staff (instructors) run them;
//! every step is recorded like any other event, so the report and the instructor
//! page can tell who raised a hand, what each student answered and who asked.

use std::collections::HashMap;

use serde::Serialize;

use super::{ConnId, Hub, Step};
use crate::event::EventKind;
use crate::protocol::{CommandError, DmPolicy, Hand, Name, Notice, ServerLine};

/// One hand in a room's queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct RaisedHand {
    pub(super) id: ConnId,
    /// When it went up (UTC ms).
    since: i64,
    text: Option<String>,
}

/// A room's open poll.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Poll {
    number: u32,
    question: String,
    choices: Vec<String>,
    /// Each voter's choice (from 1), by account or lower-cased name: one vote
    /// each, the last one counts.
    votes: HashMap<String, usize>,
}

/// How many of a room's questions staff see on the instructor page.
const QUESTIONS_KEPT: usize = 20;

/// A question asked with `/ask`, kept for staff with its author.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Asked {
    at: i64,
    from: Name,
    text: String,
}

/// A room's class tools as the instructor page shows them, live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomTools {
    /// The room.
    pub room: String,
    /// The class session staff are running in it.
    pub session: Option<LiveSession>,
    /// The raised hands, first first.
    pub hands: Vec<LiveHand>,
    /// The open poll, with its counts so far.
    pub poll: Option<LivePoll>,
    /// The last questions asked, newest last, with their authors.
    pub questions: Vec<LiveQuestion>,
}

/// A running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveSession {
    /// Its title, if given.
    pub title: Option<String>,
    /// When it started, UTC ms.
    pub since: i64,
}

/// A raised hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveHand {
    /// Whose.
    pub nick: String,
    /// Since when, UTC ms.
    pub since: i64,
    /// What about, if said.
    pub text: Option<String>,
}

/// An open poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePoll {
    /// Its number.
    pub number: u32,
    /// The question.
    pub question: String,
    /// Each choice with its votes so far.
    pub counts: Vec<(String, usize)>,
}

/// A question asked with `/ask`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveQuestion {
    /// When, UTC ms.
    pub at: i64,
    /// Who asked: staff see it.
    pub from: String,
    /// The question.
    pub text: String,
}

/// A room's class session, started by staff.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Session {
    title: Option<String>,
    /// When it started (UTC ms).
    since: i64,
}

impl Poll {
    /// Each choice with its votes.
    fn counts(&self) -> Vec<(String, usize)> {
        let mut counts = vec![0; self.choices.len()];
        for choice in self.votes.values() {
            counts[choice - 1] += 1;
        }
        self.choices.iter().cloned().zip(counts).collect()
    }

    fn live(&self) -> LivePoll {
        LivePoll {
            number: self.number,
            question: self.question.clone(),
            counts: self.counts(),
        }
    }
}

impl Hub {
    /// Instructors and teaching assistants.
    pub(super) fn is_staff(&self, id: ConnId) -> bool {
        self.members
            .get(&id)
            .is_some_and(|m| m.instructor || m.assistant)
    }

    /// Refuses a student's private message that `/dm` does not allow. Staff's
    /// messages always pass, and under `staff` so do students' messages to staff.
    pub(super) fn check_dm(&self, from: ConnId, to_staff: bool) -> Result<(), CommandError> {
        match self.dm {
            _ if self.is_staff(from) => Ok(()),
            DmPolicy::Everyone => Ok(()),
            DmPolicy::Staff if to_staff => Ok(()),
            DmPolicy::Staff => Err(CommandError::StudentMessagesOff),
            DmPolicy::Off => Err(CommandError::PrivateMessagesOff),
        }
    }

    /// `/dm everyone|staff|off`, told to everyone.
    pub(super) fn set_dm(
        &mut self,
        out: &mut Step,
        id: ConnId,
        policy: DmPolicy,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        self.dm = policy;
        out.for_everyone(ServerLine::Notice(Notice::DmPolicy {
            by: nick.clone(),
            policy,
        }));
        let text = Some(policy.as_str().to_owned());
        self.record(out, EventKind::Dm, id, &room, &nick, None, text);
        Ok(())
    }

    /// `/hand [TEXT]`: into the room's queue, or out of it if already there. The
    /// staff in the room hear of a new hand; a muted student may raise one, but
    /// not say anything with it.
    pub(super) fn hand(
        &mut self,
        out: &mut Step,
        id: ConnId,
        text: Option<String>,
    ) -> Result<(), CommandError> {
        let Some((nick, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        if text.is_some() {
            self.check_may_talk(id, false, out.now)?;
        }
        let Some(entry) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        if let Some(place) = entry.hands.iter().position(|h| h.id == id) {
            entry.hands.remove(place);
            out.tell(id, Notice::HandDown);
            self.record(out, EventKind::Lower, id, &room, &nick, None, None);
            return Ok(());
        }
        entry.hands.push(RaisedHand {
            id,
            since: out.now,
            text: text.clone(),
        });
        out.tell(
            id,
            Notice::HandUp {
                place: entry.hands.len(),
            },
        );
        let members = entry.members.clone();
        let staff = members
            .into_iter()
            .filter(|m| *m != id && self.is_staff(*m));
        for member in staff.collect::<Vec<_>>() {
            let notice = Notice::HandRaised {
                nick: nick.clone(),
                text: text.clone(),
            };
            out.tell(member, notice);
        }
        self.record(out, EventKind::Hand, id, &room, &nick, None, text);
        Ok(())
    }

    /// `/hands`: the room's queue, with how long each hand has been up.
    pub(super) fn hands(&self, out: &mut Step, id: ConnId) -> Result<(), CommandError> {
        let (_, room) = self.require_instructor(id)?;
        let hands = self.rooms.get(&room).map_or(&[][..], |r| &r.hands[..]);
        let queue = hands
            .iter()
            .filter_map(|hand| {
                Some(Hand {
                    nick: self.members.get(&hand.id)?.nick.clone(),
                    minutes: (out.now - hand.since).max(0) as u64 / 60_000,
                    text: hand.text.clone(),
                })
            })
            .collect();
        out.tell(id, Notice::Hands { room, queue });
        Ok(())
    }

    /// `/next`: the first hand is called on, in front of the room.
    pub(super) fn next_hand(&mut self, out: &mut Step, id: ConnId) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let first = match self.rooms.get_mut(&room) {
            Some(entry) if !entry.hands.is_empty() => entry.hands.remove(0),
            _ => return Err(CommandError::NoHands(room.to_string())),
        };
        let called: Name = self.members[&first.id].nick.clone();
        let notice = Notice::CalledOn {
            by: nick.clone(),
            nick: called.clone(),
        };
        out.for_room(&room, None, ServerLine::Notice(notice));
        self.record(out, EventKind::Call, id, &room, &nick, Some(called), None);
        Ok(())
    }

    /// `/poll QUESTION | CHOICE | ...`: one open poll per room at a time.
    pub(super) fn open_poll(
        &mut self,
        out: &mut Step,
        id: ConnId,
        question: String,
        choices: Vec<String>,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let Some(entry) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        if let Some(open) = &entry.poll {
            return Err(CommandError::PollOpen(open.number));
        }
        self.polls += 1;
        let number = self.polls;
        let text = format!("{number}: {question} | {}", choices.join(" | "));
        entry.poll = Some(Poll {
            number,
            question: question.clone(),
            choices: choices.clone(),
            votes: HashMap::new(),
        });
        let notice = Notice::PollOpened {
            number,
            question,
            choices,
        };
        out.for_room(&room, None, ServerLine::Notice(notice));
        self.record(out, EventKind::Poll, id, &room, &nick, None, Some(text));
        Ok(())
    }

    /// `/vote N`: the voter's answer to the room's poll, replacing an earlier one.
    /// Nobody else hears of it; the counts come when the poll closes.
    pub(super) fn vote(
        &mut self,
        out: &mut Step,
        id: ConnId,
        choice: usize,
    ) -> Result<(), CommandError> {
        let Some((nick, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        let voter = match &self.members[&id].account {
            Some(account) => account.to_ascii_lowercase(),
            None => nick.to_ascii_lowercase(),
        };
        let poll = self
            .rooms
            .get_mut(&room)
            .and_then(|entry| entry.poll.as_mut())
            .ok_or_else(|| CommandError::NoPoll(room.to_string()))?;
        let Some(text) = choice.checked_sub(1).and_then(|i| poll.choices.get(i)) else {
            return Err(CommandError::NoSuchChoice(poll.choices.len()));
        };
        let (number, text) = (poll.number, text.clone());
        poll.votes.insert(voter, choice);
        let recorded = format!("{number}: {choice}) {text}");
        out.tell(
            id,
            Notice::Voted {
                number,
                choice,
                text,
            },
        );
        self.record(out, EventKind::Vote, id, &room, &nick, None, Some(recorded));
        Ok(())
    }

    /// `/poll close`: the counts, to the room.
    pub(super) fn close_poll(&mut self, out: &mut Step, id: ConnId) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let poll = self
            .rooms
            .get_mut(&room)
            .and_then(|entry| entry.poll.take())
            .ok_or_else(|| CommandError::NoPoll(room.to_string()))?;
        let results = poll.counts();
        let text: Vec<String> = results.iter().map(|(c, n)| format!("{c}={n}")).collect();
        let text = format!("{}: {}", poll.number, text.join(" | "));
        let notice = Notice::PollClosed {
            number: poll.number,
            question: poll.question,
            results,
        };
        out.for_room(&room, None, ServerLine::Notice(notice));
        self.record(out, EventKind::Close, id, &room, &nick, None, Some(text));
        Ok(())
    }

    /// `/ask TEXT`: the room sees the question without its author, staff with it;
    /// the record keeps the author. A muted student cannot ask.
    pub(super) fn ask(
        &mut self,
        out: &mut Step,
        id: ConnId,
        text: String,
    ) -> Result<(), CommandError> {
        let Some((nick, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        self.check_may_talk(id, false, out.now)?;
        for &member in self.room_members(&room) {
            let from = self.is_staff(member).then(|| nick.clone());
            let notice = Notice::Question {
                text: text.clone(),
                from,
            };
            out.tell(member, notice);
        }
        if let Some(entry) = self.rooms.get_mut(&room) {
            if entry.questions.len() == QUESTIONS_KEPT {
                entry.questions.pop_front();
            }
            entry.questions.push_back(Asked {
                at: out.now,
                from: nick.clone(),
                text: text.clone(),
            });
        }
        self.record(out, EventKind::Ask, id, &room, &nick, None, Some(text));
        Ok(())
    }

    /// The tools of each room that uses any now, in room order, for the
    /// instructor page. Built under the switchboard's lock, so idle rooms cost
    /// nothing.
    pub fn room_tools(&self) -> Vec<RoomTools> {
        self.rooms
            .iter()
            .filter(|(_, room)| {
                room.session.is_some()
                    || !room.hands.is_empty()
                    || room.poll.is_some()
                    || !room.questions.is_empty()
            })
            .map(|(name, room)| RoomTools {
                room: name.to_string(),
                session: room.session.as_ref().map(|s| LiveSession {
                    title: s.title.clone(),
                    since: s.since,
                }),
                hands: room
                    .hands
                    .iter()
                    .filter_map(|hand| {
                        Some(LiveHand {
                            nick: self.members.get(&hand.id)?.nick.to_string(),
                            since: hand.since,
                            text: hand.text.clone(),
                        })
                    })
                    .collect(),
                poll: room.poll.as_ref().map(Poll::live),
                questions: room
                    .questions
                    .iter()
                    .map(|q| LiveQuestion {
                        at: q.at,
                        from: q.from.to_string(),
                        text: q.text.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// `/session start [TITLE]`: a class session begins in the room, for
    /// attendance (`report --by session`); one at a time per room.
    pub(super) fn start_session(
        &mut self,
        out: &mut Step,
        id: ConnId,
        title: Option<String>,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let Some(entry) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        if entry.session.is_some() {
            return Err(CommandError::SessionRunning(room.to_string()));
        }
        entry.session = Some(Session {
            title: title.clone(),
            since: out.now,
        });
        let text = match &title {
            Some(title) => format!("start: {title}"),
            None => "start".to_owned(),
        };
        let notice = Notice::SessionStarted {
            by: nick.clone(),
            title,
        };
        out.for_room(&room, None, ServerLine::Notice(notice));
        self.record(out, EventKind::Session, id, &room, &nick, None, Some(text));
        Ok(())
    }

    /// `/session end`: the room's session ends.
    pub(super) fn end_session(&mut self, out: &mut Step, id: ConnId) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let session = self
            .rooms
            .get_mut(&room)
            .and_then(|entry| entry.session.take())
            .ok_or_else(|| CommandError::NoSession(room.to_string()))?;
        let notice = Notice::SessionEnded {
            by: nick.clone(),
            title: session.title,
            minutes: (out.now - session.since).max(0) as u64 / 60_000,
        };
        out.for_room(&room, None, ServerLine::Notice(notice));
        let text = Some("end".to_owned());
        self.record(out, EventKind::Session, id, &room, &nick, None, text);
        Ok(())
    }
}
