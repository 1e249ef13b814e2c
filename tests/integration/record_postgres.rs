//! The cluster's record in a real PostgreSQL (SPEC 9): events written once each in
//! `seq, idx` order, and `report`, `transcript` and `roster` with `--postgres`
//! saying exactly what they say over SQLite.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use classchat::event::{Event, EventKind};
use classchat::store::postgres;

use crate::harness::{TestServer, SERVER_BIN};
use crate::persistence::{scripted_session, stored_events};
use crate::postgres::Postgres;
use crate::roster::codes;

fn chat(session: i64, text: &str) -> Event {
    Event {
        ts_ms: 1_800_000_000_000 + session,
        kind: EventKind::Chat,
        room: "lobby".into(),
        sender: "amy".into(),
        recipient: None,
        text: Some(text.into()),
        session,
        account: None,
    }
}

/// Every `(seq, idx, text)` stored, in the table's order.
async fn stored(client: &tokio_postgres::Client) -> Vec<(i64, i32, String)> {
    client
        .query("SELECT seq, idx, text FROM events ORDER BY seq, idx", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn overlapping_batches_store_each_event_once() {
    let Some(pg) = Postgres::start() else { return };
    let mut client = postgres::connect(&pg.url()).await.unwrap();
    postgres::migrate(&client).await.unwrap();
    assert_eq!(postgres::watermark(&client).await.unwrap(), 0);
    postgres::insert_events(&mut client, &[]).await.unwrap();

    // Inputs 1..=3 made two events each; a redelivery writes 2..=4 again, and the
    // copies of what is stored must not replace it.
    let row = |seq: u64, idx: u32, text: &str| (seq, idx, chat(seq as i64, text));
    let first: Vec<_> = (1..=3)
        .flat_map(|s| [row(s, 0, "first"), row(s, 1, "first")])
        .collect();
    let again: Vec<_> = (2..=4)
        .flat_map(|s| [row(s, 1, "again"), row(s, 0, "again")])
        .collect();
    postgres::insert_events(&mut client, &first).await.unwrap();
    assert_eq!(postgres::watermark(&client).await.unwrap(), 3);
    postgres::insert_events(&mut client, &again).await.unwrap();
    assert_eq!(postgres::watermark(&client).await.unwrap(), 4);

    let mut expected: Vec<(i64, i32, String)> = Vec::new();
    for seq in 1..=4 {
        let text = if seq <= 3 { "first" } else { "again" };
        expected.extend((0..2).map(|idx| (seq, idx, text.to_owned())));
    }
    assert_eq!(stored(&client).await, expected);

    // A sequence number a signed column cannot hold is refused, not wrapped.
    let huge = [(u64::MAX, 0, chat(1, "x"))];
    assert!(postgres::insert_events(&mut client, &huge).await.is_err());
    assert_eq!(postgres::watermark(&client).await.unwrap(), 4);
}

#[tokio::test]
async fn a_large_batch_is_one_insert() {
    let Some(pg) = Postgres::start() else { return };
    let mut client = postgres::connect(&pg.url()).await.unwrap();
    postgres::migrate(&client).await.unwrap();
    let rows: Vec<_> = (0..5000u64)
        .map(|i| {
            (
                i / 3 + 1,
                (i % 3) as u32,
                chat(i as i64, &format!("line {i}")),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    postgres::insert_events(&mut client, &rows).await.unwrap();
    // Generous for a loaded test machine; one row per round trip takes far longer.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let count: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5000);
    assert_eq!(postgres::watermark(&client).await.unwrap(), 5000 / 3 + 1);
}

#[tokio::test]
async fn nodes_starting_together_migrate_without_failing() {
    let Some(pg) = Postgres::start() else { return };
    let url = Arc::new(pg.url());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = postgres::connect(&url).await?;
                postgres::migrate(&client).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("migrate succeeds beside the others");
    }
    let client = postgres::connect(&url).await.unwrap();
    postgres::migrate(&client).await.unwrap();
    assert_eq!(postgres::watermark(&client).await.unwrap(), 0);
}

/// Runs the server binary; it must succeed.
fn run(args: &[&str]) -> String {
    let out = output(Command::new(SERVER_BIN).args(args));
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn output(command: &mut Command) -> Output {
    // The tests' own environment must not choose the database for them.
    command
        .env_remove("CLASSCHAT_POSTGRES_URL")
        .output()
        .unwrap()
}

/// A real chat session, plus rostered events with full names, accents and
/// quotes, in a SQLite database: the record both backends are compared on.
async fn class_record() -> (tempfile::TempDir, std::path::PathBuf) {
    let server = TestServer::start().await;
    scripted_session(&server).await;
    let db = server.db_path();
    let dir = server.stop().await;
    let mut conn = classchat::store::open_database(&db).unwrap();
    let t0 = classchat::report::parse_time("2030-01-02 10:00").unwrap();
    let rostered = |min: i64, kind, sender: &str, text: Option<&str>| Event {
        ts_ms: t0 + min * 60_000,
        kind,
        room: "lab".into(),
        sender: sender.into(),
        recipient: None,
        text: text.map(String::from),
        session: 100,
        account: Some("zoë".into()),
    };
    let later = [
        rostered(0, EventKind::Join, "zoe", None),
        rostered(
            1,
            EventKind::Chat,
            "zoe",
            Some("Ünïcode, \"quotes\", commas"),
        ),
        rostered(2, EventKind::Nick, "zoe", Some("zed")),
        rostered(3, EventKind::Chat, "zed", Some("still me")),
        rostered(9, EventKind::Leave, "zed", Some("Quit")),
    ];
    classchat::store::insert_events(&mut conn, &later).unwrap();
    (dir, db)
}

/// Copies the SQLite events into PostgreSQL, two to an input (`seq` from the row
/// id), in shuffled batches: the order read back must come from `seq, idx`.
async fn copy_to_postgres(db: &Path, client: &mut tokio_postgres::Client) {
    let conn = classchat::store::open_read_only(db).unwrap();
    let ids: Vec<u64> = conn
        .prepare("SELECT id FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let events = stored_events(db);
    assert_eq!(ids.len(), events.len());
    let mut rows: Vec<(u64, u32, Event)> = ids
        .into_iter()
        .zip(events)
        .map(|(id, event)| (id.div_ceil(2), ((id + 1) % 2) as u32, event))
        .collect();
    rows.reverse();
    let (late, early) = rows.split_at(rows.len() / 2);
    postgres::migrate(client).await.unwrap();
    postgres::insert_events(client, late).await.unwrap();
    postgres::insert_events(client, early).await.unwrap();
}

#[tokio::test]
async fn report_and_transcript_say_the_same_from_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let (_dir, db) = class_record().await;
    let mut client = postgres::connect(&pg.url()).await.unwrap();
    copy_to_postgres(&db, &mut client).await;
    let db = db.to_str().unwrap();
    let url = pg.url();

    let queries: &[&[&str]] = &[
        &["report"],
        &["report", "--format", "csv"],
        &["report", "--format", "json"],
        &["report", "--room", "lab", "--format", "json"],
        &["report", "--user", "ROBERT"],
        &["report", "--since", "2030-01-02 10:02"],
        &["transcript"],
        &["transcript", "--user", "zed"],
        &["transcript", "--room", "#lobby", "--until", "2030-01-01"],
    ];
    for query in queries {
        let sqlite = run(&[*query, &["--db", db]].concat());
        let postgres = run(&[*query, &["--postgres", &url]].concat());
        assert!(
            sqlite.lines().count() > 1,
            "{query:?} prints something: {sqlite}"
        );
        assert_eq!(postgres, sqlite, "{query:?}");
    }

    // The URL may come from the environment instead, but a database file named
    // on the command line wins over it.
    let with_env = |args: &[&str]| {
        let out = Command::new(SERVER_BIN)
            .args(args)
            .env("CLASSCHAT_POSTGRES_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = run(&["transcript", "--db", db]);
    assert_eq!(with_env(&["transcript"]), expected);
    let empty = tempfile::tempdir().unwrap();
    let other = empty.path().join("other.db");
    classchat::store::open_database(&other).unwrap();
    assert_eq!(
        with_env(&["transcript", "--db", other.to_str().unwrap()]),
        ""
    );
}

/// The same record, with the same roster entry and the same erase made through
/// each back end's `RecordErase`, reads the same through each back end's
/// `RecordRead`: the report (full names included), the transcript (the `erase`
/// event last, though PostgreSQL keys it apart from the stream's events) and a
/// student's export.
#[tokio::test]
async fn an_erased_record_reads_the_same_from_either_back_end() {
    use classchat::store::RecordErase;

    let Some(pg) = Postgres::start() else { return };
    let (_dir, db) = class_record().await;
    let mut client = postgres::connect(&pg.url()).await.unwrap();
    copy_to_postgres(&db, &mut client).await;
    let entry = "INSERT INTO roster (name, role, full_name, code_hash, added_ms)
                 VALUES ('zoë', 'student', 'Zoë Example', 'no code', 0)";
    client.execute(entry, &[]).await.unwrap();
    let url = pg.url();
    let sqlite_db = db.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let mut sqlite = classchat::store::open_database(&sqlite_db).unwrap();
        sqlite.execute(entry, []).unwrap();
        let mut postgres = postgres::Blocking::connect(&url).unwrap();
        let at = classchat::report::parse_time("2030-01-03 09:00").unwrap();
        let erase = |record: &mut dyn RecordErase| {
            let (scope, _) = classchat::report::student_events(&*record, "ZED")
                .unwrap()
                .unwrap();
            let event =
                |counts| classchat::student_data::erase::erase_event(&scope, "officer", counts, at);
            assert_eq!(record.members().unwrap().len(), 1);
            (
                scope.clone(),
                record.erase_words(&scope.sessions, &event).unwrap(),
            )
        };
        let from_sqlite = erase(&mut sqlite);
        assert_eq!(erase(&mut postgres), from_sqlite);
        from_sqlite.1
    })
    .await
    .unwrap();
    assert_eq!((counts.chat, counts.private, counts.reasons), (2, 0, 1));

    let db = db.to_str().unwrap();
    let url = pg.url();
    let queries: &[&[&str]] = &[
        &["report", "--format", "json"],
        &["report", "--user", "zed", "--format", "csv"],
        &["transcript"],
        &["transcript", "--user", "zoe"],
        &["export", "--student", "zed"],
        &["export", "--student", "zed", "--format", "csv"],
    ];
    for query in queries {
        let sqlite = run(&[*query, &["--db", db]].concat());
        let postgres = run(&[*query, &["--postgres", &url]].concat());
        assert_eq!(postgres, sqlite, "{query:?}");
    }
    let report = run(&[
        "report",
        "--user",
        "zed",
        "--format",
        "json",
        "--postgres",
        &url,
    ]);
    assert!(
        report.contains("\"full_name\": \"Zoë Example\""),
        "{report}"
    );
    let transcript = run(&["transcript", "--postgres", &url]);
    let last = transcript.lines().last().unwrap();
    assert!(last.contains(" erase officer -> zoë ("), "{transcript}");
    assert!(!transcript.contains("still me") && transcript.contains("[erased]"));
}

#[tokio::test]
async fn report_names_an_unreachable_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    pg.stop();
    let out = output(Command::new(SERVER_BIN).args(["report", "--postgres", &url]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    pg.start_again();
    let client = postgres::connect(&url).await.unwrap();
    postgres::migrate(&client).await.unwrap();
    let out = run(&["report", "--postgres", &url, "--format", "json"]);
    assert_eq!(out, "[]\n");
}

/// `chat-server roster ARGS` against `target` (`--db FILE` or `--postgres URL`).
fn roster(target: &[&str], args: &[&str]) -> Output {
    output(
        Command::new(SERVER_BIN)
            .arg("roster")
            .args(args)
            .args(target),
    )
}

fn roster_ok(target: &[&str], args: &[&str]) -> String {
    let out = roster(target, args);
    assert!(out.status.success(), "roster {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn roster_commands_work_on_postgres_as_on_sqlite() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("class.db");
    let csv = dir.path().join("class.csv");
    std::fs::write(
        &csv,
        "name,role,full_name\ncat,,\"Stevens, Cat\"\nTeach,instructor,\n",
    )
    .unwrap();
    let url = pg.url();
    let sqlite = ["--db", db.to_str().unwrap()];
    let postgres = ["--postgres", url.as_str()];

    let mut printed = Vec::new();
    for target in [&sqlite, &postgres] {
        let mut added = codes(&roster_ok(target, &["add", "bob", "Amy"]));
        added.extend(codes(&roster_ok(target, &["add", "prof", "--instructor"])));
        added.extend(codes(&roster_ok(
            target,
            &["import", csv.to_str().unwrap()],
        )));
        let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bob", "Amy", "prof", "cat", "Teach"]);
        printed.push(added);
    }
    let listed = roster_ok(&postgres, &["list"]);
    assert_eq!(listed, roster_ok(&sqlite, &["list"]));
    assert_eq!(
        listed,
        "name,role,full_name\nAmy,student,\nbob,student,\ncat,student,\"Stevens, Cat\"\nprof,instructor,\nTeach,instructor,\n"
    );

    // Every code printed opens its own account, and only that one.
    let client = postgres::connect(&url).await.unwrap();
    let members = postgres::load_roster(&client).await.unwrap();
    let pg_codes = &printed[1];
    for (name, code) in pg_codes {
        let member = members.get(&name.to_uppercase()).unwrap();
        assert_eq!(&member.name, name);
        assert!(classchat::roster::verify(code, &member.code_hash), "{name}");
        let other = &pg_codes.iter().find(|(n, _)| n != name).unwrap().1;
        assert!(!classchat::roster::verify(other, &member.code_hash));
    }
    assert_eq!(
        members.get("prof").unwrap().role,
        classchat::roster::RosterRole::Instructor
    );

    // Names are unique ignoring case, and a failed add adds nobody.
    for target in [&sqlite, &postgres] {
        let out = roster(target, &["add", "dora", "AMY"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("AMY is already on the roster"), "{stderr}");
        let out = roster(target, &["add", "9lives"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid username"));
    }
    assert!(!roster_ok(&postgres, &["list"]).contains("dora"));

    let old = &pg_codes[1].1;
    let reissued = codes(&roster_ok(&postgres, &["reissue", "amy"]));
    assert_eq!(reissued[0].0, "Amy", "the stored spelling is printed");
    let amy = postgres::load_roster(&client).await.unwrap();
    let amy = amy.get("amy").unwrap();
    assert!(classchat::roster::verify(&reissued[0].1, &amy.code_hash));
    assert!(!classchat::roster::verify(old, &amy.code_hash));

    roster_ok(&postgres, &["remove", "BOB"]);
    roster_ok(&sqlite, &["remove", "BOB"]);
    for target in [&sqlite, &postgres] {
        let out = roster(target, &["remove", "bob"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bob is not on the roster"), "{stderr}");
        let out = roster(target, &["reissue", "nobody"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("nobody is not on the roster"));
    }
    assert_eq!(
        roster_ok(&postgres, &["list"]),
        roster_ok(&sqlite, &["list"])
    );
    let members = postgres::load_roster(&client).await.unwrap();
    assert!(members.get("bob").is_none());
    assert!(members.get("cat").is_some());
}
