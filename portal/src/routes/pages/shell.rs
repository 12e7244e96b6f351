//! The owner shell: `GET /projects/{name}/shell` (the terminal page) and
//! `GET /projects/{name}/shell/ws` (its WebSocket), for users who may `Action::OpenShell` (the
//! project's owners and admins). The socket opens a shell inside a running instance of the app
//! (`LocalRuntime::shell_target`, `orchestrator::terminal::shell`; in the cluster shape
//! `NomadRuntime::open_shell`, a remote terminal through the cluster's exec API), relayed by the
//! same `session::relay` as console programs. xterm.js is served at `/static/terminal/` from
//! `[terminal] assets_dir`.
//!
//! Each opening and closing goes to the audit log (`shell.open`, `shell.close`: who, when, from
//! where, which app and revision, and on close how long and how it ended); keystrokes and output
//! are never recorded.
//!
//! It deliberately does not offer shells in console programs (their instances belong to visitors)
//! or in stopped apps (open the app to wake it first).

use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt as _;
use orchestrator::runtime::nomad::ShellError;
use orchestrator::terminal::{page, session, size_from_query, ws, Session};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::domain::permissions::Action;
use crate::error::AppError;
use crate::projects;
use crate::state::AppState;
use crate::web::Viewer;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{name}/shell", web::get().to(shell_page))
        .route("/projects/{name}/shell/ws", web::get().to(shell_socket))
        .route("/static/terminal/{file}", web::get().to(asset));
}

/// The page's CSP: xterm.js sets inline styles on the elements it draws.
const SHELL_CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn shell_page(state: web::Data<AppState>, viewer: Viewer, name: web::Path<String>) -> Result<HttpResponse, AppError> {
    let user = viewer.user.ok_or(AppError::Unauthorized)?;
    let project = projects::get(&state, &user, &name, Action::OpenShell).await?;
    let html = page::page_html(&format!("shell: {}", project.name), "/static/terminal/", &format!("/projects/{}/shell/ws", project.name));
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, SHELL_CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

async fn asset(state: web::Data<AppState>, file: web::Path<String>) -> Result<HttpResponse, AppError> {
    if file.as_str() == "terminal.js" {
        return Ok(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(page::SCRIPT));
    }
    let (relative, content_type) = page::asset(&file).ok_or(AppError::NotFound("file"))?;
    let path = state.config.terminal.assets_dir.join(relative);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            Ok(HttpResponse::Ok().content_type(content_type).insert_header((header::CACHE_CONTROL, "public, max-age=3600")).body(bytes))
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "a terminal asset is missing; run `npm ci` in web/terminal");
            Err(AppError::Unavailable("the web terminal's files are not installed on this server".to_owned()))
        }
    }
}

/// Whether the browser's `Origin` is this portal's own (the session cookie would go with a
/// WebSocket opened by any page).
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let host = req.connection_info().host().to_owned();
    origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).is_some_and(|o| o.eq_ignore_ascii_case(&host))
}

async fn shell_socket(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    name: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let user = viewer.user.ok_or(AppError::Unauthorized)?;
    let project = projects::get(&state, &user, &name, Action::OpenShell).await?;
    let headers = req.headers();
    let is_websocket = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (true, Some(key)) = (is_websocket, key) else {
        return Err(AppError::BadRequest("the shell is a WebSocket: open it from the project's shell page".to_owned()));
    };
    if !same_origin(&req) {
        return Err(AppError::Forbidden);
    }
    if state.runtime.terminal_program(&project.name).is_some() {
        return Err(AppError::Conflict {
            code: "shell_not_available",
            message: "a console program has no running instance of its own: each visitor gets one in the web terminal".to_owned(),
        });
    }
    let size = size_from_query(req.uri().query());
    let not_running = || AppError::Conflict {
        code: "app_not_running",
        message: format!("{} is not running; open the app to wake it, then open the shell again", project.name),
    };
    let (session, details) = match &state.cluster {
        // The cluster shape: a shell in a running instance through the cluster's exec API.
        Some(cluster) => {
            let shell = cluster.runtime.open_shell(&project.name, size).await.map_err(|error| match error {
                ShellError::NotRunning { .. } => not_running(),
                other => {
                    tracing::warn!(project = %project.name, error = %other, "the cluster could not open a shell");
                    AppError::Unavailable("the cluster could not open a shell; try again in a moment".to_owned())
                }
            })?;
            (Session::remote(shell.remote), serde_json::json!({ "revision": shell.revision, "instance": shell.instance }))
        }
        None => {
            let target = state.runtime.shell_target(&project.name).await.map_err(|_| not_running())?;
            let session = Session::shell(&target, size)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot start a shell in {}: {e}", project.name)))?;
            (session, serde_json::json!({ "revision": target.revision }))
        }
    };
    let event = crate::audit::Event::new(crate::domain::audit::actions::SHELL_OPEN)
        .target(crate::domain::audit::Target::project(&project.name))
        .details(details.clone());
    crate::audit::record(&state.db, event).await;

    // The relay wants one byte stream; actix gives the request payload and a streamed response.
    // A duplex pipe joins them: the payload is written into one end (on this worker, as actix's
    // payload stays on its thread), the response streams what the relay writes.
    let (ours, relays) = tokio::io::duplex(64 * 1024);
    let (from_relay, mut to_relay) = tokio::io::split(ours);
    actix_web::rt::spawn(async move {
        while let Some(Ok(chunk)) = payload.next().await {
            if to_relay.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_relay.shutdown().await;
    });
    let stopping = state.stopping.clone();
    let time_limit = state.config.terminal.time_limit;
    let (project_name, db) = (project.name.clone(), state.db.clone());
    // The close is recorded outside the request, so the actor is named explicitly.
    let actor = crate::audit::Actor::user(&user);
    tokio::spawn(async move {
        let opened = Instant::now();
        let ending = session::relay(relays, session, time_limit, stopping).await;
        let mut details = details;
        details["seconds"] = opened.elapsed().as_secs().into();
        details["ending"] = format!("{ending:?}").into();
        let event = crate::audit::Event::new(crate::domain::audit::actions::SHELL_CLOSE)
            .target(crate::domain::audit::Target::project(&project_name))
            .details(details)
            .by(actor);
        crate::audit::record(&db, event).await;
    });
    let body = futures_util::stream::unfold(from_relay, |mut from_relay| async move {
        let mut buf = vec![0u8; 16 * 1024];
        match from_relay.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), from_relay))
            }
        }
    });
    Ok(HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, ws::accept_key(&key)))
        .streaming(body))
}
