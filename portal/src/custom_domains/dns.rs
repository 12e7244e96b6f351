//! DNS lookups for ownership checks: TXT records (the proof token) and A records (where to fetch
//! the HTTP proof). `DnsLookup` is the seam; `UdpDns` asks one recursive resolver over UDP (the
//! configured `custom_domains.dns_server`, else the first `nameserver` of `/etc/resolv.conf`).
//!
//! A full resolver library would be far larger than these two questions need. The message
//! encoding and parsing (`encode_query`, `parse_answers`) are pure and unit-tested; only
//! `UdpDns::ask` does I/O. It deliberately does not fall back to TCP: a truncated answer is an
//! error (proof records are short), and it does not validate DNSSEC (the resolver's job).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("domain name `{0}` cannot be asked for")]
    BadName(String),
    #[error("DNS server {server} did not answer: {message}")]
    Unreachable { server: SocketAddr, message: String },
    #[error("DNS answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("DNS server answered with error code {0}")]
    ServerError(u8),
}

pub type Lookup<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// The two questions an ownership check asks. An empty list means the name has no such records.
pub trait DnsLookup: Send + Sync {
    fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>>;
    fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<Ipv4Addr>>;
}

pub const TYPE_A: u16 = 1;
pub const TYPE_TXT: u16 = 16;

/// One recursive resolver over UDP.
#[derive(Debug, Clone)]
pub struct UdpDns {
    pub server: SocketAddr,
    pub timeout: Duration,
}

impl UdpDns {
    async fn ask(&self, name: &str, qtype: u16) -> Result<Vec<Vec<u8>>, DnsError> {
        let id: u16 = rand::random();
        let query = encode_query(id, name, qtype)?;
        let unreachable = |message: String| DnsError::Unreachable { server: self.server, message };
        let bind: SocketAddr = if self.server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = tokio::net::UdpSocket::bind(bind).await.map_err(|e| unreachable(e.to_string()))?;
        socket.connect(self.server).await.map_err(|e| unreachable(e.to_string()))?;
        let mut buffer = vec![0u8; 4096];
        // Two tries: UDP may lose the first datagram.
        for _ in 0..2 {
            socket.send(&query).await.map_err(|e| unreachable(e.to_string()))?;
            match tokio::time::timeout(self.timeout, socket.recv(&mut buffer)).await {
                Ok(Ok(n)) => return parse_answers(&buffer[..n], id, qtype),
                Ok(Err(error)) => return Err(unreachable(error.to_string())),
                Err(_) => continue,
            }
        }
        Err(unreachable(format!("no answer within {:?}", self.timeout * 2)))
    }
}

impl DnsLookup for UdpDns {
    fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>> {
        Box::pin(async move { Ok(self.ask(name, TYPE_TXT).await?.iter().map(|rdata| txt_text(rdata)).collect()) })
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<Ipv4Addr>> {
        Box::pin(async move {
            Ok(self
                .ask(name, TYPE_A)
                .await?
                .iter()
                .filter_map(|rdata| <[u8; 4]>::try_from(rdata.as_slice()).ok().map(Ipv4Addr::from))
                .collect())
        })
    }
}

/// The first `nameserver` line of a `resolv.conf` text.
pub fn nameserver_from_resolv_conf(text: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| line.trim().strip_prefix("nameserver")?.split_whitespace().next()?.parse().ok())
}

/// A recursive query for `name` (class IN).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let bad = || DnsError::BadName(name.to_owned());
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut message = Vec::with_capacity(18 + name.len());
    message.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired; one question.
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad());
        }
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.push(0);
    message.extend_from_slice(&qtype.to_be_bytes());
    message.extend_from_slice(&1u16.to_be_bytes());
    Ok(message)
}

/// The rdata of every answer of type `qtype` in a response to query `id`. NXDOMAIN is an empty
/// list (the name has no records), not an error.
pub fn parse_answers(message: &[u8], id: u16, qtype: u16) -> Result<Vec<Vec<u8>>, DnsError> {
    if message.len() < 12 {
        return Err(DnsError::Malformed("shorter than a header"));
    }
    let u16_at = |at: usize| -> Result<u16, DnsError> {
        message.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(DnsError::Malformed("truncated"))
    };
    if u16_at(0)? != id {
        return Err(DnsError::Malformed("answer to another query"));
    }
    let (flags_high, flags_low) = (message[2], message[3]);
    if flags_high & 0x80 == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    if flags_high & 0x02 != 0 {
        return Err(DnsError::Malformed("truncated answer (TCP is not supported)"));
    }
    match flags_low & 0x0f {
        0 => {}
        3 => return Ok(Vec::new()),
        code => return Err(DnsError::ServerError(code)),
    }
    let n_questions = u16_at(4)?;
    let n_answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..n_questions {
        at = skip_name(message, at)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..n_answers {
        at = skip_name(message, at)?;
        let rtype = u16_at(at)?;
        let length = usize::from(u16_at(at + 8)?);
        let start = at + 10;
        let rdata = message.get(start..start + length).ok_or(DnsError::Malformed("truncated record"))?;
        if rtype == qtype {
            found.push(rdata.to_vec());
        }
        at = start + length;
    }
    Ok(found)
}

/// The offset just after the (possibly compressed) name at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Result<usize, DnsError> {
    loop {
        let length = *message.get(at).ok_or(DnsError::Malformed("truncated name"))?;
        match length {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return Err(DnsError::Malformed("unknown label type")),
        }
    }
}

/// A TXT record's character-strings joined (a long value is split into 255-byte pieces).
fn txt_text(rdata: &[u8]) -> String {
    let mut text = Vec::with_capacity(rdata.len());
    let mut at = 0;
    while let Some(&length) = rdata.get(at) {
        let end = (at + 1 + usize::from(length)).min(rdata.len());
        text.extend_from_slice(&rdata[at + 1..end]);
        at = end;
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with `answers` as (type, rdata), names compressed to the question.
    fn response(query: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut message = query.to_vec();
        message[2] = 0x81;
        message[3] = 0x80 | rcode;
        message[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (rtype, rdata) in answers {
            message.extend_from_slice(&[0xc0, 12]);
            message.extend_from_slice(&rtype.to_be_bytes());
            message.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            message.extend_from_slice(rdata);
        }
        message
    }

    #[test]
    fn queries_are_encoded_as_rfc_1035_says() {
        let query = encode_query(0xabcd, "_slipway-challenge.shop.example.org.", TYPE_TXT).expect("valid");
        assert_eq!(&query[..12], &[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&query[12..31], b"\x12_slipway-challenge");
        assert_eq!(&query[query.len() - 5..], &[0, 0, 16, 0, 1]);
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, "", TYPE_A).is_err());
    }

    #[test]
    fn answers_of_the_asked_type_are_read_and_others_skipped() {
        let query = encode_query(7, "shop.example.org", TYPE_TXT).expect("valid");
        let cname = (5u16, b"\x03www\xc0\x0c".to_vec());
        let split = (TYPE_TXT, [b"\x05token".as_slice(), b"\x03abc"].concat());
        let message = response(&query, 0, &[cname, split, (TYPE_TXT, b"\x05other".to_vec())]);
        let found = parse_answers(&message, 7, TYPE_TXT).expect("parses");
        let texts: Vec<String> = found.iter().map(|r| txt_text(r)).collect();
        assert_eq!(texts, ["tokenabc", "other"]);
    }

    #[test]
    fn nxdomain_is_no_records_and_other_failures_are_errors() {
        let query = encode_query(7, "missing.example.org", TYPE_A).expect("valid");
        assert_eq!(parse_answers(&response(&query, 3, &[]), 7, TYPE_A), Ok(Vec::new()));
        assert_eq!(parse_answers(&response(&query, 2, &[]), 7, TYPE_A), Err(DnsError::ServerError(2)));
        assert_eq!(parse_answers(&response(&query, 0, &[]), 8, TYPE_A), Err(DnsError::Malformed("answer to another query")));
        let mut truncated = response(&query, 0, &[(TYPE_A, vec![127, 0, 0, 1])]);
        truncated.truncate(truncated.len() - 2);
        assert!(parse_answers(&truncated, 7, TYPE_A).is_err());
        assert!(parse_answers(&query, 7, TYPE_A).is_err(), "a query is not a response");
    }

    #[test]
    fn the_first_nameserver_is_used() {
        let text = "# generated\nsearch example.org\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n";
        assert_eq!(nameserver_from_resolv_conf(text), Some(IpAddr::from([10, 0, 0, 53])));
        assert_eq!(nameserver_from_resolv_conf("search x\n"), None);
    }
}
