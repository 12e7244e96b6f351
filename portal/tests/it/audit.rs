//! The audit log: one entry for every security-relevant action (through the pages and the API),
//! who/when/from where, no secret value anywhere in the table or the CSV export, the search
//! filters and pages, CSV escaping, and the database refusing to change or delete entries.

use diesel::prelude::*;
use portal::db::schema::audit_log;

use crate::helpers::{example_zip, spawn_app, spawn_app_with, text, AppOptions, TestApp, PASSWORD};

/// A value no other string in the test contains, so finding it anywhere is a leak.
const SECRET_VALUE: &str = "zq-audit-secret-7c1f9e";

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let mut request = self.app.client.request(method.clone(), self.app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    async fn expect(&self, method: reqwest::Method, path: &str, body: serde_json::Value, status: u16) -> serde_json::Value {
        let (got, answer) = self.send(method.clone(), path, Some(body)).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }
}

async fn token_for(app: &TestApp, email: &str, password: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": email, "password": password, "name": "audit test"}))
        .send()
        .await
        .expect("POST /api/v1/tokens");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

/// Every row of the audit log as (action, actor e-mail, target id, the whole row as text).
fn rows(app: &TestApp) -> Vec<(String, Option<String>, Option<String>, String)> {
    let entries: Vec<portal::db::models::AuditEntry> = audit_log::table
        .order(audit_log::id.asc())
        .select(portal::db::models::AuditEntry::as_select())
        .load(&mut app.db())
        .expect("audit rows");
    entries.into_iter().map(|e| (e.action.clone(), e.actor_email.clone(), e.target_id.clone(), format!("{e:?}"))).collect()
}

#[tokio::test]
async fn every_security_relevant_action_is_recorded_without_secret_values() {
    let app = spawn_app().await;
    let admin =
        portal::accounts::create_verified_user(&app.state.db, "audit-admin@pusan.ac.kr", PASSWORD, "Admin", portal::domain::Role::Admin)
            .await
            .expect("admin");
    let admin_api = Api { app: &app, token: token_for(&app, "audit-admin@pusan.ac.kr", PASSWORD).await };

    // Accounts through the pages: sign-up, verification, a failed and a good login, logout.
    let link = app.sign_up("audit-kim@pusan.ac.kr").await;
    assert_eq!(app.client.get(&link).send().await.expect("verify").status(), 200);
    let failed = app.post_form("/login", &[("email", "audit-kim@pusan.ac.kr"), ("password", "not the password")]).await;
    assert_eq!(failed.status(), 401);
    assert_eq!(app.post_form("/login", &[("email", "audit-kim@pusan.ac.kr"), ("password", PASSWORD)]).await.status(), 303);
    assert_eq!(app.post_form("/logout", &[]).await.status(), 303);

    // Tokens: one created by logging in over the API, another created and revoked on the page.
    let kim = Api { app: &app, token: token_for(&app, "audit-kim@pusan.ac.kr", PASSWORD).await };
    let listed = kim.expect(reqwest::Method::GET, "/api/v1/tokens", serde_json::json!(null), 200).await;
    let token_id = listed["tokens"][0]["id"].as_i64().expect("token id");
    let spare = token_for(&app, "audit-kim@pusan.ac.kr", PASSWORD).await;
    let spare_api = Api { app: &app, token: spare };
    let spare_list = spare_api.expect(reqwest::Method::GET, "/api/v1/tokens", serde_json::json!(null), 200).await;
    let spare_id = spare_list["tokens"].as_array().expect("tokens").iter().filter_map(|t| t["id"].as_i64()).max().expect("id");
    assert_ne!(spare_id, token_id);
    assert_eq!(kim.send(reqwest::Method::DELETE, &format!("/api/v1/tokens/{spare_id}"), None).await.0, 204);

    // Projects: create, a secret and a plain variable, visibility, scaling, two deploys, rollback.
    kim.expect(reqwest::Method::POST, "/api/v1/projects", serde_json::json!({"name": "audit-site", "template": "auto"}), 201).await;
    kim.expect(
        reqwest::Method::PUT,
        "/api/v1/projects/audit-site/env/API_KEY",
        serde_json::json!({"value": SECRET_VALUE, "secret": true}),
        204,
    )
    .await;
    kim.expect(
        reqwest::Method::PUT,
        "/api/v1/projects/audit-site/env/PLAIN",
        serde_json::json!({"value": SECRET_VALUE, "secret": false}),
        204,
    )
    .await;
    assert!(kim.send(reqwest::Method::DELETE, "/api/v1/projects/audit-site/env/PLAIN", None).await.0 < 300);
    kim.expect(reqwest::Method::PATCH, "/api/v1/projects/audit-site", serde_json::json!({"visibility": "campus"}), 200).await;
    kim.expect(reqwest::Method::PATCH, "/api/v1/projects/audit-site/scaling", serde_json::json!({"max_instances": 2}), 200).await;
    let first = app.deploy_live(&kim.token, "audit-live", "auto", example_zip("static-hello")).await;
    let (status, second) = app.deploy_zip(&kim.token, "audit-live", example_zip("static-hello")).await;
    assert_eq!(status, 202, "{second}");
    let second = app.wait_for_revision(&kim.token, "audit-live", second["number"].as_i64().expect("number")).await;
    assert_eq!(second["status"], "live", "{second}");
    kim.expect(reqwest::Method::POST, "/api/v1/projects/audit-live/rollback", serde_json::json!({"revision": first["number"]}), 200).await;

    // Groups: create, invite (an existing account becomes a member), transfer, remove, leave.
    let lee_link = app.sign_up("audit-lee@pusan.ac.kr").await;
    assert_eq!(app.client.get(&lee_link).send().await.expect("verify").status(), 200);
    let lee = Api { app: &app, token: token_for(&app, "audit-lee@pusan.ac.kr", PASSWORD).await };
    kim.expect(reqwest::Method::POST, "/api/v1/groups", serde_json::json!({"name": "audit-club"}), 201).await;
    kim.expect(
        reqwest::Method::POST,
        "/api/v1/groups/audit-club/members",
        serde_json::json!({"email": "audit-lee@pusan.ac.kr", "role": "viewer"}),
        200,
    )
    .await;
    kim.expect(
        reqwest::Method::POST,
        "/api/v1/groups/audit-club/members",
        serde_json::json!({"email": "audit-new@pusan.ac.kr", "role": "viewer"}),
        200,
    )
    .await;
    kim.expect(reqwest::Method::POST, "/api/v1/groups/audit-club/transfer", serde_json::json!({"email": "audit-lee@pusan.ac.kr"}), 200)
        .await;
    assert!(lee.send(reqwest::Method::DELETE, "/api/v1/groups/audit-club/members/audit-new@pusan.ac.kr", None).await.0 < 300);
    assert!(kim.send(reqwest::Method::POST, "/api/v1/groups/audit-club/leave", None).await.0 < 300);

    // Admin actions: a role change and quotas.
    let kim_id = portal::db::users::find_by_email(&mut app.db(), "audit-kim@pusan.ac.kr").expect("query").expect("kim exists").id;
    admin_api.expect(reqwest::Method::PATCH, &format!("/api/v1/admin/users/{kim_id}"), serde_json::json!({"role": "professor"}), 200).await;
    admin_api.expect(reqwest::Method::PUT, &format!("/api/v1/admin/users/{kim_id}/quota"), serde_json::json!({"projects": 7}), 200).await;
    admin_api.expect(reqwest::Method::PUT, "/api/v1/admin/groups/audit-club/quota", serde_json::json!({"instances": 3}), 200).await;

    // Passwords: a change, a reset request and the reset; then logging out everywhere.
    let new_password = "a brand new passphrase";
    kim.expect(
        reqwest::Method::POST,
        "/api/v1/me/password",
        serde_json::json!({"current_password": PASSWORD, "new_password": new_password}),
        204,
    )
    .await;
    let reset =
        app.client.post(app.url("/api/v1/password-reset")).json(&serde_json::json!({"email": "audit-kim@pusan.ac.kr"})).send().await;
    assert!(reset.expect("reset").status().is_success());
    let mails = app.wait_for_mail("audit-kim@pusan.ac.kr", 2).await;
    let reset_link = TestApp::link_in(mails.last().expect("reset mail"), "/password/reset");
    let confirmed = app
        .client
        .post(app.url("/api/v1/password-reset/confirm"))
        .json(&serde_json::json!({"token": TestApp::token_of(&reset_link), "password": PASSWORD}))
        .send()
        .await
        .expect("confirm");
    assert!(confirmed.status().is_success(), "{}", confirmed.text().await.unwrap_or_default());
    let lee_out = lee.expect(reqwest::Method::POST, "/api/v1/me/logout-everywhere", serde_json::json!({}), 200).await;
    assert!(lee_out["sessions_ended"].is_number());
    kim.expect(reqwest::Method::POST, "/api/v1/projects/audit-live/sleep", serde_json::json!({"freeze": false}), 200).await;
    assert!(kim.send(reqwest::Method::DELETE, "/api/v1/projects/audit-site", None).await.0 < 300);

    let all = rows(&app);
    let has = |action: &str, actor: Option<&str>, target: Option<&str>| {
        all.iter().any(|(a, who, what, _)| {
            a == action && (actor.is_none() || who.as_deref() == actor) && (target.is_none() || what.as_deref() == target)
        })
    };
    let kim_email = Some("audit-kim@pusan.ac.kr");
    let kim_target = kim_id.to_string();
    for (action, actor, target) in [
        ("admin.user_create", None, Some(admin.id.to_string().as_str())),
        ("account.signup", kim_email, Some(kim_target.as_str())),
        ("account.verify", kim_email, Some(kim_target.as_str())),
        ("account.login_failed", kim_email, None),
        ("account.login", kim_email, Some(kim_target.as_str())),
        ("account.logout", kim_email, None),
        ("token.create", kim_email, None),
        ("token.revoke", kim_email, Some(spare_id.to_string().as_str())),
        ("project.create", kim_email, Some("audit-site")),
        ("project.env_set", kim_email, Some("audit-site")),
        ("project.env_unset", kim_email, Some("audit-site")),
        ("project.visibility", kim_email, Some("audit-site")),
        ("project.scaling", kim_email, Some("audit-site")),
        ("project.deploy", kim_email, Some("audit-live")),
        ("project.rollback", kim_email, Some("audit-live")),
        ("project.sleep", kim_email, Some("audit-live")),
        ("project.delete", kim_email, Some("audit-site")),
        ("group.create", kim_email, Some("audit-club")),
        ("group.invite", kim_email, Some("audit-club")),
        ("group.transfer", kim_email, Some("audit-club")),
        ("group.member_remove", Some("audit-lee@pusan.ac.kr"), Some("audit-club")),
        ("group.leave", kim_email, Some("audit-club")),
        ("admin.role_change", Some(admin.email.as_str()), Some(kim_target.as_str())),
        ("admin.quota_set", Some(admin.email.as_str()), Some(kim_target.as_str())),
        ("admin.quota_set", Some(admin.email.as_str()), Some("audit-club")),
        ("account.password_change", kim_email, Some(kim_target.as_str())),
        ("account.password_reset_request", kim_email, None),
        ("account.password_reset", kim_email, Some(kim_target.as_str())),
        ("account.logout_everywhere", Some("audit-lee@pusan.ac.kr"), None),
    ] {
        assert!(has(action, actor, target), "no {action} entry by {actor:?} on {target:?}; the log holds:\n{all:#?}");
    }
    let failed_login = all.iter().find(|(a, ..)| a == "account.login_failed").expect("a failed login");
    assert!(failed_login.3.contains("invalid_credentials") && failed_login.3.contains("127.0.0.1"), "{failed_login:?}");
    assert!(
        all.iter().any(|(a, _, _, row)| a == "project.env_set" && row.contains("API_KEY") && row.contains("secret\": Bool(true)")),
        "{all:#?}"
    );

    // Neither the table nor the export holds a secret value or a password.
    for (_, _, _, row) in &all {
        for forbidden in [SECRET_VALUE, PASSWORD, new_password, kim.token.as_str()] {
            assert!(!row.contains(forbidden), "an audit row holds `{forbidden}`: {row}");
        }
    }
    let csv = admin_api.app.client.get(app.url("/api/v1/admin/audit/export")).bearer_auth(&admin_api.token).send().await.expect("export");
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().expect("type").starts_with("text/csv"));
    let csv = csv.text().await.expect("csv");
    assert!(csv.starts_with("id,at,actor_id,actor_email,client_ip,user_agent,action,target_kind,target_id,details\n"), "{csv}");
    assert!(csv.contains("project.env_set") && csv.contains("API_KEY"), "{csv}");
    for forbidden in [SECRET_VALUE, PASSWORD, new_password] {
        assert!(!csv.contains(forbidden), "the CSV export holds `{forbidden}`");
    }
    assert!(
        rows(&app).iter().any(|(a, who, ..)| a == "admin.audit_export" && who.as_deref() == Some(admin.email.as_str())),
        "exports are recorded"
    );
}

#[tokio::test]
async fn the_log_is_searchable_paged_escaped_for_spreadsheets_and_append_only() {
    // Sixty failed logins from one address would otherwise lock it out.
    let app = spawn_app_with(AppOptions { extra_accounts: "login_max_per_ip = 1000\n".into(), ..AppOptions::default() }).await;
    portal::accounts::create_verified_user(&app.state.db, "search-admin@pusan.ac.kr", PASSWORD, "Admin", portal::domain::Role::Admin)
        .await
        .expect("admin");
    let admin = Api { app: &app, token: token_for(&app, "search-admin@pusan.ac.kr", PASSWORD).await };
    let student = app.api_token("search-kim@pusan.ac.kr").await;
    // 60 failed logins from a client whose user agent is a spreadsheet formula.
    for _ in 0..60 {
        let response = app
            .client
            .post(app.url("/api/v1/tokens"))
            .header("User-Agent", "=HYPERLINK(\"http://evil.example\")")
            .json(&serde_json::json!({"email": "ghost@pusan.ac.kr", "password": "wrong", "name": "x"}))
            .send()
            .await
            .expect("POST");
        assert!(matches!(response.status().as_u16(), 401 | 429));
    }

    let page1 = admin.expect(reqwest::Method::GET, "/api/v1/admin/audit?action=account.login_failed", serde_json::json!(null), 200).await;
    assert_eq!((page1["total"].as_i64(), page1["page_size"].as_i64()), (Some(60), Some(50)), "{page1}");
    assert_eq!(page1["entries"].as_array().map(Vec::len), Some(50));
    assert_eq!(page1["entries"][0]["actor_email"], "ghost@pusan.ac.kr");
    let page2 =
        admin.expect(reqwest::Method::GET, "/api/v1/admin/audit?action=account.login_failed&page=2", serde_json::json!(null), 200).await;
    assert_eq!(page2["entries"].as_array().map(Vec::len), Some(10));
    let by_prefix =
        admin.expect(reqwest::Method::GET, "/api/v1/admin/audit?action=account.&actor=search-kim", serde_json::json!(null), 200).await;
    let actions: Vec<&str> = by_prefix["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"account.signup") && actions.iter().all(|a| a.starts_with("account.")), "{actions:?}");
    let future = admin.expect(reqwest::Method::GET, "/api/v1/admin/audit?from=2099-01-01", serde_json::json!(null), 200).await;
    assert_eq!(future["total"], 0);
    let (status, error) = admin.send(reqwest::Method::GET, "/api/v1/admin/audit?from=yesterday", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("invalid_time")));
    let (status, _) = Api { app: &app, token: student }.send(reqwest::Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(status, 403, "students do not read the audit log");

    let csv = app
        .client
        .get(app.url("/api/v1/admin/audit/export?action=account.login_failed"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("csv");
    assert_eq!(csv.lines().count(), 61, "a header and 60 rows");
    assert!(csv.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\")\",") && !csv.contains(",=HYPERLINK"), "{csv}");

    // The admin page shows the same search; students get 403.
    app.post_form("/login", &[("email", "search-admin@pusan.ac.kr"), ("password", PASSWORD)]).await;
    let page = text(app.get("/admin/audit?action=account.login_failed").await).await;
    assert!(page.contains("data-testid=\"audit-table\"") && page.contains("ghost@pusan.ac.kr") && page.contains("page=2"), "{page}");
    let bad = app.get("/admin/audit?to=tomorrow").await;
    assert_eq!(bad.status(), 422);
    let download = app.get("/admin/audit.csv?action=account.login_failed").await;
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-disposition"].to_str().expect("header").contains("attachment"));

    // The database refuses to change or delete entries, whoever asks.
    let mut conn = app.db();
    let update = diesel::sql_query("UPDATE audit_log SET action = 'account.nothing'").execute(&mut conn);
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = diesel::sql_query("DELETE FROM audit_log").execute(&mut conn);
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    let truncate = diesel::sql_query("TRUNCATE audit_log").execute(&mut conn);
    assert!(truncate.is_err());
    let count: i64 = audit_log::table.count().get_result(&mut conn).expect("count");
    assert!(count >= 60);
}
