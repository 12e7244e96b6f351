//! Custom domains at the gateway: which app a project's own domain (`shop.example.org`) routes to,
//! the challenge answers that prove control of it, and its certificate.
//!
//! The portal owns custom domains (database, ownership checks, ACME) and publishes one
//! `DomainRecord` per domain plus the pending ACME HTTP-01 answers to Redis; `feed` keeps the
//! gateway's `Domains` current from there, like the access table. Per request the proxy asks, in
//! this order, with no Redis round trip:
//! 1. `well_known`: `/.well-known/acme-challenge/<token>` (any host, plain HTTP: the ACME server
//!    validates there) and `/.well-known/slipway-challenge/<token>` (the host whose ownership token
//!    it is) are answered by the gateway itself, never by an app;
//! 2. `https_location`: when redirection is on, a plain-HTTP request for a host that has a
//!    certificate is sent to `https://` (308);
//! 3. `DomainTable::app_for`: a verified custom domain routes to its app; the access check then
//!    applies as on the app's own host.
//!
//! Pure except `Domains` (a lock and a `Notify`) and `feed` (the Redis adapter). It deliberately
//! does not decide who may add a domain or whether ownership is proven: the portal does.

pub mod feed;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::route_table::normalise_host;
use super::tls::{certified_key, open_sealed, CertStore};

/// Where ACME HTTP-01 challenges are fetched (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// Where a domain's HTTP ownership token is fetched.
pub const PROOF_PATH: &str = "/.well-known/slipway-challenge/";

/// One custom domain as the portal publishes it (Redis hash `PREFIX domains:records`, field = the
/// lowercase domain). **Boundary** with the portal: `testdata/domain-record.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// The app the domain belongs to.
    pub app: String,
    /// Ownership is proven: only then does the domain route to the app.
    pub verified: bool,
    /// While unverified: the token served at `PROOF_PATH<token>` on this domain.
    #[serde(default)]
    pub proof_token: Option<String>,
    /// The current certificate, once issued.
    #[serde(default)]
    pub certificate: Option<PublishedCertificate>,
}

/// A certificate chain (PEM, leaf first) and its private key, sealed (`tls::open_sealed`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedCertificate {
    pub chain_pem: String,
    pub key_sealed: String,
}

impl std::fmt::Debug for PublishedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedCertificate").field("chain_pem", &self.chain_pem.len()).field("key_sealed", &"<sealed>").finish()
    }
}

/// The gateway's view of every custom domain and pending ACME challenge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DomainTable {
    records: HashMap<String, DomainRecord>,
    /// ACME HTTP-01 token → key authorization.
    acme: HashMap<String, String>,
}

impl DomainTable {
    /// Domain names are normalised (lowercase, no trailing dot); a name that is not a host is
    /// dropped.
    pub fn new(records: impl IntoIterator<Item = (String, DomainRecord)>, acme: impl IntoIterator<Item = (String, String)>) -> Self {
        let records = records.into_iter().filter_map(|(domain, record)| Some((normalise_host(&domain)?, record))).collect();
        Self { records, acme: acme.into_iter().collect() }
    }

    /// The app a verified custom domain routes to.
    pub fn app_for(&self, host: &str) -> Option<&str> {
        let record = self.records.get(&normalise_host(host)?)?;
        record.verified.then_some(record.app.as_str())
    }

    pub fn record(&self, host: &str) -> Option<&DomainRecord> {
        self.records.get(&normalise_host(host)?)
    }

    pub fn records(&self) -> impl Iterator<Item = (&str, &DomainRecord)> {
        self.records.iter().map(|(domain, record)| (domain.as_str(), record))
    }

    pub fn has_acme_token(&self, token: &str) -> bool {
        self.acme.contains_key(token)
    }

    pub fn n_domains(&self) -> usize {
        self.records.len()
    }
}

/// What the gateway answers itself for a `/.well-known/` path: `Some(Some(body))` a 200 with that
/// body, `Some(None)` a 404 (a challenge path with an unknown token), `None` not a challenge path.
pub fn well_known<'a>(table: &'a DomainTable, host: &str, path: &str) -> Option<Option<&'a str>> {
    if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PATH) {
        return Some(table.acme.get(token).map(String::as_str));
    }
    let token = path.strip_prefix(PROOF_PATH)?;
    let expected = table.record(host).and_then(|record| record.proof_token.as_deref());
    Some(expected.filter(|expected| !token.is_empty() && *expected == token))
}

/// The `https://` URL a plain-HTTP request for `host` is redirected to: the same host (without
/// its port) and `path_and_query`, on `https_port` (left out when it is 443).
pub fn https_location(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
    let name = normalise_host(host)?;
    let path_and_query = if path_and_query.starts_with('/') { path_and_query } else { "/" };
    Some(match https_port {
        443 => format!("https://{name}{path_and_query}"),
        port => format!("https://{name}:{port}{path_and_query}"),
    })
}

/// The table the proxy reads and the certificates the HTTPS listener presents, swapped together.
pub struct Domains {
    table: RwLock<Arc<DomainTable>>,
    certs: Arc<CertStore>,
    /// Opens the sealed private keys (derived from the installation key by the portal).
    key: [u8; 32],
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains").field("n_domains", &self.table().n_domains()).finish_non_exhaustive()
    }
}

impl Domains {
    pub fn new(certs: Arc<CertStore>, key: [u8; 32]) -> Arc<Self> {
        Arc::new(Self { table: RwLock::new(Arc::new(DomainTable::default())), certs, key, changed: tokio::sync::Notify::new() })
    }

    pub fn table(&self) -> Arc<DomainTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn certs(&self) -> &Arc<CertStore> {
        &self.certs
    }

    /// Swaps in `table` and the certificates of its verified domains. A certificate that does not
    /// open or parse is left out with a warning (its domain then fails the TLS handshake and keeps
    /// answering on plain HTTP), never served half-valid.
    pub fn replace(&self, table: DomainTable) {
        let mut certificates = HashMap::new();
        for (domain, record) in table.records() {
            let Some(published) = record.certificate.as_ref().filter(|_| record.verified) else { continue };
            let loaded =
                open_sealed(&self.key, &published.key_sealed).and_then(|key_pem| certified_key(published.chain_pem.as_bytes(), &key_pem));
            match loaded {
                Ok(certified) => {
                    certificates.insert(domain.to_owned(), Arc::new(certified));
                }
                Err(error) => warn!(%domain, %error, "skipping a custom domain certificate that cannot be used"),
            }
        }
        self.certs.set_custom(certificates);
        *self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(table);
    }

    /// Asks the feed to reload now (a portal in the same process has just published a change).
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    pub(crate) async fn poked(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests;
