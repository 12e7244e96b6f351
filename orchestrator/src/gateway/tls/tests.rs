//! Unit tests of the certificate store and key sealing (certificates in `testdata/`).

use super::*;

const WILDCARD_PEM: &[u8] = include_bytes!("testdata/wildcard.pem");
const WILDCARD_KEY: &[u8] = include_bytes!("testdata/wildcard.key");
const CUSTOM_PEM: &[u8] = include_bytes!("testdata/custom.pem");
const CUSTOM_KEY: &[u8] = include_bytes!("testdata/custom.key");

fn leaf(certified: &CertifiedKey) -> Vec<u8> {
    certified.cert[0].to_vec()
}

fn store() -> Arc<CertStore> {
    let store = CertStore::new("apps.test");
    store.set_wildcard(certified_key(WILDCARD_PEM, WILDCARD_KEY).expect("wildcard"));
    let custom = certified_key(CUSTOM_PEM, CUSTOM_KEY).expect("custom");
    store.set_custom(HashMap::from([("shop.example.test".to_owned(), Arc::new(custom))]));
    store
}

fn check(store: &CertStore, host: &str, expected: Option<&[u8]>) {
    let wanted = expected.map(|pem| CertificateDer::from_pem_slice(pem).expect("test pem").to_vec());
    assert_eq!(store.pick(host).map(|c| leaf(&c)), wanted, "{host}");
    assert_eq!(store.covers(host), expected.is_some(), "{host}");
}

#[test]
fn sni_picks_the_custom_domain_then_the_wildcard_and_nothing_for_other_names() {
    let store = store();
    check(&store, "shop.example.test", Some(CUSTOM_PEM));
    check(&store, "SHOP.example.test.", Some(CUSTOM_PEM));
    check(&store, "shop.example.test:443", Some(CUSTOM_PEM));
    check(&store, "quiz.apps.test", Some(WILDCARD_PEM));
    check(&store, "apps.test", Some(WILDCARD_PEM));
    check(&store, "a.b.apps.test", None);
    check(&store, "other.example.test", None);
    check(&store, "127.0.0.1", None);
}

#[test]
fn a_replaced_custom_certificate_is_picked_at_once_and_a_removed_one_is_gone() {
    let store = store();
    let replacement = certified_key(WILDCARD_PEM, WILDCARD_KEY).expect("wildcard");
    store.set_custom(HashMap::from([("shop.example.test".to_owned(), Arc::new(replacement))]));
    check(&store, "shop.example.test", Some(WILDCARD_PEM));
    store.set_custom(HashMap::new());
    check(&store, "shop.example.test", None);
}

#[test]
fn a_key_from_another_certificate_is_refused() {
    assert!(matches!(certified_key(CUSTOM_PEM, WILDCARD_KEY), Err(TlsError::Mismatch)));
    assert!(matches!(certified_key(b"", CUSTOM_KEY), Err(TlsError::Chain(_))));
    assert!(matches!(certified_key(CUSTOM_PEM, b"not a key"), Err(TlsError::Key(_))));
}

#[test]
fn sealed_keys_open_only_under_the_same_key() {
    let key = [7u8; 32];
    let sealed = seal_with_nonce(&key, [1u8; NONCE_LEN], CUSTOM_KEY);
    assert_eq!(open_sealed(&key, &sealed).expect("opens"), CUSTOM_KEY);
    assert!(matches!(open_sealed(&[8u8; 32], &sealed), Err(TlsError::Unseal)));
    assert!(matches!(open_sealed(&key, "AAAA"), Err(TlsError::Unseal)));
    assert!(matches!(open_sealed(&key, "not base64!"), Err(TlsError::Unseal)));
}
