//! The build egress proxy's rules, pure: which requests a build may make (`CONNECT host:443` to a
//! package registry), which addresses a registry name may resolve to (public ones only), and the
//! answers the proxy gives when it refuses.
//!
//! A host is allowed when it equals an allow-list entry or is a subdomain of one:
//! `registry.npmjs.org` allows `registry.npmjs.org` and `x.registry.npmjs.org`, never
//! `evilregistry.npmjs.org` or `registry.npmjs.org.evil.example`. IP literals are never allowed,
//! whatever the list says. Every address the name resolves to must be public: one loopback,
//! private, link-local, CGNAT, unspecified, multicast, broadcast or reserved address among them
//! refuses the whole request, so a registry name pointed at the host (by a poisoned resolver or a
//! hostile DNS record) cannot lead a build to PostgreSQL, Redis or the portal. IPv6 addresses that
//! carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
//! 6to4 `2002::/16`) are judged by that IPv4 address.
//!
//! What this module deliberately does not do: no I/O, no clock, no tokio. It does not refuse the
//! documentation and benchmarking ranges (TEST-NET, 198.18/15): they are not the host's and, on
//! the development machine, the registries themselves resolve into TEST-NET-3. It does not parse
//! header fields (a CONNECT needs none) and never looks inside a tunnel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The package registries builds may reach by default: npm and Yarn, PyPI, Maven Central and the
/// Gradle plugin portal and distributions, the Go module proxy and checksum database, Google
/// Cloud Storage (where several of those keep their files), and GitHub (Go modules and npm
/// dependencies that name a repository).
pub const DEFAULT_REGISTRIES: [&str; 15] = [
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "pypi.org",
    "files.pythonhosted.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "plugins.gradle.org",
    "services.gradle.org",
    "downloads.gradle.org",
    "proxy.golang.org",
    "sum.golang.org",
    "storage.googleapis.com",
    "codeload.github.com",
    "github.com",
    "objects.githubusercontent.com",
];

/// The only port a build may connect to: HTTPS.
pub const ALLOWED_PORT: u16 = 443;

/// The largest request head (request line and header fields) the proxy reads.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Where a permitted tunnel goes: an allowed registry host and port 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why an address may not be the end of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Unspecified,
    Loopback,
    /// RFC 1918 or an IPv6 unique local (fc00::/7) or site-local (fec0::/10) address.
    Private,
    LinkLocal,
    /// 100.64.0.0/10, carrier-grade NAT's shared space.
    SharedCgnat,
    Multicast,
    Broadcast,
    /// 240.0.0.0/4, never routed.
    Reserved,
}

impl AddressKind {
    pub fn describe(self) -> &'static str {
        match self {
            AddressKind::Unspecified => "an unspecified address",
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private address",
            AddressKind::LinkLocal => "a link-local address",
            AddressKind::SharedCgnat => "a carrier-grade NAT address",
            AddressKind::Multicast => "a multicast address",
            AddressKind::Broadcast => "the broadcast address",
            AddressKind::Reserved => "a reserved address",
        }
    }
}

/// Why the proxy did not open a tunnel; each becomes one HTTP answer and one build-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an HTTP/1.x request head, or it stopped arriving.
    Malformed { reason: String },
    /// The head is longer than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// A method other than CONNECT: plain-HTTP proxying (`GET http://...`).
    PlainHttp { method: String, target: String },
    /// A host that is not on the allow-list, or an IP literal.
    NotARegistry { target: String },
    /// An allowed host on a port other than 443.
    NotHttps { target: String },
    /// An allowed host that resolves to an address of the host or of a local network.
    ForbiddenAddress { target: String, address: IpAddr, kind: AddressKind },
    /// An allowed host that could not be resolved or connected to.
    Unreachable { target: String, reason: String },
}

impl Refusal {
    /// The status code and reason phrase of the answer.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::Malformed { .. } => (400, "Bad Request"),
            Refusal::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Refusal::PlainHttp { .. } | Refusal::NotARegistry { .. } | Refusal::NotHttps { .. } | Refusal::ForbiddenAddress { .. } => {
                (403, "Forbidden")
            }
            Refusal::Unreachable { .. } => (502, "Bad Gateway"),
        }
    }

    /// One sentence for the student, without the `slipway:` prefix the answer adds.
    pub fn message(&self) -> String {
        match self {
            Refusal::Malformed { reason } => format!("the build proxy did not understand the request: {reason}"),
            Refusal::HeadTooLarge => format!("the request head is longer than {MAX_HEAD_BYTES} bytes"),
            Refusal::PlainHttp { method, target } => format!(
                "builds may only reach package registries, over HTTPS; `{method} {target}` is a plain HTTP request, which the build proxy does not forward"
            ),
            Refusal::NotARegistry { target } => format!("builds may only reach package registries; `{target}` is not one"),
            Refusal::NotHttps { target } => {
                format!("builds may only reach package registries over HTTPS (port {ALLOWED_PORT}); `{target}` is another port")
            }
            Refusal::ForbiddenAddress { target, address, kind } => format!(
                "`{target}` resolves to {address}, {}; builds may not reach the host's or a local network's services",
                kind.describe()
            ),
            Refusal::Unreachable { target, reason } => format!("could not reach `{target}`: {reason}"),
        }
    }

    /// The complete HTTP answer: status line, a few header fields and `slipway: <message>`.
    pub fn response(&self) -> Vec<u8> {
        let (code, phrase) = self.status();
        let body = format!("slipway: {}\n", self.message());
        format!(
            "HTTP/1.1 {code} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// The answer that opens a tunnel.
pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

/// The length of the request head in `buffer` (through the blank line), once it is complete.
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// The method and target of a request head: `CONNECT pypi.org:443 HTTP/1.1` gives
/// `("CONNECT", "pypi.org:443")`.
pub fn parse_request_line(head: &[u8]) -> Result<(String, String), Refusal> {
    let malformed = |reason: &str| Refusal::Malformed { reason: reason.to_owned() };
    let text = std::str::from_utf8(head).map_err(|_| malformed("the request head is not text"))?;
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("the request line is not `METHOD TARGET HTTP/1.1`"));
    };
    if method.is_empty() || target.is_empty() || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(malformed("the request line is not `METHOD TARGET HTTP/1.1`"));
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase()) || target.chars().any(|c| c.is_control()) {
        return Err(malformed("the request line has characters no HTTP method or target has"));
    }
    Ok((method.to_owned(), target.to_owned()))
}

/// Splits `host:port` (or `[v6]:port`) and normalises the host: lower case, no trailing dot.
pub fn parse_authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = match target.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:")?;
            (host, port)
        }
        None => {
            let (host, port) = target.rsplit_once(':')?;
            if host.contains(':') {
                return None;
            }
            (host, port)
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    if host.is_empty() || port.to_string().len() != port_digits(target) {
        return None;
    }
    Some((host, port))
}

/// How many characters follow the last `:` (so `pypi.org:0443` and `pypi.org:+443` are refused).
fn port_digits(target: &str) -> usize {
    target.rsplit_once(':').map(|(_, port)| port.len()).unwrap_or(0)
}

/// An allow-list entry as the operator wrote it, normalised (lower case, no trailing dot), or
/// `None` when it is not a registry host name: it needs two labels and a top-level label that is
/// not a number, so neither `localhost` nor `127.0.0.1` can be allowed.
pub fn normalize_registry(entry: &str) -> Option<String> {
    let entry = entry.trim();
    let name = entry.strip_suffix('.').unwrap_or(entry).to_ascii_lowercase();
    let top_label = name.rsplit('.').next().unwrap_or_default();
    (crate::model::is_dns_name(&name) && name.contains('.') && !top_label.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Whether `host` (normalised, as from [`parse_authority`]) is an allow-list entry or a
/// subdomain of one. IP literals never are.
pub fn is_allowed_host(host: &str, registries: &[String]) -> bool {
    if host.parse::<IpAddr>().is_ok() || !crate::model::is_dns_name(host) {
        return false;
    }
    registries.iter().any(|entry| {
        host == entry.as_str()
            || (host.len() > entry.len() && host.ends_with(entry.as_str()) && host[..host.len() - entry.len()].ends_with('.'))
    })
}

/// Checks a request against the rules; the tunnel's target when it may go ahead (to resolution).
pub fn check_request(method: &str, target: &str, registries: &[String]) -> Result<Target, Refusal> {
    if method != "CONNECT" {
        return Err(Refusal::PlainHttp { method: method.to_owned(), target: target.to_owned() });
    }
    let Some((host, port)) = parse_authority(target) else {
        return Err(Refusal::Malformed { reason: format!("CONNECT needs `host:port`, not `{target}`") });
    };
    let shown = Target { host: host.clone(), port }.to_string();
    if !is_allowed_host(&host, registries) {
        return Err(Refusal::NotARegistry { target: shown });
    }
    if port != ALLOWED_PORT {
        return Err(Refusal::NotHttps { target: shown });
    }
    Ok(Target { host, port })
}

/// Why `address` may not be connected to, or `None` for a public address.
pub fn forbidden_kind(address: IpAddr) -> Option<AddressKind> {
    match address {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(address: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, _, _] = address.octets();
    if address.is_broadcast() {
        Some(AddressKind::Broadcast)
    } else if a == 0 {
        // 0.0.0.0/8 means "this host" to the kernel: a connect to 0.0.0.0 reaches 127.0.0.1.
        Some(AddressKind::Unspecified)
    } else if a == 127 {
        Some(AddressKind::Loopback)
    } else if a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168) {
        Some(AddressKind::Private)
    } else if a == 169 && b == 254 {
        Some(AddressKind::LinkLocal)
    } else if a == 100 && (64..=127).contains(&b) {
        Some(AddressKind::SharedCgnat)
    } else if (224..=239).contains(&a) {
        Some(AddressKind::Multicast)
    } else if a >= 240 {
        Some(AddressKind::Reserved)
    } else {
        None
    }
}

fn forbidden_v6(address: Ipv6Addr) -> Option<AddressKind> {
    let segments = address.segments();
    if address.is_unspecified() {
        return Some(AddressKind::Unspecified);
    }
    if address.is_loopback() {
        return Some(AddressKind::Loopback);
    }
    // The forms that carry an IPv4 address are judged by it.
    if let Some(v4) = address.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let embedded_low = Ipv4Addr::new((segments[6] >> 8) as u8, segments[6] as u8, (segments[7] >> 8) as u8, segments[7] as u8);
    if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded_low);
    }
    if segments[0] == 0x2002 {
        let embedded = Ipv4Addr::new((segments[1] >> 8) as u8, segments[1] as u8, (segments[2] >> 8) as u8, segments[2] as u8);
        return forbidden_v4(embedded);
    }
    if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
        Some(AddressKind::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(AddressKind::LinkLocal)
    } else if segments[0] & 0xff00 == 0xff00 {
        Some(AddressKind::Multicast)
    } else {
        None
    }
}

/// Checks every address a target's name resolved to; one forbidden address refuses them all.
pub fn check_addresses(target: &Target, addresses: &[IpAddr]) -> Result<(), Refusal> {
    if addresses.is_empty() {
        return Err(Refusal::Unreachable { target: target.to_string(), reason: "the name has no address".to_owned() });
    }
    for &address in addresses {
        if let Some(kind) = forbidden_kind(address) {
            return Err(Refusal::ForbiddenAddress { target: target.to_string(), address, kind });
        }
    }
    Ok(())
}

/// The environment that points build tools at the proxy on `127.0.0.1:port`. pip (requests),
/// Go, curl and npm read `HTTPS_PROXY`/`https_proxy`; npm also reads its own
/// `npm_config_https_proxy`/`npm_config_proxy`, which win over a project's `.npmrc`. Plain
/// `http://` URLs go to the proxy too and get its explanation instead of a DNS error.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let no_proxy = "localhost,127.0.0.1".to_owned();
    [
        ("HTTPS_PROXY", url.clone()),
        ("https_proxy", url.clone()),
        ("HTTP_PROXY", url.clone()),
        ("http_proxy", url.clone()),
        ("npm_config_https_proxy", url.clone()),
        ("npm_config_proxy", url),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registries() -> Vec<String> {
        DEFAULT_REGISTRIES.iter().map(|s| s.to_string()).collect()
    }

    /// One request line through every rule but resolution: `Ok(target)` or the refusal's message.
    fn check(request_line: &str, expected: Result<&str, &str>) {
        let head = format!("{request_line}\r\nHost: x\r\n\r\n");
        let got = parse_request_line(head.as_bytes())
            .and_then(|(method, target)| check_request(&method, &target, &registries()))
            .map(|target| target.to_string())
            .map_err(|refusal| refusal.message());
        match (&got, expected) {
            (Ok(target), Ok(want)) => assert_eq!(target, want, "{request_line}"),
            (Err(message), Err(fragment)) => assert!(message.contains(fragment), "{request_line}: {message:?} lacks {fragment:?}"),
            _ => panic!("{request_line}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn connect_to_a_registry_on_443_is_allowed_with_the_host_normalised() {
        check("CONNECT registry.npmjs.org:443 HTTP/1.1", Ok("registry.npmjs.org:443"));
        check("CONNECT files.pythonhosted.org:443 HTTP/1.0", Ok("files.pythonhosted.org:443"));
        check("CONNECT PyPI.org.:443 HTTP/1.1", Ok("pypi.org:443"));
        check("CONNECT a.b.storage.googleapis.com:443 HTTP/1.1", Ok("a.b.storage.googleapis.com:443"));
    }

    #[test]
    fn hosts_off_the_list_lookalikes_and_ip_literals_are_not_registries() {
        for request_line in [
            "CONNECT evil.example:443 HTTP/1.1",
            "CONNECT evilregistry.npmjs.org:443 HTTP/1.1",
            "CONNECT registry.npmjs.org.evil.example:443 HTTP/1.1",
            "CONNECT npmjs.org:443 HTTP/1.1",
            "CONNECT localhost:443 HTTP/1.1",
            "CONNECT 127.0.0.1:443 HTTP/1.1",
            "CONNECT [::1]:443 HTTP/1.1",
            "CONNECT 169.254.169.254:443 HTTP/1.1",
            "CONNECT pypi.org%2f@evil.example:443 HTTP/1.1",
        ] {
            check(request_line, Err("builds may only reach package registries; `"));
        }
        check("CONNECT evil.example:443 HTTP/1.1", Err("builds may only reach package registries; `evil.example:443` is not one"));
    }

    #[test]
    fn only_port_443_is_allowed() {
        check("CONNECT pypi.org:80 HTTP/1.1", Err("over HTTPS (port 443); `pypi.org:80` is another port"));
        check("CONNECT pypi.org:22 HTTP/1.1", Err("another port"));
        check("CONNECT pypi.org:0443 HTTP/1.1", Err("CONNECT needs `host:port`"));
        check("CONNECT pypi.org HTTP/1.1", Err("CONNECT needs `host:port`"));
        check("CONNECT pypi.org:65536 HTTP/1.1", Err("CONNECT needs `host:port`"));
    }

    #[test]
    fn plain_http_proxying_is_refused_with_the_reason() {
        check("GET http://registry.npmjs.org/express HTTP/1.1", Err("`GET http://registry.npmjs.org/express` is a plain HTTP request"));
        check("POST http://127.0.0.1:6379/ HTTP/1.1", Err("plain HTTP request"));
        check("GET / HTTP/1.1", Err("plain HTTP request"));
    }

    #[test]
    fn request_lines_that_are_not_http_are_malformed() {
        for request_line in [
            "PING",
            "CONNECT pypi.org:443",
            "CONNECT pypi.org:443 HTTP/2",
            "connect pypi.org:443 HTTP/1.1",
            "CONNECT  pypi.org:443 HTTP/1.1",
        ] {
            check(request_line, Err("did not understand the request"));
        }
        assert!(matches!(parse_request_line(b"\xff\xfe\r\n\r\n"), Err(Refusal::Malformed { .. })));
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03"), Some(26));
        assert_eq!(head_end(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(parse_authority("Pypi.Org.:443"), Some(("pypi.org".to_owned(), 443)));
        assert_eq!(parse_authority("[::1]:443"), Some(("::1".to_owned(), 443)));
        assert_eq!(parse_authority("::1:443"), None);
        assert_eq!(parse_authority(":443"), None);
        assert_eq!(parse_authority("pypi.org:+443"), None);
    }

    fn kind(address: &str) -> Option<AddressKind> {
        forbidden_kind(address.parse().expect("an address"))
    }

    #[test]
    fn addresses_of_the_host_and_local_networks_are_forbidden() {
        use AddressKind::*;
        let table = [
            ("127.0.0.1", Some(Loopback)),
            ("127.53.0.1", Some(Loopback)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("10.255.255.53", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("240.0.0.1", Some(Reserved)),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:7f00:1::", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
        ];
        for (address, expected) in table {
            assert_eq!(kind(address), expected, "{address}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "104.16.1.34",
            "151.101.0.223",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "203.0.113.80",
            "2606:4700::6810:122",
            "::ffff:104.16.1.34",
            "2002:6810:122::",
        ] {
            assert_eq!(kind(address), None, "{address}");
        }
    }

    #[test]
    fn one_forbidden_address_among_public_ones_refuses_the_target() {
        let target = Target { host: "registry.npmjs.org".to_owned(), port: 443 };
        let public: IpAddr = "104.16.1.34".parse().expect("address");
        let loopback: IpAddr = "127.0.0.1".parse().expect("address");
        assert_eq!(check_addresses(&target, &[public]), Ok(()));
        let refusal = check_addresses(&target, &[public, loopback]).expect_err("refused");
        assert_eq!(refusal.status().0, 403);
        assert_eq!(
            refusal.message(),
            "`registry.npmjs.org:443` resolves to 127.0.0.1, a loopback address; builds may not reach the host's or a local network's services"
        );
        assert_eq!(check_addresses(&target, &[]).map_err(|r| r.status().0), Err(502));
    }

    #[test]
    fn allow_list_entries_must_be_host_names_with_a_dot() {
        assert_eq!(normalize_registry(" Registry.NPMJS.org. "), Some("registry.npmjs.org".to_owned()));
        for bad in ["localhost", "127.0.0.1", "", "*.npmjs.org", "http://pypi.org", "pypi.org:443", "-a.org"] {
            assert_eq!(normalize_registry(bad), None, "{bad:?}");
        }
        for entry in DEFAULT_REGISTRIES {
            assert_eq!(normalize_registry(entry).as_deref(), Some(entry));
        }
    }

    #[test]
    fn a_refusal_is_a_complete_http_answer_with_a_slipway_sentence() {
        let refusal = Refusal::NotARegistry { target: "evil.example:443".to_owned() };
        let response = String::from_utf8(refusal.response()).expect("text");
        let body = "slipway: builds may only reach package registries; `evil.example:443` is not one\n";
        assert!(response.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{response}");
        assert!(response.contains(&format!("Content-Length: {}\r\n", body.len())), "{response}");
        assert!(response.ends_with(&format!("\r\n\r\n{body}")), "{response}");
    }

    #[test]
    fn the_proxy_environment_names_the_proxy_for_every_tool_and_exempts_loopback() {
        let env = proxy_env(3128);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        for key in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "npm_config_https_proxy", "npm_config_proxy"] {
            assert_eq!(get(key), Some("http://127.0.0.1:3128"), "{key}");
        }
        assert_eq!(get("NO_PROXY"), Some("localhost,127.0.0.1"));
    }
}
