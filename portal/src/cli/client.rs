//! The CLI's side of the JSON API: a bearer-token client that turns the API's error bodies into
//! readable errors (`the portal refused (409, app_name_taken): ...`).

use anyhow::Context;
use serde_json::Value;

pub struct ApiClient {
    pub portal: String,
    token: String,
    http: reqwest::Client,
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")
}

pub async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no details").to_owned();
    let code = body["error"]["code"].as_str().unwrap_or("unknown").to_owned();
    anyhow::anyhow!("the portal refused ({status}, {code}): {message}")
}

impl ApiClient {
    pub fn new(portal: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self { portal: portal.trim_end_matches('/').to_owned(), token: token.to_owned(), http: http_client()? })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.portal)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// Sends and returns the JSON body of a successful answer (`Null` for 204).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| format!("cannot reach the portal at {}", self.portal))?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().await.context("the portal's answer is not JSON")
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::PATCH, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }
}

/// Percent-encodes one path segment (project names and keys are plain, but be safe).
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
