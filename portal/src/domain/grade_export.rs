//! Grade exports as CSV, shaped for the systems professors upload them to.
//!
//! - `Canvas`: `Student, ID, SIS User ID, SIS Login ID, Section`, then one column per assignment
//!   named `Title (id)`, which is how Canvas's gradebook import recognises an assignment.
//! - `Moodle`: `Email address` (the identifier to map on import), then per assignment one grade
//!   column (`Title`) and one feedback column (`Title (feedback)`).
//! - `Plain`: name, e-mail, student number, section, then per assignment grade and feedback.
//!
//! Every cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return) gets a leading `'`
//! so a spreadsheet shows it as text instead of running it as a formula; numbers the export writes
//! itself are never negative, so no grade is touched by this. `bom` puts a UTF-8 byte-order mark
//! first, which Excel needs to read Korean names as UTF-8. Pure: rows in, bytes out.

/// The export's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Canvas,
    Moodle,
    Plain,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text.trim() {
            "canvas" => Some(ExportFormat::Canvas),
            "moodle" => Some(ExportFormat::Moodle),
            "plain" | "" => Some(ExportFormat::Plain),
            _ => None,
        }
    }
}

/// One assignment's column(s).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportAssignment {
    pub id: i64,
    pub title: String,
}

/// One student's line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportStudent {
    pub name: String,
    pub email: String,
    pub student_number: String,
    pub section: String,
    /// Per assignment, in the order of the assignments: (grade, feedback), if graded.
    pub grades: Vec<Option<(f64, String)>>,
}

/// Defuses a cell a spreadsheet would read as a formula.
pub fn escape_cell(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

fn number(value: f64) -> String {
    // 8.5 → "8.5", 9.0 → "9": what a person would type.
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn export(format: ExportFormat, assignments: &[ExportAssignment], students: &[ExportStudent], bom: bool) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut header: Vec<String> = match format {
        ExportFormat::Canvas => ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"].map(String::from).to_vec(),
        ExportFormat::Moodle => vec!["Email address".to_owned()],
        ExportFormat::Plain => ["Name", "Email", "Student number", "Section"].map(String::from).to_vec(),
    };
    for assignment in assignments {
        match format {
            ExportFormat::Canvas => header.push(format!("{} ({})", assignment.title, assignment.id)),
            ExportFormat::Moodle | ExportFormat::Plain => {
                header.push(assignment.title.clone());
                header.push(format!("{} (feedback)", assignment.title));
            }
        }
    }
    write_row(&mut writer, &header);
    for student in students {
        let mut row: Vec<String> = match format {
            // Canvas's own ID is unknown to Slipway; Canvas matches on SIS User ID or login instead.
            ExportFormat::Canvas => {
                vec![student.name.clone(), String::new(), student.student_number.clone(), student.email.clone(), student.section.clone()]
            }
            ExportFormat::Moodle => vec![student.email.clone()],
            ExportFormat::Plain => {
                vec![student.name.clone(), student.email.clone(), student.student_number.clone(), student.section.clone()]
            }
        };
        for grade in &student.grades {
            let (score, feedback) = match grade {
                Some((score, feedback)) => (number(*score), feedback.clone()),
                None => (String::new(), String::new()),
            };
            row.push(score);
            if format != ExportFormat::Canvas {
                row.push(feedback);
            }
        }
        write_row(&mut writer, &row);
    }
    let body = writer.into_inner().expect("writing to a Vec cannot fail");
    if bom {
        [b"\xEF\xBB\xBF".as_slice(), &body].concat()
    } else {
        body
    }
}

fn write_row(writer: &mut csv::Writer<Vec<u8>>, cells: &[String]) {
    writer.write_record(cells.iter().map(|c| escape_cell(c))).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
        let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).expect("utf-8");
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
            .collect()
    }

    fn sample() -> (Vec<ExportAssignment>, Vec<ExportStudent>) {
        let assignments = vec![ExportAssignment { id: 7, title: "Web app".into() }, ExportAssignment { id: 9, title: "=HYPERLINK".into() }];
        let students = vec![
            ExportStudent {
                name: "김민지".into(),
                email: "minji@pusan.ac.kr".into(),
                student_number: "202412345".into(),
                section: "01".into(),
                grades: vec![Some((8.5, "좋아요, \"great\"".into())), None],
            },
            ExportStudent {
                name: "@evil".into(),
                email: "x@pusan.ac.kr".into(),
                student_number: "".into(),
                section: "".into(),
                grades: vec![Some((10.0, "-1 for style".into())), Some((0.0, String::new()))],
            },
        ];
        (assignments, students)
    }

    #[test]
    fn canvas_has_its_five_columns_then_title_and_id() {
        let (assignments, students) = sample();
        let rows = read_back(&export(ExportFormat::Canvas, &assignments, &students, false));
        assert_eq!(rows[0], ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Web app (7)", "'=HYPERLINK (9)"]);
        assert_eq!(rows[1], ["김민지", "", "202412345", "minji@pusan.ac.kr", "01", "8.5", ""]);
        assert_eq!(rows[2], ["'@evil", "", "", "x@pusan.ac.kr", "", "10", "0"]);
    }

    #[test]
    fn moodle_keys_on_email_with_grade_and_feedback_columns() {
        let (assignments, students) = sample();
        let rows = read_back(&export(ExportFormat::Moodle, &assignments, &students, false));
        assert_eq!(rows[0], ["Email address", "Web app", "Web app (feedback)", "'=HYPERLINK", "'=HYPERLINK (feedback)"]);
        assert_eq!(rows[1], ["minji@pusan.ac.kr", "8.5", "좋아요, \"great\"", "", ""]);
        assert_eq!(rows[2], ["x@pusan.ac.kr", "10", "'-1 for style", "0", ""]);
    }

    #[test]
    fn plain_has_names_and_the_bom_only_when_asked() {
        let (assignments, students) = sample();
        let with_bom = export(ExportFormat::Plain, &assignments, &students, true);
        assert!(with_bom.starts_with(b"\xEF\xBB\xBFName,"));
        assert!(export(ExportFormat::Plain, &assignments, &students, false).starts_with(b"Name,"));
        let rows = read_back(&with_bom);
        assert_eq!(rows[0][..5], ["Name", "Email", "Student number", "Section", "Web app"]);
        assert_eq!(rows[1][..6], ["김민지", "minji@pusan.ac.kr", "202412345", "01", "8.5", "좋아요, \"great\""]);
    }

    #[test]
    fn formula_starters_are_escaped_and_nothing_else() {
        for (cell, expected) in
            [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM", "'@SUM"), ("\tx", "'\tx"), ("a=b", "a=b"), ("", "")]
        {
            assert_eq!(escape_cell(cell), expected, "{cell:?}");
        }
    }
}
