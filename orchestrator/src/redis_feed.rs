//! The one loop step behind every Redis feed the orchestrator reads: the access records
//! (`gateway::access::feed`), the scaling policies (`autoscaler::feed`) and the custom domains
//! (`gateway::domains::feed`). The portal publishes each as a collection plus a version counter it
//! increments after every change; a `VersionedFeed` reads the counter and reloads the collection
//! only when it moved (or every `FULL_RELOAD`, in case an increment was lost).
//!
//! Connection handling is here once: a dead or slow Redis (2 s per step) drops the connection and
//! answers `Poll::Failed`, so the caller keeps what it has and the next step reconnects. What to
//! load and what to do with it stays with each feed; this module knows none of their keys.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Reload at least this often even when the version did not move.
pub const FULL_RELOAD: Duration = Duration::from_secs(30);
/// How long one connect, or one version read plus reload, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// What one step found.
#[derive(Debug)]
pub enum Poll<T> {
    /// The version is the one last loaded: what the caller has is current.
    Unchanged,
    /// The collection was read again.
    Reloaded(T),
    /// Redis could not be reached or read: keep the previous state.
    Failed,
}

/// One feed's connection and the version it last loaded.
pub struct VersionedFeed {
    /// Names the feed in log lines (`access`, `policy`, `domains`).
    name: &'static str,
    client: redis::Client,
    version_key: String,
    conn: Option<MultiplexedConnection>,
    last_version: Option<i64>,
    last_full: Instant,
}

impl VersionedFeed {
    pub fn new(name: &'static str, client: redis::Client, version_key: String) -> Self {
        Self { name, client, version_key, conn: None, last_version: None, last_full: Instant::now() }
    }

    /// Reads the version and, when it moved (or `FULL_RELOAD` passed), calls `load`.
    pub async fn poll<T>(&mut self, load: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>) -> Poll<T> {
        let name = self.name;
        if self.conn.is_none() {
            match tokio::time::timeout(STEP_TIMEOUT, self.client.get_multiplexed_async_connection()).await {
                Ok(Ok(fresh)) => self.conn = Some(fresh),
                Ok(Err(error)) => {
                    debug!(feed = name, %error, "cannot reach Redis");
                    return Poll::Failed;
                }
                Err(_) => return Poll::Failed,
            }
        }
        let connection = self.conn.as_mut().expect("connected above");
        let (version_key, last_version, last_full) = (&self.version_key, self.last_version, self.last_full);
        let step = tokio::time::timeout(STEP_TIMEOUT, async {
            let version: Option<i64> = connection.get(version_key).await?;
            if version.is_some() && version == last_version && last_full.elapsed() < FULL_RELOAD {
                return Ok::<_, redis::RedisError>((version, None));
            }
            Ok((version, Some(load(connection).await?)))
        })
        .await;
        match step {
            Ok(Ok((_, None))) => Poll::Unchanged,
            Ok(Ok((version, Some(loaded)))) => {
                debug!(feed = name, ?version, "reloaded");
                self.last_version = version;
                self.last_full = Instant::now();
                Poll::Reloaded(loaded)
            }
            Ok(Err(error)) => {
                warn!(feed = name, %error, "reading Redis failed; keeping the previous state");
                self.conn = None;
                Poll::Failed
            }
            Err(_) => {
                warn!(feed = name, "Redis did not answer within 2 s; keeping the previous state");
                self.conn = None;
                Poll::Failed
            }
        }
    }
}
