//! Unit tests of the custom domain table, the challenge answers and the HTTPS redirect.

use super::*;

fn record(app: &str, verified: bool, proof_token: Option<&str>) -> DomainRecord {
    DomainRecord { app: app.to_owned(), verified, proof_token: proof_token.map(str::to_owned), certificate: None }
}

fn table() -> DomainTable {
    DomainTable::new(
        [
            ("Shop.Example.test".to_owned(), record("shop", true, None)),
            ("pending.example.test".to_owned(), record("quiz", false, Some("tok123"))),
        ],
        [("acmetoken".to_owned(), "acmetoken.thumbprint".to_owned())],
    )
}

#[test]
fn only_verified_domains_route_and_hosts_are_normalised() {
    let table = table();
    assert_eq!(table.app_for("shop.example.test"), Some("shop"));
    assert_eq!(table.app_for("SHOP.example.test.:8080"), Some("shop"));
    assert_eq!(table.app_for("pending.example.test"), None);
    assert_eq!(table.app_for("other.example.test"), None);
}

fn check_well_known(host: &str, path: &str, expected: Option<Option<&str>>) {
    assert_eq!(well_known(&table(), host, path), expected, "{host}{path}");
}

#[test]
fn challenge_paths_are_answered_by_the_gateway() {
    check_well_known("any.host", "/.well-known/acme-challenge/acmetoken", Some(Some("acmetoken.thumbprint")));
    check_well_known("any.host", "/.well-known/acme-challenge/unknown", Some(None));
    check_well_known("pending.example.test", "/.well-known/slipway-challenge/tok123", Some(Some("tok123")));
    // Another domain's token, an empty token and a wrong token are all unknown.
    check_well_known("shop.example.test", "/.well-known/slipway-challenge/tok123", Some(None));
    check_well_known("pending.example.test", "/.well-known/slipway-challenge/", Some(None));
    check_well_known("pending.example.test", "/.well-known/slipway-challenge/tok124", Some(None));
    check_well_known("shop.example.test", "/index.html", None);
    check_well_known("shop.example.test", "/.well-known/security.txt", None);
}

#[test]
fn redirects_keep_host_and_path_and_name_the_https_port() {
    assert_eq!(https_location("shop.example.test:80", "/a?b=c", 443).as_deref(), Some("https://shop.example.test/a?b=c"));
    assert_eq!(https_location("quiz.apps.test:8000", "/", 8443).as_deref(), Some("https://quiz.apps.test:8443/"));
    assert_eq!(https_location("quiz.apps.test", "", 443).as_deref(), Some("https://quiz.apps.test/"));
    assert_eq!(https_location("[::1]:80", "/", 443), None);
}

#[test]
fn the_recorded_boundary_example_parses() {
    let record: DomainRecord = serde_json::from_str(include_str!("testdata/domain-record.json")).expect("boundary example");
    assert_eq!(record.app, "shop");
    assert!(record.verified);
    assert!(record.certificate.is_some());
}

#[test]
fn replace_loads_certificates_of_verified_domains_only() {
    let key = [3u8; 32];
    let chain_pem = include_str!("../tls/testdata/custom.pem").to_owned();
    let key_sealed = crate::gateway::tls::seal_with_nonce(&key, [9u8; 24], include_bytes!("../tls/testdata/custom.key"));
    let certificate = PublishedCertificate { chain_pem, key_sealed };
    let mut verified = record("shop", true, None);
    verified.certificate = Some(certificate.clone());
    let mut unverified = record("quiz", false, Some("t"));
    unverified.certificate = Some(certificate.clone());
    let mut bad = record("bad", true, None);
    bad.certificate = Some(PublishedCertificate { key_sealed: "AAAA".to_owned(), ..certificate });
    let domains = Domains::new(CertStore::new("apps.test"), key);
    domains.replace(DomainTable::new(
        [("shop.example.test".to_owned(), verified), ("quiz.example.test".to_owned(), unverified), ("bad.example.test".to_owned(), bad)],
        [],
    ));
    assert!(domains.certs().covers("shop.example.test"));
    assert!(!domains.certs().covers("quiz.example.test"));
    assert!(!domains.certs().covers("bad.example.test"));
    assert_eq!(domains.table().app_for("bad.example.test"), Some("bad"));
}
