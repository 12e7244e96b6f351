//! Signed access credentials for one app: the short-lived hand-off token the portal mints after
//! login, and the gateway's own cookie it is exchanged for.
//!
//! Both are `HEX(payload) "." HEX(HMAC-SHA256(key, kind || payload))` where the payload is
//! `user:sid:expires:nonce:app:next`. `kind` (`t` for a hand-off token, `c` for a cookie) is
//! signed but not written, so a token can never be replayed as a cookie or the reverse; `app`
//! binds the credential to one app host, `sid` names the portal session it came from (so logging
//! out revokes it), and `next` is the path to return to (only hand-off tokens carry one).
//!
//! Pure: the key and the time are passed in; no clock, no randomness (the caller brings the
//! nonce), no I/O. It deliberately does not decide who may see an app: `decide` does.

use sha2::{Digest, Sha256};

/// What a credential is for. Each is signed under its own tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Minted by the portal, carried once in the `/.slipway/auth?token=` URL, valid for seconds.
    Handoff,
    /// Set by the gateway for one app host, sent back on every request.
    Cookie,
}

impl Kind {
    fn tag(self) -> &'static [u8] {
        match self {
            Kind::Handoff => b"t",
            Kind::Cookie => b"c",
        }
    }
}

/// What a verified credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: i64,
    /// The portal session's public id (`session_id`), 32 hex digits.
    pub sid: String,
    /// Unix seconds after which the credential is refused.
    pub expires_at: u64,
    /// Random hex from the minter; hand-off tokens are accepted once per nonce.
    pub nonce: String,
    pub app: String,
    /// Where to go after the hand-off: a path starting with `/`, or empty.
    pub next: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the credential is not in the expected format")]
    Malformed,
    #[error("the credential's signature does not match")]
    BadSignature,
    #[error("the credential has expired")]
    Expired,
    #[error("the credential is for another app")]
    WrongApp,
}

/// Signs `claims` as a credential of `kind`.
pub fn sign(key: &[u8; 32], kind: Kind, claims: &Claims) -> String {
    let payload = format!("{}:{}:{}:{}:{}:{}", claims.user_id, claims.sid, claims.expires_at, claims.nonce, claims.app, claims.next);
    let mac = hmac(key, kind.tag(), payload.as_bytes());
    format!("{}.{}", hex::encode(payload.as_bytes()), hex::encode(mac))
}

/// Checks signature, expiry (`now_unix` must be before `expires_at`) and the app it is bound to.
pub fn verify(key: &[u8; 32], kind: Kind, text: &str, app: &str, now_unix: u64) -> Result<Claims, TokenError> {
    let (payload_hex, mac_hex) = text.split_once('.').ok_or(TokenError::Malformed)?;
    // A payload is a few hundred bytes at most; anything longer is not ours.
    if payload_hex.len() > 4096 || mac_hex.len() != 64 {
        return Err(TokenError::Malformed);
    }
    let payload = hex::decode(payload_hex).map_err(|_| TokenError::Malformed)?;
    let mut given = [0u8; 32];
    hex::decode_to_slice(mac_hex, &mut given).map_err(|_| TokenError::Malformed)?;
    let expected = hmac(key, kind.tag(), &payload);
    if !constant_time_eq(&expected, &given) {
        return Err(TokenError::BadSignature);
    }
    let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
    let mut fields = payload.splitn(6, ':');
    let mut next_field = || fields.next().ok_or(TokenError::Malformed);
    let user_id = next_field()?.parse().map_err(|_| TokenError::Malformed)?;
    let sid = next_field()?.to_owned();
    let expires_at: u64 = next_field()?.parse().map_err(|_| TokenError::Malformed)?;
    let nonce = next_field()?.to_owned();
    let claimed_app = next_field()?.to_owned();
    let next = next_field()?.to_owned();
    if now_unix >= expires_at {
        return Err(TokenError::Expired);
    }
    if claimed_app != app {
        return Err(TokenError::WrongApp);
    }
    Ok(Claims { user_id, sid, expires_at, nonce, app: claimed_app, next })
}

/// The public id of a portal session, derived from the hash the portal keys it by: it names the
/// session in revocation lists and cookies without being usable to log in.
pub fn session_id(session_hash: &str) -> String {
    let digest = Sha256::digest([b"slipway session id\0".as_slice(), session_hash.as_bytes()].concat());
    hex::encode(&digest[..16])
}

/// HMAC-SHA256 (RFC 2104) over `tag || message`. Also signs the portal's artifact URLs.
pub fn hmac(key: &[u8; 32], tag: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut inner_pad = [0x36u8; BLOCK];
    let mut outer_pad = [0x5cu8; BLOCK];
    for (index, byte) in key.iter().enumerate() {
        inner_pad[index] ^= byte;
        outer_pad[index] ^= byte;
    }
    let inner = Sha256::new().chain_update(inner_pad).chain_update(tag).chain_update([0u8]).chain_update(message).finalize();
    Sha256::new().chain_update(outer_pad).chain_update(inner).finalize().into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const NOW: u64 = 1_800_000_000;

    fn claims(app: &str, expires_at: u64) -> Claims {
        Claims { user_id: 42, sid: "ab".repeat(16), expires_at, nonce: "n1".to_owned(), app: app.to_owned(), next: "/a:b?c=d".to_owned() }
    }

    fn check(text: &str, kind: Kind, app: &str, now: u64, expected: Result<i64, TokenError>) {
        assert_eq!(verify(&KEY, kind, text, app, now).map(|c| c.user_id), expected, "{text}");
    }

    #[test]
    fn hmac_matches_the_rfc_4231_construction_for_a_32_byte_key() {
        // RFC 4231 test case 2 uses a short key, so check the construction against an independent
        // computation instead: HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)).
        let key = [0x0bu8; 32];
        let mut ipad = vec![0x36u8 ^ 0x0b; 32];
        ipad.extend([0x36u8; 32]);
        let mut opad = vec![0x5cu8 ^ 0x0b; 32];
        opad.extend([0x5cu8; 32]);
        let inner = Sha256::digest([ipad, b"t\0hello".to_vec()].concat());
        let expected: [u8; 32] = Sha256::digest([opad, inner.to_vec()].concat()).into();
        assert_eq!(hmac(&key, b"t", b"hello"), expected);
    }

    #[test]
    fn a_signed_credential_verifies_and_round_trips_its_claims() {
        let original = claims("quiz", NOW + 60);
        let text = sign(&KEY, Kind::Handoff, &original);
        assert_eq!(verify(&KEY, Kind::Handoff, &text, "quiz", NOW), Ok(original));
    }

    #[test]
    fn expired_tampered_foreign_and_cross_kind_credentials_are_refused() {
        let token = sign(&KEY, Kind::Handoff, &claims("quiz", NOW + 60));
        check(&token, Kind::Handoff, "quiz", NOW + 59, Ok(42));
        check(&token, Kind::Handoff, "quiz", NOW + 60, Err(TokenError::Expired));
        check(&token, Kind::Handoff, "other", NOW, Err(TokenError::WrongApp));
        check(&token, Kind::Cookie, "quiz", NOW, Err(TokenError::BadSignature));
        let other_key = sign(&[8; 32], Kind::Handoff, &claims("quiz", NOW + 60));
        check(&other_key, Kind::Handoff, "quiz", NOW, Err(TokenError::BadSignature));
        // Changing the user id inside the payload (42 -> 43) breaks the signature.
        let (payload, mac) = token.split_once('.').expect("two parts");
        let forged_payload = hex::encode(String::from_utf8(hex::decode(payload).expect("hex")).expect("utf-8").replacen("42", "43", 1));
        check(&format!("{forged_payload}.{mac}"), Kind::Handoff, "quiz", NOW, Err(TokenError::BadSignature));
        // Moving the credential to another app by editing the payload breaks it too.
        let moved = hex::encode(String::from_utf8(hex::decode(payload).expect("hex")).expect("utf-8").replace(":quiz:", ":other:"));
        check(&format!("{moved}.{mac}"), Kind::Handoff, "other", NOW, Err(TokenError::BadSignature));
        for garbage in ["", ".", "zz.zz", "abc", &format!("{payload}.{}", "0".repeat(63)), &format!("{payload}x.{mac}")] {
            check(garbage, Kind::Handoff, "quiz", NOW, Err(TokenError::Malformed));
        }
    }

    #[test]
    fn session_ids_are_stable_short_and_do_not_reveal_the_session_hash() {
        let hash = "f".repeat(64);
        assert_eq!(session_id(&hash), session_id(&hash));
        assert_eq!(session_id(&hash).len(), 32);
        assert!(!hash.contains(&session_id(&hash)));
        assert_ne!(session_id(&hash), session_id(&"e".repeat(64)));
    }
}
