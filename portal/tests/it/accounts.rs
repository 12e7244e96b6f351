//! Accounts through the pages, as a browser uses them: sign-up, mail, verification, login,
//! profile, password reset, sessions, CSRF and rate limits.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with, text, AppOptions, TestApp, PASSWORD};

#[tokio::test]
async fn sign_up_mail_verify_log_in_and_edit_the_profile_over_real_smtp() {
    let app = spawn_app_with(AppOptions { smtp: true, ..Default::default() }).await;
    let email = "minsu.kim@cs.pusan.ac.kr";

    let signup_page = text(app.client.get(app.url("/signup")).header("Accept-Language", "ko-KR,ko;q=0.9").send().await.expect("GET")).await;
    assert!(signup_page.contains("계정 만들기") && signup_page.contains("pusan.ac.kr"), "{signup_page}");

    let response = app
        .client
        .post(app.url("/signup"))
        .header("Accept-Language", "ko-KR,ko;q=0.9")
        .form(&[
            ("csrf_token", app.csrf_for(&app.client, &app.jar).await.as_str()),
            ("email", email),
            ("password", PASSWORD),
            ("display_name", "김민수"),
            ("student_number", ""),
        ])
        .send()
        .await
        .expect("POST /signup");
    assert_eq!(response.status(), 200);
    assert!(text(response).await.contains(email));

    let mail = app.wait_for_mail(email, 1).await.remove(0);
    assert!(!mail.subject.is_empty());
    assert!(mail.body.contains("김민수님") && mail.body.contains("안녕하세요"), "mail is in Korean: {}", mail.body);
    let link = TestApp::link_in(&mail, "/verify");
    assert!(link.starts_with(&app.address), "link points at the portal: {link}");

    // Unverified accounts cannot log in.
    let refused = app.post_form("/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(refused.status(), 403);
    assert!(text(refused).await.contains("/verify/resend"));

    let verified = text(app.client.get(&link).send().await.expect("verify")).await;
    assert!(verified.contains("data-testid=\"message\""), "{verified}");

    let login = app.post_form("/login", &[("email", "Minsu.Kim@CS.pusan.ac.kr"), ("password", PASSWORD), ("next", "/profile")]).await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/profile");

    let profile = text(app.get("/profile").await).await;
    assert!(profile.contains(email) && profile.contains("김민수"), "{profile}");

    let saved = app.post_form("/profile", &[("display_name", "김민수 (Kim)"), ("student_number", "2023-12345"), ("language", "en")]).await;
    assert_eq!(saved.status(), 303);
    let profile = text(app.get("/profile").await).await;
    assert!(
        profile.contains("value=\"김민수 (Kim)\"") && profile.contains("value=\"2023-12345\"") && profile.contains("Your profile is saved"),
        "{profile}"
    );
    assert!(profile.contains("<html lang=\"en\">"));

    let bad = app.post_form("/profile", &[("display_name", "Kim"), ("student_number", "12 34"), ("language", "en")]).await;
    assert_eq!(bad.status(), 422);
    assert!(text(bad).await.contains("student or staff number"));
}

#[tokio::test]
async fn sign_up_with_another_domain_is_refused_naming_the_allowed_ones() {
    let app = spawn_app().await;
    let response = app.post_form("/signup", &[("email", "kim@gmail.com"), ("password", PASSWORD), ("display_name", "Kim")]).await;
    assert_eq!(response.status(), 422);
    let page = text(response).await;
    assert!(page.contains("pusan.ac.kr") && page.contains("value=\"kim@gmail.com\""), "the form keeps what was typed: {page}");
    assert!(app.mail_to("kim@gmail.com").is_empty());

    let api = app
        .client
        .post(app.url("/api/v1/accounts"))
        .json(&serde_json::json!({"email": "kim@gmail.com", "password": PASSWORD, "display_name": "Kim"}))
        .send()
        .await
        .expect("request");
    assert_eq!(api.status(), 422);
    let body: serde_json::Value = api.json().await.expect("json");
    assert_eq!(body["error"]["code"], "email_domain_not_allowed");
    assert!(body["error"]["message"].as_str().expect("message").contains("pusan.ac.kr"));
}

#[tokio::test]
async fn verification_links_work_once_and_a_reused_link_says_so() {
    let app = spawn_app().await;
    let link = app.sign_up("lee@pusan.ac.kr").await;
    let first = text(app.client.get(&link).send().await.expect("verify")).await;
    assert!(first.contains("Your e-mail address is verified"), "{first}");
    let again = text(app.client.get(&link).send().await.expect("verify again")).await;
    assert!(again.contains("already verified"), "{again}");

    let token = TestApp::token_of(&link);
    let api =
        app.client.post(app.url("/api/v1/accounts/verify")).json(&serde_json::json!({ "token": token })).send().await.expect("request");
    assert_eq!(api.json::<serde_json::Value>().await.expect("json")["status"], "already_verified");

    let forged = app.client.get(app.url("/verify?token=not-a-real-token")).send().await.expect("verify");
    assert_eq!(forged.status(), 400);
    assert!(text(forged).await.contains("not valid"));
}

#[tokio::test]
async fn expired_verification_links_are_refused_and_a_new_one_can_be_sent() {
    let app =
        spawn_app_with(AppOptions { extra_accounts: "verification_ttl = \"1s\"\nresend_interval = \"1s\"".into(), ..Default::default() })
            .await;
    let email = "park@pusan.ac.kr";
    let link = app.sign_up(email).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = app.client.get(&link).send().await.expect("verify");
    assert_eq!(expired.status(), 410);
    assert!(text(expired).await.contains("expired"));

    let resent = app.post_form("/verify/resend", &[("email", email)]).await;
    assert_eq!(resent.status(), 200);
    let mails = app.wait_for_mail(email, 2).await;
    let new_link = TestApp::link_in(&mails[1], "/verify");
    assert_ne!(new_link, link);
    assert_eq!(app.client.get(&new_link).send().await.expect("verify").status(), 200);
}

#[tokio::test]
async fn resending_verification_mail_is_rate_limited() {
    let app = spawn_app().await;
    let email = "choi@pusan.ac.kr";
    app.sign_up(email).await;
    assert_eq!(app.post_form("/verify/resend", &[("email", email)]).await.status(), 200);
    let second = app.post_form("/verify/resend", &[("email", email)]).await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.mail_to(email).len(), 2, "the sign-up mail and one resend, no more");
}

#[tokio::test]
async fn signing_up_twice_mails_the_owner_instead_of_telling_the_visitor() {
    let app = spawn_app().await;
    let email = "jung@pusan.ac.kr";
    app.sign_up(email).await;
    let again = app.post_form("/signup", &[("email", email), ("password", "another password!"), ("display_name", "Someone")]).await;
    assert_eq!(again.status(), 200, "same answer as a new sign-up");
    let mails = app.wait_for_mail(email, 2).await;
    assert!(mails[1].body.contains("already has an account") && mails[1].body.contains("/password/forgot"), "{}", mails[1].body);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_for_the_window() {
    let app = spawn_app_with(AppOptions { extra_accounts: "login_max_failures = 3".into(), ..Default::default() }).await;
    let email = "kang@pusan.ac.kr";
    let link = app.sign_up(email).await;
    app.client.get(&link).send().await.expect("verify");
    for _ in 0..3 {
        let wrong = app.post_form("/login", &[("email", email), ("password", "wrong password")]).await;
        assert_eq!(wrong.status(), 401);
    }
    let locked = app.post_form("/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(locked.status(), 429, "even the right password waits out the lock");
    let retry_after: u64 = locked.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after > 0 && retry_after <= 15 * 60);

    let api = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD, "name": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(api.status(), 429, "the API shares the lock");
    assert_eq!(api.json::<serde_json::Value>().await.expect("json")["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn login_attempts_are_limited_per_client_address() {
    let app = spawn_app_with(AppOptions { extra_accounts: "login_max_per_ip = 4".into(), ..Default::default() }).await;
    for n in 0..4 {
        let response = app.post_form("/login", &[("email", &format!("nobody{n}@pusan.ac.kr")), ("password", "whatever password")]).await;
        assert_eq!(response.status(), 401);
    }
    let response = app.post_form("/login", &[("email", "nobody9@pusan.ac.kr"), ("password", "whatever password")]).await;
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn login_starts_a_new_session_and_old_tokens_stop_working() {
    let app = spawn_app().await;
    let email = "yoon@pusan.ac.kr";
    app.signed_in_user(email).await;
    let first = TestApp::cookie(&app.jar, &app.address, "slipway_session").expect("session cookie");
    let again = app.post_form("/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(again.status(), 303);
    let second = TestApp::cookie(&app.jar, &app.address, "slipway_session").expect("session cookie");
    assert_ne!(first, second, "the session id is renewed at login");

    let (other, other_jar) = app.new_browser();
    let stale = other.get(app.url("/dashboard")).header("Cookie", format!("slipway_session={first}")).send().await.expect("request");
    assert_eq!(stale.status(), 303, "the replaced session is gone");
    drop(other_jar);
}

#[tokio::test]
async fn session_cookie_is_host_only_http_only_and_same_site() {
    let app = spawn_app().await;
    let email = "han@pusan.ac.kr";
    let link = app.sign_up(email).await;
    app.client.get(&link).send().await.expect("verify");
    let response = app.post_form("/login", &[("email", email), ("password", PASSWORD)]).await;
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|c| c.starts_with("slipway_session="))
        .expect("session cookie set");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
    assert!(!session.to_lowercase().contains("domain="), "never scoped to a domain the apps share: {session}");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let email = "shin@pusan.ac.kr";
    app.signed_in_user(email).await;
    let (laptop, laptop_jar) = app.new_browser();
    assert_eq!(app.post_form_as(&laptop, &laptop_jar, "/login", &[("email", email), ("password", PASSWORD)]).await.status(), 303);
    assert_eq!(laptop.get(app.url("/dashboard")).send().await.expect("GET").status(), 200);

    let out = app.post_form("/logout/everywhere", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(laptop.get(app.url("/dashboard")).send().await.expect("GET").status(), 303, "the other browser is logged out too");
    assert_eq!(app.get("/dashboard").await.status(), 303);
}

#[tokio::test]
async fn logout_ends_only_this_session() {
    let app = spawn_app().await;
    let email = "oh@pusan.ac.kr";
    app.signed_in_user(email).await;
    let (laptop, laptop_jar) = app.new_browser();
    app.post_form_as(&laptop, &laptop_jar, "/login", &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(app.post_form("/logout", &[]).await.status(), 303);
    assert_eq!(app.get("/dashboard").await.status(), 303);
    assert_eq!(laptop.get(app.url("/dashboard")).send().await.expect("GET").status(), 200);
}

#[tokio::test]
async fn password_reset_by_mail_sets_a_new_password_once() {
    let app = spawn_app().await;
    let email = "seo@pusan.ac.kr";
    app.signed_in_user(email).await;
    let (other, other_jar) = app.new_browser();
    assert_eq!(app.post_form_as(&other, &other_jar, "/password/forgot", &[("email", email)]).await.status(), 200);
    assert_eq!(
        app.post_form_as(&other, &other_jar, "/password/forgot", &[("email", "nobody@pusan.ac.kr")]).await.status(),
        200,
        "unknown addresses get the same answer"
    );
    let mails = app.wait_for_mail(email, 2).await;
    let link = TestApp::link_in(&mails[1], "/password/reset");
    let token = TestApp::token_of(&link);

    let form = text(other.get(&link).send().await.expect("GET")).await;
    assert!(form.contains("name=\"password_confirm\""), "{form}");
    let mismatch = app
        .post_form_as(
            &other,
            &other_jar,
            "/password/reset",
            &[("token", &token), ("password", "new password 1"), ("password_confirm", "new password 2")],
        )
        .await;
    assert_eq!(mismatch.status(), 422);
    let short = app
        .post_form_as(&other, &other_jar, "/password/reset", &[("token", &token), ("password", "short"), ("password_confirm", "short")])
        .await;
    assert_eq!(short.status(), 422, "a refused password leaves the link usable");
    let done = app
        .post_form_as(
            &other,
            &other_jar,
            "/password/reset",
            &[("token", &token), ("password", "a brand new password"), ("password_confirm", "a brand new password")],
        )
        .await;
    assert_eq!(done.status(), 303);

    assert_eq!(app.get("/dashboard").await.status(), 303, "every session ended with the reset");
    let reused = app
        .post_form_as(
            &other,
            &other_jar,
            "/password/reset",
            &[("token", &token), ("password", "yet another password"), ("password_confirm", "yet another password")],
        )
        .await;
    assert_eq!(reused.status(), 410);
    assert_eq!(app.post_form("/login", &[("email", email), ("password", PASSWORD)]).await.status(), 401);
    assert_eq!(app.post_form("/login", &[("email", email), ("password", "a brand new password")]).await.status(), 303);
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let email = "moon@pusan.ac.kr";
    app.signed_in_user(email).await;
    let (laptop, laptop_jar) = app.new_browser();
    app.post_form_as(&laptop, &laptop_jar, "/login", &[("email", email), ("password", PASSWORD)]).await;
    let wrong = app
        .post_form(
            "/profile/password",
            &[("current_password", "not it at all"), ("new_password", "new password here"), ("new_password_confirm", "new password here")],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    let changed = app
        .post_form(
            "/profile/password",
            &[("current_password", PASSWORD), ("new_password", "new password here"), ("new_password_confirm", "new password here")],
        )
        .await;
    assert_eq!(changed.status(), 303);
    assert_eq!(app.get("/profile").await.status(), 200, "this browser stays logged in");
    assert_eq!(laptop.get(app.url("/profile")).send().await.expect("GET").status(), 303, "the other is logged out");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    app.signed_in_user("baek@pusan.ac.kr").await;
    for path in ["/profile", "/logout", "/logout/everywhere", "/tokens", "/language", "/signup", "/login", "/password/forgot"] {
        let response = app
            .client
            .post(app.url(path))
            .form(&[
                ("csrf_token", "forged"),
                ("email", "x@pusan.ac.kr"),
                ("password", PASSWORD),
                ("display_name", "x"),
                ("language", "ko"),
                ("name", "x"),
            ])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 403, "{path} accepted a forged CSRF token");
    }
    assert_eq!(app.get("/dashboard").await.status(), 200, "the forged logout did nothing");
}

#[tokio::test]
async fn language_follows_accept_language_and_the_switch_is_remembered() {
    let app = spawn_app().await;
    let korean =
        text(app.client.get(app.url("/login")).header("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.8").send().await.expect("GET")).await;
    assert!(korean.contains("<html lang=\"ko\">") && korean.contains("로그인"));
    let english = text(app.client.get(app.url("/login")).header("Accept-Language", "en-US").send().await.expect("GET")).await;
    assert!(english.contains("<html lang=\"en\">"));
    let switched = app.post_form("/language", &[("language", "ko"), ("next", "/login")]).await;
    assert_eq!(switched.status(), 303);
    assert_eq!(switched.headers()["location"], "/login");
    let remembered = text(app.client.get(app.url("/login")).header("Accept-Language", "en-US").send().await.expect("GET")).await;
    assert!(remembered.contains("<html lang=\"ko\">"), "the cookie wins over the header");
    let offsite = app.post_form("/language", &[("language", "en"), ("next", "https://evil.example/")]).await;
    assert_eq!(offsite.headers()["location"], "/dashboard");
}

#[tokio::test]
async fn pages_for_members_redirect_visitors_to_login_and_back() {
    let app = spawn_app().await;
    let response = app.get("/profile").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=%2Fprofile");
    let login = text(app.get("/login?next=%2Fprofile").await).await;
    assert!(login.contains("name=\"next\" value=\"/profile\""));
}

#[tokio::test]
async fn admins_promote_professors_and_others_cannot() {
    let app = spawn_app().await;
    let admin = portal::accounts::create_verified_user(&app.state.db, "admin@pusan.ac.kr", PASSWORD, "Admin", portal::domain::Role::Admin)
        .await
        .expect("admin");
    app.signed_in_user("prof@pusan.ac.kr").await;
    let prof_id = {
        use diesel::prelude::*;
        use portal::db::schema::users;
        users::table.filter(users::email.eq("prof@pusan.ac.kr")).select(users::id).first::<i64>(&mut app.db()).expect("user")
    };
    assert_eq!(app.get("/admin/users").await.status(), 403, "students do not see the admin pages");
    assert_eq!(app.post_form(&format!("/admin/users/{prof_id}/role"), &[("role", "admin")]).await.status(), 403, "nor promote themselves");

    let (admin_browser, admin_jar) = app.new_browser();
    assert_eq!(
        app.post_form_as(&admin_browser, &admin_jar, "/login", &[("email", "admin@pusan.ac.kr"), ("password", PASSWORD)]).await.status(),
        303
    );
    let list = text(admin_browser.get(app.url("/admin/users")).send().await.expect("GET")).await;
    assert!(list.contains("prof@pusan.ac.kr"));
    assert_eq!(
        app.post_form_as(&admin_browser, &admin_jar, &format!("/admin/users/{prof_id}/role"), &[("role", "professor")]).await.status(),
        303
    );
    let profile = text(app.get("/profile").await).await;
    assert!(profile.contains("Professor"), "the new role shows: {profile}");

    let last_admin = app.post_form_as(&admin_browser, &admin_jar, &format!("/admin/users/{}/role", admin.id), &[("role", "student")]).await;
    assert_eq!(last_admin.status(), 409);
    assert!(text(last_admin).await.contains("only admin"));
}

#[tokio::test]
async fn tokens_page_shows_a_new_token_once_and_revokes_it() {
    let app = spawn_app().await;
    app.signed_in_user("nam@pusan.ac.kr").await;
    let created = text(app.post_form("/tokens", &[("name", "laptop")]).await).await;
    let secret =
        created.split("data-testid=\"new-token\">").nth(1).and_then(|rest| rest.split('<').next()).expect("token shown").to_owned();
    assert!(secret.starts_with("slw_"));
    let me = app.client.get(app.url("/api/v1/me")).bearer_auth(&secret).send().await.expect("GET");
    assert_eq!(me.status(), 200);
    let listing = text(app.get("/tokens").await).await;
    assert!(listing.contains("laptop") && !listing.contains(&secret), "the secret is shown only once");
    let token_id = listing.split("action=\"/tokens/").nth(1).and_then(|rest| rest.split('/').next()).expect("revoke form").to_owned();
    assert_eq!(app.post_form(&format!("/tokens/{token_id}/revoke"), &[]).await.status(), 303);
    assert_eq!(app.client.get(app.url("/api/v1/me")).bearer_auth(&secret).send().await.expect("GET").status(), 401);
}
