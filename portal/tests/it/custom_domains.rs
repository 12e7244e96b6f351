//! Custom domains and HTTPS end to end, against Let's Encrypt's test CA `pebble` (Debian package)
//! and its companion DNS server `pebble-challtestsrv`, all on loopback:
//!
//! - challtestsrv answers every A query with 127.0.0.1 (so `shop.example.test` "points at" this
//!   machine), TXT records the test sets, and A overrides the test sets;
//! - the portal's ownership check asks it (`custom_domains.dns_server`) and fetches the HTTP token
//!   from the gateway on its real port;
//! - pebble resolves the domain through it too and validates HTTP-01 by fetching
//!   `/.well-known/acme-challenge/TOKEN` from the real gateway (`httpPort` = the gateway's port);
//! - the test then speaks TLS to the gateway's HTTPS listener with SNI = the custom domain and
//!   checks the chain against pebble's root, and forces a renewal by passing a later `now`.
//!
//! TLS material for pebble's own directory and for the wildcard test is made with the `openssl`
//! command (a test CA and a leaf), never taken from anywhere.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::helpers::{example_zip, free_port, spawn_app_with, AppOptions, TestApp};

fn openssl(args: &[&str]) {
    let output = Command::new("openssl").args(args).output().expect("run openssl (Debian package openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A test CA in `dir` (`ca.pem`, `ca.key`).
fn make_ca(dir: &Path) -> PathBuf {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=slipway test CA",
        "-keyout",
        ca_key.to_str().expect("utf-8"),
        "-out",
        ca.to_str().expect("utf-8"),
    ]);
    ca
}

/// A leaf for `subject_alt_names` (`DNS:a,IP:b`) signed by the CA in `dir`; (chain, key) paths.
fn make_leaf(dir: &Path, stem: &str, subject_alt_names: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.csr")),
        dir.join(format!("{stem}.ext")),
    );
    std::fs::write(&ext, format!("subjectAltName={subject_alt_names}\nbasicConstraints=CA:FALSE\n")).expect("write ext");
    let path = |p: &PathBuf| p.to_str().expect("utf-8").to_owned();
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=slipway test leaf",
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &path(&dir.join("ca.pem")),
        "-CAkey",
        &path(&dir.join("ca.key")),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &path(&ext),
        "-out",
        &path(&cert),
    ]);
    (cert, key)
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// pebble and pebble-challtestsrv on loopback ports of their own.
struct Pebble {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    ca: PathBuf,
    directory_url: String,
    management_port: u16,
    dns_port: u16,
    challtestsrv_port: u16,
}

impl Pebble {
    /// Starts both; pebble validates HTTP-01 on `http_port` (the gateway's).
    fn start(http_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = make_ca(dir.path());
        let (cert, key) = make_leaf(dir.path(), "pebble", "IP:127.0.0.1,DNS:localhost");
        let (dns_port, challtestsrv_port) = (free_port(), free_port());
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-management", &format!("127.0.0.1:{challtestsrv_port}"), "-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv (Debian package pebble; scripts/setup.sh test installs it)");
        let mut children = vec![challtestsrv];
        wait_for_port(challtestsrv_port, "pebble-challtestsrv");
        let (port, management_port) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");
        let pebble = Command::new("pebble")
            .args(["-config", config_path.to_str().expect("utf-8"), "-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        children.push(pebble);
        let pebble = Self {
            _dir: dir,
            children,
            ca,
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            management_port,
            dns_port,
            challtestsrv_port,
        };
        wait_for_port(port, "pebble");
        wait_for_port(management_port, "pebble's management interface");
        pebble
    }

    /// The root that signs pebble's certificates (made anew at every start).
    async fn root_pem(&self) -> String {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca).expect("read test CA")).expect("test CA");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let response = client.get(&url).send().await.expect("GET pebble's root");
        assert_eq!(response.status(), 200);
        response.text().await.expect("root PEM")
    }

    async fn challtestsrv(&self, path: &str, body: serde_json::Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.challtestsrv_port);
        let response = reqwest::Client::new().post(&url).json(&body).send().await.expect("challtestsrv request");
        assert_eq!(response.status(), 200, "{path}");
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The leaf certificate the gateway presents for `server_name` on `port`, verified against
/// `roots_pem`; `Err` when the handshake fails.
fn served_leaf(port: u16, server_name: &str, roots_pem: &[u8]) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(roots_pem) {
        roots.add(certificate.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    let leaf = connection.peer_certificates().and_then(|chain| chain.first()).ok_or("no certificate")?;
    Ok(leaf.to_vec())
}

fn leaf_of(chain_pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(chain_pem.as_bytes()).expect("a PEM chain").to_vec()
}

/// An HTTPS client that trusts only `roots_pem` and sends `domain` to the gateway's HTTPS port.
fn https_client(roots_pem: &[u8], domain: &str, https_port: u16) -> reqwest::Client {
    let mut builder =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).resolve(domain, ([127, 0, 0, 1], https_port).into());
    for certificate in reqwest::Certificate::from_pem_bundle(roots_pem).expect("roots") {
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().expect("https client")
}

/// A plain-HTTP request to the gateway with `Host: host`.
async fn gateway_get(app: &TestApp, host: &str, path: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    client.get(format!("http://127.0.0.1:{}{path}", app.gateway_port)).header("Host", host).send().await.expect("gateway request")
}

async fn domains_api(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = app.client.request(method, app.url(&format!("/api/v1/projects/{path}"))).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn domain_row(app: &TestApp, token: &str, project: &str, domain: &str) -> serde_json::Value {
    let (status, listing) = domains_api(app, token, reqwest::Method::GET, &format!("{project}/domains"), None).await;
    assert_eq!(status, 200, "{listing}");
    listing.as_array().and_then(|rows| rows.iter().find(|row| row["domain"] == domain).cloned()).unwrap_or_default()
}

/// The certificate chain stored for `domain`.
fn stored_chain(app: &TestApp, domain: &str) -> Option<String> {
    use diesel::prelude::*;
    use portal::db::schema::custom_domains;
    custom_domains::table
        .filter(custom_domains::domain.eq(domain))
        .select(custom_domains::cert_chain_pem)
        .first::<Option<String>>(&mut app.db())
        .expect("domain row")
}

#[tokio::test]
async fn a_custom_domain_proven_by_http_or_dns_gets_a_pebble_certificate_serves_https_and_renews_without_restart() {
    let gateway_port = free_port();
    let pebble = Pebble::start(gateway_port);
    let extra_tables = format!(
        "[tls]\nhttps_addr = \"127.0.0.1:0\"\nredirect_http = true\n\
         [acme]\ndirectory_url = \"{directory}\"\nca_file = \"{ca}\"\ncontact_email = \"admin@pusan.ac.kr\"\n\
         [custom_domains]\ndns_server = \"127.0.0.1:{dns}\"\nhttp_port = {gateway_port}\nhttp_check_private_addresses = true\n",
        directory = pebble.directory_url,
        ca = pebble.ca.display(),
        dns = pebble.dns_port,
    );
    let app = spawn_app_with(AppOptions { gateway_port: Some(gateway_port), extra_tables, ..Default::default() }).await;
    let https_port = app.https_port.expect("an HTTPS listener");
    let token = app.api_token("dom-owner@pusan.ac.kr").await;
    let stranger = app.api_token("dom-stranger@pusan.ac.kr").await;
    app.deploy_live(&token, "dom-shop", "static", example_zip("static-hello")).await;
    let post = reqwest::Method::POST;

    // Only owners attach domains; bad names are refused with the field named.
    let (status, _) =
        domains_api(&app, &stranger, post.clone(), "dom-shop/domains", Some(serde_json::json!({"domain": "x.example.test"}))).await;
    assert_eq!(status, 403);
    for bad in ["localhost", "dom-shop.localhost", "10.0.0.1", "a..b.test"] {
        let (status, body) = domains_api(&app, &token, post.clone(), "dom-shop/domains", Some(serde_json::json!({"domain": bad}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_domain")), "{bad}: {body}");
    }

    let (status, added) =
        domains_api(&app, &token, post.clone(), "dom-shop/domains", Some(serde_json::json!({"domain": "Shop.Example.test"}))).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!((added["domain"].as_str(), added["status"].as_str()), (Some("shop.example.test"), Some("pending")));
    assert_eq!(added["txt_name"], "_slipway-challenge.shop.example.test");
    let proof = added["txt_value"].as_str().expect("a token").to_owned();
    let (status, body) =
        domains_api(&app, &stranger, post.clone(), "dom-shop/domains", Some(serde_json::json!({"domain": "shop.example.test"}))).await;
    assert_eq!(status, 403, "{body}");

    // Unverified: the gateway serves the proof token on the domain, but does not route it.
    let proof_path = format!("/.well-known/slipway-challenge/{proof}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = gateway_get(&app, "shop.example.test", &proof_path).await;
        if response.status() == 200 {
            assert_eq!(response.text().await.expect("body"), proof);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gateway never served the proof token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gateway_get(&app, "shop.example.test", "/").await.status(), 404);
    assert_eq!(gateway_get(&app, "shop.example.test", "/.well-known/slipway-challenge/wrong").await.status(), 404);

    // A domain that points elsewhere (and has no TXT record) is not verified, and the answer says why.
    let (status, _) =
        domains_api(&app, &token, post.clone(), "dom-shop/domains", Some(serde_json::json!({"domain": "elsewhere.example.test"}))).await;
    assert_eq!(status, 201);
    pebble.challtestsrv("/add-a", serde_json::json!({"host": "elsewhere.example.test.", "addresses": ["127.0.0.2"]})).await;
    let (status, refused) = domains_api(&app, &token, post.clone(), "dom-shop/domains/elsewhere.example.test/verify", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("domain_not_verified")), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no TXT record at _slipway-challenge.elsewhere.example.test"), "{message}");
    assert!(message.contains("http://elsewhere.example.test:"), "{message}");

    // The same domain proven by a TXT record instead; then detached again.
    let elsewhere = domain_row(&app, &token, "dom-shop", "elsewhere.example.test").await;
    let txt_value = elsewhere["txt_value"].as_str().expect("token").to_owned();
    pebble.challtestsrv("/set-txt", serde_json::json!({"host": "_slipway-challenge.elsewhere.example.test.", "value": txt_value})).await;
    let (status, verified) = domains_api(&app, &token, post.clone(), "dom-shop/domains/elsewhere.example.test/verify", None).await;
    assert_eq!((status, verified["status"].as_str()), (200, Some("verified")), "{verified}");
    let (status, _) = domains_api(&app, &token, reqwest::Method::DELETE, "dom-shop/domains/elsewhere.example.test", None).await;
    assert_eq!(status, 204);
    assert!(domain_row(&app, &token, "dom-shop", "elsewhere.example.test").await.is_null());

    // shop.example.test is proven over HTTP (challtestsrv points it at 127.0.0.1, the gateway
    // answers the token); pebble then validates HTTP-01 through the gateway and issues.
    let (status, verified) = domains_api(&app, &token, post.clone(), "dom-shop/domains/shop.example.test/verify", None).await;
    assert_eq!((status, verified["status"].as_str()), (200, Some("verified")), "{verified}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let active = loop {
        let row = domain_row(&app, &token, "dom-shop", "shop.example.test").await;
        if row["status"] == "active" {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "no certificate within 120 s: {row}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(active["certificate_not_after"].is_string() && active["renews_at"].is_string(), "{active}");
    let first_chain = stored_chain(&app, "shop.example.test").expect("a stored chain");
    assert!(!first_chain.contains("PRIVATE KEY"));

    // HTTPS with SNI = the custom domain: a chain to pebble's root, and the app's own page.
    let root = pebble.root_pem().await;
    let leaf = tokio::task::spawn_blocking({
        let root = root.clone();
        move || until_leaf(https_port, "shop.example.test", root.as_bytes(), |_| true)
    })
    .await
    .expect("handshake task");
    assert_eq!(leaf, leaf_of(&first_chain));
    let client = https_client(root.as_bytes(), "shop.example.test", https_port);
    let response = client.get(format!("https://shop.example.test:{https_port}/")).send().await.expect("HTTPS request");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("Hello from Slipway (static site)"));

    // Plain HTTP is redirected for a host with a certificate; ACME and proof paths never are.
    let redirected = gateway_get(&app, "shop.example.test", "/page?x=1").await;
    assert_eq!(redirected.status(), 308);
    assert_eq!(redirected.headers()["Location"], format!("https://shop.example.test:{https_port}/page?x=1").as_str());
    assert_eq!(gateway_get(&app, "shop.example.test", "/.well-known/acme-challenge/unknown").await.status(), 404);

    // A private app on its custom domain: the gateway sends the visitor to the portal naming the
    // host, the portal hands back to that host (and only to a host the app owns), and the cookie
    // is set on the custom domain.
    let response = app
        .client
        .patch(app.url("/api/v1/projects/dom-shop"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"visibility": "private"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let response =
            client.get(format!("https://shop.example.test:{https_port}/")).header("Accept", "text/html").send().await.expect("HTTPS");
        if response.status() == 302 || tokio::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused.status(), 302);
    let login = refused.headers()["Location"].to_str().expect("ascii").to_owned();
    assert_eq!(login, format!("{}/access?app=dom-shop&next=%2F&host=shop.example.test", app.address));
    let (owner, owner_jar) = app.new_browser();
    let signed_in =
        app.post_form_as(&owner, &owner_jar, "/login", &[("email", "dom-owner@pusan.ac.kr"), ("password", crate::helpers::PASSWORD)]).await;
    assert_eq!(signed_in.status(), 303);
    let handoff = owner.get(&login).send().await.expect("GET /access");
    assert_eq!(handoff.status(), 303);
    let handoff = handoff.headers()["Location"].to_str().expect("ascii").to_owned();
    assert!(handoff.starts_with(&format!("https://shop.example.test:{https_port}/.slipway/auth?token=")), "{handoff}");
    let entered = client.get(&handoff).send().await.expect("hand-off over HTTPS");
    assert_eq!(entered.status(), 303);
    assert_eq!(entered.headers()["Location"], "/");
    let set_cookie = entered.headers()["Set-Cookie"].to_str().expect("ascii").to_owned();
    assert!(set_cookie.starts_with("slipway_access=") && !set_cookie.to_ascii_lowercase().contains("domain="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("a pair").to_owned();
    let inside = client.get(format!("https://shop.example.test:{https_port}/")).header("Cookie", &cookie).send().await.expect("HTTPS");
    assert_eq!(inside.status(), 200);
    let elsewhere = owner.get(app.url("/access?app=dom-shop&next=%2F&host=evil.example.test")).send().await.expect("GET /access");
    assert_eq!(elsewhere.status(), 404);

    // Renewal, with the time passed in: a new certificate replaces the old one without a restart.
    let later = chrono::Utc::now() + chrono::Duration::days(4 * 365);
    let pass = portal::custom_domains::run_certificates(&app.state, later).await.expect("renewal pass");
    assert_eq!(pass.issued, vec!["shop.example.test".to_owned()], "{pass:?}");
    let second_chain = stored_chain(&app, "shop.example.test").expect("a stored chain");
    assert_ne!(leaf_of(&second_chain), leaf_of(&first_chain));
    let second_leaf = leaf_of(&second_chain);
    let served = tokio::task::spawn_blocking({
        let root = root.clone();
        move || until_leaf(https_port, "shop.example.test", root.as_bytes(), |leaf| *leaf == second_leaf)
    })
    .await
    .expect("handshake task");
    assert_eq!(served, leaf_of(&second_chain));
    let response = client
        .get(format!("https://shop.example.test:{https_port}/"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("HTTPS request after renewal");
    assert_eq!(response.status(), 200);
    // Nothing is due right after a renewal.
    let pass = portal::custom_domains::run_certificates(&app.state, chrono::Utc::now()).await.expect("pass");
    assert!(pass.issued.is_empty() && pass.failed.is_empty(), "{pass:?}");

    // Detached: the gateway forgets the route and the certificate.
    let (status, _) = domains_api(&app, &token, reqwest::Method::DELETE, "dom-shop/domains/shop.example.test", None).await;
    assert_eq!(status, 204);
    let root_bytes = root.into_bytes();
    let gone = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let result = served_leaf(https_port, "shop.example.test", &root_bytes);
            if result.is_err() || std::time::Instant::now() > deadline {
                return result;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("handshake task");
    assert!(gone.is_err(), "a removed domain still gets its certificate");
    assert_eq!(gateway_get(&app, "shop.example.test", "/").await.status(), 404);
}

/// Handshakes until the served leaf satisfies `done` (the gateway reloads within about a second),
/// for at most 10 s; returns the last leaf.
fn until_leaf(port: u16, server_name: &str, roots_pem: &[u8], done: impl Fn(&Vec<u8>) -> bool) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match served_leaf(port, server_name, roots_pem) {
            Ok(leaf) if done(&leaf) || std::time::Instant::now() > deadline => return leaf,
            Ok(_) => {}
            Err(error) => assert!(std::time::Instant::now() < deadline, "TLS to {server_name} kept failing: {error}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn the_apps_domain_is_served_with_the_configured_wildcard_certificate_which_reloads_when_its_files_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = make_ca(dir.path());
    let (cert, key) = make_leaf(dir.path(), "wildcard", "DNS:*.apps.test,DNS:apps.test");
    let extra_tables = format!(
        "[tls]\nhttps_addr = \"127.0.0.1:0\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nredirect_http = true\n",
        cert.display(),
        key.display()
    );
    let app = spawn_app_with(AppOptions { extra_top: "apps_domain = \"apps.test\"".to_owned(), extra_tables, ..Default::default() }).await;
    let https_port = app.https_port.expect("an HTTPS listener");
    let roots = std::fs::read(&ca).expect("read CA");

    // Any app host gets the wildcard certificate, chained to the CA; the gateway answers over TLS.
    let client = https_client(&roots, "nothing.apps.test", https_port);
    let response = client.get(format!("https://nothing.apps.test:{https_port}/")).send().await.expect("HTTPS request");
    assert_eq!(response.status(), 404);
    assert!(response.text().await.expect("body").contains("nothing"));
    let first = std::fs::read_to_string(&cert).expect("cert");
    let roots_for_task = roots.clone();
    let leaf = tokio::task::spawn_blocking(move || served_leaf(https_port, "quiz.apps.test", &roots_for_task)).await.expect("task");
    assert_eq!(leaf, Ok(leaf_of(&first)));
    // A name outside the apps domain gets no certificate at all.
    let roots_for_task = roots.clone();
    let foreign = tokio::task::spawn_blocking(move || served_leaf(https_port, "other.example.test", &roots_for_task)).await.expect("task");
    assert!(foreign.is_err(), "{foreign:?}");

    // HTTP → HTTPS for hosts the certificate covers, and only those.
    let redirected = gateway_get(&app, "quiz.apps.test", "/a?b=c").await;
    assert_eq!(redirected.status(), 308);
    assert_eq!(redirected.headers()["Location"], format!("https://quiz.apps.test:{https_port}/a?b=c").as_str());
    assert_eq!(gateway_get(&app, "other.example.test", "/").await.status(), 404);

    // Links to apps use HTTPS now.
    let token = app.api_token("dom-wild@pusan.ac.kr").await;
    app.create_project(&token, "dom-wild", "static").await;
    let project = app.api_get(&token, "/api/v1/projects/dom-wild").await;
    assert_eq!(project["url"], format!("https://dom-wild.apps.test:{https_port}").as_str(), "{project}");

    // A renewed certificate written over the files is picked up without a restart.
    let (renewed, _) = make_leaf(dir.path(), "wildcard-next", "DNS:*.apps.test,DNS:apps.test");
    std::fs::copy(dir.path().join("wildcard-next.key"), &key).expect("replace key");
    std::fs::copy(&renewed, &cert).expect("replace cert");
    let next = std::fs::read_to_string(&cert).expect("cert");
    let wanted = leaf_of(&next);
    let served =
        tokio::task::spawn_blocking(move || until_leaf(https_port, "quiz.apps.test", &roots, |leaf| *leaf == wanted)).await.expect("task");
    assert_eq!(served, leaf_of(&next));
    drop(dir);
}

/// `slipway domains ...` with the portal and token from the environment, as in CI.
async fn cli(app: &TestApp, token: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command.args(args).env("SLIPWAY_PORTAL", &app.address).env("SLIPWAY_TOKEN", token).env("SLIPWAY_LOG", "warn");
    command.env_remove("SLIPWAY_CONFIG");
    tokio::task::spawn_blocking(move || command.output().expect("run slipway")).await.expect("join")
}

#[tokio::test]
async fn the_cli_adds_lists_verifies_and_removes_domains_and_a_failed_check_says_what_was_looked_for() {
    // Nothing answers DNS on this port, so the ownership check must fail, and say so.
    let dns_port = free_port();
    let extra_tables = format!("[custom_domains]\ndns_server = \"127.0.0.1:{dns_port}\"\n");
    let app = spawn_app_with(AppOptions { extra_tables, ..Default::default() }).await;
    let token = app.api_token("dom-cli@pusan.ac.kr").await;
    app.create_project(&token, "dom-cli", "static").await;

    let added = cli(&app, &token, &["domains", "add", "dom-cli", "cli.example.test"]).await;
    let printed = String::from_utf8_lossy(&added.stdout);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(printed.contains("_slipway-challenge.cli.example.test"), "{printed}");
    assert!(printed.contains("slipway domains verify dom-cli cli.example.test"), "{printed}");

    let listed = cli(&app, &token, &["domains", "list", "dom-cli"]).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("cli.example.test  pending"));

    let verified = cli(&app, &token, &["domains", "verify", "dom-cli", "cli.example.test"]).await;
    let complaint = String::from_utf8_lossy(&verified.stderr);
    assert!(!verified.status.success());
    assert!(complaint.contains("domain_not_verified") && complaint.contains("_slipway-challenge.cli.example.test"), "{complaint}");
    let listed = cli(&app, &token, &["domains", "list", "dom-cli"]).await;
    let printed = String::from_utf8_lossy(&listed.stdout);
    assert!(printed.contains("pending") && printed.contains("last error: control of cli.example.test is not proven yet"), "{printed}");

    let taken = cli(&app, &token, &["domains", "add", "dom-cli", "CLI.example.test."]).await;
    assert!(!taken.status.success() && String::from_utf8_lossy(&taken.stderr).contains("domain_taken"));

    let removed = cli(&app, &token, &["domains", "remove", "dom-cli", "cli.example.test"]).await;
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed cli.example.test from dom-cli"));
    let listed = cli(&app, &token, &["domains", "list", "dom-cli"]).await;
    assert!(listed.status.success() && listed.stdout.is_empty(), "{}", String::from_utf8_lossy(&listed.stdout));
}

#[tokio::test]
async fn the_project_page_adds_shows_checks_and_removes_a_domain() {
    let dns_port = free_port();
    let extra_tables = format!("[custom_domains]\ndns_server = \"127.0.0.1:{dns_port}\"\n");
    let app = spawn_app_with(AppOptions { extra_tables, ..Default::default() }).await;
    app.signed_in_user("dom-page@pusan.ac.kr").await;
    assert_eq!(app.post_form("/projects", &[("name", "dom-page"), ("template", "static")]).await.status(), 303);

    let added = app.post_form("/projects/dom-page/domains", &[("domain", "page.example.test")]).await;
    assert_eq!(added.status(), 303);
    let page = crate::helpers::text(app.get("/projects/dom-page").await).await;
    assert!(page.contains("The domain is added"), "{page}");
    assert!(page.contains("_slipway-challenge.page.example.test") && page.contains("Waiting for proof of control"), "{page}");

    let bad = app.post_form("/projects/dom-page/domains", &[("domain", "localhost")]).await;
    assert_eq!(bad.status(), 422);
    assert!(crate::helpers::text(bad).await.contains("cannot be used as a custom domain"));
    let unproven = app.post_form("/projects/dom-page/domains/page.example.test/verify", &[]).await;
    assert_eq!(unproven.status(), 422);
    assert!(crate::helpers::text(unproven).await.contains("is not proven yet"));

    let removed = app.post_form("/projects/dom-page/domains/page.example.test/delete", &[]).await;
    assert_eq!(removed.status(), 303);
    let page = crate::helpers::text(app.get("/projects/dom-page").await).await;
    assert!(page.contains("The domain is removed") && !page.contains("page.example.test"), "{page}");

    // Deleting the project takes its domains out of the gateway's view too.
    assert_eq!(app.post_form("/projects/dom-page/domains", &[("domain", "gone.example.test")]).await.status(), 303);
    let known = |app: &TestApp| app.state.custom_domains.table().record("gone.example.test").is_some();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !known(&app) {
        assert!(tokio::time::Instant::now() < deadline, "the gateway never saw the domain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.post_form("/projects/dom-page/delete", &[("confirm_name", "dom-page")]).await.status(), 303);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while known(&app) {
        assert!(tokio::time::Instant::now() < deadline, "the gateway still knows a deleted project's domain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
