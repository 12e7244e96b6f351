//! `slipway groups ...` and `slipway projects update --visibility` through the real binary against
//! a running portal: a student makes a project private inside a group, invites a classmate (with
//! an account) and an address without one, lists the members, transfers ownership, removes and
//! leaves; refusals come back as readable errors naming the code.

use std::process::Command;

use crate::helpers::spawn_app;

fn slipway(address: &str, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command.env("SLIPWAY_PORTAL", address).env("SLIPWAY_TOKEN", token).env_remove("XDG_CONFIG_HOME").args(args);
    command
}

async fn run(mut command: Command) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().expect("run slipway")).await.expect("join");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn groups_and_visibility_are_managed_from_the_command_line() {
    let app = spawn_app().await;
    let owner = app.api_token("clig-owner@pusan.ac.kr").await;
    let mate = app.api_token("clig-mate@pusan.ac.kr").await;
    let cli = |token: &str, args: &[&str]| run(slipway(&app.address, token, args));

    let (ok, stdout, stderr) = cli(&owner, &["groups", "create", "clig-club"]).await;
    assert!(ok && stdout.contains("created group clig-club"), "{stdout}{stderr}");
    let (ok, _, stderr) = cli(&owner, &["projects", "create", "clig-app", "--template", "static"]).await;
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = cli(&owner, &["projects", "update", "clig-app", "--group", "clig-club", "--visibility", "private"]).await;
    assert!(ok && stdout.contains("visibility private") && stdout.contains("group clig-club"), "{stdout}{stderr}");
    let shown = app.api_get(&owner, "/api/v1/projects/clig-app").await;
    assert_eq!(shown["visibility"], "private");

    // A bad level is refused with the API's code, and nothing changes.
    let (ok, _, stderr) = cli(&owner, &["projects", "update", "clig-app", "--visibility", "secret"]).await;
    assert!(!ok && stderr.contains("unknown_visibility") && stderr.contains("secret"), "{stderr}");
    let (ok, _, stderr) = cli(&owner, &["projects", "update", "clig-app"]).await;
    assert!(!ok && stderr.contains("nothing to change"), "{stderr}");

    // Invitations: a classmate with an account joins at once, an unknown address waits.
    let (ok, stdout, stderr) = cli(&owner, &["groups", "invite", "clig-club", "clig-mate@pusan.ac.kr", "--role", "viewer"]).await;
    assert!(ok && stdout.contains("clig-mate@pusan.ac.kr is a viewer of clig-club"), "{stdout}{stderr}");
    let (ok, stdout, _) = cli(&owner, &["groups", "invite", "clig-club", "clig-later@pusan.ac.kr"]).await;
    assert!(ok && stdout.contains("when they sign up"), "{stdout}");
    let (ok, stdout, stderr) = cli(&mate, &["groups", "members", "clig-club"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("clig-owner@pusan.ac.kr") && stdout.contains("owner"), "{stdout}");
    assert!(stdout.contains("clig-later@pusan.ac.kr") && stdout.contains("(invited)"), "{stdout}");
    assert!(stdout.contains("project clig-app (private)"), "{stdout}");
    let (ok, stdout, _) = cli(&mate, &["groups", "list"]).await;
    assert!(ok && stdout.contains("clig-club") && stdout.contains("viewer"), "{stdout}");

    // A viewer may neither change visibility nor invite.
    let (ok, _, stderr) = cli(&mate, &["projects", "update", "clig-app", "--visibility", "public"]).await;
    assert!(!ok && stderr.contains("403"), "{stderr}");
    let (ok, _, stderr) = cli(&mate, &["groups", "invite", "clig-club", "x@pusan.ac.kr"]).await;
    assert!(!ok && stderr.contains("403"), "{stderr}");

    // Transfer: the classmate owns the group, the former owner is a maintainer.
    let (ok, stdout, stderr) = cli(&owner, &["groups", "transfer", "clig-club", "clig-mate@pusan.ac.kr"]).await;
    assert!(ok && stdout.contains("owns clig-club"), "{stdout}{stderr}");
    let view = app.api_get(&mate, "/api/v1/groups/clig-club").await;
    let role_of = |email: &str| {
        view["members"].as_array().into_iter().flatten().find(|m| m["email"] == email).map(|m| m["role"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(role_of("clig-mate@pusan.ac.kr").as_deref(), Some("owner"), "{view}");
    assert_eq!(role_of("clig-owner@pusan.ac.kr").as_deref(), Some("maintainer"), "{view}");

    // The new owner removes the pending invitation; the last owner cannot leave; the maintainer can.
    let (ok, stdout, stderr) = cli(&mate, &["groups", "remove", "clig-club", "clig-later@pusan.ac.kr"]).await;
    assert!(ok && stdout.contains("removed clig-later@pusan.ac.kr"), "{stdout}{stderr}");
    let (ok, _, stderr) = cli(&mate, &["groups", "leave", "clig-club"]).await;
    assert!(!ok && stderr.contains("last_owner"), "{stderr}");
    let (ok, stdout, stderr) = cli(&owner, &["groups", "leave", "clig-club"]).await;
    assert!(ok && stdout.contains("you left clig-club"), "{stdout}{stderr}");
    let view = app.api_get(&mate, "/api/v1/groups/clig-club").await;
    let emails: Vec<&str> = view["members"].as_array().into_iter().flatten().filter_map(|m| m["email"].as_str()).collect();
    assert_eq!(emails, ["clig-mate@pusan.ac.kr"], "{view}");
    assert_eq!(view["invitations"].as_array().map(Vec::len), Some(0), "{view}");
}
