//! IRCv3 over raw IRC (SPEC 7, "What current IRC clients expect"): a client
//! that negotiates every capability logs in with SASL, asks for history with
//! CHATHISTORY instead of being replayed to, and gets its own lines back with
//! the ids everyone else sees.

use crate::harness::{enable_irc, IrcClient, IrcLine, TestServer};
use crate::roster::{log_in, rostered};

pub(crate) const EVERY_CAP: &str = "server-time message-tags echo-message batch draft/chathistory \
                         account-tag sasl multi-prefix away-notify";

/// `AUTHENTICATE PLAIN` with `account` and `password`, base64 as SASL wants.
fn plain(account: &str, password: &str) -> String {
    let bytes = format!("\0{account}\0{password}").into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word =
            chunk.iter().fold(0u32, |w, &b| w << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(word >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Connects, asks for `caps`, logs in as `account` with SASL and registers;
/// returns the client after its `366`, and its `005` lines.
pub(crate) async fn v3_login(
    server: &TestServer,
    caps: &str,
    account: &str,
    code: &str,
) -> IrcClient {
    let mut client = server.irc().await;
    client.send("CAP LS 302").await;
    client.expect_next("CAP").await;
    client.send(&format!("CAP REQ :{caps}")).await;
    let ack = client.expect_next("CAP").await;
    assert_eq!(ack.params[1..], ["ACK", caps]);
    client.send("AUTHENTICATE PLAIN").await;
    assert_eq!(client.expect_next("AUTHENTICATE").await.params, ["+"]);
    client
        .send(&format!("AUTHENTICATE {}", plain(account, code)))
        .await;
    let logged_in = client.expect_next("900").await;
    assert_eq!(logged_in.params[2], account);
    client.expect_next("903").await;
    client.send(&format!("NICK {account}")).await;
    client.send(&format!("USER {account} 0 * :{account}")).await;
    client.send("CAP END").await;
    client.expect_verb("366").await;
    client
}

/// Reads a `chathistory` batch: its `PRIVMSG`s, each checked to be in it.
pub(crate) async fn batch(client: &mut IrcClient, channel: &str) -> Vec<IrcLine> {
    let start = client.expect_next("BATCH").await;
    let id = start.params[0]
        .strip_prefix('+')
        .expect("a batch opens")
        .to_owned();
    assert_eq!(start.params[1..], ["chathistory", channel]);
    let mut lines = Vec::new();
    loop {
        let line = client.next_line().await;
        if line.verb == "BATCH" {
            assert_eq!(line.params, [format!("-{id}")]);
            return lines;
        }
        assert_eq!(line.verb, "PRIVMSG", "{}", line.raw);
        assert_eq!(line.tag("batch"), Some(id.as_str()), "{}", line.raw);
        lines.push(line);
    }
}

pub(crate) fn texts(lines: &[IrcLine]) -> Vec<&str> {
    lines.iter().map(IrcLine::text).collect()
}

#[tokio::test]
async fn an_ircv3_client_negotiates_every_capability() {
    let (server, codes) = rostered(|c| {
        enable_irc(c);
        c.history.replay_lines = 5;
    })
    .await;
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    for line in ["one", "two", "three"] {
        bob.send(line).await;
    }

    // Every capability is offered, sasl with its mechanism.
    let mut probe = server.irc().await;
    probe.send("CAP LS 302").await;
    let ls = probe.expect_next("CAP").await;
    for cap in EVERY_CAP.split(' ') {
        let offered = ls.text().split(' ').any(|c| c == cap || c == "sasl=PLAIN");
        assert!(offered, "{cap} in {}", ls.raw);
    }
    assert!(
        ls.text().split(' ').any(|c| c == "sasl=PLAIN"),
        "{}",
        ls.raw
    );
    // A wrong code is 904, and so is a name that has no code of its own.
    probe.send("AUTHENTICATE PLAIN").await;
    probe.expect_next("AUTHENTICATE").await;
    probe
        .send(&format!("AUTHENTICATE {}", plain("amy", "wrong-code")))
        .await;
    probe.expect_next("904").await;
    probe.send("AUTHENTICATE PLAIN").await;
    probe.expect_next("AUTHENTICATE").await;
    probe
        .send(&format!("AUTHENTICATE {}", plain("zed", "anything")))
        .await;
    probe.expect_next("904").await;

    let mut amy = v3_login(&server, EVERY_CAP, "amy", &codes["amy"]).await;
    bob.expect("* amy has joined #lobby").await;
    // draft/chathistory: no replay unasked.
    amy.expect_nothing_pending().await;

    amy.send("CHATHISTORY LATEST #lobby * 10").await;
    let latest = batch(&mut amy, "#lobby").await;
    assert_eq!(texts(&latest), ["one", "two", "three"]);
    for line in &latest {
        assert_eq!(line.nick(), "bob");
        assert_eq!(line.tag("account"), Some("bob"), "{}", line.raw);
        assert!(
            line.time.is_some() && line.tag("msgid").is_some(),
            "{}",
            line.raw
        );
    }
    let id = |line: &IrcLine| line.tag("msgid").unwrap().to_owned();
    amy.send(&format!(
        "CHATHISTORY BEFORE #lobby msgid={} 10",
        id(&latest[2])
    ))
    .await;
    assert_eq!(texts(&batch(&mut amy, "#lobby").await), ["one", "two"]);
    amy.send(&format!(
        "CHATHISTORY AFTER #lobby msgid={} 1",
        id(&latest[0])
    ))
    .await;
    assert_eq!(texts(&batch(&mut amy, "#lobby").await), ["two"]);
    // (Lines said in the same millisecond share a timestamp: one from before
    // them all is the reference that tells them apart.)
    amy.send("CHATHISTORY AFTER #lobby timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    assert_eq!(texts(&batch(&mut amy, "#lobby").await), ["one", "two"]);
    amy.send("CHATHISTORY LATEST #elsewhere * 10").await;
    let fail = amy.expect_next("FAIL").await;
    assert_eq!(fail.params[..2], ["CHATHISTORY", "INVALID_TARGET"]);

    // A second client sees amy's line with the id her echo carries.
    let mut prof = v3_login(&server, "message-tags server-time", "prof", &codes["prof"]).await;
    amy.expect_verb("JOIN").await;
    amy.send("PRIVMSG #lobby :hello").await;
    let echo = amy.expect_next("PRIVMSG").await;
    assert_eq!((echo.nick(), echo.text()), ("amy", "hello"));
    assert_eq!(echo.tag("account"), Some("amy"));
    let seen = prof
        .expect_where("amy's line", |l| l.verb == "PRIVMSG" && l.nick() == "amy")
        .await
        .0;
    assert_eq!(seen.text(), "hello");
    assert_eq!(seen.tag("msgid"), echo.tag("msgid"));
    assert!(echo.tag("msgid").is_some(), "{}", echo.raw);
    bob.expect("amy: hello").await;
    amy.send("CHATHISTORY LATEST #lobby * 1").await;
    let newest = batch(&mut amy, "#lobby").await;
    assert_eq!(newest[0].tag("msgid"), echo.tag("msgid"));

    // Actions come back too, as actions, with the same id as prof's.
    amy.send("PRIVMSG #lobby :\u{1}ACTION waves\u{1}").await;
    let echo = amy.expect_next("PRIVMSG").await;
    assert_eq!(echo.text(), "\u{1}ACTION waves\u{1}");
    let seen = prof.expect_next("PRIVMSG").await;
    assert_eq!(seen.tag("msgid"), echo.tag("msgid"));
    bob.expect("* amy waves").await;
    // A private message, too.
    amy.send("PRIVMSG prof :psst").await;
    let echo = amy.expect_next("PRIVMSG").await;
    assert_eq!(echo.params, ["prof", "psst"]);
    let seen = prof.expect_next("PRIVMSG").await;
    assert_eq!(seen.tag("msgid"), echo.tag("msgid"));
    amy.expect_nothing_pending().await;
}

/// A client with `batch` (and without draft/chathistory) gets the replay on
/// joining as a `chathistory` batch.
#[tokio::test]
async fn with_batch_the_replay_on_joining_is_a_chathistory_batch() {
    let server = TestServer::start_with(enable_irc).await;
    let mut bob = server.login("bob").await;
    bob.send("earlier").await;
    bob.send("/me nods").await;
    bob.expect("* bob nods").await;
    let mut ann = server.irc().await;
    ann.send("CAP REQ :batch server-time message-tags").await;
    ann.expect_next("CAP").await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :ann").await;
    ann.send("CAP END").await;
    let isupport = ann.expect_verb("005").await.params.join(" ");
    assert!(isupport.contains(" CHATHISTORY=20 "), "{isupport}");
    ann.expect_verb("366").await;
    let replay = batch(&mut ann, "#lobby").await;
    assert_eq!(texts(&replay), ["earlier", "\u{1}ACTION nods\u{1}"]);
    assert!(replay
        .iter()
        .all(|l| l.tag("msgid").is_some() && l.time.is_some()));
    // A typing notice is taken without a word.
    ann.send("@+typing=active TAGMSG #lobby").await;
    ann.expect_nothing_pending().await;
}

/// `CHATHISTORY` further back than the room keeps in memory
/// (`history.replay_lines`) is answered from the database: the older lines, in
/// order, with the time and `msgid` they had live, erased ones left out, at
/// most `CHATHISTORY=` at a time.
#[tokio::test]
async fn chathistory_reaches_past_the_kept_lines_into_the_database() {
    let server = TestServer::start_with(|c| {
        enable_irc(c);
        c.history.replay_lines = 3;
    })
    .await;
    let mut bob = server.login("bob").await;
    let mut ann = server.irc().await;
    ann.send("CAP REQ :batch server-time message-tags draft/chathistory")
        .await;
    ann.expect_next("CAP").await;
    ann.send("NICK ann").await;
    ann.send("USER ann 0 * :ann").await;
    ann.send("CAP END").await;
    let isupport = ann.expect_verb("005").await.params.join(" ");
    assert!(isupport.contains(" CHATHISTORY=3 "), "{isupport}");
    ann.expect_verb("366").await;
    bob.expect("* ann has joined #lobby").await;

    // What ann saw live: each line's time and id.
    let mut live = Vec::new();
    for i in 1..=10 {
        bob.send(&format!("line {i}")).await;
        let line = ann.expect_next("PRIVMSG").await;
        assert_eq!(line.text(), format!("line {i}"));
        live.push((line.time.clone().unwrap(), id_of(&line)));
    }
    // The record is written behind the chat: wait for all ten lines.
    let db = server.db_path();
    let stored = || {
        crate::persistence::stored_events(&db)
            .iter()
            .filter(|e| e.kind == classchat::event::EventKind::Chat)
            .count()
    };
    for _ in 0..500 {
        if stored() == 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stored(), 10);
    // Line 6 erased (as `erase` leaves it in the record).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let erased = conn
        .execute(
            "UPDATE events SET text = '[erased]' WHERE text = 'line 6'",
            [],
        )
        .unwrap();
    assert_eq!(erased, 1);
    drop(conn);

    ann.send("CHATHISTORY LATEST #lobby * 10").await;
    let kept = batch(&mut ann, "#lobby").await;
    assert_eq!(texts(&kept), ["line 8", "line 9", "line 10"]);

    let mut before = live[7].1.clone();
    let mut older = Vec::new();
    loop {
        ann.send(&format!("CHATHISTORY BEFORE #lobby msgid={before} 10"))
            .await;
        let lines = batch(&mut ann, "#lobby").await;
        assert!(lines.len() <= 3, "CHATHISTORY=3 at a time");
        let Some(first) = lines.first() else {
            break;
        };
        before = id_of(first);
        older.splice(0..0, lines);
    }
    assert_eq!(
        texts(&older),
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 7"]
    );
    for line in &older {
        let n: usize = line.text()["line ".len()..].parse().unwrap();
        assert_eq!(line.nick(), "bob");
        assert_eq!(
            (line.time.clone().unwrap(), id_of(line)),
            live[n - 1],
            "{}",
            line.raw
        );
    }
    // Around and after a line only the record has.
    let third = &live[2].1;
    ann.send(&format!("CHATHISTORY AROUND #lobby msgid={third} 3"))
        .await;
    let around = batch(&mut ann, "#lobby").await;
    assert_eq!(texts(&around), ["line 2", "line 3", "line 4"]);
    ann.send(&format!("CHATHISTORY AFTER #lobby msgid={third} 3"))
        .await;
    let after = batch(&mut ann, "#lobby").await;
    assert_eq!(texts(&after), ["line 4", "line 5", "line 7"]);
    // A time from before them all: the first lines, from the record.
    ann.send("CHATHISTORY AFTER #lobby timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    let first = batch(&mut ann, "#lobby").await;
    assert_eq!(texts(&first), ["line 1", "line 2"]);
    let (first, last) = (&live[0].1, &live[9].1);
    ann.send(&format!(
        "CHATHISTORY BETWEEN #lobby msgid={first} msgid={last} 3"
    ))
    .await;
    assert_eq!(
        texts(&batch(&mut ann, "#lobby").await),
        ["line 2", "line 3", "line 4"]
    );
    ann.expect_nothing_pending().await;
}

fn id_of(line: &IrcLine) -> String {
    line.tag("msgid").expect("a msgid").to_owned()
}
