//! The instructor page: a login form, sessions kept by cookie, live presence, and
//! the grading report as JSON and CSV (the very bytes of `chat-server report`) plus
//! a timeline of the class's messages for the page's charts.
//!
//! A session is a random 128-bit token in an `HttpOnly`, `SameSite=Strict` cookie
//! scoped to `/instructor`: page scripts cannot read it and other sites cannot make
//! the browser send it. The server keeps only the token's SHA-256 ([`Sessions`]):
//! a single server in memory, so a restart logs everyone out, which is the safe
//! direction; a cluster node in PostgreSQL, so that a login made through one node
//! holds on every node and across restarts, and the load balancer need not keep
//! a browser on one node.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::{Deserialize, Serialize};

use super::listen::Https;
use super::{same_origin, Web, HTML};
use crate::access::Locked;
use crate::class::ClassConfig;
use crate::config::ValidConfig;
use crate::front::Context;
use crate::hub::RoomTools;
use crate::password;
use crate::report::{self, Filter, Format, ReportError};
use crate::roster::{self, RosterRole};
use crate::store::{self, postgres::WebSessions, DbError, RecordRead};

const COOKIE_NAME: &str = "classchat_session";

/// How long a login lasts: a school day.
const SESSION_TTL: Duration = Duration::from_secs(10 * 3600);

const LOGIN_PAGE: &str = include_str!("static/login.html");
const DASHBOARD: &str = include_str!("static/instructor.html");

/// The login page's error paragraph, filled in by [`login_page`].
const ERROR_SLOT: &str = r#"<p class="error" id="error" hidden></p>"#;

/// Logged-in instructors, by the SHA-256 of their session token: a single
/// server's in memory, a cluster's in PostgreSQL.
pub(super) enum Sessions {
    /// One server's: a restart logs everyone out, which is the safe direction.
    Memory(Mutex<HashMap<String, Session>>),
    /// A cluster's: valid on every node and across restarts.
    Shared(WebSessions),
}

pub(super) struct Session {
    name: String,
    expires: Instant,
}

/// The sessions could not be read or written (PostgreSQL did not answer).
pub(super) struct Unavailable;

impl Sessions {
    /// In PostgreSQL for a cluster node, in memory otherwise.
    pub(super) fn for_config(config: &ValidConfig) -> Sessions {
        match config.is_cluster() {
            true => Sessions::Shared(WebSessions::new(&config.storage.postgres_url)),
            false => Sessions::Memory(Mutex::default()),
        }
    }

    /// A new session for `name`: its token, for the cookie.
    async fn create(&self, name: String) -> Result<String, Unavailable> {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let token = hex(&bytes);
        let hash = token_hash(&token);
        match self {
            Sessions::Memory(map) => {
                let now = Instant::now();
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                map.retain(|_, session| session.expires > now);
                let expires = now + SESSION_TTL;
                map.insert(hash, Session { name, expires });
            }
            Sessions::Shared(shared) => {
                let now = now_ms();
                let expires = now + SESSION_TTL.as_millis() as i64;
                shared
                    .insert(&hash, &name, now, expires)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(token)
    }

    /// The instructor whose live session the request's cookie names.
    async fn find(&self, headers: &HeaderMap) -> Result<Option<String>, Unavailable> {
        let Some(token) = cookie(headers, COOKIE_NAME) else {
            return Ok(None);
        };
        let hash = token_hash(token);
        match self {
            Sessions::Memory(map) => {
                let map = map.lock().unwrap_or_else(|e| e.into_inner());
                let live = map.get(&hash).filter(|s| s.expires > Instant::now());
                Ok(live.map(|session| session.name.clone()))
            }
            Sessions::Shared(shared) => shared.find(&hash, now_ms()).await.map_err(unavailable),
        }
    }

    async fn remove(&self, headers: &HeaderMap) -> Result<(), Unavailable> {
        let Some(token) = cookie(headers, COOKIE_NAME) else {
            return Ok(());
        };
        let hash = token_hash(token);
        match self {
            Sessions::Memory(map) => {
                map.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash);
                Ok(())
            }
            Sessions::Shared(shared) => shared.remove(&hash).await.map_err(unavailable),
        }
    }
}

fn unavailable(err: DbError) -> Unavailable {
    tracing::warn!(%err, "instructor page: the sessions in PostgreSQL cannot be reached");
    Unavailable
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        let body = "Logins cannot be checked right now; try again shortly.\n";
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// What is stored of a token: its SHA-256, so that whoever reads the table
/// cannot sign in with it. The token is 128 random bits, so no salt is needed.
fn token_hash(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wall-clock milliseconds: a shared session ends at the same time on every node.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A request from a logged-in instructor; any other gets 401.
pub(super) struct Instructor;

impl FromRequestParts<Arc<Web>> for Instructor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        match web.sessions.find(&parts.headers).await {
            Ok(Some(_)) => Ok(Instructor),
            Ok(None) => Err(unauthorized()),
            Err(unavailable) => Err(unavailable.into_response()),
        }
    }
}

fn unauthorized() -> Response {
    let body = "Not logged in: open /instructor to log in.\n";
    (StatusCode::UNAUTHORIZED, body).into_response()
}

/// Who may open the instructor page: an instructor on the class roster with
/// their personal code, or, without a roster, a name in `access.instructors` with
/// the instructors' password. The hash check costs real CPU on purpose, so it
/// runs on the blocking pool.
async fn authenticate(
    cx: &Context,
    ip: IpAddr,
    name: &str,
    password: String,
) -> Result<Option<String>, Locked> {
    let Some(roster) = cx.roster.current() else {
        return Ok(None);
    };
    // An unknown name is checked against nothing, but counted like any other.
    let (listed, hash, personal) = if !roster.is_empty() {
        match roster
            .get(name.trim())
            .filter(|m| matches!(m.role, RosterRole::Instructor | RosterRole::Assistant))
        {
            Some(member) => (Some(member.name.clone()), member.code_hash.clone(), true),
            None => (None, String::new(), true),
        }
    } else {
        let access = &cx.config.access;
        let listed = access
            .instructors
            .iter()
            .find(|listed| listed.eq_ignore_ascii_case(name.trim()))
            .filter(|_| !access.instructor_password.is_empty())
            .cloned();
        (listed, access.instructor_password.clone(), false)
    };
    let known = listed.is_some();
    let verified = cx
        .codes
        .check(Some(ip), name, "wrong instructor password", move || {
            known
                && match personal {
                    true => roster::verify(&password, &hash),
                    false => password::verify(&password, &hash),
                }
        })
        .await?;
    Ok(listed.filter(|_| verified))
}

/// `GET /instructor`: the page for a logged-in instructor, else the login form.
pub(super) async fn page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    match web.sessions.find(&headers).await {
        Ok(Some(_)) => ([(CONTENT_TYPE, HTML)], DASHBOARD).into_response(),
        Ok(None) => login_page(StatusCode::OK, None),
        Err(unavailable) => unavailable.into_response(),
    }
}

/// The login form, with a fixed message where one is due (never request text).
fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let page = match error {
        Some(error) => LOGIN_PAGE.replace(
            ERROR_SLOT,
            &format!(r#"<p class="error" id="error">{error}</p>"#),
        ),
        None => LOGIN_PAGE.to_owned(),
    };
    (status, [(CONTENT_TYPE, HTML)], page).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
}

/// `POST /instructor/login`. Wrong passwords count against the address in the same
/// [`CodeGuard`](crate::access::CodeGuard) as codes on the chat ports, so the web
/// form is no faster a way to guess.
pub(super) async fn login(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(https): Extension<Https>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "Log in from the instructor page.\n").into_response();
    }
    let name = match authenticate(&web.cx, peer.ip(), &form.name, form.password).await {
        Ok(Some(name)) => name,
        Ok(None) => return login_page(StatusCode::UNAUTHORIZED, Some("Wrong name or password.")),
        Err(locked) => {
            let wait = locked.retry_secs;
            let text =
                format!("Too many wrong passwords from your address; try again in {wait} s.");
            return login_page(StatusCode::TOO_MANY_REQUESTS, Some(&text));
        }
    };
    tracing::info!(%peer, instructor = %name, "instructor logged in on the web page");
    let token = match web.sessions.create(name).await {
        Ok(token) => token,
        Err(unavailable) => return unavailable.into_response(),
    };
    let cookie = format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/instructor; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        secure(https)
    );
    (
        StatusCode::SEE_OTHER,
        [(SET_COOKIE, cookie), (LOCATION, "/instructor".to_owned())],
    )
        .into_response()
}

/// Over HTTPS the cookie is `Secure`: the browser never sends it over plain HTTP,
/// where anyone on the network could read it.
fn secure(https: Https) -> &'static str {
    match https.0 {
        true => "; Secure",
        false => "",
    }
}

/// `POST /instructor/logout`.
pub(super) async fn logout(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Extension(https): Extension<Https>,
    headers: HeaderMap,
) -> Response {
    if let Err(unavailable) = web.sessions.remove(&headers).await {
        return unavailable.into_response();
    }
    let cookie = format!(
        "{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/instructor; Max-Age=0{}",
        secure(https)
    );
    (
        StatusCode::SEE_OTHER,
        [(SET_COOKIE, cookie), (LOCATION, "/instructor".to_owned())],
    )
        .into_response()
}

/// Any other path under `/instructor/`: 401 without a session, 404 with one.
pub(super) async fn unknown(_: Instructor) -> StatusCode {
    StatusCode::NOT_FOUND
}

#[derive(Serialize)]
pub(super) struct Live {
    rooms: Vec<LiveRoom>,
}

#[derive(Serialize)]
struct LiveRoom {
    room: String,
    members: Vec<LiveMember>,
    /// The room's session, hands, poll and questions, if it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<RoomTools>,
}

#[derive(Serialize)]
struct LiveMember {
    nick: String,
    instructor: bool,
}

/// `GET /instructor/api/live`: every room and who is in it now.
pub(super) async fn live(_: Instructor, State(web): State<Arc<Web>>) -> Json<Live> {
    let mut tools: HashMap<String, RoomTools> = web
        .cx
        .board
        .room_tools()
        .into_iter()
        .map(|t| (t.room.clone(), t))
        .collect();
    let rooms = web
        .cx
        .board
        .rooms_snapshot()
        .into_iter()
        .map(|(room, members)| LiveRoom {
            tools: tools.remove(&*room),
            room: room.to_string(),
            members: members
                .into_iter()
                .map(|(nick, instructor)| LiveMember {
                    nick: nick.to_string(),
                    instructor,
                })
                .collect(),
        })
        .collect();
    Json(Live { rooms })
}

/// The report's filters as query parameters, named as the CLI's flags. Empty
/// values (an empty form field) mean no filter.
#[derive(Deserialize, Default)]
pub(super) struct Params {
    since: Option<String>,
    until: Option<String>,
    room: Option<String>,
    user: Option<String>,
}

impl Params {
    fn filter(self) -> Result<Filter, ReportError> {
        let given = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let time = |value: Option<String>| given(value).map(|v| report::parse_time(&v)).transpose();
        Ok(Filter {
            since: time(self.since)?,
            until: time(self.until)?,
            room: given(self.room),
            user: given(self.user),
        })
    }
}

/// `GET /instructor/report.csv`.
pub(super) async fn report_csv(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Query(params): Query<Params>,
) -> Response {
    let csv = "text/csv; charset=utf-8";
    report(
        &web,
        params,
        csv,
        "report.csv",
        |records, filter, _, out| report::write_report(records, filter, Format::Csv, out),
    )
    .await
}

/// `GET /instructor/attendance.csv`: the gradebook, as `chat-server report
/// --format gradebook` prints it.
pub(super) async fn gradebook_csv(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Query(params): Query<Params>,
) -> Response {
    let csv = "text/csv; charset=utf-8";
    report(
        &web,
        params,
        csv,
        "attendance.csv",
        |records, filter, class, out| report::write_gradebook(records, filter, class, out),
    )
    .await
}

/// `GET /instructor/api/attendance`: students × sessions, for the grid.
pub(super) async fn attendance(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Query(params): Query<Params>,
) -> Response {
    let json = "application/json; charset=utf-8";
    report(
        &web,
        params,
        json,
        "attendance.json",
        |records, filter, class, out| {
            let grid = report::attendance_grid(records, filter, class)?;
            Ok(serde_json::to_writer(out, &grid)?)
        },
    )
    .await
}

/// `GET /instructor/report.json`.
pub(super) async fn report_json(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Query(params): Query<Params>,
) -> Response {
    let json = "application/json; charset=utf-8";
    report(
        &web,
        params,
        json,
        "report.json",
        |records, filter, _, out| report::write_report(records, filter, Format::Json, out),
    )
    .await
}

/// What [`report`] prints: a report of the record for the filter, in the
/// class's time zone and timetable where it takes attendance.
type Writer = fn(&dyn RecordRead, &Filter, &ClassConfig, &mut Vec<u8>) -> Result<(), ReportError>;

/// The report as `chat-server report --format FORMAT` prints it, read from the
/// record (a cluster's PostgreSQL, else the database) on the blocking pool on a
/// connection of its own, as the CLI does.
async fn report(
    web: &Web,
    params: Params,
    content_type: &'static str,
    file_name: &str,
    write: Writer,
) -> Response {
    let filter = match params.filter() {
        Ok(filter) => filter,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let config = web.cx.config.clone();
    let made = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let records = store::open_record(&config)?;
        let mut out = Vec::new();
        write(&*records, &filter, &config.class, &mut out)?;
        Ok(out)
    })
    .await;
    match made {
        Ok(Ok(bytes)) => {
            let disposition = format!("attachment; filename=\"{file_name}\"");
            let headers = [
                (CONTENT_TYPE, content_type.to_owned()),
                (CONTENT_DISPOSITION, disposition),
            ];
            (headers, bytes).into_response()
        }
        Ok(Err(err)) => server_error(&err.to_string()),
        Err(err) => server_error(&err.to_string()),
    }
}

fn server_error(err: &str) -> Response {
    tracing::error!(err, "instructor page: report failed");
    let body = "The report could not be read; see the server's log.\n";
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// `GET /instructor/api/timeline`: chat lines per minute, hour or day, for the
/// range and room of the report (the whole class, so `user` is ignored).
pub(super) async fn timeline(
    _: Instructor,
    State(web): State<Arc<Web>>,
    Query(params): Query<Params>,
) -> Response {
    let filter = match params.filter() {
        Ok(filter) => filter,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let config = web.cx.config.clone();
    let made = tokio::task::spawn_blocking(move || -> anyhow::Result<report::Timeline> {
        let records = store::open_record(&config)?;
        Ok(report::timeline(&*records, &filter)?)
    })
    .await;
    match made {
        Ok(Ok(timeline)) => Json(timeline).into_response(),
        Ok(Err(err)) => server_error(&err.to_string()),
        Err(err) => server_error(&err.to_string()),
    }
}
