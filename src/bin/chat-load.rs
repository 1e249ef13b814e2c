//! `chat-load`: a load generator for chat servers on this machine, so that every
//! figure in `docs/PERFORMANCE.md` can be measured again from a clone.
//!
//! It speaks classchat's `line` protocol (and any server that takes a username as
//! the first line), the same protocol over the web page's WebSocket (one text
//! frame per line), and plain IRC, so the same numbers can be taken for each of
//! classchat's front ends and for the servers classchat is compared with. Every
//! message text carries a marker `~cl:SENDER:SEQ:SEND_NS~`, where SEND_NS comes
//! from one monotonic clock shared by all clients of the process: a receiver
//! subtracts it from its own reading of that clock and gets the one-way latency
//! without any clock synchronisation.
//!
//! Only messages sent inside the measured window (after the warm-up) count. Each is
//! expected once at every other connected client; whatever has not arrived when the
//! drain ends is loss. The output is one JSON line on stdout (the field names of the
//! shared `chatload`, so its driver and summary script read it too) and a summary
//! on stderr.
//!
//! It only connects to loopback addresses: a load test against someone else's
//! machine is an attack. Every phase has a time limit, and a watchdog ends the
//! process if the phases together ever overrun.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Load generator for chat servers on this machine (loopback addresses only).
#[derive(Parser, Clone)]
#[command(version)]
struct Args {
    /// Wire protocol of the server.
    #[arg(long, value_enum, default_value = "line")]
    proto: Proto,
    /// What to measure.
    #[arg(long, value_enum, default_value = "chat")]
    scenario: Scenario,
    /// Server address; must be a loopback address. Several, comma-separated
    /// (cluster nodes): clients are spread over them in turn. With `--proto ws`,
    /// the web listener's address.
    #[arg(long, default_value = "127.0.0.1:5555")]
    addr: String,
    /// Number of clients, all in one room.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of the clients send (the first S); default: all of them.
    #[arg(long)]
    senders: Option<usize>,
    /// Total message rate over all senders, in messages a second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Rate of each sender; overrides --rate.
    #[arg(long)]
    per_sender_rate: Option<f64>,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of sending before the measurement starts (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// At most this many seconds to wait for deliveries after sending stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds to wait after everyone is connected before sending.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Line protocol (and ws): after the username, wait for a line containing
    /// this text (classchat: `Welcome`).
    #[arg(long)]
    ready: Option<String>,
    /// IRC channel to join.
    #[arg(long, default_value = "#bench")]
    channel: String,
    /// IRC: register only, without joining the channel.
    #[arg(long)]
    no_join: bool,
    /// Bytes of padding added to each message text.
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// Extra clients that log in and then never read (not counted in the results):
    /// they show whether one stalled reader slows the others down.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Connections in their handshake at the same time.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Connect-only: seconds to hold the connections.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Connect-only: after --hold, keep holding until the server is idle (under 5 %
    /// CPU over 2 s), up to this many seconds in all.
    #[arg(long, default_value_t = 0.0)]
    hold_max: f64,
    /// Seconds the whole connect phase (every connection and handshake) may take.
    #[arg(long, default_value_t = 60.0)]
    handshake_timeout: f64,
    /// The server's process id, to report its memory and its CPU over the measured
    /// window (chat) or the last 2 s of the hold (connect-only), from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Free text copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
    /// Usernames are this prefix and the client's number; give two generators
    /// sharing one server different prefixes, or their names collide.
    #[arg(long, default_value = "u")]
    nick_prefix: String,
    /// Also append the JSON line to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Line protocol and IRC over TLS (the server's TLS port), accepting any
    /// certificate: what is measured is the cost of TLS, and the server is one's own.
    #[arg(long)]
    tls: bool,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Proto {
    /// The first line is the username, then one line per message.
    Line,
    /// NICK/USER, JOIN, PRIVMSG.
    Irc,
    /// The line protocol over a WebSocket at `ws://ADDR/ws`, one text frame per
    /// line, as classchat's chat page speaks it.
    Ws,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Line => "line",
            Proto::Irc => "irc",
            Proto::Ws => "ws",
        }
    }

    /// What ends a line on the wire: nothing on a WebSocket, where a frame is a line.
    fn line_end(self) -> &'static str {
        match self {
            Proto::Line => "\n",
            Proto::Irc => "\r\n",
            Proto::Ws => "",
        }
    }
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Scenario {
    /// Senders send at a fixed rate; every client counts what it receives.
    Chat,
    /// Connect and hold N clients; report the server's memory per connection.
    ConnectOnly,
}

/// State every client task reads or adds to.
struct Shared {
    /// The one clock every timestamp is taken from.
    epoch: Instant,
    /// The measured window, in nanoseconds since `epoch`; set once sending is planned.
    window: OnceLock<(u64, u64)>,
    sent_in_window: AtomicU64,
    disconnects: AtomicU64,
    /// Set before the connections are dropped, so that closing them is not
    /// counted as the server disconnecting anyone.
    stopping: AtomicBool,
    connect_errors: Mutex<BTreeMap<String, u64>>,
    handshake_ms: Mutex<Vec<f64>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// When sending starts and how long it goes on, handed to the writers once every
/// client is connected.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    end: Instant,
}

const MARK: &[u8] = b"~cl:";

fn main() -> ExitCode {
    let args = Args::parse();
    match check(&args) {
        Ok(addrs) => {
            raise_fd_limit(args.clients);
            spawn_watchdog(&args);
            let runtime = tokio::runtime::Runtime::new().expect("cannot start the runtime");
            let result = runtime.block_on(run(args.clone(), addrs));
            // Connections still open are not worth waiting for.
            runtime.shutdown_background();
            emit(&args, result)
        }
        Err(msg) => {
            eprintln!("chat-load: {msg}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &Args) -> Result<Vec<SocketAddr>, String> {
    if args.tls && args.proto == Proto::Ws {
        return Err("--tls is for --proto line and irc".into());
    }
    let mut addrs = Vec::new();
    for name in args.addr.split(',') {
        let addr = name
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {name}: {e}"))?
            .next()
            .ok_or_else(|| format!("{name} resolves to nothing"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address; chat-load only loads servers on this machine"
            ));
        }
        addrs.push(addr);
    }
    if args.clients == 0 || args.connect_concurrency == 0 {
        return Err("--clients and --connect-concurrency must be at least 1".into());
    }
    if args.senders.is_some_and(|s| s > args.clients) {
        return Err("--senders cannot be more than --clients".into());
    }
    let rate = args.per_sender_rate.unwrap_or(args.rate);
    let times = [
        args.duration,
        args.warmup,
        args.drain,
        args.settle,
        args.hold,
    ];
    if !(rate > 0.0 && rate.is_finite()) || times.iter().any(|t| !(*t >= 0.0 && t.is_finite())) {
        return Err("rates must be positive and times non-negative".into());
    }
    Ok(addrs)
}

/// Ten thousand sockets need more descriptors than the usual soft limit of 1024.
fn raise_fd_limit(clients: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            eprintln!("chat-load: cannot raise the open-file limit from {soft}");
        }
        let limit = soft.max(hard);
        if (clients as u64) + 64 > limit {
            eprintln!("chat-load: {clients} clients need more than the open-file limit {limit}");
        }
    }
}

/// Every phase has its own limit; this catches a bug that would make them overrun,
/// so a benchmark script never hangs on the load generator.
fn spawn_watchdog(args: &Args) {
    let phases = match args.scenario {
        Scenario::Chat => args.settle + args.warmup + args.duration + args.drain,
        Scenario::ConnectOnly => args.hold.max(args.hold_max) + 2.0,
    };
    let limit = Duration::from_secs_f64(args.handshake_timeout + phases + 30.0);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("chat-load: still running after {limit:?}; giving up");
        std::process::exit(1);
    });
}

async fn run(args: Args, addrs: Vec<SocketAddr>) -> Value {
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window: OnceLock::new(),
        sent_in_window: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        connect_errors: Mutex::new(BTreeMap::new()),
        handshake_ms: Mutex::new(Vec::new()),
    });
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);
    let server = args.server_pid.map(ProcStat::new);
    let rss_before = server.as_ref().and_then(ProcStat::rss_kb);

    let senders = args.senders.unwrap_or(args.clients);
    let per_sender = args
        .per_sender_rate
        .unwrap_or(args.rate / senders.max(1) as f64);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let connect_deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(args.handshake_timeout);
    let connect_started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for id in 0..args.clients {
        let client = Client {
            id,
            addr: addrs[id % addrs.len()],
            args: args.clone(),
            rate: (id < senders && args.scenario == Scenario::Chat).then_some(per_sender),
            senders,
            shared: shared.clone(),
            plan: plan_rx.clone(),
        };
        let gate = gate.clone();
        clients.push(tokio::spawn(async move {
            let permit = tokio::time::timeout_at(connect_deadline, gate.acquire_owned()).await;
            let Ok(Ok(_permit)) = permit else {
                client.failed("timeout");
                return None;
            };
            // Handshake time is the server's: waiting for our own turn is not in it.
            let started = Instant::now();
            match tokio::time::timeout_at(connect_deadline, client.connect()).await {
                Ok(Ok(streams)) => {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    client.shared.handshake_ms.lock().unwrap().push(ms);
                    Some(client.start(streams))
                }
                Ok(Err(e)) => {
                    client.failed(&e);
                    None
                }
                Err(_) => {
                    client.failed("timeout");
                    None
                }
            }
        }));
    }
    let mut running = Vec::new();
    for task in clients {
        if let Ok(Some(handles)) = task.await {
            running.push(handles);
        }
    }
    let connect_wall = connect_started.elapsed().as_secs_f64();
    let connected = running.len();
    eprintln!(
        "chat-load: {connected}/{} connected in {connect_wall:.2} s",
        args.clients
    );
    let stalled = connect_stalled(&args, addrs[0], &shared, &plan_rx).await;
    if args.stalled > 0 {
        eprintln!(
            "chat-load: {} of {} stalled clients in",
            stalled.len(),
            args.stalled
        );
    }

    let mut out = json!({
        "addr": args.addr,
        "clients": args.clients,
        "connected": connected,
        "connect_errors": *shared.connect_errors.lock().unwrap(),
        "connect_wall_s": round(connect_wall, 3),
        "handshake_ms": summary_ms(&mut shared.handshake_ms.lock().unwrap()),
        "label": args.label,
        "proto": args.proto.name(),
        "tls": args.tls,
    });
    match args.scenario {
        Scenario::Chat => {
            measure_chat(&args, &shared, server, senders, plan_tx, &running, &mut out).await
        }
        Scenario::ConnectOnly => measure_hold(&args, server, rss_before, connected, &mut out).await,
    }
    if let Some(before) = rss_before {
        out["server_rss_kb"]["before"] = before.into();
    }
    shared.stopping.store(true, Ordering::Relaxed);
    drop(stalled);
    let mut latencies = Vec::new();
    for (reader, writer, lat) in running {
        reader.abort();
        writer.abort();
        latencies.append(&mut lat.latencies_us.lock().unwrap());
    }
    out["disconnects"] = shared.disconnects.load(Ordering::Relaxed).into();
    if args.scenario == Scenario::Chat {
        out["latency_ms"] = summary_us(&mut latencies);
    }
    out
}

/// Logs in `--stalled` clients after the others (numbered after them) and keeps
/// their sockets without ever reading them.
async fn connect_stalled(
    args: &Args,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    plan: &watch::Receiver<Option<Plan>>,
) -> Vec<Streams> {
    let mut held = Vec::new();
    for id in args.clients..args.clients + args.stalled {
        let client = Client {
            id,
            addr,
            args: args.clone(),
            rate: None,
            senders: 0,
            shared: shared.clone(),
            plan: plan.clone(),
        };
        let limit = Duration::from_secs_f64(args.handshake_timeout);
        if let Ok(Ok(streams)) = tokio::time::timeout(limit, client.connect()).await {
            held.push(streams);
        }
    }
    held
}

async fn measure_chat(
    args: &Args,
    shared: &Shared,
    mut server: Option<ProcStat>,
    senders: usize,
    plan_tx: watch::Sender<Option<Plan>>,
    running: &[Running],
    out: &mut Value,
) {
    let connected = running.len();
    let start = Instant::now() + Duration::from_secs_f64(args.settle);
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let end = window_start + Duration::from_secs_f64(args.duration);
    let ns = |t: Instant| t.duration_since(shared.epoch).as_nanos() as u64;
    let _ = shared.window.set((ns(window_start), ns(end)));
    let _ = plan_tx.send(Some(Plan { start, end }));

    tokio::time::sleep_until(window_start.into()).await;
    let own = ProcStat::new(std::process::id());
    let mut own = Some(own);
    mark_cpu(&mut server);
    mark_cpu(&mut own);
    tokio::time::sleep_until(end.into()).await;
    let server_cpu = server.as_mut().and_then(ProcStat::cpu_pct_since_mark);
    let own_cpu = own.as_mut().and_then(ProcStat::cpu_pct_since_mark);

    // Everyone connected gets every in-window message except their own.
    let sent = shared.sent_in_window.load(Ordering::Relaxed);
    let expected = sent * connected.saturating_sub(1) as u64;
    let drain_end = end + Duration::from_secs_f64(args.drain);
    loop {
        let (received, quiet_ns) = received(running, shared.now_ns());
        if received >= expected || quiet_ns >= 1_000_000_000 || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (received, _) = received(running, shared.now_ns());
    let loss = if expected == 0 {
        0.0
    } else {
        expected.saturating_sub(received) as f64 * 100.0 / expected as f64
    };
    let obj = out.as_object_mut().unwrap();
    obj.insert("scenario".into(), "chat".into());
    obj.insert("senders".into(), senders.into());
    let target = args
        .per_sender_rate
        .map_or(args.rate, |r| r * senders as f64);
    obj.insert("target_rate".into(), target.into());
    obj.insert("duration_s".into(), args.duration.into());
    obj.insert("sent".into(), sent.into());
    obj.insert(
        "sent_rate".into(),
        round(sent as f64 / args.duration, 1).into(),
    );
    obj.insert("expected_deliveries".into(), expected.into());
    obj.insert("received_deliveries".into(), received.into());
    obj.insert("loss_pct".into(), round(loss, 3).into());
    obj.insert(
        "deliveries_per_s".into(),
        round(received.min(expected) as f64 / args.duration, 1).into(),
    );
    obj.insert(
        "server_cpu_pct".into(),
        server_cpu.map(|c| round(c, 1)).into(),
    );
    obj.insert(
        "loadgen_cpu_pct".into(),
        own_cpu.map(|c| round(c, 1)).into(),
    );
    if let Some(s) = &server {
        obj.insert(
            "server_rss_kb".into(),
            json!({ "end": s.rss_kb(), "hwm": s.hwm_kb() }),
        );
    }
}

async fn measure_hold(
    args: &Args,
    mut server: Option<ProcStat>,
    before: Option<u64>,
    connected: usize,
    out: &mut Value,
) {
    let after_connect = server.as_ref().and_then(ProcStat::rss_kb);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    // A server still broadcasting join notices is not idle yet: its memory then
    // includes queued lines, not only connection state.
    let mut cpu = None;
    let cap = Duration::from_secs_f64(args.hold_max);
    loop {
        mark_cpu(&mut server);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cpu = server
            .as_mut()
            .and_then(ProcStat::cpu_pct_since_mark)
            .or(cpu);
        if cpu.is_none_or(|c| c < 5.0) || started.elapsed() >= cap {
            break;
        }
    }
    let after_hold = server.as_ref().and_then(ProcStat::rss_kb);
    let obj = out.as_object_mut().unwrap();
    obj.insert("scenario".into(), "connectonly".into());
    obj.insert(
        "hold_s".into(),
        round(started.elapsed().as_secs_f64(), 1).into(),
    );
    obj.insert("server_cpu_pct".into(), cpu.map(|c| round(c, 1)).into());
    obj.insert("server_idle_at_end".into(), cpu.map(|c| c < 5.0).into());
    if let (Some(b), Some(a)) = (before, after_hold) {
        let per_conn = (a.saturating_sub(b) * 1024) as f64 / connected.max(1) as f64;
        obj.insert("rss_per_conn_bytes".into(), per_conn.round().into());
    }
    if let Some(s) = &server {
        obj.insert(
            "server_rss_kb".into(),
            json!({ "connected": after_connect, "after_hold": after_hold, "hwm": s.hwm_kb() }),
        );
    }
}

fn mark_cpu(stat: &mut Option<ProcStat>) {
    if let Some(s) = stat {
        s.mark();
    }
}

/// One simulated user.
struct Client {
    id: usize,
    addr: SocketAddr,
    args: Args,
    /// Messages a second, for the clients that send.
    rate: Option<f64>,
    senders: usize,
    shared: Arc<Shared>,
    plan: watch::Receiver<Option<Plan>>,
}

type Streams = (Reader, Writer);

type Ws = WebSocketStream<TcpStream>;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// One connector for every `--tls` client, so their handshakes share the session cache.
fn tls_connector() -> &'static tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let config = classchat::tls::client::AcceptAnything::client_config();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    })
}

/// The receiving half of a connection, one line at a time whatever the framing.
enum Reader {
    /// Lines end with `\n` (the line protocol and IRC).
    Tcp(BufReader<OwnedReadHalf>),
    /// The same over TLS.
    Tls(BufReader<tokio::io::ReadHalf<Tls>>),
    /// Each text frame is one line, without a line ending.
    Ws(SplitStream<Ws>),
}

/// The sending half; a line handed to it already ends as [`Proto::line_end`] says.
enum Writer {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Tls>),
    Ws(SplitSink<Ws, Message>),
}

impl Reader {
    /// Replaces `buf` with the next line; `false` once the server has closed.
    async fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        match self {
            Reader::Tcp(rd) => Ok(rd.read_until(b'\n', buf).await? > 0),
            Reader::Tls(rd) => Ok(rd.read_until(b'\n', buf).await? > 0),
            Reader::Ws(rd) => loop {
                match rd.next().await.transpose().map_err(io::Error::other)? {
                    None | Some(Message::Close(_)) => return Ok(false),
                    Some(Message::Text(text)) => buf.extend_from_slice(text.as_bytes()),
                    Some(Message::Binary(bytes)) => buf.extend_from_slice(&bytes),
                    // tungstenite answers pings itself; neither carries a line.
                    Some(_) => continue,
                }
                return Ok(true);
            },
        }
    }
}

impl Writer {
    /// Sends one line and hands it to the kernel at once, as a chat client would:
    /// a message held back in a buffer would show as server latency.
    async fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(wr) => wr.write_all(line).await,
            // A TLS record is written when flushed: flush each line, as a client would.
            Writer::Tls(wr) => {
                wr.write_all(line).await?;
                wr.flush().await
            }
            Writer::Ws(wr) => {
                let text = std::str::from_utf8(line).map_err(io::Error::other)?;
                wr.send(Message::text(text)).await.map_err(io::Error::other)
            }
        }
    }
}

/// The handshake request for `ws://ADDR/ws`, with the `Origin` a browser showing
/// classchat's own page would send: the server refuses any other.
fn ws_request(addr: SocketAddr) -> Result<Request, String> {
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .map_err(|e| format!("bad WebSocket address: {e}"))?;
    let origin = format!("http://{addr}")
        .parse()
        .map_err(|_| "bad Origin header".to_owned())?;
    request.headers_mut().insert("Origin", origin);
    Ok(request)
}

/// A connected client's reader and writer tasks, and what its reader received.
type Running = (JoinHandle<()>, JoinHandle<()>, Arc<Deliveries>);

/// What one client received of the measured messages. Kept per client rather
/// than in `Shared`: a hundred readers adding to one counter would fight over
/// its cache line a hundred thousand times a second.
#[derive(Default)]
struct Deliveries {
    count: AtomicU64,
    last_ns: AtomicU64,
    /// Only the client's reader locks it until the end.
    latencies_us: Mutex<Vec<u32>>,
}

/// Received so far by everyone, and how long ago the last one arrived.
fn received(all: &[Running], now_ns: u64) -> (u64, u64) {
    all.iter().fold((0, u64::MAX), |(sum, quiet), (_, _, d)| {
        let since_last = now_ns.saturating_sub(d.last_ns.load(Ordering::Relaxed));
        (sum + d.count.load(Ordering::Relaxed), quiet.min(since_last))
    })
}

impl Client {
    fn failed(&self, why: &str) {
        *self
            .shared
            .connect_errors
            .lock()
            .unwrap()
            .entry(why.to_owned())
            .or_default() += 1;
    }

    /// Connects and completes the handshake; returns once the client is in the room.
    async fn connect(&self) -> Result<Streams, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        // A real client would not hold its small writes back; neither do we.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut rd, mut wr) = match self.args.proto {
            Proto::Line | Proto::Irc if self.args.tls => {
                let name = rustls::pki_types::ServerName::from(self.addr.ip());
                let stream = tls_connector()
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS: {}", e.kind()))?;
                let (rd, wr) = tokio::io::split(stream);
                (Reader::Tls(BufReader::new(rd)), Writer::Tls(wr))
            }
            Proto::Line | Proto::Irc => {
                let (rd, wr) = stream.into_split();
                (Reader::Tcp(BufReader::new(rd)), Writer::Tcp(wr))
            }
            Proto::Ws => {
                let request = ws_request(self.addr)?;
                // tungstenite zero-fills its whole read buffer before every
                // read; at its default of 128 KiB that would make this client
                // cost far more than a line client on the cores it shares with
                // the server.
                let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                        .await
                        .map_err(|e| match e {
                            WsError::Http(response) => {
                                format!("refused: HTTP {}", response.status())
                            }
                            e => format!("handshake: {e}"),
                        })?;
                let (wr, rd) = ws.split();
                (Reader::Ws(rd), Writer::Ws(wr))
            }
        };
        let nick = format!("{}{}", self.args.nick_prefix, self.id);
        let io = |e: io::Error| format!("handshake: {}", e.kind());
        match self.args.proto {
            Proto::Line | Proto::Ws => {
                let hello = format!("{nick}{}", self.args.proto.line_end());
                wr.send(hello.as_bytes()).await.map_err(io)?;
                if let Some(ready) = &self.args.ready {
                    wait_for(&mut rd, &mut wr, |l| {
                        if l.starts_with("! ") || l.contains("] ! ") {
                            Err(format!("refused: {}", l.trim_end()))
                        } else {
                            Ok(l.contains(ready.as_str()))
                        }
                    })
                    .await?;
                }
            }
            Proto::Irc => {
                let hello = format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n");
                wr.send(hello.as_bytes()).await.map_err(io)?;
                wait_for(&mut rd, &mut wr, |l| irc_numeric(l, "001")).await?;
                if !self.args.no_join {
                    let join = format!("JOIN {}\r\n", self.args.channel);
                    wr.send(join.as_bytes()).await.map_err(io)?;
                    wait_for(&mut rd, &mut wr, |l| irc_numeric(l, "366")).await?;
                }
            }
        }
        Ok((rd, wr))
    }

    /// Starts reading at once (a line server sends every later join to everyone,
    /// and a client that stopped reading would be dropped as too slow); the writer
    /// waits for the plan. Both run until aborted; the latencies stay behind in
    /// the returned vector.
    fn start(self, (rd, wr): Streams) -> Running {
        let (pong_tx, pong_rx) = mpsc::channel(16);
        let deliveries = Arc::new(Deliveries::default());
        let reader = tokio::spawn(read_loop(
            rd,
            self.id,
            self.shared.clone(),
            pong_tx,
            deliveries.clone(),
        ));
        let writer = tokio::spawn(self.write_loop(wr, pong_rx));
        (reader, writer, deliveries)
    }

    async fn write_loop(mut self, mut wr: Writer, mut pongs: mpsc::Receiver<Vec<u8>>) {
        let plan = loop {
            if let Some(plan) = *self.plan.borrow_and_update() {
                break plan;
            }
            if self.plan.changed().await.is_err() {
                return;
            }
        };
        let mut ticks = self.rate.map(|rate| {
            // Senders are spread evenly over one period, so the total rate is smooth.
            let period = Duration::from_secs_f64(1.0 / rate);
            let offset = period.mul_f64(self.id as f64 / self.senders.max(1) as f64);
            let mut t = tokio::time::interval_at((plan.start + offset).into(), period);
            // A sender held up (by the scheduler, or by a server slow to take its
            // bytes) catches up afterwards: the offered load stays the rate asked
            // for, and the hold-up shows in the latencies instead of vanishing
            // with the messages skipped.
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            t
        });
        let prefix = match self.args.proto {
            Proto::Line | Proto::Ws => String::new(),
            Proto::Irc => format!("PRIVMSG {} :", self.args.channel),
        };
        let end = self.args.proto.line_end();
        let window = *self.shared.window.get().unwrap_or(&(0, 0));
        let pad = "x".repeat(self.args.pad);
        let mut seq = 0u64;
        let mut line = Vec::with_capacity(128 + pad.len());
        loop {
            let sending = ticks.is_some() && Instant::now() < plan.end;
            tokio::select! {
                pong = pongs.recv() => match pong {
                    Some(pong) => if wr.send(&pong).await.is_err() { return },
                    None => return,
                },
                _ = async { ticks.as_mut().unwrap().tick().await }, if sending => {
                    if Instant::now() >= plan.end {
                        continue;
                    }
                    let sent_ns = self.shared.now_ns();
                    line.clear();
                    let _ = write!(line, "{prefix}~cl:{}:{seq}:{sent_ns}~{pad}{end}", self.id);
                    seq += 1;
                    if (window.0..window.1).contains(&sent_ns) {
                        self.shared.sent_in_window.fetch_add(1, Ordering::Relaxed);
                    }
                    if wr.send(&line).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads lines until `done` says the awaited one came, answering IRC pings meanwhile.
async fn wait_for(
    rd: &mut Reader,
    wr: &mut Writer,
    mut done: impl FnMut(&str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut buf = Vec::new();
    loop {
        let open = rd
            .next_line(&mut buf)
            .await
            .map_err(|e| format!("handshake: {}", e.kind()))?;
        if !open {
            return Err("handshake: closed by the server".into());
        }
        let line = String::from_utf8_lossy(&buf);
        if let Some(pong) = pong_for(&buf) {
            wr.send(&pong)
                .await
                .map_err(|e| format!("handshake: {}", e.kind()))?;
        } else if done(&line)? {
            return Ok(());
        }
    }
}

fn irc_numeric(line: &str, code: &str) -> Result<bool, String> {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let command = if first.starts_with(':') {
        words.next().unwrap_or("")
    } else {
        first
    };
    if command == "ERROR" || command == "433" || command == "432" {
        return Err(format!("refused: {}", line.trim_end()));
    }
    Ok(command == code)
}

/// `PING x` gets `PONG x`; on the line protocol no line starts that way.
fn pong_for(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(b"PING")?;
    let mut pong = b"PONG".to_vec();
    pong.extend_from_slice(rest);
    Some(pong)
}

async fn read_loop(
    mut rd: Reader,
    me: usize,
    shared: Arc<Shared>,
    pongs: mpsc::Sender<Vec<u8>>,
    got: Arc<Deliveries>,
) {
    // The task is aborted rather than told to stop, which spares every read a
    // race against a stop signal.
    let mut buf = Vec::with_capacity(256);
    loop {
        if !matches!(rd.next_line(&mut buf).await, Ok(true)) {
            if !shared.stopping.load(Ordering::Relaxed) {
                shared.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let now = shared.now_ns();
        let Some((sender, sent_ns)) = parse_mark(&buf) else {
            if let Some(pong) = pong_for(&buf) {
                let _ = pongs.send(pong).await;
            }
            continue;
        };
        let Some(&(from, to)) = shared.window.get() else {
            continue;
        };
        if sender == me || !(from..to).contains(&sent_ns) {
            continue;
        }
        got.count.fetch_add(1, Ordering::Relaxed);
        got.last_ns.store(now, Ordering::Relaxed);
        let us = now.saturating_sub(sent_ns) / 1000;
        got.latencies_us
            .lock()
            .unwrap()
            .push(us.min(u32::MAX as u64) as u32);
    }
}

/// The sender and send time of a marked line: `...~cl:SENDER:SEQ:SEND_NS~...`.
fn parse_mark(line: &[u8]) -> Option<(usize, u64)> {
    let at = line.windows(MARK.len()).position(|w| w == MARK)?;
    let rest = &line[at + MARK.len()..];
    let end = rest.iter().position(|&b| b == b'~')?;
    let mut fields = std::str::from_utf8(&rest[..end]).ok()?.split(':');
    let sender = fields.next()?.parse().ok()?;
    let _seq: u64 = fields.next()?.parse().ok()?;
    let sent_ns = fields.next()?.parse().ok()?;
    Some((sender, sent_ns))
}

/// CPU time and memory of one process, from /proc.
struct ProcStat {
    pid: u32,
    ticks_per_s: f64,
    mark: Option<(Instant, u64)>,
}

impl ProcStat {
    fn new(pid: u32) -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100);
        Self {
            pid,
            ticks_per_s: ticks as f64,
            mark: None,
        }
    }

    /// User plus system time, in clock ticks.
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name may contain spaces; the fields after it do not.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    fn mark(&mut self) {
        self.mark = self.cpu_ticks().map(|t| (Instant::now(), t));
    }

    /// Percent of one core used since `mark`.
    fn cpu_pct_since_mark(&mut self) -> Option<f64> {
        let (at, ticks) = self.mark?;
        let now = self.cpu_ticks()?;
        let secs = at.elapsed().as_secs_f64();
        Some(now.saturating_sub(ticks) as f64 / self.ticks_per_s / secs * 100.0)
    }

    fn status_kb(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    fn rss_kb(&self) -> Option<u64> {
        self.status_kb("VmRSS:")
    }

    fn hwm_kb(&self) -> Option<u64> {
        self.status_kb("VmHWM:")
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

fn summary_us(values: &mut [u32]) -> Value {
    values.sort_unstable();
    let ms = |q: f64| percentile(values, q).map(|us| round(us as f64 / 1e3, 3));
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
    json!({
        "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0),
        "mean": round(mean / 1e3, 3),
    })
}

fn summary_ms(values: &mut [f64]) -> Value {
    values.sort_unstable_by(f64::total_cmp);
    let ms = |q: f64| percentile(values, q).map(|v| round(v, 3));
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    json!({
        "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0),
        "mean": round(mean, 3),
    })
}

fn emit(args: &Args, out: Value) -> ExitCode {
    let line = out.to_string();
    println!("{line}");
    if let Some(path) = &args.json_out {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("chat-load: cannot append to {}: {e}", path.display());
        }
    }
    let get = |path: &[&str]| {
        path.iter()
            .fold(&out, |v, k| &v[*k])
            .as_f64()
            .map_or("-".to_owned(), |x| format!("{x}"))
    };
    match args.scenario {
        Scenario::Chat => eprintln!(
            "chat-load: sent {} ({} msg/s), delivered {} of {} ({}/s), loss {} %\n\
             latency ms: p50 {} p90 {} p99 {} p999 {} max {}\n\
             server CPU {} %, RSS {} kB; chat-load CPU {} %; disconnects {}",
            get(&["sent"]),
            get(&["sent_rate"]),
            get(&["received_deliveries"]),
            get(&["expected_deliveries"]),
            get(&["deliveries_per_s"]),
            get(&["loss_pct"]),
            get(&["latency_ms", "p50"]),
            get(&["latency_ms", "p90"]),
            get(&["latency_ms", "p99"]),
            get(&["latency_ms", "p999"]),
            get(&["latency_ms", "max"]),
            get(&["server_cpu_pct"]),
            get(&["server_rss_kb", "end"]),
            get(&["loadgen_cpu_pct"]),
            get(&["disconnects"]),
        ),
        Scenario::ConnectOnly => eprintln!(
            "chat-load: {} connected in {} s (handshake p50 {} / p99 {} ms)\n\
             server RSS kB: before {} -> connected {} -> after hold {}; {} bytes per connection; \
             idle at end: {}",
            get(&["connected"]),
            get(&["connect_wall_s"]),
            get(&["handshake_ms", "p50"]),
            get(&["handshake_ms", "p99"]),
            get(&["server_rss_kb", "before"]),
            get(&["server_rss_kb", "connected"]),
            get(&["server_rss_kb", "after_hold"]),
            get(&["rss_per_conn_bytes"]),
            out["server_idle_at_end"],
        ),
    }
    let complete = out["connected"].as_u64() == Some(args.clients as u64);
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_found_in_a_line_and_an_irc_message() {
        assert_eq!(
            parse_mark(b"[10:00:00] u3: ~cl:3:7:12345~\n"),
            Some((3, 12345))
        );
        let irc = b":u9!u9@127.0.0.1 PRIVMSG #bench :~cl:9:0:42~xx\r\n";
        assert_eq!(parse_mark(irc), Some((9, 42)));
        assert_eq!(parse_mark(b"[10:00:00] * u3 has joined #lobby\n"), None);
        assert_eq!(parse_mark(b"~cl:3:7:12345\n"), None);
    }

    #[test]
    fn irc_ping_answered_and_numerics_told_apart() {
        assert_eq!(pong_for(b"PING :abc\r\n").unwrap(), b"PONG :abc\r\n");
        assert_eq!(pong_for(b"[10:00:00] u1: PING"), None);
        assert_eq!(irc_numeric(":srv 001 u1 :Welcome", "001"), Ok(true));
        assert_eq!(irc_numeric(":srv 366 u1 #bench :End", "001"), Ok(false));
        assert!(irc_numeric(":srv 433 * u1 :Nickname in use", "001").is_err());
    }

    #[test]
    fn websocket_handshake_names_the_page_it_came_from() {
        for addr in ["127.0.0.1:8080", "[::1]:8080"] {
            let request = ws_request(addr.parse().unwrap()).unwrap();
            let header = |name| request.headers()[name].to_str().unwrap().to_owned();
            assert_eq!(request.uri().path(), "/ws");
            assert_eq!(header("Host"), addr);
            // The server compares Origin with Host; they must name the same place.
            assert_eq!(header("Origin"), format!("http://{}", header("Host")));
        }
        assert_eq!(Proto::Ws.line_end(), "");
    }

    #[test]
    fn percentiles_by_rank() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }

    #[test]
    fn only_loopback_addresses() {
        let mut args = Args::parse_from(["chat-load", "--addr", "10.0.0.1:5555"]);
        assert!(check(&args).unwrap_err().contains("loopback"));
        args.addr = "[::1]:5555".into();
        assert!(check(&args).is_ok());
        args.addr = "127.0.0.1:5555,127.0.0.1:5556".into();
        assert_eq!(check(&args).unwrap().len(), 2);
        args.addr = "127.0.0.1:5555,10.0.0.1:5555".into();
        assert!(check(&args).is_err());
    }
}
