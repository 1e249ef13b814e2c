//! What instructors can do: become one with `/op`, and then kick, mute, unmute,
//! announce and quiet the class. Every action is recorded like any other event.

use super::{ConnId, Hub, Step};
use crate::event::EventKind;
use crate::protocol::{CommandError, LeaveReason, Name, Notice, ServerLine};

/// A mute without a duration lasts this long (a year), which reads as "until
/// `/unmute`".
pub(super) const FOREVER_MINUTES: u64 = 365 * 24 * 60;

impl Hub {
    /// Makes `id` an instructor; the password was checked by the caller.
    pub fn op(&mut self, id: ConnId, now: i64) -> super::Outcome {
        let mut out = Step::new(now);
        if let Some((nick, room)) = self.name_and_room(id) {
            if let Some(member) = self.members.get_mut(&id) {
                member.instructor = true;
            }
            out.tell(id, Notice::NowInstructor);
            self.record(&mut out, EventKind::Op, id, &room, &nick, None, None);
        }
        out.done()
    }

    /// `/kick NICK [REASON]`: the target is told why and disconnected; its room
    /// sees one leave notice, `Kicked: REASON`.
    pub(super) fn kick(
        &mut self,
        out: &mut Step,
        id: ConnId,
        target: &str,
        reason: Option<String>,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let (target_id, target_nick) = self.find(target)?;
        out.tell(
            target_id,
            Notice::Kicked {
                by: nick.clone(),
                reason: reason.clone(),
            },
        );
        self.record(
            out,
            EventKind::Kick,
            id,
            &room,
            &nick,
            Some(target_nick.clone()),
            reason.clone(),
        );
        self.hold_out(target_id, &target_nick, out.now);
        self.remove(out, target_id, LeaveReason::Kicked(reason));
        out.outcome.closed.push(target_id);
        if target_id != id {
            out.tell(id, Notice::KickDone { nick: target_nick });
        }
        Ok(())
    }

    /// Keeps a kicked member out for `access.kick_minutes`, by name, account and
    /// address.
    fn hold_out(&mut self, id: ConnId, nick: &str, now: i64) {
        if self.settings.kick_ms <= 0 {
            return;
        }
        let until = now + self.settings.kick_ms;
        self.kicked.retain(|_, t| *t > now);
        self.kicked_addresses.retain(|_, t| *t > now);
        self.kicked.insert(nick.to_ascii_lowercase(), until);
        if let Some(member) = self.members.get(&id) {
            if let Some(account) = &member.account {
                self.kicked.insert(account.to_ascii_lowercase(), until);
            }
            if let Some(ip) = member.address {
                self.kicked_addresses.insert(ip, until);
            }
        }
    }

    /// `/mute NICK [MINUTES]`: the target's lines are refused until the time is up
    /// or an instructor unmutes them.
    pub(super) fn mute(
        &mut self,
        out: &mut Step,
        id: ConnId,
        target: &str,
        minutes: Option<f64>,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let (target_id, target_nick) = self.find(target)?;
        let length_ms = minutes.map_or(FOREVER_MINUTES as f64, |m| m) * 60_000.0;
        self.mutes.insert(
            target_nick.to_ascii_lowercase(),
            out.now.saturating_add(length_ms as i64),
        );
        out.tell(
            target_id,
            Notice::Muted {
                by: nick.clone(),
                minutes,
            },
        );
        out.tell(
            id,
            Notice::MuteDone {
                nick: target_nick.clone(),
                minutes,
            },
        );
        let text = minutes.map(|m| m.to_string());
        self.record(
            out,
            EventKind::Mute,
            id,
            &room,
            &nick,
            Some(target_nick),
            text,
        );
        Ok(())
    }

    /// `/unmute NICK`.
    pub(super) fn unmute(
        &mut self,
        out: &mut Step,
        id: ConnId,
        target: &str,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        let (target_id, target_nick) = self.find(target)?;
        let until = self.mutes.remove(&target_nick.to_ascii_lowercase());
        if until.is_none_or(|until| until <= out.now) {
            return Err(CommandError::NotMuted(target_nick.to_string()));
        }
        out.tell(target_id, Notice::Unmuted { by: nick.clone() });
        out.tell(
            id,
            Notice::UnmuteDone {
                nick: target_nick.clone(),
            },
        );
        self.record(
            out,
            EventKind::Unmute,
            id,
            &room,
            &nick,
            Some(target_nick),
            None,
        );
        Ok(())
    }

    /// `/announce TEXT`: a notice to everyone in every room.
    pub(super) fn announce(
        &mut self,
        out: &mut Step,
        id: ConnId,
        text: String,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        out.for_everyone(ServerLine::Notice(Notice::Announcement {
            from: nick.clone(),
            text: text.clone(),
        }));
        self.record(out, EventKind::Announce, id, &room, &nick, None, Some(text));
        Ok(())
    }

    /// `/quiet on|off`: while on, only instructors' chat lines are delivered.
    pub(super) fn quiet(
        &mut self,
        out: &mut Step,
        id: ConnId,
        on: bool,
    ) -> Result<(), CommandError> {
        let (nick, room) = self.require_instructor(id)?;
        self.quiet = on;
        out.for_everyone(ServerLine::Notice(Notice::Quiet(on)));
        let text = if on { "on" } else { "off" };
        self.record(
            out,
            EventKind::Quiet,
            id,
            &room,
            &nick,
            None,
            Some(text.to_owned()),
        );
        Ok(())
    }

    /// The name and room of `id` if it is an instructor.
    pub(super) fn require_instructor(&self, id: ConnId) -> Result<(Name, Name), CommandError> {
        match self.members.get(&id) {
            Some(member) if member.instructor || member.assistant => {
                Ok((member.nick.clone(), member.room.clone()))
            }
            _ => Err(CommandError::PermissionDenied),
        }
    }
}
