//! One student against everyone (SPEC 10): each attack tried from outside, with
//! the counts that show it failed.

use crate::access::{instructor, password_hash, with_instructor};
use crate::harness::{enable_irc, TestClient, TestServer};

#[tokio::test]
async fn nobody_renames_to_an_instructors_name() {
    let server = TestServer::start_with(|c| {
        with_instructor(c);
        enable_irc(c);
        crate::harness::enable_web(c);
    })
    .await;
    let mut mallory = server.login("mallory").await;
    mallory.send("/nick prof").await;
    mallory.expect_next("! Username prof is reserved").await;
    mallory.send("/nick PROF").await;
    mallory.expect_next("! Username PROF is reserved").await;

    let mut irc = server.irc_login("eve").await;
    irc.send("NICK Prof").await;
    let refused = irc.expect_verb("432").await;
    assert_eq!(refused.text(), "Username Prof is reserved");

    let mut web = crate::web::ws_login(&server, "walt").await;
    crate::web::send_text(&mut web, "/nick prof").await;
    let refused = crate::web::expect_frame(&mut web, "! ").await;
    assert_eq!(refused, "! Username prof is reserved");

    // The name is still the instructor's to take, with the password.
    let mut prof = instructor(&server).await;
    prof.send("/who").await;
    let who = prof.expect_prefix("= #lobby").await;
    assert_eq!(who.matches("prof").count(), 1, "{who}");
    assert!(
        who.contains("mallory") && who.contains("eve") && who.contains("walt"),
        "{who}"
    );
}

/// The server binary's peak resident memory, from the kernel.
fn peak_rss_kb(child: &std::process::Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// 300 wrong instructor-page logins at once from one address: each is counted
/// before its argon2 check (19 MiB) runs, so only `code_attempts_per_minute` are
/// checked, one at a time, and the rest are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_web_logins_is_refused_before_it_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let access = format!(
        "[access]\ninstructors = [\"prof\"]\ninstructor_password = {:?}\n",
        password_hash()
    );
    let (mut child, _) = crate::harness::spawn_logging(
        dir.path(),
        "",
        &format!("[web]\nenabled = true\nport = 0\n{access}"),
    );
    let web: std::net::SocketAddr = loop {
        let line = crate::harness::stdout_line(&mut child);
        assert!(!line.is_empty(), "the server printed no web address");
        if let Some(url) = line.trim().strip_prefix("web listening on http://") {
            break url.trim_end_matches('/').parse().unwrap();
        }
    };
    let before = peak_rss_kb(&child);
    let attempts: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(
                async move { crate::web::post_login(web, "prof", &format!("guess-{i}")).await },
            )
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap().status {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let peak = peak_rss_kb(&child);
    crate::harness::stop_for_stderr(child);
    // Those counted but still waiting for their turn after two seconds are
    // refused too: never more than the count is checked.
    assert_eq!(checked + refused, 300);
    assert!((1..=20).contains(&checked), "{checked} checked");
    assert!(
        peak < 100 * 1024,
        "peak resident memory {peak} kB (before the burst: {before} kB)"
    );
}

/// One student behind the classroom's shared address guesses at classmates'
/// codes: the instructor, at the same address, still logs in.
#[tokio::test]
async fn guesses_at_other_names_do_not_lock_the_instructor_out() {
    let server = TestServer::start_with(|c| {
        with_instructor(c);
        c.access.join_code = "owl-42".into();
    })
    .await;
    for i in 0..20 {
        let mut guesser = server.connect().await;
        guesser.send(&format!("student{i}")).await;
        guesser
            .expect("* This class needs a join code. Please enter the code:")
            .await;
        guesser.send("guess").await;
        guesser.expect_next("! Wrong code (2 attempts left).").await;
    }
    // Twenty wrong codes from this address, none for prof.
    instructor(&server).await;
}

/// Silent sockets from a few addresses fill the handshake budget: a student at
/// another address still gets in, each time at the cost of the oldest silent
/// socket of the address that holds the most.
#[tokio::test]
async fn silent_sockets_from_a_few_addresses_never_keep_a_student_out() {
    let server = TestServer::start_with(|c| {
        c.limits.max_pending = 20;
        c.limits.max_pending_per_ip = 10;
    })
    .await;
    let mut silent = Vec::new();
    for host in 10..12u8 {
        for _ in 0..10 {
            let mut socket = TestClient::connect_from(server.addr, [127, 0, 0, host]).await;
            socket.expect("* Please enter a username:").await;
            silent.push(socket);
        }
    }
    // Six students connect before any of them types a name.
    let mut students = Vec::new();
    for _ in 0..6 {
        let mut student = TestClient::connect_from(server.addr, [127, 0, 0, 20]).await;
        student.expect("* Please enter a username:").await;
        students.push(student);
    }
    for (i, student) in students.iter_mut().enumerate() {
        student.send(&format!("student{i}")).await;
        student
            .expect_prefix(&format!("* Welcome, student{i}!"))
            .await;
    }
    let mut evicted = 0;
    for socket in &mut silent {
        let lines = tokio::time::timeout(std::time::Duration::from_millis(200), socket.next_line())
            .await
            .ok()
            .flatten();
        if let Some(line) = lines {
            assert!(
                line.ends_with("! Server is busy; try again shortly."),
                "{line}"
            );
            assert_eq!(socket.next_line().await, None, "closed after the notice");
            evicted += 1;
        }
    }
    assert_eq!(evicted, 6);
}

/// Bidirectional overrides and line separators could make a line read
/// backwards or forge a second line in everyone's window: they are removed on
/// every port.
#[tokio::test]
async fn text_that_would_forge_or_reverse_a_line_is_cleaned_on_every_port() {
    let server = TestServer::start_with(|c| {
        enable_irc(c);
        c.limits.messages_per_sec = 0;
    })
    .await;
    let mut amy = server.login("amy").await;
    let mut eve = server.irc_login("eve").await;
    amy.expect("* eve has joined #lobby").await;
    amy.send("look\u{202e}gnp.exe\u{2028}[12:00] prof: trust me\u{2029}")
        .await;
    let line = eve.expect_verb("PRIVMSG").await;
    assert_eq!(line.text(), "lookgnp.exe[12:00] prof: trust me");
    eve.send("PRIVMSG #lobby :a\u{2066}b\u{2069}c\u{202a}d")
        .await;
    amy.expect_next("eve: abcd").await;
}

/// DNS rebinding: a page on `evil.example` whose name now points at the server
/// sends `Host: evil.example` with a matching `Origin`. Refused; the page's own
/// address and `localhost` are served.
#[tokio::test]
async fn requests_for_a_name_the_server_does_not_serve_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(crate::harness::enable_web).await;
    let web = server.web.unwrap();
    let status = |host: String, origin: String, path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(web).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        String::from_utf8(head[9..12].to_vec()).unwrap()
    };
    let evil = || ("evil.example".to_owned(), "http://evil.example".to_owned());
    let (host, origin) = evil();
    assert_eq!(status(host, origin, "/ws").await, "421");
    let (host, origin) = evil();
    assert_eq!(status(host, origin, "/instructor").await, "421");
    let port = web.port();
    let own = format!("127.0.0.1:{port}");
    assert_eq!(
        status(own.clone(), format!("http://{own}"), "/ws").await,
        "101"
    );
    let local = format!("localhost:{port}");
    assert_eq!(
        status(local.clone(), format!("http://{local}"), "/ws").await,
        "101"
    );
}

/// A kick holds for `access.kick_minutes`: the kicked student cannot come back
/// under that name or, with a name of their own invention, from that address (an
/// IRC client that reconnects by itself is told the time left); a classmate with
/// a code of their own still gets in from there.
#[tokio::test]
async fn a_kick_holds_against_reconnecting() {
    let server = TestServer::start_with(|c| {
        with_instructor(c);
        enable_irc(c);
    })
    .await;
    let mut prof = instructor(&server).await;
    let mut sam = server.irc_login("sam").await;
    prof.expect("* sam has joined #lobby").await;
    prof.send("/kick sam spam").await;
    prof.expect("* sam has been kicked.").await;
    sam.expect_closed().await;

    let refused = "You were kicked; you can log in again in 10 minutes.";
    let mut again = server.irc().await;
    again.send("NICK sam").await;
    again.send("USER sam 0 * :sam").await;
    let lines = again.expect_closed().await;
    assert!(
        lines
            .iter()
            .any(|l| l.verb == "ERROR" && l.text() == refused),
        "{lines:?}"
    );
    for name in ["SAM", "sam2"] {
        let mut client = server.connect().await;
        client.send(name).await;
        let closed = client.expect_closed().await;
        assert_eq!(
            closed.last().map(String::as_str),
            Some(&*format!("! {refused}"))
        );
    }
    // The instructor's own name, proven by the password, is not held back.
    instructor(&server).await;
}

/// `access.kick_minutes` sets how long a kick holds, and the refusal counts the
/// minutes left, on the line port and over IRC alike.
#[tokio::test]
async fn a_kick_holds_for_the_configured_minutes_on_every_port() {
    let server = TestServer::start_with(|c| {
        with_instructor(c);
        enable_irc(c);
        c.access.kick_minutes = 3;
    })
    .await;
    let mut prof = instructor(&server).await;
    let mut amy = server.login("amy").await;
    prof.expect("* amy has joined #lobby").await;
    prof.send("/kick amy").await;
    prof.expect("* amy has been kicked.").await;
    amy.expect_closed().await;

    let refused = "You were kicked; you can log in again in 3 minutes.";
    let mut line = server.connect().await;
    line.send("amy").await;
    let closed = line.expect_closed().await;
    assert_eq!(
        closed.last().map(String::as_str),
        Some(&*format!("! {refused}"))
    );
    let mut irc = server.irc().await;
    irc.send("NICK amy").await;
    irc.send("USER amy 0 * :amy").await;
    let lines = irc.expect_closed().await;
    let last = lines.last().expect("a last line");
    assert_eq!((last.verb.as_str(), last.text()), ("ERROR", refused));
}
