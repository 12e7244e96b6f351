//! The access check as the proxy applies it to a hyper request: read the facts `Gate::check`
//! needs, and turn a refusal into a page (with `Location` / `Set-Cookie` where the answer has one).
//!
//! On the path that lets a request through it removes platform credentials the proxy does not
//! already remove: an `Authorization` header carrying a portal API token (`Bearer slw_...`).
//! `slipway_*` cookies, the gateway's own included, are stripped by `headers::strip_portal_cookies`
//! as the request is forwarded. It reads the clock (once per request) and does no other I/O.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request};

use super::{find_cookie, AccessRequest, Answer, Gate, ACCESS_COOKIE};
use crate::gateway::headers;
use crate::gateway::pages::{self, Page};

/// A refused request: the page, and the headers that go with it.
pub struct Refusal {
    pub page: Page,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
}

/// Lets `request` through (credentials stripped) or says how to refuse it.
///
/// `custom_host` is the custom domain the request arrived on (`None` on `NAME.<apps domain>`): the
/// portal link then carries `&host=DOMAIN`, so the portal hands the visitor back to that domain
/// (after checking it belongs to the app) and the cookie is set on the host the visitor uses.
pub fn admit<B>(gate: &Gate, request: &mut Request<B>, app: &str, apps_domain: &str, custom_host: Option<&str>) -> Result<(), Refusal> {
    let navigation = matches!(*request.method(), Method::GET | Method::HEAD) && !headers::is_upgrade_request(request.headers());
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let cookie = find_cookie(request.headers().get_all(header::COOKIE).iter().map(HeaderValue::as_bytes), ACCESS_COOKIE);
    let answer = gate.check(&AccessRequest { app, path_and_query, cookie, navigation }, super::feed::now_unix());
    let refusal = |page: Page| Refusal { page, location: None, set_cookie: None };
    let with_host = |location: String| match custom_host {
        Some(host) if location.starts_with(&gate.config().portal_url) => {
            format!("{location}&host={}", super::percent_encode(host))
        }
        _ => location,
    };
    let answer = match answer {
        Answer::Login { location } => Answer::Login { location: with_host(location) },
        Answer::LoginRequired { location } => Answer::LoginRequired { location: with_host(location) },
        other => other,
    };
    match answer {
        Answer::Pass { .. } => {
            strip_api_tokens(request.headers_mut());
            Ok(())
        }
        Answer::Login { location } => {
            Err(Refusal { page: pages::login_required(app, &location, true), location: Some(location), set_cookie: None })
        }
        Answer::LoginRequired { location } => Err(refusal(pages::login_required(app, &location, false))),
        Answer::Denied => Err(refusal(pages::access_denied(app))),
        Answer::Unknown => Err(refusal(pages::unknown_app(app, apps_domain))),
        Answer::Unavailable => Err(refusal(pages::access_unavailable(app))),
        Answer::Enter { set_cookie, location } => Err(Refusal {
            page: Page { status: 303, retry_after_secs: None, html: String::new() },
            location: Some(location),
            set_cookie: Some(set_cookie),
        }),
        Answer::BadHandoff(reason) => Err(refusal(pages::bad_request(reason))),
    }
}

/// Removes `Authorization: Bearer slw_...`: a portal API token must never reach an app. Other
/// `Authorization` values belong to the app and stay.
pub fn strip_api_tokens(headers: &mut HeaderMap) {
    let carries_token = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .any(|value| value.as_bytes().get(..11).is_some_and(|start| start.eq_ignore_ascii_case(b"bearer slw_")));
    if carries_token {
        headers.remove(header::AUTHORIZATION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str], expected: &[&str]) {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        }
        strip_api_tokens(&mut map);
        let left: Vec<&str> = map.get_all(header::AUTHORIZATION).iter().map(|v| v.to_str().expect("ascii")).collect();
        assert_eq!(left, expected);
    }

    #[test]
    fn portal_api_tokens_are_removed_and_the_apps_own_authorization_kept() {
        check(&["Bearer slw_abc"], &[]);
        check(&["bearer SLW_abc"], &[]);
        check(&["Basic dXNlcjpwYXNz"], &["Basic dXNlcjpwYXNz"]);
        check(&["Bearer eyJhbGciOi"], &["Bearer eyJhbGciOi"]);
    }
}
