//! Custom domains: an owner attaches a domain to a project, proves control of it, and the
//! certificate worker gets (and renews) its certificate through ACME. Shared by the API, the
//! project page and the CLI (through the API).
//!
//! 1. `add` stores the domain with a fresh proof token (`pending`) and publishes it, so the
//!    gateway serves the token at `http://DOMAIN/.well-known/slipway-challenge/TOKEN`.
//! 2. `verify` looks for the token in a TXT record at `_slipway-challenge.DOMAIN`, else fetches it
//!    over HTTP from the domain (which proves the domain points at this gateway). Found: the domain
//!    is `verified`, routes to the app, and the certificate worker is woken.
//! 3. `run_certificates(now)` (the worker's pass; time passed in) issues a certificate for every
//!    proven domain without one and renews those past `renew_at`, stores chain and sealed key,
//!    and publishes them; the gateway swaps certificates without a restart.
//!
//! Every write needs `Action::ManageDomains` (owners); reading needs `Action::View`. The private
//! key is sealed in the database (`SecretBox`) and in Redis (`seal_for_gateway`), never logged or
//! shown.

pub mod acme;
pub mod dns;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator::gateway::domains::{DomainRecord, PublishedCertificate, PROOF_PATH};
use serde::Serialize;

use crate::db::models::{CustomDomain, Project, User};
use crate::db::{self};
use crate::domain::custom_domain::{certificate_action, renew_at, retry_delay, CertificateAction, CertificateState, CustomDomainName};
use crate::domain::Action;
use crate::error::AppError;
use crate::projects;
use crate::state::AppState;
use dns::{DnsLookup, UdpDns};

/// A custom domain as the API and the page show it.
#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    pub domain: String,
    /// `pending`, `verified`, `active` or `failed`.
    pub status: String,
    /// Publish this TXT record (name, value) to prove control...
    pub txt_name: String,
    pub txt_value: String,
    /// ...or make the domain point at the gateway, which then serves the token here.
    pub http_url: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub certificate_not_after: Option<DateTime<Utc>>,
    pub renews_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl DomainView {
    fn of(row: &CustomDomain) -> Self {
        Self {
            domain: row.domain.clone(),
            status: row.status.clone(),
            txt_name: format!("{}.{}", crate::domain::custom_domain::CHALLENGE_LABEL, row.domain),
            txt_value: row.proof_token.clone(),
            http_url: format!("http://{}{PROOF_PATH}{}", row.domain, row.proof_token),
            verified_at: row.verified_at,
            certificate_not_after: row.cert_not_after,
            renews_at: row.cert_not_before.zip(row.cert_not_after).map(|(from, to)| renew_at(from, to)),
            last_error: row.last_error.clone(),
        }
    }
}

pub async fn list(state: &AppState, user: &User, project_name: &str) -> Result<Vec<DomainView>, AppError> {
    let project = projects::get(state, user, project_name, Action::View).await?;
    let rows = state.db.run(move |conn| db::custom_domains::list_for_project(conn, project.id)).await?;
    Ok(rows.iter().map(DomainView::of).collect())
}

/// The domains of a project the caller may already view (the project page).
pub async fn views(state: &AppState, project: &Project) -> Result<Vec<DomainView>, AppError> {
    let project_id = project.id;
    let rows = state.db.run(move |conn| db::custom_domains::list_for_project(conn, project_id)).await?;
    Ok(rows.iter().map(DomainView::of).collect())
}

pub async fn add(state: &AppState, user: &User, project_name: &str, raw_domain: &str) -> Result<DomainView, AppError> {
    let project = projects::get(state, user, project_name, Action::ManageDomains).await?;
    let portal_host = state.config.public_url.host_str().unwrap_or_default().to_owned();
    let name = CustomDomainName::parse(raw_domain, &state.config.apps_domain, &portal_host)?;
    let max = state.config.custom_domains.max_per_project;
    let project_id = project.id;
    let existing = state.db.run(move |conn| db::custom_domains::list_for_project(conn, project_id)).await?;
    if existing.len() >= max {
        return Err(AppError::Conflict { code: "too_many_domains", message: format!("a project may have at most {max} custom domains") });
    }
    let token = crate::crypto::new_token();
    let domain = name.as_str().to_owned();
    let inserted = state.db.run(move |conn| db::custom_domains::insert(conn, project_id, &domain, &token)).await;
    let row = match inserted {
        Ok(row) => row,
        Err(error) if error.is_unique_violation() => {
            return Err(AppError::Conflict {
                code: "domain_taken",
                message: format!("the domain {} is already attached to a project", name.as_str()),
            })
        }
        Err(error) => return Err(error.into()),
    };
    publish_one(state, &row, &project.name).await?;
    tracing::info!(domain = %row.domain, project = %project.name, "custom domain added");
    Ok(DomainView::of(&row))
}

pub async fn remove(state: &AppState, user: &User, project_name: &str, raw_domain: &str) -> Result<(), AppError> {
    let project = projects::get(state, user, project_name, Action::ManageDomains).await?;
    let row = find(state, &project, raw_domain).await?;
    let id = row.id;
    state.db.run(move |conn| db::custom_domains::delete(conn, id)).await?;
    state.cache.publish_domains(&[(row.domain.clone(), None)], false).await?;
    state.custom_domains.poke();
    tracing::info!(domain = %row.domain, project = %project.name, "custom domain removed");
    Ok(())
}

/// Checks the proof of control now. Found: the domain is verified (and routes to the app).
/// Not found: `domain_not_verified`, saying what was looked for; nothing else changes.
pub async fn verify(state: &AppState, user: &User, project_name: &str, raw_domain: &str) -> Result<DomainView, AppError> {
    let project = projects::get(state, user, project_name, Action::ManageDomains).await?;
    let row = find(state, &project, raw_domain).await?;
    if row.verified_at.is_some() {
        return Ok(DomainView::of(&row));
    }
    let lookup = dns_lookup(state)?;
    let http = HttpCheck {
        port: state.config.custom_domains.http_port,
        private_addresses: state.config.custom_domains.http_check_private_addresses,
    };
    match check_ownership(lookup.as_ref(), &row.domain, &row.proof_token, http).await {
        Ok(method) => {
            let id = row.id;
            state.db.run(move |conn| db::custom_domains::mark_verified(conn, id, Utc::now())).await?;
            tracing::info!(domain = %row.domain, project = %project.name, method, "custom domain verified");
        }
        Err(reason) => {
            let (id, message) = (row.id, reason.clone());
            state.db.run(move |conn| db::custom_domains::record_check_error(conn, id, &message)).await?;
            return Err(AppError::Rejected { code: "domain_not_verified", message: reason });
        }
    }
    let id = row.id;
    let row = state.db.run(move |conn| db::custom_domains::get(conn, id)).await?.ok_or(AppError::NotFound("domain"))?;
    publish_one(state, &row, &project.name).await?;
    state.certificates.notify_one();
    Ok(DomainView::of(&row))
}

/// Where a hand-off token for a visitor on `host` goes: `https://host[:port]` when the domain has
/// a certificate and HTTPS is on, else `http://host[:gateway port]`; `None` unless `host` is a
/// verified custom domain of project `project_id`.
pub async fn handoff_base(state: &AppState, project_id: i64, host: &str) -> Result<Option<String>, AppError> {
    let Some(domain) = orchestrator::gateway::route_table::normalise_host(host) else { return Ok(None) };
    let lookup = domain.clone();
    let Some(row) = state.db.run(move |conn| db::custom_domains::find(conn, project_id, &lookup)).await? else { return Ok(None) };
    if row.verified_at.is_none() {
        return Ok(None);
    }
    let https_port = state.config.tls.public_https_port.or(state.config.tls.https_addr.map(|a| a.port()));
    Ok(Some(match (row.cert_chain_pem.is_some(), https_port) {
        (true, Some(443)) => format!("https://{domain}"),
        (true, Some(port)) => format!("https://{domain}:{port}"),
        _ => match state.config.gateway_addr.port() {
            80 => format!("http://{domain}"),
            port => format!("http://{domain}:{port}"),
        },
    }))
}

async fn find(state: &AppState, project: &Project, raw_domain: &str) -> Result<CustomDomain, AppError> {
    let (project_id, domain) = (project.id, raw_domain.trim().trim_end_matches('.').to_ascii_lowercase());
    state.db.run(move |conn| db::custom_domains::find(conn, project_id, &domain)).await?.ok_or(AppError::NotFound("domain"))
}

/// The resolver ownership checks ask: `custom_domains.dns_server`, else `/etc/resolv.conf`'s.
fn dns_lookup(state: &AppState) -> Result<Arc<dyn DnsLookup>, AppError> {
    let server = match state.config.custom_domains.dns_server {
        Some(server) => server,
        None => {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let ip = dns::nameserver_from_resolv_conf(&text)
                .ok_or_else(|| AppError::Unavailable("no DNS resolver: set custom_domains.dns_server".to_owned()))?;
            SocketAddr::new(ip, 53)
        }
    };
    Ok(Arc::new(UdpDns { server, timeout: Duration::from_secs(3) }))
}

/// Where and how the HTTP ownership check fetches the token.
#[derive(Debug, Clone, Copy)]
pub struct HttpCheck {
    pub port: u16,
    /// Fetch from non-public addresses too (`custom_domains.http_check_private_addresses`).
    pub private_addresses: bool,
}

/// Looks for `token` in the TXT records at `_slipway-challenge.DOMAIN`, then at
/// `http://DOMAIN:PORT/.well-known/slipway-challenge/TOKEN` (the domain's first A record, refused
/// when it is not public unless allowed). `Ok` names the method that succeeded; `Err` says what
/// was looked for, for the owner.
pub async fn check_ownership(lookup: &dyn DnsLookup, domain: &str, token: &str, http: HttpCheck) -> Result<&'static str, String> {
    let record = format!("{}.{domain}", crate::domain::custom_domain::CHALLENGE_LABEL);
    let txt = lookup.txt(&record).await;
    if txt.as_ref().is_ok_and(|values| values.iter().any(|value| value.trim() == token)) {
        return Ok("dns");
    }
    let txt_result = match txt {
        Ok(values) if values.is_empty() => format!("no TXT record at {record}"),
        Ok(_) => format!("the TXT record at {record} does not hold the token"),
        Err(error) => format!("the TXT lookup for {record} failed ({error})"),
    };
    let http_result = match http_token(lookup, domain, token, http).await {
        Ok(()) => return Ok("http"),
        Err(reason) => reason,
    };
    Err(format!("control of {domain} is not proven yet: {txt_result}, and {http_result}"))
}

async fn http_token(lookup: &dyn DnsLookup, domain: &str, token: &str, http: HttpCheck) -> Result<(), String> {
    let http_port = http.port;
    let addresses = lookup.ipv4(domain).await.map_err(|e| format!("looking up {domain} failed ({e})"))?;
    let Some(address) = addresses.first() else {
        return Err(format!("{domain} has no A record"));
    };
    if let Some(kind) = orchestrator::egress::rules::forbidden_kind((*address).into()).filter(|_| !http.private_addresses) {
        return Err(format!("{domain} resolves to {address}, {}; the HTTP check fetches only from public addresses", kind.describe()));
    }
    let url = format!("http://{domain}:{http_port}{PROOF_PATH}{token}");
    let client = reqwest::Client::builder()
        .resolve(domain, SocketAddr::new((*address).into(), http_port))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build an HTTP client ({e})"))?;
    let response = client.get(&url).send().await.map_err(|e| format!("fetching {url} failed ({e})"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status().as_u16()));
    }
    let body = response.text().await.map_err(|e| format!("reading {url} failed ({e})"))?;
    if body.trim() == token {
        Ok(())
    } else {
        Err(format!("{url} does not answer with the token"))
    }
}

/// The gateway's record for one domain; the key is sealed for the gateway. A stored key that does
/// not open (the installation key was replaced) leaves the domain without a certificate, with a
/// warning, rather than stopping every other domain from being published; the next renewal
/// replaces it.
fn record_for(state: &AppState, row: &CustomDomain, app: &str) -> DomainRecord {
    let verified = row.verified_at.is_some();
    let certificate = match (&row.cert_chain_pem, &row.cert_key_sealed) {
        (Some(chain_pem), Some(sealed)) if verified => match state.secrets.open(sealed) {
            Ok(key_pem) => {
                Some(PublishedCertificate { chain_pem: chain_pem.clone(), key_sealed: state.secrets.seal_for_gateway(&key_pem) })
            }
            Err(error) => {
                tracing::warn!(domain = %row.domain, %error, "the stored certificate key does not open; publishing the domain without it");
                None
            }
        },
        _ => None,
    };
    DomainRecord { app: app.to_owned(), verified, proof_token: (!verified).then(|| row.proof_token.clone()), certificate }
}

async fn publish_one(state: &AppState, row: &CustomDomain, app: &str) -> Result<(), AppError> {
    let json = serde_json::to_string(&record_for(state, row, app)).expect("a domain record serialises");
    state.cache.publish_domains(&[(row.domain.clone(), Some(json))], false).await?;
    state.custom_domains.poke();
    Ok(())
}

/// Republishes every domain from the database (at start), replacing what Redis held.
pub async fn publish_all(state: &AppState) -> Result<usize, AppError> {
    let rows = state.db.run(db::custom_domains::all_with_app).await?;
    let mut records = Vec::with_capacity(rows.len());
    for (row, app) in &rows {
        let json = serde_json::to_string(&record_for(state, row, app)).expect("a domain record serialises");
        records.push((row.domain.clone(), Some(json)));
    }
    state.cache.publish_domains(&records, true).await?;
    state.custom_domains.poke();
    Ok(records.len())
}

/// What one pass of the certificate worker did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub issued: Vec<String>,
    pub failed: Vec<String>,
    /// The earliest time something is due again.
    pub next_due: Option<DateTime<Utc>>,
}

/// One pass at time `now`: issues missing certificates and renews due ones. Without an
/// `acme.directory_url` nothing is ordered.
pub async fn run_certificates(state: &AppState, now: DateTime<Utc>) -> Result<Pass, AppError> {
    let mut pass = Pass::default();
    let Some(directory_url) = state.config.acme.directory_url.clone() else { return Ok(pass) };
    let rows = state.db.run(db::custom_domains::proven).await?;
    let mut account = None;
    for row in rows {
        let validity = row.cert_not_before.zip(row.cert_not_after);
        match certificate_action(CertificateState { validity, retry_after: row.retry_after }, now) {
            CertificateAction::WaitUntil(when) => {
                pass.next_due = Some(pass.next_due.map_or(when, |due| due.min(when)));
                continue;
            }
            CertificateAction::Issue | CertificateAction::Renew => {}
        }
        if account.is_none() {
            account = Some(acme::account(state, directory_url.as_str()).await.map_err(AppError::Internal)?);
        }
        let account = account.as_ref().expect("set above");
        match obtain(state, account, &row).await {
            Ok(()) => pass.issued.push(row.domain.clone()),
            Err(error) => {
                let message = format!("{error:#}");
                tracing::warn!(domain = %row.domain, error = %message, "certificate order failed");
                let retry = now + retry_delay(u32::try_from(row.n_failures).unwrap_or(0) + 1);
                let id = row.id;
                state.db.run(move |conn| db::custom_domains::record_failure(conn, id, &message, retry)).await?;
                pass.failed.push(row.domain.clone());
            }
        }
    }
    Ok(pass)
}

/// Orders, checks, stores and publishes one certificate.
async fn obtain(state: &AppState, account: &instant_acme::Account, row: &CustomDomain) -> anyhow::Result<()> {
    use anyhow::Context;
    let issued = acme::issue(state, account, &row.domain).await?;
    // Refuse anything the gateway could not serve before it replaces a working certificate.
    orchestrator::gateway::tls::certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
        .context("the issued certificate does not match its key")?;
    let leaf = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(issued.chain_pem.as_bytes()).context("the issued chain has no certificate")?
    };
    let validity = orchestrator::gateway::tls::validity(&leaf).context("reading the certificate's validity")?;
    let not_before = DateTime::from_timestamp(validity.not_before, 0).context("notBefore out of range")?;
    let not_after = DateTime::from_timestamp(validity.not_after, 0).context("notAfter out of range")?;
    let sealed = state.secrets.seal(issued.key_pem.as_bytes());
    let (id, chain_pem) = (row.id, issued.chain_pem.clone());
    state.db.run(move |conn| db::custom_domains::store_certificate(conn, id, &chain_pem, &sealed, not_before, not_after)).await?;
    let (id, project_id) = (row.id, row.project_id);
    let (fresh, app) = state
        .db
        .run(move |conn| {
            let fresh = db::custom_domains::get(conn, id)?;
            let app = db::projects::find_by_id(conn, project_id)?.map(|p| p.name);
            Ok::<_, db::DbError>((fresh, app))
        })
        .await?;
    if let (Some(fresh), Some(app)) = (fresh, app) {
        publish_one(state, &fresh, &app).await?;
    }
    tracing::info!(domain = %row.domain, %not_after, "certificate stored");
    Ok(())
}

/// The certificate worker: a pass every `acme.check_interval`, or when woken (a domain was
/// verified), until `shutdown`.
pub async fn certificate_worker(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = Utc::now();
        let wait = match run_certificates(&state, now).await {
            Ok(pass) => pass
                .next_due
                .and_then(|due| (due - now).to_std().ok())
                .map_or(state.config.acme.check_interval, |until| until.min(state.config.acme.check_interval)),
            Err(error) => {
                tracing::warn!(%error, "certificate pass failed");
                state.config.acme.check_interval
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_secs(1))) => {}
            () = state.certificates.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use super::dns::{DnsError, Lookup};
    use super::*;

    /// Serves fixed answers: the one system the tests may stand in for is hosted DNS.
    struct FixedDns {
        txt: HashMap<&'static str, Vec<&'static str>>,
        a: HashMap<&'static str, Vec<Ipv4Addr>>,
    }

    impl DnsLookup for FixedDns {
        fn txt<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<String>> {
            let found = self.txt.get(name).map(|values| values.iter().map(|v| v.to_string()).collect()).unwrap_or_default();
            Box::pin(async move { Ok::<_, DnsError>(found) })
        }

        fn ipv4<'a>(&'a self, name: &'a str) -> Lookup<'a, Vec<Ipv4Addr>> {
            let found = self.a.get(name).cloned().unwrap_or_default();
            Box::pin(async move { Ok::<_, DnsError>(found) })
        }
    }

    const STRICT: HttpCheck = HttpCheck { port: 80, private_addresses: false };

    #[tokio::test]
    async fn a_txt_record_with_the_token_proves_control_without_any_fetch() {
        let dns = FixedDns { txt: HashMap::from([("_slipway-challenge.shop.example.org", vec!["other", " tok "])]), a: HashMap::new() };
        assert_eq!(check_ownership(&dns, "shop.example.org", "tok", STRICT).await, Ok("dns"));
    }

    #[tokio::test]
    async fn the_http_check_never_fetches_from_internal_addresses_unless_allowed() {
        let dns = FixedDns { txt: HashMap::new(), a: HashMap::from([("shop.example.org", vec![Ipv4Addr::new(10, 1, 2, 3)])]) };
        let refused = check_ownership(&dns, "shop.example.org", "tok", STRICT).await.expect_err("not proven");
        assert!(refused.contains("no TXT record at _slipway-challenge.shop.example.org"), "{refused}");
        assert!(refused.contains("resolves to 10.1.2.3, a private address"), "{refused}");
    }

    #[tokio::test]
    async fn a_failed_check_says_what_was_found_for_each_method() {
        let dns = FixedDns { txt: HashMap::from([("_slipway-challenge.shop.example.org", vec!["stale"])]), a: HashMap::new() };
        let refused = check_ownership(&dns, "shop.example.org", "tok", STRICT).await.expect_err("not proven");
        assert!(refused.contains("the TXT record at _slipway-challenge.shop.example.org does not hold the token"), "{refused}");
        assert!(refused.contains("shop.example.org has no A record"), "{refused}");
    }
}
