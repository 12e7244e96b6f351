//! Header rewriting for proxied requests and responses: hop-by-hop headers, the portal's cookies,
//! and the `X-Forwarded-*` family.
//!
//! Pure (no I/O); it edits `HeaderMap`s and nothing else. It deliberately does not touch
//! end-to-end headers beyond these: bodies, caching and content types are the app's business.
//!
//! Trust: in the embedded shape the gateway is the edge, so whatever a client says in
//! `X-Forwarded-For`, `-Proto`, `-Host`, `X-Real-IP` or `Forwarded` is a claim anyone can make, and
//! it is replaced rather than extended. Only when the direct peer is a configured trusted proxy
//! (a front proxy in the cluster shape) are its forwarding headers kept and the peer appended.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Cookies whose name starts with this belong to the portal and never reach an app.
pub const PORTAL_COOKIE_PREFIX: &str = "slipway_";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), plus the
/// non-standard `Keep-Alive` and `Proxy-Connection` that old clients still send.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// The comma-separated tokens of every `Connection` header, lowercased.
fn connection_tokens(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|token| token.trim_ascii().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// A request asking to switch protocols: `Connection: upgrade` together with an `Upgrade` header.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).iter().any(|token| token == b"upgrade")
}

/// Removes hop-by-hop headers and every header the `Connection` header names.
///
/// With `keep_upgrade`, an `Upgrade` header survives and `Connection: upgrade` is set again, so that
/// a protocol switch (WebSocket) can pass through while everything else about the hop is dropped.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    for token in connection_tokens(headers) {
        if let Ok(name) = HeaderName::from_bytes(&token) {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    for name in HOP_BY_HOP {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if keep_upgrade && headers.contains_key(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_portal_cookie_name(name: &[u8]) -> bool {
    let prefix = PORTAL_COOKIE_PREFIX.as_bytes();
    let name = name.trim_ascii();
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Drops `slipway_*` pairs from every `Cookie` header and keeps the rest in order; a header left
/// empty is removed. Works on bytes so that cookies which are not UTF-8 still pass untouched.
pub fn strip_portal_cookies(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    for value in values {
        let kept: Vec<&[u8]> = value
            .as_bytes()
            .split(|&b| b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|pair| !pair.is_empty())
            .filter(|pair| !is_portal_cookie_name(pair.split(|&b| b == b'=').next().unwrap_or_default()))
            .collect();
        if kept.is_empty() {
            continue;
        }
        let joined = kept.join(&b"; "[..]);
        // Every byte comes from a header value that was valid, and "; " is valid too.
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.append(header::COOKIE, value);
        }
    }
}

/// Drops every `Set-Cookie` from an app that tries to set a `slipway_*` cookie: an app must not be
/// able to plant or overwrite a portal cookie, even though the portal's are host-only.
pub fn strip_portal_set_cookies(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
    if !values.iter().any(sets_portal_cookie) {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in values.into_iter().filter(|value| !sets_portal_cookie(value)) {
        headers.append(header::SET_COOKIE, value);
    }
}

fn sets_portal_cookie(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let pair = bytes.split(|&b| b == b';').next().unwrap_or_default();
    is_portal_cookie_name(pair.split(|&b| b == b'=').next().unwrap_or_default())
}

/// Sets the forwarding headers for a request that arrived from `peer` with `Host: host`.
///
/// An untrusted peer's `X-Forwarded-*`, `X-Real-IP` and `Forwarded` are replaced (or, for
/// `Forwarded`, removed), because at the edge they are whatever the client wants them to be. A
/// trusted peer (a front proxy) keeps its headers and is appended to `X-Forwarded-For`.
pub fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, host: &HeaderValue, peer_is_trusted: bool) {
    let peer_value = HeaderValue::from_str(&peer.to_string()).expect("an IP address is a valid header value");
    if peer_is_trusted {
        let chain: Vec<&[u8]> =
            headers.get_all(&X_FORWARDED_FOR).iter().map(|v| v.as_bytes().trim_ascii()).filter(|v| !v.is_empty()).collect();
        let mut joined = chain.join(&b", "[..]);
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(peer_value.as_bytes());
        let value = HeaderValue::from_bytes(&joined).expect("joined from valid header values");
        headers.insert(X_FORWARDED_FOR, value);
        headers.entry(X_FORWARDED_PROTO).or_insert(HeaderValue::from_static("http"));
        headers.entry(X_FORWARDED_HOST).or_insert(host.clone());
        headers.entry(X_REAL_IP).or_insert(peer_value);
    } else {
        headers.remove(header::FORWARDED);
        headers.insert(X_FORWARDED_FOR, peer_value.clone());
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        headers.insert(X_FORWARDED_HOST, host.clone());
        headers.insert(X_REAL_IP, peer_value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        headers
    }

    fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().expect("test values are ASCII").to_owned()))
            .collect();
        out.sort();
        out
    }

    fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = expected.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        out.sort();
        out
    }

    fn check_hop(input: &[(&str, &str)], keep_upgrade: bool, expected: &[(&str, &str)]) {
        let mut headers = map(input);
        strip_hop_by_hop(&mut headers, keep_upgrade);
        assert_eq!(pairs(&headers), owned(expected), "input {input:?}, keep_upgrade {keep_upgrade}");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        check_hop(&[("host", "quiz.localhost"), ("accept", "*/*")], false, &[("host", "quiz.localhost"), ("accept", "*/*")]);
        check_hop(
            &[
                ("connection", "keep-alive, X-Custom"),
                ("x-custom", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("trailer", "x-checksum"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "websocket"),
                ("proxy-authorization", "Basic eA=="),
                ("accept", "*/*"),
            ],
            false,
            &[("accept", "*/*")],
        );
        check_hop(&[("connection", "x-a"), ("connection", " X-B ,,"), ("x-a", "1"), ("x-b", "2"), ("x-c", "3")], false, &[("x-c", "3")]);
        check_hop(&[("connection", "not a header name, x-a"), ("x-a", "1")], false, &[]);
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_header_when_asked() {
        check_hop(
            &[("connection", "Upgrade, x-a"), ("upgrade", "websocket"), ("x-a", "1"), ("sec-websocket-key", "k")],
            true,
            &[("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")],
        );
        check_hop(&[("connection", "keep-alive")], true, &[]);
    }

    #[test]
    fn upgrade_requests_need_both_headers() {
        let check = |input: &[(&str, &str)], expected: bool| assert_eq!(is_upgrade_request(&map(input)), expected, "input {input:?}");
        check(&[("connection", "Upgrade"), ("upgrade", "websocket")], true);
        check(&[("connection", "keep-alive, upgrade"), ("upgrade", "echo")], true);
        check(&[("upgrade", "websocket")], false);
        check(&[("connection", "upgrade")], false);
        check(&[("connection", "upgraded"), ("upgrade", "websocket")], false);
    }

    fn check_cookies(input: &[&str], expected: &[&str]) {
        let mut headers = map(&input.iter().map(|v| ("cookie", *v)).collect::<Vec<_>>());
        strip_portal_cookies(&mut headers);
        let got: Vec<&str> = headers.get_all(header::COOKIE).iter().map(|v| v.to_str().expect("ASCII")).collect();
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn portal_cookies_are_removed_and_others_kept_in_order() {
        check_cookies(&["a=1; b=2"], &["a=1; b=2"]);
        check_cookies(&["a=1; slipway_session=secret; b=2"], &["a=1; b=2"]);
        check_cookies(&["slipway_session=secret"], &[]);
        check_cookies(&["Slipway_CSRF=x;theme=dark"], &["theme=dark"]);
        check_cookies(&["slipway_session=s", "a=1", "slipway_csrf=c; b=2"], &["a=1", "b=2"]);
        check_cookies(&["my_slipway_pref=1; slipway=2"], &["my_slipway_pref=1; slipway=2"]);
        check_cookies(&[" ; a=1 ;; "], &["a=1"]);
        check_cookies(&["flag"], &["flag"]);
        check_cookies(&[], &[]);
    }

    fn check_set_cookies(input: &[&str], expected: &[&str]) {
        let mut headers = map(&input.iter().map(|v| ("set-cookie", *v)).collect::<Vec<_>>());
        strip_portal_set_cookies(&mut headers);
        let got: Vec<&str> = headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ASCII")).collect();
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn apps_cannot_set_portal_cookies() {
        check_set_cookies(&["theme=dark; Path=/"], &["theme=dark; Path=/"]);
        check_set_cookies(&["slipway_session=evil; Path=/; HttpOnly", "theme=dark"], &["theme=dark"]);
        check_set_cookies(&["a=1", " SLIPWAY_csrf=x", "b=2"], &["a=1", "b=2"]);
        check_set_cookies(&["session=1; Comment=slipway_session"], &["session=1; Comment=slipway_session"]);
    }

    fn check_forwarded(input: &[(&str, &str)], trusted: bool, expected: &[(&str, &str)]) {
        let mut headers = map(input);
        set_forwarded(&mut headers, "10.1.2.3".parse().expect("literal"), &HeaderValue::from_static("quiz.localhost:8000"), trusted);
        assert_eq!(pairs(&headers), owned(expected), "input {input:?}, trusted {trusted}");
    }

    #[test]
    fn forwarding_headers_are_replaced_at_the_edge_and_extended_behind_a_trusted_proxy() {
        let edge = [
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "quiz.localhost:8000"),
            ("x-real-ip", "10.1.2.3"),
        ];
        check_forwarded(&[], false, &edge);
        check_forwarded(
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "7.7.7.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "bank.example"),
                ("x-real-ip", "6.6.6.6"),
                ("forwarded", "for=6.6.6.6"),
            ],
            false,
            &edge,
        );
        check_forwarded(&[], true, &edge);
        check_forwarded(
            &[
                ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
                ("x-forwarded-for", "3.3.3.3"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "quiz.apps.example"),
                ("x-real-ip", "1.1.1.1"),
                ("forwarded", "for=1.1.1.1"),
            ],
            true,
            &[
                ("x-forwarded-for", "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "quiz.apps.example"),
                ("x-real-ip", "1.1.1.1"),
                ("forwarded", "for=1.1.1.1"),
            ],
        );
    }
}
