//! Server configuration: the TOML file, its built-in defaults and their validation.
//!
//! Every key has a default equal to `config/server.toml`, so the server runs with no
//! file at all. Reading is strict: an unknown key or a bad value stops the server at
//! start-up with the key named, rather than leaving a typo silently ignored for a term.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use serde::{Deserialize, Serialize};

use crate::protocol;

/// Why a configuration was refused. The server exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file named on the command line.
        path: PathBuf,
        /// The parser's message, which names the key and shows the line.
        message: String,
    },
    /// A value has the right type but is out of range.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `limits.max_nick_len`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: identity, address and rooms.
    pub server: ServerConfig,
    /// `[limits]`: what one client may do.
    pub limits: LimitsConfig,
    /// `[history]`: replay on join.
    pub history: HistoryConfig,
    /// `[storage]`: the SQLite database.
    pub storage: StorageConfig,
    /// `[log]`: transcript files and diagnostics.
    pub log: LogConfig,
    /// `[access]`: join code and instructors.
    pub access: AccessConfig,
    /// `[web]`: the browser chat page and the instructor page.
    pub web: WebConfig,
    /// `[irc]`: the IRC listener.
    pub irc: IrcConfig,
    /// `[cluster]`: several nodes as one server (SPEC section 9).
    pub cluster: ClusterConfig,
    /// `[tls]`: the certificate every TLS listener presents (SPEC section 10).
    pub tls: TlsConfig,
    /// `[class]`: the time zone and the timetable attendance is taken for
    /// (SPEC section 11).
    pub class: crate::class::ClassConfig,
}

/// `[tls]`. With `cert` and `key` set, each enabled front end also listens with
/// TLS: the line protocol on `line_port`, IRC on `irc.tls_port`, the web on
/// `web.tls_port`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate, followed by its chain; read again on SIGHUP or a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Port of the line protocol over TLS (`server.bind`); 0 picks a free one.
    pub line_port: u16,
    /// Only TLS: the plain line and IRC ports are not opened, and the web's plain
    /// port only redirects to HTTPS.
    pub require: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            line_port: 5556,
            require: false,
        }
    }
}

/// `[cluster]`. With `nats_url` and `storage.postgres_url` set, this server is one
/// node of a cluster; with neither, a single server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS with JetStream, e.g. `nats://10.0.0.5:4222`; empty: no cluster.
    pub nats_url: String,
    /// A snapshot of the rooms, names, history, mutes and kicks is saved every
    /// this many actions, so that a starting node replays at most about this many
    /// (SPEC 9, "Bounded start"); the stream is trimmed below the snapshots once
    /// PostgreSQL holds what they cover.
    pub snapshot_every: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: String::new(),
            snapshot_every: 100_000,
        }
    }
}

/// The fewest actions between snapshots `cluster.snapshot_every` accepts: fewer
/// would save the whole state for every few lines.
pub const MIN_SNAPSHOT_EVERY: u64 = 100;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Shown in the greeting.
    pub name: String,
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// The room everyone starts in.
    pub default_room: String,
    /// Rooms that always exist, even when empty.
    pub rooms: Vec<String>,
    /// Names nobody may take, compared case-insensitively.
    pub reserved_nicks: Vec<String>,
    /// chrono strftime format of the `[TIMESTAMP]` on every line.
    pub timestamp_format: String,
    /// Timestamps in UTC instead of the server's local time.
    pub utc: bool,
    /// Message of the day, shown in the greeting when not empty.
    pub motd: String,
    /// Every listener expects a PROXY protocol header (v1 or v2) before anything
    /// else, from a balancer in `trusted_proxies`, and takes the client's address
    /// from it.
    pub proxy_protocol: bool,
    /// The balancers whose PROXY headers are believed: addresses or CIDRs. With
    /// `proxy_protocol`, a connection from anywhere else is closed.
    pub trusted_proxies: Vec<TrustedProxy>,
}

/// One entry of `server.trusted_proxies`: `10.0.0.10` or `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(ipnet::IpNet);

impl TrustedProxy {
    /// Whether `ip` is this proxy, or in its network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let net = match text.parse::<IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip),
            Err(_) => text
                .parse::<ipnet::IpNet>()
                .map_err(|_| format!("'{text}' is neither an address nor a CIDR (10.0.0.0/24)"))?,
        };
        Ok(TrustedProxy(net))
    }
}

impl From<TrustedProxy> for String {
    fn from(proxy: TrustedProxy) -> String {
        match proxy.0.prefix_len() == proxy.0.max_prefix_len() {
            true => proxy.0.addr().to_string(),
            false => proxy.0.to_string(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "classchat".into(),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 5555,
            default_room: "lobby".into(),
            rooms: Vec::new(),
            reserved_nicks: vec!["server".into(), "admin".into(), "system".into()],
            timestamp_format: "%H:%M:%S".into(),
            utc: false,
            motd: String::new(),
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Logged-in users at once; one more is told the server is full.
    pub max_clients: usize,
    /// Longest username.
    pub max_nick_len: usize,
    /// Longest line a client may send, without its line ending.
    pub max_line_bytes: usize,
    /// Sustained lines per second per client; 0 turns the rate limit off.
    pub messages_per_sec: u32,
    /// Lines a client may send at once above the sustained rate.
    pub burst: u32,
    /// Lines waiting for one client; a client that lets it fill is dropped.
    pub outbound_queue: usize,
    /// Seconds without a line before a client is dropped; 0 = never.
    pub idle_timeout_secs: u64,
    /// Seconds a new connection has to give a valid username.
    pub handshake_timeout_secs: u64,
    /// Rooms at once, the default and configured ones included.
    pub max_rooms: usize,
    /// Connections at once from one IP address; 0 = no limit.
    pub max_per_ip: usize,
    /// Connections still logging in, all together; 0 = no limit.
    pub max_pending: usize,
    /// Connections still logging in from one address; 0 = no limit.
    pub max_pending_per_ip: usize,
    /// New connections per address per minute; 0 = no limit.
    pub connects_per_minute_per_ip: u32,
    /// Above this many members a room's joins and leaves are summed up every
    /// `announce_every_secs` instead of announced one by one; 0 = always one by one.
    pub announce_joins_up_to: usize,
    /// Seconds between the summaries of a big room's joins and leaves.
    pub announce_every_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 500,
            max_nick_len: 16,
            max_line_bytes: 1024,
            messages_per_sec: 5,
            burst: 10,
            outbound_queue: 1024,
            idle_timeout_secs: 0,
            handshake_timeout_secs: 30,
            max_rooms: 50,
            max_per_ip: 0,
            max_pending: 100,
            max_pending_per_ip: 10,
            connects_per_minute_per_ip: 120,
            announce_joins_up_to: 100,
            announce_every_secs: 5,
        }
    }
}

impl LimitsConfig {
    /// The idle timeout, if there is one.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    /// The time a new connection has to log in.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// How often a big room's joins and leaves are summed up.
    pub fn announce_every(&self) -> Duration {
        Duration::from_secs(self.announce_every_secs)
    }
}

/// `[history]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Chat lines replayed on joining a room; 0 turns replay off.
    pub replay_lines: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { replay_lines: 20 }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite database file; its folder is created.
    pub database: PathBuf,
    /// Events waiting for the database past which new chat lines and private
    /// messages are refused.
    pub max_backlog: usize,
    /// Seconds a shutdown keeps retrying a failing database before it saves the
    /// rest to `DATABASE.unsaved.jsonl`.
    pub shutdown_grace_secs: u64,
    /// Days events and transcript files are kept (SPEC 12): older ones are deleted
    /// at start and daily. 0 keeps everything.
    pub retention_days: u32,
    /// A cluster's record, e.g. `postgres://classchat@10.0.0.6/classchat`; set
    /// with `cluster.nats_url`, and then `database` is not used.
    pub postgres_url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database: PathBuf::from("data/classchat.db"),
            max_backlog: 100_000,
            shutdown_grace_secs: 30,
            retention_days: 0,
            postgres_url: String::new(),
        }
    }
}

impl StorageConfig {
    /// How long a shutdown retries a failing database.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Events before this moment (UTC milliseconds) are past `retention_days`;
    /// `None` when everything is kept.
    pub fn retention_cutoff_ms(&self, now_ms: i64) -> Option<i64> {
        (self.retention_days > 0).then(|| now_ms - i64::from(self.retention_days) * 86_400_000)
    }
}

/// How often the transcript starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    /// A new file every minute (mostly for testing).
    Minutely,
    /// A new file every hour.
    Hourly,
    /// A new file every day.
    Daily,
    /// One file forever.
    Never,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Folder of the transcript files; created.
    pub dir: PathBuf,
    /// When to start a new transcript file.
    pub rotation: LogRotation,
    /// Transcript files kept; older ones are deleted.
    pub max_files: usize,
    /// Diagnostics verbosity on stderr (a tracing filter); `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: PathBuf::from("logs"),
            rotation: LogRotation::Daily,
            max_files: 30,
            level: "info".into(),
        }
    }
}

/// `[access]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// The code a student must give after the username; empty = open to all.
    pub join_code: String,
    /// Wrong codes allowed before the connection is closed.
    pub max_code_attempts: u32,
    /// Names that may become instructors with `/op PASSWORD`.
    pub instructors: Vec<String>,
    /// Argon2 hash (PHC string) of the instructors' password, made by
    /// `chat-server hash-password`; empty = nobody can `/op`.
    pub instructor_password: String,
    /// Codes and passwords given for one name from one address per minute, all
    /// connections together; 0 = no limit.
    pub code_attempts_per_minute: u32,
    /// Codes and passwords given from one address per minute, whatever the
    /// name; 0 = no limit.
    pub code_attempts_per_minute_per_ip: u32,
    /// Password and code checks (argon2, 19 MiB each) running at once.
    pub parallel_checks: usize,
    /// Minutes a kicked person cannot log in again, under that name or (without
    /// a code of their own) from that address; 0 = a kick only disconnects.
    pub kick_minutes: u32,
    /// In a rostered class, names not on the roster may join as guests.
    pub guests: bool,
    /// Whom students may send private messages to at start (`/dm` changes it):
    /// `everyone`, `staff` (not each other) or `off`.
    pub private_messages: protocol::DmPolicy,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            join_code: String::new(),
            max_code_attempts: 3,
            instructors: Vec::new(),
            instructor_password: String::new(),
            code_attempts_per_minute: 20,
            code_attempts_per_minute_per_ip: 60,
            parallel_checks: 4,
            kick_minutes: 10,
            guests: false,
            private_messages: protocol::DmPolicy::Everyone,
        }
    }
}

/// `[web]`: one HTTP listener for the chat page, its WebSocket and the instructor
/// page (SPEC section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Whether to open the HTTP listener at all.
    pub enabled: bool,
    /// Address to listen on; `None` = `server.bind`.
    pub bind: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// HTTPS port, with `[tls]`; 0 picks a free one.
    pub tls_port: u16,
    /// Host names the page is served under (`Host` header), besides `localhost`,
    /// this machine's name and any IP address: a request for another name is
    /// refused, which stops DNS rebinding.
    pub hosts: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            bind: None,
            port: 8080,
            tls_port: 8443,
            hosts: Vec::new(),
        }
    }
}

/// `[irc]`: a second listener for IRC clients (SPEC section 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IrcConfig {
    /// Whether to listen for IRC clients at all.
    pub enabled: bool,
    /// Address to listen on; `None` means the same as `server.bind`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// IRC over TLS, with `[tls]`; 0 picks a free one.
    pub tls_port: u16,
}

impl Default for IrcConfig {
    fn default() -> Self {
        IrcConfig {
            enabled: false,
            bind: None,
            port: 6667,
            tls_port: 6697,
        }
    }
}

impl Config {
    /// The address the web listener binds: `web.bind`, else `server.bind`.
    pub fn web_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.web.bind.unwrap_or(self.server.bind), self.web.port)
    }

    /// Whether this server is a node of a cluster (`cluster.nats_url` is set).
    pub fn is_cluster(&self) -> bool {
        !self.cluster.nats_url.is_empty()
    }

    /// The IRC listener's address, when it is enabled.
    pub fn irc_addr(&self) -> Option<std::net::SocketAddr> {
        self.irc.enabled.then(|| {
            std::net::SocketAddr::new(self.irc.bind.unwrap_or(self.server.bind), self.irc.port)
        })
    }

    /// Whether the TLS listeners are on (`tls.cert` and `tls.key` set).
    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some() && self.tls.key.is_some()
    }

    /// Whether the plain line and IRC listeners are open (not `tls.require`).
    pub fn plain_enabled(&self) -> bool {
        !(self.tls_enabled() && self.tls.require)
    }

    /// The line protocol's TLS address, with `[tls]`.
    pub fn line_tls_addr(&self) -> Option<std::net::SocketAddr> {
        self.tls_enabled()
            .then(|| std::net::SocketAddr::new(self.server.bind, self.tls.line_port))
    }

    /// The IRC TLS address, with `[tls]` and `irc.enabled`.
    pub fn irc_tls_addr(&self) -> Option<std::net::SocketAddr> {
        let irc = self.irc_addr()?;
        self.tls_enabled()
            .then(|| std::net::SocketAddr::new(irc.ip(), self.irc.tls_port))
    }

    /// The HTTPS address, with `[tls]` and `web.enabled`.
    pub fn web_tls_addr(&self) -> Option<std::net::SocketAddr> {
        (self.web.enabled && self.tls_enabled())
            .then(|| std::net::SocketAddr::new(self.web_addr().ip(), self.web.tls_port))
    }

    /// Reads a TOML file, to be validated once the command line's overrides are
    /// applied. Its relative paths, given or default, are taken from the file's
    /// folder (see [`Config::relative_to`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::from_toml(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        Ok(config.relative_to(path.parent().unwrap_or(Path::new(""))))
    }

    /// Puts `folder` before every relative path of the configuration (absolute
    /// ones stay as they are). A file's paths mean the same from any folder: the
    /// server started beside `class.toml` and `report --config classchat/class.toml`
    /// run from elsewhere find the same database. Every path key belongs here.
    pub fn relative_to(mut self, folder: &Path) -> Config {
        let tls = [&mut self.tls.cert, &mut self.tls.key]
            .into_iter()
            .flatten();
        for path in [&mut self.storage.database, &mut self.log.dir]
            .into_iter()
            .chain(tls)
        {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        }
        self
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ValidConfig, ConfigError> {
        Config::from_toml(text)?.validate()
    }

    /// Parses TOML text: every key known and of the right type.
    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string().trim_end().to_owned(),
        })
    }

    /// Checks every value that its type alone does not constrain; only a checked
    /// configuration can start a server.
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        let server = &self.server;
        let limits = &self.limits;
        wire_text("server.name", &server.name)?;
        if server.name.trim().is_empty() {
            return invalid("server.name", "must not be empty");
        }
        wire_text("server.motd", &server.motd)?;
        if server.proxy_protocol && server.trusted_proxies.is_empty() {
            return invalid(
                "server.trusted_proxies",
                "must name the load balancer when server.proxy_protocol is on",
            );
        }
        if protocol::normalize_room(&server.default_room).as_deref() != Ok(&server.default_room) {
            return invalid("server.default_room", "rooms are 1-32 of a-z 0-9 _ -");
        }
        for room in &server.rooms {
            if protocol::normalize_room(room).as_deref() != Ok(room) {
                return invalid(
                    "server.rooms",
                    &format!("'{room}': rooms are 1-32 of a-z 0-9 _ -"),
                );
            }
        }
        if StrftimeItems::new(&server.timestamp_format).any(|item| matches!(item, Item::Error)) {
            return invalid("server.timestamp_format", "not a valid strftime format");
        }
        // Rendered on a Wednesday in September, near midnight: the longest day
        // and month names, so no date renders longer than this sample.
        let clock = crate::clock::Clock::new(&server.timestamp_format, server.utc);
        for at in [1_764_011_103_123, 1_790_809_199_999] {
            let mut sample = String::new();
            clock.write_timestamp(&mut sample, at);
            wire_text("server.timestamp_format", &sample)?;
            if sample.len() > MAX_TIMESTAMP {
                return invalid(
                    "server.timestamp_format",
                    &format!(
                        "renders to {} bytes; at most {MAX_TIMESTAMP} (it starts every line)",
                        sample.len()
                    ),
                );
            }
        }
        in_range("limits.max_clients", limits.max_clients, 1, 1_000_000)?;
        in_range("limits.max_nick_len", limits.max_nick_len, 1, 64)?;
        in_range("limits.max_line_bytes", limits.max_line_bytes, 64, 65_536)?;
        in_range(
            "limits.messages_per_sec",
            limits.messages_per_sec,
            0,
            1_000_000,
        )?;
        in_range("limits.burst", limits.burst, 1, 1_000_000)?;
        in_range(
            "limits.outbound_queue",
            limits.outbound_queue,
            16,
            1_000_000,
        )?;
        in_range(
            "limits.announce_joins_up_to",
            limits.announce_joins_up_to,
            0,
            1_000_000,
        )?;
        in_range(
            "limits.announce_every_secs",
            limits.announce_every_secs,
            1,
            3_600,
        )?;
        in_range(
            "limits.idle_timeout_secs",
            limits.idle_timeout_secs,
            0,
            31_536_000,
        )?;
        in_range(
            "limits.handshake_timeout_secs",
            limits.handshake_timeout_secs,
            1,
            3_600,
        )?;
        in_range("limits.max_rooms", limits.max_rooms, 1, 100_000)?;
        in_range("limits.max_per_ip", limits.max_per_ip, 0, 1_000_000)?;
        in_range("limits.max_pending", limits.max_pending, 0, 1_000_000)?;
        in_range(
            "limits.max_pending_per_ip",
            limits.max_pending_per_ip,
            0,
            1_000_000,
        )?;
        in_range(
            "limits.connects_per_minute_per_ip",
            limits.connects_per_minute_per_ip,
            0,
            1_000_000,
        )?;
        in_range("history.replay_lines", self.history.replay_lines, 0, 1_000)?;
        if limits.max_rooms < self.permanent_rooms().len() {
            return invalid(
                "limits.max_rooms",
                "must be at least the number of permanent rooms (default_room and rooms)",
            );
        }
        if self.storage.database.as_os_str().is_empty() {
            return invalid("storage.database", "must not be empty");
        }
        if !(1..=100_000_000).contains(&self.storage.max_backlog) {
            return invalid("storage.max_backlog", "must be between 1 and 100000000");
        }
        if self.storage.shutdown_grace_secs > 3600 {
            return invalid("storage.shutdown_grace_secs", "must be between 0 and 3600");
        }
        if self.storage.retention_days > 36_500 {
            return invalid("storage.retention_days", "must be between 0 and 36500");
        }
        if self.log.dir.as_os_str().is_empty() {
            return invalid("log.dir", "must not be empty");
        }
        in_range("log.max_files", self.log.max_files, 1, 100_000)?;
        let access = &self.access;
        in_range("access.max_code_attempts", access.max_code_attempts, 1, 100)?;
        in_range(
            "access.code_attempts_per_minute",
            access.code_attempts_per_minute,
            0,
            100_000,
        )?;
        in_range(
            "access.code_attempts_per_minute_per_ip",
            access.code_attempts_per_minute_per_ip,
            0,
            100_000,
        )?;
        in_range("access.parallel_checks", access.parallel_checks, 1, 64)?;
        in_range("access.kick_minutes", access.kick_minutes, 0, 10_080)?;
        if !access.instructor_password.is_empty()
            && argon2::PasswordHash::new(&access.instructor_password).is_err()
        {
            return invalid(
                "access.instructor_password",
                "must be a password hash made by `chat-server hash-password`, never the password itself",
            );
        }
        for name in &access.instructors {
            if protocol::check_nick(name, limits.max_nick_len, &[]).is_err() {
                return invalid(
                    "access.instructors",
                    &format!("'{name}' is not a valid username"),
                );
            }
        }
        if self.cluster.snapshot_every < MIN_SNAPSHOT_EVERY {
            return invalid(
                "cluster.snapshot_every",
                &format!("must be at least {MIN_SNAPSHOT_EVERY}"),
            );
        }
        match (
            self.cluster.nats_url.is_empty(),
            self.storage.postgres_url.is_empty(),
        ) {
            (true, false) => {
                return invalid(
                    "storage.postgres_url",
                    "needs cluster.nats_url too: PostgreSQL is the record of a cluster",
                )
            }
            (false, true) => {
                return invalid(
                    "cluster.nats_url",
                    "needs storage.postgres_url too: a cluster keeps its record in PostgreSQL",
                )
            }
            _ => {}
        }
        let chat_addr = std::net::SocketAddr::new(server.bind, server.port);
        if self.web.enabled && self.web.port != 0 && self.web_addr() == chat_addr {
            return invalid(
                "web.port",
                "must differ from server.port on the same address",
            );
        }
        if self
            .irc_addr()
            .is_some_and(|irc| irc.port() != 0 && irc == chat_addr)
        {
            return invalid(
                "irc.port",
                "must differ from server.port on the same address",
            );
        }
        self.validate_tls()?;
        if let Err((key, reason)) = self.class.check() {
            return invalid(key, &reason);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                "not a valid level or filter (e.g. info, debug)",
            );
        }
        Ok(ValidConfig(self))
    }

    /// `[tls]`: both files or neither, each readable PEM of its kind, and no TLS
    /// port shared with another listener.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        match (&tls.cert, &tls.key) {
            (None, None) if tls.require => {
                return invalid("tls.require", "needs tls.cert and tls.key")
            }
            (None, None) => return Ok(()),
            (Some(_), None) => return invalid("tls.key", "needs to be set with tls.cert"),
            (None, Some(_)) => return invalid("tls.cert", "needs to be set with tls.key"),
            (Some(cert), Some(key)) => {
                let certs = crate::tls::read_certs(cert).map_err(|e| ConfigError::Invalid {
                    key: "tls.cert",
                    reason: e.to_string(),
                })?;
                let pem = crate::tls::read_key(key).map_err(|e| ConfigError::Invalid {
                    key: "tls.key",
                    reason: e.to_string(),
                })?;
                let provider = crate::tls::provider();
                if let Err(err) = rustls::sign::CertifiedKey::from_der(certs, pem, &provider) {
                    let reason = format!("{}: not the key of tls.cert ({err})", key.display());
                    return Err(ConfigError::Invalid {
                        key: "tls.key",
                        reason,
                    });
                }
            }
        }
        let mut taken = vec![(
            "server.port",
            Some(std::net::SocketAddr::new(
                self.server.bind,
                self.server.port,
            )),
        )];
        taken.push(("irc.port", self.irc_addr()));
        taken.push(("web.port", self.web.enabled.then(|| self.web_addr())));
        for (key, addr) in [
            ("tls.line_port", self.line_tls_addr()),
            ("irc.tls_port", self.irc_tls_addr()),
            ("web.tls_port", self.web_tls_addr()),
        ] {
            let Some(addr) = addr.filter(|a| a.port() != 0) else {
                continue;
            };
            if let Some((other, _)) = taken.iter().find(|(_, a)| *a == Some(addr)) {
                return invalid(
                    key,
                    &format!("must differ from {other} on the same address"),
                );
            }
            taken.push((key, Some(addr)));
        }
        Ok(())
    }

    /// The rooms that always exist: the default room first, then `server.rooms`.
    pub fn permanent_rooms(&self) -> Vec<String> {
        let mut rooms = vec![self.server.default_room.clone()];
        for room in &self.server.rooms {
            if !rooms.contains(room) {
                rooms.push(room.clone());
            }
        }
        rooms
    }
}

/// A configuration that has passed [`Config::validate`]: the only kind a server
/// can be started with.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig(Config);

impl ValidConfig {
    /// The configuration, to change it (and validate it again).
    pub fn into_inner(self) -> Config {
        self.0
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.0
    }
}

fn invalid<T>(key: &'static str, reason: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    })
}

/// Refuses a number outside `lo..=hi`, naming the key and the range.
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        return invalid(key, &format!("must be between {lo} and {hi}"));
    }
    Ok(())
}

/// The longest a rendered `server.timestamp_format` may be: it starts every line.
const MAX_TIMESTAMP: usize = 64;

/// Refuses a text that reaches the wire with a control character or line break in
/// it: it would break the one-line-per-message protocol.
fn wire_text(key: &'static str, text: &str) -> Result<(), ConfigError> {
    if text.chars().any(char::is_control) {
        return invalid(key, "must not contain control characters or line breaks");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_equals_the_built_in_defaults() {
        let text = include_str!("../config/server.toml");
        assert_eq!(Config::parse(text).unwrap().into_inner(), Config::default());
    }

    #[test]
    fn a_files_relative_paths_are_taken_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("class");
        std::fs::create_dir(&class).unwrap();
        let file = class.join("class.toml");
        std::fs::write(&file, "[storage]\ndatabase = \"db/chat.db\"\n").unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.storage.database, class.join("db/chat.db"));
        // A default is the file's too.
        assert_eq!(config.log.dir, class.join("logs"));
        std::fs::write(&file, "[log]\ndir = \"/var/log/classchat\"\n").unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.log.dir, Path::new("/var/log/classchat"));
        assert_eq!(config.storage.database, class.join("data/classchat.db"));
        // The TLS files too.
        std::fs::write(
            &file,
            "[tls]\ncert = \"tls/cert.pem\"\nkey = \"/etc/k.pem\"\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.tls.cert, Some(class.join("tls/cert.pem")));
        assert_eq!(config.tls.key, Some(PathBuf::from("/etc/k.pem")));
        // Without a file, the defaults stay relative to the current folder.
        assert_eq!(
            Config::default().storage.database,
            Path::new("data/classchat.db")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[limits]\nmax_nick_length = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_nick_length"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::parse("[limits]\nmax_nick_len = 0\n").unwrap_err();
        assert!(err.to_string().contains("limits.max_nick_len"), "{err}");
        let err = Config::parse("[server]\ntimestamp_format = \"%Q\"\n").unwrap_err();
        assert!(err.to_string().contains("server.timestamp_format"), "{err}");
        let err = Config::parse("[access]\ninstructor_password = \"hunter2\"\n").unwrap_err();
        assert!(
            err.to_string().contains("access.instructor_password"),
            "{err}"
        );
        let err = Config::parse("[storage]\nmax_backlog = 0\n").unwrap_err();
        assert!(err.to_string().contains("storage.max_backlog"), "{err}");
        let err = Config::parse("[storage]\nshutdown_grace_secs = 3601\n").unwrap_err();
        assert!(
            err.to_string().contains("storage.shutdown_grace_secs"),
            "{err}"
        );
        let err = Config::parse("[irc]\nenabled = true\nport = 5555\n").unwrap_err();
        assert!(err.to_string().contains("irc.port"), "{err}");
        let err = Config::parse("[irc]\nbind = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("bind"), "{err}");
        let err = Config::parse("[log]\nrotation = \"weekly\"\n").unwrap_err();
        assert!(err.to_string().contains("weekly"), "{err}");
    }

    #[test]
    fn every_number_has_a_range() {
        for (section, key) in [
            ("limits", "max_clients"),
            ("limits", "outbound_queue"),
            ("limits", "handshake_timeout_secs"),
            ("limits", "idle_timeout_secs"),
            ("limits", "burst"),
            ("limits", "messages_per_sec"),
            ("limits", "max_rooms"),
            ("limits", "announce_joins_up_to"),
            ("limits", "announce_every_secs"),
            ("history", "replay_lines"),
            ("log", "max_files"),
        ] {
            let text = format!("[{section}]\n{key} = {}\n", i64::MAX);
            let err = Config::parse(&text).unwrap_err();
            // Too large for its type is a parse error showing the line; in range for
            // the type but not for the server, a validation error naming the key.
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn web_defaults_to_the_chat_address_and_may_not_share_its_port() {
        let config = Config::parse("[web]\nenabled = true\nport = 9000\n").unwrap();
        assert_eq!(config.web_addr().to_string(), "127.0.0.1:9000");
        let config = Config::parse("[web]\nbind = \"0.0.0.0\"\n").unwrap();
        assert_eq!(config.web_addr().to_string(), "0.0.0.0:8080");
        let err = Config::parse("[web]\nenabled = true\nport = 5555\n").unwrap_err();
        assert!(err.to_string().contains("web.port"), "{err}");
        let err = Config::parse("[web]\nbind = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("bind"), "{err}");
    }

    #[test]
    fn tls_files_must_be_there_and_ports_must_not_collide() {
        let err = Config::parse("[tls]\ncert = \"/nonexistent/cert.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
        let err = Config::parse("[tls]\nrequire = true\n").unwrap_err();
        assert!(err.to_string().contains("tls.require"), "{err}");
        let text = "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n";
        let err = Config::parse(text).unwrap_err();
        assert!(err.to_string().contains("`tls.cert`"), "{err}");
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let made = crate::tls::self_signed(&["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        std::fs::write(&key, "no key here").unwrap();
        let tls = format!("[tls]\ncert = {cert:?}\nkey = {key:?}\n");
        let err = Config::parse(&tls).unwrap_err();
        assert!(err.to_string().contains("`tls.key`"), "{err}");
        let other = crate::tls::self_signed(&["other".into()]).unwrap();
        std::fs::write(&key, &other.key_pem).unwrap();
        let err = Config::parse(&tls).unwrap_err();
        assert!(err.to_string().contains("not the key of tls.cert"), "{err}");
        std::fs::write(&key, &made.key_pem).unwrap();
        let config = Config::parse(&tls).unwrap();
        assert_eq!(
            config.line_tls_addr().unwrap().to_string(),
            "127.0.0.1:5556"
        );
        let err = Config::parse(&format!("{tls}line_port = 5555\n")).unwrap_err();
        assert!(err.to_string().contains("tls.line_port"), "{err}");
        let irc = "[irc]\nenabled = true\ntls_port = 5556\n";
        let err = Config::parse(&format!("{irc}{tls}")).unwrap_err();
        assert!(err.to_string().contains("irc.tls_port"), "{err}");
        let web = "[web]\nenabled = true\ntls_port = 8080\n";
        let err = Config::parse(&format!("{web}{tls}")).unwrap_err();
        assert!(err.to_string().contains("web.tls_port"), "{err}");
    }

    #[test]
    fn wire_texts_have_no_line_breaks() {
        let err = Config::parse("[server]\nmotd = \"a\\nb\"\n").unwrap_err();
        assert!(err.to_string().contains("server.motd"), "{err}");
        let err = Config::parse("[server]\nname = \"a\\rb\"\n").unwrap_err();
        assert!(err.to_string().contains("server.name"), "{err}");
        let long = format!("[server]\ntimestamp_format = \"{}\"\n", "%Y".repeat(5000));
        let err = Config::parse(&long).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        let ok = "[server]\ntimestamp_format = \"%A %d %B %Y %H:%M:%S%.3f %:z\"\n";
        assert!(Config::parse(ok).is_ok());
        let err = Config::parse("[server]\ntimestamp_format = \"%H%n\"\n").unwrap_err();
        assert!(err.to_string().contains("server.timestamp_format"), "{err}");
    }

    #[test]
    fn retention_is_off_by_default_and_bounded() {
        let config = Config::parse("").unwrap().into_inner();
        assert_eq!(config.storage.retention_cutoff_ms(1_000), None);
        let config = Config::parse("[storage]\nretention_days = 2\n")
            .unwrap()
            .into_inner();
        let now = 10 * 86_400_000;
        assert_eq!(
            config.storage.retention_cutoff_ms(now),
            Some(8 * 86_400_000)
        );
        let err = Config::parse("[storage]\nretention_days = 36501\n").unwrap_err();
        assert!(err.to_string().contains("storage.retention_days"), "{err}");
    }
}
