//! `chat-client`: the command-line client for a classchat server.
//!
//! ```text
//! chat-client [--host HOST] [--port PORT] [--name NAME] [--code CODE] [--no-color]
//! ```
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
//! server is reported on stderr (exit 1). The client speaks only the line protocol
//! (SPEC.md section 2) and does not use the `classchat` library, like `nc` would not.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use clap::Parser;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::signal::ctrl_c;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long to wait for the server to close the connection after `/quit`.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// An unreachable host would otherwise hang for the OS default, minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Join code, for a class that needs one; asked for when needed and omitted.
    #[arg(long)]
    code: Option<String>,
    /// Never colour the output (colours are also off when NO_COLOR is set).
    #[arg(long)]
    no_color: bool,
}

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
        Exit::Lost(detail) => eprintln!("connection to {addr} lost{detail}"),
        Exit::Failed(why) => eprintln!("chat-client: {why}"),
    }
    ExitCode::FAILURE
}

/// How a session ended: exit 0, or exit 1 with a message.
enum Exit {
    Clean,
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

async fn session(stream: TcpStream, input: &mut Input, mut screen: Screen, args: &Args) -> Exit {
    let (reader, writer) = stream.into_split();
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
    writer: OwnedWriteHalf,
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
    Code,
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
                if let Some(nick) = login.on_line(split_stamp(&line).1, conn, input).await? {
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
        body: &str,
        conn: &mut Conn,
        input: &mut Input,
    ) -> Result<Option<String>, Exit> {
        if let Some(rest) = body.strip_prefix("* Welcome, ") {
            let welcomed = rest.split(['!', ' ', ',']).next().unwrap_or("");
            if self
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(welcomed))
            {
                return Ok(Some(welcomed.to_owned()));
            }
        }
        if body.starts_with('!') {
            self.sent = None;
        }
        let Some(ask) = prompt_kind(body) else {
            return Ok(None);
        };
        if self.sent == Some(ask) || self.asking.is_some() {
            return Ok(None);
        }
        match self.code.take_if(|_| ask == Ask::Code) {
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

/// Recognises the server's prompts by a key word, so that their wording may change;
/// a prompt ends with a colon, so a message of the day that mentions "code" is not one.
fn prompt_kind(body: &str) -> Option<Ask> {
    let text = body.strip_prefix("* ")?.strip_suffix(':')?;
    let has = |word: &str| {
        text.split(|c: char| !c.is_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    if has("username") {
        Some(Ask::Name)
    } else if has("code") {
        Some(Ask::Code)
    } else {
        None
    }
}

/// Sends the user's lines while a task prints the server's, until the user has left
/// or the server has gone.
async fn chat(conn: Conn, input: &mut Input, screen: Screen, nick: String) -> Exit {
    let Conn { reader, mut writer } = conn;
    let nick = Arc::new(Mutex::new(nick));
    let mut receiving = tokio::spawn(receive(reader, screen, Arc::clone(&nick)));
    loop {
        let prompt = format!("{}> ", nick.lock().unwrap_or_else(PoisonError::into_inner));
        input.request(prompt, true);
        let typed = tokio::select! {
            typed = input.recv() => typed,
            ended = &mut receiving => {
                return match ended {
                    Ok(Ok(())) => Exit::Lost(String::new()),
                    Ok(Err(err)) => Exit::lost(err),
                    Err(err) => Exit::Lost(format!(": {err}")),
                };
            }
            _ = ctrl_c() => Typed::Interrupt,
        };
        let line = match typed {
            Typed::Line(line) if line.trim().is_empty() => continue,
            Typed::Line(line) => line,
            Typed::Eof | Typed::Interrupt => "/quit".to_string(),
        };
        if let Err(err) = writer.write_all(format!("{line}\n").as_bytes()).await {
            return Exit::lost(err);
        }
        let command = line.split_whitespace().next().unwrap_or_default();
        if command.eq_ignore_ascii_case("/quit") {
            break;
        }
    }
    // Keep printing until the server's goodbye closes the connection.
    if timeout(QUIT_WAIT, &mut receiving).await.is_err() {
        receiving.abort();
        let _ = receiving.await;
    }
    Exit::Clean
}

async fn receive(
    mut reader: LineReader,
    mut screen: Screen,
    nick: Arc<Mutex<String>>,
) -> io::Result<()> {
    while let Some(line) = reader.next().await? {
        // Keep the prompt showing our name after a /nick.
        let renamed = split_stamp(&line)
            .1
            .strip_prefix("* ")
            .and_then(|t| t.split_once(" is now known as "));
        if let Some((old, new)) = renamed {
            let mut nick = nick.lock().unwrap_or_else(PoisonError::into_inner);
            if *nick == old {
                *nick = new.trim().to_string();
            }
        }
        screen.show(&line);
    }
    Ok(())
}

/// Server lines, decoded leniently: one bad byte must not cost the user the chat.
/// The longest server line read in one piece.
const MAX_LINE: usize = 64 * 1024;

struct LineReader {
    inner: BufReader<OwnedReadHalf>,
    /// Kept across calls so that a read cancelled by `select!` loses nothing.
    buf: Vec<u8>,
}

impl LineReader {
    fn new(reader: OwnedReadHalf) -> Self {
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

/// Splits `[TIMESTAMP] BODY`; a line without a stamp is all body.
fn split_stamp(line: &str) -> (&str, &str) {
    match line.find("] ") {
        Some(end) if line.starts_with('[') => (&line[..=end], &line[end + 2..]),
        _ => ("", line),
    }
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

/// Formats a server line for the terminal.
fn paint(line: &str, color: bool) -> String {
    let line: String = line.chars().map(printable).collect();
    let (stamp, body) = split_stamp(&line);
    if !color {
        return format!("{line}\n");
    }
    let body = match body.chars().next() {
        Some('*') => format!("\x1b[33m{body}\x1b[0m"),
        Some('!') => format!("\x1b[1;31m{body}\x1b[0m"),
        Some('=') => format!("\x1b[36m{body}\x1b[0m"),
        _ if body.starts_with("[PM ") => format!("\x1b[35m{body}\x1b[0m"),
        _ => match body.split_once(": ") {
            Some((nick, text)) => format!("\x1b[1;{}m{nick}:\x1b[0m {text}", nick_color(nick)),
            None => body.to_string(),
        },
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
    /// A prompt, and whether to keep the answer in the history.
    requests: std_mpsc::Sender<(String, bool)>,
    typed: mpsc::UnboundedReceiver<Typed>,
    /// A request is outstanding; on a terminal, rustyline has it in raw mode.
    busy: bool,
    interactive: bool,
}

impl Input {
    fn spawn(
        interactive: bool,
        mut read: impl FnMut(&str, bool) -> Typed + Send + 'static,
    ) -> Input {
        let (requests, request_rx) = std_mpsc::channel::<(String, bool)>();
        let (typed_tx, typed) = mpsc::unbounded_channel();
        thread::spawn(move || {
            for (prompt, remember) in request_rx {
                if typed_tx.send(read(&prompt, remember)).is_err() {
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

    fn request(&mut self, prompt: String, remember: bool) {
        if !self.busy {
            self.busy = self.requests.send((prompt, remember)).is_ok();
        }
    }

    fn ask(&mut self, ask: Ask) -> Ask {
        let prompt = match ask {
            Ask::Name => "username> ",
            Ask::Code => "code> ",
        };
        self.request(prompt.to_string(), false);
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
    let mut editor = DefaultEditor::new()?;
    let printer = editor.create_external_printer()?;
    let input = Input::spawn(true, move |prompt, remember| {
        match editor.readline(prompt) {
            Ok(line) => {
                if remember {
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
