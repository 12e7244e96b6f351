//! `VersionedFeed` against a real Redis: it loads on the first step, reloads only when the
//! version moves, and answers `Failed` (keeping nothing half-read) when Redis is gone.

use orchestrator::redis_feed::{Poll, VersionedFeed};
use redis::AsyncCommands;

fn client() -> redis::Client {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    redis::Client::open(url.as_str()).expect("redis url")
}

async fn step(feed: &mut VersionedFeed, key: &str) -> Poll<Option<String>> {
    feed.poll(async |conn| conn.get::<_, Option<String>>(key).await).await
}

#[tokio::test]
async fn a_feed_reloads_only_when_the_version_moves_and_fails_without_redis() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let prefix = format!("test:feed:{}:{nanos}:", std::process::id());
    let (version_key, value_key) = (format!("{prefix}version"), format!("{prefix}value"));
    let mut conn = client().get_multiplexed_async_connection().await.expect("redis");
    let _: () = conn.set(&value_key, "first").await.expect("set");
    let _: i64 = conn.incr(&version_key, 1).await.expect("incr");

    let mut feed = VersionedFeed::new("test", client(), version_key.clone());
    assert!(matches!(step(&mut feed, &value_key).await, Poll::Reloaded(Some(v)) if v == "first"));
    // The same version: nothing is read again, even though the value changed behind its back.
    let _: () = conn.set(&value_key, "second").await.expect("set");
    assert!(matches!(step(&mut feed, &value_key).await, Poll::Unchanged));
    // The publisher bumps the version: the next step reads the new value.
    let _: i64 = conn.incr(&version_key, 1).await.expect("incr");
    assert!(matches!(step(&mut feed, &value_key).await, Poll::Reloaded(Some(v)) if v == "second"));
    let _: () = conn.del(&[&version_key, &value_key]).await.expect("del");

    // Nothing listens on this port: every step fails fast and loads nothing.
    let dead = redis::Client::open("redis://127.0.0.1:1/").expect("url");
    let mut feed = VersionedFeed::new("dead", dead, version_key);
    assert!(matches!(step(&mut feed, &value_key).await, Poll::Failed));
    assert!(matches!(step(&mut feed, &value_key).await, Poll::Failed));
}
