//! The class roster: each name bound to one person by a personal code.
//!
//! `chat-server roster add|import|reissue` make codes and print them once, as
//! `name,code` CSV for a mail merge; the database keeps only an argon2 hash of
//! each. Codes are 12 characters from an alphabet without look-alikes (no `0 O 1 l
//! I`), about 59 bits, compared as said aloud (case, spaces and dashes ignored).
//!
//! The running server reads the roster table again every few seconds, so the
//! commands work while it runs.

use std::collections::HashMap;
use std::io::Read;

use argon2::password_hash::rand_core::{OsRng, RngCore};

use crate::password;

/// Characters a code is made of: lower case only (codes ignore case), no `0 o 1 l i`.
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// Characters in a code, shown in groups of four.
const CODE_LEN: usize = 12;

/// A roster member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterRole {
    /// A student.
    Student,
    /// An instructor: one from log-in, no `/op` needed.
    Instructor,
    /// A teaching assistant: moderates and runs the class's tools like an
    /// instructor, and signs in to the instructor page, from log-in.
    Assistant,
}

impl RosterRole {
    /// The stored name of this role.
    pub fn as_str(self) -> &'static str {
        match self {
            RosterRole::Student => "student",
            RosterRole::Instructor => "instructor",
            RosterRole::Assistant => "assistant",
        }
    }

    /// The role with this name (empty means student), ignoring case and spaces.
    pub fn parse(text: &str) -> Option<RosterRole> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "student" => Some(RosterRole::Student),
            "instructor" => Some(RosterRole::Instructor),
            "assistant" | "ta" => Some(RosterRole::Assistant),
            _ => None,
        }
    }
}

/// One person on the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name, as added.
    pub name: String,
    /// Student or instructor.
    pub role: RosterRole,
    /// The full name, if given.
    pub full_name: Option<String>,
    /// The argon2 hash of the code.
    pub code_hash: String,
}

/// Why a roster command failed.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The database (SQLite, or a cluster's PostgreSQL) refused.
    #[error(transparent)]
    Store(#[from] crate::store::DbError),
    /// A name that is not a valid username.
    #[error("'{0}' is not a valid username")]
    BadName(String),
    /// A name already on the roster.
    #[error("{0} is already on the roster")]
    Exists(String),
    /// A name not on the roster.
    #[error("{0} is not on the roster")]
    Missing(String),
    /// A CSV file that cannot be read.
    #[error("{0}")]
    Csv(String),
    /// Hashing failed.
    #[error("cannot hash a code: {0}")]
    Hash(String),
}

impl From<rusqlite::Error> for RosterError {
    fn from(err: rusqlite::Error) -> Self {
        RosterError::Store(err.into())
    }
}

impl From<tokio_postgres::Error> for RosterError {
    fn from(err: tokio_postgres::Error) -> Self {
        RosterError::Store(err.into())
    }
}

/// The roster as the server holds it, by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    members: HashMap<String, Member>,
}

impl Roster {
    /// The roster of these members, wherever they were read from.
    pub fn from_members(members: Vec<Member>) -> Roster {
        let members = members
            .into_iter()
            .map(|m| (m.name.to_ascii_lowercase(), m))
            .collect();
        Roster { members }
    }

    /// Whether the class is rostered.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member called `name`, compared ignoring case.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.get(&name.to_ascii_lowercase())
    }

    /// The names on this roster whose code no longer lets them in by `newer`:
    /// removed, or given a new code.
    pub fn revoked_by(&self, newer: &Roster) -> Vec<String> {
        let mut revoked: Vec<String> = self
            .members
            .iter()
            .filter(|(key, old)| {
                newer
                    .members
                    .get(*key)
                    .is_none_or(|new| new.code_hash != old.code_hash)
            })
            .map(|(_, old)| old.name.clone())
            .collect();
        revoked.sort_unstable();
        revoked
    }
}

/// A fresh random code, e.g. `k7dm-x3qa-9fpw`.
pub fn new_code() -> String {
    let mut code = String::with_capacity(CODE_LEN + CODE_LEN / 4);
    while code.len() < CODE_LEN + CODE_LEN / 4 - 1 {
        let mut byte = [0u8; 1];
        OsRng.fill_bytes(&mut byte);
        // Rejection keeps every character equally likely.
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
        if byte[0] >= limit {
            continue;
        }
        if code.len() % 5 == 4 {
            code.push('-');
        }
        code.push(ALPHABET[byte[0] as usize % ALPHABET.len()] as char);
    }
    code
}

/// A code as compared: lower case, letters and digits only.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `given` is the code whose hash is `hash`. Costs an argon2 check: run it
/// off the async runtime.
pub fn verify(given: &str, hash: &str) -> bool {
    password::verify(&normalize(given), hash)
}

fn hash_code(code: &str) -> Result<String, RosterError> {
    password::hash(&normalize(code)).map_err(|e| RosterError::Hash(e.to_string()))
}

/// A fresh code, to print once, and its hash, to keep.
pub fn issue_code() -> Result<(String, String), RosterError> {
    let code = new_code();
    let hash = hash_code(&code)?;
    Ok((code, hash))
}

/// Someone about to be added, with the code made for them.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Who.
    pub person: NewMember,
    /// Their code, to print once.
    pub code: String,
    /// Its hash, to store.
    pub code_hash: String,
}

/// Checks every name and makes each person a code, before any database is
/// touched: the slow hashing then holds no write lock, and a bad name in the
/// list adds nobody.
pub fn issue_codes(people: &[NewMember], max_nick_len: usize) -> Result<Vec<Issued>, RosterError> {
    for person in people {
        if crate::protocol::check_nick(&person.name, max_nick_len, &[]).is_err() {
            return Err(RosterError::BadName(person.name.clone()));
        }
    }
    people
        .iter()
        .map(|person| {
            let (code, code_hash) = issue_code()?;
            Ok(Issued {
                person: person.clone(),
                code,
                code_hash,
            })
        })
        .collect()
}

/// Members in the order `roster list` prints them: by name ignoring ASCII case,
/// as SQLite's `NOCASE` sorts, whichever database they came from.
pub fn sort_members(members: &mut [Member]) {
    members.sort_by_cached_key(|m| m.name.to_ascii_lowercase());
}

/// The member a row of `name, role, full_name, code_hash` describes; an unknown
/// role reads as a student, the least privilege.
pub fn member(name: String, role: &str, full_name: Option<String>, code_hash: String) -> Member {
    Member {
        name,
        role: RosterRole::parse(role).unwrap_or(RosterRole::Student),
        full_name,
        code_hash,
    }
}

/// One person to add.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// The username.
    pub name: String,
    /// Student or instructor.
    pub role: RosterRole,
    /// The full name, if known.
    pub full_name: Option<String>,
}

/// Each name with its new code, as the commands print them.
pub fn printable(issued: Vec<Issued>) -> Vec<(String, String)> {
    issued
        .into_iter()
        .map(|i| (i.person.name, i.code))
        .collect()
}

/// Reads a class list: a header row with `name`, optional `role` and `full_name`.
pub fn read_csv(input: impl Read) -> Result<Vec<NewMember>, RosterError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| RosterError::Csv(e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let name_at = column("name").ok_or_else(|| RosterError::Csv("no `name` column".into()))?;
    let (role_at, full_at) = (column("role"), column("full_name"));
    let mut people = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| RosterError::Csv(e.to_string()))?;
        let cell = |at: Option<usize>| at.and_then(|i| record.get(i)).unwrap_or("");
        let role = RosterRole::parse(cell(role_at)).ok_or_else(|| {
            RosterError::Csv(format!(
                "row {}: role must be student or instructor",
                line + 2
            ))
        })?;
        let full_name = Some(cell(full_at).to_owned()).filter(|f| !f.is_empty());
        people.push(NewMember {
            name: cell(Some(name_at)).to_owned(),
            role,
            full_name,
        });
    }
    Ok(people)
}

/// What adding `person` came to, given how many rows it inserted: none when the
/// name was taken.
pub fn added(person: &NewMember, rows: u64) -> Result<(), RosterError> {
    match rows {
        0 => Err(RosterError::Exists(person.name.clone())),
        _ => Ok(()),
    }
}

/// What removing `name` came to, given how many rows it deleted.
pub fn removed(name: &str, rows: u64) -> Result<(), RosterError> {
    match rows {
        0 => Err(RosterError::Missing(name.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RecordRead, RosterEdit};
    use rusqlite::Connection;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        conn
    }

    fn student(name: &str) -> NewMember {
        NewMember {
            name: name.into(),
            role: RosterRole::Student,
            full_name: None,
        }
    }

    #[test]
    fn codes_have_no_look_alikes_and_enough_bits() {
        let code = new_code();
        assert_eq!(code.len(), 14, "{code}");
        assert!(code
            .chars()
            .all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        assert!(!code.contains(['0', 'o', 'O', '1', 'l', 'I', 'i']));
        let bits = (ALPHABET.len() as f64).log2() * CODE_LEN as f64;
        assert!(bits >= 50.0, "{bits}");
        assert_ne!(new_code(), new_code());
    }

    #[test]
    fn add_verify_reissue_remove() {
        let mut conn = db();
        let codes = conn
            .add_members(&[student("amy"), student("bob")], 16, 0)
            .unwrap();
        let roster = Roster::from_members(conn.members().unwrap());
        let amy = roster.get("AMY").unwrap();
        assert!(verify(&codes[0].1, &amy.code_hash));
        assert!(verify(
            &codes[0].1.to_uppercase().replace('-', " "),
            &amy.code_hash
        ));
        assert!(!verify(&codes[1].1, &amy.code_hash));
        assert!(matches!(
            conn.add_members(&[student("Amy")], 16, 0),
            Err(RosterError::Exists(_))
        ));
        let (_, fresh) = conn.reissue_code("amy").unwrap();
        let amy = Roster::from_members(conn.members().unwrap())
            .get("amy")
            .unwrap()
            .clone();
        assert!(verify(&fresh, &amy.code_hash) && !verify(&codes[0].1, &amy.code_hash));
        conn.remove_member("bob").unwrap();
        assert!(matches!(
            conn.remove_member("bob"),
            Err(RosterError::Missing(_))
        ));
        assert_eq!(conn.members().unwrap().len(), 1);
    }

    #[test]
    fn a_class_list_in_csv() {
        let text = "Name,Role,Full_Name\namy,,Amy Pond\nprof,instructor,\n";
        let people = read_csv(text.as_bytes()).unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].full_name.as_deref(), Some("Amy Pond"));
        assert_eq!(people[1].role, RosterRole::Instructor);
        assert!(read_csv("who\namy\n".as_bytes()).is_err());
        assert!(read_csv("name,role\namy,teacher\n".as_bytes()).is_err());
    }
}

/// The roster the server holds, replaced whole when the table changes; `None`
/// until it has been read once.
#[derive(Debug, Default)]
pub struct LiveRoster(std::sync::RwLock<Option<std::sync::Arc<Roster>>>);

impl LiveRoster {
    /// The roster as last read; `None` if it never could be (a cluster node that
    /// started while PostgreSQL was down). Nobody may log in then: an unread
    /// roster is not an empty one, and would let anyone in under any name.
    pub fn current(&self) -> Option<std::sync::Arc<Roster>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a newly read roster in place; returns the names whose codes it
    /// revoked ([`Roster::revoked_by`]), whose connections must end.
    pub fn replace(&self, roster: Roster) -> Vec<String> {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        let revoked = match current.as_deref() {
            Some(old) => old.revoked_by(&roster),
            None => Vec::new(),
        };
        *current = Some(std::sync::Arc::new(roster));
        revoked
    }
}
