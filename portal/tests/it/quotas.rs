//! Quotas through the API: an admin sets each limit, the student reaches it, and the refusal names
//! the quota and its value (`quota_exceeded`) and leaves nothing half-created: no project row, no
//! revision, no stored artifact, no changed setting.

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use crate::helpers::{pack, project_dir, spawn_app, TestApp};

async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Asserts a `quota_exceeded` refusal whose message names `quota` and `value`.
fn assert_quota_refusal(answer: &(u16, serde_json::Value), quota: &str, value: i64) {
    let (status, body) = answer;
    assert_eq!((*status, body["error"]["code"].as_str()), (422, Some("quota_exceeded")), "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains(&format!("the quota `{quota}` is {value}")), "{message}");
}

fn site_zip(text: &str) -> Vec<u8> {
    let dir = project_dir(&[("index.html", text)]);
    pack(dir.path())
}

fn n_revisions(app: &TestApp) -> i64 {
    use portal::db::schema::revisions;
    revisions::table.count().get_result(&mut app.db()).expect("count revisions")
}

fn n_artifacts(app: &TestApp) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries.filter_map(Result::ok).map(|e| if e.file_type().is_ok_and(|t| t.is_dir()) { count(&e.path()) } else { 1 }).sum()
    }
    count(&app.data_dir.join("artifacts"))
}

fn project_exists(app: &TestApp, name: &str) -> bool {
    use portal::db::schema::projects;
    let n: i64 = projects::table.filter(projects::name.eq(name)).count().get_result(&mut app.db()).expect("count projects");
    n > 0
}

#[tokio::test]
async fn reaching_each_quota_names_it_and_its_value_and_leaves_nothing_behind() {
    let app = spawn_app().await;
    let student = app.api_token("q-student@pusan.ac.kr").await;
    let admin = app.api_token("q-admin@pusan.ac.kr").await;
    {
        use portal::db::schema::users;
        diesel::update(users::table.filter(users::email.eq("q-admin@pusan.ac.kr")))
            .set(users::role.eq("admin"))
            .execute(&mut app.db())
            .expect("make q-admin an admin");
    }
    let student_id = app.api_get(&student, "/api/v1/me").await["id"].as_i64().expect("an id");
    let set_quota = |body: serde_json::Value| {
        let request = app.client.put(app.url(&format!("/api/v1/admin/users/{student_id}/quota"))).bearer_auth(&admin).json(&body);
        send(request)
    };
    let create = |name: &'static str, group: Option<&'static str>| {
        let request = app
            .client
            .post(app.url("/api/v1/projects"))
            .bearer_auth(&student)
            .json(&serde_json::json!({"name": name, "template": "static", "group": group}));
        send(request)
    };
    let scale = |name: &'static str, max_instances: u32| {
        let request = app
            .client
            .patch(app.url(&format!("/api/v1/projects/{name}/scaling")))
            .bearer_auth(&student)
            .json(&serde_json::json!({"max_instances": max_instances}));
        send(request)
    };
    // A student may not set quotas.
    let request = app
        .client
        .put(app.url(&format!("/api/v1/admin/users/{student_id}/quota")))
        .bearer_auth(&student)
        .json(&serde_json::json!({"projects": 100}));
    assert_eq!(send(request).await.0, 403);

    // Projects: one allowed, the second refused and not created.
    assert_eq!(set_quota(serde_json::json!({"projects": 1})).await.0, 200);
    assert_eq!(create("q-one", None).await.0, 201);
    assert_quota_refusal(&create("q-two", None).await, "projects", 1);
    assert!(!project_exists(&app, "q-two"), "a refused project was created");

    // Instances: a maximum within the quota is taken, one above it refused and not applied.
    assert_eq!(set_quota(serde_json::json!({"instances": 2})).await.0, 200);
    assert_eq!(scale("q-one", 2).await.0, 200);
    assert_quota_refusal(&scale("q-one", 3).await, "instances", 2);
    let scaling = app.api_get(&student, "/api/v1/projects/q-one/scaling").await;
    assert_eq!(scaling["scaling"]["max_instances"], 2, "{scaling}");

    // Memory: one static instance is 32 MB; two instances fit 64 MB, three do not, and a second
    // app does not fit beside the first: its upload is refused before anything is stored.
    assert_eq!(set_quota(serde_json::json!({"memory_mb": 64})).await.0, 200);
    let (status, revision) = app.deploy_zip(&student, "q-one", site_zip("<h1>one</h1>")).await;
    assert_eq!(status, 202, "{revision}");
    assert_quota_refusal(&scale("q-one", 3).await, "memory_mb", 64);
    let scaling = app.api_get(&student, "/api/v1/projects/q-one/scaling").await;
    assert_eq!(scaling["scaling"]["max_instances"], 2, "{scaling}");
    assert_eq!(create("q-two", None).await.0, 201);
    let (revisions_before, artifacts_before) = (n_revisions(&app), n_artifacts(&app));
    let refused = app.deploy_zip(&student, "q-two", site_zip("<h1>two</h1>")).await;
    assert_quota_refusal(&refused, "memory_mb", 64);
    assert_eq!((n_revisions(&app), n_artifacts(&app)), (revisions_before, artifacts_before), "a refused upload left something");

    // Builds per hour: q-one's upload above was this hour's one build; the next is refused.
    assert_eq!(set_quota(serde_json::json!({"builds_per_hour": 1})).await.0, 200);
    let (revisions_before, artifacts_before) = (n_revisions(&app), n_artifacts(&app));
    let refused = app.deploy_zip(&student, "q-one", site_zip("<h1>three</h1>")).await;
    assert_quota_refusal(&refused, "builds_per_hour", 1);
    assert_eq!((n_revisions(&app), n_artifacts(&app)), (revisions_before, artifacts_before), "a refused upload left something");

    // A group's quota counts the group's projects and says so.
    assert_eq!(set_quota(serde_json::json!({})).await.0, 200);
    let request = app.client.post(app.url("/api/v1/groups")).bearer_auth(&student).json(&serde_json::json!({"name": "q-club"}));
    assert_eq!(send(request).await.0, 201);
    let request =
        app.client.put(app.url("/api/v1/admin/groups/q-club/quota")).bearer_auth(&admin).json(&serde_json::json!({"projects": 0}));
    assert_eq!(send(request).await.0, 200);
    let refused = create("q-club-app", Some("q-club")).await;
    assert_quota_refusal(&refused, "projects", 0);
    assert!(refused.1["error"]["message"].as_str().expect("message").contains("for this group"), "{}", refused.1);
    assert!(!project_exists(&app, "q-club-app"), "a refused group project was created");
    // Personal projects are counted apart from the group's: with no personal limit, one more is fine.
    assert_eq!(create("q-three", None).await.0, 201);
}
