//! Certificates through ACME (RFC 8555) with instant-acme, HTTP-01 answered by the gateway.
//!
//! instant-acme is used without its own HTTP client (`hyper-rustls` would bring HTTP/2 and the
//! platform verifier): `ReqwestHttp` carries its requests over the workspace's one HTTP stack,
//! reqwest with rustls and ring, which also lets an operator trust an extra CA for the directory
//! (pebble's, in tests). The ACME account's credentials are kept sealed in `acme_accounts`, one
//! account per directory URL.
//!
//! `issue` orders a certificate for one domain: for each pending authorization it publishes the
//! HTTP-01 key authorization to Redis (the gateway answers `/.well-known/acme-challenge/TOKEN`),
//! waits until this process's gateway has it, tells the CA to validate, and removes it when done.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use crate::db;
use crate::state::AppState;

/// instant-acme's requests over reqwest.
struct ReqwestHttp(reqwest::Client);

impl HttpClient for ReqwestHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(Box::new(e)))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| other(Box::new(e)))?;
            let response = builder.body(http_body_util::Full::new(bytes)).map_err(|e| other(Box::new(e)))?;
            Ok(BytesResponse::from(response))
        })
    }
}

/// The HTTP client for the ACME directory: the public roots plus the configured `acme.ca_file`.
fn http_client(state: &AppState) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &state.config.acme.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read acme.ca_file {}", path.display()))?;
        for certificate in
            reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("acme.ca_file {} is not PEM", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("cannot build the ACME HTTP client")
}

/// The installation's account at the configured directory, created (and stored sealed) on first use.
pub async fn account(state: &AppState, directory_url: &str) -> anyhow::Result<Account> {
    let http = http_client(state)?;
    let builder = || Account::builder_with_http(Box::new(ReqwestHttp(http.clone())));
    let url = directory_url.to_owned();
    if let Some(sealed) = state.db.run(move |conn| db::custom_domains::acme_account(conn, &url)).await? {
        let json = state.secrets.open(&sealed).context("the stored ACME account does not open with this installation key")?;
        let credentials: AccountCredentials = serde_json::from_slice(&json).context("the stored ACME account does not parse")?;
        return builder().from_credentials(credentials).await.context("restoring the ACME account");
    }
    let contact = state.config.acme.contact_email.as_ref().map(|email| format!("mailto:{email}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new_account = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) =
        builder().create(&new_account, directory_url.to_owned(), None).await.context("creating an ACME account")?;
    let sealed = state.secrets.seal(&serde_json::to_vec(&credentials).context("serialising ACME credentials")?);
    let url = directory_url.to_owned();
    state.db.run(move |conn| db::custom_domains::save_acme_account(conn, &url, &sealed)).await?;
    tracing::info!(directory = directory_url, "ACME account created");
    Ok(account)
}

/// A certificate chain (PEM, leaf first) and its private key (PEM, PKCS#8).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Orders a certificate for `domain`, answering HTTP-01 through the gateway.
pub async fn issue(state: &AppState, account: &Account, domain: &str) -> anyhow::Result<Issued> {
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("creating the ACME order")?;
    let mut published: Vec<String> = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("reading an ACME authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => anyhow::bail!("the ACME authorization for {domain} is {status:?}"),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .with_context(|| format!("the CA offers no HTTP-01 challenge for {domain}"))?;
            let token = challenge.token.clone();
            let key_authorization = challenge.key_authorization().as_str().to_owned();
            state.cache.publish_acme_challenge(&token, Some(&key_authorization)).await.context("publishing the ACME challenge")?;
            published.push(token.clone());
            wait_until_served(state, &token).await;
            challenge.set_ready().await.context("telling the CA the challenge is ready")?;
        }
        let status = order.poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(90))).await.context("waiting for validation")?;
        if status != OrderStatus::Ready {
            let problem = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_default();
            anyhow::bail!("the CA did not validate {domain}: order is {status:?} {problem}");
        }
        let key_pem = order.finalize().await.context("finalising the ACME order")?;
        let chain_pem =
            order.poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(90))).await.context("downloading the certificate")?;
        Ok(Issued { chain_pem, key_pem })
    }
    .await;
    for token in published {
        if let Err(error) = state.cache.publish_acme_challenge(&token, None).await {
            tracing::warn!(%error, "could not remove a finished ACME challenge; it stays harmless until replaced");
        }
    }
    result
}

/// Waits (up to 5 s) until this process's gateway serves `token`, so the CA's first validation
/// attempt finds it. A gateway elsewhere reads the same Redis within its feed interval.
async fn wait_until_served(state: &AppState, token: &str) {
    state.custom_domains.poke();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !state.custom_domains.table().has_acme_token(token) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
