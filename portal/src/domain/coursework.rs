//! Assignment rules that need no database: the submission window (on time, late by how much,
//! closed), who may open a submission's snapshot, rubric scores, and the conversion of a time
//! typed in a browser's own zone to UTC.
//!
//! ```text
//!            due_at                      cutoff_at
//!   on time ───┤ late (marked with how late) ├── closed
//! ```
//! Both ends are inclusive: a submission at exactly `due_at` is on time, at exactly `cutoff_at` it
//! is late but accepted. Without a cutoff, late submissions are accepted at any time. Pure: every
//! function takes `now`; the tests below sit on the boundaries.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::ValidationError;

/// An assignment's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
}

/// Where `now` falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    OnTime,
    Late { by: Duration },
    Closed,
}

impl Deadline {
    /// A cutoff before the due time makes no sense and is refused.
    pub fn new(due_at: DateTime<Utc>, cutoff_at: Option<DateTime<Utc>>) -> Result<Deadline, ValidationError> {
        if let Some(cutoff) = cutoff_at {
            if cutoff < due_at {
                return Err(ValidationError::new(
                    "cutoff_before_due",
                    "cutoff_at",
                    format!("the late cutoff {cutoff} is before the due time {due_at}"),
                ));
            }
        }
        Ok(Deadline { due_at, cutoff_at })
    }

    pub fn window(&self, now: DateTime<Utc>) -> Window {
        if now <= self.due_at {
            return Window::OnTime;
        }
        match self.cutoff_at {
            Some(cutoff) if now > cutoff => Window::Closed,
            _ => Window::Late { by: now - self.due_at },
        }
    }

    /// Has the deadline passed (for "visible to the class after the deadline")?
    pub fn passed(&self, now: DateTime<Utc>) -> bool {
        now > self.due_at
    }
}

/// "2 d 3 h 5 min", "45 s": how late, in words short enough for a table cell.
pub fn format_lateness(by: Duration) -> String {
    let secs = by.num_seconds().max(0);
    let (days, hours, minutes) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    let parts: Vec<String> =
        [(days, "d"), (hours, "h"), (minutes, "min")].iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n} {unit}")).collect();
    if parts.is_empty() {
        format!("{secs} s")
    } else {
        parts.join(" ")
    }
}

/// Who may open the submissions of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionVisibility {
    /// Course staff and the submitters.
    Staff,
    /// As `Staff` until the deadline; then every student of the course too.
    Class,
    /// As `Staff` until the deadline; then anyone.
    Public,
}

impl SubmissionVisibility {
    pub const ALL: [SubmissionVisibility; 3] = [SubmissionVisibility::Staff, SubmissionVisibility::Class, SubmissionVisibility::Public];

    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionVisibility::Staff => "staff",
            SubmissionVisibility::Class => "class",
            SubmissionVisibility::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Result<SubmissionVisibility, ValidationError> {
        Self::ALL.into_iter().find(|v| v.as_str() == text.trim()).ok_or_else(|| {
            ValidationError::new(
                "unknown_submission_visibility",
                "visibility",
                format!("`{}` is not a submission visibility; choose staff, class or public", text.trim()),
            )
            .with("value", text.trim())
        })
    }
}

/// Who may open one snapshot: anyone (`None`), or exactly these user ids.
pub fn snapshot_viewers(
    visibility: SubmissionVisibility,
    deadline_passed: bool,
    staff: &[i64],
    submitters: &[i64],
    class: &[i64],
) -> Option<Vec<i64>> {
    let mut users: Vec<i64> = staff.iter().chain(submitters).copied().collect();
    match (visibility, deadline_passed) {
        (SubmissionVisibility::Public, true) => return None,
        (SubmissionVisibility::Class, true) => users.extend_from_slice(class),
        _ => {}
    }
    users.sort_unstable();
    users.dedup();
    Some(users)
}

/// One rubric item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RubricItem {
    pub name: String,
    pub points: f64,
}

/// Checks a rubric: 1 to 50 items, non-empty names, points between 0 and 1000.
pub fn check_rubric(items: &[RubricItem]) -> Result<(), ValidationError> {
    if items.is_empty() || items.len() > 50 {
        return Err(ValidationError::new("invalid_rubric", "rubric", format!("a rubric has 1 to 50 items, not {}", items.len())));
    }
    for item in items {
        if item.name.trim().is_empty() || item.name.len() > 200 {
            return Err(ValidationError::new("invalid_rubric", "rubric", "each rubric item needs a name of at most 200 bytes"));
        }
        if !(item.points.is_finite() && (0.0..=1000.0).contains(&item.points)) {
            return Err(ValidationError::new(
                "invalid_rubric",
                "rubric",
                format!("`{}` is worth {} points; use 0 to 1000", item.name, item.points),
            ));
        }
    }
    Ok(())
}

/// Checks scores against the rubric (one optional score per item, within 0..=points) and gives
/// the total of the scores given.
pub fn total(rubric: &[RubricItem], scores: &[Option<f64>]) -> Result<f64, ValidationError> {
    if scores.len() != rubric.len() {
        return Err(ValidationError::new(
            "invalid_scores",
            "scores",
            format!("the rubric has {} items but {} scores were given", rubric.len(), scores.len()),
        ));
    }
    let mut sum = 0.0;
    for (item, score) in rubric.iter().zip(scores) {
        if let Some(score) = score {
            if !(score.is_finite() && (0.0..=item.points).contains(score)) {
                return Err(ValidationError::new(
                    "invalid_scores",
                    "scores",
                    format!("{score} is not a score for `{}` (0 to {})", item.name, item.points),
                ));
            }
            sum += score;
        }
    }
    Ok(sum)
}

/// A `datetime-local` value (`2026-12-24T23:59`) typed in a zone `utc_offset_minutes` east of
/// UTC (Korea: 540), as UTC. The page's script fills the offset from the browser's `Intl` zone.
pub fn local_to_utc(text: &str, utc_offset_minutes: i32, field: &'static str) -> Result<DateTime<Utc>, ValidationError> {
    let text = text.trim();
    let invalid = || ValidationError::new("invalid_time", field, format!("`{text}` is not a date and time")).with("value", text);
    if !(-14 * 60..=14 * 60).contains(&utc_offset_minutes) {
        return Err(ValidationError::new("invalid_time", field, format!("{utc_offset_minutes} minutes is not a time-zone offset")));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| invalid())?;
    Ok((naive - Duration::minutes(i64::from(utc_offset_minutes))).and_utc())
}

/// Parses an RFC 3339 time (the API's form).
pub fn parse_rfc3339(text: &str, field: &'static str) -> Result<DateTime<Utc>, ValidationError> {
    DateTime::parse_from_rfc3339(text.trim()).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        ValidationError::new("invalid_time", field, format!("`{}` is not an RFC 3339 time such as 2026-12-24T23:59:00+09:00", text.trim()))
            .with("value", text.trim())
    })
}

/// A user's standing in one course. Platform admins act as professors of every course.
///
/// ```text
///                        professor  ta  student  none
/// view course, submit        x       x     x
/// see submissions, grade     x       x
/// export grades              x       x
/// roster, staff, assignments,
/// access, release grades     x
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CourseRole {
    None,
    Student,
    Ta,
    Professor,
}

impl CourseRole {
    pub fn parse_staff(text: &str) -> Option<CourseRole> {
        match text {
            "professor" => Some(CourseRole::Professor),
            "ta" => Some(CourseRole::Ta),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CourseRole::None => "none",
            CourseRole::Student => "student",
            CourseRole::Ta => "ta",
            CourseRole::Professor => "professor",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseAction {
    View,
    Grade,
    Manage,
}

/// The table in `CourseRole`'s doc.
pub fn course_allows(role: CourseRole, action: CourseAction) -> bool {
    let needed = match action {
        CourseAction::View => CourseRole::Student,
        CourseAction::Grade => CourseRole::Ta,
        CourseAction::Manage => CourseRole::Professor,
    };
    role >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_roles_allow_what_the_table_says() {
        let row = |role| [CourseAction::View, CourseAction::Grade, CourseAction::Manage].map(|action| course_allows(role, action));
        assert_eq!(row(CourseRole::Professor), [true, true, true]);
        assert_eq!(row(CourseRole::Ta), [true, true, false]);
        assert_eq!(row(CourseRole::Student), [true, false, false]);
        assert_eq!(row(CourseRole::None), [false, false, false]);
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_rfc3339(text, "t").expect("test time")
    }

    fn check(deadline: Deadline, now: &str, expected: Window) {
        assert_eq!(deadline.window(at(now)), expected, "at {now}");
    }

    #[test]
    fn the_window_is_inclusive_at_due_and_at_cutoff() {
        let deadline = Deadline::new(at("2026-12-24T23:59:00+09:00"), Some(at("2026-12-25T23:59:00+09:00"))).expect("valid");
        check(deadline, "2026-12-24T23:58:59+09:00", Window::OnTime);
        check(deadline, "2026-12-24T23:59:00+09:00", Window::OnTime);
        check(deadline, "2026-12-24T23:59:01+09:00", Window::Late { by: Duration::seconds(1) });
        check(deadline, "2026-12-25T23:59:00+09:00", Window::Late { by: Duration::days(1) });
        check(deadline, "2026-12-25T23:59:01+09:00", Window::Closed);
    }

    #[test]
    fn without_a_cutoff_late_is_always_accepted_and_a_cutoff_equal_to_due_allows_no_lateness() {
        let open = Deadline::new(at("2026-12-24T00:00:00Z"), None).expect("valid");
        check(open, "2027-12-24T00:00:00Z", Window::Late { by: Duration::days(365) });
        let strict = Deadline::new(at("2026-12-24T00:00:00Z"), Some(at("2026-12-24T00:00:00Z"))).expect("valid");
        check(strict, "2026-12-24T00:00:00Z", Window::OnTime);
        check(strict, "2026-12-24T00:00:01Z", Window::Closed);
        assert_eq!(
            Deadline::new(at("2026-12-24T00:00:00Z"), Some(at("2026-12-23T00:00:00Z"))).map_err(|e| e.code),
            Err("cutoff_before_due")
        );
    }

    #[test]
    fn lateness_reads_in_days_hours_minutes() {
        assert_eq!(format_lateness(Duration::seconds(45)), "45 s");
        assert_eq!(format_lateness(Duration::seconds(2 * 86_400 + 3 * 3600 + 5 * 60 + 9)), "2 d 3 h 5 min");
        assert_eq!(format_lateness(Duration::seconds(3600)), "1 h");
    }

    #[test]
    fn snapshot_viewers_open_up_only_after_the_deadline() {
        let (staff, submitters, class) = ([1], [5], [5, 6, 7]);
        let viewers = |v, passed| snapshot_viewers(v, passed, &staff, &submitters, &class);
        assert_eq!(viewers(SubmissionVisibility::Staff, true), Some(vec![1, 5]));
        assert_eq!(viewers(SubmissionVisibility::Class, false), Some(vec![1, 5]));
        assert_eq!(viewers(SubmissionVisibility::Class, true), Some(vec![1, 5, 6, 7]));
        assert_eq!(viewers(SubmissionVisibility::Public, false), Some(vec![1, 5]));
        assert_eq!(viewers(SubmissionVisibility::Public, true), None);
    }

    #[test]
    fn scores_stay_within_the_rubric() {
        let rubric = vec![RubricItem { name: "works".into(), points: 6.0 }, RubricItem { name: "style".into(), points: 4.0 }];
        assert_eq!(total(&rubric, &[Some(6.0), Some(2.5)]), Ok(8.5));
        assert_eq!(total(&rubric, &[Some(6.0), None]), Ok(6.0));
        assert_eq!(total(&rubric, &[Some(6.5), None]).map_err(|e| e.code), Err("invalid_scores"));
        assert_eq!(total(&rubric, &[Some(-1.0), None]).map_err(|e| e.code), Err("invalid_scores"));
        assert_eq!(total(&rubric, &[Some(1.0)]).map_err(|e| e.code), Err("invalid_scores"));
        assert_eq!(check_rubric(&[]).map_err(|e| e.code), Err("invalid_rubric"));
        assert_eq!(check_rubric(&rubric), Ok(()));
    }

    #[test]
    fn a_time_typed_in_seoul_is_stored_in_utc() {
        assert_eq!(local_to_utc("2026-12-24T23:59", 540, "due_at"), Ok(at("2026-12-24T14:59:00Z")));
        assert_eq!(local_to_utc("2026-12-24T23:59", -300, "due_at"), Ok(at("2026-12-25T04:59:00Z")));
        assert_eq!(local_to_utc("24.12.2026", 0, "due_at").map_err(|e| e.code), Err("invalid_time"));
        assert_eq!(local_to_utc("2026-12-24T23:59", 24 * 60, "due_at").map_err(|e| e.code), Err("invalid_time"));
    }
}
