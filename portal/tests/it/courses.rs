//! Courses end to end through the API: roster import (Canvas, Moodle, a mapped file, a CP949 file
//! and a broken one; preview changes nothing, confirming imports, re-importing does not
//! duplicate, invitations mail and apply at a later sign-up), submissions pinned as snapshots
//! that keep serving after the project is redeployed and after it is deleted, the deadline
//! sweep (time passed in), permissions (students see only their own work, grades only once
//! released; TAs only in their course), and the grade export parsed back column by column.

use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::{pack, project_dir, spawn_app_with, AppOptions, TestApp, PASSWORD};

fn static_site(text: &str) -> Vec<u8> {
    let dir = project_dir(&[("index.html", text)]);
    pack(dir.path())
}

fn make_professor(app: &TestApp, email: &str) {
    use portal::db::schema::users;
    diesel::update(users::table.filter(users::email.eq(email))).set(users::role.eq("professor")).execute(&mut app.db()).expect("promote");
}

async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app.client.request(method, app.url(path)).bearer_auth(token).json(&body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn roster(app: &TestApp, token: &str, course: i64, query: &str, file: Vec<u8>) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/courses/{course}/roster?{query}")))
        .bearer_auth(token)
        .header("Content-Type", "text/csv")
        .body(file)
        .send()
        .await
        .expect("roster");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn create_course(app: &TestApp, token: &str, code: &str) -> i64 {
    let (status, course) = send(
        app,
        token,
        reqwest::Method::POST,
        "/api/v1/courses",
        serde_json::json!({"code": code, "title": "웹 프로그래밍", "term": "2026-2", "section": "01"}),
    )
    .await;
    assert_eq!(status, 201, "{course}");
    course["course"]["id"].as_i64().expect("course id")
}

async fn create_assignment(app: &TestApp, token: &str, course: i64, body: serde_json::Value) -> i64 {
    let (status, assignment) = send(app, token, reqwest::Method::POST, &format!("/api/v1/courses/{course}/assignments"), body).await;
    assert_eq!(status, 201, "{assignment}");
    assignment["id"].as_i64().expect("assignment id")
}

fn outcomes(preview: &serde_json::Value) -> Vec<String> {
    preview["rows"].as_array().expect("rows").iter().map(|r| r["outcome"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn roster_files_preview_then_import_without_duplicates_and_invitations_apply_at_sign_up() {
    let app = spawn_app_with(AppOptions { smtp: true, ..AppOptions::default() }).await;
    let professor = app.api_token("cr-prof@pusan.ac.kr").await;
    make_professor(&app, "cr-prof@pusan.ac.kr");
    app.api_token("cr-minji@pusan.ac.kr").await;
    let course = create_course(&app, &professor, "CR101").await;

    // A student cannot create courses.
    let student = app.api_token("cr-student@pusan.ac.kr").await;
    let (status, _) =
        send(&app, &student, reqwest::Method::POST, "/api/v1/courses", serde_json::json!({"code": "X", "title": "X", "term": "X"})).await;
    assert_eq!(status, 403);

    // Canvas: the Points Possible row is skipped; one account matches by its login (an e-mail).
    let canvas = "Student,ID,SIS User ID,SIS Login ID,Section,Quiz (3)\n    Points Possible,,,,,10\n\"Kim, Minji\",11,202411111,cr-minji@pusan.ac.kr,01,\n\"Park, New\",12,202422222,cr-new@pusan.ac.kr,02,\nBroken,13,,not-an-email,01,\n";
    let (status, preview) = roster(&app, &professor, course, "", canvas.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["format"], "canvas");
    assert_eq!(outcomes(&preview), ["matched", "invite", "invalid"], "{preview}");
    assert_eq!(preview["rows"][2]["code"], "missing_field", "a Canvas login that is no address is no e-mail: {preview}");
    let details = app.api_get(&professor, &format!("/api/v1/courses/{course}")).await;
    assert_eq!(details["students"].as_array().map(Vec::len), Some(0), "a preview imports nothing: {details}");

    let (status, imported) = roster(&app, &professor, course, "confirm=true", canvas.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!((imported["enrolled"].as_u64(), imported["invited"].as_u64(), imported["skipped"].as_u64()), (Some(1), Some(1), Some(1)));
    let mails = app.wait_for_mail("cr-new@pusan.ac.kr", 1).await;
    assert!(mails[0].body.contains("CR101") && mails[0].body.contains(&format!("{}/signup", app.address)), "{}", mails[0].body);

    // Re-importing the same file changes rows in place and sends no second invitation.
    let (_, again) = roster(&app, &professor, course, "confirm=true", canvas.as_bytes().to_vec()).await;
    assert_eq!((again["enrolled"].as_u64(), again["invited"].as_u64(), again["updated"].as_u64()), (Some(0), Some(0), Some(2)), "{again}");
    let details = app.api_get(&professor, &format!("/api/v1/courses/{course}")).await;
    assert_eq!(details["students"].as_array().map(Vec::len), Some(1), "{details}");
    assert_eq!(details["invitations"].as_array().map(Vec::len), Some(1), "{details}");
    assert_eq!(details["students"][0]["roster_name"], "Kim, Minji");

    // Moodle, with a BOM; the same student again updates their section.
    let moodle = "\u{feff}First name,Surname,ID number,Email address,Department\nMinji,Kim,202411111,cr-minji@pusan.ac.kr,CSE\n";
    let (_, preview) = roster(&app, &professor, course, "", moodle.as_bytes().to_vec()).await;
    assert_eq!((preview["format"].as_str(), outcomes(&preview)), (Some("moodle"), vec!["matched".to_owned()]), "{preview}");

    // Any other file needs a mapping; CP949 from Korean Excel reads correctly with one.
    let korean = "이름,학번,이메일,분반\n김철수,202433333,cr-chulsoo@pusan.ac.kr,03\n이영희,202444444,cr-chulsoo@pusan.ac.kr,03\n";
    let (cp949, _, _) = encoding_rs::EUC_KR.encode(korean);
    let (status, refused) = roster(&app, &professor, course, "", cp949.to_vec()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("roster_needs_mapping")), "{refused}");
    let query = "email_column=%EC%9D%B4%EB%A9%94%EC%9D%BC&name_column=%EC%9D%B4%EB%A6%84&student_number_column=%ED%95%99%EB%B2%88&section_column=%EB%B6%84%EB%B0%98";
    let (status, preview) = roster(&app, &professor, course, query, cp949.to_vec()).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!((preview["encoding"].as_str(), preview["rows"][0]["name"].as_str()), (Some("cp949"), Some("김철수")));
    assert_eq!(outcomes(&preview), ["invite", "invalid"]);
    assert_eq!(preview["rows"][1]["code"], "duplicate");
    let (status, refused) = roster(&app, &professor, course, "email_column=mail", cp949.to_vec()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("roster_unknown_column")));
    // A large Canvas export (many students, a column per assignment) is read whole.
    let mut big = String::from("Student,ID,SIS User ID,SIS Login ID,Section");
    for column in 0..40 {
        big.push_str(&format!(",Quiz {column} ({column})"));
    }
    big.push('\n');
    for row in 0..3000 {
        big.push_str(&format!("\"Student, {row}\",{row},2099{row:05},big{row}@pusan.ac.kr,01{}\n", ",10".repeat(40)));
    }
    assert!(big.len() > 256 * 1024, "bigger than actix's default payload limit");
    let (status, preview) = roster(&app, &professor, course, "", big.into_bytes()).await;
    assert_eq!((status, preview["n_invite"].as_u64()), (200, Some(3000)));
    let (status, refused) = roster(&app, &professor, course, "", Vec::new()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("roster_empty")));

    // The invited address signs up later: verifying it enrols it with its roster fields.
    let signed_up = app
        .post_form(
            "/signup",
            &[("email", "cr-new@pusan.ac.kr"), ("password", PASSWORD), ("display_name", "Park"), ("student_number", "202422222")],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let mails = app.wait_for_mail("cr-new@pusan.ac.kr", 2).await;
    let link = TestApp::link_in(mails.last().expect("the verification mail"), "/verify");
    assert_eq!(app.client.get(&link).send().await.expect("verify").status(), 200);
    let details = app.api_get(&professor, &format!("/api/v1/courses/{course}")).await;
    let newcomer = details["students"].as_array().into_iter().flatten().find(|s| s["email"] == "cr-new@pusan.ac.kr");
    assert_eq!(newcomer.map(|s| s["section"].clone()), Some(serde_json::json!("02")), "{details}");
    assert_eq!(details["invitations"].as_array().map(Vec::len), Some(0), "{details}");
    let token = {
        let response = app
            .client
            .post(app.url("/api/v1/tokens"))
            .json(&serde_json::json!({"email": "cr-new@pusan.ac.kr", "password": PASSWORD, "name": "t"}))
            .send()
            .await
            .expect("token");
        response.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
    };
    let mine = app.api_get(&token, "/api/v1/courses").await;
    assert_eq!(mine["courses"][0]["role"], "student", "{mine}");
}

/// Enrols `emails` (which have accounts) through a mapped roster file.
async fn enrol(app: &TestApp, professor: &str, course: i64, emails: &[&str]) {
    let file = std::iter::once("email".to_owned()).chain(emails.iter().map(|e| e.to_string())).collect::<Vec<_>>().join("\n");
    let (status, imported) = roster(app, professor, course, "confirm=true&email_column=email", file.into_bytes()).await;
    assert_eq!((status, imported["enrolled"].as_u64()), (200, Some(emails.len() as u64)), "{imported}");
}

async fn submit(app: &TestApp, token: &str, assignment: i64, project: &str) -> (u16, serde_json::Value) {
    send(
        app,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/assignments/{assignment}/submissions"),
        serde_json::json!({"project": project}),
    )
    .await
}

/// Waits until the snapshot answers an anonymous visitor 200 with `text` (no redirect followed:
/// the login page a redirect leads to names the app too).
async fn snapshot_says(app: &TestApp, name: &str, text: &str) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .get(format!("http://127.0.0.1:{}/", app.gateway_port))
            .header("Host", format!("{name}.localhost"))
            .send()
            .await
            .expect("gateway");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status == 200 && body.contains(text) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} should say {text}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_snapshot_keeps_serving_after_redeploy_and_after_the_project_is_deleted() {
    let app = spawn_app_with(AppOptions::default()).await;
    let professor = app.api_token("cs-prof@pusan.ac.kr").await;
    make_professor(&app, "cs-prof@pusan.ac.kr");
    let student = app.api_token("cs-student@pusan.ac.kr").await;
    let course = create_course(&app, &professor, "CS201").await;
    enrol(&app, &professor, course, &["cs-student@pusan.ac.kr"]).await;
    // Due an hour ago, no cutoff, public after the deadline: the submission is late but taken.
    let due = chrono::Utc::now() - chrono::Duration::hours(1);
    let assignment = create_assignment(
        &app,
        &professor,
        course,
        serde_json::json!({"title": "Home page", "due_at": due.to_rfc3339(), "visibility": "public", "template": "static"}),
    )
    .await;

    let (status, refused) = submit(&app, &student, assignment, "cs-site").await;
    assert_eq!(status, 404, "a project that does not exist: {refused}");
    app.deploy_live(&student, "cs-site", "static", static_site("<h1>version one</h1>")).await;
    let (status, submitted) = submit(&app, &student, assignment, "cs-site").await;
    assert_eq!(status, 201, "{submitted}");
    let app_name = format!("cs-site--a{assignment}");
    assert!(submitted["snapshot_url"].as_str().is_some_and(|u| u.contains(&app_name)), "{submitted}");
    assert!(submitted["late_secs"].as_i64().is_some_and(|s| s >= 3600), "{submitted}");
    assert!(submitted["late_by"].as_str().is_some_and(|t| t.starts_with("1 h")), "{submitted}");
    snapshot_says(&app, &app_name, "version one").await;

    // Redeploying changes the live app, not the snapshot.
    let (status, queued) = app.deploy_zip(&student, "cs-site", static_site("<h1>version two</h1>")).await;
    assert_eq!(status, 202);
    let done = app.wait_for_revision(&student, "cs-site", queued["number"].as_i64().expect("number")).await;
    assert_eq!(done["status"], "live");
    let (_, live) = app.app_get_until("cs-site", "/", Duration::from_secs(30), |s, b| s == 200 && b.contains("version two")).await;
    assert!(live.contains("version two"), "{live}");
    app.state.runtime.stop(&app_name).await;
    let spec_gone = app.state.runtime.status(&app_name);
    assert_eq!(spec_gone.state, "stopped");
    portal::courses::restore_snapshots(app.state.clone()).await;
    snapshot_says(&app, &app_name, "version one").await;

    // The professor pre-warms from the grading list; the snapshot is asked to wake.
    let (status, warmed) =
        send(&app, &professor, reqwest::Method::POST, &format!("/api/v1/submissions/{}/prewarm", submitted["id"]), serde_json::json!({}))
            .await;
    assert_eq!((status, warmed["waking"][0].as_str()), (200, Some(app_name.as_str())), "{warmed}");

    // Deleting the project leaves the snapshot serving, and its row says where it came from.
    let deleted = app.client.delete(app.url("/api/v1/projects/cs-site")).bearer_auth(&student).send().await.expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let (status, _) = app.app_get_until("cs-site", "/", Duration::from_secs(10), |s, _| s == 404).await;
    assert_eq!(status, 404, "the live project is gone");
    snapshot_says(&app, &app_name, "version one").await;
    let listed = app.api_get(&professor, &format!("/api/v1/assignments/{assignment}/submissions")).await;
    assert_eq!(listed["submissions"][0]["project"], "cs-site", "{listed}");
    let artifact = listed["submissions"][0]["artifact"].as_str().expect("artifact id");
    let artifact = orchestrator::artifact::ArtifactId::parse(artifact).expect("an artifact id");
    assert!(app.state.artifacts.path(&artifact).exists(), "the pinned artifact outlives the project");
}

#[tokio::test]
async fn the_deadline_sweep_pins_the_newest_revision_deployed_before_the_deadline() {
    let app = spawn_app_with(AppOptions::default()).await;
    let professor = app.api_token("cd-prof@pusan.ac.kr").await;
    make_professor(&app, "cd-prof@pusan.ac.kr");
    let student = app.api_token("cd-student@pusan.ac.kr").await;
    let course = create_course(&app, &professor, "CD301").await;
    enrol(&app, &professor, course, &["cd-student@pusan.ac.kr"]).await;
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    let assignment = create_assignment(
        &app,
        &professor,
        course,
        serde_json::json!({"title": "Deadline", "due_at": due.to_rfc3339(), "cutoff_at": (due + chrono::Duration::hours(1)).to_rfc3339(), "visibility": "public"}),
    )
    .await;
    app.deploy_live(&student, "cd-site", "static", static_site("<p>draft</p>")).await;
    let (status, submitted) = submit(&app, &student, assignment, "cd-site").await;
    assert_eq!((status, submitted["late_secs"].as_i64()), (201, Some(0)), "{submitted}");
    // Before the deadline a public assignment's snapshot is for staff and submitters only.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let anonymous = no_redirects
        .get(format!("http://127.0.0.1:{}/", app.gateway_port))
        .header("Host", format!("cd-site--a{assignment}.localhost"))
        .send()
        .await
        .expect("gateway");
    assert_eq!(anonymous.status(), 302, "an anonymous visitor is sent to log in");

    let (_, queued) = app.deploy_zip(&student, "cd-site", static_site("<p>final</p>")).await;
    assert_eq!(app.wait_for_revision(&student, "cd-site", queued["number"].as_i64().expect("n")).await["status"], "live");
    // One second before the deadline the sweep does nothing; one second after, it pins again.
    assert_eq!(portal::courses::sweep(&app.state, due - chrono::Duration::seconds(1)).await.expect("sweep"), 0);
    assert_eq!(portal::courses::sweep(&app.state, due + chrono::Duration::seconds(1)).await.expect("sweep"), 1);
    assert_eq!(portal::courses::sweep(&app.state, due + chrono::Duration::seconds(2)).await.expect("sweep"), 0, "swept once only");
    let listed = app.api_get(&professor, &format!("/api/v1/assignments/{assignment}/submissions")).await;
    assert_eq!(
        (listed["submissions"][0]["pinned_reason"].as_str(), listed["submissions"][0]["revision"].as_i64()),
        (Some("deadline"), Some(2))
    );
    snapshot_says(&app, &format!("cd-site--a{assignment}"), "final").await;

    // After the cutoff nothing is accepted.
    let (status, refused) =
        send(&app, &professor, reqwest::Method::GET, &format!("/api/v1/assignments/{assignment}"), serde_json::json!({})).await;
    assert_eq!(status, 200, "{refused}");
    let late = portal::courses::submit(
        &app.state,
        &portal::db::users::find_by_email(&mut app.db(), "cd-student@pusan.ac.kr").expect("db").expect("user"),
        assignment,
        "cd-site",
        due + chrono::Duration::hours(1) + chrono::Duration::seconds(1),
    )
    .await;
    assert_eq!(late.map(|s| s.id).map_err(|e| e.code()), Err("submissions_closed"));
}

#[tokio::test]
async fn students_see_only_their_own_work_and_tas_only_their_course_and_the_export_reads_back() {
    let app = spawn_app_with(AppOptions::default()).await;
    let professor = app.api_token("cp-prof@pusan.ac.kr").await;
    make_professor(&app, "cp-prof@pusan.ac.kr");
    let ta = app.api_token("cp-ta@pusan.ac.kr").await;
    let alice = app.api_token("cp-alice@pusan.ac.kr").await;
    let bob = app.api_token("cp-bob@pusan.ac.kr").await;
    let course = create_course(&app, &professor, "CP401").await;
    let other_course = create_course(&app, &professor, "CP999").await;
    let (status, _) = send(
        &app,
        &professor,
        reqwest::Method::POST,
        &format!("/api/v1/courses/{course}/staff"),
        serde_json::json!({"email": "cp-ta@pusan.ac.kr"}),
    )
    .await;
    assert_eq!(status, 200);
    let file = "이메일,이름,학번,분반\ncp-alice@pusan.ac.kr,김앨리스,202400001,01\ncp-bob@pusan.ac.kr,=cmd|' /C calc'!A0,202400002,02\n";
    let (status, _) = roster(
        &app,
        &professor,
        course,
        "confirm=true&email_column=%EC%9D%B4%EB%A9%94%EC%9D%BC&name_column=%EC%9D%B4%EB%A6%84&student_number_column=%ED%95%99%EB%B2%88&section_column=%EB%B6%84%EB%B0%98",
        file.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let due = chrono::Utc::now() + chrono::Duration::days(1);
    let assignment = create_assignment(
        &app,
        &professor,
        course,
        serde_json::json!({"title": "Lab 1", "due_at": due.to_rfc3339(), "rubric": [{"name": "works", "points": 6}, {"name": "style", "points": 4}]}),
    )
    .await;
    app.deploy_live(&alice, "cp-alice", "static", static_site("alice")).await;
    app.deploy_live(&bob, "cp-bob", "static", static_site("bob")).await;
    let (_, alice_sub) = submit(&app, &alice, assignment, "cp-alice").await;
    let (_, bob_sub) = submit(&app, &bob, assignment, "cp-bob").await;
    let (alice_id, bob_id) = (alice_sub["id"].as_i64().expect("id"), bob_sub["id"].as_i64().expect("id"));

    // Bob cannot submit Alice's project, see her submission, list submissions or grade.
    assert_eq!(submit(&app, &bob, assignment, "cp-alice").await.0, 403);
    assert_eq!(send(&app, &bob, reqwest::Method::GET, &format!("/api/v1/submissions/{alice_id}"), serde_json::json!({})).await.0, 404);
    assert_eq!(
        send(&app, &bob, reqwest::Method::GET, &format!("/api/v1/assignments/{assignment}/submissions"), serde_json::json!({})).await.0,
        403
    );
    let grade = serde_json::json!({"scores": [6, 3.5], "feedback": "=good"});
    assert_eq!(send(&app, &bob, reqwest::Method::PUT, &format!("/api/v1/submissions/{bob_id}/grade"), grade.clone()).await.0, 403);

    // The TA grades in their course (a score above the item's points is refused) ...
    let (status, refused) =
        send(&app, &ta, reqwest::Method::PUT, &format!("/api/v1/submissions/{alice_id}/grade"), serde_json::json!({"scores": [7, null]}))
            .await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("invalid_scores")));
    let (status, graded) = send(&app, &ta, reqwest::Method::PUT, &format!("/api/v1/submissions/{alice_id}/grade"), grade).await;
    assert_eq!((status, graded["grade"].as_f64()), (200, Some(9.5)), "{graded}");
    // Course staff may look at a submitted project (never change it); Bob may not look at Alice's.
    assert_eq!(app.api_get(&ta, "/api/v1/projects/cp-alice").await["name"], "cp-alice");
    let (status, _) =
        send(&app, &ta, reqwest::Method::PATCH, "/api/v1/projects/cp-alice", serde_json::json!({"visibility": "public"})).await;
    assert_eq!(status, 403);
    assert_eq!(app.api_get(&bob, "/api/v1/projects/cp-alice").await["error"]["code"], "forbidden");
    // ... but not in another course, which they cannot even see, nor release grades.
    assert_eq!(app.api_get(&ta, &format!("/api/v1/courses/{other_course}")).await["error"]["code"], "not_found");
    let (status, _) =
        send(&app, &ta, reqwest::Method::POST, &format!("/api/v1/assignments/{assignment}/release"), serde_json::json!({"released": true}))
            .await;
    assert_eq!(status, 403);

    // Alice sees her submission but not the grade until the professor releases it.
    let mine = app.api_get(&alice, &format!("/api/v1/submissions/{alice_id}")).await;
    assert_eq!((mine["grade"].clone(), mine["feedback"].as_str()), (serde_json::Value::Null, Some("")), "{mine}");
    let (status, _) = send(
        &app,
        &professor,
        reqwest::Method::POST,
        &format!("/api/v1/assignments/{assignment}/release"),
        serde_json::json!({"released": true}),
    )
    .await;
    assert_eq!(status, 200);
    let mine = app.api_get(&alice, &format!("/api/v1/assignments/{assignment}")).await;
    assert_eq!(mine["your_submission"]["grade"].as_f64(), Some(9.5), "{mine}");
    // The grade change and the release are in the audit log (the refused attempts are not).
    let audited: Vec<(String, Option<String>, serde_json::Value)> = {
        use portal::db::schema::audit_log;
        audit_log::table
            .filter(audit_log::action.like("grade.%"))
            .order(audit_log::id.asc())
            .select((audit_log::action, audit_log::target_id, audit_log::details))
            .load(&mut app.db())
            .expect("audit entries")
    };
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!((audited[0].0.as_str(), audited[0].1.as_deref()), ("grade.change", Some(alice_id.to_string().as_str())));
    assert_eq!((audited[0].2["from"].clone(), audited[0].2["to"].as_f64()), (serde_json::Value::Null, Some(9.5)));
    assert_eq!((audited[1].0.as_str(), audited[1].2["released"].as_bool()), ("grade.release", Some(true)));
    // A student's view of the course lists no classmates.
    let course_view = app.api_get(&bob, &format!("/api/v1/courses/{course}")).await;
    assert_eq!(course_view["students"].as_array().map(Vec::len), Some(0), "{course_view}");

    // The staff's snapshot access: the professor may open Bob's snapshot, Alice may not.
    let record = |app_name: String| {
        let state = app.state.clone();
        async move {
            let submission = state
                .db
                .run(move |conn| {
                    use portal::db::schema::submissions;
                    Ok::<_, portal::db::DbError>(
                        submissions::table
                            .filter(submissions::app_name.eq(app_name))
                            .select(portal::db::models::Submission::as_select())
                            .first(conn)?,
                    )
                })
                .await
                .expect("row");
            state
                .db
                .run(move |conn| portal::courses::snapshot_record(conn, &submission, chrono::Utc::now()))
                .await
                .expect("record")
                .expect("some")
        }
    };
    let bob_record = record(format!("cp-bob--a{assignment}")).await;
    let ids = |email: &str| portal::db::users::find_by_email(&mut app.db(), email).expect("db").expect("user").id;
    assert!(bob_record.users.contains(&ids("cp-prof@pusan.ac.kr")) && bob_record.users.contains(&ids("cp-ta@pusan.ac.kr")));
    assert!(bob_record.users.contains(&ids("cp-bob@pusan.ac.kr")) && !bob_record.users.contains(&ids("cp-alice@pusan.ac.kr")));

    // The export, parsed back: Canvas, Moodle and plain, with and without BOM.
    let download = |query: &'static str| {
        let (app, professor) = (&app, professor.clone());
        async move {
            let response = app
                .client
                .get(app.url(&format!("/api/v1/courses/{course}/grades.csv?{query}")))
                .bearer_auth(&professor)
                .send()
                .await
                .expect("csv");
            assert_eq!(response.status(), 200);
            assert!(response.headers()["Content-Type"].to_str().is_ok_and(|t| t.starts_with("text/csv")));
            response.bytes().await.expect("body").to_vec()
        }
    };
    let parse = |bytes: &[u8]| -> Vec<Vec<String>> {
        let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).expect("utf-8");
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
            .collect()
    };
    let canvas = download("format=canvas&bom=true").await;
    assert!(canvas.starts_with(b"\xEF\xBB\xBF"), "the BOM comes first");
    let rows = parse(&canvas);
    assert_eq!(rows[0], ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", &format!("Lab 1 ({assignment})")]);
    assert_eq!(rows[1], ["김앨리스", "", "202400001", "cp-alice@pusan.ac.kr", "01", "9.5"]);
    assert_eq!(rows[2], ["'=cmd|' /C calc'!A0", "", "202400002", "cp-bob@pusan.ac.kr", "02", ""]);
    let moodle = download("format=moodle").await;
    assert!(!moodle.starts_with(b"\xEF\xBB\xBF"));
    let rows = parse(&moodle);
    assert_eq!(rows[0], ["Email address", "Lab 1", "Lab 1 (feedback)"]);
    assert_eq!(rows[1], ["cp-alice@pusan.ac.kr", "9.5", "'=good"]);
    let rows = parse(&download("format=plain").await);
    assert_eq!(rows[0], ["Name", "Email", "Student number", "Section", "Lab 1", "Lab 1 (feedback)"]);
    assert_eq!(rows.len(), 3);
    // Students and TAs of other courses get no export.
    assert_eq!(
        app.client.get(app.url(&format!("/api/v1/courses/{course}/grades.csv"))).bearer_auth(&alice).send().await.expect("csv").status(),
        403
    );
    assert_eq!(
        app.client.get(app.url(&format!("/api/v1/courses/{other_course}/grades.csv"))).bearer_auth(&ta).send().await.expect("csv").status(),
        404
    );
    let (status, refused) =
        send(&app, &professor, reqwest::Method::GET, &format!("/api/v1/courses/{course}/grades.csv?format=xlsx"), serde_json::json!({}))
            .await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("unknown_export_format")));

    // Editing: professors only; the cutoff may not come before the due time.
    let later = due + chrono::Duration::days(1);
    let edit = serde_json::json!({"title": "Lab 1 (revised)", "due_at": later.to_rfc3339(), "max_instances": 1});
    assert_eq!(send(&app, &ta, reqwest::Method::PATCH, &format!("/api/v1/assignments/{assignment}"), edit.clone()).await.0, 403);
    let (status, edited) = send(&app, &professor, reqwest::Method::PATCH, &format!("/api/v1/assignments/{assignment}"), edit).await;
    assert_eq!((status, edited["title"].as_str(), edited["max_instances"].as_i64()), (200, Some("Lab 1 (revised)"), Some(1)), "{edited}");
    assert_eq!(edited["rubric"].as_array().map(Vec::len), Some(2), "the rubric stays");
    let (status, refused) = send(
        &app,
        &professor,
        reqwest::Method::PATCH,
        &format!("/api/v1/assignments/{assignment}"),
        serde_json::json!({"title": "x", "due_at": later.to_rfc3339(), "cutoff_at": due.to_rfc3339()}),
    )
    .await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("cutoff_before_due")));

    // Bulk access: the professor opens every submission to the class at once.
    let (status, changed) = send(
        &app,
        &professor,
        reqwest::Method::PUT,
        &format!("/api/v1/assignments/{assignment}/access"),
        serde_json::json!({"visibility": "class"}),
    )
    .await;
    assert_eq!((status, changed["visibility"].as_str()), (200, Some("class")));
    let (status, _) = send(
        &app,
        &ta,
        reqwest::Method::PUT,
        &format!("/api/v1/assignments/{assignment}/access"),
        serde_json::json!({"visibility": "public"}),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_professor_runs_an_assignment_cycle_through_the_pages() {
    use base64::Engine;
    let app = spawn_app_with(AppOptions::default()).await;
    app.api_token("pg-prof@pusan.ac.kr").await;
    make_professor(&app, "pg-prof@pusan.ac.kr");
    let student_token = app.api_token("pg-student@pusan.ac.kr").await;
    let (prof, prof_jar) = app.new_browser();
    let (student, student_jar) = app.new_browser();
    for (client, jar, email) in [(&prof, &prof_jar, "pg-prof@pusan.ac.kr"), (&student, &student_jar, "pg-student@pusan.ac.kr")] {
        assert_eq!(app.post_form_as(client, jar, "/login", &[("email", email), ("password", PASSWORD)]).await.status(), 303);
    }

    // A student is offered no create form, and a forged POST is refused.
    let page = student.get(app.url("/courses")).send().await.expect("page").text().await.expect("html");
    assert!(!page.contains("create-course"), "a student is offered the create form");
    let forged = app.post_form_as(&student, &student_jar, "/courses", &[("code", "X"), ("title", "X"), ("term", "X")]).await;
    assert_eq!(forged.status(), 403);

    let created = app.post_form_as(&prof, &prof_jar, "/courses", &[("code", "PG500"), ("title", "웹"), ("term", "2026-2")]).await;
    assert_eq!(created.status(), 303);
    let course_path = created.headers()["Location"].to_str().expect("location").to_owned();
    let course_id: i64 = course_path.rsplit('/').next().and_then(|id| id.parse().ok()).expect("course id");

    // Roster: the file (CP949, as Korean Excel saves it) comes base64-encoded; preview, then confirm.
    let (cp949, _, _) = encoding_rs::EUC_KR.encode("이름,이메일\n학생,pg-student@pusan.ac.kr\n");
    let file_b64 = base64::engine::general_purpose::STANDARD.encode(&cp949);
    let roster_path = format!("/courses/{course_id}/roster");
    let preview = app.post_form_as(&prof, &prof_jar, &roster_path, &[("file_b64", &file_b64)]).await;
    assert_eq!(preview.status(), 422, "an unknown file asks for its columns");
    let preview = app
        .post_form_as(&prof, &prof_jar, &roster_path, &[("file_b64", &file_b64), ("email_column", "이메일"), ("name_column", "이름")])
        .await;
    assert_eq!(preview.status(), 200);
    let html = preview.text().await.expect("html");
    assert!(html.contains("roster-preview") && html.contains("data-outcome=\"matched\"") && html.contains("학생"), "{html}");
    let page = prof.get(app.url(&course_path)).send().await.expect("page").text().await.expect("html");
    assert!(!page.contains("pg-student@pusan.ac.kr"), "the preview enrolled someone");
    let confirmed = app
        .post_form_as(
            &prof,
            &prof_jar,
            &roster_path,
            &[("file_b64", &file_b64), ("email_column", "이메일"), ("name_column", "이름"), ("confirm", "1")],
        )
        .await;
    assert_eq!(confirmed.status(), 303);
    let page = prof.get(app.url(&course_path)).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("pg-student@pusan.ac.kr") && page.contains("data-testid=\"export-links\""), "the roster shows the student");

    // An assignment typed in Seoul time is stored in UTC.
    let due_local = (chrono::Utc::now() + chrono::Duration::days(2) + chrono::Duration::hours(9)).format("%Y-%m-%dT%H:%M").to_string();
    let made = app
        .post_form_as(
            &prof,
            &prof_jar,
            &format!("/courses/{course_id}/assignments"),
            &[
                ("title", "Portfolio"),
                ("due_at", &due_local),
                ("utc_offset_minutes", "540"),
                ("visibility", "staff"),
                ("rubric", "Works: 6\nStyle: 4"),
            ],
        )
        .await;
    assert_eq!(made.status(), 303);
    let assignment_path = made.headers()["Location"].to_str().expect("location").to_owned();
    let assignment_id: i64 = assignment_path.rsplit('/').next().and_then(|id| id.parse().ok()).expect("id");
    let stored = app.api_get(&student_token, &format!("/api/v1/assignments/{assignment_id}")).await;
    let due_at = chrono::DateTime::parse_from_rfc3339(stored["assignment"]["due_at"].as_str().expect("due")).expect("time");
    assert_eq!(
        due_at.format("%Y-%m-%dT%H:%M").to_string(),
        (chrono::NaiveDateTime::parse_from_str(&due_local, "%Y-%m-%dT%H:%M").expect("local") - chrono::Duration::hours(9))
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    );

    // The professor edits it through the page (again in Seoul time).
    let edited = app
        .post_form_as(
            &prof,
            &prof_jar,
            &format!("{assignment_path}/edit"),
            &[("title", "Portfolio"), ("due_at", &due_local), ("cutoff_at", "2099-01-01T09:00"), ("utc_offset_minutes", "540")],
        )
        .await;
    assert_eq!(edited.status(), 303);
    let stored = app.api_get(&student_token, &format!("/api/v1/assignments/{assignment_id}")).await;
    assert_eq!(stored["assignment"]["cutoff_at"].as_str().map(|t| t.starts_with("2099-01-01T00:00:00")), Some(true), "{stored}");

    // The student deploys and submits through the page.
    app.deploy_live(&student_token, "pg-site", "static", static_site("<p>portfolio</p>")).await;
    let submitted = app.post_form_as(&student, &student_jar, &format!("{assignment_path}/submit"), &[("project", "pg-site")]).await;
    assert_eq!(submitted.status(), 303);
    let page = student.get(app.url(&assignment_path)).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("my-submission") && page.contains(&format!("pg-site--a{assignment_id}")), "the student sees the snapshot");
    assert!(!page.contains("data-testid=\"submissions\""), "the student sees the submissions list");

    // The professor grades: the list links the grading page, which autosaves through JSON.
    let page = prof.get(app.url(&assignment_path)).send().await.expect("page").text().await.expect("html");
    let submission_id = page
        .split("/submissions/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|id| id.parse::<i64>().ok())
        .expect("grade link");
    let grading = prof.get(app.url(&format!("/submissions/{submission_id}"))).send().await.expect("page").text().await.expect("html");
    assert!(grading.contains("snapshot-link") && grading.contains("Works") && grading.contains(&format!("pg-site--a{assignment_id}")));
    let csrf = app.csrf_for(&prof, &prof_jar).await;
    let saved = prof
        .post(app.url(&format!("/submissions/{submission_id}/grade")))
        .header("X-CSRF-Token", &csrf)
        .json(&serde_json::json!({"scores": ["5,5", ""], "feedback": "좋아요"}))
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), 200);
    assert_eq!(saved.json::<serde_json::Value>().await.expect("json")["grade"].as_f64(), Some(5.5));
    let forged = prof
        .post(app.url(&format!("/submissions/{submission_id}/grade")))
        .json(&serde_json::json!({"scores": ["1", ""]}))
        .send()
        .await
        .expect("save");
    assert_eq!(forged.status(), 403, "no CSRF header, no save");
    let student_save = student
        .post(app.url(&format!("/submissions/{submission_id}/grade")))
        .header("X-CSRF-Token", app.csrf_for(&student, &student_jar).await)
        .json(&serde_json::json!({"scores": ["6", "4"]}))
        .send()
        .await
        .expect("save");
    assert_eq!(student_save.status(), 403, "a student cannot grade themselves");
    let warmed =
        prof.post(app.url(&format!("/submissions/{submission_id}/prewarm"))).header("X-CSRF-Token", &csrf).send().await.expect("prewarm");
    assert_eq!(warmed.status(), 200);

    // Released through the page, the student sees the grade; the export downloads from the page.
    let page = student.get(app.url(&assignment_path)).send().await.expect("page").text().await.expect("html");
    assert!(!page.contains("my-grade"), "the grade shows before release");
    assert_eq!(app.post_form_as(&prof, &prof_jar, &format!("{assignment_path}/release"), &[("released", "true")]).await.status(), 303);
    let page = student.get(app.url(&assignment_path)).send().await.expect("page").text().await.expect("html");
    assert!(page.contains("my-grade") && page.contains("5.5") && page.contains("좋아요"), "the released grade");
    let csv = prof.get(app.url(&format!("/courses/{course_id}/grades.csv?format=moodle&bom=1"))).send().await.expect("csv");
    assert_eq!(csv.status(), 200);
    let bytes = csv.bytes().await.expect("body");
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBFEmail address,Portfolio,Portfolio (feedback)\r\npg-student@pusan.ac.kr,5.5,")
            || bytes.starts_with(b"\xEF\xBB\xBFEmail address,Portfolio,Portfolio (feedback)\npg-student@pusan.ac.kr,5.5,"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test]
async fn a_group_submits_once_for_all_its_members_and_resubmitting_replaces_the_snapshot() {
    let app = spawn_app_with(AppOptions::default()).await;
    let professor = app.api_token("cg-prof@pusan.ac.kr").await;
    make_professor(&app, "cg-prof@pusan.ac.kr");
    let kim = app.api_token("cg-kim@pusan.ac.kr").await;
    let lee = app.api_token("cg-lee@pusan.ac.kr").await;
    let course = create_course(&app, &professor, "CG101").await;
    enrol(&app, &professor, course, &["cg-kim@pusan.ac.kr", "cg-lee@pusan.ac.kr"]).await;
    // Past due and public, so the snapshots can be fetched anonymously (late work is taken).
    let due = chrono::Utc::now() - chrono::Duration::minutes(1);
    let assignment = create_assignment(
        &app,
        &professor,
        course,
        serde_json::json!({"title": "Team", "due_at": due.to_rfc3339(), "group": true, "visibility": "public"}),
    )
    .await;

    // A personal project is refused for a group assignment.
    app.deploy_live(&kim, "cg-solo", "static", static_site("solo")).await;
    let (status, refused) = submit(&app, &kim, assignment, "cg-solo").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("group_project_required")), "{refused}");

    // Kim's group project is the group's submission; Lee, a member, sees it as theirs.
    let (status, _) = send(&app, &kim, reqwest::Method::POST, "/api/v1/groups", serde_json::json!({"name": "cg-team"})).await;
    assert_eq!(status, 201);
    let (status, _) = send(
        &app,
        &kim,
        reqwest::Method::POST,
        "/api/v1/groups/cg-team/members",
        serde_json::json!({"email": "cg-lee@pusan.ac.kr", "role": "maintainer"}),
    )
    .await;
    assert_eq!(status, 200);
    for name in ["cg-one", "cg-two"] {
        let (status, created) = send(
            &app,
            &kim,
            reqwest::Method::POST,
            "/api/v1/projects",
            serde_json::json!({"name": name, "template": "static", "group": "cg-team"}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let (status, queued) = app.deploy_zip(&kim, name, static_site(name)).await;
        assert_eq!(status, 202);
        assert_eq!(app.wait_for_revision(&kim, name, queued["number"].as_i64().expect("n")).await["status"], "live");
    }
    let (status, first) = submit(&app, &kim, assignment, "cg-one").await;
    assert_eq!((status, first["submitter"].as_str()), (201, Some("cg-team")), "{first}");
    let seen = app.api_get(&lee, &format!("/api/v1/assignments/{assignment}")).await;
    assert_eq!(seen["your_submission"]["id"], first["id"], "{seen}");
    snapshot_says(&app, &format!("cg-one--a{assignment}"), "cg-one").await;

    // Lee submits the other project: the same submission, a new snapshot, the old one gone.
    let (status, second) = submit(&app, &lee, assignment, "cg-two").await;
    assert_eq!((status, second["id"].clone()), (201, first["id"].clone()), "{second}");
    let listed = app.api_get(&professor, &format!("/api/v1/assignments/{assignment}/submissions")).await;
    assert_eq!(listed["submissions"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["submissions"][0]["project"], "cg-two");
    assert_eq!(app.state.runtime.status(&format!("cg-one--a{assignment}")).revision, None, "the old snapshot is no longer registered");
    let group_dirs = std::fs::read_dir(app.data_dir.join(format!("snapshots/a{assignment}")))
        .expect("snapshots")
        .map(|entry| entry.expect("entry").path())
        .collect::<Vec<_>>();
    assert_eq!(group_dirs.len(), 1, "one submitter: {group_dirs:?}");
    assert_eq!(std::fs::read_dir(&group_dirs[0]).expect("pins").count(), 1, "the replaced copy is removed");
    snapshot_says(&app, &format!("cg-two--a{assignment}"), "cg-two").await;
}
