//! `chat-client`: the command-line client for a classchat server.
//!
//! ```text
//! chat-client [--host HOST] [--port PORT] [--name NAME] [--code CODE] [--no-color]
//!             [--tls] [--tls-ca FILE] [--tls-fingerprint SHA256]
//! ```
//!
//! TLS is on with `--tls`, `--tls-ca`, `--tls-fingerprint`, or port 5556 (the
//! server's `tls.line_port`); how the server is trusted is explained in
//! [`classchat::tls::client`].
//!
//! It logs in (asking for a username, and for a join code if the class needs one,
//! when they were not given or were refused), then prints every server line as it
//! arrives while sending each line the user types. On a terminal the input is a
//! rustyline editor, and incoming lines, coloured by kind, appear above it. With piped
//! stdin it prints the server's lines verbatim and nothing else, so it can be scripted:
//!
//! ```text
//! printf 'hello\n/who\n' | chat-client --name bob
//! ```
//!
//! `/quit`, Ctrl-D, Ctrl-C and the end of piped input leave cleanly (exit 0); a lost
//! server is reported on stderr (exit 1), and so is a server that closes the
//! connection on purpose (a shutdown, a kick), with its reason. The client reads the
//! server's lines through the same types the server renders them with
//! ([`classchat::protocol::ServerLine`]), so it holds no wording of its own.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use clap::Parser;
use classchat::protocol::line::{parse_wire, split_stamp};
use classchat::protocol::{CodeKind, LineKind, Notice, ServerLine};
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor, ExternalPrinter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::signal::ctrl_c;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

/// How long to wait for the server to close the connection after `/quit`.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// An unreachable host would otherwise hang for the OS default, minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the next prompt waits for the server's answer to `/nick`, so that it
/// shows the name the server gave; keys typed meanwhile wait in the terminal.
const NICK_WAIT: Duration = Duration::from_secs(2);

/// Command-line client for a classchat server.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Server host name or IP address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server TCP port.
    #[arg(long, default_value_t = 5555)]
    port: u16,
    /// Username to log in with; asked for when omitted or refused.
    #[arg(long)]
    name: Option<String>,
    /// Join code or personal code, for a class that needs one; asked for (without
    /// echo) when needed and omitted.
    #[arg(long, env = "CLASSCHAT_CODE", hide_env_values = true)]
    code: Option<String>,
    /// Never colour the output (colours are also off when NO_COLOR is set).
    #[arg(long)]
    no_color: bool,
    /// Connect with TLS (on by itself with port 5556 or the other --tls flags).
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Accept exactly the certificate with this SHA-256 fingerprint (as
    /// `chat-server` prints it), and remember it for this host and port.
    #[arg(long, value_name = "SHA256")]
    tls_fingerprint: Option<String>,
}

/// The port of the line protocol over TLS: a client given it speaks TLS.
const TLS_PORT: u16 = 5556;

/// One half of the server connection, TCP or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

fn main() -> ExitCode {
    let args = Args::parse();
    // One connection and one user: a single-threaded runtime is all this needs.
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("chat-client: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let addr = match args.host.contains(':') {
        true => format!("[{}]:{}", args.host, args.port),
        false => format!("{}:{}", args.host, args.port),
    };
    let exit = runtime.block_on(run(&args, &addr));
    // The input thread may be blocked reading stdin; there is nothing left to wait for.
    runtime.shutdown_background();
    match exit {
        Exit::Clean => return ExitCode::SUCCESS,
        Exit::Closed(why) => eprintln!("the server at {addr} closed the connection: {why}"),
        Exit::Lost(detail) => eprintln!("connection to {addr} lost{detail}"),
        Exit::Failed(why) => eprintln!("chat-client: {why}"),
    }
    ExitCode::FAILURE
}

/// How a session ended: exit 0, or exit 1 with a message.
enum Exit {
    Clean,
    /// The server closed the connection on purpose, and said why.
    Closed(String),
    /// The server went away; the text says why, if known.
    Lost(String),
    Failed(String),
}

impl Exit {
    fn lost(err: io::Error) -> Exit {
        Exit::Lost(format!(": {err}"))
    }
}

async fn run(args: &Args, addr: &str) -> Exit {
    let stream = match connect(&args.host, args.port).await {
        Ok(stream) => stream,
        Err(err) => return Exit::Failed(format!("cannot connect to {addr}: {err}")),
    };
    let stream = match args.wants_tls() {
        false => {
            let (reader, writer) = stream.into_split();
            (Box::new(reader) as Reader, Box::new(writer) as Writer)
        }
        true => match secure(stream, args, addr).await {
            Ok(halves) => halves,
            Err(exit) => return exit,
        },
    };
    if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        return session(stream, &mut pipe_input(), Screen::Plain, args).await;
    }
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (mut input, screen, terminal) = match tty_input(!args.no_color && !no_color_env) {
        Ok(tty) => tty,
        Err(err) => return Exit::Failed(format!("cannot use the terminal: {err}")),
    };
    let exit = session(stream, &mut input, screen, args).await;
    terminal.finish(input.busy);
    exit
}

async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
    // Chat lines are small and interactive: don't let Nagle hold them back.
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Args {
    fn wants_tls(&self) -> bool {
        self.tls || self.port == TLS_PORT || self.tls_ca.is_some() || self.tls_fingerprint.is_some()
    }
}

/// The TLS handshake, verified as [`classchat::tls::client`] says; a refused
/// certificate ends the client with what to do about it.
async fn secure(stream: TcpStream, args: &Args, addr: &str) -> Result<(Reader, Writer), Exit> {
    use classchat::tls::client::{KnownHosts, Refusal, Trust, Verifier};
    let pinned = match &args.tls_fingerprint {
        None => None,
        Some(text) => match classchat::tls::parse_fingerprint(text) {
            Some(print) => Some(print),
            None => {
                return Err(Exit::Failed(format!(
                    "--tls-fingerprint {text}: not a SHA-256 fingerprint (64 hex digits, colons allowed)"
                )))
            }
        },
    };
    let roots = match &args.tls_ca {
        Some(path) => {
            Some(Trust::ca_file(path).map_err(|e| Exit::Failed(format!("--tls-ca: {e}")))?)
        }
        None => Trust::system_roots(),
    };
    let known = KnownHosts::default_place();
    let trust = Trust {
        roots,
        pinned: pinned.clone(),
        known: known.clone(),
    };
    let verifier = Verifier::new(trust, addr).map_err(|e| Exit::Failed(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(verifier.client_config()));
    let name = rustls::pki_types::ServerName::try_from(args.host.clone())
        .map_err(|_| Exit::Failed(format!("{}: not a host name or address", args.host)))?;
    let shaken = timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await;
    let err = match shaken {
        Ok(Ok(stream)) => {
            // A fingerprint the student typed, and that the server matched, is
            // kept: next time no flag is needed, and a change is noticed.
            if let (Some(print), Some(known)) = (&pinned, &known) {
                if let Err(err) = known.set(addr, print) {
                    let path = known.path().display();
                    eprintln!("chat-client: cannot keep the fingerprint in {path}: {err}");
                }
            }
            let (reader, writer) = tokio::io::split(stream);
            return Ok((Box::new(reader), Box::new(writer)));
        }
        Ok(Err(err)) => err.to_string(),
        Err(_) => "the TLS handshake timed out".to_owned(),
    };
    let kept = known
        .as_ref()
        .map(|k| k.path().display().to_string())
        .unwrap_or_else(|| "known_hosts".into());
    let flag = |print: &str| {
        format!(
            "chat-client --host {} --port {} --tls-fingerprint {print}",
            args.host, args.port
        )
    };
    Err(Exit::Failed(match verifier.refusal() {
        None => format!("TLS with {addr} failed: {err}"),
        Some(Refusal::Unknown { offered }) => format!(
            "the certificate of {addr} is not signed by an authority this computer trusts \
             (a self-signed server, or one you have not connected to before).\n\
             Its SHA-256 fingerprint is\n\n    {offered}\n\n\
             Compare it with the one your instructor shows. If they are the same, connect with\n\n    {}\n",
            flag(&offered)
        ),
        Some(Refusal::Changed { expected, offered }) => format!(
            "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             WARNING: the certificate of {addr} has changed!\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             Someone could be listening in (a machine in the middle), or the server\n\
             got a new certificate. Ask your instructor before going on.\n\
             Fingerprint kept in {kept}:\n    {expected}\n\
             Fingerprint offered now:\n    {offered}\n\
             If your instructor confirms the new one, connect once with\n    {}\n",
            flag(&offered)
        ),
        Some(Refusal::NotPinned { expected, offered }) => format!(
            "the certificate of {addr} has the fingerprint\n    {offered}\n\
             not the one given with --tls-fingerprint:\n    {expected}\nNot connecting."
        ),
    }))
}

async fn session(
    stream: (Reader, Writer),
    input: &mut Input,
    mut screen: Screen,
    args: &Args,
) -> Exit {
    let (reader, writer) = stream;
    let mut conn = Conn {
        reader: LineReader::new(reader),
        writer,
    };
    match login(&mut conn, input, &mut screen, args).await {
        Ok(nick) => chat(conn, input, screen, nick).await,
        Err(exit) => exit,
    }
}

/// The two halves of the server connection.
struct Conn {
    reader: LineReader,
    writer: Writer,
}

impl Conn {
    async fn send(&mut self, text: &str) -> Result<(), Exit> {
        self.writer
            .write_all(format!("{text}\n").as_bytes())
            .await
            .map_err(Exit::lost)
    }
}

/// What a login prompt asks for.
#[derive(Clone, Copy, PartialEq)]
enum Ask {
    Name,
    Code(CodeKind),
}

/// Logs in and returns the accepted nick.
async fn login(
    conn: &mut Conn,
    input: &mut Input,
    screen: &mut Screen,
    args: &Args,
) -> Result<String, Exit> {
    let mut login = Login {
        code: args.code.clone(),
        sent: None,
        asking: None,
        name: None,
    };
    if let Some(name) = &args.name {
        // The server takes the name before its greeting, which saves a round trip.
        conn.send(name.trim()).await?;
        login.sent = Some(Ask::Name);
        login.name = Some(name.trim().to_owned());
    }
    loop {
        tokio::select! {
            line = conn.reader.next() => {
                let line = line.map_err(Exit::lost)?.ok_or(Exit::Lost(String::new()))?;
                screen.show(&line);
                let parsed = parse_wire(&line).1.ok();
                if let Some(nick) = login.on_line(parsed.as_ref(), conn, input).await? {
                    return Ok(nick);
                }
            }
            typed = input.recv(), if login.asking.is_some() => {
                login.on_typed(typed, conn, input).await?;
            }
            _ = ctrl_c() => return Err(Exit::Clean),
        }
    }
}

/// Where the login is. The server answers a refused name or code with `! REASON` and
/// the same prompt again, which the user then answers.
struct Login {
    /// `--code`, until it is used.
    code: Option<String>,
    /// An answer sent and not yet refused: the prompt it answers needs no other.
    sent: Option<Ask>,
    /// What the user is being asked for.
    asking: Option<Ask>,
    /// The last username sent: only a welcome of that name ends the login (a
    /// message of the day may well say "Welcome, class!").
    name: Option<String>,
}

impl Login {
    /// Follows a server line; returns our nick once we are in.
    async fn on_line(
        &mut self,
        line: Option<&ServerLine>,
        conn: &mut Conn,
        input: &mut Input,
    ) -> Result<Option<String>, Exit> {
        let ask = match line {
            Some(ServerLine::Notice(Notice::Welcome { nick, .. })) => {
                if self
                    .name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(nick))
                {
                    return Ok(Some(nick.to_string()));
                }
                return Ok(None);
            }
            Some(ServerLine::Error(_)) => {
                self.sent = None;
                return Ok(None);
            }
            Some(ServerLine::Notice(Notice::AskName)) => Ask::Name,
            Some(ServerLine::Notice(Notice::AskCode(kind))) => Ask::Code(*kind),
            _ => return Ok(None),
        };
        if self.sent == Some(ask) || self.asking.is_some() {
            return Ok(None);
        }
        match self.code.take_if(|_| matches!(ask, Ask::Code(_))) {
            Some(code) => {
                conn.send(code.trim()).await?;
                self.sent = Some(ask);
            }
            None => self.asking = Some(input.ask(ask)),
        }
        Ok(None)
    }

    async fn on_typed(
        &mut self,
        typed: Typed,
        conn: &mut Conn,
        input: &mut Input,
    ) -> Result<(), Exit> {
        let ask = self.asking.take().unwrap_or(Ask::Name);
        match typed {
            Typed::Line(answer) if answer.trim().is_empty() => self.asking = Some(input.ask(ask)),
            Typed::Line(answer) => {
                conn.send(answer.trim()).await?;
                self.sent = Some(ask);
                if ask == Ask::Name {
                    self.name = Some(answer.trim().to_owned());
                }
            }
            Typed::Eof if !input.interactive => {
                return Err(Exit::Failed(
                    "input ended before the login was accepted".into(),
                ));
            }
            Typed::Eof | Typed::Interrupt => return Err(Exit::Clean),
        }
        Ok(())
    }
}

/// Sends the user's lines while a task prints the server's, until the user has left
/// or the server has gone.
async fn chat(conn: Conn, input: &mut Input, screen: Screen, nick: String) -> Exit {
    let Conn { reader, mut writer } = conn;
    let nick = Arc::new(Mutex::new(nick));
    let (answered, mut answers) = watch::channel(0u64);
    let mut receiving = tokio::spawn(receive(reader, screen, Arc::clone(&nick), answered));
    let mut asking_password = false;
    loop {
        if asking_password {
            input.request("password> ".to_string(), Mode::Secret);
        } else {
            let prompt = format!("{}> ", nick.lock().unwrap_or_else(PoisonError::into_inner));
            input.request(prompt, Mode::Remember);
        }
        let typed = tokio::select! {
            typed = input.recv() => typed,
            ended = &mut receiving => {
                return match ended {
                    Ok(Ok(Some(farewell))) => Exit::Closed(farewell),
                    Ok(Ok(None)) => Exit::Lost(String::new()),
                    Ok(Err(err)) => Exit::lost(err),
                    Err(err) => Exit::Lost(format!(": {err}")),
                };
            }
            _ = ctrl_c() => Typed::Interrupt,
        };
        let line = match typed {
            Typed::Line(line) if asking_password => {
                asking_password = false;
                if line.is_empty() {
                    continue;
                }
                format!("/op {line}")
            }
            Typed::Line(line) if line.trim().is_empty() => continue,
            Typed::Line(line) if line.trim().eq_ignore_ascii_case("/op") => {
                asking_password = true;
                continue;
            }
            Typed::Line(line) => line,
            Typed::Eof | Typed::Interrupt => "/quit".to_string(),
        };
        answers.borrow_and_update();
        if let Err(err) = writer.write_all(format!("{line}\n").as_bytes()).await {
            return Exit::lost(err);
        }
        let command = line.split_whitespace().next().unwrap_or_default();
        if command.eq_ignore_ascii_case("/quit") {
            break;
        }
        if command.eq_ignore_ascii_case("/nick") {
            // A closed connection ends the wait too: the sender goes with `receive`.
            let _ = timeout(NICK_WAIT, answers.changed()).await;
        }
    }
    // Keep printing until the server's goodbye closes the connection.
    if timeout(QUIT_WAIT, &mut receiving).await.is_err() {
        receiving.abort();
        let _ = receiving.await;
    }
    Exit::Clean
}

/// Prints the server's lines until it closes the connection. Returns the last
/// line that explains a close the server meant (a shutdown, a kick, a refusal), if
/// that is how it ended. `answered` counts the lines that can answer a `/nick`: our
/// rename, or an error.
async fn receive(
    mut reader: LineReader,
    mut screen: Screen,
    nick: Arc<Mutex<String>>,
    answered: watch::Sender<u64>,
) -> io::Result<Option<String>> {
    let mut farewell = None;
    while let Some(line) = reader.next().await? {
        let (_, parsed) = parse_wire(&line);
        let mut answers_nick = false;
        match &parsed {
            // Keep the prompt showing our name after a /nick.
            Ok(ServerLine::Notice(Notice::Renamed { old, new })) => {
                let mut nick = nick.lock().unwrap_or_else(PoisonError::into_inner);
                if **old == *nick {
                    *nick = new.to_string();
                    answers_nick = true;
                }
            }
            Ok(ServerLine::Notice(
                notice @ (Notice::ShuttingDown | Notice::Kicked { .. } | Notice::Goodbye { .. }),
            )) => farewell = Some(notice.to_string()),
            Ok(ServerLine::Error(text)) => {
                farewell = Some(text.clone());
                answers_nick = true;
            }
            _ => farewell = None,
        }
        screen.show(&line);
        if answers_nick {
            answered.send_modify(|n| *n += 1);
        }
    }
    Ok(farewell)
}

/// Server lines, decoded leniently: one bad byte must not cost the user the chat.
/// The longest server line read in one piece.
const MAX_LINE: usize = 64 * 1024;

struct LineReader {
    inner: BufReader<Reader>,
    /// Kept across calls so that a read cancelled by `select!` loses nothing.
    buf: Vec<u8>,
}

impl LineReader {
    fn new(reader: Reader) -> Self {
        LineReader {
            inner: BufReader::new(reader),
            buf: Vec::new(),
        }
    }

    /// The next line without its line ending, or `None` once the server has closed.
    /// A line longer than [`MAX_LINE`] comes in pieces, so a hostile server cannot
    /// make the client grow without limit.
    async fn next(&mut self) -> io::Result<Option<String>> {
        let room = MAX_LINE.saturating_sub(self.buf.len()).max(1) as u64;
        (&mut self.inner)
            .take(room)
            .read_until(b'\n', &mut self.buf)
            .await?;
        if self.buf.is_empty() {
            return Ok(None);
        }
        let line = decode_line(&self.buf);
        self.buf.clear();
        Ok(Some(line))
    }
}

fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Where server lines go.
enum Screen {
    /// Verbatim to stdout, for scripts.
    Plain,
    /// To the printer thread, which puts them above the line being edited.
    Tty {
        lines: std_mpsc::Sender<String>,
        color: bool,
    },
}

impl Screen {
    fn show(&mut self, line: &str) {
        match self {
            Screen::Plain => {
                let mut out = io::stdout().lock();
                // A closed stdout is no reason to leave the chat.
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
            Screen::Tty { lines, color } => {
                let _ = lines.send(paint(line, *color));
            }
        }
    }
}

/// Formats a server line for the terminal, coloured by its kind.
fn paint(line: &str, color: bool) -> String {
    let line: String = line.chars().map(printable).collect();
    if !color {
        return format!("{line}\n");
    }
    let (stamp, body) = split_stamp(&line);
    let body = match ServerLine::parse(body) {
        Ok(ServerLine::Chat { from, text }) => {
            format!("\x1b[1;{}m{from}:\x1b[0m {text}", nick_color(&from))
        }
        Ok(parsed) => {
            let color = match parsed.kind() {
                LineKind::Notice => "33",
                LineKind::Error => "1;31",
                LineKind::Answer => "36",
                LineKind::Private | LineKind::Chat => "35",
            };
            format!("\x1b[{color}m{body}\x1b[0m")
        }
        Err(_) => body.to_string(),
    };
    match stamp {
        "" => format!("{body}\n"),
        _ => format!("\x1b[2m{stamp}\x1b[0m {body}\n"),
    }
}

/// Replaces control characters, so that a hostile line cannot drive the terminal.
fn printable(c: char) -> char {
    if c.is_control() && c != '\t' {
        '\u{fffd}'
    } else {
        c
    }
}

/// A colour per nick that stays the same across runs (FNV-1a, not the std hasher),
/// avoiding the colours of notices, errors, answers and private messages.
fn nick_color(nick: &str) -> u8 {
    const PALETTE: [u8; 8] = [32, 34, 91, 92, 93, 94, 95, 96];
    let hash = nick.to_lowercase().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    PALETTE[hash as usize % PALETTE.len()]
}

/// How a prompt reads its answer.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// An ordinary line, kept in the editor's history.
    Remember,
    /// A name: not worth a history entry.
    Forget,
    /// A code or password: not echoed, never in the history.
    Secret,
}

/// What the user did at the prompt.
enum Typed {
    Line(String),
    Eof,
    Interrupt,
}

/// The user's side, on a thread of its own because reading a terminal or stdin
/// blocks. It reads one line per request, so that nothing is read that is not
/// wanted (after `/quit`, say) and the prompt can change between lines.
struct Input {
    /// A prompt, and how to read its answer.
    requests: std_mpsc::Sender<(String, Mode)>,
    typed: mpsc::UnboundedReceiver<Typed>,
    /// A request is outstanding; on a terminal, rustyline has it in raw mode.
    busy: bool,
    interactive: bool,
}

impl Input {
    fn spawn(
        interactive: bool,
        mut read: impl FnMut(&str, Mode) -> Typed + Send + 'static,
    ) -> Input {
        let (requests, request_rx) = std_mpsc::channel::<(String, Mode)>();
        let (typed_tx, typed) = mpsc::unbounded_channel();
        thread::spawn(move || {
            for (prompt, mode) in request_rx {
                if typed_tx.send(read(&prompt, mode)).is_err() {
                    break;
                }
            }
        });
        Input {
            requests,
            typed,
            busy: false,
            interactive,
        }
    }

    fn request(&mut self, prompt: String, mode: Mode) {
        if !self.busy {
            self.busy = self.requests.send((prompt, mode)).is_ok();
        }
    }

    fn ask(&mut self, ask: Ask) -> Ask {
        let (prompt, mode) = match ask {
            Ask::Name => ("username> ", Mode::Forget),
            Ask::Code(CodeKind::Password) => ("password> ", Mode::Secret),
            Ask::Code(_) => ("code> ", Mode::Secret),
        };
        self.request(prompt.to_string(), mode);
        ask
    }

    /// The answer to the last request. Cancel-safe, for `select!`.
    async fn recv(&mut self) -> Typed {
        let typed = self.typed.recv().await.unwrap_or(Typed::Eof);
        self.busy = false;
        typed
    }
}

fn pipe_input() -> Input {
    let mut buf = Vec::new();
    Input::spawn(false, move |_, _| {
        buf.clear();
        match io::stdin().lock().read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => Typed::Eof,
            Ok(_) => Typed::Line(decode_line(&buf)),
        }
    })
}

fn tty_input(color: bool) -> rustyline::Result<(Input, Screen, Terminal)> {
    let saved = stty("-g");
    // Without bracketed paste a pasted line is sent at its line break, as if typed;
    // with it, the lines of a paste would wait in the editor for one more Enter.
    let config = Config::builder().bracketed_paste(false).build();
    let mut editor = DefaultEditor::with_config(config)?;
    let printer = editor.create_external_printer()?;
    let input = Input::spawn(true, move |prompt, mode| {
        if mode == Mode::Secret {
            return match rpassword::prompt_password(prompt) {
                Ok(secret) => Typed::Line(secret),
                Err(_) => Typed::Eof,
            };
        }
        match editor.readline(prompt) {
            Ok(line) => {
                if mode == Mode::Remember && !holds_password(&line) {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Typed::Line(line)
            }
            Err(ReadlineError::Interrupted) => Typed::Interrupt,
            Err(_) => Typed::Eof,
        }
    });
    let (lines, printed) = spawn_printer(printer);
    Ok((
        input,
        Screen::Tty { lines, color },
        Terminal { saved, printed },
    ))
}

/// `/op PASSWORD` typed in full: kept out of the history.
fn holds_password(line: &str) -> bool {
    line.trim_start()
        .get(..4)
        .is_some_and(|start| start.eq_ignore_ascii_case("/op "))
}

/// Prints through rustyline on a thread of its own: a print can block until the
/// editor takes the line, and the network side must never wait for the keyboard.
fn spawn_printer(
    mut printer: impl ExternalPrinter + Send + 'static,
) -> (std_mpsc::Sender<String>, std_mpsc::Receiver<()>) {
    let (lines, line_rx) = std_mpsc::channel::<String>();
    let (done, printed) = std_mpsc::channel::<()>();
    thread::spawn(move || {
        let _done = done;
        for line in line_rx {
            if printer.print(line).is_err() {
                break;
            }
        }
    });
    (lines, printed)
}

/// What is needed to leave the terminal as we found it.
struct Terminal {
    /// `stty -g` from before rustyline touched the terminal.
    saved: Option<String>,
    /// Disconnects once the printer thread has handed over every line.
    printed: std_mpsc::Receiver<()>,
}

impl Terminal {
    fn finish(self, reading: bool) {
        let _ = self.printed.recv_timeout(Duration::from_millis(500));
        if !reading {
            return;
        }
        // rustyline is still in raw mode, in a read that cannot be cancelled: let it
        // draw the last lines, then restore the terminal so the shell gets it back.
        thread::sleep(Duration::from_millis(100));
        if let Some(saved) = &self.saved {
            stty(saved);
        }
        println!();
    }
}

/// Runs `stty` on our terminal and returns what it printed.
fn stty(arg: &str) -> Option<String> {
    let out = Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
