//! The portal's half of app access: `/access` (where the gateway sends a visitor who needs to
//! sign in) and `/internal/authz` (Traefik's forwardAuth in the cluster shape). Both apply
//! `orchestrator::gateway::access::decide`, so portal, gateway and Traefik agree.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::access::{self, Handoff};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{see_other, PageCtx, PageResult, Viewer};
use orchestrator::gateway::access::{find_cookie, percent_encode, AccessRequest, Answer, ACCESS_COOKIE};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/access", web::get().to(access_page)).route("/internal/authz", web::get().to(forward_auth));
}

#[derive(Deserialize)]
struct AccessQuery {
    app: String,
    #[serde(default)]
    next: String,
    /// The custom domain the visitor came from (the gateway adds it); empty on the apps domain.
    #[serde(default)]
    host: String,
}

async fn access_page(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<AccessQuery>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let (Some(user), Some(session)) = (viewer.user.as_ref(), viewer.session_token.as_deref()) else {
        let mut back = format!("/access?app={}&next={}", percent_encode(&query.app), percent_encode(&query.next));
        if !query.host.is_empty() {
            back.push_str(&format!("&host={}", percent_encode(&query.host)));
        }
        return Ok(see_other(&format!("/login?next={}", percent_encode(&back))));
    };
    match access::handoff(&state, user, session, &query.app, &query.next, Some(query.host.as_str()).filter(|h| !h.is_empty()))
        .await
        .map_err(|e| ctx.error_page(e))?
    {
        Handoff::Redirect(location) => Ok(see_other(&location)),
        Handoff::Denied => Err(ctx.error_page(AppError::Forbidden)),
    }
}

/// Traefik forwardAuth: the original request's host, path and cookies arrive as headers
/// (`X-Forwarded-Host`, `X-Forwarded-Uri`, `X-Forwarded-Method`, `Cookie`, `Upgrade`). A 2xx
/// lets the request through with `X-Auth-User` and the request's `Cookie` and `Authorization`
/// rewritten without platform credentials (list all three in `authResponseHeaders`, so Traefik
/// replaces the originals); any other answer goes back to the visitor as it is.
async fn forward_auth(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let host = header("X-Forwarded-Host");
    let app = match orchestrator::gateway::app_for_host(host, &state.config.apps_domain) {
        orchestrator::gateway::HostMatch::App(app) => app,
        _ => return HttpResponse::NotFound().body("no such app"),
    };
    let uri = match header("X-Forwarded-Uri") {
        "" => "/",
        uri => uri,
    };
    let method = header("X-Forwarded-Method");
    let upgrade = !header("Upgrade").is_empty();
    let cookies: Vec<&[u8]> = req.headers().get_all("Cookie").map(|v| v.as_bytes()).collect();
    let cookie = find_cookie(cookies.iter().copied(), ACCESS_COOKIE);
    let navigation = matches!(method, "" | "GET" | "HEAD") && !upgrade;
    let answer = state
        .access
        .check(&AccessRequest { app: &app, path_and_query: uri, cookie, navigation }, orchestrator::gateway::access::feed::now_unix());
    match answer {
        Answer::Pass { user_id } => {
            let kept: Vec<String> = cookies
                .iter()
                .filter_map(|v| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !pair.starts_with(orchestrator::gateway::headers::PORTAL_COOKIE_PREFIX))
                .map(str::to_owned)
                .collect();
            let mut response = HttpResponse::Ok();
            response.insert_header(("X-Auth-User", user_id.map(|id| id.to_string()).unwrap_or_default()));
            response.insert_header(("Cookie", kept.join("; ")));
            let authorization = header("Authorization");
            let is_api_token = authorization.get(..11).is_some_and(|s| s.eq_ignore_ascii_case("bearer slw_"));
            response.insert_header(("Authorization", if is_api_token { "" } else { authorization }));
            response.finish()
        }
        Answer::Login { location } => HttpResponse::Found().insert_header(("Location", location)).finish(),
        Answer::LoginRequired { location } => HttpResponse::Unauthorized().body(format!("sign in at {location}")),
        Answer::Denied => HttpResponse::Forbidden().body("this app is not shared with you"),
        Answer::Unknown => HttpResponse::NotFound().body("no such app"),
        Answer::Unavailable => HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "5")).body("access check unavailable"),
        Answer::Enter { set_cookie, location } => {
            HttpResponse::SeeOther().insert_header(("Location", location)).insert_header(("Set-Cookie", set_cookie)).finish()
        }
        Answer::BadHandoff(reason) => HttpResponse::BadRequest().body(reason),
    }
}
