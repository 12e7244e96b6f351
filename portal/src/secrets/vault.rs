//! `VaultStore`: the `SecretStore` of the cluster shape, in Vault's (or OpenBao's) KV v2 engine,
//! through `vaultrs` (async; the older `hashicorp_vault` crate is blocking and unmaintained since
//! 2022). The portal logs in with AppRole.
//!
//! Layout: the store path `projects/42/env/API_KEY` is the KV v2 secret
//! `<mount>/data/<prefix>/projects/42/env/API_KEY` with one field, `value`. One secret per
//! variable keeps writes independent (no read-modify-write of a shared document), and gives each
//! project its own subtree, so a per-project policy (`project_policy`) lets that project's Nomad
//! tasks read their own variables and nothing else. Deleting removes the metadata, so no old
//! version is left behind.
//!
//! Not here: token renewal (call `login` again before the AppRole token's max TTL), creating the
//! per-project JWT roles in Vault (an operator step, docs/cluster.md).

use serde_json::Value;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{SecretError, SecretFuture, SecretStore, SecretValue};

/// Where and how the portal reaches Vault (the `[vault]` table of `slipway.toml`).
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// Vault's (or OpenBao's) address, e.g. `https://vault.service.consul:8200`.
    pub address: String,
    /// The AppRole auth mount (`approle`).
    pub approle_mount: String,
    /// The portal's AppRole role ID.
    pub role_id: String,
    /// The portal's AppRole secret ID; held as a secret, never logged.
    pub secret_id: secrecy::SecretString,
    /// The KV v2 mount (`secret`).
    pub kv_mount: String,
    /// The subtree of the mount Slipway owns (`slipway`).
    pub prefix: String,
}

pub struct VaultStore {
    client: VaultClient,
    kv_mount: String,
    prefix: String,
}

impl VaultStore {
    /// Logs in with AppRole and returns a store using the resulting token.
    pub async fn login(settings: &VaultSettings) -> Result<Self, SecretError> {
        use secrecy::ExposeSecret;
        crate::install_tls_provider();
        let client_settings = VaultClientSettingsBuilder::default()
            .address(&settings.address)
            .build()
            .map_err(|e| SecretError::Unavailable(format!("vault settings: {e}")))?;
        let mut client = VaultClient::new(client_settings).map_err(|e| SecretError::Unavailable(format!("vault client: {e}")))?;
        let auth = vaultrs::auth::approle::login(&client, &settings.approle_mount, &settings.role_id, settings.secret_id.expose_secret())
            .await
            .map_err(|e| match e {
                ClientError::APIError { code, errors } => SecretError::Denied(format!("approle login ({code}): {}", errors.join("; "))),
                other => SecretError::Unavailable(format!("vault login: {other}")),
            })?;
        client.set_token(&auth.client_token);
        Ok(Self { client, kv_mount: settings.kv_mount.clone(), prefix: settings.prefix.trim_matches('/').to_owned() })
    }

    fn kv_path(&self, path: &str) -> String {
        format!("{}/{}", self.prefix, path.trim_matches('/'))
    }

    /// The KV v2 API path a Nomad template reads for a store path (`render::SecretRef::kv_path`).
    pub fn api_path(&self, path: &str) -> String {
        kv_api_path(&self.kv_mount, &self.prefix, path)
    }

    fn error(&self, path: &str, error: ClientError) -> SecretError {
        match error {
            ClientError::APIError { code: 403, .. } => SecretError::Denied(self.kv_path(path)),
            ClientError::APIError { code, errors } => {
                SecretError::Unavailable(format!("vault answered {code} for {}: {}", self.kv_path(path), errors.join("; ")))
            }
            other => SecretError::Unavailable(format!("vault: {other}")),
        }
    }
}

/// PURE: the KV v2 API path (`secret/data/slipway/projects/42/env/API_KEY`) of a store path, without
/// a logged-in store (the portal's cluster glue names paths before any read).
pub fn kv_api_path(kv_mount: &str, prefix: &str, path: &str) -> String {
    format!("{kv_mount}/data/{}/{}", prefix.trim_matches('/'), path.trim_matches('/'))
}

/// Vault answers 404 for a missing path, a soft-deleted version and an empty list.
fn is_not_found(error: &ClientError) -> bool {
    matches!(error, ClientError::APIError { code: 404, .. })
}

/// The Vault policy (HCL) that lets one project's tasks read that project's variables and
/// nothing else; bind it to the project's JWT role (`bound_claims.nomad_job_id` = the app).
pub fn project_policy(kv_mount: &str, prefix: &str, project_id: i64) -> String {
    let prefix = prefix.trim_matches('/');
    format!("path \"{kv_mount}/data/{prefix}/projects/{project_id}/env/*\" {{\n  capabilities = [\"read\"]\n}}\n")
}

impl SecretStore for VaultStore {
    fn put<'a>(&'a self, path: &'a str, value: &'a SecretValue) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            let data = serde_json::json!({ "value": value.0 });
            vaultrs::kv2::set(&self.client, &self.kv_mount, &self.kv_path(path), &data).await.map_err(|e| self.error(path, e))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, path: &'a str) -> SecretFuture<'a, Option<SecretValue>> {
        Box::pin(async move {
            match vaultrs::kv2::read::<Value>(&self.client, &self.kv_mount, &self.kv_path(path)).await {
                Ok(data) => match data.get("value").and_then(Value::as_str) {
                    Some(value) => Ok(Some(SecretValue(value.to_owned()))),
                    None => Err(SecretError::Damaged(self.kv_path(path))),
                },
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(self.error(path, e)),
            }
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            match vaultrs::kv2::delete_metadata(&self.client, &self.kv_mount, &self.kv_path(path)).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(self.error(path, e)),
            }
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            // A depth-first walk: LIST gives keys, folders end with `/`.
            let mut folders = vec![prefix.trim_end_matches('/').to_owned()];
            while let Some(folder) = folders.pop() {
                let keys = match vaultrs::kv2::list(&self.client, &self.kv_mount, &self.kv_path(&folder)).await {
                    Ok(keys) => keys,
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(self.error(&folder, e)),
                };
                for key in keys {
                    let child = format!("{folder}/{key}");
                    if key.ends_with('/') {
                        folders.push(child.trim_end_matches('/').to_owned());
                    } else {
                        self.delete(&child).await?;
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_policy_reads_only_that_projects_variables() {
        assert_eq!(
            project_policy("secret", "/slipway/", 42),
            "path \"secret/data/slipway/projects/42/env/*\" {\n  capabilities = [\"read\"]\n}\n"
        );
    }
}
