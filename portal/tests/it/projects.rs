//! Projects: names, templates, environment and secrets, permissions, deletion; through the API,
//! the pages and the CLI.

use diesel::prelude::*;

use crate::helpers::{spawn_app, text, TestApp, PASSWORD};

async fn api_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn project_names_follow_the_subdomain_rules_and_are_unique() {
    let app = spawn_app().await;
    let token = app.api_token("owner@pusan.ac.kr").await;
    let create =
        |name: &str| app.client.post(app.url("/api/v1/projects")).bearer_auth(&token).json(&serde_json::json!({ "name": name })).send();
    let (status, body) = api_json(create("quiz").await.expect("POST")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["template"].as_str()), (Some("quiz"), Some("auto")));
    assert!(body["url"].as_str().expect("url").starts_with("http://quiz.localhost:"));

    for (name, status, code) in [
        ("quiz", 409, "app_name_taken"),
        ("admin", 422, "app_name_reserved"),
        ("My_App", 422, "invalid_app_name"),
        ("a--b", 422, "invalid_app_name"),
        ("9lives", 422, "invalid_app_name"),
    ] {
        let (got, body) = api_json(create(name).await.expect("POST")).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{name}: {body}");
    }
    let bad_template = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "other", "template": "cobol" }))
        .send()
        .await
        .expect("POST");
    let (status, body) = api_json(bad_template).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("unknown_template")));
    assert!(body["error"]["message"].as_str().expect("message").contains("python"), "lists the templates: {body}");

    let availability =
        |name: &str| app.client.get(app.url(&format!("/api/v1/projects/availability?name={name}"))).bearer_auth(&token).send();
    assert_eq!(api_json(availability("quiz").await.expect("GET")).await.1["available"], false);
    assert_eq!(api_json(availability("fresh-name").await.expect("GET")).await.1["available"], true);
    assert_eq!(api_json(availability("www").await.expect("GET")).await.1["code"], "app_name_reserved");
}

#[tokio::test]
async fn secret_variables_are_sealed_and_never_shown_back() {
    let app = spawn_app().await;
    let token = app.api_token("secrets@pusan.ac.kr").await;
    app.client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "keeper", "template": "python" }))
        .send()
        .await
        .expect("POST");
    let put = |key: &str, value: &str, secret: bool| {
        app.client
            .put(app.url(&format!("/api/v1/projects/keeper/env/{key}")))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "value": value, "secret": secret }))
            .send()
    };
    assert_eq!(put("API_KEY", "sk-live-hunter2-value", true).await.expect("PUT").status(), 204);
    assert_eq!(put("MODE", "production", false).await.expect("PUT").status(), 204);
    let (status, body) = api_json(put("PORT", "1", false).await.expect("PUT")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("reserved_env_name")));

    let (_, listing) =
        api_json(app.client.get(app.url("/api/v1/projects/keeper/env")).bearer_auth(&token).send().await.expect("GET")).await;
    let listing_text = listing.to_string();
    assert!(!listing_text.contains("hunter2"), "the API never shows a secret: {listing_text}");
    assert!(listing_text.contains("\"MODE\"") && listing_text.contains("production"));

    // At rest: no plaintext in any column.
    let mut conn = app.db();
    let dump: Vec<(String, Option<String>)> = portal::db::schema::project_env::table
        .select((portal::db::schema::project_env::name, portal::db::schema::project_env::value))
        .load(&mut conn)
        .expect("env rows");
    assert!(dump.iter().any(|(name, value)| name == "API_KEY" && value.is_none()));
    let sealed: Vec<Vec<u8>> =
        portal::db::schema::sealed_secrets::table.select(portal::db::schema::sealed_secrets::sealed).load(&mut conn).expect("sealed");
    assert_eq!(sealed.len(), 1);
    assert!(!String::from_utf8_lossy(&sealed[0]).contains("hunter2"));

    // The runtime gets the real value.
    let project_id: i64 = portal::db::schema::projects::table.select(portal::db::schema::projects::id).first(&mut conn).expect("project");
    let resolved = portal::projects::resolved_env(&app.state, project_id).await.expect("resolve");
    assert!(resolved.iter().any(|(name, value)| name == "API_KEY" && value.0 == "sk-live-hunter2-value"));
    assert!(!format!("{resolved:?}").contains("hunter2"), "debug output hides values");

    // The page shows the secret as set, not its value.
    app.post_form("/login", &[("email", "secrets@pusan.ac.kr"), ("password", PASSWORD)]).await;
    let page = text(app.get("/projects/keeper").await).await;
    assert!(page.contains("API_KEY") && !page.contains("hunter2"), "{page}");

    // Unsetting removes the sealed copy too.
    assert_eq!(
        app.client.delete(app.url("/api/v1/projects/keeper/env/API_KEY")).bearer_auth(&token).send().await.expect("DELETE").status(),
        204
    );
    let n_sealed: i64 = portal::db::schema::sealed_secrets::table.count().get_result(&mut conn).expect("count");
    assert_eq!(n_sealed, 0);
}

#[tokio::test]
async fn only_the_owner_and_admins_manage_a_project() {
    let app = spawn_app().await;
    let owner = app.api_token("alice@pusan.ac.kr").await;
    let other = app.api_token("bob@pusan.ac.kr").await;
    app.client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({ "name": "alices" }))
        .send()
        .await
        .expect("POST");
    let attempts: Vec<reqwest::RequestBuilder> = vec![
        app.client.get(app.url("/api/v1/projects/alices")).bearer_auth(&other),
        app.client.patch(app.url("/api/v1/projects/alices")).bearer_auth(&other).json(&serde_json::json!({ "template": "static" })),
        app.client.get(app.url("/api/v1/projects/alices/env")).bearer_auth(&other),
        app.client.put(app.url("/api/v1/projects/alices/env/X")).bearer_auth(&other).json(&serde_json::json!({ "value": "1" })),
        app.client.delete(app.url("/api/v1/projects/alices/env/X")).bearer_auth(&other),
        app.client.delete(app.url("/api/v1/projects/alices")).bearer_auth(&other),
    ];
    for attempt in attempts {
        let (status, body) = api_json(attempt.send().await.expect("request")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    }
    let listed = api_json(app.client.get(app.url("/api/v1/projects")).bearer_auth(&other).send().await.expect("GET")).await.1;
    assert_eq!(listed["projects"].as_array().map(Vec::len), Some(0), "others' projects are not listed");

    portal::accounts::create_verified_user(&app.state.db, "root@pusan.ac.kr", PASSWORD, "Root", portal::domain::Role::Admin)
        .await
        .expect("admin");
    let admin = api_json(
        app.client
            .post(app.url("/api/v1/tokens"))
            .json(&serde_json::json!({"email": "root@pusan.ac.kr", "password": PASSWORD, "name": "x"}))
            .send()
            .await
            .expect("POST"),
    )
    .await
    .1["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(app.client.get(app.url("/api/v1/projects/alices")).bearer_auth(&admin).send().await.expect("GET").status(), 200);
    assert_eq!(app.client.get(app.url("/api/v1/projects/nobody")).bearer_auth(&admin).send().await.expect("GET").status(), 404);
}

#[tokio::test]
async fn pages_create_a_project_and_delete_it_only_after_the_name_is_typed() {
    let app = spawn_app().await;
    app.signed_in_user("pages@pusan.ac.kr").await;
    let created = app.post_form("/projects", &[("name", "club-site"), ("template", "static")]).await;
    assert_eq!(created.status(), 303);
    assert_eq!(created.headers()["location"], "/projects/club-site");
    let bad = app.post_form("/projects", &[("name", "Club Site"), ("template", "static")]).await;
    assert_eq!(bad.status(), 422);
    assert!(text(bad).await.contains("value=\"Club Site\""), "the form keeps the input");
    let availability: serde_json::Value = app.get("/projects/availability?name=club-site").await.json().await.expect("json");
    assert_eq!(availability["available"], false);

    let page = text(app.get("/projects/club-site").await).await;
    assert!(page.contains("http://club-site.localhost:") && page.contains("static"), "{page}");
    assert_eq!(app.post_form("/projects/club-site/env", &[("key", "GREETING"), ("value", "안녕하세요")]).await.status(), 303);
    assert!(text(app.get("/projects/club-site").await).await.contains("안녕하세요"));

    let wrong = app.post_form("/projects/club-site/delete", &[("confirm_name", "club")]).await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(app.get("/projects/club-site").await.status(), 200, "still there");
    assert_eq!(app.post_form("/projects/club-site/delete", &[("confirm_name", "club-site")]).await.status(), 303);
    assert_eq!(app.get("/projects/club-site").await.status(), 404);
    let again = app.post_form("/projects", &[("name", "club-site"), ("template", "auto")]).await;
    assert_eq!(again.status(), 303, "the name is free again");
    let _ = TestApp::cookie(&app.jar, &app.address, "slipway_session");
}
