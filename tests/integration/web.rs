//! The web listener (SPEC section 8) over real HTTP and WebSocket connections: the
//! chat page's WebSocket against TCP clients, the Origin check, the instructor
//! sessions, and the report downloads against `chat-server report`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::{body_of, enable_web, TestServer, SERVER_BIN, WAIT};
use crate::persistence::stored_events;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn web_server() -> TestServer {
    TestServer::start_with(enable_web).await
}

/// The password of the instructor `prof` in [`instructor_server`].
const PASSWORD: &str = "correct horse";

async fn instructor_server(tweak: impl FnOnce(&mut classchat::config::Config)) -> TestServer {
    let hash = classchat::password::hash(PASSWORD).unwrap();
    TestServer::start_with(|c| {
        enable_web(c);
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = hash;
        tweak(c);
    })
    .await
}

/// Opens the chat WebSocket with `origin` (`None`: no Origin header at all).
async fn open_ws(web: SocketAddr, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut request = format!("ws://{web}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("WebSocket handshake in time")
        .map(|(ws, _)| ws)
}

async fn page_ws(server: &TestServer) -> Ws {
    let web = server.web.unwrap();
    open_ws(web, Some(&format!("http://{web}")))
        .await
        .expect("the page's own origin is accepted")
}

/// The next text frame; panics on anything else, or after [`WAIT`].
async fn next_frame(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("WebSocket closed")
            .expect("WebSocket error");
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads frames until one's body starts with `prefix`; returns that body.
pub(crate) async fn expect_frame(ws: &mut Ws, prefix: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let frame = next_frame(ws).await;
        assert!(
            !frame.ends_with('\n'),
            "one line a frame, no newline: {frame:?}"
        );
        let body = body_of(&frame).to_owned();
        if body.starts_with(prefix) {
            return body;
        }
        seen.push(body);
        assert!(seen.len() < 100, "no {prefix:?} in {seen:?}");
    }
}

pub(crate) async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

pub(crate) async fn ws_login(server: &TestServer, name: &str) -> Ws {
    let mut ws = page_ws(server).await;
    expect_frame(&mut ws, "* Please enter a username").await;
    send_text(&mut ws, name).await;
    expect_frame(&mut ws, &format!("* Welcome, {name}!")).await;
    ws
}

#[tokio::test]
async fn a_browser_and_a_terminal_chat_both_ways() {
    let server = web_server().await;
    let mut ws = page_ws(&server).await;
    let greeting = next_frame(&mut ws).await;
    assert!(greeting.starts_with('['), "{greeting:?}");
    expect_frame(&mut ws, "* Please enter a username").await;
    send_text(&mut ws, "admin").await;
    expect_frame(&mut ws, "! ").await;
    expect_frame(&mut ws, "* Please enter a username").await;
    send_text(&mut ws, "wendy").await;
    let welcome = expect_frame(&mut ws, "* Welcome, wendy!").await;
    assert!(welcome.contains("#lobby"), "{welcome}");

    let mut tom = server.login("tom").await;
    assert_eq!(
        expect_frame(&mut ws, "* tom").await,
        "* tom has joined #lobby"
    );
    tom.send("hello from a terminal").await;
    assert_eq!(
        expect_frame(&mut ws, "tom:").await,
        "tom: hello from a terminal"
    );
    send_text(&mut ws, "hello from a browser").await;
    tom.expect_next("wendy: hello from a browser").await;
    send_text(&mut ws, "/who").await;
    assert_eq!(
        expect_frame(&mut ws, "= ").await,
        "= #lobby (2): tom, wendy"
    );
    send_text(&mut ws, "/quit").await;
    expect_frame(&mut ws, "* Goodbye, wendy.").await;
    tom.expect_next("* wendy has left #lobby (Quit)").await;
}

#[tokio::test]
async fn browser_lines_get_the_protocols_errors_and_the_connection_stays() {
    let server = web_server().await;
    let mut ws = ws_login(&server, "wendy").await;
    ws.send(Message::binary(vec![b'h', 0xff, b'i']))
        .await
        .unwrap();
    assert_eq!(
        expect_frame(&mut ws, "!").await,
        "! Invalid UTF-8; the line was not sent."
    );
    send_text(&mut ws, &"x".repeat(2000)).await;
    assert_eq!(
        expect_frame(&mut ws, "!").await,
        "! Line too long (max 1024 bytes); it was not sent."
    );
    send_text(&mut ws, "/who").await;
    assert_eq!(expect_frame(&mut ws, "=").await, "= #lobby (1): wendy");
}

#[tokio::test]
async fn browser_clients_are_told_the_server_is_shutting_down() {
    let server = web_server().await;
    let mut ws = ws_login(&server, "wendy").await;
    let stopping = tokio::spawn(server.stop());
    expect_frame(&mut ws, "* Server is shutting down.").await;
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket closes");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_websocket_from_another_origin_is_refused_before_the_upgrade() {
    let server = web_server().await;
    let web = server.web.unwrap();
    for origin in [Some("http://evil.example"), Some("null"), None] {
        match open_ws(web, origin).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403, "{origin:?}"),
            Err(other) => panic!("{origin:?}: expected 403, got {other}"),
            Ok(_) => panic!("{origin:?}: the upgrade was accepted"),
        }
    }
    // The refusals took no seat and reached no one: the chat port works as before.
    let mut tom = server.login("tom").await;
    tom.expect_nothing_pending().await;
}

/// An HTTP/1.1 response, read whole.
pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// One HTTP/1.1 request over its own connection; `headers` are `Name: value` lines.
pub(crate) async fn http(
    web: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(web).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(&format!("{header}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&raw[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// Logs in as an instructor through the form; the response of the POST.
pub(crate) async fn post_login(web: SocketAddr, name: &str, password: &str) -> Response {
    let origin = format!("Origin: http://{web}");
    let form = format!("name={name}&password={}", password.replace(' ', "+"));
    let headers = [
        "Content-Type: application/x-www-form-urlencoded",
        origin.as_str(),
    ];
    http(web, "POST", "/instructor/login", &headers, &form).await
}

/// The `name=value` part of a successful login's cookie.
async fn session_cookie(web: SocketAddr) -> String {
    let response = post_login(web, "prof", PASSWORD).await;
    assert_eq!(response.status, 303, "{}", response.text());
    let cookie = response.header("set-cookie").expect("a session cookie");
    format!("Cookie: {}", cookie.split(';').next().unwrap())
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let server = web_server().await;
    let web = server.web.unwrap();
    for (path, kind) in [
        ("/", "text/html"),
        ("/chat.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/instructor", "text/html"),
    ] {
        let response = http(web, "GET", path, &[], "").await;
        assert_eq!(response.status, 200, "{path}");
        assert!(response.header("content-type").unwrap().starts_with(kind));
        let csp = response.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        if kind == "text/html" {
            // No inline script for the policy to have to allow.
            assert!(!response.text().contains("<script>"), "{path}");
        }
    }
}

#[tokio::test]
async fn the_instructor_api_answers_401_without_a_session() {
    let server = instructor_server(|_| {}).await;
    let web = server.web.unwrap();
    for path in [
        "/instructor/api/live",
        "/instructor/api/timeline",
        "/instructor/report.csv",
        "/instructor/report.json?since=2020-01-01",
        "/instructor/anything/else",
        "/instructor/",
    ] {
        let response = http(web, "GET", path, &[], "").await;
        assert_eq!(response.status, 401, "{path}");
        assert!(!response.text().contains('{'), "{path}: no data");
    }
    let forged = http(
        web,
        "GET",
        "/instructor/api/live",
        &["Cookie: classchat_session=00112233445566778899aabbccddeeff"],
        "",
    )
    .await;
    assert_eq!(forged.status, 401);
    let form = http(web, "GET", "/instructor", &[], "").await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains("action=\"/instructor/login\""));
}

#[tokio::test]
async fn wrong_instructor_passwords_are_refused_and_count_with_the_chat_ports() {
    let server = instructor_server(|c| c.access.code_attempts_per_minute = 2).await;
    let web = server.web.unwrap();
    for (name, password) in [("prof", "wrong"), ("PROF", "wrong"), ("nobody", PASSWORD)] {
        let response = post_login(web, name, password).await;
        assert_eq!(response.status, 401, "{name}");
        assert!(response.header("set-cookie").is_none());
        assert!(response.text().contains("Wrong name or password."));
    }
    // Two tries at prof from this address: the form is locked for prof, even
    // with the right password, and so is prof's name on the line port from the
    // same address.
    let locked = post_login(web, "prof", PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert!(locked.header("set-cookie").is_none());
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's.").await;
    prof.send(PASSWORD).await;
    let refusal = prof.next_body().await;
    assert!(
        refusal.starts_with("! Too many wrong codes from your address"),
        "{refusal}"
    );
    // A form posted from another site is refused before the password is looked at.
    let foreign = http(
        web,
        "POST",
        "/instructor/login",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            "Origin: http://evil.example",
        ],
        "name=prof&password=x",
    )
    .await;
    assert_eq!(foreign.status, 403);
}

#[tokio::test]
async fn the_right_password_sets_a_strict_http_only_cookie_and_shows_who_is_online() {
    let server = instructor_server(|c| c.server.rooms = vec!["lab".into()]).await;
    let web = server.web.unwrap();
    let response = post_login(web, "Prof", PASSWORD).await;
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/instructor"));
    let cookie = response.header("set-cookie").unwrap();
    let flags: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let token = flags[0].strip_prefix("classchat_session=").unwrap();
    assert_eq!(token.len(), 32, "128 random bits in hex: {token}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/instructor"] {
        assert!(flags.contains(&flag), "{flag} missing in {cookie}");
    }
    let session = format!("Cookie: {}", flags[0]);

    let _ws = ws_login(&server, "wendy").await;
    let mut tom = server.login("tom").await;
    tom.send("/join lab").await;
    tom.expect_prefix("* You are now in #lab").await;
    let live = http(web, "GET", "/instructor/api/live", &[&session], "").await;
    assert_eq!(live.status, 200);
    let live: serde_json::Value = serde_json::from_slice(&live.body).unwrap();
    assert_eq!(
        live,
        serde_json::json!({"rooms": [
            {"room": "lab", "members": [{"nick": "tom", "instructor": false}]},
            {"room": "lobby", "members": [{"nick": "wendy", "instructor": false}]},
        ]})
    );
    let page = http(web, "GET", "/instructor", &[&session], "").await;
    assert!(page.text().contains("/instructor.js"));
    let unknown = http(web, "GET", "/instructor/nothing", &[&session], "").await;
    assert_eq!(unknown.status, 404);

    let logout = http(web, "POST", "/instructor/logout", &[&session], "").await;
    assert_eq!(logout.status, 303);
    let after = http(web, "GET", "/instructor/api/live", &[&session], "").await;
    assert_eq!(after.status, 401, "the session ended with the logout");
}

/// Runs `chat-server report` on `db` with `args`; its standard output.
fn report_command(db: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(SERVER_BIN)
        .args(["report", "--db", db.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn downloads_are_the_very_bytes_of_the_report_command() {
    let server = instructor_server(|_| {}).await;
    let web = server.web.unwrap();
    let session = session_cookie(web).await;
    let mut ws = ws_login(&server, "wendy").await;
    let mut tom = server.login("tom").await;
    tom.send("=SUM(A1) a formula, kept inert").await;
    expect_frame(&mut ws, "tom:").await;
    send_text(&mut ws, "two words").await;
    tom.expect_next("wendy: two words").await;
    send_text(&mut ws, "/nick wendy_w").await;
    tom.expect_next("* wendy is now known as wendy_w").await;
    send_text(&mut ws, "/quit").await;
    tom.expect_next("* wendy_w has left #lobby (Quit)").await;
    tom.send("/quit").await;
    tom.expect_closed().await;
    // Both sessions closed, so the report no longer depends on when it is read;
    // wait until their leave events are on disk.
    let db = server.db_path();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stored_events(&db)
        .iter()
        .filter(|e| e.kind.as_str() == "leave")
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leave events stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let queries = [
        ("", vec![]),
        (
            "?since=2020-01-01&until=2999-01-01T00:00:00Z&room=%23Lobby",
            vec![
                "--since",
                "2020-01-01",
                "--until",
                "2999-01-01T00:00:00Z",
                "--room",
                "#Lobby",
            ],
        ),
        ("?user=WENDY_W&room=", vec!["--user", "WENDY_W"]),
    ];
    for (query, flags) in queries {
        for format in ["csv", "json"] {
            let path = format!("/instructor/report.{format}{query}");
            let download = http(web, "GET", &path, &[&session], "").await;
            assert_eq!(download.status, 200, "{path}: {}", download.text());
            let mut args = flags.clone();
            args.extend(["--format", format]);
            let printed = report_command(&db, &args);
            assert_eq!(
                download.text(),
                String::from_utf8(printed).unwrap(),
                "{path} vs report {args:?}"
            );
            assert!(download.body.len() > 60, "{path}: rows present");
        }
    }
    let csv = http(web, "GET", "/instructor/report.csv", &[&session], "").await;
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let bad = http(
        web,
        "GET",
        "/instructor/report.csv?since=soon",
        &[&session],
        "",
    )
    .await;
    assert_eq!(bad.status, 400);

    let timeline = http(web, "GET", "/instructor/api/timeline", &[&session], "").await;
    let timeline: serde_json::Value = serde_json::from_slice(&timeline.body).unwrap();
    assert_eq!(timeline["bucket_ms"], 60_000);
    let total: i64 = timeline["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2, "{timeline}");
}

#[tokio::test]
async fn the_binary_prints_the_web_address_after_the_chat_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let db = dir.path().join("chat.db");
    let logs = dir.path().join("logs");
    let text = format!(
        "[server]\nport = 0\n[storage]\ndatabase = {db:?}\n[log]\ndir = {logs:?}\n\
         [web]\nenabled = true\nport = 0\n"
    );
    std::fs::write(&config, text).unwrap();
    let mut command = std::process::Command::new(SERVER_BIN);
    command
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null());
    let (mut child, chat) = crate::harness::spawn_listening(&mut command);
    let second = crate::harness::stdout_line(&mut child);
    let web: SocketAddr = second
        .trim()
        .strip_prefix("web listening on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .parse()
        .unwrap();
    assert_eq!(web.ip(), chat.ip());
    assert_ne!(web.port(), 0);
    let page = http(web, "GET", "/", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/chat.js"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_rostered_instructor_logs_in_with_the_personal_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::harness::test_config(dir.path());
    enable_web(&mut config);
    let db = config.storage.database.clone();
    let add = |args: &[&str]| {
        let out = std::process::Command::new(SERVER_BIN)
            .arg("roster")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        printed
            .lines()
            .nth(1)
            .unwrap()
            .split_once(',')
            .unwrap()
            .1
            .to_owned()
    };
    let prof = add(&["add", "prof", "--instructor"]);
    let amy = add(&["add", "amy"]);
    let server = TestServer::start_in(dir, config).await;
    let web = server.web.unwrap();
    // A student's right code opens nothing; the instructor's does.
    assert_eq!(post_login(web, "amy", &amy).await.status, 401);
    assert_eq!(post_login(web, "prof", &amy).await.status, 401);
    let response = post_login(web, "prof", &prof).await;
    assert_eq!(response.status, 303);
    assert!(response.header("set-cookie").is_some());
}

/// `/me` on the web page is an action, `* wendy waves`, both ways.
#[tokio::test]
async fn actions_reach_the_web_page_and_come_from_it() {
    let server = web_server().await;
    let mut ws = ws_login(&server, "wendy").await;
    let mut tom = server.login("tom").await;
    expect_frame(&mut ws, "* tom has joined").await;
    send_text(&mut ws, "/me waves").await;
    assert_eq!(expect_frame(&mut ws, "* wendy").await, "* wendy waves");
    tom.expect_next("* wendy waves").await;
    tom.send("/me waves back").await;
    assert_eq!(expect_frame(&mut ws, "* tom").await, "* tom waves back");
}
