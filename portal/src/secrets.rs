//! Where users' secret values live: the `SecretStore` trait, and `SealedStore`, which keeps them
//! sealed with the installation key in PostgreSQL (the embedded shape). The cluster shape backs
//! the same trait with Vault. Values never appear in logs: `SecretValue` prints as `..`.
//!
//! Paths are `projects/<project id>/env/<NAME>`; callers build them with `env_path`.
//! `vault::VaultStore` keeps them in Vault (or OpenBao) KV v2 instead, for the cluster shape.

pub mod vault;

use std::future::Future;
use std::pin::Pin;

use chrono::Utc;
use diesel::prelude::*;

use crate::crypto::SecretBox;
use crate::db::schema::sealed_secrets;
use crate::db::{Db, DbError};

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    #[error("the secret at `{0}` cannot be opened (was the installation key changed?)")]
    Damaged(String),
    #[error("the secret store denied access to `{0}`")]
    Denied(String),
}

impl From<DbError> for SecretError {
    fn from(error: DbError) -> Self {
        SecretError::Unavailable(error.to_string())
    }
}

pub type SecretFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SecretError>> + Send + 'a>>;

pub trait SecretStore: Send + Sync {
    fn put<'a>(&'a self, path: &'a str, value: &'a SecretValue) -> SecretFuture<'a, ()>;
    fn get<'a>(&'a self, path: &'a str) -> SecretFuture<'a, Option<SecretValue>>;
    fn delete<'a>(&'a self, path: &'a str) -> SecretFuture<'a, ()>;
    /// Deletes every secret under a prefix (a deleted project's).
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> SecretFuture<'a, ()>;
}

pub fn env_path(project_id: i64, name: &str) -> String {
    format!("projects/{project_id}/env/{name}")
}

pub fn project_prefix(project_id: i64) -> String {
    format!("projects/{project_id}/")
}

/// Secrets sealed with XChaCha20-Poly1305 under the installation key, in `sealed_secrets`.
pub struct SealedStore {
    db: Db,
    sealer: SecretBox,
}

impl SealedStore {
    pub fn new(db: Db, sealer: SecretBox) -> Self {
        Self { db, sealer }
    }
}

impl SecretStore for SealedStore {
    fn put<'a>(&'a self, path: &'a str, value: &'a SecretValue) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self.sealer.seal(value.0.as_bytes());
            let path = path.to_owned();
            self.db
                .run(move |conn| {
                    diesel::insert_into(sealed_secrets::table)
                        .values((sealed_secrets::path.eq(&path), sealed_secrets::sealed.eq(&sealed)))
                        .on_conflict(sealed_secrets::path)
                        .do_update()
                        .set((sealed_secrets::sealed.eq(&sealed), sealed_secrets::updated_at.eq(Utc::now())))
                        .execute(conn)
                        .map_err(DbError::from)
                })
                .await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, path: &'a str) -> SecretFuture<'a, Option<SecretValue>> {
        Box::pin(async move {
            let owned = path.to_owned();
            let sealed: Option<Vec<u8>> = self
                .db
                .run(move |conn| {
                    sealed_secrets::table.find(&owned).select(sealed_secrets::sealed).first(conn).optional().map_err(DbError::from)
                })
                .await?;
            match sealed {
                None => Ok(None),
                Some(bytes) => {
                    let plain = self.sealer.open(&bytes).map_err(|_| SecretError::Damaged(path.to_owned()))?;
                    Ok(Some(SecretValue(String::from_utf8(plain).map_err(|_| SecretError::Damaged(path.to_owned()))?)))
                }
            }
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            let owned = path.to_owned();
            self.db.run(move |conn| diesel::delete(sealed_secrets::table.find(&owned)).execute(conn).map_err(DbError::from)).await?;
            Ok(())
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> SecretFuture<'a, ()> {
        Box::pin(async move {
            let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            self.db
                .run(move |conn| {
                    diesel::delete(sealed_secrets::table.filter(sealed_secrets::path.like(&pattern))).execute(conn).map_err(DbError::from)
                })
                .await?;
            Ok(())
        })
    }
}
