//! PostgreSQL through diesel: the pool, embedded migrations, and one query module per table.
//! Diesel is synchronous, so `Db::run` moves each unit of work onto tokio's blocking pool.

pub mod api_tokens;
pub mod audit;
pub mod courses;
pub mod custom_domains;
pub mod email_tokens;
pub mod git_sources;
pub mod groups;
pub mod mail;
pub mod models;
pub mod monitor;
pub mod projects;
pub mod revisions;
pub mod schema;
pub mod users;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type Conn = PooledConnection<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)))
    }
}

#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    pub fn connect(database_url: &str, max_size: u32) -> anyhow::Result<Self> {
        use anyhow::Context;
        let manager = ConnectionManager::<PgConnection>::new(database_url);
        let pool = Pool::builder()
            .max_size(max_size)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .context("cannot connect to PostgreSQL")?;
        Ok(Self { pool })
    }

    /// Applies every migration not yet applied; returns how many ran.
    pub fn migrate(&self) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        let applied = conn.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
        Ok(applied.len())
    }

    /// Runs `work` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| DbError::Unavailable(e.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    pub async fn ping(&self) -> bool {
        use diesel::RunQueryDsl;
        self.run(|conn| diesel::sql_query("SELECT 1").execute(conn).map_err(DbError::from)).await.is_ok()
    }
}
