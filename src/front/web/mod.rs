//! The web front end (SPEC section 8): one HTTP listener serving the chat page, its
//! WebSocket (`ws`) and the instructor page (`instructor`); its accept loop, with
//! the limits per address, the timeouts and TLS, is `listen`.
//!
//! The pages are plain HTML, CSS and JavaScript compiled into the binary, so the
//! server needs no files beside it and no build step, and the browser loads nothing
//! from another host. The Content-Security-Policy allows scripts and styles from
//! this origin only: no inline script can run, so text that slipped into the page
//! as markup still could not execute (the pages insert user text as text anyway).

mod instructor;
mod listen;
mod ws;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::Context;

/// Same origin only, no inline script or style, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What every request handler shares.
pub(crate) struct Web {
    cx: Context,
    /// Connection ids, shared with the line port's accept loop so they stay unique.
    ids: Arc<AtomicI64>,
    /// The server's connections; WebSocket clients join it so shutdown waits for them.
    tracker: TaskTracker,
    sessions: instructor::Sessions,
    /// Host names requests may be addressed to; see [`known_host`].
    hosts: Vec<String>,
}

impl Web {
    /// `names`: the TLS certificate's, which are this server's too.
    pub(crate) fn new(
        cx: Context,
        ids: Arc<AtomicI64>,
        tracker: TaskTracker,
        names: Vec<String>,
    ) -> Web {
        let mut hosts = cx.config.web.hosts.clone();
        hosts.extend(names);
        hosts.push("localhost".to_owned());
        if let Ok(name) = nix::unistd::gethostname() {
            hosts.extend(name.into_string());
        }
        let sessions = instructor::Sessions::for_config(&cx.config);
        Web {
            cx,
            ids,
            tracker,
            sessions,
            hosts,
        }
    }
}

/// What a web port serves.
pub(crate) enum Mode {
    /// The pages over plain HTTP.
    Http,
    /// The pages over HTTPS (and `wss://`).
    Https(tokio_rustls::TlsAcceptor),
    /// Under `tls.require`: every request is sent to the same path on HTTPS.
    Redirect {
        /// The HTTPS port.
        port: u16,
    },
}

/// Serves `listener` in `mode` until the server's shutdown token is cancelled.
pub(crate) async fn serve(listener: TcpListener, web: Arc<Web>, mode: Mode) {
    let app = match mode {
        Mode::Redirect { port } => redirect(port),
        _ => router(web.clone()),
    };
    listen::serve(listener, web, app, mode).await;
}

/// A router that answers every request with a permanent redirect to HTTPS on
/// `port`, keeping the host name, path and query (308 keeps the method too).
fn redirect(port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| async move {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let Some(name) = host_name(host) else {
            return (
                StatusCode::BAD_REQUEST,
                "This server is served over HTTPS.\n",
            )
                .into_response();
        };
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let location = match port {
            443 => format!("https://{name}{path}"),
            _ => format!("https://{name}:{port}{path}"),
        };
        (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response()
    })
}

/// The name part of a `Host` header (`name`, `name:port`, `[v6]:port`), if it is
/// one a URL can carry.
fn host_name(host: &str) -> Option<&str> {
    let name = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.split(':').next()?,
    };
    let fine = |c: char| c.is_ascii_alphanumeric() || ".-[]:".contains(c);
    (!name.is_empty() && name.chars().all(fine)).then_some(name)
}

fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(|| asset(HTML, include_str!("static/chat.html"))))
        .route(
            "/chat.js",
            get(|| asset(JS, include_str!("static/chat.js"))),
        )
        .route(
            "/style.css",
            get(|| asset(CSS, include_str!("static/style.css"))),
        )
        .route(
            "/instructor.js",
            get(|| asset(JS, include_str!("static/instructor.js"))),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/ws", get(ws::upgrade))
        .route("/instructor", get(instructor::page))
        .route("/instructor/login", post(instructor::login))
        .route("/instructor/logout", post(instructor::logout))
        .route("/instructor/api/live", get(instructor::live))
        .route("/instructor/api/timeline", get(instructor::timeline))
        .route("/instructor/report.csv", get(instructor::report_csv))
        .route("/instructor/report.json", get(instructor::report_json))
        .route("/instructor/attendance.csv", get(instructor::gradebook_csv))
        .route("/instructor/api/attendance", get(instructor::attendance))
        .route("/instructor/", any(instructor::unknown))
        .route("/instructor/{*rest}", any(instructor::unknown))
        .layer(axum::middleware::map_response(secure))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            only_known_hosts,
        ))
        .with_state(web)
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type)], body).into_response()
}

/// Headers on every response. Nothing is cached: the pages are small, and the
/// instructor's answers hold student data that must not outlive the session.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers post forms with `Origin: null`, which
    // the login's origin check must refuse.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Refuses a request addressed to a host name the server does not serve. A page
/// on `evil.example` whose name the attacker later points at this server (DNS
/// rebinding) would otherwise be same-origin with it, and its script could open
/// the WebSocket or read the instructor page from a student's browser.
async fn only_known_hosts(
    State(web): State<Arc<Web>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if known_host(host, &web.hosts) {
        return next.run(request).await;
    }
    let body =
        "This server is not served under that name; an administrator can add it to web.hosts.\n";
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

/// Whether `host` (a `Host` header: a name or address, perhaps with a port) is
/// one the server serves: any IP address (no DNS, nothing to rebind), or a name
/// in `names`.
fn known_host(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = name.trim_end_matches('.');
    !name.is_empty() && names.iter().any(|known| known.eq_ignore_ascii_case(name))
}

/// Whether the request's `Origin` is this server as the browser addressed it
/// (`Host`). Browsers always send `Origin` on WebSocket handshakes and form posts
/// from another site, so a missing or foreign one is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (Some(origin), Some(host)) = (text(ORIGIN), text(HOST)) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_addresses_and_known_names_are_served() {
        let names = ["localhost".to_owned(), "chat.school.example".to_owned()];
        for host in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "Chat.School.Example",
            "chat.school.example.:443",
        ] {
            assert!(known_host(host, &names), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "",
            ":8080",
            "[evil]:80",
        ] {
            assert!(!known_host(host, &names), "{host}");
        }
    }

    #[test]
    fn only_the_pages_own_origin_is_accepted() {
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(same_origin(&headers(
            Some("https://Chat.School.example"),
            "chat.school.example"
        )));
        assert!(!same_origin(&headers(
            Some("http://evil.example"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(
            Some("http://127.0.0.1:8081"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8080")));
        assert!(!same_origin(&headers(None, "127.0.0.1:8080")));
    }

    #[test]
    fn redirects_keep_the_host_name_only() {
        assert_eq!(host_name("chat.example:8080"), Some("chat.example"));
        assert_eq!(host_name("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("evil/x"), None);
        assert_eq!(host_name(""), None);
    }
}
