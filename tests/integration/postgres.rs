//! A real PostgreSQL for the cluster tests: a fresh cluster in a temporary folder,
//! on a free loopback port, stopped and removed when dropped.
//!
//! Where `initdb` and `pg_ctl` are missing, [`Postgres::start`] prints one line
//! saying so and returns `None`, and the test returns early, so that `cargo test`
//! passes on a bare machine; `.ci/run` installs them and sets
//! `CLASSCHAT_REQUIRE_CLUSTER=1`, under which a missing program fails the test
//! instead of skipping it.

// Not every test uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set to `1` where the cluster tests must run (CI): missing programs panic.
pub const REQUIRE_CLUSTER_ENV: &str = "CLASSCHAT_REQUIRE_CLUSTER";

/// The database the tests use.
const DATABASE: &str = "classchat";

/// Whether the cluster tests must run here rather than be skipped.
pub fn cluster_required() -> bool {
    std::env::var(REQUIRE_CLUSTER_ENV).is_ok_and(|v| v == "1")
}

/// A running PostgreSQL server of its own.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    // Removed after Drop::drop has stopped the server.
    dir: tempfile::TempDir,
    port: u16,
    running: AtomicBool,
    as_postgres: bool,
}

impl Postgres {
    /// Creates and starts a cluster with an empty database, or says why it
    /// cannot and returns `None` (panics instead under
    /// `CLASSCHAT_REQUIRE_CLUSTER=1`).
    pub fn start() -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            assert!(
                !cluster_required(),
                "{REQUIRE_CLUSTER_ENV}=1 but PostgreSQL (initdb, pg_ctl) is not installed"
            );
            crate::harness::skip(
                "cluster tests need PostgreSQL (initdb, pg_ctl) and nats-server; \
                 PostgreSQL is not on PATH nor in /usr/lib/postgresql/*/bin",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        // PostgreSQL refuses to run as root: as root, it runs as `postgres`, which
        // must own its folder.
        let as_postgres = effective_uid_is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let postgres = Postgres {
            bin,
            data: dir.path().join("data"),
            dir,
            port: free_port(),
            running: AtomicBool::new(false),
            as_postgres,
        };
        run(postgres
            .command("initdb")
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(&postgres.data));
        postgres.start_again();
        run(postgres
            .command("createdb")
            .args(["--username=postgres", "--host=127.0.0.1"])
            .arg(format!("--port={}", postgres.port))
            .arg(DATABASE));
        Some(postgres)
    }

    /// The URL of the test database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The port it listens on, the same across [`Postgres::stop`] and
    /// [`Postgres::start_again`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`), keeping its
    /// data: clients are disconnected and new connections refused.
    pub fn stop(&self) {
        run(&mut self.pg_ctl_stop("fast"));
        self.running.store(false, Ordering::SeqCst);
    }

    /// Starts it again on the same port and data, waiting until it accepts
    /// connections.
    pub fn start_again(&self) {
        // Unix sockets go in the test's folder, not /var/run/postgresql, which may
        // not exist or belong to a system cluster. fsync is off: a test never
        // survives a power cut.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(&self.data));
        self.running.store(true, Ordering::SeqCst);
    }

    fn pg_ctl_stop(&self, mode: &str) -> Command {
        let mut command = self.command("pg_ctl");
        command
            .args(["stop", "-w", "-m", mode, "-D"])
            .arg(&self.data);
        command
    }

    /// One of the PostgreSQL programs, to be run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The caller's folder may be closed to `postgres`.
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running.load(Ordering::SeqCst) {
            // Immediate: nothing of a test's database is worth a checkpoint.
            let _ = self.pg_ctl_stop("immediate").output();
        }
    }
}

/// The folder of the PostgreSQL programs: that of `initdb` on PATH (a link
/// followed to the real installation), else the newest of Debian's
/// `/usr/lib/postgresql/VERSION/bin`, which are not on PATH. It must also hold
/// `pg_ctl` and `createdb` of the same version.
fn find_bin() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_owned))
        .filter(|dir| complete(dir));
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn effective_uid_is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A loopback port free right now. Another process could take it before the
/// server binds it; on a test machine that is rare enough.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
