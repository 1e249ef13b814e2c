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
}

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
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections at once; one more is told the server is full.
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
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database: PathBuf::from("data/classchat.db"),
            max_backlog: 100_000,
            shutdown_grace_secs: 30,
        }
    }
}

impl StorageConfig {
    /// How long a shutdown retries a failing database.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
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
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            join_code: String::new(),
            max_code_attempts: 3,
            instructors: Vec::new(),
            instructor_password: String::new(),
        }
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that its type alone does not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        let server = &self.server;
        let limits = &self.limits;
        if server.name.trim().is_empty() {
            return invalid("server.name", "must not be empty");
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
        if !(1..=64).contains(&limits.max_nick_len) {
            return invalid("limits.max_nick_len", "must be between 1 and 64");
        }
        if !(64..=65536).contains(&limits.max_line_bytes) {
            return invalid("limits.max_line_bytes", "must be between 64 and 65536");
        }
        if limits.max_clients == 0 {
            return invalid("limits.max_clients", "must be at least 1");
        }
        if limits.burst == 0 {
            return invalid("limits.burst", "must be at least 1");
        }
        if limits.outbound_queue < 16 {
            return invalid("limits.outbound_queue", "must be at least 16");
        }
        if limits.handshake_timeout_secs == 0 {
            return invalid("limits.handshake_timeout_secs", "must be at least 1");
        }
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
        if self.log.dir.as_os_str().is_empty() {
            return invalid("log.dir", "must not be empty");
        }
        if self.log.max_files == 0 {
            return invalid("log.max_files", "must be at least 1");
        }
        let access = &self.access;
        if access.max_code_attempts == 0 {
            return invalid("access.max_code_attempts", "must be at least 1");
        }
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
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                "not a valid level or filter (e.g. info, debug)",
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_equals_the_built_in_defaults() {
        let text = include_str!("../config/server.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
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
        let err = Config::parse("[log]\nrotation = \"weekly\"\n").unwrap_err();
        assert!(err.to_string().contains("weekly"), "{err}");
    }
}
