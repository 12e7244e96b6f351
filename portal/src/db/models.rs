//! Rows as diesel reads and writes them. Plain data; validation lives in `domain`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{api_tokens, email_tokens, outbound_mail, users};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub student_number: Option<String>,
    pub language: String,
    pub role: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub student_number: Option<&'a str>,
    pub language: &'a str,
    pub role: &'a str,
    pub email_verified_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_tokens)]
pub struct EmailToken {
    pub id: i64,
    pub user_id: i64,
    pub purpose: String,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    #[serde(rename = "prefix")]
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_mail)]
pub struct OutboundMail {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub sealed_body: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, serde::Serialize)]
#[diesel(table_name = super::schema::projects)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub template: String,
    pub live_revision_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The project's own scaling settings; `None` takes the installation's default.
    pub min_instances: Option<i32>,
    pub max_instances: Option<i32>,
    pub idle_secs: Option<i32>,
    /// 0 means never frozen.
    pub freeze_after_secs: Option<i32>,
    pub target_concurrency: Option<i32>,
    pub visibility: String,
    /// The group that owns the project, if any; then the group's roles decide, not `owner_id`.
    pub group_id: Option<i64>,
}

/// A project's scaling settings as stored (`None`: the installation's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = super::schema::projects, treat_none_as_null = true)]
pub struct ScalingSettings {
    pub min_instances: Option<i32>,
    pub max_instances: Option<i32>,
    pub idle_secs: Option<i32>,
    pub freeze_after_secs: Option<i32>,
    pub target_concurrency: Option<i32>,
}

impl Project {
    pub fn scaling(&self) -> ScalingSettings {
        ScalingSettings {
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            idle_secs: self.idle_secs,
            freeze_after_secs: self.freeze_after_secs,
            target_concurrency: self.target_concurrency,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::project_env)]
pub struct EnvVar {
    pub project_id: i64,
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::revisions)]
pub struct Revision {
    pub id: i64,
    pub project_id: i64,
    pub number: i32,
    pub artifact_id: String,
    pub template: String,
    pub plan: Option<serde_json::Value>,
    pub status: String,
    pub error: Option<String>,
    pub source: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub build_started_at: Option<DateTime<Utc>>,
    pub build_finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::groups)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::group_members)]
pub struct GroupMember {
    pub group_id: i64,
    pub user_id: i64,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::group_invitations)]
pub struct GroupInvitation {
    pub id: i64,
    #[serde(skip)]
    pub group_id: i64,
    pub email: String,
    pub role: String,
    #[serde(skip)]
    pub invited_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::quotas)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct QuotaRow {
    #[serde(skip)]
    pub id: i64,
    pub user_id: Option<i64>,
    pub group_id: Option<i64>,
    pub max_projects: Option<i32>,
    pub max_instances: Option<i32>,
    pub max_memory_mb: Option<i32>,
    pub max_builds_per_hour: Option<i32>,
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
}

/// One audit log entry as stored. Rows are only ever inserted (the table refuses updates).
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = super::schema::audit_log)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
}

/// One point of a monitor series.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::metric_samples)]
pub struct MetricSample {
    pub resolution_secs: i32,
    pub series: String,
    pub metric: String,
    pub at: DateTime<Utc>,
    pub value: f64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::alert_incidents)]
pub struct AlertIncident {
    pub id: i64,
    pub key: String,
    pub opened_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// A project's custom domain (`custom_domains`). `cert_key_sealed` is sealed with the installation
/// key; `Debug` leaves it out.
#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = super::schema::custom_domains)]
pub struct CustomDomain {
    pub id: i64,
    pub project_id: i64,
    pub domain: String,
    pub proof_token: String,
    /// `pending` → `verified` (control proven) → `active` (certificate issued); `failed` after a
    /// failed issuance (retried from `retry_after`).
    pub status: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub cert_chain_pem: Option<String>,
    pub cert_key_sealed: Option<Vec<u8>>,
    pub cert_not_before: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
    pub n_failures: i32,
    pub retry_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for CustomDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomDomain")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("domain", &self.domain)
            .field("status", &self.status)
            .field("cert_not_after", &self.cert_not_after)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::courses)]
pub struct Course {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub term: String,
    pub section: String,
    #[serde(skip)]
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::enrolments)]
pub struct Enrolment {
    #[serde(skip)]
    pub course_id: i64,
    pub user_id: i64,
    pub roster_name: String,
    pub student_number: String,
    pub section: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = super::schema::course_invitations)]
pub struct CourseInvitation {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub course_id: i64,
    pub email: String,
    pub roster_name: String,
    pub student_number: String,
    pub section: String,
    #[serde(skip)]
    pub invited_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::assignments)]
pub struct Assignment {
    pub id: i64,
    pub course_id: i64,
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    /// `individual` or `group`.
    pub kind: String,
    /// Submissions must use this template, when set.
    pub template: Option<String>,
    /// `staff`, `class` or `public` (`domain::coursework::SubmissionVisibility`).
    pub visibility: String,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
    /// `[{"name": .., "points": ..}]` (`domain::coursework::RubricItem`).
    pub rubric: serde_json::Value,
    pub grades_released_at: Option<DateTime<Utc>>,
    pub deadline_swept_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A pinned submission. `sealed_env` holds the environment (secrets included) sealed with the
/// installation key: never show it or log it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::submissions)]
pub struct Submission {
    pub id: i64,
    pub assignment_id: i64,
    pub submitter_key: String,
    pub user_id: Option<i64>,
    pub group_id: Option<i64>,
    pub project_id: Option<i64>,
    pub project_name: String,
    pub app_name: String,
    pub revision_id: Option<i64>,
    pub revision_number: i32,
    pub artifact_id: String,
    pub template: String,
    pub plan: serde_json::Value,
    pub sealed_env: Vec<u8>,
    pub snapshot_dir: String,
    pub run_uid: i32,
    pub pin_number: i32,
    pub pinned_reason: String,
    pub pinned_at: DateTime<Utc>,
    pub submitted_at: DateTime<Utc>,
    pub late_secs: i64,
    pub scores: Option<serde_json::Value>,
    pub grade: Option<f64>,
    pub feedback: String,
    pub graded_by: Option<i64>,
    pub graded_at: Option<DateTime<Utc>>,
}
