//! A real server on port 0 with its own temporary database and log folder, and a
//! line-oriented TCP client that waits for lines with a timeout, never a sleep.

// Not every test binary configuration uses every helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use classchat::config::Config;
use classchat::server::Server;
use classchat::store::Closed;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for a line it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server and the folder holding its files.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP listener's address, when `[web]` is enabled (see [`enable_web`]).
    pub web: Option<SocketAddr>,
    /// The IRC listener's address, when the configuration enables it.
    pub irc_addr: Option<SocketAddr>,
    /// The TLS ports (line protocol, IRC, HTTPS), with `[tls]`.
    pub tls_addr: Option<SocketAddr>,
    pub irc_tls_addr: Option<SocketAddr>,
    pub web_tls_addr: Option<SocketAddr>,
    pub config: Config,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Closed>>,
}

/// A configuration whose files live in `dir` and whose port is free.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.port = 0;
    config.storage.database = dir.join("data/chat.db");
    config.log.dir = dir.join("logs");
    config
}

/// A config tweak: the web listener on a free port of the chat's address.
pub fn enable_web(config: &mut Config) {
    config.web.enabled = true;
    config.web.port = 0;
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` has changed its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        TestServer::start_in(dir, config).await
    }

    /// Starts a server on an existing folder (to restart over the same database).
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestServer {
        let valid = config.clone().validate().expect("test config is valid");
        let server = Server::bind(valid).await.expect("server starts");
        let addr = server.local_addr();
        let web = server.web_addr();
        let irc_addr = server.irc_addr();
        let tls_addr = server.line_tls_addr();
        let irc_tls_addr = server.irc_tls_addr();
        let web_tls_addr = server.web_tls_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            web,
            irc_addr,
            tls_addr,
            irc_tls_addr,
            web_tls_addr,
            config,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Connects a raw client (not logged in).
    pub async fn connect(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    /// Connects and logs in as `name`, reading up to the welcome line.
    pub async fn login(&self, name: &str) -> TestClient {
        let mut client = self.connect().await;
        client.send(name).await;
        client.expect_prefix(&format!("* Welcome, {name}!")).await;
        client
    }

    /// Connects a raw IRC client (not registered).
    pub async fn irc(&self) -> IrcClient {
        IrcClient::connect(self.irc_addr.expect("IRC is enabled")).await
    }

    /// Connects an IRC client and registers it as `nick` without CAP, reading up
    /// to the end of its first room's names.
    pub async fn irc_login(&self, nick: &str) -> IrcClient {
        let mut client = self.irc().await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.expect_verb("366").await;
        client
    }

    /// Shuts the server down as a signal would, waits until it has finished and
    /// returns the folder with its files, every event in the database.
    pub async fn stop(self) -> tempfile::TempDir {
        let (closed, dir) = self.stop_closed().await;
        assert_eq!(closed, Closed::AllWritten);
        dir
    }

    /// Like [`TestServer::stop`], and tells how the store ended.
    pub async fn stop_closed(mut self) -> (Closed, tempfile::TempDir) {
        let _ = self.stop.take().unwrap().send(());
        let closed = tokio::time::timeout(Duration::from_secs(60), self.task.take().unwrap())
            .await
            .expect("server stops in time")
            .unwrap();
        (closed, self.dir)
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.storage.database.clone()
    }
}

/// Turns the IRC listener on, on a free port.
pub fn enable_irc(config: &mut Config) {
    config.irc.enabled = true;
    config.irc.port = 0;
}

/// One IRC line from the server, taken apart.
#[derive(Debug, Clone)]
pub struct IrcLine {
    /// The whole line, without `\r\n`.
    pub raw: String,
    /// The `@time=` tag's value, if any.
    pub time: Option<String>,
    pub source: Option<String>,
    pub verb: String,
    pub params: Vec<String>,
}

impl IrcLine {
    fn parse(raw: &str) -> IrcLine {
        let (tags, rest) = match raw.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').expect("tags end with a space"),
            None => ("", raw),
        };
        let time = tags
            .split(';')
            .find_map(|tag| tag.strip_prefix("time="))
            .map(str::to_owned);
        let message = classchat::front::irc::message::parse(rest)
            .expect("the server's lines parse")
            .expect("the server sends no blank lines");
        IrcLine {
            raw: raw.to_owned(),
            time,
            source: message.source.map(str::to_owned),
            verb: message.verb.to_owned(),
            params: message.params.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The value of tag `name`, if the line has it.
    pub fn tag(&self, name: &str) -> Option<&str> {
        let tags = self.raw.strip_prefix('@')?.split_once(' ')?.0;
        tags.split(';').find_map(|tag| match tag.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if tag == name => Some(""),
            _ => None,
        })
    }

    /// The last parameter: the text of a message or numeric.
    pub fn text(&self) -> &str {
        self.params.last().map_or("", String::as_str)
    }

    /// The nick part of the source.
    pub fn nick(&self) -> &str {
        let source = self.source.as_deref().unwrap_or("");
        source.split('!').next().unwrap_or(source)
    }
}

/// A client speaking raw IRC over TCP.
pub struct IrcClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl IrcClient {
    pub async fn connect(addr: SocketAddr) -> IrcClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        let (reader, writer) = stream.into_split();
        IrcClient {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Sends one line (`\r\n` is added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// The next line, or `None` at EOF. Panics after [`WAIT`].
    pub async fn next(&mut self) -> Option<IrcLine> {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for an IRC line");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = String::from_utf8(buf).expect("server sends UTF-8");
                let line = line
                    .strip_suffix("\r\n")
                    .unwrap_or_else(|| panic!("line without CRLF: {line:?}"));
                assert!(line.len() <= 512 + 8191, "overlong line {line:?}");
                Some(IrcLine::parse(line))
            }
        }
    }

    /// The next line; the connection must stay open.
    pub async fn next_line(&mut self) -> IrcLine {
        self.next().await.expect("connection closed")
    }

    /// Reads until a line matches; returns it and the lines skipped.
    pub async fn expect_where(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&IrcLine) -> bool,
    ) -> (IrcLine, Vec<String>) {
        let mut skipped = Vec::new();
        loop {
            let Some(line) = self.next().await else {
                panic!("connection closed while waiting for {what}; got {skipped:#?}");
            };
            if matches(&line) {
                return (line, skipped);
            }
            skipped.push(line.raw);
        }
    }

    /// Reads until a line with this verb or numeric.
    pub async fn expect_verb(&mut self, verb: &str) -> IrcLine {
        self.expect_where(verb, |l| l.verb == verb).await.0
    }

    /// The very next line must have this verb; returns it.
    pub async fn expect_next(&mut self, verb: &str) -> IrcLine {
        let line = self.next_line().await;
        assert_eq!(line.verb, verb, "{}", line.raw);
        line
    }

    /// Proves nothing else was queued for this client: a `PING` whose `PONG` must
    /// be the very next line.
    pub async fn expect_nothing_pending(&mut self) {
        self.send("PING :sync").await;
        let line = self.next_line().await;
        assert!(
            line.verb == "PONG" && line.text() == "sync",
            "expected only the PONG, got {}",
            line.raw
        );
    }

    /// Reads until the server closes; returns the lines read.
    pub async fn expect_closed(&mut self) -> Vec<IrcLine> {
        let mut lines = Vec::new();
        while let Some(line) = self.next().await {
            lines.push(line);
        }
        lines
    }
}

/// A client speaking raw lines over TCP.
pub struct TestClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl TestClient {
    pub async fn connect(addr: SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        TestClient::over(stream)
    }

    /// A client on a connection already open (one that sent a PROXY header first).
    pub fn over(stream: TcpStream) -> TestClient {
        stream.set_nodelay(true).unwrap();
        let (reader, writer) = stream.into_split();
        TestClient {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Connects from another loopback address (127.0.0.2, ...), as a second
    /// machine would: limits per address tell them apart.
    pub async fn connect_from(addr: SocketAddr, from: [u8; 4]) -> TestClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("binds a loopback address");
        let stream = socket.connect(addr).await.expect("connects");
        stream.set_nodelay(true).unwrap();
        let (reader, writer) = stream.into_split();
        TestClient {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Sends one line (a `\n` is added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// The next whole line, with its timestamp, or `None` at EOF. Panics after [`WAIT`].
    pub async fn next_line(&mut self) -> Option<String> {
        self.next_line_within(WAIT).await
    }

    /// [`TestClient::next_line`], waiting up to `limit`.
    pub async fn next_line_within(&mut self, limit: Duration) -> Option<String> {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(limit, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = String::from_utf8(buf).expect("server sends UTF-8");
                assert!(line.ends_with('\n'), "line without newline: {line:?}");
                Some(line.trim_end_matches('\n').to_owned())
            }
        }
    }

    /// The body of the next line (the part after `[TIMESTAMP] `).
    pub async fn next_body(&mut self) -> String {
        let line = self.next_line().await.expect("connection closed");
        body_of(&line).to_owned()
    }

    /// Reads lines until one's body equals `body`; returns the bodies skipped.
    pub async fn expect(&mut self, body: &str) -> Vec<String> {
        self.expect_where(body, |b| b == body).await
    }

    /// Reads lines until one's body starts with `prefix`; returns that body.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let mut last = String::new();
        self.expect_where(prefix, |b| {
            last = b.to_owned();
            b.starts_with(prefix)
        })
        .await;
        last
    }

    async fn expect_where(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let Some(line) = self.next_line().await else {
                panic!("connection closed while waiting for {what:?}; got {skipped:?}");
            };
            let body = body_of(&line);
            if matches(body) {
                return skipped;
            }
            skipped.push(body.to_owned());
        }
    }

    /// The very next body must be `body`.
    pub async fn expect_next(&mut self, body: &str) {
        assert_eq!(self.next_body().await, body);
    }

    /// Reads until the server closes the connection; returns the bodies read.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut bodies = Vec::new();
        while let Some(line) = self.next_line().await {
            bodies.push(body_of(&line).to_owned());
        }
        bodies
    }

    /// Proves that nothing was queued for this client before now: a `/who` round
    /// trip, whose answer must be the very next line.
    pub async fn expect_nothing_pending(&mut self) {
        self.send("/who").await;
        let body = self.next_body().await;
        assert!(
            body.starts_with("= #"),
            "expected only the /who answer, got {body:?}"
        );
    }

    /// Drops the connection with a TCP reset instead of a clean close.
    pub fn reset(self) {
        let stream = self.reader.into_inner().reunite(self.writer).unwrap();
        // A zero linger resets at once; it never blocks the thread as a timed one would.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
    }

    /// Closes the sending side (EOF to the server), keeps reading.
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.unwrap();
    }
}

/// The body of a wire line; panics if the line is not `[TIMESTAMP] BODY`.
pub fn body_of(line: &str) -> &str {
    assert!(line.starts_with('['), "not a server line: {line:?}");
    let end = line
        .find("] ")
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    &line[end + 2..]
}

/// The next line the child printed, read a byte at a time: a buffered reader
/// would swallow the lines after it, which a later read then never sees.
pub fn stdout_line(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let stdout = child.stdout.as_mut().expect("stdout is piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

/// Says why a test does not run, as one line on the terminal. Written to stderr
/// directly: `println!` in a passing test is captured by the test runner and
/// never shown, so a skip would look like a pass.
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// The server binary.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_chat-server");

/// Spawns `command` (the server binary with its arguments; stderr is the caller's
/// choice), reads its first line, `listening on ADDR:PORT`, and returns the child
/// and that address.
pub fn spawn_listening(command: &mut std::process::Command) -> (std::process::Child, SocketAddr) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = stdout_line(&mut child);
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0, "the real port is printed");
    (child, addr)
}

/// The server binary on a configuration of its own in `dir`: a free port, its
/// database and log folder in `dir`, `log` added to `[log]` and `rest` after it;
/// its diagnostics (stderr, `RUST_LOG` unset) are kept for [`stop_for_stderr`].
pub fn spawn_logging(
    dir: &std::path::Path,
    log: &str,
    rest: &str,
) -> (std::process::Child, SocketAddr) {
    let config = dir.join("server.toml");
    let text = format!(
        "[server]\nport = 0\n[storage]\ndatabase = {:?}\n[log]\ndir = {:?}\n{log}\n{rest}",
        dir.join("chat.db"),
        dir.join("logs"),
    );
    std::fs::write(&config, text).unwrap();
    spawn_listening(
        std::process::Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::piped()),
    )
}

/// Stops a server from [`spawn_logging`] as an operator would (SIGTERM) and
/// returns everything it wrote to stderr.
pub fn stop_for_stderr(mut child: std::process::Child) -> String {
    use std::io::Read;
    signal(&child, "-TERM");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    stderr
}

/// Waits (on the blocking pool) until a child process has exited.
pub async fn exited(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// Sends `signal` (`-TERM`, `-KILL`, ...) to a child process, as an operator would.
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
