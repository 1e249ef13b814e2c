//! `HELP` over IRC: the commands as an IRC user types them (`/join #lab`,
//! `/quote ANNOUNCE text`), not as the line port's `/help` words them, since an
//! IRC client takes `/join lab` or `/announce` for its own commands and fails.
//!
//! The hub still answers `HELP` (it knows who is staff, on every node); the
//! writer swaps its answer, a line at a time, for these lists: the line port's
//! first line of each list starts this one, the others are left out.

use crate::protocol::line::{HELP, INSTRUCTOR_HELP};

/// Everyone's commands.
const EVERYONE: &[&str] = &[
    "Commands, as typed in an IRC client:",
    "/join #lab            go to #lab (one channel at a time; created if new)",
    "/part                 back to the channel everyone starts in",
    "/msg nick text        a private message to nick, in any channel",
    "/nick newname         change your name",
    "/names or /who        who is in your channel",
    "/list                 the channels, and how many are in each",
    "/me waves             an action: * yourname waves",
    "/away [reason]        marked away; /away alone: back",
    "/quote HAND [text]    raise your hand (again: lower it)",
    "/quote VOTE 2         answer the channel's poll",
    "/quote ASK :question  ask the channel without your name",
    "/quote ROOMS          the rooms, as classchat lists them",
    "/quote OP password    become an instructor",
    "/quote HELP           this list",
    "/quit [reason]        leave",
];

/// What staff may do besides.
const STAFF: &[&str] = &[
    "Instructor commands:",
    "/kick nick [reason]           remove nick from the server",
    "/quote MUTE nick [minutes]    refuse nick's lines (until UNMUTE if no minutes)",
    "/quote UNMUTE nick            let nick talk again",
    "/quote ANNOUNCE text          a notice to every channel",
    "/quote QUIET on|off           only instructors can talk while on",
    "/quote DM everyone|staff|off  whom students may message privately",
    "/quote HANDS                  the channel's raised hands, first first",
    "/quote NEXT                   call on the first raised hand",
    "/quote POLL :question | a | b open a poll (2 to 9 choices)",
    "/quote POLL close             close it and show the counts",
    "/quote SESSION start [title]  a class session begins here (attendance)",
    "/quote SESSION end            it ends",
];

/// The IRC lines that stand for one line of the hub's `/help` answer: a whole
/// list for its first line, nothing for the rest.
pub fn lines_for(help_line: &str) -> &'static [&'static str] {
    if HELP.first() == Some(&help_line) {
        EVERYONE
    } else if INSTRUCTOR_HELP.first() == Some(&help_line) {
        STAFF
    } else {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_list_stands_for_the_line_port_s_list_and_names_irc_commands() {
        assert_eq!(lines_for(HELP[0]), EVERYONE);
        assert_eq!(lines_for(INSTRUCTOR_HELP[0]), STAFF);
        assert!(HELP[1..].iter().all(|line| lines_for(line).is_empty()));
        for line in EVERYONE[1..].iter().chain(&STAFF[1..]) {
            assert!(line.starts_with('/'), "{line}");
            // Nothing an IRC client would take for its own different command.
            assert!(!line.starts_with("/announce"), "{line}");
        }
    }
}
