//! Who may see an app, end to end through the real gateway: visibility levels, the portal's
//! hand-off token turned into the gateway's cookie, WebSockets, credentials never reaching the
//! app, replay and cross-host refusal, group membership and logout taking effect within seconds.
//!
//! The app is a small Python server that answers every request with the `Cookie` and
//! `Authorization` headers it received, and completes WebSocket handshakes.

use std::time::Duration;

use crate::helpers::{pack, project_dir, spawn_app_with, AppOptions, TestApp, PASSWORD};

const ECHO_APP: &str = r#"
import base64, hashlib, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class App(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.write(b"\x81\x02hi")
            self.wfile.flush()
            return
        body = ("cookie=%s\nauthorization=%s\n" % (self.headers.get("Cookie", ""), self.headers.get("Authorization", ""))).encode()
        print("request cookie=%r authorization=%r" % (self.headers.get("Cookie", ""), self.headers.get("Authorization", "")), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), App).serve_forever()
"#;

pub(crate) fn echo_zip() -> Vec<u8> {
    let dir = project_dir(&[("main.py", ECHO_APP), ("requirements.txt", "")]);
    pack(dir.path())
}

/// A GET through the gateway with `cookie` (and optionally an `Authorization` header).
async fn app_request(app: &TestApp, name: &str, path: &str, cookie: Option<&str>, authorization: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut request = client
        .get(format!("http://127.0.0.1:{}{path}", app.gateway_port))
        .header("Host", format!("{name}.localhost"))
        .header("Accept", "text/html");
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request.send().await.expect("gateway request")
}

/// A WebSocket handshake through the gateway over a raw socket; the status code of the answer
/// (and for 101, the app's first frame must come through the spliced connection).
pub(crate) async fn websocket_status(app: &TestApp, name: &str, cookie: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.gateway_port)).await.expect("connect to the gateway");
    let cookie_line = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {name}.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{cookie_line}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send the handshake");
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let complete = text.contains("\r\n\r\n") && (status != 101 || text.ends_with("hi"));
        if complete {
            return status;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => return status,
            Ok(Ok(n_read)) => received.extend_from_slice(&buffer[..n_read]),
            Ok(Err(error)) => panic!("reading the handshake answer: {error}"),
        }
    }
}

/// Signs a browser in and returns (client, jar).
async fn browser_for(app: &TestApp, email: &str) -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let (client, jar) = app.new_browser();
    let response = app.post_form_as(&client, &jar, "/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), 303, "login of {email}");
    (client, jar)
}

/// What `/access` answers for this browser: the status and the `Location`.
async fn access(app: &TestApp, client: &reqwest::Client, name: &str) -> (u16, String) {
    let response = client.get(app.url(&format!("/access?app={name}&next=%2Fhello%3Fx%3D1"))).send().await.expect("GET /access");
    let location = response.headers().get("Location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (response.status().as_u16(), location)
}

/// Follows the portal's hand-off into the gateway and returns the `slipway_access` cookie pair.
async fn enter(app: &TestApp, name: &str, handoff_url: &str) -> String {
    let path =
        handoff_url.split_once(".localhost:").and_then(|(_, rest)| rest.split_once('/')).map(|(_, p)| format!("/{p}")).expect("a path");
    let response = app_request(app, name, &path, None, None).await;
    assert_eq!(response.status(), 303, "hand-off for {name}: {}", response.text().await.unwrap_or_default());
    assert_eq!(response.headers()["Location"], "/hello?x=1");
    let set_cookie = response.headers()["Set-Cookie"].to_str().expect("ascii").to_owned();
    assert!(set_cookie.contains("HttpOnly") && !set_cookie.to_ascii_lowercase().contains("domain="), "{set_cookie}");
    set_cookie.split(';').next().expect("a pair").to_owned()
}

async fn patch_project(app: &TestApp, token: &str, name: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response =
        app.client.patch(app.url(&format!("/api/v1/projects/{name}"))).bearer_auth(token).json(&body).send().await.expect("PATCH");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Repeats a gateway request until its status is `expected` (the gateways follow Redis within
/// about a second; the promise is 60 s, the test allows 10).
async fn until_status(app: &TestApp, name: &str, cookie: Option<&str>, expected: u16) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app_request(app, name, "/", cookie, None).await;
        if response.status().as_u16() == expected || tokio::time::Instant::now() >= deadline {
            assert_eq!(response.status().as_u16(), expected, "{name} with {cookie:?}");
            return response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_private_app_admits_only_whom_its_visibility_allows_and_the_app_never_sees_platform_credentials() {
    // The gateway's requests say they are browsers; on a loaded machine a wake can outlast the
    // default 1 s before the "starting" page, so the browser wait is raised to the wake timeout.
    let app = spawn_app_with(AppOptions { extra_scaling: "browser_wait = \"30s\"\n".into(), ..AppOptions::default() }).await;
    let owner_token = app.api_token("acc-owner@pusan.ac.kr").await;
    let classmate_token = app.api_token("acc-mate@pusan.ac.kr").await;
    app.deploy_live(&owner_token, "acc-echo", "python", echo_zip()).await;
    app.create_project(&owner_token, "acc-other", "static").await;

    // Public (the default): anyone, WebSockets included.
    assert_eq!(until_status(&app, "acc-echo", None, 200).await.status(), 200);
    assert_eq!(websocket_status(&app, "acc-echo", None).await, 101);

    // Private, and asleep: an anonymous visitor is sent to the portal and nothing wakes.
    let (status, body) = patch_project(&app, &owner_token, "acc-echo", serde_json::json!({"visibility": "private"})).await;
    assert_eq!((status, body["visibility"].as_str()), (200, Some("private")), "{body}");
    until_status(&app, "acc-echo", None, 302).await;
    app.client.post(app.url("/api/v1/projects/acc-echo/sleep")).bearer_auth(&owner_token).send().await.expect("sleep");
    let refused = app_request(&app, "acc-echo", "/", None, None).await;
    assert_eq!(refused.status(), 302);
    let location = refused.headers()["Location"].to_str().expect("ascii").to_owned();
    assert!(location.starts_with(&format!("{}/access?app=acc-echo&next=%2F", app.address)), "{location}");
    assert_eq!(websocket_status(&app, "acc-echo", None).await, 401);
    let status = app.api_get(&owner_token, "/api/v1/projects/acc-echo/status").await;
    assert_eq!(status["state"], "stopped", "a refused visitor woke the app: {status}");

    // A classmate signed in to the portal is refused by the portal and gets no token.
    let (mate, _mate_jar) = browser_for(&app, "acc-mate@pusan.ac.kr").await;
    assert_eq!(access(&app, &mate, "acc-echo").await.0, 403);
    // Without a session, /access sends the visitor to log in and back.
    let (anonymous, _) = app.new_browser();
    let (status, location) = access(&app, &anonymous, "acc-echo").await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/login?next=%2Faccess%3Fapp%3Dacc-echo"), "{location}");

    // The owner gets a hand-off token, which becomes the gateway's cookie for this host.
    let (owner, owner_jar) = browser_for(&app, "acc-owner@pusan.ac.kr").await;
    let (status, handoff) = access(&app, &owner, "acc-echo").await;
    assert_eq!(status, 303, "{handoff}");
    assert!(handoff.contains("acc-echo.localhost") && handoff.contains("/.slipway/auth?token="), "{handoff}");
    let access_cookie = enter(&app, "acc-echo", &handoff).await;
    // The token is good once, and never on another app's host.
    let path = format!("/{}", handoff.splitn(4, '/').nth(3).expect("path"));
    assert_eq!(app_request(&app, "acc-echo", &path, None, None).await.status(), 400, "a replayed token was accepted");
    assert_eq!(app_request(&app, "acc-other", &path, None, None).await.status(), 400, "a token worked on another host");
    // The cookie opens only its own host.
    assert_eq!(app_request(&app, "acc-other", "/", Some(&access_cookie), None).await.status(), 404);
    let wrong_host = app_request(&app, "acc-other", "/", Some(&access_cookie), None).await;
    assert_ne!(wrong_host.status(), 200);

    // With the cookie, the owner reaches the app (it wakes), and the app sees none of the
    // platform's credentials: not the gateway's cookie, not the portal session, not an API token.
    let session = TestApp::cookie(&owner_jar, &app.address, "slipway_session").expect("the owner's portal session");
    let all_cookies = format!("theme=dark; {access_cookie}; slipway_session={session}");
    let response = app_request(&app, "acc-echo", "/hello", Some(&all_cookies), Some(&format!("Bearer {owner_token}"))).await;
    assert_eq!(response.status(), 200);
    let seen = response.text().await.expect("body");
    assert_eq!(seen, "cookie=theme=dark\nauthorization=\n", "the app saw platform credentials");
    let own_auth = app_request(&app, "acc-echo", "/", Some(&access_cookie), Some("Basic dXNlcjpwYXNz")).await;
    assert!(own_auth.text().await.expect("body").contains("authorization=Basic dXNlcjpwYXNz"), "the app's own Authorization was lost");
    assert_eq!(websocket_status(&app, "acc-echo", Some(&access_cookie)).await, 101);
    // A tampered cookie is worth nothing.
    let tampered = format!("{}0", &access_cookie[..access_cookie.len() - 1]);
    let tampered = if tampered == access_cookie { format!("{}1", &access_cookie[..access_cookie.len() - 1]) } else { tampered };
    assert_eq!(app_request(&app, "acc-echo", "/", Some(&tampered), None).await.status(), 302);

    // Members: the project moves into a group; the classmate, invited as viewer, gets in.
    let group = app
        .client
        .post(app.url("/api/v1/groups"))
        .bearer_auth(&owner_token)
        .json(&serde_json::json!({"name": "acc-club"}))
        .send()
        .await
        .expect("create group");
    assert_eq!(group.status(), 201);
    let (status, body) =
        patch_project(&app, &owner_token, "acc-echo", serde_json::json!({"group": "acc-club", "visibility": "members"})).await;
    assert_eq!((status, body["group"].as_str()), (200, Some("acc-club")), "{body}");
    let invited = app
        .client
        .post(app.url("/api/v1/groups/acc-club/members"))
        .bearer_auth(&owner_token)
        .json(&serde_json::json!({"email": "acc-mate@pusan.ac.kr", "role": "viewer"}))
        .send()
        .await
        .expect("invite");
    assert_eq!(invited.status(), 200);
    // The portal knows at once; the gateway follows with its next read of Redis (about 1 s), so
    // a fresh hand-off is tried until the gateway agrees.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mate_cookie = loop {
        let (status, mate_handoff) = access(&app, &mate, "acc-echo").await;
        assert_eq!(status, 303, "the invited classmate is still refused by the portal");
        let path = format!("/{}", mate_handoff.splitn(4, '/').nth(3).expect("path"));
        let response = app_request(&app, "acc-echo", &path, None, None).await;
        if response.status() == 303 {
            break response.headers()["Set-Cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "the gateway still refuses the invited classmate: {}", response.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    until_status(&app, "acc-echo", Some(&mate_cookie), 200).await;
    // A viewer may look but not change: the API refuses the viewer's deploy and visibility change.
    let (status, _) = patch_project(&app, &classmate_token, "acc-echo", serde_json::json!({"visibility": "public"})).await;
    assert_eq!(status, 403);

    // Removed from the group: the classmate's cookie stops working within seconds.
    let removed = app
        .client
        .delete(app.url("/api/v1/groups/acc-club/members/acc-mate@pusan.ac.kr"))
        .bearer_auth(&owner_token)
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), 204);
    until_status(&app, "acc-echo", Some(&mate_cookie), 403).await;

    // The owner logs out of the portal: the app cookie from that session stops working too.
    let response = app.post_form_as(&owner, &owner_jar, "/logout", &[]).await;
    assert_eq!(response.status(), 303);
    until_status(&app, "acc-echo", Some(&access_cookie), 302).await;

    // The app's own log shows no platform cookie in any request it received.
    let logs = app.client.get(app.url("/api/v1/projects/acc-echo/logs")).bearer_auth(&owner_token).send().await.expect("logs");
    let logs = logs.text().await.expect("log text");
    assert!(logs.contains("request cookie="), "the app logged no requests: {logs}");
    assert!(!logs.contains("slipway_") && !logs.contains("slw_"), "platform credentials reached the app: {logs}");
}

#[tokio::test]
async fn forward_auth_gives_traefik_the_same_answers_as_the_gateway() {
    // The gateway's requests say they are browsers; on a loaded machine a wake can outlast the
    // default 1 s before the "starting" page, so the browser wait is raised to the wake timeout.
    let app = spawn_app_with(AppOptions { extra_scaling: "browser_wait = \"30s\"\n".into(), ..AppOptions::default() }).await;
    let owner_token = app.api_token("fa-owner@pusan.ac.kr").await;
    app.create_project(&owner_token, "fa-app", "static").await;
    patch_project(&app, &owner_token, "fa-app", serde_json::json!({"visibility": "campus"})).await;
    let ask = |cookie: Option<String>, uri: &'static str| {
        let mut request = app
            .client
            .get(app.url("/internal/authz"))
            .header("X-Forwarded-Host", "fa-app.localhost")
            .header("X-Forwarded-Uri", uri)
            .header("X-Forwarded-Method", "GET");
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    // Anonymous: a redirect to the portal (once the feed has seen the change).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = ask(None, "/x").await.expect("authz");
        if response.status() == 302 || tokio::time::Instant::now() >= deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(response.status(), 302);
    assert!(response.headers()["Location"].to_str().expect("ascii").contains("/access?app=fa-app&next=%2Fx"));

    // A hand-off answered through forwardAuth sets the cookie; with it, 200 and cleaned headers.
    let (owner, _jar) = browser_for(&app, "fa-owner@pusan.ac.kr").await;
    let (_, handoff) = access(&app, &owner, "fa-app").await;
    let uri: &'static str = Box::leak(format!("/{}", handoff.splitn(4, '/').nth(3).expect("path")).into_boxed_str());
    let entered = ask(None, uri).await.expect("authz");
    assert_eq!(entered.status(), 303);
    let pair = entered.headers()["Set-Cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let passed = ask(Some(format!("a=1; {pair}; slipway_session=s")), "/").await.expect("authz");
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.headers()["Cookie"], "a=1");
    assert!(!passed.headers()["X-Auth-User"].is_empty());
}
