//! The Redis adapter behind the `Gate`: reads the access records the portal publishes and keeps
//! the gateway's in-memory table current, so no request waits on Redis.
//!
//! Keys (all under the installation's prefix), **Boundary** with the portal's `access` module:
//! - `PREFIX access:apps`: hash, field = app name, value = `AccessRecord` JSON;
//! - `PREFIX access:revoked`: sorted set of revoked session ids, scored by when they may be
//!   forgotten (unix seconds: the longest a gateway cookie could still be presented);
//! - `PREFIX access:version`: a counter the portal increments after every change.
//!
//! Every `interval` the loop reads the version; when it changed (or `full_reload` has passed) it
//! reads both collections and swaps in a new table, otherwise it only marks the table fresh. A
//! failed read leaves the old table in place and un-refreshed; the `Gate` stops trusting it for
//! non-public apps after `max_staleness_secs`. With the default 2 s interval a change reaches the
//! gateway within about 2 s, well inside the 60 s promise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{AccessRecord, AccessTable, Gate};
use crate::redis_feed::Poll;

pub fn apps_key(prefix: &str) -> String {
    format!("{prefix}access:apps")
}

pub fn revoked_key(prefix: &str) -> String {
    format!("{prefix}access:revoked")
}

pub fn version_key(prefix: &str) -> String {
    format!("{prefix}access:version")
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Reads both collections into a table. A record that does not parse is skipped with a warning
/// (its app then has no record and answers 404), never guessed.
pub async fn load(conn: &mut redis::aio::MultiplexedConnection, prefix: &str, now_unix: u64) -> redis::RedisResult<AccessTable> {
    let raw: Vec<(String, String)> = conn.hgetall(apps_key(prefix)).await?;
    let revoked: Vec<String> = conn.zrangebyscore(revoked_key(prefix), now_unix as f64, "+inf").await?;
    let apps = raw.into_iter().filter_map(|(app, json)| match serde_json::from_str::<AccessRecord>(&json) {
        Ok(record) => Some((app, record)),
        Err(error) => {
            warn!(%app, %error, "skipping an access record that does not parse");
            None
        }
    });
    Ok(AccessTable::new(apps.collect::<Vec<_>>(), revoked))
}

/// Keeps `gate` current until `shutdown` turns true.
pub async fn run(
    gate: std::sync::Arc<Gate>,
    client: redis::Client,
    prefix: String,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut feed = crate::redis_feed::VersionedFeed::new("access", client, version_key(&prefix));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = gate.poked() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let now = now_unix();
        match feed.poll(async |conn| load(conn, &prefix, now).await).await {
            Poll::Unchanged => gate.touch(now),
            Poll::Reloaded(table) => {
                debug!(n_apps = table.n_apps(), "access table reloaded");
                gate.replace(table, now);
            }
            // The table stays, un-refreshed: the Gate stops trusting it after max_staleness_secs.
            Poll::Failed => {}
        }
    }
}
