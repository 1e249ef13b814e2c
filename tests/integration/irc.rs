//! The IRC listener (SPEC section 7), spoken raw: registration, every verb and its
//! numerics, IRC and line users in one room, history with and without
//! server-time, the join code through `PASS`, bad input; and irssi itself.

use classchat::config::Config;

use crate::access::{password_hash, PASSWORD};
use crate::harness::{enable_irc, IrcClient, IrcLine, TestServer};

async fn irc_server() -> TestServer {
    TestServer::start_with(enable_irc).await
}

async fn irc_server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|config| {
        enable_irc(config);
        tweak(config);
    })
    .await
}

/// Reads the numerics of a welcome, `001` to `376`, and returns them.
async fn expect_welcome(client: &mut IrcClient) -> Vec<IrcLine> {
    let mut lines = Vec::new();
    loop {
        let line = client.next_line().await;
        let done = line.verb == "376";
        lines.push(line);
        if done {
            return lines;
        }
    }
}

#[tokio::test]
async fn registration_without_cap_welcomes_and_joins_the_default_room() {
    let server = irc_server_with(|c| c.server.motd = "Be kind.".into()).await;
    let mut ann = server.irc().await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :Ann A").await;
    let welcome = expect_welcome(&mut ann).await;
    let verbs: Vec<&str> = welcome.iter().map(|l| l.verb.as_str()).collect();
    assert_eq!(
        verbs,
        ["001", "002", "003", "004", "005", "375", "372", "372", "376"]
    );
    assert!(welcome
        .iter()
        .all(|l| l.params[0] == "ann" && l.time.is_none()));
    let isupport = welcome[4].params.join(" ");
    for token in [
        "CHANTYPES=#",
        "CASEMAPPING=ascii",
        "NICKLEN=16",
        "CHANNELLEN=33",
        "NETWORK=classchat",
    ] {
        assert!(isupport.contains(token), "{isupport}");
    }
    assert_eq!(welcome[6].text(), "- Be kind.");
    assert!(welcome[7].text().contains("recorded"));
    let join = ann.expect_next("JOIN").await;
    assert_eq!(join.source.as_deref(), Some("ann!ann@classchat"));
    assert_eq!(join.params, ["#lobby"]);
    let names = ann.expect_next("353").await;
    assert_eq!(names.params, ["ann", "=", "#lobby", "ann"]);
    ann.expect_next("366").await;
    ann.expect_nothing_pending().await;
}

#[tokio::test]
async fn with_cap_the_welcome_waits_for_cap_end_and_every_line_has_a_time() {
    let server = irc_server().await;
    let mut ann = server.irc().await;
    ann.send("CAP LS 302").await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :Ann").await;
    let ls = ann.expect_next("CAP").await;
    assert_eq!(ls.params[..2], ["*", "LS"]);
    assert!(
        ls.text().split(' ').any(|c| c == "server-time"),
        "{}",
        ls.raw
    );
    ann.send("CAP REQ :server-time frobnicate").await;
    let nak = ann.expect_next("CAP").await;
    assert_eq!(nak.params[1..], ["NAK", "server-time frobnicate"]);
    ann.send("CAP REQ :server-time").await;
    let ack = ann.expect_next("CAP").await;
    assert_eq!(ack.params[1..], ["ACK", "server-time"]);
    // Still negotiating: a PING is answered, no welcome comes.
    ann.expect_nothing_pending().await;
    ann.send("CAP END").await;
    let welcome = expect_welcome(&mut ann).await;
    assert_eq!(welcome[0].verb, "001");
    for line in &welcome {
        let time = line.time.as_deref().expect("every line has a time");
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    }
    let join = ann.expect_next("JOIN").await;
    assert!(join.time.is_some());
    ann.send("CAP LIST").await;
    let list = ann.expect_verb("CAP").await;
    assert_eq!(list.params[1..], ["LIST", "server-time"]);
}

#[tokio::test]
async fn registration_errors_have_their_numerics() {
    let server = irc_server().await;
    let _bob = server.login("bob").await;
    let mut c = server.irc().await;
    c.send("PRIVMSG #lobby :too early").await;
    assert_eq!(c.expect_next("451").await.params[1], "PRIVMSG");
    c.send("USER x").await;
    assert_eq!(c.expect_next("461").await.params[1], "USER");
    c.send("NICK").await;
    c.expect_next("431").await;
    c.send("NICK 1abc").await;
    c.send("USER x 0 * :X").await;
    let bad = c.expect_next("432").await;
    assert_eq!(bad.params[1], "1abc");
    c.send("NICK Bob").await;
    let taken = c.expect_next("433").await;
    assert_eq!(taken.params[1], "Bob");
    c.send("NICK carol").await;
    c.expect_next("001").await;
    c.expect_verb("366").await;
    c.send("USER again 0 * :again").await;
    c.expect_next("462").await;
}

#[tokio::test]
async fn the_join_code_comes_with_pass() {
    let server = irc_server_with(|c| c.access.join_code = "owl-42".into()).await;
    // No PASS: 464, and the connection stays for one.
    let mut ann = server.irc().await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :Ann").await;
    let asked = ann.expect_next("464").await;
    assert!(asked.text().contains("code"), "{}", asked.raw);
    ann.send("PASS owl-41").await;
    let wrong = ann.expect_next("464").await;
    assert!(wrong.text().starts_with("Wrong code"), "{}", wrong.raw);
    ann.send("PASS OWL-42").await;
    ann.expect_next("001").await;
    ann.expect_verb("366").await;
    // PASS first, as irssi's /connect HOST PORT CODE sends it.
    let mut bob = server.irc().await;
    bob.send("PASS owl-42").await;
    bob.send("NICK bob").await;
    bob.send("USER bob 0 * :Bob").await;
    bob.expect_next("001").await;
    // Too many wrong codes: ERROR and closed.
    let mut eve = server.irc().await;
    eve.send("NICK eve").await;
    eve.send("USER eve 0 * :Eve").await;
    eve.expect_next("464").await;
    for _ in 0..3 {
        eve.send("PASS nope").await;
    }
    let closing = eve.expect_closed().await;
    let last = closing.last().expect("a last line");
    assert_eq!(last.verb, "ERROR", "{closing:#?}");
    assert_eq!(last.text(), "Wrong code. Too many wrong codes; goodbye.");
}

#[tokio::test]
async fn irc_and_line_users_share_a_room_both_ways() {
    let server = irc_server().await;
    let mut bob = server.login("bob").await;
    let mut ann = server.irc_login("ann").await;
    bob.expect("* ann has joined #lobby").await;

    ann.send("PRIVMSG #lobby :hello from \x02irc\x02 \x0304,01red\x03")
        .await;
    bob.expect("ann: hello from irc red").await;
    bob.send("hi ann").await;
    let chat = ann.expect_next("PRIVMSG").await;
    assert_eq!(chat.source.as_deref(), Some("bob!bob@classchat"));
    assert_eq!(chat.params, ["#lobby", "hi ann"]);

    ann.send("PRIVMSG bob :psst").await;
    bob.expect("[PM from ann] psst").await;
    bob.send("/msg ann back").await;
    let pm = ann.expect_next("PRIVMSG").await;
    assert_eq!(pm.params, ["ann", "back"]);
    assert_eq!(pm.nick(), "bob");
    ann.send("NOTICE #lobby :a notice is chat").await;
    bob.expect("ann: a notice is chat").await;
    ann.send("PRIVMSG #lobby :\x01ACTION waves\x01").await;
    bob.expect("* ann waves").await;

    bob.send("/nick bobby").await;
    let nick = ann.expect_next("NICK").await;
    assert_eq!((nick.nick(), nick.text()), ("bob", "bobby"));
    bob.send("/join lab").await;
    let part = ann.expect_next("PART").await;
    assert_eq!(part.params, ["#lobby", "joined #lab"]);
    ann.send("JOIN #lab").await;
    ann.expect_next("PART").await;
    ann.expect_next("JOIN").await;
    bob.expect("* ann has joined #lab").await;
    bob.send("/quit off to class").await;
    let quit = ann.expect_verb("QUIT").await;
    assert_eq!((quit.nick(), quit.text()), ("bobby", "Quit: off to class"));
}

#[tokio::test]
async fn history_arrives_as_tagged_privmsgs_or_as_stamped_notices() {
    let server = irc_server_with(|c| {
        c.server.utc = true;
        c.server.timestamp_format = "%H:%M:%S".into();
    })
    .await;
    let mut bob = server.login("bob").await;
    bob.send("first").await;
    bob.send("second").await;
    bob.expect_nothing_pending().await;

    let mut tagged = server.irc().await;
    tagged.send("CAP LS 302").await;
    tagged.send("CAP REQ server-time").await;
    tagged.send("NICK ann").await;
    tagged.send("USER ann 0 * :Ann").await;
    tagged.send("CAP END").await;
    tagged.expect_verb("366").await;
    let start = tagged.expect_next("NOTICE").await;
    assert_eq!(start.params, ["#lobby", "Last 2 messages in #lobby:"]);
    let first = tagged.expect_next("PRIVMSG").await;
    let second = tagged.expect_next("PRIVMSG").await;
    assert_eq!(first.params, ["#lobby", "first"]);
    assert_eq!(second.params, ["#lobby", "second"]);
    let (t1, t2) = (first.time.unwrap(), second.time.unwrap());
    assert!(t1 <= t2 && t2 <= start.time.unwrap(), "original times");
    tagged.expect_next("NOTICE").await;

    let mut plain = server.irc_login("cy").await;
    plain.expect_next("NOTICE").await;
    let old = plain.expect_next("NOTICE").await;
    assert_eq!(old.params[0], "#lobby");
    let stamp = &t1[11..19];
    assert_eq!(old.text(), format!("[{stamp}] bob: first"));
}

#[tokio::test]
async fn the_query_verbs_answer_with_their_numerics() {
    let server = irc_server_with(|c| c.limits.messages_per_sec = 0).await;
    let _bob = server.login("bob").await;
    let mut ann = server.irc_login("ann").await;

    ann.send("NAMES #lobby").await;
    assert_eq!(ann.expect_next("353").await.text(), "ann bob");
    ann.expect_next("366").await;
    ann.send("NAMES #elsewhere").await;
    assert_eq!(ann.expect_next("366").await.params[1], "#elsewhere");
    ann.send("WHO #lobby").await;
    let who = ann.expect_next("352").await;
    assert_eq!(
        who.params[1..7],
        ["#lobby", "ann", "classchat", "classchat", "ann", "H"]
    );
    ann.expect_next("352").await;
    ann.expect_next("315").await;
    ann.send("LIST").await;
    ann.expect_next("321").await;
    assert_eq!(ann.expect_next("322").await.params[1..3], ["#lobby", "2"]);
    ann.expect_next("323").await;
    ann.send("TOPIC #lobby").await;
    ann.expect_next("331").await;
    ann.send("MODE #lobby").await;
    assert_eq!(ann.expect_next("324").await.params[1..], ["#lobby", "+nt"]);
    ann.send("MODE #lobby b").await;
    ann.expect_next("368").await;
    ann.send("MODE ann").await;
    ann.expect_next("221").await;
    ann.send("WHOIS bob").await;
    assert_eq!(ann.expect_next("311").await.params[1], "bob");
    ann.expect_next("312").await;
    ann.expect_next("318").await;
    ann.send("WHOIS nobody").await;
    ann.expect_next("401").await;
    ann.expect_next("318").await;
    ann.send("PING :abc").await;
    assert_eq!(ann.expect_next("PONG").await.text(), "abc");
    ann.send("FROB x").await;
    assert_eq!(ann.expect_next("421").await.params[1], "FROB");
    ann.send("ROOMS").await;
    assert_eq!(ann.expect_next("NOTICE").await.text(), "Rooms: #lobby (2)");
    ann.send("HELP").await;
    let first = ann.expect_next("NOTICE").await;
    assert_eq!(first.text(), "Commands, as typed in an IRC client:");
}

#[tokio::test]
async fn the_action_verbs_act_and_refuse_as_irc_expects() {
    let server = irc_server_with(|c| c.limits.messages_per_sec = 0).await;
    let mut bob = server.login("bob").await;
    let mut ann = server.irc_login("ann").await;
    bob.expect("* ann has joined #lobby").await;

    ann.send("PRIVMSG #lab :wrong room").await;
    assert_eq!(ann.expect_next("404").await.params[1], "#lab");
    ann.send("PRIVMSG ghost :hello?").await;
    assert_eq!(ann.expect_next("401").await.params[1], "ghost");
    ann.send("PRIVMSG #lobby").await;
    ann.expect_next("412").await;
    ann.send("JOIN #Bad.Name").await;
    ann.expect_next("479").await;
    ann.send("PART #lab").await;
    ann.expect_next("442").await;

    ann.send("NICK bob").await;
    ann.expect_next("433").await;
    ann.send("NICK annie").await;
    let nick = ann.expect_next("NICK").await;
    assert_eq!((nick.nick(), nick.text()), ("ann", "annie"));
    bob.expect("* ann is now known as annie").await;

    ann.send("JOIN #lab,#other").await;
    let part = ann.expect_next("PART").await;
    assert_eq!(part.params, ["#lobby", "joined #lab"]);
    assert_eq!(ann.expect_next("JOIN").await.params, ["#lab"]);
    assert_eq!(ann.expect_next("353").await.params[2], "#lab");
    ann.expect_next("366").await;
    assert_eq!(ann.expect_next("405").await.params[1], "#other");
    bob.expect("* annie has left #lobby (joined #lab)").await;
    ann.send("JOIN #lab").await;
    ann.expect_nothing_pending().await;
    ann.send("PRIVMSG #lab :in the lab").await;
    ann.send("PART #lab :going back").await;
    assert_eq!(ann.expect_next("PART").await.params[0], "#lab");
    assert_eq!(ann.expect_next("JOIN").await.params, ["#lobby"]);
    ann.expect_next("353").await;
    ann.expect_next("366").await;
    ann.send("PART #lobby").await;
    ann.expect_next("NOTICE").await;

    ann.send("KICK #lobby bob :no").await;
    assert_eq!(ann.expect_next("482").await.params[1], "#lobby");
    ann.send("MUTE bob").await;
    ann.expect_next("481").await;
    ann.send("OP").await;
    ann.expect_next("461").await;
}

#[tokio::test]
async fn instructors_use_the_classchat_commands_from_irc() {
    let server = irc_server_with(|c| {
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = password_hash().to_owned();
        c.limits.messages_per_sec = 0;
        // The kicked student logs in again below.
        c.access.kick_minutes = 0;
    })
    .await;
    let mut bob = server.login("bob").await;
    let mut eve = server.login("eve").await;
    // The instructor's reserved name needs the password (SPEC 6), as PASS.
    let mut squatter = server.irc().await;
    squatter.send("NICK prof").await;
    squatter.send("USER prof 0 * :prof").await;
    squatter.expect_next("464").await;
    squatter.send("PASS wrong").await;
    squatter.expect_next("464").await;
    let mut prof = server.irc().await;
    prof.send(&format!("PASS :{PASSWORD}")).await;
    prof.send("NICK prof").await;
    prof.send("USER prof 0 * :prof").await;
    prof.expect_verb("366").await;
    // OP still checks the password; a wrong one is refused.
    prof.send("OP wrong").await;
    prof.expect_next("464").await;

    prof.send("MUTE bob 5").await;
    assert_eq!(
        prof.expect_next("NOTICE").await.text(),
        "bob is muted for 5 minutes."
    );
    bob.expect("* You have been muted by prof for 5 minutes.")
        .await;
    prof.send("UNMUTE bob").await;
    assert_eq!(
        prof.expect_next("NOTICE").await.text(),
        "bob can talk again."
    );
    prof.send("QUIET on").await;
    prof.expect_next("NOTICE").await;
    bob.expect("* Quiet mode is on: only instructors can talk.")
        .await;
    prof.send("QUIET off").await;
    prof.expect_next("NOTICE").await;
    prof.send("ANNOUNCE quiz at ten").await;
    let announcement = prof.expect_next("NOTICE").await;
    assert_eq!(announcement.text(), "Announcement from prof: quiz at ten");
    assert_eq!(announcement.params[0], "#lobby", "in the channel's window");
    bob.expect("* Announcement from prof: quiz at ten").await;

    prof.send("KICK #lobby eve :spamming").await;
    eve.expect("* You have been kicked by prof: spamming").await;
    let quit = prof.expect_verb("QUIT").await;
    assert_eq!((quit.nick(), quit.text()), ("eve", "Kicked: spamming"));
    assert_eq!(
        prof.expect_next("NOTICE").await.text(),
        "eve has been kicked."
    );

    // An instructor kicking an IRC user: KICK, then ERROR, then closed.
    let mut dan = server.irc_login("dan").await;
    prof.expect_verb("JOIN").await;
    prof.send("KICK #lobby dan").await;
    let kick = dan.expect_verb("KICK").await;
    assert_eq!(kick.params[..2], ["#lobby", "dan"]);
    let rest = dan.expect_closed().await;
    assert_eq!(rest.last().map(|l| l.verb.as_str()), Some("ERROR"));
}

#[tokio::test]
async fn an_irc_quit_is_one_leave_everywhere() {
    let server = irc_server().await;
    let mut bob = server.login("bob").await;
    let mut watcher = server.irc_login("watcher").await;
    let mut ann = server.irc_login("ann").await;
    bob.expect("* ann has joined #lobby").await;
    watcher.expect_verb("JOIN").await;
    ann.send("QUIT :see you").await;
    let closing = ann.expect_closed().await;
    assert_eq!(closing.len(), 1, "{closing:#?}");
    assert_eq!(closing[0].verb, "ERROR");
    bob.expect("* ann has left #lobby (Quit: see you)").await;
    bob.expect_nothing_pending().await;
    let quit = watcher.expect_next("QUIT").await;
    assert_eq!((quit.nick(), quit.text()), ("ann", "Quit: see you"));
    watcher.expect_nothing_pending().await;
    // A dropped connection, too: exactly one leave.
    let carl = server.irc_login("carl").await;
    bob.expect("* carl has joined #lobby").await;
    drop(carl);
    bob.expect("* carl has left #lobby (Connection closed)")
        .await;
    bob.expect_nothing_pending().await;
}

#[tokio::test]
async fn bad_input_is_refused_as_on_the_line_port() {
    let server = irc_server_with(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.burst = 3;
    })
    .await;
    let mut bob = server.login("bob").await;
    let mut ann = server.irc_login("ann").await;
    ann.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600)))
        .await;
    ann.expect_next("417").await;
    ann.send(&"y".repeat(20_000)).await;
    ann.expect_next("417").await;
    ann.send_raw(b"PRIVMSG #lobby :caf\xe9\r\n").await;
    let utf8 = ann.expect_next("NOTICE").await;
    assert!(utf8.text().starts_with("Invalid UTF-8"), "{}", utf8.raw);
    ann.send("PRIVMSG #lobby :\x1b[31mred\x1b[0m\tand tab")
        .await;
    bob.expect("ann: red and tab").await;
    // The burst is used up: refused line by line, nothing lost silently.
    ann.send("PRIVMSG #lobby :one").await;
    ann.send("PRIVMSG #lobby :two").await;
    ann.send("PRIVMSG #lobby :three").await;
    ann.send("PING :counted").await;
    let (_, answers) = ann
        .expect_where("PONG", |l| l.verb == "PONG" && l.text() == "counted")
        .await;
    assert!(
        answers.iter().all(|l| l.contains(" NOTICE ann :Slow down")),
        "{answers:#?}"
    );
    let mut delivered = Vec::new();
    bob.send("/who").await;
    loop {
        let body = bob.next_body().await;
        if body.starts_with("= ") {
            break;
        }
        delivered.push(body);
    }
    assert_eq!(answers.len() + delivered.len(), 3, "{delivered:?}");
    assert!(!answers.is_empty());
    // Garbage of every kind leaves the connection working.
    ann.send_raw(b"\r\n \r\n@only=tags\r\n:src\r\n\x00\x01\x02\r\n")
        .await;
    ann.send("PING :alive").await;
    let pong = ann.expect_verb("PONG").await;
    assert_eq!(pong.text(), "alive");
}

#[tokio::test]
async fn a_non_reading_irc_client_is_dropped_as_too_slow() {
    let server = irc_server_with(|c| {
        c.limits.outbound_queue = 16;
        c.limits.messages_per_sec = 0;
    })
    .await;
    let _staller = server.irc_login("staller").await;
    let mut flooder = server.login("flooder").await;
    let text = "f".repeat(1000);
    for _ in 0..20_000 {
        flooder.send(&text).await;
        flooder.send("/who").await;
        let body = flooder.expect_prefix("= #lobby").await;
        if body == "= #lobby (1): flooder" {
            return;
        }
    }
    panic!("the staller was never dropped");
}

#[tokio::test]
async fn shutdown_tells_irc_clients_and_closes() {
    let server = irc_server().await;
    let mut ann = server.irc_login("ann").await;
    let mut early = server.irc().await;
    early.send("NICK early").await;
    early.expect_nothing_pending().await;
    let stopping = tokio::spawn(server.stop());
    let lines = ann.expect_closed().await;
    let verbs: Vec<&str> = lines.iter().map(|l| l.verb.as_str()).collect();
    assert_eq!(verbs, ["NOTICE", "ERROR"], "{lines:#?}");
    assert_eq!(lines[0].text(), "Server is shutting down.");
    let early_lines = early.expect_closed().await;
    assert_eq!(early_lines.last().map(|l| l.verb.as_str()), Some("ERROR"));
    stopping.await.unwrap();
}

/// A program on `PATH`, or `None`.
pub(crate) fn program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A tmux server of this test's own, so nobody else's sessions are touched.
pub(crate) struct Tmux {
    pub(crate) socket: String,
}

impl Tmux {
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub(crate) fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "irc"])
    }

    pub(crate) fn keys(&self, text: &str) {
        self.run(&["send-keys", "-t", "irc", "-l", text]);
        self.run(&["send-keys", "-t", "irc", "Enter"]);
    }

    /// Waits until the screen shows `text`; panics with the screen after a while.
    pub(crate) async fn wait_for(&self, text: &str) -> String {
        self.until(text, |tmux| tmux.screen().contains(text)).await;
        self.screen()
    }

    /// Retries `done` until it holds; panics with the screen after a while.
    pub(crate) async fn until(&self, what: &str, mut done: impl FnMut(&Tmux) -> bool) {
        let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "irssi never showed {what}; the screen:\n{}",
                self.screen()
            );
            // Polling the screen: there is no event to wait on outside the terminal.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// irssi, a real IRC client, in a terminal: it registers (CAP LS 302 and all),
/// shows a line user's message and sends one of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_chats_with_a_line_user() {
    if program("irssi").is_none() || program("tmux").is_none() {
        crate::harness::skip("irssi or tmux is not installed");
        return;
    }
    let server = irc_server().await;
    let port = server.irc_addr.unwrap().port();
    let mut bob = server.login("bob").await;
    bob.send("an earlier line").await;
    let home = server.dir.path().join("irssi");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config"),
        "settings = { core = { real_name = \"Ann\"; user_name = \"ann\"; nick = \"ann\"; }; };\n",
    )
    .unwrap();
    let tmux = Tmux {
        socket: format!("classchat-irssi-{}", std::process::id()),
    };
    let command = format!(
        "irssi --home={} -n ann -c 127.0.0.1 -p {port}",
        home.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "irc",
        "-x",
        "200",
        "-y",
        "50",
        &command,
    ]);
    bob.expect("* ann has joined #lobby").await;
    // The server joined irssi to #lobby; show that window once irssi has it.
    tmux.until("the #lobby window", |tmux| {
        tmux.keys("/window goto #lobby");
        tmux.screen().contains("an earlier line")
    })
    .await;
    bob.send("hello from the line port").await;
    tmux.wait_for("hello from the line port").await;
    tmux.keys("hi from irssi");
    bob.expect("ann: hi from irssi").await;
    let screen = tmux.wait_for("hi from irssi").await;
    println!("irssi's screen:\n{screen}");
    for error in [" 421 ", " 451 ", " 461 ", "Unknown command"] {
        assert!(!screen.contains(error), "{screen}");
    }
    tmux.keys("/quit bye");
    bob.expect("* ann has left #lobby (Quit: bye)").await;
}

/// `chat-server` prints the IRC address after its first line, and serves it.
#[tokio::test]
async fn the_binary_prints_and_serves_the_irc_address() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[irc]\nenabled = true\nport = 0\n").unwrap();
    let mut child = std::process::Command::new(crate::harness::SERVER_BIN)
        .arg("--config")
        .arg(&config)
        .args(["--port", "0", "--db"])
        .arg(dir.path().join("chat.db"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    stdout.read_line(&mut first).unwrap();
    stdout.read_line(&mut second).unwrap();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");
    let irc: std::net::SocketAddr = second
        .trim()
        .strip_prefix("irc listening on ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .parse()
        .unwrap();
    assert_ne!(irc.port(), 0);
    let mut ann = IrcClient::connect(irc).await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :Ann").await;
    ann.expect_verb("366").await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ann.expect_closed().await.last().unwrap().verb, "ERROR");
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_wrong_pass_says_how_to_retry_and_the_timeout_names_the_code() {
    let server = irc_server_with(|c| {
        c.access.join_code = "owl-42".into();
        c.limits.handshake_timeout_secs = 1;
    })
    .await;
    let mut ann = server.irc().await;
    ann.send("PASS owl-41").await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :Ann").await;
    let wrong = ann.expect_next("464").await;
    assert!(wrong.text().contains("/quote PASS CODE"), "{}", wrong.raw);
    // A new name that is refused does not make the name given before unsaid.
    ann.send("NICK 1ann").await;
    ann.expect_next("432").await;
    let closing = ann.expect_closed().await;
    let error = closing.last().expect("a last line");
    assert_eq!(error.verb, "ERROR", "{closing:#?}");
    assert_eq!(error.text(), "No code given within 1 second; goodbye.");
}

/// `/me` on the line port and CTCP `ACTION` over IRC are one thing, both ways:
/// `* sam waves` for line users, `PRIVMSG #room :\x01ACTION waves\x01` for IRC
/// users, never echoed to the IRC client that sent it, and recorded as an
/// `action`.
#[tokio::test]
async fn actions_cross_between_me_and_ctcp_action() {
    let server = irc_server().await;
    let mut sam = server.login("sam").await;
    let mut ann = server.irc_login("ann").await;
    sam.expect("* ann has joined #lobby").await;

    sam.send("/me waves").await;
    sam.expect_next("* sam waves").await;
    let action = ann.expect_verb("PRIVMSG").await;
    assert_eq!(action.nick(), "sam");
    assert_eq!(action.params, ["#lobby", "\u{1}ACTION waves\u{1}"]);

    ann.send("PRIVMSG #lobby :\u{1}ACTION dances\u{1}").await;
    sam.expect_next("* ann dances").await;
    // The sender's client shows its own action: nothing comes back to it.
    ann.expect_nothing_pending().await;
    sam.send("/me").await;
    sam.expect_next("! Usage: /me TEXT").await;

    // A late joiner sees both in the history, as actions: without server-time
    // as stamped notices, like replayed chat.
    let mut bob = server.irc_login("bob").await;
    let replayed = bob
        .expect_where("the replayed action", |l| {
            l.text().ends_with("] * ann dances")
        })
        .await
        .0;
    assert_eq!(replayed.verb, "NOTICE");
    let mut cy = server.irc().await;
    cy.send("CAP REQ :server-time").await;
    cy.send("NICK cy").await;
    cy.send("USER cy 0 * :cy").await;
    cy.send("CAP END").await;
    let replayed = cy
        .expect_where("the replayed action", |l| {
            l.text().contains("ACTION dances")
        })
        .await
        .0;
    assert_eq!(replayed.nick(), "ann");
    assert!(replayed.time.is_some(), "{}", replayed.raw);

    let db = server.db_path();
    let _dir = server.stop().await;
    let actions: Vec<(String, Option<String>)> = crate::persistence::stored_events(&db)
        .into_iter()
        .filter(|e| e.kind.as_str() == "action")
        .map(|e| (e.sender.to_string(), e.text.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("sam".to_owned(), Some("waves".to_owned())),
            ("ann".to_owned(), Some("dances".to_owned()))
        ]
    );
}

/// CTCP `VERSION`, `PING` and `TIME`, to the server or to a user, are answered
/// by the server, as a `NOTICE` CTCP reply; a reply is never answered.
#[tokio::test]
async fn ctcp_requests_are_answered_by_the_server() {
    let server = irc_server().await;
    let _sam = server.login("sam").await;
    let mut ann = server.irc_login("ann").await;
    ann.send("PRIVMSG sam :\u{1}VERSION\u{1}").await;
    let version = ann.expect_verb("NOTICE").await;
    assert_eq!(version.nick(), "sam");
    assert_eq!(version.params[0], "ann");
    let expected = format!("\u{1}VERSION classchat {}\u{1}", env!("CARGO_PKG_VERSION"));
    assert_eq!(version.text(), expected);
    ann.send("PRIVMSG classchat :\u{1}PING 1764011103\u{1}")
        .await;
    let ping = ann.expect_next("NOTICE").await;
    assert_eq!(ping.source.as_deref(), Some("classchat"));
    assert_eq!(ping.text(), "\u{1}PING 1764011103\u{1}");
    ann.send("PRIVMSG #lobby :\u{1}TIME\u{1}").await;
    let time = ann.expect_next("NOTICE").await;
    assert!(time.text().starts_with("\u{1}TIME "), "{}", time.raw);
    assert!(time.text().ends_with(" UTC\u{1}"), "{}", time.raw);
    ann.send("NOTICE sam :\u{1}VERSION irssi\u{1}").await;
    ann.expect_nothing_pending().await;
}

/// `JOIN #a,#b` joins the first and refuses the rest (`405`); `JOIN 0` is a
/// `PART`, back to the default channel.
#[tokio::test]
async fn join_takes_one_channel_and_join_0_parts() {
    let server = irc_server().await;
    let mut ann = server.irc_login("ann").await;
    ann.send("JOIN #lab,#gym").await;
    let part = ann.expect_next("PART").await;
    assert_eq!(part.params[0], "#lobby");
    assert_eq!(ann.expect_next("JOIN").await.params, ["#lab"]);
    ann.expect_next("353").await;
    ann.expect_next("366").await;
    let refused = ann.expect_next("405").await;
    assert_eq!(refused.params[..2], ["ann", "#gym"]);
    ann.send("JOIN 0").await;
    assert_eq!(ann.expect_next("PART").await.params[0], "#lab");
    assert_eq!(ann.expect_next("JOIN").await.params, ["#lobby"]);
    ann.expect_next("353").await;
    ann.expect_next("366").await;
    // In the default channel already, JOIN 0 says why it stays.
    ann.send("JOIN 0").await;
    let stays = ann.expect_next("NOTICE").await;
    assert!(
        stays.text().starts_with("#lobby is where everyone is"),
        "{}",
        stays.raw
    );
    ann.expect_nothing_pending().await;
}

/// `HELP` lists the commands as an IRC user types them, as notices to the
/// user; an instructor gets theirs too.
#[tokio::test]
async fn help_lists_the_commands_as_typed_in_an_irc_client() {
    let server = irc_server_with(crate::access::with_instructor).await;
    let mut ann = server.irc_login("ann").await;
    ann.send("HELP").await;
    let mut lines = Vec::new();
    loop {
        let line = ann.expect_next("NOTICE").await;
        assert_eq!(line.params[0], "ann");
        let last = line.text().starts_with("/quit");
        lines.push(line.text().to_owned());
        if last {
            break;
        }
    }
    for typed in ["/join #lab", "/msg nick text", "/me waves", "/quote HAND"] {
        assert!(
            lines.iter().any(|l| l.starts_with(typed)),
            "{typed}: {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains("ANNOUNCE")), "{lines:#?}");
    ann.expect_nothing_pending().await;

    let mut prof = server.irc().await;
    prof.send(&format!("PASS :{PASSWORD}")).await;
    prof.send("NICK prof").await;
    prof.send("USER prof 0 * :prof").await;
    prof.expect_verb("366").await;
    prof.send("HELP").await;
    let staff = prof
        .expect_where("the instructor's list", |l| {
            l.text() == "Instructor commands:"
        })
        .await
        .0;
    assert_eq!(staff.verb, "NOTICE");
    let announce = prof
        .expect_where("ANNOUNCE", |l| l.text().starts_with("/quote ANNOUNCE text"))
        .await
        .0;
    assert_eq!(announce.params[0], "prof");
}

/// An IRC client keeps what it was shown: a reconnect or a rejoin within the
/// server's run replays only the lines it missed, counted as such.
#[tokio::test]
async fn a_rejoin_or_reconnect_replays_only_what_was_missed() {
    let server = irc_server().await;
    let mut bob = server.login("bob").await;
    // cy sees each of bob's lines said before anyone comes in after it.
    let mut cy = server.login("cy").await;
    bob.send("one").await;
    cy.expect("bob: one").await;
    let mut ann = server.irc_login("ann").await;
    let start = ann.expect_verb("NOTICE").await;
    assert_eq!(start.text(), "Last 1 message in #lobby:");
    assert!(ann.expect_next("NOTICE").await.text().ends_with("bob: one"));
    ann.expect_next("NOTICE").await;
    ann.send("QUIT :brb").await;
    ann.expect_closed().await;
    bob.expect("* ann has left #lobby (Quit: brb)").await;
    bob.send("two").await;
    cy.expect("bob: two").await;

    let mut ann = server.irc_login("ann").await;
    let start = ann.expect_verb("NOTICE").await;
    assert_eq!(start.text(), "Last 1 message in #lobby:");
    assert!(ann.expect_next("NOTICE").await.text().ends_with("bob: two"));
    assert_eq!(ann.expect_next("NOTICE").await.text(), "End of history.");

    ann.send("JOIN #lab").await;
    ann.expect_verb("366").await;
    bob.expect("* ann has left #lobby (joined #lab)").await;
    ann.send("JOIN #lobby").await;
    ann.expect_verb("366").await;
    // Nothing was said meanwhile: no replay at all.
    ann.expect_nothing_pending().await;
    ann.send("JOIN #lab").await;
    ann.expect_verb("366").await;
    bob.expect("* ann has left #lobby (joined #lab)").await;
    bob.send("three").await;
    cy.expect("bob: three").await;
    ann.send("JOIN #lobby").await;
    ann.expect_verb("366").await;
    let start = ann.expect_next("NOTICE").await;
    assert_eq!(start.text(), "Last 1 message in #lobby:");
    assert!(ann
        .expect_next("NOTICE")
        .await
        .text()
        .ends_with("bob: three"));
}

/// `AWAY` is kept by the server: the clients in the channel that asked for
/// `away-notify` see it come and go (and on a join), `WHO` marks it `G`, a
/// private message or `WHOIS` gets `301`; a line user can go away too.
#[tokio::test]
async fn away_is_shared_with_the_channel_and_whoever_writes() {
    let server = irc_server().await;
    let mut amy = server.irc().await;
    amy.send("CAP REQ :away-notify").await;
    amy.expect_next("CAP").await;
    amy.send("NICK amy").await;
    amy.send("USER amy 0 * :amy").await;
    amy.send("CAP END").await;
    amy.expect_verb("366").await;
    let mut bob = server.irc_login("bob").await;
    assert_eq!(amy.expect_next("JOIN").await.nick(), "bob");
    let mut cy = server.login("cy").await;
    amy.expect_next("JOIN").await;
    bob.expect_next("JOIN").await;

    bob.send("AWAY :lunch break").await;
    let now_away = bob.expect_next("306").await;
    assert_eq!(now_away.text(), "You have been marked as being away");
    let away = amy.expect_next("AWAY").await;
    assert_eq!(away.raw, ":bob!bob@classchat AWAY :lunch break");
    // Neither a client without away-notify nor a line user is told.
    bob.expect_nothing_pending().await;
    cy.expect_nothing_pending().await;

    amy.send("WHO #lobby").await;
    let mut flags = Vec::new();
    for _ in 0..3 {
        let who = amy.expect_next("352").await;
        flags.push((who.params[5].clone(), who.params[6].clone()));
    }
    amy.expect_next("315").await;
    assert_eq!(
        flags,
        [("amy", "H"), ("bob", "G"), ("cy", "H")].map(|(n, f)| (n.to_owned(), f.to_owned()))
    );

    amy.send("PRIVMSG bob :there?").await;
    assert_eq!(
        amy.expect_next("301").await.params,
        ["amy", "bob", "lunch break"]
    );
    assert_eq!(bob.expect_next("PRIVMSG").await.text(), "there?");
    cy.send("/msg bob hi").await;
    cy.expect_next("[PM to bob] hi").await;
    cy.expect_next("* bob is away: lunch break").await;
    bob.expect_next("PRIVMSG").await;
    amy.send("WHOIS bob").await;
    amy.expect_next("311").await;
    amy.expect_next("312").await;
    assert_eq!(
        amy.expect_next("301").await.params,
        ["amy", "bob", "lunch break"]
    );
    amy.expect_next("318").await;

    // Joining a channel while away: AWAY right after the JOIN.
    amy.send("JOIN #lab").await;
    amy.expect_verb("366").await;
    bob.send("JOIN #lab").await;
    bob.expect_verb("366").await;
    assert_eq!(amy.expect_next("JOIN").await.nick(), "bob");
    assert_eq!(amy.expect_next("AWAY").await.text(), "lunch break");

    bob.send("AWAY").await;
    bob.expect_next("305").await;
    let back = amy.expect_next("AWAY").await;
    assert_eq!(back.raw, ":bob!bob@classchat AWAY");
    amy.send("PRIVMSG bob :back?").await;
    bob.expect_next("PRIVMSG").await;
    amy.expect_nothing_pending().await;

    // The line port's /away, seen by amy once cy is in her channel.
    cy.send("/away brb").await;
    cy.expect("* You have been marked as being away").await;
    cy.send("/join lab").await;
    assert_eq!(amy.expect_next("JOIN").await.nick(), "cy");
    assert_eq!(amy.expect_next("AWAY").await.text(), "brb");
    cy.send("/away").await;
    cy.expect("* You are no longer marked as being away").await;
    assert_eq!(amy.expect_next("AWAY").await.params, Vec::<String>::new());
}
