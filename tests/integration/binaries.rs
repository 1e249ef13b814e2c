//! The real `chat-server` and `chat-client` binaries.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::harness::{body_of, spawn_listening, TestClient, TestServer, SERVER_BIN as SERVER};

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

#[test]
fn bad_configs_exit_2_naming_the_key_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[limits]\nmax_nick_len = 0\n", "limits.max_nick_len"),
        ("[server]\nportt = 1\n", "portt"),
        ("[log]\nrotation = \"weekly\"\n", "weekly"),
        ("[server]\nport = \"x\"\n", "port"),
        ("not toml at all [", "invalid config file"),
    ];
    for (text, needle) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(SERVER)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
    }
    let missing = dir.path().join("missing.toml");
    let out = Command::new(SERVER)
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// Starts the server binary on a free port; returns it and its address.
fn spawn_server(dir: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    spawn_listening(
        Command::new(SERVER)
            .args(["--port", "0", "--db"])
            .arg(dir.join("chat.db"))
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .stderr(Stdio::null()),
    )
}

#[test]
fn the_server_says_where_its_database_and_transcripts_are() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = spawn_server(dir.path());
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut next = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    };
    let (database, transcripts, retention, reach) = (next(), next(), next(), next());
    child.kill().unwrap();
    child.wait().unwrap();
    let db = dir.path().join("chat.db");
    assert_eq!(database.trim_end(), format!("database: {}", db.display()));
    let logs = dir.path().join("logs");
    assert_eq!(
        transcripts.trim_end(),
        format!("transcripts: {}", logs.display())
    );
    assert_eq!(
        retention.trim_end(),
        "retention: everything is kept (storage.retention_days = 0)"
    );
    assert!(
        reach.starts_with("only this machine can connect"),
        "{reach}"
    );
}

#[tokio::test]
async fn sigterm_tells_clients_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_server(dir.path());
    let mut alice = TestClient::connect(addr).await;
    alice.send("alice").await;
    alice.expect_prefix("* Welcome, alice!").await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        alice.expect_closed().await,
        vec!["* Server is shutting down."]
    );
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn the_client_binary_is_scriptable_through_a_pipe() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let port = server.addr.port().to_string();
    let args = ["--host", "127.0.0.1", "--port", &port, "--name", "carol"].map(String::from);
    let client = tokio::spawn(run_client(args.to_vec(), b"hello from a pipe\n/who\n"));
    alice.expect_next("* carol has joined #lobby").await;
    alice.expect_next("carol: hello from a pipe").await;
    alice.expect_next("* carol has left #lobby (Quit)").await;
    let out = client.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains('\x1b'),
        "no escape codes through a pipe: {stdout:?}"
    );
    let bodies: Vec<&str> = stdout.lines().map(body_of).collect();
    assert!(
        bodies.iter().any(|b| b.starts_with("* Welcome, carol!")),
        "{bodies:?}"
    );
    assert!(bodies.contains(&"= #lobby (2): alice, carol"), "{bodies:?}");
    assert_eq!(bodies.last(), Some(&"* Goodbye, carol."), "{bodies:?}");
}

#[tokio::test]
async fn the_client_binary_exits_non_zero_when_the_server_goes_away() {
    let server = TestServer::start().await;
    let port = server.addr.port().to_string();
    let mut child = Command::new(CLIENT)
        .args(["--port", &port, "--name", "dave"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Keep reading to the end: a client whose output pipe is gone stops quietly
    // (like `chat-client | head`), which is not what this test is about.
    let (welcomed, welcome) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut welcomed = Some(welcomed);
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            if line.contains("Welcome, dave!") {
                welcomed.take().map(|w| w.send(()));
            }
            line.clear();
        }
    });
    welcome.await.expect("the client logged in");
    drop(server.stop().await);
    reader.await.unwrap();
    let status = crate::harness::exited(child).await;
    assert_ne!(status.code(), Some(0));
}

#[tokio::test]
async fn flags_override_the_config_file_and_sigint_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[server]\nbind = \"0.0.0.0\"\nport = 1\n[storage]\ndatabase = \"/nonexistent/x.db\"\n[log]\ndir = \"/nonexistent/logs\"\n",
    )
    .unwrap();
    let (child, addr) = spawn_listening(
        Command::new(SERVER)
            .arg("--config")
            .arg(&config)
            .args(["--bind", "127.0.0.1", "--port", "0", "--db"])
            .arg(dir.path().join("flag.db"))
            .arg("--log-dir")
            .arg(dir.path().join("flag-logs"))
            .stderr(Stdio::null()),
    );
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 1);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
    assert!(dir.path().join("flag.db").exists());
    assert!(dir.path().join("flag-logs").is_dir());
}

#[tokio::test]
async fn the_client_asks_again_after_a_refused_name() {
    let server = TestServer::start().await;
    let args = vec!["--port".to_owned(), server.addr.port().to_string()];
    let out = run_client(args, b"admin\ndana\n/who\n").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let bodies: Vec<&str> = stdout.lines().map(body_of).collect();
    let refused = bodies
        .iter()
        .position(|b| *b == "! Username admin is reserved");
    let welcomed = bodies
        .iter()
        .position(|b| b.starts_with("* Welcome, dana!"));
    assert!(refused.is_some() && welcomed > refused, "{bodies:?}");
    assert!(bodies.contains(&"= #lobby (1): dana"), "{bodies:?}");
}

/// Runs the client binary with `input` piped to it (as a script would, with a
/// terminal type set to show that a pipe still gets no escapes) and waits for it.
async fn run_client(args: Vec<String>, input: &'static [u8]) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(CLIENT)
            .args(&args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_client_answers_the_code_prompt_from_the_flag_or_the_environment() {
    let server = TestServer::start_with(|c| c.access.join_code = "owl-42".into()).await;
    let port = server.addr.port().to_string();
    for (name, flag, env) in [("amy", Some("OWL-42"), None), ("bob", None, Some("owl-42"))] {
        let mut command = Command::new(CLIENT);
        command.args(["--port", &port, "--name", name]);
        if let Some(code) = flag {
            command.args(["--code", code]);
        }
        match env {
            Some(code) => command.env("CLASSCHAT_CODE", code),
            None => command.env_remove("CLASSCHAT_CODE"),
        };
        let output = tokio::task::spawn_blocking(move || {
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(b"/quit\n").unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{name}: {output:?}");
        assert!(
            stdout.contains(&format!("* Welcome, {name}!")),
            "{name}: {stdout}"
        );
        assert!(!stdout.contains("Wrong code"), "{name}: {stdout}");
    }
}

/// `chat-server 2>&1 | tee server.log`, then Ctrl-C: the same Ctrl-C stops `tee`,
/// so everything the server prints from then on goes to a pipe nobody reads.
#[tokio::test]
async fn sigint_with_stdout_and_stderr_on_closed_pipes_still_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // The server cannot tell its port through a closed stdout: give it a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = dir.path().join("chat.db");
    let mut child = Command::new(SERVER)
        .args(["--port", &port.to_string(), "--db"])
        .arg(&db)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        // Something to write on stderr at every connection and at the shutdown.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let started = std::time::Instant::now();
    let stream = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < crate::harness::WAIT => {
                assert!(child.try_wait().unwrap().is_none(), "the server exited");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => panic!("the server never listened: {err}"),
        }
    };
    drop(stream);
    let mut alice = TestClient::connect(addr).await;
    alice.send("alice").await;
    alice.expect_prefix("* Welcome, alice!").await;
    crate::harness::signal(&child, "-INT");
    assert_eq!(
        alice.expect_closed().await,
        vec!["* Server is shutting down."]
    );
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let leaves: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'leave' AND sender = 'alice'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(leaves, 1);
}
