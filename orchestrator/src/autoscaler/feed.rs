//! The Redis adapter for scaling policies: in a cluster the portal publishes each app's `Policy`
//! and the autoscaler's runtime (`NomadRuntime`) reads them, because the orchestrator never opens
//! the portal's database. The same arrangement as the access records (`gateway::access::feed`).
//!
//! Keys (all under the installation's prefix), **Boundary** with the portal's `Cache::publish_policies`:
//! - `PREFIX scaling:policies`: hash, field = app name, value = `Policy` JSON
//!   (`testdata/policy-record.json` is the recorded example both sides test against);
//! - `PREFIX scaling:version`: a counter the portal increments after every change.
//!
//! Every `interval` the loop reads the version; when it changed (or `full_reload` passed) it reads
//! the hash and hands the whole set to the `PolicySink`. A record that does not parse is skipped
//! with a warning, never guessed. A failed read keeps the previous set: policies change rarely,
//! and an app the sink still knows keeps scaling as it did.
//!
//! Deliberately absent: no decision about scaling (that is `decide`), no knowledge of the portal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::Policy;
use crate::redis_feed::Poll;

pub fn policies_key(prefix: &str) -> String {
    format!("{prefix}scaling:policies")
}

pub fn version_key(prefix: &str) -> String {
    format!("{prefix}scaling:version")
}

/// Whoever scales apps by the published policies: it gets the whole set each time it changes.
pub trait PolicySink: Send + Sync + 'static {
    fn replace_policies(&self, policies: HashMap<String, Policy>);
}

/// PURE: the hash's fields → policies, skipping (and naming) the ones that do not parse.
pub fn parse_records(raw: Vec<(String, String)>) -> (HashMap<String, Policy>, Vec<String>) {
    let mut policies = HashMap::new();
    let mut refused = Vec::new();
    for (app, json) in raw {
        match serde_json::from_str::<Policy>(&json) {
            Ok(policy) => {
                policies.insert(app, policy);
            }
            Err(error) => {
                warn!(%app, %error, "skipping a scaling policy that does not parse");
                refused.push(app);
            }
        }
    }
    (policies, refused)
}

/// Reads every published policy.
pub async fn load(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> redis::RedisResult<HashMap<String, Policy>> {
    let raw: Vec<(String, String)> = conn.hgetall(policies_key(prefix)).await?;
    Ok(parse_records(raw).0)
}

/// Keeps `sink` current until `shutdown` turns true.
pub async fn run<S: PolicySink>(
    sink: Arc<S>,
    client: redis::Client,
    prefix: String,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut feed = crate::redis_feed::VersionedFeed::new("policy", client, version_key(&prefix));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Poll::Reloaded(policies) = feed.poll(async |conn| load(conn, &prefix).await).await {
            debug!(n_apps = policies.len(), "scaling policies reloaded");
            sink.replace_policies(policies);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_policy_record_parses_and_a_bad_one_is_skipped() {
        let recorded = include_str!("testdata/policy-record.json").to_owned();
        let (policies, refused) =
            parse_records(vec![("quiz".to_owned(), recorded), ("broken".to_owned(), r#"{"target_concurrency": "ten"}"#.to_owned())]);
        assert_eq!(refused, vec!["broken".to_owned()]);
        let quiz = &policies["quiz"];
        assert_eq!((quiz.min_instances, quiz.max_instances), (0, 3));
        assert_eq!(quiz.idle_to_zero_s, Some(300.0));
    }

    #[test]
    fn keys_carry_the_installation_prefix() {
        assert_eq!(policies_key("t1:"), "t1:scaling:policies");
        assert_eq!(version_key("t1:"), "t1:scaling:version");
    }
}
