//! Redis: login sessions and rate-limit counters. Every key starts with the configured prefix,
//! so tests (and several installations) can share one Redis.
//!
//! Session tokens are stored only as SHA-256 hashes: `PREFIX session:HASH` holds the record and
//! `PREFIX user_sessions:ID` the set of a user's session hashes, for "log out everywhere".
//! It also carries the access records the gateways read (`publish_access`) and the revocation of
//! app cookies when sessions end (`orchestrator::gateway::access::feed` names the keys).
//! When Redis is unreachable every call fails fast with `CacheError::Unavailable` (the
//! connection manager reconnects in the background); nothing here blocks a request for long.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::crypto;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the session store (Redis) is unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for CacheError {
    fn from(error: redis::RedisError) -> Self {
        CacheError::Unavailable(error.to_string())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: i64,
    pub created_at: i64,
}

#[derive(Clone)]
pub struct Cache {
    conn: ConnectionManager,
    prefix: String,
}

impl Cache {
    /// Connects, retrying for up to `wait` so a Redis that is still starting is not an error.
    pub async fn connect(url: &str, prefix: &str, wait: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis_url is not a Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(conn) => return Ok(Self { conn, prefix: prefix.to_owned() }),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("redis not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => anyhow::bail!("cannot reach Redis: {e}"),
            }
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
    }

    /// Starts a session and returns the token for the cookie.
    pub async fn create_session(&self, user_id: i64, ttl: Duration, now_unix: i64) -> Result<String, CacheError> {
        let token = crypto::new_token();
        let hash = crypto::token_hash(&token);
        let record = serde_json::to_string(&SessionRecord { user_id, created_at: now_unix }).expect("a session record always serialises");
        let user_key = self.key("user_sessions", &user_id.to_string());
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .set_ex(self.key("session", &hash), record, ttl.as_secs())
            .sadd(&user_key, &hash)
            .expire(&user_key, ttl.as_secs() as i64)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(token)
    }

    pub async fn session(&self, token: &str) -> Result<Option<SessionRecord>, CacheError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.key("session", &crypto::token_hash(token))).await?;
        Ok(raw.and_then(|text| serde_json::from_str(&text).ok()))
    }

    pub async fn destroy_session(&self, token: &str) -> Result<(), CacheError> {
        let hash = crypto::token_hash(token);
        let mut conn = self.conn.clone();
        if let Some(record) = self.session(token).await? {
            let _: () = conn.srem(self.key("user_sessions", &record.user_id.to_string()), &hash).await?;
        }
        let _: () = conn.del(self.key("session", &hash)).await?;
        self.revoke_app_access(&[hash]).await
    }

    /// Tells the gateways that app cookies minted from these sessions (by session hash) are void.
    /// Entries are kept as long as such a cookie could live, then pruned.
    async fn revoke_app_access(&self, session_hashes: &[String]) -> Result<(), CacheError> {
        use orchestrator::gateway::access::{feed, token};
        let now = chrono::Utc::now().timestamp();
        let until = now + crate::access::COOKIE_TTL_SECS as i64;
        let revoked = feed::revoked_key(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for hash in session_hashes {
            pipe.zadd(&revoked, token::session_id(hash), until).ignore();
        }
        pipe.cmd("ZREMRANGEBYSCORE").arg(&revoked).arg("-inf").arg(now).ignore();
        pipe.incr(feed::version_key(&self.prefix), 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Publishes access records: `Some(json)` sets an app's record, `None` removes it. With
    /// `replace_all`, every other record is dropped first (a full publish at start).
    pub async fn publish_access(&self, records: &[(String, Option<String>)], replace_all: bool) -> Result<(), CacheError> {
        use orchestrator::gateway::access::feed;
        let apps = feed::apps_key(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if replace_all {
            pipe.del(&apps).ignore();
        }
        for (app, record) in records {
            match record {
                Some(json) => pipe.hset(&apps, app, json).ignore(),
                None => pipe.hdel(&apps, app).ignore(),
            };
        }
        pipe.incr(feed::version_key(&self.prefix), 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Publishes scaling policies for the cluster's autoscaler (`orchestrator::autoscaler::feed`
    /// names the keys): `Some(json)` sets an app's `Policy`, `None` removes it; with
    /// `replace_all`, every other policy is dropped first (a full publish at start).
    pub async fn publish_policies(&self, records: &[(String, Option<String>)], replace_all: bool) -> Result<(), CacheError> {
        use orchestrator::autoscaler::feed;
        let policies = feed::policies_key(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if replace_all {
            pipe.del(&policies).ignore();
        }
        for (app, record) in records {
            match record {
                Some(json) => pipe.hset(&policies, app, json).ignore(),
                None => pipe.hdel(&policies, app).ignore(),
            };
        }
        pipe.incr(feed::version_key(&self.prefix), 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Writes custom domain records (`None` removes the domain) for the gateway's domains feed and
    /// bumps its version; `replace_all` first drops every record (the full republish at start).
    pub async fn publish_domains(&self, records: &[(String, Option<String>)], replace_all: bool) -> Result<(), CacheError> {
        use orchestrator::gateway::domains::feed;
        let key = feed::records_key(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if replace_all {
            pipe.del(&key).ignore();
        }
        for (domain, record) in records {
            match record {
                Some(json) => pipe.hset(&key, domain, json).ignore(),
                None => pipe.hdel(&key, domain).ignore(),
            };
        }
        pipe.incr(feed::version_key(&self.prefix), 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Adds (`Some(key authorization)`) or removes an ACME HTTP-01 answer the gateway serves.
    pub async fn publish_acme_challenge(&self, token: &str, key_authorization: Option<&str>) -> Result<(), CacheError> {
        use orchestrator::gateway::domains::feed;
        let key = feed::acme_key(&self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match key_authorization {
            Some(value) => pipe.hset(&key, token, value).ignore(),
            None => pipe.hdel(&key, token).ignore(),
        };
        pipe.incr(feed::version_key(&self.prefix), 1).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Ends every session of a user ("log out everywhere", password change, password reset).
    pub async fn destroy_all_sessions(&self, user_id: i64) -> Result<usize, CacheError> {
        let user_key = self.key("user_sessions", &user_id.to_string());
        let mut conn = self.conn.clone();
        let hashes: Vec<String> = conn.smembers(&user_key).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for hash in &hashes {
            pipe.del(self.key("session", hash));
        }
        pipe.del(&user_key);
        pipe.query_async::<()>(&mut conn).await?;
        self.revoke_app_access(&hashes).await?;
        Ok(hashes.len())
    }

    /// Counts one event in a fixed window and returns the count so far in that window.
    pub async fn hit(&self, bucket: &str, window: Duration) -> Result<u64, CacheError> {
        let key = self.key("rate", bucket);
        let mut conn = self.conn.clone();
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window.as_secs().max(1))
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    /// The count of a window so far, and how long until it resets.
    pub async fn peek(&self, bucket: &str) -> Result<(u64, Duration), CacheError> {
        let key = self.key("rate", bucket);
        let mut conn = self.conn.clone();
        let (count, ttl): (Option<u64>, i64) = redis::pipe().get(&key).ttl(&key).query_async(&mut conn).await?;
        Ok((count.unwrap_or(0), Duration::from_secs(ttl.max(0) as u64)))
    }

    pub async fn clear(&self, bucket: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key("rate", bucket)).await?;
        Ok(())
    }
}
