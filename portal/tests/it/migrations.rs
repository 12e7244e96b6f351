//! Migrations: each applies and reverts cleanly (the schema after `down` equals the schema
//! before `up`, compared as `pg_dump --schema-only` output), and the diesel models in
//! `db/schema.rs` match the migrated tables.

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use portal::db::MIGRATIONS;

use crate::helpers::TestDatabase;

fn schema_dump(url: &str) -> String {
    let output = std::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "--no-privileges", "--exclude-table=__diesel_schema_migrations", url])
        .output()
        .expect("pg_dump (from the postgresql-client package)");
    assert!(output.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
    // Drop comments and the header lines that carry versions or settings, keep the schema.
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.starts_with("SET ")
                && !l.starts_with("SELECT pg_catalog")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_migration_applies_and_reverts_cleanly() {
    let database = TestDatabase::create();
    let mut conn = PgConnection::establish(&database.url).expect("connect");
    let n_migrations = MigrationHarness::<diesel::pg::Pg>::pending_migrations(&mut conn, MIGRATIONS).expect("list migrations").len();
    assert!(n_migrations >= 2);
    for migration_idx in 0..n_migrations {
        let before = schema_dump(&database.url);
        let applied = conn.run_next_migration(MIGRATIONS).expect("up.sql applies").to_string();
        let after_up = schema_dump(&database.url);
        assert_ne!(before, after_up, "migration {migration_idx} ({applied}) changes the schema");
        conn.revert_last_migration(MIGRATIONS).expect("down.sql applies");
        assert_eq!(schema_dump(&database.url), before, "migration {migration_idx} ({applied}) does not revert cleanly");
        conn.run_next_migration(MIGRATIONS).expect("up.sql applies again");
        assert_eq!(schema_dump(&database.url), after_up, "migration {migration_idx} ({applied}) is not repeatable");
    }
    assert!(!conn.has_pending_migration(MIGRATIONS).expect("check"));
}

#[test]
fn every_model_reads_from_the_migrated_schema() {
    use portal::db::models::{ApiToken, EmailToken, OutboundMail, User};
    use portal::db::schema::{api_tokens, email_tokens, outbound_mail, users};
    let database = TestDatabase::create();
    let mut conn = PgConnection::establish(&database.url).expect("connect");
    conn.run_pending_migrations(MIGRATIONS).expect("migrate");
    // Selecting every column of every model fails if schema.rs names a column the table lacks.
    users::table.select(User::as_select()).load(&mut conn).expect("users match schema.rs");
    email_tokens::table.select(EmailToken::as_select()).load(&mut conn).expect("email_tokens match schema.rs");
    api_tokens::table.select(ApiToken::as_select()).load(&mut conn).expect("api_tokens match schema.rs");
    outbound_mail::table.select(OutboundMail::as_select()).load(&mut conn).expect("outbound_mail match schema.rs");
    use portal::db::models::{AlertIncident, AuditEntry, MetricSample};
    use portal::db::schema::{alert_incidents, audit_log, metric_samples};
    audit_log::table.select(AuditEntry::as_select()).load(&mut conn).expect("audit_log matches schema.rs");
    metric_samples::table.select(MetricSample::as_select()).load(&mut conn).expect("metric_samples match schema.rs");
    alert_incidents::table.select(AlertIncident::as_select()).load(&mut conn).expect("alert_incidents match schema.rs");
    use portal::db::models::CustomDomain;
    use portal::db::schema::{acme_accounts, custom_domains};
    custom_domains::table.select(CustomDomain::as_select()).load(&mut conn).expect("custom_domains match schema.rs");
    acme_accounts::table
        .select((acme_accounts::directory_url, acme_accounts::credentials_sealed, acme_accounts::created_at))
        .load::<(String, Vec<u8>, chrono::DateTime<chrono::Utc>)>(&mut conn)
        .expect("acme_accounts match schema.rs");
}
