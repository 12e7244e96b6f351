//! Group invitations by e-mail: the mail goes out through the durable queue (to a real SMTP
//! server), and an invitation for an address without an account becomes a membership when that
//! address signs up and is verified, with the invited role.

use crate::helpers::{spawn_app_with, AppOptions, TestApp, PASSWORD};

async fn invite(app: &TestApp, token: &str, group: &str, email: &str, role: &str) -> serde_json::Value {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/groups/{group}/members")))
        .bearer_auth(token)
        .json(&serde_json::json!({"email": email, "role": role}))
        .send()
        .await
        .expect("invite");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn an_invitation_mails_the_address_and_applies_when_it_signs_up_later() {
    let app = spawn_app_with(AppOptions { smtp: true, ..AppOptions::default() }).await;
    let owner = app.api_token("grp-owner@pusan.ac.kr").await;
    let member = app.api_token("grp-member@pusan.ac.kr").await;
    let created = app.client.post(app.url("/api/v1/groups")).bearer_auth(&owner).json(&serde_json::json!({"name": "grp-club"})).send();
    assert_eq!(created.await.expect("create").status(), 201);

    // An address with an account is a member at once and is told so.
    let invited = invite(&app, &owner, "grp-club", "grp-member@pusan.ac.kr", "maintainer").await;
    assert_eq!(invited["member"], true);
    let mails = app.wait_for_mail("grp-member@pusan.ac.kr", 2).await;
    let added = mails.last().expect("the group mail");
    assert!(added.subject.contains("grp-club"), "{}", added.subject);
    assert!(added.body.contains("maintainer") && added.body.contains(&format!("{}/groups/grp-club", app.address)), "{}", added.body);
    let groups = app.api_get(&member, "/api/v1/groups").await;
    assert_eq!(groups["groups"][0]["role"], "maintainer", "{groups}");

    // An address without an account gets an invitation to sign up; nothing else happens yet.
    let invited = invite(&app, &owner, "grp-club", "grp-later@pusan.ac.kr", "viewer").await;
    assert_eq!(invited["member"], false);
    let mails = app.wait_for_mail("grp-later@pusan.ac.kr", 1).await;
    assert!(mails[0].body.contains("grp-club") && mails[0].body.contains(&format!("{}/signup", app.address)), "{}", mails[0].body);
    let view = app.api_get(&owner, "/api/v1/groups/grp-club").await;
    assert_eq!(view["invitations"].as_array().map(Vec::len), Some(1), "{view}");

    // Signing up alone does not join (the address is not proven yet); verifying it does.
    let signed_up = app
        .post_form(
            "/signup",
            &[("email", "grp-later@pusan.ac.kr"), ("password", PASSWORD), ("display_name", "Later"), ("student_number", "202400001")],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let mails = app.wait_for_mail("grp-later@pusan.ac.kr", 2).await;
    let link = TestApp::link_in(mails.last().expect("the verification mail"), "/verify");
    let view = app.api_get(&owner, "/api/v1/groups/grp-club").await;
    assert!(!view["members"].to_string().contains("grp-later@"), "an unverified address joined: {view}");
    assert_eq!(app.client.get(&link).send().await.expect("verify").status(), 200);
    let view = app.api_get(&owner, "/api/v1/groups/grp-club").await;
    let later = view["members"].as_array().into_iter().flatten().find(|m| m["email"] == "grp-later@pusan.ac.kr");
    assert_eq!(later.map(|m| m["role"].clone()), Some(serde_json::json!("viewer")), "{view}");
    assert_eq!(view["invitations"].as_array().map(Vec::len), Some(0), "the invitation is used up: {view}");
}

#[tokio::test]
async fn the_group_page_lists_members_and_lets_only_owners_manage_them() {
    let app = spawn_app_with(AppOptions::default()).await;
    let owner_token = app.api_token("gp-owner@pusan.ac.kr").await;
    app.api_token("gp-viewer@pusan.ac.kr").await;
    let (owner, owner_jar) = app.new_browser();
    let (viewer, viewer_jar) = app.new_browser();
    for (client, jar, email) in [(&owner, &owner_jar, "gp-owner@pusan.ac.kr"), (&viewer, &viewer_jar, "gp-viewer@pusan.ac.kr")] {
        let response = app.post_form_as(client, jar, "/login", &[("email", email), ("password", PASSWORD)]).await;
        assert_eq!(response.status(), 303, "login of {email}");
    }

    // Created through the page, the group's page shows its owner.
    let response = app.post_form_as(&owner, &owner_jar, "/groups", &[("name", "gp-club")]).await;
    assert_eq!((response.status().as_u16(), response.headers()["Location"].to_str().ok()), (303, Some("/groups/gp-club")));
    let response =
        app.post_form_as(&owner, &owner_jar, "/groups/gp-club/invite", &[("email", "gp-viewer@pusan.ac.kr"), ("role", "viewer")]).await;
    assert_eq!(response.status(), 303);
    app.client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&owner_token)
        .json(&serde_json::json!({"name": "gp-app", "template": "static", "group": "gp-club"}))
        .send()
        .await
        .expect("create");
    let page = owner.get(app.url("/groups/gp-club")).send().await.expect("page").text().await.expect("html");
    for part in ["gp-owner@pusan.ac.kr", "gp-viewer@pusan.ac.kr", "gp-app", "data-testid=\"invite-form\"", "/groups/gp-club/remove"] {
        assert!(page.contains(part), "the owner's page lacks {part}");
    }

    // The viewer sees members and projects but no management forms, and a forged POST is refused.
    let page = viewer.get(app.url("/groups/gp-club")).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("gp-owner@pusan.ac.kr") && page.contains("gp-app"), "the viewer's page lacks members or projects");
    assert!(!page.contains("invite-form") && !page.contains("/groups/gp-club/remove"), "the viewer is offered management forms");
    let forged = app.post_form_as(&viewer, &viewer_jar, "/groups/gp-club/remove", &[("email", "gp-owner@pusan.ac.kr")]).await;
    assert_eq!(forged.status(), 403);
    // Without the CSRF token, even the owner's POST changes nothing.
    let no_csrf = owner
        .post(app.url("/groups/gp-club/remove"))
        .form(&[("csrf_token", "forged"), ("email", "gp-viewer@pusan.ac.kr")])
        .send()
        .await
        .expect("post");
    assert_eq!(no_csrf.status(), 403);
    // The viewer cannot change the project's visibility from the project page; the owner can.
    let refused = app.post_form_as(&viewer, &viewer_jar, "/projects/gp-app/visibility", &[("visibility", "public")]).await;
    assert_eq!(refused.status(), 403);
    let saved = app.post_form_as(&owner, &owner_jar, "/projects/gp-app/visibility", &[("visibility", "members")]).await;
    assert_eq!(saved.status(), 303);
    let project = app.api_get(&owner_token, "/api/v1/projects/gp-app").await;
    assert_eq!(project["visibility"], "members");
    let page = owner.get(app.url("/projects/gp-app")).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("visibility-form") && page.contains("value=\"members\" selected"), "the project page's visibility form");
    let view = app.api_get(&owner_token, "/api/v1/groups/gp-club").await;
    assert_eq!(view["members"].as_array().map(Vec::len), Some(2), "{view}");

    // The viewer leaves through the page.
    let left = app.post_form_as(&viewer, &viewer_jar, "/groups/gp-club/leave", &[]).await;
    assert_eq!((left.status().as_u16(), left.headers()["Location"].to_str().ok()), (303, Some("/groups")));
    let view = app.api_get(&owner_token, "/api/v1/groups/gp-club").await;
    assert_eq!(view["members"].as_array().map(Vec::len), Some(1), "{view}");
}
