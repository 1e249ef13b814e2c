//! What instructors can do: become one with `/op`, and then kick, mute, unmute,
//! announce and quiet the class. Every action is recorded like any other event.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{ConnId, Hub, LeaveReason, Txn};
use crate::event::EventKind;
use crate::protocol::CommandError;

/// A mute without a duration lasts this long (a year), which reads as "until
/// `/unmute`".
pub(super) const FOREVER_MINUTES: u64 = 365 * 24 * 60;

/// Wrong `/op` passwords one address may try while the server runs.
const MAX_WRONG_PASSWORDS: u32 = 5;

impl Hub {
    /// Whether `id` may try `/op` at all: its current name is one of
    /// `access.instructors` and a password is configured.
    pub fn may_op(&self, id: ConnId) -> Result<(), CommandError> {
        let access = &self.config.access;
        let state = self.lock();
        let Some(member) = state.members.get(&id) else {
            return Ok(());
        };
        let listed = access
            .instructors
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&member.nick));
        if !listed || access.instructor_password.is_empty() {
            return Err(CommandError::PermissionDenied);
        }
        Ok(())
    }

    /// Whether `/op` may still be tried from this address.
    pub fn may_try_password(&self, peer: Option<IpAddr>) -> Result<(), CommandError> {
        let failures = peer.and_then(|ip| self.lock().op_failures.get(&ip).copied());
        match failures {
            Some(n) if n >= MAX_WRONG_PASSWORDS => Err(CommandError::TooManyPasswords),
            _ => Ok(()),
        }
    }

    /// Counts a wrong `/op` password against its address.
    pub fn password_failed(&self, peer: Option<IpAddr>) {
        if let Some(ip) = peer {
            *self.lock().op_failures.entry(ip).or_insert(0) += 1;
        }
    }

    /// Makes `id` an instructor; the password was checked by the caller.
    pub fn op(&self, id: ConnId) {
        self.with_state(|tx| {
            let Some((nick, room)) = tx.name_and_room(id) else {
                return;
            };
            if let Some(member) = tx.state.members.get_mut(&id) {
                member.instructor = true;
            }
            tx.tell(
                id,
                format_args!("* You are now an instructor. Type /help for your commands."),
            );
            tx.record(EventKind::Op, id, &room, &nick, None, None);
        });
    }

    /// `/kick NICK [REASON]`: the target is told why and disconnected; its room
    /// sees one leave notice, `Kicked: REASON`.
    pub fn kick(
        &self,
        id: ConnId,
        target: &str,
        reason: Option<String>,
    ) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let (nick, room) = tx.require_instructor(id)?;
            let (target_id, target_nick) = tx.find(target)?;
            match &reason {
                Some(why) => tx.tell(
                    target_id,
                    format_args!("* You have been kicked by {nick}: {why}"),
                ),
                None => tx.tell(target_id, format_args!("* You have been kicked by {nick}.")),
            }
            tx.record(
                EventKind::Kick,
                id,
                &room,
                &nick,
                Some(target_nick.clone()),
                reason.clone(),
            );
            tx.remove(target_id, &LeaveReason::Kicked(reason));
            if target_id != id {
                tx.tell(id, format_args!("* {target_nick} has been kicked."));
            }
            Ok(())
        })
    }

    /// `/mute NICK [MINUTES]`: the target's lines are refused until the time is up
    /// or an instructor unmutes them.
    pub fn mute(&self, id: ConnId, target: &str, minutes: Option<f64>) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let (nick, room) = tx.require_instructor(id)?;
            let (target_id, target_nick) = tx.find(target)?;
            let length = minutes.map_or(FOREVER_MINUTES as f64 * 60.0, |m| m * 60.0);
            let until = Instant::now() + Duration::from_secs_f64(length);
            tx.state
                .mutes
                .insert(target_nick.to_ascii_lowercase(), until);
            let time = minutes
                .map(|m| format!(" for {m} minutes"))
                .unwrap_or_default();
            tx.tell(
                target_id,
                format_args!("* You have been muted by {nick}{time}."),
            );
            tx.tell(id, format_args!("* {target_nick} is muted{time}."));
            let text = minutes.map(|m| m.to_string());
            tx.record(EventKind::Mute, id, &room, &nick, Some(target_nick), text);
            Ok(())
        })
    }

    /// `/unmute NICK`.
    pub fn unmute(&self, id: ConnId, target: &str) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let (nick, room) = tx.require_instructor(id)?;
            let (target_id, target_nick) = tx.find(target)?;
            let until = tx.state.mutes.remove(&target_nick.to_ascii_lowercase());
            if until.is_none_or(|until| until <= Instant::now()) {
                return Err(CommandError::NotMuted(target_nick.to_string()));
            }
            tx.tell(
                target_id,
                format_args!("* {nick} has unmuted you; you can talk again."),
            );
            tx.tell(id, format_args!("* {target_nick} can talk again."));
            tx.record(EventKind::Unmute, id, &room, &nick, Some(target_nick), None);
            Ok(())
        })
    }

    /// `/announce TEXT`: a notice to everyone in every room.
    pub fn announce(&self, id: ConnId, text: String) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let (nick, room) = tx.require_instructor(id)?;
            tx.tell_everyone(format_args!("* Announcement from {nick}: {text}"));
            tx.record(EventKind::Announce, id, &room, &nick, None, Some(text));
            Ok(())
        })
    }

    /// `/quiet on|off`: while on, only instructors' chat lines are delivered.
    pub fn quiet(&self, id: ConnId, on: bool) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let (nick, room) = tx.require_instructor(id)?;
            tx.state.quiet = on;
            if on {
                tx.tell_everyone(format_args!(
                    "* Quiet mode is on: only instructors can talk."
                ));
            } else {
                tx.tell_everyone(format_args!(
                    "* Quiet mode is off: everyone can talk again."
                ));
            }
            let text = if on { "on" } else { "off" };
            tx.record(
                EventKind::Quiet,
                id,
                &room,
                &nick,
                None,
                Some(text.to_owned()),
            );
            Ok(())
        })
    }
}

impl Txn<'_> {
    /// The name and room of `id` if it is an instructor.
    fn require_instructor(
        &self,
        id: ConnId,
    ) -> Result<(std::sync::Arc<str>, std::sync::Arc<str>), CommandError> {
        match self.state.members.get(&id) {
            Some(member) if member.instructor => Ok((member.nick.clone(), member.room.clone())),
            _ => Err(CommandError::PermissionDenied),
        }
    }
}
