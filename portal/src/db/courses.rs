//! Queries on `courses`, `course_staff`, `enrolments`, `course_invitations`, `assignments` and
//! `submissions`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::{Assignment, Course, CourseInvitation, Enrolment, Submission, User};
use super::schema::{assignments, course_invitations, course_staff, courses, enrolments, submissions, users};
use super::DbError;

/// Creates a course with `professor_id` as its first professor, in one transaction.
pub fn insert(conn: &mut PgConnection, code: &str, title: &str, term: &str, section: &str, professor_id: i64) -> Result<Course, DbError> {
    conn.transaction(|conn| {
        let course: Course = diesel::insert_into(courses::table)
            .values((
                courses::code.eq(code),
                courses::title.eq(title),
                courses::term.eq(term),
                courses::section.eq(section),
                courses::created_by.eq(professor_id),
            ))
            .returning(Course::as_returning())
            .get_result(conn)?;
        add_staff(conn, course.id, professor_id, "professor")?;
        Ok(course)
    })
}

pub fn find(conn: &mut PgConnection, course_id: i64) -> Result<Option<Course>, DbError> {
    Ok(courses::table.find(course_id).select(Course::as_select()).first(conn).optional()?)
}

pub fn staff_role(conn: &mut PgConnection, course_id: i64, user_id: i64) -> Result<Option<String>, DbError> {
    Ok(course_staff::table.find((course_id, user_id)).select(course_staff::role).first(conn).optional()?)
}

pub fn is_enrolled(conn: &mut PgConnection, course_id: i64, user_id: i64) -> Result<bool, DbError> {
    Ok(enrolments::table.find((course_id, user_id)).count().get_result::<i64>(conn)? > 0)
}

/// Courses where the user teaches (role `professor`/`ta`) or studies (`student`), by term and code.
pub fn for_user(conn: &mut PgConnection, user_id: i64) -> Result<Vec<(Course, String)>, DbError> {
    let mut out: Vec<(Course, String)> = course_staff::table
        .inner_join(courses::table)
        .filter(course_staff::user_id.eq(user_id))
        .select((Course::as_select(), course_staff::role))
        .load(conn)?;
    let studying: Vec<Course> =
        enrolments::table.inner_join(courses::table).filter(enrolments::user_id.eq(user_id)).select(Course::as_select()).load(conn)?;
    out.extend(studying.into_iter().map(|c| (c, "student".to_owned())));
    out.sort_by(|a, b| b.0.term.cmp(&a.0.term).then_with(|| a.0.code.cmp(&b.0.code)));
    Ok(out)
}

pub fn add_staff(conn: &mut PgConnection, course_id: i64, user_id: i64, role: &str) -> Result<(), DbError> {
    diesel::insert_into(course_staff::table)
        .values((course_staff::course_id.eq(course_id), course_staff::user_id.eq(user_id), course_staff::role.eq(role)))
        .on_conflict((course_staff::course_id, course_staff::user_id))
        .do_update()
        .set(course_staff::role.eq(role))
        .execute(conn)?;
    Ok(())
}

pub fn staff(conn: &mut PgConnection, course_id: i64) -> Result<Vec<(String, User)>, DbError> {
    Ok(course_staff::table
        .inner_join(users::table)
        .filter(course_staff::course_id.eq(course_id))
        .order((course_staff::role.asc(), users::email.asc()))
        .select((course_staff::role, User::as_select()))
        .load(conn)?)
}

pub fn staff_ids(conn: &mut PgConnection, course_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(course_staff::table.filter(course_staff::course_id.eq(course_id)).select(course_staff::user_id).load(conn)?)
}

pub fn student_ids(conn: &mut PgConnection, course_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(enrolments::table.filter(enrolments::course_id.eq(course_id)).select(enrolments::user_id).load(conn)?)
}

/// Students with their accounts, by section and roster name.
pub fn students(conn: &mut PgConnection, course_id: i64) -> Result<Vec<(Enrolment, User)>, DbError> {
    Ok(enrolments::table
        .inner_join(users::table)
        .filter(enrolments::course_id.eq(course_id))
        .order((enrolments::section.asc(), enrolments::roster_name.asc(), users::email.asc()))
        .select((Enrolment::as_select(), User::as_select()))
        .load(conn)?)
}

pub fn invitations(conn: &mut PgConnection, course_id: i64) -> Result<Vec<CourseInvitation>, DbError> {
    Ok(course_invitations::table
        .filter(course_invitations::course_id.eq(course_id))
        .order(course_invitations::email.asc())
        .select(CourseInvitation::as_select())
        .load(conn)?)
}

/// Verified accounts whose address is one of `emails` or whose student number is one of
/// `numbers`. A student number shared by two accounts matches neither (numbers are typed in by
/// users at sign-up, so a clash means one of them is wrong).
pub fn known_accounts(
    conn: &mut PgConnection,
    emails: &[String],
    numbers: &[String],
) -> Result<Vec<crate::domain::roster::KnownAccount>, DbError> {
    let rows: Vec<(i64, String, Option<String>)> = users::table
        .filter(users::email_verified_at.is_not_null())
        .filter(users::email.eq_any(emails).or(users::student_number.eq_any(numbers)))
        .select((users::id, users::email, users::student_number))
        .load(conn)?;
    let mut accounts: Vec<crate::domain::roster::KnownAccount> = rows
        .into_iter()
        .map(|(user_id, email, student_number)| crate::domain::roster::KnownAccount { user_id, email, student_number })
        .collect();
    let clashing: Vec<String> = accounts
        .iter()
        .filter_map(|a| a.student_number.clone())
        .filter(|n| accounts.iter().filter(|b| b.student_number.as_deref() == Some(n)).count() > 1)
        .collect();
    for account in &mut accounts {
        if account.student_number.as_ref().is_some_and(|n| clashing.contains(n)) {
            account.student_number = None;
        }
    }
    Ok(accounts)
}

/// What a roster says about one person.
pub struct RosterEntry<'a> {
    pub name: &'a str,
    pub student_number: &'a str,
    pub section: &'a str,
}

/// Enrols (or updates the roster fields of) a student; returns whether the enrolment is new.
pub fn upsert_enrolment(conn: &mut PgConnection, course_id: i64, user_id: i64, entry: &RosterEntry) -> Result<bool, DbError> {
    let existed = is_enrolled(conn, course_id, user_id)?;
    diesel::insert_into(enrolments::table)
        .values((
            enrolments::course_id.eq(course_id),
            enrolments::user_id.eq(user_id),
            enrolments::roster_name.eq(entry.name),
            enrolments::student_number.eq(entry.student_number),
            enrolments::section.eq(entry.section),
        ))
        .on_conflict((enrolments::course_id, enrolments::user_id))
        .do_update()
        .set((
            enrolments::roster_name.eq(entry.name),
            enrolments::student_number.eq(entry.student_number),
            enrolments::section.eq(entry.section),
            enrolments::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(!existed)
}

/// Invites an address (or updates the invitation's roster fields); returns whether it is new.
pub fn upsert_invitation(
    conn: &mut PgConnection,
    course_id: i64,
    email: &str,
    entry: &RosterEntry,
    invited_by: i64,
) -> Result<bool, DbError> {
    let existed = course_invitations::table
        .filter(course_invitations::course_id.eq(course_id))
        .filter(course_invitations::email.eq(email))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    diesel::insert_into(course_invitations::table)
        .values((
            course_invitations::course_id.eq(course_id),
            course_invitations::email.eq(email),
            course_invitations::roster_name.eq(entry.name),
            course_invitations::student_number.eq(entry.student_number),
            course_invitations::section.eq(entry.section),
            course_invitations::invited_by.eq(invited_by),
        ))
        .on_conflict((course_invitations::course_id, course_invitations::email))
        .do_update()
        .set((
            course_invitations::roster_name.eq(entry.name),
            course_invitations::student_number.eq(entry.student_number),
            course_invitations::section.eq(entry.section),
        ))
        .execute(conn)?;
    Ok(!existed)
}

/// Turns every course invitation for `email` into an enrolment of `user_id`; returns the courses.
pub fn accept_invitations(conn: &mut PgConnection, email: &str, user_id: i64) -> Result<Vec<i64>, DbError> {
    conn.transaction(|conn| {
        let taken: Vec<CourseInvitation> = diesel::delete(course_invitations::table.filter(course_invitations::email.eq(email)))
            .returning(CourseInvitation::as_returning())
            .get_results(conn)?;
        for invitation in &taken {
            let entry =
                RosterEntry { name: &invitation.roster_name, student_number: &invitation.student_number, section: &invitation.section };
            upsert_enrolment(conn, invitation.course_id, user_id, &entry)?;
        }
        Ok(taken.into_iter().map(|i| i.course_id).collect())
    })
}

/// An assignment's fields as written.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = assignments, treat_none_as_null = true)]
pub struct AssignmentFields {
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    pub kind: String,
    pub template: Option<String>,
    pub visibility: String,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
    pub rubric: serde_json::Value,
}

pub fn insert_assignment(conn: &mut PgConnection, course_id: i64, fields: &AssignmentFields) -> Result<Assignment, DbError> {
    Ok(diesel::insert_into(assignments::table)
        .values((assignments::course_id.eq(course_id), fields))
        .returning(Assignment::as_returning())
        .get_result(conn)?)
}

pub fn find_assignment(conn: &mut PgConnection, assignment_id: i64) -> Result<Option<Assignment>, DbError> {
    Ok(assignments::table.find(assignment_id).select(Assignment::as_select()).first(conn).optional()?)
}

pub fn assignments(conn: &mut PgConnection, course_id: i64) -> Result<Vec<Assignment>, DbError> {
    Ok(assignments::table
        .filter(assignments::course_id.eq(course_id))
        .order((assignments::due_at.asc(), assignments::id.asc()))
        .select(Assignment::as_select())
        .load(conn)?)
}

/// The fields an assignment's edit changes; a deadline moved to after `now` is swept again (one
/// moved into the past is swept by the next sweep, if it was not already).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = assignments, treat_none_as_null = true)]
pub struct AssignmentEdit {
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
}

pub fn edit_assignment(
    conn: &mut PgConnection,
    assignment_id: i64,
    edit: &AssignmentEdit,
    now: DateTime<Utc>,
) -> Result<Assignment, DbError> {
    conn.transaction(|conn| {
        if edit.due_at >= now {
            diesel::update(assignments::table.find(assignment_id))
                .set(assignments::deadline_swept_at.eq(None::<DateTime<Utc>>))
                .execute(conn)?;
        }
        Ok(diesel::update(assignments::table.find(assignment_id)).set(edit).returning(Assignment::as_returning()).get_result(conn)?)
    })
}

pub fn set_visibility(conn: &mut PgConnection, assignment_id: i64, visibility: &str) -> Result<Assignment, DbError> {
    Ok(diesel::update(assignments::table.find(assignment_id))
        .set(assignments::visibility.eq(visibility))
        .returning(Assignment::as_returning())
        .get_result(conn)?)
}

pub fn set_released(conn: &mut PgConnection, assignment_id: i64, at: Option<DateTime<Utc>>) -> Result<Assignment, DbError> {
    Ok(diesel::update(assignments::table.find(assignment_id))
        .set(assignments::grades_released_at.eq(at))
        .returning(Assignment::as_returning())
        .get_result(conn)?)
}

/// Assignments whose deadline is at or before `now` and that the sweep has not handled yet.
pub fn unswept(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Assignment>, DbError> {
    Ok(assignments::table
        .filter(assignments::deadline_swept_at.is_null())
        .filter(assignments::due_at.lt(now))
        .select(Assignment::as_select())
        .load(conn)?)
}

pub fn mark_swept(conn: &mut PgConnection, assignment_id: i64, now: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(assignments::table.find(assignment_id)).set(assignments::deadline_swept_at.eq(now)).execute(conn)?;
    Ok(())
}

/// A pin of a revision, as `pin_submission` writes it.
pub struct NewPin {
    pub assignment_id: i64,
    pub submitter_key: String,
    pub user_id: i64,
    pub group_id: Option<i64>,
    pub project_id: i64,
    pub project_name: String,
    pub app_name: String,
    pub revision_id: i64,
    pub revision_number: i32,
    pub artifact_id: String,
    pub template: String,
    pub plan: serde_json::Value,
    pub sealed_env: Vec<u8>,
    pub snapshot_dir: String,
    pub run_uid: i32,
    pub submitted_at: DateTime<Utc>,
    pub late_secs: i64,
}

/// Inserts the submission, or replaces the pinned revision of the submitter's earlier one (its
/// grade stays). Returns the row and, on replacement, the earlier row.
pub fn pin_submission(conn: &mut PgConnection, pin: &NewPin) -> Result<(Submission, Option<Submission>), DbError> {
    conn.transaction(|conn| {
        let earlier: Option<Submission> = submissions::table
            .filter(submissions::assignment_id.eq(pin.assignment_id))
            .filter(submissions::submitter_key.eq(&pin.submitter_key))
            .select(Submission::as_select())
            .for_update()
            .first(conn)
            .optional()?;
        let values = (
            submissions::user_id.eq(pin.user_id),
            submissions::group_id.eq(pin.group_id),
            submissions::project_id.eq(pin.project_id),
            submissions::project_name.eq(&pin.project_name),
            submissions::app_name.eq(&pin.app_name),
            submissions::revision_id.eq(pin.revision_id),
            submissions::revision_number.eq(pin.revision_number),
            submissions::artifact_id.eq(&pin.artifact_id),
            submissions::template.eq(&pin.template),
            submissions::plan.eq(&pin.plan),
            submissions::sealed_env.eq(&pin.sealed_env),
            submissions::snapshot_dir.eq(&pin.snapshot_dir),
            submissions::run_uid.eq(pin.run_uid),
            submissions::pinned_reason.eq("submit"),
            submissions::pinned_at.eq(pin.submitted_at),
            submissions::submitted_at.eq(pin.submitted_at),
            submissions::late_secs.eq(pin.late_secs),
        );
        match earlier {
            Some(earlier) => {
                let row = diesel::update(submissions::table.find(earlier.id))
                    .set((values, submissions::pin_number.eq(earlier.pin_number + 1)))
                    .returning(Submission::as_returning())
                    .get_result(conn)?;
                Ok((row, Some(earlier)))
            }
            None => {
                let row = diesel::insert_into(submissions::table)
                    .values((values, submissions::assignment_id.eq(pin.assignment_id), submissions::submitter_key.eq(&pin.submitter_key)))
                    .returning(Submission::as_returning())
                    .get_result(conn)?;
                Ok((row, None))
            }
        }
    })
}

/// Pins a newer revision of the same project at the deadline.
pub fn repin_at_deadline(
    conn: &mut PgConnection,
    submission_id: i64,
    revision: &super::models::Revision,
    plan: serde_json::Value,
    sealed_env: Vec<u8>,
    snapshot_dir: &str,
    now: DateTime<Utc>,
) -> Result<Submission, DbError> {
    Ok(diesel::update(submissions::table.find(submission_id))
        .set((
            submissions::revision_id.eq(revision.id),
            submissions::revision_number.eq(revision.number),
            submissions::artifact_id.eq(&revision.artifact_id),
            submissions::template.eq(&revision.template),
            submissions::plan.eq(plan),
            submissions::sealed_env.eq(sealed_env),
            submissions::snapshot_dir.eq(snapshot_dir),
            submissions::pin_number.eq(submissions::pin_number + 1),
            submissions::pinned_reason.eq("deadline"),
            submissions::pinned_at.eq(now),
        ))
        .returning(Submission::as_returning())
        .get_result(conn)?)
}

pub fn find_submission(conn: &mut PgConnection, submission_id: i64) -> Result<Option<Submission>, DbError> {
    Ok(submissions::table.find(submission_id).select(Submission::as_select()).first(conn).optional()?)
}

pub fn submissions(conn: &mut PgConnection, assignment_id: i64) -> Result<Vec<Submission>, DbError> {
    Ok(submissions::table
        .filter(submissions::assignment_id.eq(assignment_id))
        .order(submissions::id.asc())
        .select(Submission::as_select())
        .load(conn)?)
}

pub fn submission_for(conn: &mut PgConnection, assignment_id: i64, keys: &[String]) -> Result<Option<Submission>, DbError> {
    Ok(submissions::table
        .filter(submissions::assignment_id.eq(assignment_id))
        .filter(submissions::submitter_key.eq_any(keys))
        .select(Submission::as_select())
        .first(conn)
        .optional()?)
}

pub fn all_submissions(conn: &mut PgConnection) -> Result<Vec<Submission>, DbError> {
    Ok(submissions::table.select(Submission::as_select()).load(conn)?)
}

/// Staff of every course that has a submission of `project_id`.
pub fn staff_of_submitted_project(conn: &mut PgConnection, project_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(submissions::table
        .inner_join(assignments::table)
        .inner_join(course_staff::table.on(course_staff::course_id.eq(assignments::course_id)))
        .filter(submissions::project_id.eq(project_id))
        .select(course_staff::user_id)
        .distinct()
        .load(conn)?)
}

pub fn set_grade(
    conn: &mut PgConnection,
    submission_id: i64,
    scores: serde_json::Value,
    grade: f64,
    feedback: &str,
    graded_by: i64,
    now: DateTime<Utc>,
) -> Result<Submission, DbError> {
    Ok(diesel::update(submissions::table.find(submission_id))
        .set((
            submissions::scores.eq(scores),
            submissions::grade.eq(grade),
            submissions::feedback.eq(feedback),
            submissions::graded_by.eq(graded_by),
            submissions::graded_at.eq(now),
        ))
        .returning(Submission::as_returning())
        .get_result(conn)?)
}
