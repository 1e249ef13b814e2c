//! `chat-server`: runs the classroom chat server, or reads its database for grading.
//!
//! ```text
//! chat-server [--config FILE] [--bind ADDR] [--port N] [--db FILE] [--log-dir DIR]
//! chat-server report     [--config FILE | --db FILE | --postgres URL] [filters] [--format table|csv|json]
//! chat-server transcript [--config FILE | --db FILE | --postgres URL] [filters]
//! chat-server roster     add|import|list|remove|reissue [--config FILE] [--db FILE | --postgres URL]
//! chat-server hash-password
//! chat-server tls self-signed --host NAME... [--out DIR]
//! chat-server export --student NAME [--config FILE | --db FILE | --postgres URL] [--format json|csv]
//! chat-server erase  --student NAME [--config FILE | --db FILE | --postgres URL] [--yes] [--by NAME]
//! ```
//! Exit codes: 0 after a clean shutdown with every event in the database, 3 when
//! the database still refused some at shutdown (they are saved beside it and
//! imported at the next start), 2 for a bad configuration or arguments, 1 for
//! anything else.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use classchat::config::{Config, ConfigError};
use classchat::password;
use classchat::report::{self, Filter, Format, ReportError};
use classchat::roster;
use classchat::server::Server;
use classchat::store::{self, postgres::Blocking, RecordRead, RosterEdit};
use classchat::student_data::command::{self, EraseRequest, ExportFormat, Target};

/// jemalloc returns what a burst freed to the system within a second or so
/// (`.cargo/config.toml` sets its decay); glibc's malloc keeps it. Ten thousand
/// people joining or leaving one room queue some fifty million notices; after
/// half of them left, glibc held 167.6 MB of which `malloc_trim` could return 85,
/// jemalloc 90.5 MB (docs/PERFORMANCE.md, round three).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A classroom chat server: timestamped, recorded, gradable.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Per-student participation: messages, words, rooms, time online.
    ///
    /// One row per student: everyone with an event of their own, or online, within
    /// the filters. With --room, counts are of that room's events and "online" is
    /// the time spent in that room (from joining it to leaving it), not the whole
    /// connection. With --since/--until, counts are of events in the window and
    /// "online" is cut to it; "first seen" and "last seen" are the first and last
    /// moment of an event or of being online there, so online time never exceeds
    /// last minus first seen. Overlapping connections count once. "instructor"
    /// marks a student who used /op on a connection that counts, even if the /op
    /// itself was before the window or in another room.
    Report(ReportArgs),
    /// Every stored event, one transcript line each.
    Transcript(QueryArgs),
    /// Reads a password (from the terminal without echo, or one line of standard
    /// input) and prints the hash to put in `access.instructor_password`.
    HashPassword,
    /// The class roster: names bound to people by personal codes. Works while the
    /// server runs (it reads the roster again within seconds).
    Roster(RosterArgs),
    /// A student's own copy: every event by or about them (their chat, private
    /// messages both ways, moderation of them, sessions) and their roster entry
    /// without the code hash.
    Export(ExportArgs),
    /// Replaces a student's words (chat lines, private messages they sent, leave
    /// reasons) by [erased] in the database and the transcript files, and records
    /// who did it. Works while the server runs (it forgets the lines within
    /// seconds). Asks for confirmation unless --yes.
    Erase(EraseArgs),
    /// Certificates for the TLS ports.
    Tls {
        #[command(subcommand)]
        action: TlsAction,
    },
}

#[derive(Subcommand)]
enum TlsAction {
    /// Writes a self-signed certificate and key (cert.pem, key.pem) for a lab
    /// without a CA, and prints the fingerprint students compare and the [tls]
    /// lines for the configuration.
    SelfSigned {
        /// A name or address students connect to (repeat for more).
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Folder to write the files to (created).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// The student and the record `export` and `erase` act on.
#[derive(Args)]
struct StudentArgs {
    /// Any name the student used.
    #[arg(long, value_name = "NAME")]
    student: String,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    target: StudentArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: ExportFormatArg,
}

/// `export --format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormatArg {
    /// One JSON object: the student, their roster entry, their events.
    Json,
    /// One row per event (formula-like cells quoted).
    Csv,
}

#[derive(Args)]
struct EraseArgs {
    #[command(flatten)]
    target: StudentArgs,
    /// Erase without asking (needed when standard input is not a terminal).
    #[arg(long)]
    yes: bool,
    /// Who is erasing, for the record (default: $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Folder of the transcript files (default: log.dir of the configuration).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// A cluster's NATS, whose stream's copies of the words are deleted too
    /// (default: cluster.nats_url of the configuration).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

#[derive(Args)]
struct RosterArgs {
    #[command(subcommand)]
    action: RosterAction,
    /// Configuration whose storage.database (a cluster's: storage.postgres_url) to use.
    #[arg(long, value_name = "FILE", conflicts_with = "db", global = true)]
    config: Option<PathBuf>,
    /// Database to use (default: storage.database of the configuration).
    #[arg(long, value_name = "FILE", global = true)]
    db: Option<PathBuf>,
    /// The cluster's PostgreSQL to use instead of a database file
    /// (postgres://USER@HOST:PORT/DATABASE; default: $CLASSCHAT_POSTGRES_URL
    /// unless --db or --config is given).
    #[arg(long, value_name = "URL", conflicts_with = "db", global = true)]
    postgres: Option<String>,
}

/// Where the PostgreSQL URL is read from when `--postgres` is not given, so that a
/// password in it need not be on the command line for every user of the machine
/// to see.
const POSTGRES_URL_ENV: &str = "CLASSCHAT_POSTGRES_URL";

/// `--postgres`; else a cluster configuration's `storage.postgres_url` with
/// `--config`; else `CLASSCHAT_POSTGRES_URL` when no database file was named: a
/// variable exported in a shell must not overrule an explicit `--db` or
/// `--config`.
fn postgres_url(
    flag: &Option<String>,
    db: &Option<PathBuf>,
    config: &Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    if flag.is_some() || db.is_some() {
        return Ok(flag.clone());
    }
    if let Some(path) = config {
        let url = Config::load(path)?.storage.postgres_url;
        return Ok((!url.is_empty()).then_some(url));
    }
    Ok(std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty()))
}

#[derive(Subcommand)]
enum RosterAction {
    /// Adds people; prints `name,code` for each, once (only a hash is kept).
    Add {
        /// Usernames to add.
        #[arg(required = true)]
        names: Vec<String>,
        /// Add them as instructors (no /op needed).
        #[arg(long, conflicts_with = "assistant")]
        instructor: bool,
        /// Add them as teaching assistants: they moderate and run the class's
        /// tools, and sign in to the instructor page.
        #[arg(long)]
        assistant: bool,
    },
    /// Adds everyone in a CSV class list (header row; columns `name`, optional
    /// `role` = student|instructor|assistant and `full_name`); prints `name,code`
    /// for each.
    Import {
        /// The CSV file (`-` for standard input).
        file: PathBuf,
    },
    /// Lists the roster (never the codes).
    List,
    /// Takes a name off the roster.
    Remove {
        /// The username.
        name: String,
    },
    /// Gives a name a new code (the old one stops working); prints `name,code`.
    Reissue {
        /// The username.
        name: String,
    },
}

/// Running the server (the default).
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (default: built-in defaults, as in config/server.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.bind).
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Port to listen on, 0 for any free one (overrides server.port).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// SQLite database file (overrides storage.database).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Folder for transcript files (overrides log.dir).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
}

/// Where the record is: a database file, or a cluster's PostgreSQL.
#[derive(Args)]
struct RecordArgs {
    /// Configuration whose storage.database (a cluster's: storage.postgres_url,
    /// and log.dir for `erase`) to use.
    #[arg(long, value_name = "FILE", conflicts_with = "db")]
    config: Option<PathBuf>,
    /// Database to use (default: storage.database of the configuration).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// The cluster's PostgreSQL to use instead of a database file
    /// (postgres://USER@HOST:PORT/DATABASE; default: $CLASSCHAT_POSTGRES_URL
    /// unless --db or --config is given).
    #[arg(long, value_name = "URL", conflicts_with_all = ["db", "config"])]
    postgres: Option<String>,
}

impl RecordArgs {
    /// The PostgreSQL to use, if the record is there ([`postgres_url`]).
    fn postgres_url(&self) -> anyhow::Result<Option<String>> {
        postgres_url(&self.postgres, &self.db, &self.config)
    }

    /// The database file: `--db`, else the configuration's; it must exist.
    fn database(&self, config: &Config) -> anyhow::Result<PathBuf> {
        let path = self
            .db
            .clone()
            .unwrap_or_else(|| config.storage.database.clone());
        if !path.exists() {
            anyhow::bail!(
                "no database at {} (use --db FILE or --config FILE to point at the server's database)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// Which database to read and which events to look at.
#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    record: RecordArgs,
    /// Only this room (`lab` or `#lab`).
    #[arg(long)]
    room: Option<String>,
    /// Only this student (any of their names).
    #[arg(long)]
    user: Option<String>,
    /// From this time on: 2026-11-24, "2026-11-24 19:00" (UTC) or RFC 3339; or
    /// today, yesterday (from midnight) or 19:00 (today), in local time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Output format; `gradebook` is a CSV with one row per student and one
    /// column per class session (1 present, 0 absent).
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Attendance instead of the whole term per person: per class session
    /// (`[[class.sessions]]` of --config, and those staff ran with /session) or
    /// per ISO week.
    #[arg(long, value_enum, value_name = "session|week")]
    by: Option<ByArg>,
}

/// `--by`: what attendance is counted per.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ByArg {
    /// Per class session and student: present, minutes online and late, messages.
    Session,
    /// Per ISO week and student: sessions attended, messages, words.
    Week,
}

/// `--format`: the report's formats, as the command line names them.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// Aligned columns with a header.
    Table,
    /// Comma-separated values with a header row (formula-like cells quoted).
    Csv,
    /// A JSON array of objects.
    Json,
    /// Attendance for a gradebook: one row per student, one column per session.
    Gradebook,
}

impl FormatArg {
    /// The format of a table of rows; `None` for the gradebook, which has a
    /// shape of its own.
    fn rows(self) -> Option<Format> {
        match self {
            FormatArg::Table => Some(Format::Table),
            FormatArg::Csv => Some(Format::Csv),
            FormatArg::Json => Some(Format::Json),
            FormatArg::Gradebook => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Report(args)) => report_command(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Transcript(args)) => {
            query(&args, report::write_transcript).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::HashPassword) => hash_password().map(|()| ExitCode::SUCCESS),
        Some(Command::Roster(args)) => roster_command(args).map(|()| ExitCode::SUCCESS),
        Some(Command::Tls {
            action: TlsAction::SelfSigned { hosts, out },
        }) => self_signed(&hosts, &out).map(|()| ExitCode::SUCCESS),
        Some(Command::Export(args)) => export_command(args).map(|()| ExitCode::SUCCESS),
        Some(Command::Erase(args)) => erase_command(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if err
                .downcast_ref::<ReportError>()
                .is_some_and(|e| matches!(e, ReportError::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            complain(&describe(&err));
            let usage = err.downcast_ref::<ConfigError>().is_some()
                || err
                    .downcast_ref::<ReportError>()
                    .is_some_and(|e| matches!(e, ReportError::BadTime(_)));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The error and its causes, each said once: most of our errors already name
/// their cause in their own message.
fn describe(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

/// `report`: per person over the whole filter, or attendance per class session
/// or week, or the gradebook. Attendance needs the class's timetable and time
/// zone, from `--config`; without one only the sessions staff ran count.
fn report_command(args: &ReportArgs) -> anyhow::Result<()> {
    let config = load_config(args.query.record.config.as_ref())?;
    if let Err((key, reason)) = config.class.check() {
        return Err(ConfigError::Invalid { key, reason }.into());
    }
    let class = &config.class;
    query(&args.query, |records, filter, out| {
        match (args.format.rows(), args.by) {
            (None, _) => report::write_gradebook(records, filter, class, out),
            (Some(format), None) => report::write_report(records, filter, format, out),
            (Some(format), Some(by)) => {
                let by = match by {
                    ByArg::Session => report::By::Session,
                    ByArg::Week => report::By::Week,
                };
                report::write_attendance(records, filter, class, by, format, out)
            }
        }
    })
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let Some(db) = args.db {
        config.storage.database = db;
    }
    if let Some(dir) = args.log_dir {
        config.log.dir = dir;
    }
    let config = config.validate()?;
    init_diagnostics(&config.log.level);
    let database = absolute(&config.storage.database);
    let transcripts = absolute(&config.log.dir);
    let nats_url = classchat::cluster::without_credentials(&config.cluster.nats_url);
    let require = config.tls_enabled() && config.tls.require;
    let retention = match config.storage.retention_days {
        0 => "retention: everything is kept (storage.retention_days = 0)".to_owned(),
        days => format!(
            "retention: events and transcript files older than {days} days are deleted at start and daily"
        ),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        // Listen for signals before announcing the address: a supervisor that
        // stops the server right after `listening on` still gets a clean exit.
        let stop = termination().context("cannot listen for signals")?;
        // Scripts and tests read the address from the first line; the rest is for
        // the instructor at the console.
        say(format_args!("listening on {}", server.local_addr()));
        if let Some(tls) = server.line_tls_addr() {
            say(format_args!("tls listening on {tls}"));
        }
        if let Some(irc) = server.irc_addr() {
            say(format_args!("irc listening on {irc}"));
        }
        if let Some(irc) = server.irc_tls_addr() {
            say(format_args!("irc tls listening on {irc}"));
        }
        if let Some(web) = server.web_addr() {
            match server.web_tls_addr().filter(|_| require) {
                Some(_) => say(format_args!(
                    "web listening on http://{web}/ (redirects to HTTPS)"
                )),
                None => say(format_args!("web listening on http://{web}/")),
            }
        }
        if let Some(web) = server.web_tls_addr() {
            say(format_args!("web listening on https://{web}/"));
        }
        if let Some(fingerprint) = server.fingerprint() {
            say(format_args!(
                "certificate SHA-256 fingerprint: {fingerprint}"
            ));
            if require {
                say("TLS required (tls.require): no plain line or IRC port");
            }
        }
        match server.node_number() {
            Some(number) => {
                // The PostgreSQL URL may hold a password: it is not printed.
                say(format_args!(
                    "cluster node {number}, ordered by NATS at {nats_url}"
                ));
                say("record: PostgreSQL (storage.postgres_url)");
            }
            None => {
                say(format_args!("database: {}", database.display()));
                say(format_args!("transcripts: {}", transcripts.display()));
            }
        }
        say(retention);
        for line in where_to_connect(server.local_addr(), require) {
            say(line);
        }
        let closed = server.run(stop).await;
        Ok(match closed.problem() {
            None => ExitCode::SUCCESS,
            Some(problem) => {
                complain(&problem);
                ExitCode::from(3)
            }
        })
    })
}

/// Prints a line for the operator on stdout. Output that cannot be written (a
/// `| tee` stopped by the same Ctrl-C that stops the server, a full disk) is
/// dropped: the server keeps running and shuts down cleanly without it.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Prints `chat-server: PROBLEM` on stderr, dropped as [`say`] drops output.
fn complain(problem: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "chat-server: {problem}");
}

/// Diagnostics' way to stderr: whatever cannot be written is dropped, as [`say`]
/// drops it, where tracing's writer would report the failure with `eprintln!`,
/// which panics on a closed pipe.
struct Diagnostics;

impl Write for Diagnostics {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The path as the operator will look for it, whatever folder the server was
/// started from.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// What to tell students: with a wildcard bind the listening address is no use to
/// them, so list this machine's own addresses. `tls`: the port speaks only TLS, and
/// `chat-client` needs `--tls` unless it is the usual 5556.
fn where_to_connect(listening: SocketAddr, tls: bool) -> Vec<String> {
    let (ip, port) = (listening.ip(), listening.port());
    let flag = match tls && port != 5556 {
        true => " --tls",
        false => "",
    };
    if ip.is_loopback() {
        return vec![format!(
            "only this machine can connect (server.bind = \"{ip}\"); \
             bind = \"0.0.0.0\" opens it to the network"
        )];
    }
    let addresses = if ip.is_unspecified() {
        interface_addresses(ip.is_ipv6())
    } else {
        vec![ip]
    };
    if addresses.is_empty() {
        return vec!["no network address found: only this machine can connect".to_owned()];
    }
    addresses
        .into_iter()
        .map(|a| {
            let host = if a.is_ipv6() {
                format!("[{a}]")
            } else {
                a.to_string()
            };
            format!("students connect to {host}:{port}: chat-client --host {a} --port {port}{flag}")
        })
        .collect()
}

/// Addresses of this machine that others can reach: not loopback, and not IPv6
/// link-local, which would need an interface name that students cannot know.
/// IPv6 ones only when the server listens on `::`.
fn interface_addresses(with_ipv6: bool) -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => {
                with_ipv6 && !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Diagnostics go to stderr, filtered by `RUST_LOG` if set, else by `log.level`.
fn init_diagnostics(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Diagnostics)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// `tls self-signed`: the key is written readable by its owner only, and neither
/// file replaces one already there (it may be the key a server is using).
fn self_signed(hosts: &[String], out: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let made = classchat::tls::self_signed(hosts).context("cannot make the certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = absolute(out);
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    for (path, text, mode) in [(&cert, &made.cert_pem, 0o644), (&key, &made.key_pem, 0o600)] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("certificate: {}", cert.display());
    println!("key: {} (readable by you only)", key.display());
    println!("SHA-256 fingerprint: {}", made.fingerprint);
    println!();
    println!("Add to the server's configuration:");
    println!();
    println!("[tls]");
    println!("cert = {:?}", cert.display().to_string());
    println!("key = {:?}", key.display().to_string());
    println!();
    println!(
        "Students check the fingerprint once: chat-client --host {} --tls-fingerprint {}",
        hosts[0], made.fingerprint
    );
    Ok(())
}

/// A future that completes on the first SIGINT or SIGTERM; the handlers (and
/// SIGHUP's) are in place when this returns.
fn termination() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // SIGHUP reads the TLS certificate again (the server listens for it itself);
    // without [tls] it must still not end the server, as it would by default, so
    // that `systemctl reload` is always safe.
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => return,
                _ = terminate.recv() => return,
                _ = hangup.recv() => {}
            }
        }
    })
}

fn hash_password() -> anyhow::Result<()> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("Instructor password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let hash = password::hash(&password).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    println!("{hash}");
    Ok(())
}

fn roster_command(args: RosterArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let max_nick_len = config.limits.max_nick_len;
    // Where the commands read and write: the server's SQLite file, or the
    // cluster's PostgreSQL. The same names, codes and output either way.
    let mut store: Box<dyn RosterEdit> = match postgres_url(&args.postgres, &args.db, &args.config)?
    {
        Some(url) => Box::new(Blocking::connect(&url)?),
        None => {
            let path = args.db.clone().unwrap_or(config.storage.database);
            Box::new(store::open_database(&path)?)
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut out = std::io::stdout().lock();
    let print_codes = |out: &mut dyn Write, codes: &[(String, String)]| -> std::io::Result<()> {
        writeln!(out, "name,code")?;
        for (name, code) in codes {
            writeln!(out, "{name},{code}")?;
        }
        Ok(())
    };
    match args.action {
        RosterAction::Add {
            names,
            instructor,
            assistant,
        } => {
            let role = match (instructor, assistant) {
                (true, _) => roster::RosterRole::Instructor,
                (false, true) => roster::RosterRole::Assistant,
                (false, false) => roster::RosterRole::Student,
            };
            let people: Vec<roster::NewMember> = names
                .into_iter()
                .map(|name| roster::NewMember {
                    name,
                    role,
                    full_name: None,
                })
                .collect();
            let codes = store.add_members(&people, max_nick_len, now_ms)?;
            print_codes(&mut out, &codes)?;
        }
        RosterAction::Import { file } => {
            let people = if file.as_os_str() == "-" {
                roster::read_csv(std::io::stdin().lock())?
            } else {
                let input = std::fs::File::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                roster::read_csv(input)?
            };
            let codes = store.add_members(&people, max_nick_len, now_ms)?;
            print_codes(&mut out, &codes)?;
        }
        RosterAction::List => {
            writeln!(out, "name,role,full_name")?;
            for member in store.members()? {
                let role = member.role.as_str();
                let full_name = member.full_name.unwrap_or_default();
                writeln!(out, "{},{role},{}", member.name, csv_cell(&full_name))?;
            }
        }
        RosterAction::Remove { name } => store.remove_member(&name)?,
        RosterAction::Reissue { name } => {
            let code = store.reissue_code(&name)?;
            print_codes(&mut out, &[code])?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A CSV cell: quoted when it holds a comma or a quote.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn query(
    args: &QueryArgs,
    write: impl FnOnce(&dyn RecordRead, &Filter, &mut dyn Write) -> Result<(), ReportError>,
) -> anyhow::Result<()> {
    let filter = Filter {
        room: args.room.clone(),
        user: args.user.clone(),
        since: args.since.as_deref().map(report::parse_time).transpose()?,
        until: args.until.as_deref().map(report::parse_time).transpose()?,
    };
    let record = &args.record;
    let records: Box<dyn RecordRead> = match record.postgres_url()? {
        Some(url) => Box::new(Blocking::connect(&url)?),
        None => {
            let config = load_config(record.config.as_ref())?;
            Box::new(store::open_read_only(&record.database(&config)?)?)
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write(&*records, &filter, &mut out)?;
    out.flush().map_err(ReportError::from)?;
    Ok(())
}

/// Where `export` and `erase` find the record: as `report` does, and the
/// transcript folder from the configuration (or `--log-dir`).
fn student_target(
    args: &StudentArgs,
    log_dir: Option<PathBuf>,
    nats: Option<String>,
) -> anyhow::Result<Target> {
    let record = &args.record;
    let config = load_config(record.config.as_ref())?;
    if let Some(url) = record.postgres_url()? {
        let from_config = Some(config.cluster.nats_url).filter(|u| !u.is_empty());
        let nats = nats.or(from_config);
        return Ok(Target::Postgres { url, nats });
    }
    Ok(Target::Sqlite {
        database: record.database(&config)?,
        transcripts: log_dir.unwrap_or(config.log.dir),
    })
}

fn export_command(args: ExportArgs) -> anyhow::Result<()> {
    let target = student_target(&args.target, None, None)?;
    let format = match args.format {
        ExportFormatArg::Json => ExportFormat::Json,
        ExportFormatArg::Csv => ExportFormat::Csv,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    command::export(&target, &args.target.student, format, &mut out)?;
    out.flush().map_err(ReportError::from)?;
    Ok(())
}

fn erase_command(args: EraseArgs) -> anyhow::Result<()> {
    let target = student_target(&args.target, args.log_dir, args.nats)?;
    let operator = args
        .by
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    let request = EraseRequest {
        student: args.target.student,
        operator,
        yes: args.yes,
    };
    command::erase(&target, &request, &mut std::io::stdout().lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn students_are_told_an_address_they_can_reach() {
        let local = where_to_connect("127.0.0.1:5555".parse().unwrap(), false);
        assert!(local[0].starts_with("only this machine"), "{local:?}");
        let one = where_to_connect("10.1.2.3:5555".parse().unwrap(), false);
        assert_eq!(
            one,
            ["students connect to 10.1.2.3:5555: chat-client --host 10.1.2.3 --port 5555"]
        );
        let tls = where_to_connect("10.1.2.3:7000".parse().unwrap(), true);
        assert_eq!(
            tls,
            ["students connect to 10.1.2.3:7000: chat-client --host 10.1.2.3 --port 7000 --tls"]
        );
        let usual = where_to_connect("10.1.2.3:5556".parse().unwrap(), true);
        assert!(usual[0].ends_with("--port 5556"), "{usual:?}");
        for line in where_to_connect("0.0.0.0:5555".parse().unwrap(), false) {
            assert!(
                !line.contains("0.0.0.0") && !line.contains("127."),
                "{line}"
            );
        }
    }
}
