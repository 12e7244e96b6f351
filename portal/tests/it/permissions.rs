//! The permission matrix through the real API routes: for each kind of user (the group's owner,
//! a maintainer, a viewer, another student, an anonymous caller, a platform admin) and each action
//! (view, deploy, change env, change visibility, delete, manage members), the actual `/api/v1`
//! route is called and its status compared with the table in `domain::permissions`. Afterwards
//! the database is read back, so a refused call is shown to have changed nothing and an allowed
//! one to have done its work.
//!
//! The API's convention: 401 without a token; 403 for a project the caller may not act on (project
//! names are public, they are subdomains); 404 for a group the caller is not in (group names are
//! not public).

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use crate::helpers::{pack, project_dir, spawn_app, TestApp};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    Maintainer,
    Viewer,
    OtherStudent,
    Anonymous,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    View,
    Deploy,
    ChangeEnv,
    ChangeVisibility,
    Delete,
    ManageMembers,
}

const ACTIONS: [Action; 6] =
    [Action::View, Action::Deploy, Action::ChangeEnv, Action::ChangeVisibility, Action::Delete, Action::ManageMembers];

/// The expected status of each action, in the order of `ACTIONS`.
const MATRIX: [(Who, [u16; 6]); 6] = [
    //                      view deploy env  visib. delete members
    (Who::Owner, [200, 202, 204, 200, 204, 200]),
    (Who::Maintainer, [200, 202, 204, 403, 403, 403]),
    (Who::Viewer, [200, 403, 403, 403, 403, 403]),
    (Who::OtherStudent, [403, 403, 403, 403, 403, 404]),
    (Who::Anonymous, [401, 401, 401, 401, 401, 401]),
    (Who::Admin, [200, 202, 204, 200, 204, 200]),
];

fn slug(who: Who) -> String {
    format!("{who:?}").to_ascii_lowercase()
}

fn static_zip() -> Vec<u8> {
    let dir = project_dir(&[("index.html", "<h1>matrix</h1>")]);
    pack(dir.path())
}

/// Calls the route that carries out `action` on project `name` (group `group`) as `token`.
async fn attempt(app: &TestApp, token: Option<&str>, who: Who, action: Action, name: &str, group: &str) -> u16 {
    let client = &app.client;
    let project = format!("/api/v1/projects/{name}");
    let request = match action {
        Action::View => client.get(app.url(&project)),
        Action::Deploy => {
            client.post(app.url(&format!("{project}/deployments"))).header("Content-Type", "application/zip").body(static_zip())
        }
        Action::ChangeEnv => client
            .put(app.url(&format!("{project}/env/SET_BY_{}", slug(who).to_ascii_uppercase())))
            .json(&serde_json::json!({"value": "1"})),
        Action::ChangeVisibility => client.patch(app.url(&project)).json(&serde_json::json!({"visibility": "campus"})),
        // Each caller tries to delete its own copy, so that an allowed deletion leaves the others' targets.
        Action::Delete => client.delete(app.url(&format!("/api/v1/projects/mx-del-{}", slug(who)))),
        Action::ManageMembers => client
            .post(app.url(&format!("/api/v1/groups/{group}/members")))
            .json(&serde_json::json!({"email": format!("mx-invited-by-{}@pusan.ac.kr", slug(who)), "role": "viewer"})),
    };
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("{who:?} {action:?}: {e}"));
    let status = response.status().as_u16();
    if status >= 400 {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(body["error"]["code"].is_string(), "{who:?} {action:?}: a refusal without an error code: {body}");
    }
    status
}

#[tokio::test]
async fn each_role_can_do_exactly_what_the_permission_table_says_through_the_api() {
    let app = spawn_app().await;
    let owner = app.api_token("mx-owner@pusan.ac.kr").await;
    let maintainer = app.api_token("mx-maintainer@pusan.ac.kr").await;
    let viewer = app.api_token("mx-viewer@pusan.ac.kr").await;
    let other = app.api_token("mx-other@pusan.ac.kr").await;
    let admin = app.api_token("mx-admin@pusan.ac.kr").await;
    {
        use portal::db::schema::users;
        diesel::update(users::table.filter(users::email.eq("mx-admin@pusan.ac.kr")))
            .set(users::role.eq("admin"))
            .execute(&mut app.db())
            .expect("make mx-admin an admin");
    }

    // The group, its members, the project under test and one deletion target per caller.
    let post =
        |token: &str, path: &str, body: serde_json::Value| app.client.post(app.url(path)).bearer_auth(token.to_owned()).json(&body).send();
    assert_eq!(post(&owner, "/api/v1/groups", serde_json::json!({"name": "mx-club"})).await.expect("group").status(), 201);
    for (email, role) in [("mx-maintainer@pusan.ac.kr", "maintainer"), ("mx-viewer@pusan.ac.kr", "viewer")] {
        let invited =
            post(&owner, "/api/v1/groups/mx-club/members", serde_json::json!({"email": email, "role": role})).await.expect("invite");
        assert_eq!(invited.status(), 200);
    }
    let mut names = vec!["mx-app".to_owned()];
    names.extend(MATRIX.iter().map(|(who, _)| format!("mx-del-{}", slug(*who))));
    for name in &names {
        let created = post(&owner, "/api/v1/projects", serde_json::json!({"name": name, "template": "static", "group": "mx-club"}))
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "creating {name}");
    }

    let mut failures = Vec::new();
    for (who, expected) in MATRIX {
        let token = match who {
            Who::Owner => Some(owner.as_str()),
            Who::Maintainer => Some(maintainer.as_str()),
            Who::Viewer => Some(viewer.as_str()),
            Who::OtherStudent => Some(other.as_str()),
            Who::Anonymous => None,
            Who::Admin => Some(admin.as_str()),
        };
        for (action, expected_status) in ACTIONS.into_iter().zip(expected) {
            let status = attempt(&app, token, who, action, "mx-app", "mx-club").await;
            if status != expected_status {
                failures.push(format!("{who:?} {action:?}: expected {expected_status}, got {status}"));
            }
        }
    }
    assert!(failures.is_empty(), "the routes disagree with the table:\n{}", failures.join("\n"));

    // What the database holds afterwards: exactly the allowed callers' changes.
    let allowed = |action: Action| -> Vec<String> {
        let column = ACTIONS.iter().position(|a| *a == action).expect("an action of the table");
        let mut whos: Vec<String> = MATRIX.iter().filter(|(_, statuses)| statuses[column] < 300).map(|(who, _)| slug(*who)).collect();
        whos.sort();
        whos
    };
    let mut conn = app.db();
    use portal::db::schema::{group_invitations, project_env, projects, revisions};
    let project_id: i64 =
        projects::table.filter(projects::name.eq("mx-app")).select(projects::id).first(&mut conn).expect("mx-app still exists");
    let mut env_setters: Vec<String> = project_env::table
        .filter(project_env::project_id.eq(project_id))
        .select(project_env::name)
        .load::<String>(&mut conn)
        .expect("env")
        .into_iter()
        .map(|name| name.trim_start_matches("SET_BY_").to_ascii_lowercase())
        .collect();
    env_setters.sort();
    assert_eq!(env_setters, allowed(Action::ChangeEnv), "variables set");
    let n_revisions: i64 = revisions::table.filter(revisions::project_id.eq(project_id)).count().get_result(&mut conn).expect("count");
    assert_eq!(n_revisions as usize, allowed(Action::Deploy).len(), "revisions queued");
    let visibility: String = projects::table.find(project_id).select(projects::visibility).first(&mut conn).expect("visibility");
    assert_eq!(visibility, "campus");
    let mut deleted: Vec<String> = MATRIX
        .iter()
        .map(|(who, _)| slug(*who))
        .filter(|slug| {
            let name = format!("mx-del-{slug}");
            let n: i64 = projects::table.filter(projects::name.eq(&name)).count().get_result(&mut conn).expect("count");
            n == 0
        })
        .collect();
    deleted.sort();
    assert_eq!(deleted, allowed(Action::Delete), "projects deleted");
    let mut inviters: Vec<String> = group_invitations::table
        .select(group_invitations::email)
        .load::<String>(&mut conn)
        .expect("invitations")
        .into_iter()
        .filter_map(|email| email.strip_prefix("mx-invited-by-").and_then(|rest| rest.split_once('@')).map(|(who, _)| who.to_owned()))
        .collect();
    inviters.sort();
    assert_eq!(inviters, allowed(Action::ManageMembers), "invitations sent");
}
