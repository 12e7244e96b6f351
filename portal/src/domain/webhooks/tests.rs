//! Table tests of `verify` with one push payload per forge (`testdata/`, written in each forge's
//! documented push-event shape; not recordings of live deliveries): valid, tampered, replayed,
//! wrong branch, wrong secret, missing headers, other events.

use std::collections::HashMap;

use super::*;

const SECRET: &str = "whsec-3f9a1c";
const GITHUB: &[u8] = include_bytes!("testdata/github-push.json");
const GITLAB: &[u8] = include_bytes!("testdata/gitlab-push.json");
const GITEA: &[u8] = include_bytes!("testdata/gitea-push.json");

/// The headers `forge` sends for `body`, signed with `secret`.
fn signed(forge: Forge, body: &[u8], secret: &str, delivery: &str) -> HashMap<String, String> {
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), body));
    let pairs: Vec<(&str, String)> = match forge {
        Forge::GitHub => vec![
            ("x-github-event", "push".into()),
            ("x-github-delivery", delivery.into()),
            ("x-hub-signature-256", format!("sha256={signature}")),
        ],
        Forge::GitLab => {
            vec![("x-gitlab-event", "Push Hook".into()), ("x-gitlab-event-uuid", delivery.into()), ("x-gitlab-token", secret.into())]
        }
        // Gitea also sends GitHub's headers; its own decide.
        Forge::Gitea => vec![
            ("x-gitea-event", "push".into()),
            ("x-gitea-delivery", delivery.into()),
            ("x-gitea-signature", signature.clone()),
            ("x-github-event", "push".into()),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn check(headers: &HashMap<String, String>, body: &[u8], branch: &str, seen: &[&str], expected: Result<Verdict, WebhookError>) {
    let got = verify(|name| headers.get(name).cloned(), body, SECRET, branch, |id| seen.contains(&id));
    assert_eq!(got, expected, "{headers:?}");
}

fn push(forge: Forge, delivery: &str, sha: &str, message: &str) -> Result<Verdict, WebhookError> {
    Ok(Verdict::Deploy(Push {
        forge,
        delivery: delivery.into(),
        branch: "main".into(),
        commit_sha: sha.into(),
        commit_message: message.into(),
    }))
}

/// Each forge's payload with one byte changed (the commit SHA's first digit).
fn tampered(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    text.replacen("\"after\": \"", "\"after\": \"f", 1).into_bytes()
}

#[test]
fn valid_pushes_from_each_forge_are_accepted_with_their_commit() {
    check(
        &signed(Forge::GitHub, GITHUB, SECRET, "d1"),
        GITHUB,
        "main",
        &[],
        push(Forge::GitHub, "d1", "9b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c", "퀴즈 문제 추가"),
    );
    check(
        &signed(Forge::GitLab, GITLAB, SECRET, "d2"),
        GITLAB,
        "main",
        &[],
        push(Forge::GitLab, "d2", "7e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f", "점수 계산 고침"),
    );
    check(
        &signed(Forge::Gitea, GITEA, SECRET, "d3"),
        GITEA,
        "main",
        &[],
        push(Forge::Gitea, "d3", "0d2f4b6d8f0b2d4f6b8d0f2b4d6f8b0d2f4b6d8f", "Add hints"),
    );
}

#[test]
fn a_tampered_body_fails_the_signature_for_every_forge_but_gitlab_which_signs_nothing() {
    for (forge, body) in [(Forge::GitHub, GITHUB), (Forge::Gitea, GITEA)] {
        let headers = signed(forge, body, SECRET, "t1");
        check(&headers, &tampered(body), "main", &[], Err(WebhookError::BadSignature(forge.as_str())));
    }
    // GitLab's token is a shared secret, not a signature of the body: a tampered body with the
    // right token passes authenticity (GitLab's design; use HTTPS). Its SHA is what was sent.
    let headers = signed(Forge::GitLab, GITLAB, SECRET, "t2");
    let verdict = verify(|n| headers.get(n).cloned(), &tampered(GITLAB), SECRET, "main", |_| false);
    assert!(matches!(verdict, Ok(Verdict::Deploy(Push { ref commit_sha, .. })) if commit_sha.starts_with('f')), "{verdict:?}");
}

#[test]
fn a_wrong_secret_or_a_missing_signature_is_refused() {
    for (forge, body) in [(Forge::GitHub, GITHUB), (Forge::GitLab, GITLAB), (Forge::Gitea, GITEA)] {
        check(&signed(forge, body, "another-secret", "w1"), body, "main", &[], Err(WebhookError::BadSignature(forge.as_str())));
        let mut headers = signed(forge, body, SECRET, "w2");
        headers.retain(|name, _| !matches!(name.as_str(), "x-hub-signature-256" | "x-gitea-signature" | "x-gitlab-token"));
        check(&headers, body, "main", &[], Err(WebhookError::MissingSignature(forge.as_str())));
    }
    let mut headers = signed(Forge::GitHub, GITHUB, SECRET, "w3");
    headers.insert("x-hub-signature-256".into(), "sha1=abcdef".into());
    check(&headers, GITHUB, "main", &[], Err(WebhookError::BadSignature("github")));
}

#[test]
fn a_replayed_delivery_is_refused() {
    for (forge, body) in [(Forge::GitHub, GITHUB), (Forge::GitLab, GITLAB), (Forge::Gitea, GITEA)] {
        check(&signed(forge, body, SECRET, "seen-1"), body, "main", &["seen-1"], Err(WebhookError::Replayed("seen-1".into())));
        let mut headers = signed(forge, body, SECRET, "");
        headers.retain(|_, value| !value.is_empty());
        check(&headers, body, "main", &[], Err(WebhookError::MissingDelivery(forge.as_str())));
    }
}

#[test]
fn a_push_to_another_branch_or_another_event_is_ignored() {
    for (forge, body) in [(Forge::GitHub, GITHUB), (Forge::GitLab, GITLAB), (Forge::Gitea, GITEA)] {
        check(
            &signed(forge, body, SECRET, "b1"),
            body,
            "release",
            &[],
            Ok(Verdict::Ignored("a push to main; this project follows release".into())),
        );
    }
    let mut headers = signed(Forge::GitHub, b"{\"zen\":\"Keep it simple.\"}", SECRET, "p1");
    headers.insert("x-github-event".into(), "ping".into());
    check(&headers, b"{\"zen\":\"Keep it simple.\"}", "main", &[], Ok(Verdict::Ignored("github event \"ping\" is not a push".into())));
    let deleted = String::from_utf8(GITHUB.to_vec()).expect("utf-8").replace("9b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c", &"0".repeat(40));
    check(
        &signed(Forge::GitHub, deleted.as_bytes(), SECRET, "x1"),
        deleted.as_bytes(),
        "main",
        &[],
        Ok(Verdict::Ignored("branch main was deleted".into())),
    );
    let tag = String::from_utf8(GITEA.to_vec()).expect("utf-8").replace("refs/heads/main", "refs/tags/v1");
    check(
        &signed(Forge::Gitea, tag.as_bytes(), SECRET, "x2"),
        tag.as_bytes(),
        "main",
        &[],
        Ok(Verdict::Ignored("refs/tags/v1 is not a branch".into())),
    );
}

#[test]
fn requests_from_no_known_forge_are_refused() {
    check(&HashMap::new(), GITHUB, "main", &[], Err(WebhookError::UnknownForge));
}

#[test]
fn hmac_matches_rfc_4231_test_case_2() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block is hashed first (test case 6).
    assert_eq!(
        hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}
