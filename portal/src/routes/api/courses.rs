//! Courses over the API: courses and staff, roster import (the CSV file is the request body;
//! `confirm=true` imports, otherwise it is a preview), assignments, submissions, grading,
//! release, bulk access, pre-warming and the grade export.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;

use super::ApiUser;
use crate::courses::{self, AssignmentInput};
use crate::domain::coursework::{self, CourseAction, RubricItem};
use crate::domain::grade_export::ExportFormat;
use crate::domain::roster::ColumnMapping;
use crate::error::AppError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/courses", web::get().to(list))
        .route("/courses", web::post().to(create))
        .route("/courses/{course}", web::get().to(show))
        .route("/courses/{course}/staff", web::post().to(add_staff))
        .service(
            // Canvas exports carry a column per assignment: allow more than the default 256 KiB.
            web::resource("/courses/{course}/roster").app_data(web::PayloadConfig::new(ROSTER_LIMIT)).route(web::post().to(roster)),
        )
        .route("/courses/{course}/assignments", web::get().to(assignments))
        .route("/courses/{course}/assignments", web::post().to(create_assignment))
        .route("/courses/{course}/grades.csv", web::get().to(export))
        .route("/assignments/{assignment}", web::get().to(assignment))
        .route("/assignments/{assignment}", web::patch().to(edit_assignment))
        .route("/assignments/{assignment}/access", web::put().to(set_access))
        .route("/assignments/{assignment}/release", web::post().to(release))
        .route("/assignments/{assignment}/submissions", web::get().to(submissions))
        .route("/assignments/{assignment}/submissions", web::post().to(submit))
        .route("/submissions/{submission}", web::get().to(submission))
        .route("/submissions/{submission}/grade", web::put().to(grade))
        .route("/submissions/{submission}/prewarm", web::post().to(prewarm));
}

/// The largest roster file accepted, in bytes.
const ROSTER_LIMIT: usize = 4 * 1024 * 1024;

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    let courses: Vec<_> =
        courses::list(&state, &user).await?.into_iter().map(|(course, role)| serde_json::json!({"course": course, "role": role})).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "courses": courses })))
}

#[derive(Deserialize)]
struct CreateBody {
    code: String,
    title: String,
    term: String,
    #[serde(default)]
    section: String,
}

async fn create(state: web::Data<AppState>, ApiUser(user): ApiUser, body: web::Json<CreateBody>) -> Result<HttpResponse, AppError> {
    let course = courses::create(&state, &user, &body.code, &body.title, &body.term, &body.section).await?;
    Ok(HttpResponse::Created().json(courses::details(&state, &user, course.id).await?))
}

async fn show(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(courses::details(&state, &user, path.into_inner()).await?))
}

#[derive(Deserialize)]
struct StaffBody {
    email: String,
    #[serde(default)]
    role: String,
}

async fn add_staff(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<StaffBody>,
) -> Result<HttpResponse, AppError> {
    let course_id = path.into_inner();
    courses::add_staff(&state, &user, course_id, &body.email, &body.role).await?;
    Ok(HttpResponse::Ok().json(courses::details(&state, &user, course_id).await?))
}

#[derive(Deserialize)]
struct RosterQuery {
    #[serde(default)]
    confirm: bool,
    email_column: Option<String>,
    name_column: Option<String>,
    student_number_column: Option<String>,
    section_column: Option<String>,
}

impl RosterQuery {
    fn mapping(&self) -> Option<ColumnMapping> {
        self.email_column.as_ref().filter(|c| !c.trim().is_empty()).map(|email| ColumnMapping {
            email: email.clone(),
            name: self.name_column.clone(),
            student_number: self.student_number_column.clone(),
            section: self.section_column.clone(),
        })
    }
}

async fn roster(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    query: web::Query<RosterQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let course_id = path.into_inner();
    let mapping = query.mapping();
    if query.confirm {
        let imported = courses::import_roster(&state, &user, course_id, &body, mapping.as_ref()).await?;
        return Ok(HttpResponse::Ok().json(imported));
    }
    Ok(HttpResponse::Ok().json(courses::preview_roster(&state, &user, course_id, &body, mapping.as_ref()).await?))
}

async fn assignments(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let list: Vec<_> = courses::assignments(&state, &user, path.into_inner()).await?.iter().map(courses::assignment_view).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "assignments": list })))
}

#[derive(Deserialize)]
struct AssignmentBody {
    title: String,
    #[serde(default)]
    description: String,
    /// RFC 3339, with its offset (`2026-12-24T23:59:00+09:00`).
    due_at: String,
    cutoff_at: Option<String>,
    #[serde(default)]
    group: bool,
    template: Option<String>,
    #[serde(default = "staff")]
    visibility: String,
    idle_secs: Option<i32>,
    max_instances: Option<i32>,
    rubric: Option<Vec<RubricItem>>,
}

fn staff() -> String {
    "staff".to_owned()
}

async fn create_assignment(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<AssignmentBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let input = AssignmentInput {
        title: body.title,
        description: body.description,
        due_at: coursework::parse_rfc3339(&body.due_at, "due_at")?,
        cutoff_at: body
            .cutoff_at
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| coursework::parse_rfc3339(c, "cutoff_at"))
            .transpose()?,
        group: body.group,
        template: body.template,
        visibility: body.visibility,
        idle_secs: body.idle_secs,
        max_instances: body.max_instances,
        rubric: body.rubric,
    };
    let assignment = courses::create_assignment(&state, &user, path.into_inner(), input).await?;
    Ok(HttpResponse::Created().json(courses::assignment_view(&assignment)))
}

async fn assignment(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let (assignment, course, role) = courses::get_assignment(&state, &user, path.into_inner(), CourseAction::View).await?;
    let mine = courses::my_submission(&state, &user, &assignment).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "assignment": courses::assignment_view(&assignment),
        "course": course,
        "your_role": role,
        "your_submission": mine,
    })))
}

#[derive(Deserialize)]
struct EditBody {
    title: String,
    #[serde(default)]
    description: String,
    due_at: String,
    cutoff_at: Option<String>,
    idle_secs: Option<i32>,
    max_instances: Option<i32>,
}

async fn edit_assignment(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<EditBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let input = courses::AssignmentEditInput {
        title: body.title,
        description: body.description,
        due_at: coursework::parse_rfc3339(&body.due_at, "due_at")?,
        cutoff_at: body
            .cutoff_at
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| coursework::parse_rfc3339(c, "cutoff_at"))
            .transpose()?,
        idle_secs: body.idle_secs,
        max_instances: body.max_instances,
    };
    let assignment = courses::edit_assignment(&state, &user, path.into_inner(), input, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(courses::assignment_view(&assignment)))
}

#[derive(Deserialize)]
struct AccessBody {
    visibility: String,
}

async fn set_access(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<AccessBody>,
) -> Result<HttpResponse, AppError> {
    let assignment = courses::set_access(&state, &user, path.into_inner(), &body.visibility).await?;
    Ok(HttpResponse::Ok().json(courses::assignment_view(&assignment)))
}

#[derive(Deserialize)]
struct ReleaseBody {
    released: bool,
}

async fn release(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<ReleaseBody>,
) -> Result<HttpResponse, AppError> {
    let assignment = courses::set_released(&state, &user, path.into_inner(), body.released, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(courses::assignment_view(&assignment)))
}

async fn submissions(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let (_, list) = courses::submissions(&state, &user, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "submissions": list })))
}

#[derive(Deserialize)]
struct SubmitBody {
    project: String,
}

async fn submit(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<SubmitBody>,
) -> Result<HttpResponse, AppError> {
    let submission = courses::submit(&state, &user, path.into_inner(), &body.project, Utc::now()).await?;
    Ok(HttpResponse::Created().json(courses::submission(&state, &user, submission.id).await?.1))
}

async fn submission(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(courses::submission(&state, &user, path.into_inner()).await?.1))
}

#[derive(Deserialize)]
struct GradeBody {
    scores: Vec<Option<f64>>,
    #[serde(default)]
    feedback: String,
}

async fn grade(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<GradeBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(courses::grade(&state, &user, path.into_inner(), body.scores, &body.feedback, Utc::now()).await?))
}

async fn prewarm(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let woken = courses::prewarm(&state, &user, path.into_inner(), PREWARM_NEXT).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "waking": woken })))
}

/// How many submissions after the one opened are woken.
pub const PREWARM_NEXT: usize = 3;

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(default)]
    bom: bool,
}

async fn export(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, AppError> {
    let course_id = path.into_inner();
    csv_response(&state, &user, course_id, &query.format, query.bom).await
}

/// The export as a download; shared with the course page.
pub async fn csv_response(
    state: &AppState,
    user: &crate::db::models::User,
    course_id: i64,
    raw_format: &str,
    bom: bool,
) -> Result<HttpResponse, AppError> {
    let format = ExportFormat::parse(raw_format).ok_or_else(|| {
        crate::domain::ValidationError::new(
            "unknown_export_format",
            "format",
            format!("`{}` is not an export format; choose canvas, moodle or plain", raw_format.trim()),
        )
    })?;
    let body = courses::export(state, user, course_id, format, bom).await?;
    let name = match format {
        ExportFormat::Canvas => "canvas",
        ExportFormat::Moodle => "moodle",
        ExportFormat::Plain => "plain",
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"grades-{course_id}-{name}.csv\"")))
        .body(body))
}
