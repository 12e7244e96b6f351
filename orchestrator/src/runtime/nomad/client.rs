//! Nomad's HTTP API, the calls Slipway makes and nothing more: register, read, stop/purge a job;
//! scale a group and read its scale status; list allocations (blocking queries); signal an
//! allocation; read its logs. Every request carries the ACL token (`X-Nomad-Token`) and the
//! namespace; TLS uses the cluster's CA and, when given, a client certificate (Nomad's mTLS).
//!
//! Errors keep Nomad's distinctions (hashistack.md §1): a 500 from `register` is a validation
//! failure (`NomadError::Invalid`, never retried), 403 is `Denied`, 404 is `NotFound`, and the
//! scale endpoint's `job scaling blocked due to active deployment` is `ScaleBlocked`. Transport
//! failures and 5xx answers to reads are retried with exponential backoff (`retry_delay`).
//!
//! Deliberately absent: no job rendering (`render.rs`), no decision about what to run
//! (`NomadRuntime`), no WebSocket exec (`exec.rs`), no event stream.

use std::time::Duration;

use serde_json::Value;

/// How to reach a Nomad cluster.
#[derive(Clone)]
pub struct NomadConfig {
    /// `http://127.0.0.1:4646` or `https://nomad.service.consul:4646`.
    pub address: String,
    /// The ACL token's secret ID; `None` on clusters without ACLs.
    pub token: Option<String>,
    pub namespace: String,
    /// `None`: the agent's own region.
    pub region: Option<String>,
    /// PEM of the CA that signed the agents' certificates (`https` addresses).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of a client certificate and its key, for clusters with `verify_https_client`.
    pub client_identity_pem: Option<Vec<u8>>,
    /// Attempts after the first for retryable failures.
    pub retries: u32,
    /// The first retry's delay; each later one doubles, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long a blocking query may wait (`?wait=`); the HTTP timeout is set above it.
    pub blocking_wait: Duration,
    /// How long `scale` keeps retrying while a Nomad deployment blocks it.
    pub scale_blocked_timeout: Duration,
}

impl std::fmt::Debug for NomadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("namespace", &self.namespace)
            .field("region", &self.region)
            .field("tls_ca", &self.ca_pem.is_some())
            .field("client_identity", &self.client_identity_pem.is_some())
            .finish()
    }
}

impl NomadConfig {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            token: None,
            namespace: "default".to_owned(),
            region: None,
            ca_pem: None,
            client_identity_pem: None,
            retries: 5,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            blocking_wait: Duration::from_secs(60),
            scale_blocked_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NomadError {
    #[error("nomad refused the job: {0}")]
    Invalid(String),
    #[error("nomad denied the request: {0}")]
    Denied(String),
    #[error("not found in nomad: {0}")]
    NotFound(String),
    #[error("nomad refused to scale while a deployment runs (retried for {0:?})")]
    ScaleBlocked(Duration),
    #[error("nomad answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("cannot reach nomad at {address}: {message}")]
    Transport { address: String, message: String },
    #[error("nomad's answer could not be read: {0}")]
    Decode(String),
    #[error("nomad client configuration: {0}")]
    Config(String),
}

pub const SCALE_BLOCKED: &str = "job scaling blocked due to active deployment";

/// The delay before retry `attempt` (0-based): `backoff × 2^attempt`, at most `max`.
/// Worked example (`retry_delay_doubles_up_to_the_cap`): 200 ms, 400 ms, 800 ms, ... capped at 5 s.
pub fn retry_delay(attempt: u32, backoff: Duration, max: Duration) -> Duration {
    backoff.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(max)
}

/// One answer: the JSON body and the `X-Nomad-Index` header (0 when absent).
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Value,
    pub index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads and idempotent writes: retry transport failures and 5xx.
    Safe,
    /// Register: a 500 is a validation error, so only transport failures are retried.
    TransportOnly,
}

#[derive(Clone)]
pub struct NomadClient {
    http: reqwest::Client,
    /// The same TLS settings without a total timeout, for streams that last (followed logs, exec).
    streaming: reqwest::Client,
    config: NomadConfig,
}

impl NomadClient {
    pub fn new(config: NomadConfig) -> Result<Self, NomadError> {
        // One TLS stack: rustls with ring, as everywhere in Slipway.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |total_timeout: Option<Duration>| -> Result<reqwest::Client, NomadError> {
            let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
            if let Some(timeout) = total_timeout {
                builder = builder.timeout(timeout);
            }
            if let Some(pem) = &config.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| NomadError::Config(format!("tls ca: {e}")))?;
                builder = builder.tls_certs_only(certs);
            }
            if let Some(pem) = &config.client_identity_pem {
                builder = builder
                    .identity(reqwest::Identity::from_pem(pem).map_err(|e| NomadError::Config(format!("tls client identity: {e}")))?);
            }
            builder.build().map_err(|e| NomadError::Config(e.to_string()))
        };
        // A blocking query may be held for `wait` plus up to wait/16 of jitter.
        let http = build(Some(config.blocking_wait + config.blocking_wait / 8 + Duration::from_secs(10)))?;
        let streaming = build(None)?;
        Ok(Self { http, streaming, config })
    }

    pub fn config(&self) -> &NomadConfig {
        &self.config
    }

    /// `POST /v1/jobs` with a register body (`render::register_body`).
    pub async fn register(&self, body: &Value) -> Result<Answer, NomadError> {
        self.call(reqwest::Method::POST, "/v1/jobs", &[], Some(body), Retry::TransportOnly).await
    }

    /// `GET /v1/job/:id`; `None` when there is no such job.
    pub async fn job(&self, job_id: &str) -> Result<Option<Value>, NomadError> {
        match self.call(reqwest::Method::GET, &format!("/v1/job/{}", segment(job_id)), &[], None, Retry::Safe).await {
            Ok(answer) => Ok(Some(answer.body)),
            Err(NomadError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v1/job/:id[?purge=true]`. A job that is already gone is not an error.
    pub async fn stop(&self, job_id: &str, purge: bool) -> Result<(), NomadError> {
        let query: Vec<(&str, String)> = if purge { vec![("purge", "true".to_owned())] } else { Vec::new() };
        match self.call(reqwest::Method::DELETE, &format!("/v1/job/{}", segment(job_id)), &query, None, Retry::Safe).await {
            Ok(_) | Err(NomadError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/job/:id/scale`. While a deployment blocks it, retries with backoff for up to
    /// `scale_blocked_timeout`, then gives `ScaleBlocked`.
    pub async fn scale(&self, job_id: &str, body: &Value) -> Result<Answer, NomadError> {
        let path = format!("/v1/job/{}/scale", segment(job_id));
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            match self.call(reqwest::Method::POST, &path, &[], Some(body), Retry::Safe).await {
                Err(NomadError::Status { status: 400, message }) if message.trim() == SCALE_BLOCKED => {
                    if started.elapsed() >= self.config.scale_blocked_timeout {
                        return Err(NomadError::ScaleBlocked(self.config.scale_blocked_timeout));
                    }
                    tokio::time::sleep(retry_delay(attempt, self.config.backoff, self.config.max_backoff)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET /v1/job/:id/scale`.
    pub async fn scale_status(&self, job_id: &str) -> Result<Value, NomadError> {
        Ok(self.call(reqwest::Method::GET, &format!("/v1/job/{}/scale", segment(job_id)), &[], None, Retry::Safe).await?.body)
    }

    /// `GET /v1/job/:id/allocations`; with `after_index`, a blocking query that returns once the
    /// index passes it (or after `blocking_wait` with the same data).
    pub async fn allocations(&self, job_id: &str, after_index: Option<u64>) -> Result<Answer, NomadError> {
        let mut query = Vec::new();
        if let Some(index) = after_index {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", self.config.blocking_wait.as_millis())));
        }
        self.call(reqwest::Method::GET, &format!("/v1/job/{}/allocations", segment(job_id)), &query, None, Retry::Safe).await
    }

    /// `GET /v1/allocation/:id`: the full allocation, with `AllocatedResources` (host ports).
    pub async fn allocation(&self, alloc_id: &str) -> Result<Value, NomadError> {
        Ok(self.call(reqwest::Method::GET, &format!("/v1/allocation/{}", segment(alloc_id)), &[], None, Retry::Safe).await?.body)
    }

    /// `GET /v1/client/fs/cat/:alloc?path=`: a file of the allocation directory, whole.
    pub async fn fs_cat(&self, alloc_id: &str, path: &str) -> Result<Vec<u8>, NomadError> {
        let query = [("path", path.to_owned())];
        let response = self.send(reqwest::Method::GET, &format!("/v1/client/fs/cat/{}", segment(alloc_id)), &query, None).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if status != 200 {
            return Err(error_for(status, String::from_utf8_lossy(&bytes).into_owned()));
        }
        Ok(bytes.to_vec())
    }

    /// Follows a task's stdout or stderr (`follow=true`), starting `tail_bytes` before its end:
    /// each frame's decoded bytes go to `chunks` as they arrive, until Nomad ends the stream or
    /// the receiver is dropped.
    pub async fn follow_logs(
        &self,
        alloc_id: &str,
        task: &str,
        stream: &str,
        tail_bytes: u64,
        chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<(), NomadError> {
        let query = [
            ("task", task.to_owned()),
            ("type", stream.to_owned()),
            ("origin", "end".to_owned()),
            ("offset", tail_bytes.to_string()),
            ("follow", "true".to_owned()),
        ];
        let mut response = self.upgrade_request(&format!("/v1/client/fs/logs/{}", segment(alloc_id)), &query, &[]).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            return Err(error_for(status, text));
        }
        let mut buffer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            buffer.extend_from_slice(&chunk);
            let (data, used) = decode_complete_frames(&buffer)?;
            buffer.drain(..used);
            if !data.is_empty() && chunks.send(data).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `POST /v1/client/allocation/:id/signal` to the task.
    pub async fn signal(&self, alloc_id: &str, task: &str, signal: &str) -> Result<(), NomadError> {
        let body = serde_json::json!({"Task": task, "Signal": signal});
        self.call(reqwest::Method::POST, &format!("/v1/client/allocation/{}/signal", segment(alloc_id)), &[], Some(&body), Retry::Safe)
            .await?;
        Ok(())
    }

    /// The last `tail_bytes` of a task's stdout or stderr (`GET /v1/client/fs/logs/:alloc`,
    /// not following), decoded from Nomad's concatenated JSON frames.
    pub async fn logs(&self, alloc_id: &str, task: &str, stream: &str, tail_bytes: u64) -> Result<Vec<u8>, NomadError> {
        let query = [
            ("task", task.to_owned()),
            ("type", stream.to_owned()),
            ("origin", "end".to_owned()),
            ("offset", tail_bytes.to_string()),
            ("follow", "false".to_owned()),
        ];
        let response = self.send(reqwest::Method::GET, &format!("/v1/client/fs/logs/{}", segment(alloc_id)), &query, None).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if status != 200 {
            return Err(error_for(status, String::from_utf8_lossy(&bytes).into_owned()));
        }
        decode_log_frames(&bytes)
    }

    /// A `GET` with extra headers whose answer is not read here, without a total timeout: the
    /// exec WebSocket's upgrade, and followed logs.
    pub(super) async fn upgrade_request(
        &self,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, NomadError> {
        let mut request = self.streaming.get(self.url(path, query)?);
        if let Some(token) = &self.config.token {
            request = request.header("X-Nomad-Token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.map_err(|e| self.transport(e))
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<url::Url, NomadError> {
        let mut url = url::Url::parse(&format!("{}{}", self.config.address.trim_end_matches('/'), path))
            .map_err(|e| NomadError::Config(format!("address {:?}: {e}", self.config.address)))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("namespace", &self.config.namespace);
            if let Some(region) = &self.config.region {
                pairs.append_pair("region", region);
            }
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, NomadError> {
        let mut request = self.http.request(method, self.url(path, query)?);
        if let Some(token) = &self.config.token {
            request = request.header("X-Nomad-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| self.transport(e))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Answer, NomadError> {
        let mut attempt = 0;
        loop {
            let outcome = match self.send(method.clone(), path, query, body).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let index =
                        response.headers().get("X-Nomad-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
                    match response.text().await {
                        Ok(text) if status == 200 => {
                            return serde_json::from_str(&text)
                                .map(|body| Answer { body, index })
                                .map_err(|e| NomadError::Decode(format!("{path}: {e}")));
                        }
                        Ok(text) => match (status, retry) {
                            (500, Retry::TransportOnly) => return Err(NomadError::Invalid(text.trim().to_owned())),
                            (500..=599, Retry::Safe) => Err(error_for(status, text)),
                            _ => return Err(error_for(status, text)),
                        },
                        Err(e) => Err(self.transport(e)),
                    }
                }
                Err(e) => Err(e),
            };
            if attempt >= self.config.retries {
                return outcome;
            }
            tracing::debug!(
                path,
                attempt,
                "nomad request failed, retrying: {}",
                outcome.as_ref().err().map(ToString::to_string).unwrap_or_default()
            );
            tokio::time::sleep(retry_delay(attempt, self.config.backoff, self.config.max_backoff)).await;
            attempt += 1;
        }
    }

    fn transport(&self, error: reqwest::Error) -> NomadError {
        // reqwest's message names the URL but never the token (it is a header).
        NomadError::Transport { address: self.config.address.clone(), message: error.to_string() }
    }
}

fn error_for(status: u16, text: String) -> NomadError {
    let message = text.trim().to_owned();
    match status {
        403 => NomadError::Denied(message),
        404 => NomadError::NotFound(message),
        _ => NomadError::Status { status, message },
    }
}

/// A path segment with the characters that would change the URL's meaning escaped.
fn segment(text: &str) -> String {
    crate::model::percent_encode(text)
}

/// PURE: the data of the complete frames at the start of `bytes` and how many bytes they took;
/// a frame cut at the end waits for the next chunk.
pub fn decode_complete_frames(bytes: &[u8]) -> Result<(Vec<u8>, usize), NomadError> {
    use base64::Engine;
    let mut frames = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut out = Vec::new();
    let mut used = 0;
    loop {
        match frames.next() {
            Some(Ok(frame)) => {
                used = frames.byte_offset();
                if let Some(data) = frame.get("Data").and_then(Value::as_str) {
                    out.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .map_err(|e| NomadError::Decode(format!("log frame data: {e}")))?,
                    );
                }
            }
            Some(Err(e)) if e.is_eof() => return Ok((out, used)),
            Some(Err(e)) => return Err(NomadError::Decode(format!("log frame: {e}"))),
            None => return Ok((out, used)),
        }
    }
}

/// Nomad's log stream: JSON objects concatenated with no separator, `Data` in base64, `{}`
/// heartbeats, and `FileEvent` frames (hashistack.md §9).
pub fn decode_log_frames(bytes: &[u8]) -> Result<Vec<u8>, NomadError> {
    use base64::Engine;
    let mut out = Vec::new();
    for frame in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        let frame = frame.map_err(|e| NomadError::Decode(format!("log frame: {e}")))?;
        if let Some(data) = frame.get("Data").and_then(Value::as_str) {
            out.extend(
                base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| NomadError::Decode(format!("log frame data: {e}")))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let check = |attempt, expected_ms| {
            assert_eq!(retry_delay(attempt, Duration::from_millis(200), Duration::from_secs(5)), Duration::from_millis(expected_ms));
        };
        check(0, 200);
        check(1, 400);
        check(2, 800);
        check(4, 3200);
        check(5, 5000);
        check(40, 5000);
    }

    #[test]
    fn decodes_concatenated_log_frames_with_heartbeats() {
        // The fixture's docs sample wraps frames in `( , )`; the wire has them back to back.
        let wire = br#"{}{"Offset":5,"Data":"aGVsbG8=","File":"alloc/logs/app.stdout.0"}{}{"FileEvent":"file truncated","File":"x"}{"Offset":11,"Data":"IHdvcmxk"}"#;
        assert_eq!(decode_log_frames(wire).unwrap(), b"hello world");
        assert!(decode_log_frames(b"{\"Data\": 1").is_err());
    }

    #[test]
    fn frames_cut_between_chunks_wait_for_the_rest() {
        let wire = br#"{}{"Offset":5,"Data":"aGVsbG8="}{"Offset":11,"Da"#;
        let (data, used) = decode_complete_frames(wire).unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(&wire[used..], br#"{"Offset":11,"Da"#);
        let (data, used) = decode_complete_frames(br#"{"Data":"IHdvcmxk"}{}"#).unwrap();
        assert_eq!((data.as_slice(), used), (&b" world"[..], 21));
    }

    #[test]
    fn segments_escape_what_would_change_the_path() {
        assert_eq!(segment("quiz"), "quiz");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let mut config = NomadConfig::new("http://127.0.0.1:4646");
        config.token = Some("s3cr3t-token".to_owned());
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
