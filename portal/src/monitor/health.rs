//! Health of the platform's components: PostgreSQL and Redis (a round trip each), the SMTP
//! server when one is configured (its `220` greeting), and in the cluster shape Nomad, Consul,
//! Vault and Traefik, each only when its URL is configured (`monitor.*_url`). The verdict on an
//! HTTP answer is pure (`http_verdict`); the rest is the thin adapter that asks.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::config::{MonitorConfig, SmtpConfig, SmtpSecurity};
use crate::state::AppState;

/// One component as the dashboard shows it and the alerts see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentStatus {
    pub name: &'static str,
    pub up: bool,
    /// Why it is down (or what was checked when up).
    pub detail: String,
}

/// The cluster components with an HTTP health endpoint: name, the configured base URL, the path.
pub fn http_checks(config: &MonitorConfig) -> Vec<(&'static str, url::Url)> {
    let mut checks = Vec::new();
    for (name, base, path) in [
        ("nomad", &config.nomad_url, "v1/status/leader"),
        ("consul", &config.consul_url, "v1/status/leader"),
        ("vault", &config.vault_url, "v1/sys/health"),
        ("traefik", &config.traefik_url, "ping"),
    ] {
        if let Some(base) = base {
            let mut base = base.clone();
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            checks.push((name, base.join(path).expect("a relative path joins onto an http URL")));
        }
    }
    checks
}

/// Whether an HTTP answer means the component is up. Nomad and Consul answer their leader's
/// address (`""` when there is no leader); Vault answers 200 when active, 429 when a standby,
/// 472/473 for performance and DR secondaries, 501 when not initialised and 503 when sealed;
/// Traefik answers 200 `OK`.
pub fn http_verdict(component: &str, status: u16, body: &str) -> Result<(), String> {
    match (component, status) {
        ("nomad" | "consul", 200) if body.trim().trim_matches('"').is_empty() => Err("no leader elected".to_owned()),
        ("nomad" | "consul" | "traefik", 200) => Ok(()),
        ("vault", 200 | 429 | 472 | 473) => Ok(()),
        ("vault", 501) => Err("not initialised".to_owned()),
        ("vault", 503) => Err("sealed".to_owned()),
        (_, status) => Err(format!("answered HTTP {status}")),
    }
}

/// Checks every configured component, all at once, each within `monitor.check_timeout`.
pub async fn check_all(state: &AppState, client: &reqwest::Client) -> Vec<ComponentStatus> {
    let timeout = state.config.monitor.check_timeout;
    let (database, redis) =
        tokio::join!(tokio::time::timeout(timeout, state.db.ping()), tokio::time::timeout(timeout, state.cache.ping()),);
    let mut statuses = vec![
        status("postgresql", if database.unwrap_or(false) { Ok(()) } else { Err("no answer to SELECT 1".to_owned()) }),
        status("redis", if redis.unwrap_or(false) { Ok(()) } else { Err("no answer to PING".to_owned()) }),
    ];
    if let Some(smtp) = &state.config.smtp {
        statuses.push(status("smtp", check_smtp(smtp, timeout).await));
    }
    let http = http_checks(&state.config.monitor);
    let answers = futures_util::future::join_all(http.iter().map(|(name, url)| async move {
        let outcome = match client.get(url.clone()).timeout(timeout).send().await {
            Ok(response) => {
                let code = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                http_verdict(name, code, &body)
            }
            Err(error) => Err(if error.is_timeout() { "no answer in time".to_owned() } else { "cannot connect".to_owned() }),
        };
        status(name, outcome)
    }))
    .await;
    statuses.extend(answers);
    statuses
}

fn status(name: &'static str, outcome: Result<(), String>) -> ComponentStatus {
    match outcome {
        Ok(()) => ComponentStatus { name, up: true, detail: String::new() },
        Err(detail) => ComponentStatus { name, up: false, detail },
    }
}

/// The SMTP server accepts a connection and (unless it speaks TLS from the first byte) greets
/// with 220. Nothing is sent: the check leaves no trace in the server's log but a connection.
async fn check_smtp(smtp: &SmtpConfig, timeout: Duration) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect((smtp.host.as_str(), smtp.port));
    let mut stream = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("cannot connect to {}:{}: {error}", smtp.host, smtp.port)),
        Err(_) => return Err(format!("no connection to {}:{} in time", smtp.host, smtp.port)),
    };
    if smtp.security == SmtpSecurity::Tls {
        return Ok(());
    }
    let mut greeting = [0u8; 64];
    match tokio::time::timeout(timeout, stream.read(&mut greeting)).await {
        Ok(Ok(n)) if greeting[..n].starts_with(b"220") => Ok(()),
        Ok(Ok(_)) => Err("the server did not greet with 220".to_owned()),
        Ok(Err(error)) => Err(format!("reading the greeting: {error}")),
        Err(_) => Err("no greeting in time".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_judged_per_component() {
        for (component, status, body, up) in [
            ("nomad", 200, "\"10.0.0.1:4647\"", true),
            ("nomad", 200, "\"\"", false),
            ("consul", 200, "\"10.0.0.1:8300\"", true),
            ("consul", 500, "", false),
            ("vault", 200, "{}", true),
            ("vault", 429, "{}", true),
            ("vault", 503, "{}", false),
            ("vault", 501, "{}", false),
            ("traefik", 200, "OK", true),
            ("traefik", 404, "", false),
        ] {
            assert_eq!(http_verdict(component, status, body).is_ok(), up, "{component} {status} {body}");
        }
        assert_eq!(http_verdict("vault", 503, ""), Err("sealed".to_owned()));
    }

    #[test]
    fn only_configured_cluster_components_are_checked() {
        let text = "allowed_email_domains = [\"x.kr\"]\n[monitor]\nnomad_url = \"http://127.0.0.1:4646\"\nvault_url = \"https://vault.internal:8200/base\"\n";
        let config = crate::config::Config::from_toml_str(text, "test").expect("valid");
        let checks: Vec<(&str, String)> = http_checks(&config.monitor).into_iter().map(|(n, u)| (n, u.to_string())).collect();
        assert_eq!(
            checks,
            vec![
                ("nomad", "http://127.0.0.1:4646/v1/status/leader".to_owned()),
                ("vault", "https://vault.internal:8200/base/v1/sys/health".to_owned())
            ]
        );
        let embedded = crate::config::Config::from_toml_str("allowed_email_domains = [\"x.kr\"]\n", "test").expect("valid");
        assert!(http_checks(&embedded.monitor).is_empty());
    }
}
