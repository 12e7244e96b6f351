//! `Gate::check` end to end on values: hand-off, cookie, replay, revocation, staleness.

use super::*;

const KEY: [u8; 32] = [9; 32];
const NOW: u64 = 1_800_000_000;
const OWNER: i64 = 5;

fn gate() -> Arc<Gate> {
    let gate = Gate::new(AccessConfig {
        key: KEY,
        portal_url: "http://portal.test".to_owned(),
        cookie_ttl_secs: 3600,
        secure_cookies: false,
        max_staleness_secs: 60,
    });
    gate.replace(table(&[]), NOW);
    gate
}

fn table(revoked: &[&str]) -> AccessTable {
    AccessTable::new(
        [
            ("quiz".to_owned(), AccessRecord { visibility: Visibility::Private, users: vec![OWNER] }),
            ("chat".to_owned(), AccessRecord { visibility: Visibility::Private, users: vec![OWNER] }),
            ("open".to_owned(), AccessRecord { visibility: Visibility::Public, users: vec![] }),
        ],
        revoked.iter().map(|s| s.to_string()),
    )
}

fn handoff(app: &str, user_id: i64, nonce: &str, expires_at: u64) -> String {
    let claims =
        Claims { user_id, sid: "s1".to_owned(), expires_at, nonce: nonce.to_owned(), app: app.to_owned(), next: "/page?x=1".to_owned() };
    token::sign(&KEY, Kind::Handoff, &claims)
}

fn request<'a>(app: &'a str, path: &'a str, cookie: Option<&'a str>) -> AccessRequest<'a> {
    AccessRequest { app, path_and_query: path, cookie, navigation: true }
}

/// Exchanges a hand-off token and returns the cookie value the gateway set.
fn enter(gate: &Gate, app: &str, token: &str) -> String {
    let path = format!("{HANDOFF_PATH}?token={token}");
    match gate.check(&request(app, &path, None), NOW) {
        Answer::Enter { set_cookie, location } => {
            assert_eq!(location, "/page?x=1");
            assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/") && !set_cookie.contains("Domain"), "{set_cookie}");
            set_cookie.split(';').next().and_then(|pair| pair.strip_prefix("slipway_access=")).expect("the cookie").to_owned()
        }
        other => panic!("expected the hand-off to be accepted, got {other:?}"),
    }
}

#[test]
fn anonymous_navigation_is_sent_to_the_portal_and_other_requests_get_401() {
    let gate = gate();
    assert_eq!(
        gate.check(&request("quiz", "/a b?c=1", None), NOW),
        Answer::Login { location: "http://portal.test/access?app=quiz&next=%2Fa%20b%3Fc%3D1".to_owned() }
    );
    let websocket = AccessRequest { navigation: false, ..request("quiz", "/ws", None) };
    assert!(matches!(gate.check(&websocket, NOW), Answer::LoginRequired { .. }));
    assert_eq!(gate.check(&request("open", "/", None), NOW), Answer::Pass { user_id: None });
}

#[test]
fn a_hand_off_token_becomes_a_cookie_that_lets_its_user_in() {
    let gate = gate();
    let cookie = enter(&gate, "quiz", &handoff("quiz", OWNER, "n1", NOW + 60));
    assert_eq!(gate.check(&request("quiz", "/", Some(&cookie)), NOW + 10), Answer::Pass { user_id: Some(OWNER) });
    // The cookie expires with its lifetime.
    gate.touch(NOW + 3600);
    assert!(matches!(gate.check(&request("quiz", "/", Some(&cookie)), NOW + 3600), Answer::Login { .. }));
}

#[test]
fn a_hand_off_token_is_refused_when_expired_tampered_replayed_or_for_another_host() {
    let gate = gate();
    let check_refused = |gate: &Gate, app: &str, token: &str| {
        let path = format!("{HANDOFF_PATH}?token={token}");
        match gate.check(&request(app, &path, None), NOW) {
            Answer::BadHandoff(reason) => reason,
            other => panic!("expected a refusal for {token}, got {other:?}"),
        }
    };
    assert!(check_refused(&gate, "quiz", &handoff("quiz", OWNER, "n2", NOW)).contains("expired"));
    assert!(check_refused(&gate, "chat", &handoff("quiz", OWNER, "n3", NOW + 60)).contains("another app"));
    let good = handoff("quiz", OWNER, "n4", NOW + 60);
    let last = if good.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &good[..good.len() - 1]);
    assert!(check_refused(&gate, "quiz", &tampered).contains("not valid"));
    enter(&gate, "quiz", &good);
    assert!(check_refused(&gate, "quiz", &good).contains("already used"));
    assert!(check_refused(&gate, "quiz", "").contains("not valid"));
}

#[test]
fn a_cookie_for_one_app_does_not_open_another() {
    let gate = gate();
    let cookie = enter(&gate, "quiz", &handoff("quiz", OWNER, "n5", NOW + 60));
    assert!(matches!(gate.check(&request("chat", "/", Some(&cookie)), NOW), Answer::Login { .. }));
    // A hand-off token presented as a cookie is not a cookie.
    let token = handoff("quiz", OWNER, "n6", NOW + 60);
    assert!(matches!(gate.check(&request("quiz", "/", Some(&token)), NOW), Answer::Login { .. }));
}

#[test]
fn a_user_who_may_not_see_the_app_is_denied_at_the_hand_off_and_with_a_cookie() {
    let gate = gate();
    let path = format!("{HANDOFF_PATH}?token={}", handoff("quiz", OWNER + 1, "n7", NOW + 60));
    assert_eq!(gate.check(&request("quiz", &path, None), NOW), Answer::Denied);
    // Ownership moves away: the owner's existing cookie stops working with the next table.
    let cookie = enter(&gate, "quiz", &handoff("quiz", OWNER, "n8", NOW + 60));
    gate.replace(
        AccessTable::new([("quiz".to_owned(), AccessRecord { visibility: Visibility::Private, users: vec![OWNER + 1] })], []),
        NOW,
    );
    assert_eq!(gate.check(&request("quiz", "/", Some(&cookie)), NOW), Answer::Denied);
}

#[test]
fn logging_out_revokes_the_cookie_and_a_stale_table_refuses_non_public_apps() {
    let gate = gate();
    let cookie = enter(&gate, "quiz", &handoff("quiz", OWNER, "n9", NOW + 60));
    gate.replace(table(&["s1"]), NOW + 5);
    assert!(matches!(gate.check(&request("quiz", "/", Some(&cookie)), NOW + 5), Answer::Login { .. }));
    gate.replace(table(&[]), NOW + 5);
    assert_eq!(gate.check(&request("quiz", "/", Some(&cookie)), NOW + 65), Answer::Pass { user_id: Some(OWNER) });
    assert_eq!(gate.check(&request("quiz", "/", Some(&cookie)), NOW + 66), Answer::Unavailable);
    assert_eq!(gate.check(&request("open", "/", None), NOW + 66), Answer::Pass { user_id: None });
}

#[test]
fn cookies_are_found_among_headers_and_unsafe_next_paths_become_root() {
    let headers: [&[u8]; 2] = [b"a=1; slipway_session=s", b"b=2;slipway_access=v.w ; c=3"];
    assert_eq!(find_cookie(headers, ACCESS_COOKIE), Some("v.w"));
    assert_eq!(find_cookie([b"slipway_access=".as_slice()], ACCESS_COOKIE), None);
    for (next, expected) in [("/x?y", "/x?y"), ("//evil.test/", "/"), ("https://evil.test", "/"), ("", "/"), ("/\\evil", "/")] {
        assert_eq!(safe_path(next), expected, "{next}");
    }
    assert_eq!(handoff_query("/.slipway/auth?token=x"), Some("token=x"));
    assert_eq!(handoff_query("/.slipway/authx"), None);
    assert_eq!(handoff_query("/page"), None);
}
