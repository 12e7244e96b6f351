//! The small HTML pages the gateway answers with when it cannot hand a request to an app: no such
//! app, the apps domain itself, crashed, starting, stopped, not answering, too slow, too large.
//!
//! Pure: each function returns a `Page` (status, optional `Retry-After`, HTML). The pages are
//! self-contained (inline CSS, no scripts, no external assets) so that they render even when
//! nothing else is reachable, and every app name or host is HTML-escaped because it comes straight
//! from the request. They are deliberately not localised or themed: the portal owns that look.

/// A finished page; the proxy turns it into a response with `text/html` and `no-store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    /// Seconds, sent as `Retry-After`; the starting page also refreshes itself after this long.
    pub retry_after_secs: Option<u32>,
    pub html: String,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f6f7f9;color:#1f2328}\
main{max-width:34rem;margin:12vh auto;padding:2rem;background:#fff;border:1px solid #d8dee4;border-radius:12px}\
h1{font-size:1.4rem;margin:0 0 .75rem}p{margin:.5rem 0}code{background:#eef1f4;padding:.1rem .3rem;border-radius:4px}\
.status{color:#656d76;font-size:.85rem;margin-top:1.5rem}";

/// `title` and `body_html` are trusted markup built here; callers escape anything from the request.
fn render(status: u16, title: &str, body_html: &str, refresh_secs: Option<u32>) -> String {
    let refresh = refresh_secs.map(|secs| format!("<meta http-equiv=\"refresh\" content=\"{secs}\">")).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main><h1>{title}</h1>{body_html}<p class=\"status\">{status} &middot; Slipway</p></main></body></html>\n"
    )
}

fn page(status: u16, retry_after_secs: Option<u32>, html: String) -> Page {
    Page { status, retry_after_secs, html }
}

/// 404 for `NAME.<apps domain>` when no app has that name.
pub fn unknown_app(app: &str, apps_domain: &str) -> Page {
    let (app, domain) = (escape(app), escape(apps_domain));
    let body = format!(
        "<p>There is no app called <code>{app}</code> here.</p>\
<p>Check the address for typos. If the app was just created, it may not have been deployed yet; apps answer at \
<code>NAME.{domain}</code>.</p>"
    );
    page(404, None, render(404, "No such app", &body, None))
}

/// A path under `/.slipway/terminal/` that is not one of the terminal's files.
pub fn unknown_path(app: &str) -> Page {
    let app = escape(app);
    let body = format!("<p>The console program <code>{app}</code> has no such file. Its terminal is at <a href=\"/\">/</a>.</p>");
    page(404, None, render(404, "Not found", &body, None))
}

/// The web terminal's scripts (xterm.js) are not installed on this server.
pub fn terminal_assets_missing(app: &str) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>The console program <code>{app}</code> runs in a web terminal whose files are not installed on this server.</p>\
<p>Its administrators can install them with <code>npm ci</code> in <code>web/terminal</code> (see the README).</p>"
    );
    page(503, None, render(503, "The terminal is not installed", &body, None))
}

/// 404 for a host that is not under the apps domain at all (another domain, an IP, a nested name).
pub fn foreign_host(host: &str, apps_domain: &str) -> Page {
    let (host, domain) = (escape(host), escape(apps_domain));
    let body = format!(
        "<p>There is no app called <code>{host}</code> here.</p>\
<p>This server only answers for apps at <code>NAME.{domain}</code>.</p>"
    );
    page(404, None, render(404, "No such app", &body, None))
}

/// 404 for the apps domain itself: it hosts apps, not a site of its own.
pub fn apex(apps_domain: &str) -> Page {
    let domain = escape(apps_domain);
    let body = format!(
        "<p>This is <code>{domain}</code>, the apps domain. It has no page of its own.</p>\
<p>Every app answers at its own address, <code>NAME.{domain}</code>.</p>"
    );
    page(404, None, render(404, "Slipway apps", &body, None))
}

/// 502 for an app the runtime knows has crashed and is restarting.
pub fn crashed(app: &str, retry_after_secs: u32) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>The app <code>{app}</code> crashed and is being restarted.</p>\
<p>Try again in a few seconds. If this keeps happening, its owner can read the logs in the portal.</p>"
    );
    page(502, Some(retry_after_secs), render(502, "This app crashed", &body, None))
}

/// 502 when the app's server refused or broke the connection.
pub fn not_answering(app: &str) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>The app <code>{app}</code> did not answer properly: its server refused or dropped the connection.</p>\
<p>Try again in a few seconds. If this keeps happening, its owner can read the logs in the portal.</p>"
    );
    page(502, None, render(502, "This app is not answering", &body, None))
}

/// 503 while an app starts; the page reloads itself after `retry_after_secs`.
pub fn starting(app: &str, retry_after_secs: u32) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>The app <code>{app}</code> is starting.</p>\
<p>This page will reload by itself in {retry_after_secs} seconds.</p>"
    );
    page(503, Some(retry_after_secs), render(503, "Starting up\u{2026}", &body, Some(retry_after_secs.max(1))))
}

/// 503 when waking an app from zero failed: every held request gets it at once (nothing hangs),
/// and a later request tries to wake the app again.
pub fn wake_failed(app: &str, retry_after_secs: u32) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>The app <code>{app}</code> could not be started.</p>\
<p>Try again in a few seconds. If this keeps happening, its owner can read the logs in the portal.</p>"
    );
    page(503, Some(retry_after_secs), render(503, "This app could not start", &body, None))
}

/// 503 for an app that was stopped on purpose.
pub fn stopped(app: &str, retry_after_secs: u32) -> Page {
    let app = escape(app);
    let body = format!("<p>The app <code>{app}</code> is stopped.</p><p>Its owner can start it again from the portal.</p>");
    page(503, Some(retry_after_secs), render(503, "This app is stopped", &body, None))
}

/// 504 when the app took too long to accept the connection or to answer.
pub fn timed_out(app: &str) -> Page {
    let app = escape(app);
    let body = format!("<p>The app <code>{app}</code> took too long to answer.</p><p>Try again in a moment.</p>");
    page(504, None, render(504, "This app is too slow to answer", &body, None))
}

/// 413 when a request body is larger than the gateway accepts.
pub fn too_large(app: &str, limit_bytes: u64) -> Page {
    let app = escape(app);
    let body = format!("<p>The request to <code>{app}</code> is larger than the {limit_bytes} bytes this server accepts.</p>");
    page(413, None, render(413, "Request too large", &body, None))
}

/// 302 (a page navigation) or 401 (anything else) for an app that needs its visitor to log in;
/// `portal_url` is where the visitor does that.
pub fn login_required(app: &str, portal_url: &str, redirect: bool) -> Page {
    let (app, link) = (escape(app), escape(portal_url));
    let body = format!(
        "<p>The app <code>{app}</code> is only for signed-in users of this university.</p>\
<p><a href=\"{link}\">Sign in to the portal</a> to open it.</p>"
    );
    let status = if redirect { 302 } else { 401 };
    page(status, None, render(status, "Sign in to open this app", &body, None))
}

/// 403 for a signed-in visitor the app's owner has not let in.
pub fn access_denied(app: &str) -> Page {
    let app = escape(app);
    let body = format!(
        "<p>You are signed in, but the app <code>{app}</code> is not shared with you.</p>\
<p>Ask its owner to add you to the project's group.</p>"
    );
    page(403, None, render(403, "This app is not shared with you", &body, None))
}

/// 503 when the gateway cannot currently tell who may see a non-public app.
pub fn access_unavailable(app: &str) -> Page {
    let app = escape(app);
    let body = format!("<p>Access to <code>{app}</code> cannot be checked right now.</p><p>Try again in a moment.</p>");
    page(503, Some(5), render(503, "Access check unavailable", &body, None))
}

/// 400 for requests that cannot be routed at all (no or several `Host` headers, `CONNECT`).
/// A challenge path (ACME or ownership) with a token the gateway does not know.
pub fn not_found_challenge() -> Page {
    page(404, None, render(404, "No such challenge", "<p>This challenge token is not known here.</p>", None))
}

pub fn bad_request(reason: &str) -> Page {
    let body = format!("<p>{}</p>", escape(reason));
    page(400, None, render(400, "Bad request", &body, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(page: Page, status: u16, retry_after_secs: Option<u32>, contains: &[&str]) {
        assert_eq!(page.status, status, "{}", page.html);
        assert_eq!(page.retry_after_secs, retry_after_secs, "{}", page.html);
        assert!(page.html.starts_with("<!doctype html>"));
        for needle in contains {
            assert!(page.html.contains(needle), "missing {needle:?} in {}", page.html);
        }
        assert!(!page.html.contains("<script"), "pages carry no scripts");
    }

    #[test]
    fn each_page_has_its_status_and_says_what_happened() {
        check(unknown_app("quiz", "localhost"), 404, None, &["no app called <code>quiz</code>", "NAME.localhost"]);
        check(foreign_host("example.com", "localhost"), 404, None, &["no app called <code>example.com</code>", "NAME.localhost"]);
        check(apex("apps.example"), 404, None, &["the apps domain", "NAME.apps.example"]);
        check(crashed("quiz", 5), 502, Some(5), &["<code>quiz</code> crashed and is being restarted"]);
        check(not_answering("quiz"), 502, None, &["<code>quiz</code> did not answer"]);
        check(starting("quiz", 3), 503, Some(3), &["<code>quiz</code> is starting", "<meta http-equiv=\"refresh\" content=\"3\">"]);
        check(starting("quiz", 0), 503, Some(0), &["content=\"1\""]);
        check(stopped("quiz", 60), 503, Some(60), &["<code>quiz</code> is stopped"]);
        check(timed_out("quiz"), 504, None, &["took too long"]);
        check(too_large("quiz", 1024), 413, None, &["1024 bytes"]);
        check(bad_request("Missing Host header."), 400, None, &["Missing Host header."]);
    }

    #[test]
    fn names_from_the_request_are_escaped() {
        let html = foreign_host("<script>alert('x')</script>&\"", "localhost").html;
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"), "{html}");
        assert!(!html.contains("<script>"));
        check(unknown_app("a<b", "d\"x"), 404, None, &["a&lt;b", "NAME.d&quot;x"]);
    }

    #[test]
    fn only_the_starting_page_refreshes_itself() {
        assert!(!crashed("quiz", 5).html.contains("http-equiv"));
        assert!(!stopped("quiz", 5).html.contains("http-equiv"));
        assert!(starting("quiz", 5).html.contains("http-equiv=\"refresh\""));
    }
}
