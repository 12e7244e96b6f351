//! Course pages: the list with the create form; a course (staff, roster import with its
//! preview and confirm step, students, assignments, the grade export); an assignment (submit for
//! students; submissions, bulk access and grade release for staff); and the grading page, which
//! autosaves rubric scores and feedback (`static/app.js`, a JSON POST with the CSRF header) and
//! pre-warms the next submissions when it opens. Every form carries the CSRF token;
//! `courses::*` checks the course role on the server.
//!
//! Times are stored in UTC. Pages print them as UTC inside `<time datetime=..>`, which the
//! script rewrites in the browser's own zone (`Intl`); the assignment form sends the browser's
//! UTC offset (`utc_offset_minutes`, filled by the script; 0 = UTC without it).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;

use crate::courses::{self, AssignmentInput, AssignmentView, Details, RosterPreview, SubmissionView};
use crate::db::models::User;
use crate::domain::coursework::{self, course_allows, CourseAction, CourseRole, RubricItem};
use crate::domain::roster::ColumnMapping;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{check_csrf, flash_cookie, see_other, PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/courses", web::get().to(list))
        .route("/courses", web::post().to(create))
        .route("/courses/{course}", web::get().to(show))
        .route("/courses/{course}/staff", web::post().to(add_staff))
        .service(
            // A roster file travels base64-encoded in the form; 2 MB covers thousands of rows.
            web::resource("/courses/{course}/roster")
                .app_data(web::FormConfig::default().limit(2 * 1024 * 1024))
                .route(web::post().to(roster)),
        )
        .route("/courses/{course}/assignments", web::post().to(create_assignment))
        .route("/courses/{course}/grades.csv", web::get().to(export))
        .route("/assignments/{assignment}", web::get().to(assignment))
        .route("/assignments/{assignment}/submit", web::post().to(submit))
        .route("/assignments/{assignment}/edit", web::post().to(edit_assignment))
        .route("/assignments/{assignment}/access", web::post().to(set_access))
        .route("/assignments/{assignment}/release", web::post().to(release))
        .route("/submissions/{submission}", web::get().to(grading))
        .route("/submissions/{submission}/grade", web::post().to(grade))
        .route("/submissions/{submission}/prewarm", web::post().to(prewarm));
}

/// A time as the pages print it: UTC text the script turns into the viewer's zone.
pub fn utc_text(time: &chrono::DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn iso(time: &chrono::DateTime<Utc>) -> String {
    time.to_rfc3339()
}

fn redirect_with_flash(ctx: &PageCtx, state: &AppState, to: &str, flash: &str) -> PageResult {
    let mut response = see_other(to);
    response.add_cookie(&flash_cookie(flash, state)).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}

#[derive(Template)]
#[template(path = "courses.html")]
struct CoursesPage<'a> {
    page: &'a PageCtx,
    /// (id, code, title, term, section, your role)
    courses: Vec<(i64, String, String, String, String, String)>,
    may_create: bool,
    error: Option<String>,
}

async fn list_page(ctx: &PageCtx, state: &AppState, user: &User, error: Option<&AppError>) -> PageResult {
    let courses = courses::list(state, user).await.map_err(|e| ctx.error_page(e))?;
    let page = CoursesPage {
        page: ctx,
        courses: courses.into_iter().map(|(c, role)| (c.id, c.code, c.title, c.term, c.section, role)).collect(),
        may_create: user.role == "professor" || user.role == "admin",
        error: error.map(|e| ctx.error_message(e)),
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn list(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    list_page(&ctx, &state, user, None).await
}

#[derive(Deserialize)]
struct CreateForm {
    csrf_token: String,
    code: String,
    title: String,
    term: String,
    #[serde(default)]
    section: String,
}

async fn create(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<CreateForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match courses::create(&state, user, &form.code, &form.title, &form.term, &form.section).await {
        Ok(course) => Ok(see_other(&format!("/courses/{}", course.id))),
        Err(error @ AppError::Forbidden) => Err(ctx.error_page(error)),
        Err(error) => list_page(&ctx, &state, user, Some(&error)).await,
    }
}

#[derive(Template)]
#[template(path = "course.html")]
struct CoursePage<'a> {
    page: &'a PageCtx,
    course: Details,
    manage: bool,
    staff_view: bool,
    preview: Option<RosterPreview>,
    /// The previewed file and mapping, carried to the confirm form.
    file_b64: String,
    mapping: ColumnMapping,
    templates: Vec<String>,
    error: Option<String>,
}

impl CoursePage<'_> {
    /// ("matched" | "invite" | "invalid", the locale key or the reason).
    fn outcome(&self, row: &crate::domain::roster::ClassifiedRow) -> (&'static str, String) {
        use crate::domain::roster::Outcome;
        match &row.outcome {
            Outcome::Matched { .. } => ("matched", "courses.matched".to_owned()),
            Outcome::Invite { .. } => ("invite", "courses.invite".to_owned()),
            Outcome::Invalid { reason, .. } => ("invalid", reason.clone()),
        }
    }

    fn format_text(&self, preview: &RosterPreview) -> String {
        use crate::domain::roster::{RosterFormat, TextEncoding};
        let format = match preview.format {
            RosterFormat::Canvas => "Canvas",
            RosterFormat::Moodle => "Moodle",
            RosterFormat::Mapped => self.page.t("courses.mapped"),
        };
        let encoding = match preview.encoding {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Cp949 => "CP949",
        };
        format!("{format}, {encoding}")
    }

    fn due_text(&self, assignment: &AssignmentView) -> (String, String) {
        (iso(&assignment.due_at), utc_text(&assignment.due_at))
    }
}

struct RosterState {
    preview: Option<RosterPreview>,
    file_b64: String,
    mapping: ColumnMapping,
}

async fn course_page(
    ctx: &PageCtx,
    state: &AppState,
    user: &User,
    course_id: i64,
    roster: Option<RosterState>,
    error: Option<&AppError>,
) -> PageResult {
    let course = courses::details(state, user, course_id).await.map_err(|e| ctx.error_page(e))?;
    let roster = roster.unwrap_or(RosterState { preview: None, file_b64: String::new(), mapping: ColumnMapping::default() });
    let page = CoursePage {
        page: ctx,
        manage: course_allows(course.your_role, CourseAction::Manage),
        staff_view: course_allows(course.your_role, CourseAction::Grade),
        course,
        preview: roster.preview,
        file_b64: roster.file_b64,
        mapping: roster.mapping,
        templates: orchestrator::template::all().iter().map(|t| t.id.clone()).collect(),
        error: error.map(|e| ctx.error_message(e)),
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn show(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<i64>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    course_page(&ctx, &state, user, path.into_inner(), None, None).await
}

#[derive(Deserialize)]
struct StaffForm {
    csrf_token: String,
    email: String,
    #[serde(default)]
    role: String,
}

async fn add_staff(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<StaffForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let course_id = path.into_inner();
    match courses::add_staff(&state, user, course_id, &form.email, &form.role).await {
        Ok(()) => redirect_with_flash(&ctx, &state, &format!("/courses/{course_id}"), "flash.staff_added"),
        Err(error @ (AppError::NotFound("course") | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => course_page(&ctx, &state, user, course_id, None, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct RosterForm {
    csrf_token: String,
    /// The file, base64-encoded by the page's script.
    #[serde(default)]
    file_b64: String,
    #[serde(default)]
    email_column: String,
    #[serde(default)]
    name_column: String,
    #[serde(default)]
    student_number_column: String,
    #[serde(default)]
    section_column: String,
    #[serde(default)]
    confirm: Option<String>,
}

async fn roster(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<RosterForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let course_id = path.into_inner();
    let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let mapping = ColumnMapping {
        email: form.email_column.trim().to_owned(),
        name: optional(&form.name_column),
        student_number: optional(&form.student_number_column),
        section: optional(&form.section_column),
    };
    let chosen = (!mapping.email.is_empty()).then_some(&mapping);
    let file = match base64::engine::general_purpose::STANDARD.decode(form.file_b64.trim()) {
        Ok(file) if !file.is_empty() => file,
        _ => {
            let error = AppError::Rejected { code: "roster_empty", message: "choose a roster file first".to_owned() };
            return course_page(&ctx, &state, user, course_id, None, Some(&error)).await;
        }
    };
    if form.confirm.is_some() {
        return match courses::import_roster(&state, user, course_id, &file, chosen).await {
            Ok(_) => redirect_with_flash(&ctx, &state, &format!("/courses/{course_id}"), "flash.roster_imported"),
            Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
            Err(error) => course_page(&ctx, &state, user, course_id, None, Some(&error)).await,
        };
    }
    let file_b64 = form.file_b64.trim().to_owned();
    match courses::preview_roster(&state, user, course_id, &file, chosen).await {
        Ok(preview) => {
            course_page(&ctx, &state, user, course_id, Some(RosterState { preview: Some(preview), file_b64, mapping }), None).await
        }
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        // An unknown format keeps the file so the mapping can be chosen without choosing it again.
        Err(error) => {
            course_page(&ctx, &state, user, course_id, Some(RosterState { preview: None, file_b64, mapping }), Some(&error)).await
        }
    }
}

#[derive(Deserialize)]
struct AssignmentForm {
    csrf_token: String,
    title: String,
    #[serde(default)]
    description: String,
    due_at: String,
    #[serde(default)]
    cutoff_at: String,
    #[serde(default)]
    utc_offset_minutes: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    visibility: String,
    #[serde(default)]
    idle_secs: String,
    #[serde(default)]
    max_instances: String,
    /// One item per line: `name: points`.
    #[serde(default)]
    rubric: String,
}

fn parse_rubric(text: &str) -> Result<Option<Vec<RubricItem>>, AppError> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::new();
    for line in lines {
        let (name, points) = line.rsplit_once(':').ok_or_else(|| {
            crate::domain::ValidationError::new("invalid_rubric", "rubric", format!("`{line}` is not `name: points`")).with("value", line)
        })?;
        let points: f64 = points.trim().parse().map_err(|_| {
            crate::domain::ValidationError::new("invalid_rubric", "rubric", format!("`{line}` is not `name: points`")).with("value", line)
        })?;
        items.push(RubricItem { name: name.trim().to_owned(), points });
    }
    Ok(Some(items))
}

fn optional_number(text: &str, field: &'static str) -> Result<Option<i32>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        crate::domain::ValidationError::new("invalid_number", field, format!("`{text}` is not a whole number")).with("value", text).into()
    })
}

fn assignment_input(form: &AssignmentForm) -> Result<AssignmentInput, AppError> {
    let offset: i32 = form.utc_offset_minutes.trim().parse().unwrap_or(0);
    Ok(AssignmentInput {
        title: form.title.clone(),
        description: form.description.clone(),
        due_at: coursework::local_to_utc(&form.due_at, offset, "due_at")?,
        cutoff_at: match form.cutoff_at.trim() {
            "" => None,
            text => Some(coursework::local_to_utc(text, offset, "cutoff_at")?),
        },
        group: form.kind == "group",
        template: Some(form.template.clone()),
        visibility: if form.visibility.is_empty() { "staff".to_owned() } else { form.visibility.clone() },
        idle_secs: optional_number(&form.idle_secs, "idle_secs")?,
        max_instances: optional_number(&form.max_instances, "max_instances")?,
        rubric: parse_rubric(&form.rubric)?,
    })
}

async fn create_assignment(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<AssignmentForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let course_id = path.into_inner();
    let result = match assignment_input(&form) {
        Ok(input) => courses::create_assignment(&state, user, course_id, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(assignment) => Ok(see_other(&format!("/assignments/{}", assignment.id))),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => course_page(&ctx, &state, user, course_id, None, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(default)]
    bom: Option<String>,
}

async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    query: web::Query<ExportQuery>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let bom = query.bom.as_deref().is_some_and(|b| b == "1" || b == "true" || b == "on");
    crate::routes::api::courses::csv_response(&state, user, path.into_inner(), &query.format, bom).await.map_err(|e| ctx.error_page(e))
}

#[derive(Template)]
#[template(path = "assignment.html")]
struct AssignmentPage<'a> {
    page: &'a PageCtx,
    course_id: i64,
    course_code: String,
    assignment: AssignmentView,
    role: CourseRole,
    staff_view: bool,
    manage: bool,
    /// Projects the viewer may submit.
    projects: Vec<String>,
    mine: Option<SubmissionView>,
    submissions: Vec<SubmissionView>,
    visibilities: [&'static str; 3],
    error: Option<String>,
}

impl AssignmentPage<'_> {
    fn time(&self, time: &chrono::DateTime<Utc>) -> (String, String) {
        (iso(time), utc_text(time))
    }

    /// A `datetime-local` value in UTC (the script turns it into the browser's zone).
    fn input_time(&self, time: &chrono::DateTime<Utc>) -> String {
        time.format("%Y-%m-%dT%H:%M").to_string()
    }

    /// (input value, ISO time) of the cutoff, empty without one.
    fn cutoff_input(&self) -> (String, String) {
        self.assignment.cutoff_at.as_ref().map(|t| (self.input_time(t), iso(t))).unwrap_or_default()
    }

    fn number(&self, value: &Option<i32>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }

    fn cutoff(&self) -> Option<(String, String)> {
        self.assignment.cutoff_at.as_ref().map(|t| (iso(t), utc_text(t)))
    }

    fn grade_text(&self, submission: &SubmissionView) -> String {
        submission.grade.map(|g| format!("{g}")).unwrap_or_default()
    }

    fn total_points(&self) -> f64 {
        self.assignment.rubric.iter().map(|item| item.points).sum()
    }
}

async fn assignment_page(ctx: &PageCtx, state: &AppState, user: &User, assignment_id: i64, error: Option<&AppError>) -> PageResult {
    let (assignment, course, role) =
        courses::get_assignment(state, user, assignment_id, CourseAction::View).await.map_err(|e| ctx.error_page(e))?;
    let staff_view = course_allows(role, CourseAction::Grade);
    let submissions =
        if staff_view { courses::submissions(state, user, assignment_id).await.map_err(|e| ctx.error_page(e))?.1 } else { Vec::new() };
    let mine = courses::my_submission(state, user, &assignment).await.map_err(|e| ctx.error_page(e))?;
    let projects = crate::projects::list(state, user).await.map_err(|e| ctx.error_page(e))?.into_iter().map(|p| p.name).collect();
    let page = AssignmentPage {
        page: ctx,
        course_id: course.id,
        course_code: course.code,
        assignment: courses::assignment_view(&assignment),
        role,
        staff_view,
        manage: course_allows(role, CourseAction::Manage),
        projects,
        mine,
        submissions,
        visibilities: ["staff", "class", "public"],
        error: error.map(|e| ctx.error_message(e)),
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn assignment(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<i64>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    assignment_page(&ctx, &state, user, path.into_inner(), None).await
}

#[derive(Deserialize)]
struct SubmitForm {
    csrf_token: String,
    project: String,
}

async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<SubmitForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let assignment_id = path.into_inner();
    match courses::submit(&state, user, assignment_id, &form.project, Utc::now()).await {
        Ok(_) => redirect_with_flash(&ctx, &state, &format!("/assignments/{assignment_id}"), "flash.submitted"),
        Err(error @ AppError::NotFound("assignment")) => Err(ctx.error_page(error)),
        Err(error) => assignment_page(&ctx, &state, user, assignment_id, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct EditForm {
    csrf_token: String,
    title: String,
    #[serde(default)]
    description: String,
    due_at: String,
    #[serde(default)]
    cutoff_at: String,
    #[serde(default)]
    utc_offset_minutes: String,
    #[serde(default)]
    idle_secs: String,
    #[serde(default)]
    max_instances: String,
}

fn edit_input(form: &EditForm) -> Result<courses::AssignmentEditInput, AppError> {
    let offset: i32 = form.utc_offset_minutes.trim().parse().unwrap_or(0);
    Ok(courses::AssignmentEditInput {
        title: form.title.clone(),
        description: form.description.clone(),
        due_at: coursework::local_to_utc(&form.due_at, offset, "due_at")?,
        cutoff_at: match form.cutoff_at.trim() {
            "" => None,
            text => Some(coursework::local_to_utc(text, offset, "cutoff_at")?),
        },
        idle_secs: optional_number(&form.idle_secs, "idle_secs")?,
        max_instances: optional_number(&form.max_instances, "max_instances")?,
    })
}

async fn edit_assignment(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<EditForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let assignment_id = path.into_inner();
    let result = match edit_input(&form) {
        Ok(input) => courses::edit_assignment(&state, user, assignment_id, input, Utc::now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => redirect_with_flash(&ctx, &state, &format!("/assignments/{assignment_id}"), "flash.assignment_saved"),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => assignment_page(&ctx, &state, user, assignment_id, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct AccessForm {
    csrf_token: String,
    visibility: String,
}

async fn set_access(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<AccessForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let assignment_id = path.into_inner();
    match courses::set_access(&state, user, assignment_id, &form.visibility).await {
        Ok(_) => redirect_with_flash(&ctx, &state, &format!("/assignments/{assignment_id}"), "flash.access_saved"),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => assignment_page(&ctx, &state, user, assignment_id, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct ReleaseForm {
    csrf_token: String,
    released: String,
}

async fn release(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<ReleaseForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let assignment_id = path.into_inner();
    courses::set_released(&state, user, assignment_id, form.released == "true", Utc::now()).await.map_err(|e| ctx.error_page(e))?;
    redirect_with_flash(&ctx, &state, &format!("/assignments/{assignment_id}"), "flash.release_saved")
}

#[derive(Template)]
#[template(path = "grading.html")]
struct GradingPage<'a> {
    page: &'a PageCtx,
    assignment: AssignmentView,
    submission: SubmissionView,
    /// (index, item, score text)
    items: Vec<(usize, RubricItem, String)>,
    previous: Option<i64>,
    next: Option<i64>,
    position: usize,
    count: usize,
}

impl GradingPage<'_> {
    fn grade_text(&self) -> String {
        self.submission.grade.map(|g| format!("{g}")).unwrap_or_default()
    }
}

async fn grading(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<i64>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let submission_id = path.into_inner();
    let (assignment, submission, staff) = courses::submission(&state, user, submission_id).await.map_err(|e| ctx.error_page(e))?;
    if !staff {
        // A student's way to their own work is the assignment page.
        return Ok(see_other(&format!("/assignments/{}", assignment.id)));
    }
    let (_, all) = courses::submissions(&state, user, assignment.id).await.map_err(|e| ctx.error_page(e))?;
    let position = all.iter().position(|s| s.id == submission_id).unwrap_or(0);
    let scores = submission.scores.clone().unwrap_or_default();
    let rubric = courses::rubric_of(&assignment);
    let items = rubric
        .into_iter()
        .enumerate()
        .map(|(i, item)| (i, item, scores.get(i).copied().flatten().map(|s| format!("{s}")).unwrap_or_default()))
        .collect();
    let page = GradingPage {
        page: &ctx,
        assignment: courses::assignment_view(&assignment),
        submission,
        items,
        previous: position.checked_sub(1).and_then(|p| all.get(p)).map(|s| s.id),
        next: all.get(position + 1).map(|s| s.id),
        position: position + 1,
        count: all.len(),
    };
    Ok(ctx.ok(&page))
}

fn json_error(ctx: &PageCtx, error: &AppError) -> HttpResponse {
    use actix_web::ResponseError;
    if error.status_code().is_server_error() {
        let _ = error.error_response();
    }
    HttpResponse::build(error.status_code())
        .json(serde_json::json!({ "error": { "code": error.code(), "message": ctx.error_message(error) } }))
}

#[derive(Deserialize)]
struct GradeForm {
    /// One score per rubric item, empty for not scored yet.
    scores: Vec<String>,
    #[serde(default)]
    feedback: String,
}

/// Autosave from the grading page: JSON with the CSRF token in `X-CSRF-Token`.
async fn grade(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    body: web::Json<GradeForm>,
) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = async {
        let user = viewer.user.as_ref().ok_or(AppError::Unauthorized)?;
        check_csrf(&req, req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).unwrap_or(""))?;
        let mut scores = Vec::with_capacity(body.scores.len());
        for text in &body.scores {
            scores.push(match text.trim() {
                "" => None,
                text => Some(text.replace(',', ".").parse::<f64>().map_err(|_| {
                    crate::domain::ValidationError::new("invalid_scores", "scores", format!("`{text}` is not a number")).with("value", text)
                })?),
            });
        }
        courses::grade(&state, user, path.into_inner(), scores, &body.feedback, Utc::now()).await
    }
    .await;
    match result {
        Ok(view) => HttpResponse::Ok().json(serde_json::json!({ "grade": view.grade })),
        Err(error) => json_error(&ctx, &error),
    }
}

/// Wakes this snapshot and the next few (the grading page calls it when it opens).
async fn prewarm(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<i64>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = async {
        let user = viewer.user.as_ref().ok_or(AppError::Unauthorized)?;
        check_csrf(&req, req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).unwrap_or(""))?;
        courses::prewarm(&state, user, path.into_inner(), crate::routes::api::courses::PREWARM_NEXT).await
    }
    .await;
    match result {
        Ok(woken) => HttpResponse::Ok().json(serde_json::json!({ "waking": woken })),
        Err(error) => json_error(&ctx, &error),
    }
}
