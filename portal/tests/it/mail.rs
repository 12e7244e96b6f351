//! The durable mail queue: delivery through real SMTP after an outage, bodies sealed at rest and
//! wiped after delivery, and leases that hand a message to another worker after a crash.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use portal::db::schema::outbound_mail;

use crate::helpers::{free_port, spawn_app_with, AppOptions, SmtpServer, TestApp};

#[tokio::test]
async fn mail_queued_while_smtp_is_down_is_delivered_once_it_comes_back() {
    let smtp_port = free_port();
    let app = spawn_app_with(AppOptions { smtp_port_without_server: Some(smtp_port), ..Default::default() }).await;
    let email = "queue@pusan.ac.kr";
    let response = app.post_form("/signup", &[("email", email), ("password", crate::helpers::PASSWORD), ("display_name", "Queue")]).await;
    assert_eq!(response.status(), 200, "sign-up succeeds while SMTP is down");

    // Wait until the worker has failed at least twice, so we know it retries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (attempts, error): (i32, Option<String>) =
            outbound_mail::table.select((outbound_mail::attempts, outbound_mail::last_error)).first(&mut app.db()).expect("queued mail");
        if attempts >= 2 {
            assert!(error.is_some_and(|e| !e.is_empty()), "the failure is recorded");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker should have tried twice by now");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let server = SmtpServer::start_on(smtp_port, &app.data_dir.join("late-maildir"));
    let maildir = server.maildir.join("new");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let delivered = loop {
        let found: Vec<_> = std::fs::read_dir(&maildir)
            .map(|d| d.filter_map(Result::ok).map(|e| std::fs::read_to_string(e.path()).expect("read")).collect())
            .unwrap_or_default();
        if let Some(raw) = found.into_iter().find(|raw| raw.contains(email)) {
            break crate::helpers::parse_mail(&raw);
        }
        assert!(tokio::time::Instant::now() < deadline, "mail not delivered after SMTP came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(delivered.body.contains("/verify?token="), "{}", delivered.body);
    let (sent_at, body): (Option<chrono::DateTime<Utc>>, Option<Vec<u8>>) = loop {
        let row: (Option<chrono::DateTime<Utc>>, Option<Vec<u8>>) =
            outbound_mail::table.select((outbound_mail::sent_at, outbound_mail::sealed_body)).first(&mut app.db()).expect("row");
        if row.0.is_some() {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(sent_at.is_some() && body.is_none(), "delivered mail is marked sent and its body wiped");
}

#[tokio::test]
async fn queued_bodies_are_sealed_so_links_never_sit_in_plaintext() {
    let smtp_port = free_port();
    let app = spawn_app_with(AppOptions { smtp_port_without_server: Some(smtp_port), ..Default::default() }).await;
    app.post_form("/signup", &[("email", "sealed@pusan.ac.kr"), ("password", crate::helpers::PASSWORD), ("display_name", "Sealed")]).await;
    let body: Option<Vec<u8>> = outbound_mail::table.select(outbound_mail::sealed_body).first(&mut app.db()).expect("queued");
    let body = body.expect("body kept until delivered");
    let as_text = String::from_utf8_lossy(&body);
    assert!(
        !as_text.contains("token") && !as_text.contains("verify") && !as_text.contains("Sealed"),
        "sealed body leaks plaintext: {as_text}"
    );
}

#[tokio::test]
async fn a_claimed_message_returns_to_the_queue_when_its_lease_runs_out() {
    let app = spawn_app_with(AppOptions { smtp_port_without_server: Some(free_port()), ..Default::default() }).await;
    // Stop the worker from competing: push the message's next attempt far out, then claim by hand.
    let mut conn = app.db();
    let mail_id = portal::db::mail::enqueue(&mut conn, "lease@pusan.ac.kr", "subject", b"sealed").expect("enqueue");
    diesel::update(outbound_mail::table.find(mail_id))
        .set(outbound_mail::next_attempt_at.eq(Utc::now() + chrono::Duration::hours(1)))
        .execute(&mut conn)
        .expect("update");
    let later = Utc::now() + chrono::Duration::hours(2);
    let lease_until = later + chrono::Duration::minutes(2);
    let claimed = portal::db::mail::claim_due(&mut conn, later, lease_until).expect("claim").expect("due by then");
    assert_eq!((claimed.id, claimed.attempts), (mail_id, 1));
    assert!(
        portal::db::mail::claim_due(&mut conn, later, lease_until).expect("claim").is_none(),
        "a leased message is not handed out twice"
    );
    let after_crash = lease_until + chrono::Duration::seconds(1);
    let reclaimed = portal::db::mail::claim_due(&mut conn, after_crash, after_crash + chrono::Duration::minutes(2))
        .expect("claim")
        .expect("the lease ran out");
    assert_eq!((reclaimed.id, reclaimed.attempts), (mail_id, 2));
    drop(app);
}

#[tokio::test]
async fn outbox_mode_writes_eml_files_when_no_smtp_is_configured() {
    let app = spawn_app_with(AppOptions::default()).await;
    let link = app.sign_up("outbox@pusan.ac.kr").await;
    assert!(link.contains("/verify?token="));
    let files: Vec<_> = std::fs::read_dir(app.data_dir.join("outbox")).expect("outbox exists").filter_map(Result::ok).collect();
    assert!(files.iter().all(|f| f.path().extension().is_some_and(|e| e == "eml")));
    let mail = app.mail_to("outbox@pusan.ac.kr").remove(0);
    assert!(mail.raw.contains("From: Slipway <no-reply@pusan.ac.kr>"));
    let _ = TestApp::token_of(&link);
}
