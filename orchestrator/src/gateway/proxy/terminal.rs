//! The gateway's side of the web terminal, for hosts whose app is a console program
//! (`Resolver::terminal` answers): the page on every path, xterm.js from the assets directory under
//! `/.slipway/terminal/`, and the WebSocket at `/.slipway/terminal/ws`, whose upgraded connection
//! becomes one session (`terminal::session::relay`). The access check has already run.
//!
//! It deliberately does not start anything before a WebSocket arrives: a page view costs nothing.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tracing::{debug, info, warn};

use super::{page_response, Gateway, ProxyBody, Tasks};
use crate::gateway::pages::{self, Page};
use crate::gateway::upstream::{Connector, Resolver};
use crate::terminal::{page, session, size_from_query, ws, Program};

/// Answers one request for a console app's host.
pub(super) async fn serve<R: Resolver, C: Connector>(
    gateway: &Arc<Gateway<R, C>>,
    request: Request<Incoming>,
    program: Arc<Program>,
    host: &HeaderValue,
    tasks: &Tasks,
) -> Response<ProxyBody> {
    let path = request.uri().path().to_owned();
    if path == page::SOCKET_PATH {
        return upgrade(request, program, host, tasks);
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return page_response(Page {
            status: 405,
            retry_after_secs: None,
            html: pages::bad_request("A console program answers only GET requests.").html,
        });
    }
    if path == page::SCRIPT_PATH {
        return file_response(Bytes::from_static(page::SCRIPT.as_bytes()), "text/javascript; charset=utf-8");
    }
    if let Some(name) = path.strip_prefix(page::PREFIX) {
        let Some((relative, content_type)) = page::asset(name) else {
            return page_response(pages::unknown_path(program.app()));
        };
        let Some(dir) = gateway.config.terminal_assets.as_ref() else {
            return page_response(pages::terminal_assets_missing(program.app()));
        };
        return match tokio::fs::read(dir.join(relative)).await {
            Ok(bytes) => file_response(Bytes::from(bytes), content_type),
            Err(error) => {
                warn!(dir = %dir.display(), file = relative, %error, "a terminal asset is missing; run `npm ci` in web/terminal");
                page_response(pages::terminal_assets_missing(program.app()))
            }
        };
    }
    let mut response = page_response(Page { status: 200, retry_after_secs: None, html: page::html(program.app()) });
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(page::CSP));
    response
}

fn file_response(bytes: Bytes, content_type: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Whether `origin` (a browser's `Origin` header) names `host`. Another app on the apps domain is
/// the same site, so the access cookie would go with its WebSocket; only the app's own pages may
/// open its terminal. Clients that send no `Origin` are not browsers acting for someone else.
fn same_origin(origin: Option<&HeaderValue>, host: &HeaderValue) -> bool {
    let Some(origin) = origin.and_then(|o| o.to_str().ok()) else { return true };
    let Some(origin_host) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else { return false };
    host.to_str().is_ok_and(|host| origin_host.eq_ignore_ascii_case(host))
}

fn upgrade(mut request: Request<Incoming>, program: Arc<Program>, host: &HeaderValue, tasks: &Tasks) -> Response<ProxyBody> {
    let headers = request.headers();
    let is_websocket = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (true, true, Some(key)) = (request.method() == Method::GET && is_websocket, version_ok, key) else {
        return page_response(pages::bad_request("This address is the terminal's WebSocket (version 13)."));
    };
    if !same_origin(headers.get(header::ORIGIN), host) {
        return page_response(Page {
            status: 403,
            retry_after_secs: None,
            html: pages::bad_request("Only this app's own page may open its terminal.").html,
        });
    }
    let size = size_from_query(request.uri().query());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let tasks = tasks.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return debug!(%error, "a terminal upgrade did not complete"),
        };
        let mut io = TokioIo::new(upgraded);
        let session = match program.start(size).await {
            Ok(session) => session,
            Err(error) => {
                warn!(app = program.app(), %error, "a terminal session did not start");
                let reason = match &error {
                    crate::terminal::TerminalError::TooManySessions { .. } => {
                        "Too many people are using this program right now; try again in a minute.".to_owned()
                    }
                    _ => "The program could not be started; its owner can see why in the logs.".to_owned(),
                };
                session::refuse(&mut io, &session::error_message(&reason)).await;
                return;
            }
        };
        info!(app = program.app(), revision = program.revision(), "terminal session started");
        let ending = session::relay(io, session, program.limits().time_limit, tasks.shutdown.clone()).await;
        info!(app = program.app(), ?ending, "terminal session ended");
        drop(tasks);
    });
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&ws::accept_key(&key)).expect("base64 is a valid header value"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apps_own_origin_may_open_its_terminal() {
        let host = HeaderValue::from_static("quiz.apps.example");
        let check = |origin: Option<&str>, expected: bool| {
            let origin = origin.map(|o| HeaderValue::from_str(o).expect("header"));
            assert_eq!(same_origin(origin.as_ref(), &host), expected, "{origin:?}");
        };
        check(Some("https://quiz.apps.example"), true);
        check(Some("http://QUIZ.apps.example"), true);
        check(Some("https://evil.apps.example"), false);
        check(Some("https://quiz.apps.example.evil.test"), false);
        check(Some("null"), false);
        check(None, true);
    }
}
