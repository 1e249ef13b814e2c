//! The hub's rules, without sockets, threads, a clock or a database.

use super::*;
use crate::protocol::{Command, DmPolicy};

const T0: i64 = 1_764_000_000_000;

fn settings() -> Settings {
    Settings {
        permanent_rooms: vec!["lobby".into(), "help".into()],
        reserved_nicks: vec!["admin".into()],
        instructor_names: vec!["prof".into()],
        ..Settings::example()
    }
}

fn hub() -> Hub {
    Hub::new(settings(), History::new(3))
}

/// The bodies of the lines `id` gets from an outcome, resolving room audiences
/// against the hub as it is now.
fn seen(hub: &Hub, outcome: &Outcome, id: ConnId) -> Vec<String> {
    outcome
        .deliveries
        .iter()
        .filter(|d| match &d.to {
            Audience::One(one) => *one == id,
            Audience::Room { room, except } => {
                *except != Some(id) && hub.room_members(room).contains(&id)
            }
            Audience::Everyone => hub.nick(id).is_some(),
        })
        .map(|d| d.line.line.to_string())
        .collect()
}

fn kinds(outcome: &Outcome) -> Vec<EventKind> {
    outcome.events.iter().map(|e| e.kind).collect()
}

fn join(hub: &mut Hub, id: ConnId, nick: &str) -> Outcome {
    hub.register(id, nick, Identity::default(), T0).unwrap()
}

fn run(hub: &mut Hub, id: ConnId, command: Command, now: i64) -> Result<Outcome, CommandError> {
    hub.perform(id, command, now)
}

#[test]
fn register_welcomes_announces_and_records() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    let out = join(&mut hub, 2, "bob");
    assert_eq!(
        seen(&hub, &out, 2)[0],
        "* Welcome, bob! You are in #lobby with 1 other. Type /help for commands."
    );
    assert_eq!(seen(&hub, &out, 1), vec!["* bob has joined #lobby"]);
    assert_eq!(kinds(&out), vec![EventKind::Join]);
    assert_eq!(
        hub.register(3, "BOB", Identity::default(), T0).unwrap_err(),
        NickError::Taken("BOB".into())
    );
    assert_eq!(
        hub.register(3, "admin", Identity::default(), T0)
            .unwrap_err(),
        NickError::Reserved("admin".into())
    );
}

#[test]
fn rooms_live_while_occupied_and_history_outlives_them() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    run(&mut hub, 1, Command::Join("lab".into()), T0).unwrap();
    assert_eq!(hub.room_members("lab"), &[1]);
    hub.chat(1, "one", T0 + 1).unwrap();
    run(&mut hub, 1, Command::Join("lobby".into()), T0 + 2).unwrap();
    assert!(hub.room_members("lab").is_empty());
    let out = run(&mut hub, 2, Command::Rooms, T0).unwrap();
    assert_eq!(seen(&hub, &out, 2), vec!["= Rooms: #help (0), #lobby (2)"]);
    // The empty room is gone, its history is not.
    let out = run(&mut hub, 2, Command::Join("lab".into()), T0 + 3).unwrap();
    assert_eq!(
        seen(&hub, &out, 2),
        vec![
            "* You are now in #lab with 0 others.",
            "* Last 1 message in #lab:",
            "amy: one",
            "* End of history.",
        ]
    );
    let replayed = out
        .deliveries
        .iter()
        .find(|d| d.line.line.to_string() == "amy: one")
        .unwrap();
    assert_eq!(
        replayed.line.ts_ms,
        T0 + 1,
        "replay keeps the original time"
    );
}

#[test]
fn replay_keeps_the_last_lines_and_never_private_ones() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    for i in 0..5 {
        hub.chat(1, &format!("line {i}"), T0 + i).unwrap();
    }
    run(
        &mut hub,
        1,
        Command::Msg {
            to: "amy".into(),
            text: "secret".into(),
        },
        T0,
    )
    .unwrap();
    let out = join(&mut hub, 2, "bob");
    let lines = seen(&hub, &out, 2);
    assert_eq!(
        lines[1..],
        [
            "* Last 3 messages in #lobby:",
            "amy: line 2",
            "amy: line 3",
            "amy: line 4",
            "* End of history."
        ]
    );
}

#[test]
fn max_rooms_counts_the_room_about_to_vanish() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    join(&mut hub, 3, "cat");
    // lobby + help + one + two = 4 = max_rooms.
    run(&mut hub, 1, Command::Join("one".into()), T0).unwrap();
    run(&mut hub, 2, Command::Join("two".into()), T0).unwrap();
    assert_eq!(
        run(&mut hub, 3, Command::Join("three".into()), T0).unwrap_err(),
        CommandError::TooManyRooms(4)
    );
    // Moving from `one`, which vanishes, to a new room is fine.
    run(&mut hub, 1, Command::Join("three".into()), T0).unwrap();
    assert!(hub.room_members("one").is_empty());
    // Back to a permanent room never counts.
    run(&mut hub, 2, Command::Join("lobby".into()), T0).unwrap();
}

#[test]
fn a_mute_outlives_a_reconnect_and_expires_on_time() {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    join(&mut hub, 2, "amy");
    hub.op(1, T0);
    let mute = Command::Mute {
        nick: "amy".into(),
        minutes: Some(2.0),
    };
    let out = run(&mut hub, 1, mute, T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 2),
        vec!["* You have been muted by prof for 2 minutes."]
    );
    hub.leave(2, LeaveReason::Closed, T0);
    hub.register(3, "AMY", Identity::default(), T0 + 1_000)
        .unwrap();
    assert_eq!(
        hub.chat(3, "hi", T0 + 1_000).unwrap_err(),
        CommandError::Muted(Some(2))
    );
    assert_eq!(
        hub.chat(3, "hi", T0 + 61_000).unwrap_err(),
        CommandError::Muted(Some(1))
    );
    let out = hub.chat(3, "hi", T0 + 120_000).unwrap();
    assert_eq!(seen(&hub, &out, 1), vec!["AMY: hi"]);
    // Once the mute is over, names may change again.
    run(&mut hub, 3, Command::Nick("amelia".into()), T0 + 120_000).unwrap();
}

#[test]
fn quiet_mode_lets_only_instructors_talk_and_students_reach_them() {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    join(&mut hub, 2, "amy");
    join(&mut hub, 3, "bob");
    assert_eq!(
        run(&mut hub, 2, Command::Quiet(true), T0).unwrap_err(),
        CommandError::PermissionDenied
    );
    hub.op(1, T0);
    let out = run(&mut hub, 1, Command::Quiet(true), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        vec!["* Quiet mode is on: only instructors can talk."]
    );
    assert_eq!(
        hub.chat(2, "psst", T0).unwrap_err(),
        CommandError::QuietMode
    );
    let to = |nick: &str| Command::Msg {
        to: nick.into(),
        text: "question".into(),
    };
    assert_eq!(
        run(&mut hub, 2, to("bob"), T0).unwrap_err(),
        CommandError::QuietMode
    );
    run(&mut hub, 2, to("prof"), T0).unwrap();
    hub.chat(1, "listen", T0).unwrap();
}

#[test]
fn every_departure_is_one_leave() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    let out = hub.leave(2, LeaveReason::TooSlow, T0);
    assert_eq!(
        seen(&hub, &out, 1),
        vec!["* bob has left #lobby (Too slow)"]
    );
    assert_eq!(kinds(&out), vec![EventKind::Leave]);
    let again = hub.leave(2, LeaveReason::Closed, T0);
    assert!(again.deliveries.is_empty() && again.events.is_empty());
    assert!(hub.is_name_free("bob"));
}

#[test]
fn a_kick_closes_the_target_with_one_leave() {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    join(&mut hub, 2, "amy");
    join(&mut hub, 3, "bob");
    hub.op(1, T0);
    let kick = Command::Kick {
        nick: "amy".into(),
        reason: Some("spam".into()),
    };
    let out = run(&mut hub, 1, kick, T0).unwrap();
    assert_eq!(out.closed, vec![2]);
    assert_eq!(
        seen(&hub, &out, 3),
        vec!["* amy has left #lobby (Kicked: spam)"]
    );
    assert_eq!(kinds(&out), vec![EventKind::Kick, EventKind::Leave]);
    assert!(hub.leave(2, LeaveReason::Closed, T0).events.is_empty());
}

#[test]
fn shutdown_tells_everyone_and_silences_departures() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    let out = hub.shutdown(T0);
    assert_eq!(seen(&hub, &out, 1), vec!["* Server is shutting down."]);
    let out = hub.leave(2, LeaveReason::Shutdown, T0);
    assert!(out.deliveries.is_empty());
    assert_eq!(kinds(&out), vec![EventKind::Leave]);
}

#[test]
fn who_sorts_and_marks_instructors() {
    let mut hub = hub();
    join(&mut hub, 1, "zed");
    join(&mut hub, 2, "Amy");
    join(&mut hub, 3, "bob");
    hub.op(1, T0);
    let out = run(&mut hub, 3, Command::Who, T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        vec!["= #lobby (3): Amy, bob, zed [instructor]"]
    );
}

#[test]
fn a_silenced_student_reaches_the_room_no_other_way() {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    join(&mut hub, 2, "amy");
    join(&mut hub, 3, "bob");
    hub.op(1, T0);
    let mute = Command::Mute {
        nick: "amy".into(),
        minutes: None,
    };
    run(&mut hub, 1, mute, T0).unwrap();
    assert_eq!(
        run(&mut hub, 2, Command::Nick("hey_all".into()), T0).unwrap_err(),
        CommandError::MutedNoNick
    );
    assert_eq!(
        run(&mut hub, 2, Command::Join("look-at-me".into()), T0).unwrap_err(),
        CommandError::NoNewRooms
    );
    // An existing room is fine, and so is a word to the instructor.
    run(&mut hub, 2, Command::Join("help".into()), T0).unwrap();
    let to_prof = Command::Msg {
        to: "prof".into(),
        text: "may I speak?".into(),
    };
    run(&mut hub, 2, to_prof, T0).unwrap();
    let quit = Command::Quit(Some("everyone read this".into()));
    let out = run(&mut hub, 2, quit, T0).unwrap();
    assert!(out
        .events
        .iter()
        .all(|e| e.text.as_deref() != Some("Quit: everyone read this")));
    assert_eq!(
        out.events.last().unwrap().text.as_deref(),
        Some("Quit"),
        "the reason is not shown"
    );
    // Quiet mode: the same for students, not for instructors.
    run(&mut hub, 1, Command::Quiet(true), T0).unwrap();
    assert_eq!(
        run(&mut hub, 3, Command::Nick("loud".into()), T0).unwrap_err(),
        CommandError::QuietNoNick
    );
    run(&mut hub, 1, Command::Nick("professor".into()), T0).unwrap();
}

#[test]
fn rooms_snapshot_lists_every_room_with_its_members_in_join_order() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    hub.op(2, T0);
    run(&mut hub, 1, Command::Join("lab".into()), T0).unwrap();
    join(&mut hub, 3, "cy");
    let snapshot: Vec<(String, Vec<(String, bool)>)> = hub
        .rooms_snapshot()
        .into_iter()
        .map(|(room, members)| {
            let members = members.into_iter().map(|(n, i)| (n.to_string(), i));
            (room.to_string(), members.collect())
        })
        .collect();
    let entry = |n: &str, i| (n.to_owned(), i);
    assert_eq!(
        snapshot,
        vec![
            ("help".to_owned(), vec![]),
            ("lab".to_owned(), vec![entry("amy", false)]),
            (
                "lobby".to_owned(),
                vec![entry("bob", true), entry("cy", false)]
            ),
        ]
    );
}

#[test]
fn only_an_instructor_renames_to_an_instructors_name() {
    let mut hub = hub();
    join(&mut hub, 1, "mallory");
    join(&mut hub, 2, "ta");
    assert_eq!(
        run(&mut hub, 1, Command::Nick("PROF".into()), T0).unwrap_err(),
        CommandError::Nick(NickError::Reserved("PROF".into()))
    );
    assert!(hub.is_name_free("prof"));
    hub.op(2, T0);
    run(&mut hub, 2, Command::Nick("prof".into()), T0).unwrap();
    assert_eq!(hub.nick(2).map(|n| n.to_string()), Some("prof".into()));
}

#[test]
fn the_same_person_takes_over_a_name_from_a_dead_connection() {
    let mut hub = hub();
    let amy = Identity {
        account: Some("amy".into()),
        rostered: true,
        ..Identity::default()
    };
    let bob = Identity {
        account: Some("bob".into()),
        rostered: true,
        ..Identity::default()
    };
    hub.register(1, "amy", amy.clone(), T0).unwrap();
    join(&mut hub, 2, "cat");
    // Someone else, or a guest without an account, cannot take it.
    assert!(!hub.may_register("amy", &bob));
    assert!(!hub.may_register("amy", &Identity::default()));
    assert_eq!(
        hub.register(3, "amy", bob, T0).unwrap_err(),
        NickError::Taken("amy".into())
    );
    assert!(hub.may_register("amy", &amy));
    let out = hub.register(4, "amy", amy, T0 + 1).unwrap();
    assert_eq!(out.closed, vec![1]);
    assert_eq!(
        seen(&hub, &out, 2),
        vec![
            "* amy has left #lobby (Logged in again)",
            "* amy has joined #lobby"
        ]
    );
    assert_eq!(kinds(&out), vec![EventKind::Leave, EventKind::Join]);
    assert!(out.deliveries.iter().any(|d| d.to == Audience::One(1)
        && d.line.line.to_string()
            == "* You logged in again from another connection; this one is closed."));
    assert_eq!(hub.member_count(), 2);
    // An instructor's name, proven by the password, is taken over the same way.
    let prof = Identity {
        instructor: true,
        ..Identity::default()
    };
    hub.register(5, "prof", prof.clone(), T0).unwrap();
    assert!(!hub.may_register("prof", &Identity::default()));
    assert_eq!(hub.register(6, "prof", prof, T0).unwrap().closed, vec![5]);
}

#[test]
fn a_kick_holds_by_name_and_by_address_for_names_without_a_code() {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    hub.op(1, T0);
    let here = Some(std::net::IpAddr::from([10, 0, 0, 7]));
    let sam = Identity {
        address: here,
        ..Identity::default()
    };
    hub.register(2, "sam", sam, T0).unwrap();
    let kick = Command::Kick {
        nick: "sam".into(),
        reason: None,
    };
    run(&mut hub, 1, kick, T0).unwrap();
    let later = T0 + 60_000;
    assert_eq!(hub.kicked("SAM", None, true, later), Some(9));
    // Another free name from the same address waits too, unless it has a code.
    assert_eq!(hub.kicked("sam2", here, false, later), Some(9));
    assert_eq!(hub.kicked("amy", here, true, later), None);
    assert_eq!(hub.kicked("sam2", None, false, later), None);
    assert_eq!(hub.kicked("sam", here, false, T0 + 600_000), None);
}

#[test]
fn a_big_room_sums_up_students_coming_and_going_but_announces_staff() {
    let mut hub = Hub::new(
        Settings {
            announce_joins_up_to: 2,
            ..settings()
        },
        History::new(3),
    );
    join(&mut hub, 1, "amy");
    let out = join(&mut hub, 2, "bob");
    assert_eq!(seen(&hub, &out, 1), vec!["* bob has joined #lobby"]);
    // From the third member on, nobody hears a join when it happens...
    for (id, nick) in [(3, "cy"), (4, "dee"), (5, "eve"), (6, "fay")] {
        let out = join(&mut hub, id, nick);
        assert!(seen(&hub, &out, 1).is_empty(), "{nick}");
        assert_eq!(kinds(&out), vec![EventKind::Join], "each join is recorded");
    }
    // ...but staff are always announced.
    let prof = Identity {
        instructor: true,
        ..Identity::default()
    };
    let out = hub.register(7, "prof", prof, T0).unwrap();
    assert_eq!(seen(&hub, &out, 1), vec!["* prof has joined #lobby"]);
    let out = hub.leave(5, LeaveReason::Quit(None), T0);
    assert!(seen(&hub, &out, 1).is_empty());
    assert_eq!(kinds(&out), vec![EventKind::Leave]);
    // The summary names the first three and counts the rest, once.
    let out = hub.announce_crowds(T0 + 5_000);
    assert_eq!(
        seen(&hub, &out, 1),
        vec![
            "* 4 people joined #lobby: cy, dee, eve and 1 more",
            "* 1 person left #lobby: eve",
        ]
    );
    assert!(hub.announce_crowds(T0 + 10_000).deliveries.is_empty());
}

/// `prof` (1, staff), `amy` (2) and `bob` (3) in `#lobby`.
fn class() -> Hub {
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    hub.op(1, T0);
    join(&mut hub, 2, "amy");
    join(&mut hub, 3, "bob");
    hub
}

fn msg(to: &str) -> Command {
    Command::Msg {
        to: to.into(),
        text: "psst".into(),
    }
}

#[test]
fn dm_staff_refuses_messages_between_students_and_passes_staff_s() {
    let mut hub = class();
    run(&mut hub, 2, Command::Dm(DmPolicy::Staff), T0).unwrap_err();
    let out = run(&mut hub, 1, Command::Dm(DmPolicy::Staff), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        ["* prof turned private messages between students off; students may still message staff."]
    );
    assert_eq!(kinds(&out), [EventKind::Dm]);
    assert_eq!(
        run(&mut hub, 2, msg("bob"), T0).unwrap_err(),
        CommandError::StudentMessagesOff
    );
    run(&mut hub, 2, msg("prof"), T0).unwrap();
    run(&mut hub, 1, msg("bob"), T0).unwrap();
    run(&mut hub, 1, Command::Dm(DmPolicy::Off), T0).unwrap();
    assert_eq!(
        run(&mut hub, 2, msg("prof"), T0).unwrap_err(),
        CommandError::PrivateMessagesOff
    );
    run(&mut hub, 1, msg("amy"), T0).unwrap();
}

#[test]
fn hands_queue_in_order_and_the_first_is_called_on() {
    let mut hub = class();
    let out = run(&mut hub, 3, Command::Hand(Some("part 2?".into())), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        ["* Your hand is up (number 1 in the queue); /hand again lowers it."]
    );
    assert_eq!(seen(&hub, &out, 1), ["* bob raised a hand: part 2?"]);
    assert!(seen(&hub, &out, 2).is_empty(), "classmates are not told");
    run(&mut hub, 2, Command::Hand(None), T0 + 60_000).unwrap();
    assert_eq!(
        run(&mut hub, 2, Command::Hands, T0).unwrap_err(),
        CommandError::PermissionDenied
    );
    let out = run(&mut hub, 1, Command::Hands, T0 + 180_000).unwrap();
    assert_eq!(
        seen(&hub, &out, 1),
        ["* Hands up in #lobby: 1) bob (3 min): part 2?, 2) amy (2 min)"]
    );
    let out = run(&mut hub, 1, Command::Next, T0).unwrap();
    assert_eq!(seen(&hub, &out, 2), ["* prof calls on bob"]);
    assert_eq!(kinds(&out), [EventKind::Call]);
    // /hand again lowers it; a hand leaves with its owner.
    let out = run(&mut hub, 2, Command::Hand(None), T0).unwrap();
    assert_eq!(seen(&hub, &out, 2), ["* Your hand is down."]);
    run(&mut hub, 2, Command::Hand(None), T0).unwrap();
    hub.leave(2, LeaveReason::Quit(None), T0);
    assert_eq!(
        run(&mut hub, 1, Command::Next, T0).unwrap_err(),
        CommandError::NoHands("lobby".into())
    );
}

#[test]
fn a_poll_counts_one_vote_each_the_last_one() {
    let mut hub = class();
    let poll = Command::Poll {
        question: "Ready?".into(),
        choices: vec!["yes".into(), "no".into()],
    };
    assert_eq!(
        run(&mut hub, 2, Command::Vote(1), T0).unwrap_err(),
        CommandError::NoPoll("lobby".into())
    );
    let out = run(&mut hub, 1, poll.clone(), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 2),
        ["* Poll 1: Ready? \u{2014} 1) yes 2) no; answer with /vote N"]
    );
    assert_eq!(
        run(&mut hub, 1, poll, T0).unwrap_err(),
        CommandError::PollOpen(1)
    );
    assert_eq!(
        run(&mut hub, 2, Command::Vote(3), T0).unwrap_err(),
        CommandError::NoSuchChoice(2)
    );
    let out = run(&mut hub, 2, Command::Vote(1), T0).unwrap();
    assert!(
        seen(&hub, &out, 3).is_empty(),
        "votes are not shown to classmates"
    );
    run(&mut hub, 2, Command::Vote(2), T0).unwrap();
    let out = run(&mut hub, 3, Command::Vote(2), T0).unwrap();
    assert_eq!(out.events[0].text.as_deref(), Some("1: 2) no"));
    let out = run(&mut hub, 1, Command::ClosePoll, T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        ["* Poll 1 closed: Ready? \u{2014} 1) yes: 0, 2) no: 2"]
    );
    assert_eq!(out.events[0].text.as_deref(), Some("1: yes=0 | no=2"));
}

#[test]
fn a_question_hides_its_author_from_students_only() {
    let mut hub = class();
    let out = run(&mut hub, 2, Command::Ask("is it on the exam?".into()), T0).unwrap();
    assert_eq!(seen(&hub, &out, 3), ["* Question: is it on the exam?"]);
    assert_eq!(seen(&hub, &out, 2), ["* Question: is it on the exam?"]);
    assert_eq!(
        seen(&hub, &out, 1),
        ["* Question: is it on the exam? [from amy]"]
    );
    assert_eq!(&*out.events[0].sender, "amy");
}

#[test]
fn staff_start_and_end_one_session_per_room_each_recorded() {
    let mut hub = class();
    let start = Command::StartSession(Some("Lab 3".into()));
    assert_eq!(
        run(&mut hub, 2, start.clone(), T0).unwrap_err(),
        CommandError::PermissionDenied
    );
    assert_eq!(
        run(&mut hub, 1, Command::EndSession, T0).unwrap_err(),
        CommandError::NoSession("lobby".into())
    );
    let out = run(&mut hub, 1, start.clone(), T0).unwrap();
    assert_eq!(seen(&hub, &out, 2), ["* prof started the session: Lab 3"]);
    assert_eq!(out.events[0].kind, EventKind::Session);
    assert_eq!(out.events[0].text.as_deref(), Some("start: Lab 3"));
    assert_eq!(
        run(&mut hub, 1, start, T0).unwrap_err(),
        CommandError::SessionRunning("lobby".into())
    );
    let out = run(&mut hub, 1, Command::EndSession, T0 + 50 * 60_000).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        ["* prof ended the session: Lab 3 (50 min)"]
    );
    assert_eq!(out.events[0].text.as_deref(), Some("end"));
    let out = run(&mut hub, 1, Command::StartSession(None), T0).unwrap();
    assert_eq!(out.events[0].text.as_deref(), Some("start"));
}

#[test]
fn the_instructor_page_sees_hands_the_poll_and_who_asked() {
    let mut hub = class();
    assert!(hub.room_tools().is_empty(), "idle rooms are left out");
    run(&mut hub, 3, Command::Hand(Some("part 2?".into())), T0).unwrap();
    let poll = Command::Poll {
        question: "Ready?".into(),
        choices: vec!["yes".into(), "no".into()],
    };
    run(&mut hub, 1, poll, T0).unwrap();
    run(&mut hub, 2, Command::Vote(2), T0).unwrap();
    run(
        &mut hub,
        2,
        Command::Ask("is it on the exam?".into()),
        T0 + 1,
    )
    .unwrap();
    let tools = hub.room_tools();
    let lobby = tools.iter().find(|r| r.room == "lobby").unwrap();
    assert_eq!(lobby.hands[0].nick, "bob");
    let poll = lobby.poll.as_ref().unwrap();
    assert_eq!(poll.counts, [("yes".to_owned(), 0), ("no".to_owned(), 1)]);
    assert_eq!(lobby.questions[0].from, "amy");
    assert_eq!(lobby.questions[0].at, T0 + 1);
}

#[test]
fn a_saved_hub_comes_back_whole_through_json() {
    // What a cluster snapshot holds must survive serde_json: addresses as map
    // keys (a kick by address), polls, hands, mutes, /dm and history.
    let mut hub = hub();
    join(&mut hub, 1, "prof");
    hub.op(1, T0);
    let sam = Identity {
        address: Some(std::net::IpAddr::from([10, 0, 0, 7])),
        ..Identity::default()
    };
    hub.register(2, "sam", sam, T0).unwrap();
    join(&mut hub, 3, "amy");
    join(&mut hub, 4, "bob");
    hub.chat(3, "hello", T0).unwrap();
    run(&mut hub, 4, Command::Hand(Some("me".into())), T0).unwrap();
    let poll = Command::Poll {
        question: "lunch?".into(),
        choices: vec!["yes".into(), "no".into()],
    };
    run(&mut hub, 1, poll, T0).unwrap();
    run(&mut hub, 3, Command::Vote(2), T0).unwrap();
    let mute = Command::Mute {
        nick: "bob".into(),
        minutes: Some(5.0),
    };
    run(&mut hub, 1, mute, T0).unwrap();
    run(&mut hub, 1, Command::Dm(DmPolicy::Staff), T0).unwrap();
    run(&mut hub, 1, Command::StartSession(Some("Lab".into())), T0).unwrap();
    run(&mut hub, 3, Command::Ask("why?".into()), T0).unwrap();
    let kick = Command::Kick {
        nick: "sam".into(),
        reason: None,
    };
    run(&mut hub, 1, kick, T0).unwrap();

    let saved = hub.save();
    let json = serde_json::to_vec(&saved).unwrap();
    let back: Saved = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, saved);
    let restored = Hub::restore(settings(), back);
    assert_eq!(restored.save(), saved);
    assert_eq!(restored.history.last("lobby", 3).len(), 1);
}

#[test]
fn away_is_kept_shown_to_the_room_and_to_whoever_writes_and_saved() {
    let mut hub = hub();
    join(&mut hub, 1, "amy");
    join(&mut hub, 2, "bob");
    let out = run(&mut hub, 1, Command::Away(Some("lunch".into())), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 1),
        ["* You have been marked as being away"]
    );
    assert_eq!(seen(&hub, &out, 2), ["* amy is now away: lunch"]);
    assert!(out.events.is_empty(), "away is not recorded");
    assert_eq!(hub.away_of("AMY"), Some("lunch"));
    // The same reason again tells nobody but amy.
    let out = run(&mut hub, 1, Command::Away(Some("lunch".into())), T0).unwrap();
    assert!(seen(&hub, &out, 2).is_empty());

    let Some(Answer::Who { members, .. }) = hub.who_answer(2) else {
        panic!("bob has a room");
    };
    let away: Vec<(&str, bool)> = members.iter().map(|m| (&*m.nick, m.away)).collect();
    assert_eq!(away, [("amy", true), ("bob", false)]);

    let pm = Command::Msg {
        to: "amy".into(),
        text: "there?".into(),
    };
    let out = run(&mut hub, 2, pm, T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 2),
        ["[PM to amy] there?", "* amy is away: lunch"]
    );
    assert_eq!(seen(&hub, &out, 1), ["[PM from bob] there?"]);

    // Joining a room while away says so after the join.
    join(&mut hub, 3, "cy");
    run(&mut hub, 3, Command::Join("lab".into()), T0).unwrap();
    let out = run(&mut hub, 1, Command::Join("lab".into()), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 3),
        ["* amy has joined #lab", "* amy is now away: lunch"]
    );

    // Kept in a snapshot; a snapshot from before away existed reads as here.
    let saved = hub.save();
    let json = serde_json::to_string(&saved).unwrap();
    let restored = Hub::restore(settings(), serde_json::from_str(&json).unwrap());
    assert_eq!(restored.away_of("amy"), Some("lunch"));
    let old = json
        .replace(r#","away":"lunch""#, "")
        .replace(r#","away":null"#, "");
    assert!(!old.contains("\"away\""), "{old}");
    let restored = Hub::restore(settings(), serde_json::from_str(&old).unwrap());
    assert_eq!(restored.away_of("amy"), None);

    let out = run(&mut hub, 1, Command::Away(None), T0).unwrap();
    assert_eq!(
        seen(&hub, &out, 1),
        ["* You are no longer marked as being away"]
    );
    assert_eq!(seen(&hub, &out, 3), ["* amy is back"]);
    assert_eq!(hub.away_of("amy"), None);
    let long = "x".repeat(AWAY_LEN + 50);
    run(&mut hub, 1, Command::Away(Some(long)), T0).unwrap();
    assert_eq!(hub.away_of("amy").map(str::len), Some(AWAY_LEN));

    // Quiet mode: away, but the words do not reach the room.
    hub.register(
        9,
        "prof",
        Identity {
            instructor: true,
            ..Identity::default()
        },
        T0,
    )
    .unwrap();
    run(&mut hub, 9, Command::Quiet(true), T0).unwrap();
    run(
        &mut hub,
        1,
        Command::Away(Some("psst, answer is 4".into())),
        T0,
    )
    .unwrap();
    assert_eq!(hub.away_of("amy"), Some(SILENT_AWAY));
}
