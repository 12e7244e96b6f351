//! The Redis adapter behind `Domains`: reads what the portal publishes about custom domains and
//! keeps the gateway's table and certificates current, and reloads the apps domain's wildcard
//! certificate when its files change. No request waits on Redis.
//!
//! Keys (all under the installation's prefix), **Boundary** with the portal's `custom_domains`:
//! - `PREFIX domains:records`: hash, field = lowercase domain, value = `DomainRecord` JSON;
//! - `PREFIX domains:acme`: hash, field = ACME HTTP-01 token, value = its key authorization;
//! - `PREFIX domains:version`: a counter the portal increments after every change.
//!
//! Every `interval` the loop reads the version and reloads both hashes when it changed (or every
//! 30 s regardless); a failed read keeps the previous table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{DomainRecord, DomainTable, Domains};
use crate::redis_feed::Poll;

pub fn records_key(prefix: &str) -> String {
    format!("{prefix}domains:records")
}

pub fn acme_key(prefix: &str) -> String {
    format!("{prefix}domains:acme")
}

pub fn version_key(prefix: &str) -> String {
    format!("{prefix}domains:version")
}

/// The apps domain's certificate and key files, reloaded when either file's mtime changes.
#[derive(Debug, Clone)]
pub struct WildcardFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// Reads both hashes into a table; a record that does not parse is skipped with a warning.
pub async fn load(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> redis::RedisResult<DomainTable> {
    let raw: Vec<(String, String)> = conn.hgetall(records_key(prefix)).await?;
    let acme: Vec<(String, String)> = conn.hgetall(acme_key(prefix)).await?;
    let records = raw.into_iter().filter_map(|(domain, json)| match serde_json::from_str::<DomainRecord>(&json) {
        Ok(record) => Some((domain, record)),
        Err(error) => {
            warn!(%domain, %error, "skipping a custom domain record that does not parse");
            None
        }
    });
    Ok(DomainTable::new(records.collect::<Vec<_>>(), acme))
}

/// Keeps `domains` (and the wildcard certificate in its store) current until `shutdown`.
pub async fn run(
    domains: Arc<Domains>,
    client: redis::Client,
    prefix: String,
    wildcard: Option<WildcardFiles>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut feed = crate::redis_feed::VersionedFeed::new("domains", client, version_key(&prefix));
    let mut wildcard_stamp = wildcard.as_ref().and_then(stamp);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = domains.poked() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Some(files) = &wildcard {
            let now_stamp = stamp(files);
            if now_stamp.is_some() && now_stamp != wildcard_stamp {
                match super::super::tls::load_pem_files(&files.chain, &files.key) {
                    Ok(certified) => {
                        domains.certs().set_wildcard(certified);
                        info!(path = %files.chain.display(), "apps domain certificate reloaded");
                        wildcard_stamp = now_stamp;
                    }
                    // Half-written files are common during a renewal; try again next tick.
                    Err(error) => warn!(%error, "apps domain certificate changed but cannot be loaded yet; keeping the old one"),
                }
            }
        }
        if let Poll::Reloaded(table) = feed.poll(async |conn| load(conn, &prefix).await).await {
            debug!(n_domains = table.n_domains(), "custom domains reloaded");
            domains.replace(table);
        }
    }
}

/// Both files' modification times; `None` when either cannot be read.
fn stamp(files: &WildcardFiles) -> Option<(SystemTime, SystemTime)> {
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((modified(&files.chain)?, modified(&files.key)?))
}
