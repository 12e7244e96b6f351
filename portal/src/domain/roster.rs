//! Roster files from learning-management systems, read into rows and classified against the
//! accounts that exist. It does not touch the database: the adapter (`courses::preview_roster`)
//! loads the accounts that could match and passes them in.
//!
//! Steps:
//! 1. `decode`: UTF-8 (a leading BOM is dropped); bytes that are not UTF-8 are read as CP949
//!    (EUC-KR and its Microsoft extension), which is what Korean Excel writes for "CSV".
//! 2. `parse`: the header row decides the format. Canvas's gradebook export (`Student`, `ID`,
//!    `SIS User ID`, `SIS Login ID`, `Section`, then one column per assignment; its second row is
//!    `Points Possible`, which is skipped), Moodle's export (`First name`, `Surname`,
//!    `ID number`, `Email address`), or any other CSV with a `ColumnMapping` the professor chose.
//!    Without a mapping an unknown file is `RosterError::NeedsMapping` with its headers.
//! 3. `classify`: each row either matches an account (by e-mail, then by student number), will
//!    get an invitation (a valid e-mail without an account), or is invalid with a reason (bad
//!    e-mail, missing field, a duplicate of an earlier row, a domain that may not sign up).
//!
//! Canvas exports carry no e-mail column: `SIS Login ID` counts as the e-mail when it is one,
//! and `SIS User ID` as the student number.

use super::{DomainPolicy, EmailAddress, StudentNumber};

/// The encodings `decode` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    Utf8,
    Cp949,
}

/// The file's text and the encoding it was read as.
pub fn decode(bytes: &[u8]) -> (String, TextEncoding) {
    let without_bom = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(without_bom) {
        Ok(text) => (text.to_owned(), TextEncoding::Utf8),
        Err(_) => {
            // encoding_rs's EUC_KR is the WHATWG "euc-kr", which is Windows-949 (CP949).
            let (text, _, _) = encoding_rs::EUC_KR.decode(without_bom);
            (text.into_owned(), TextEncoding::Cp949)
        }
    }
}

/// Which export the header row says the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RosterFormat {
    Canvas,
    Moodle,
    Mapped,
}

/// Which column (by header name, as in the file) holds what, for files that are neither Canvas
/// nor Moodle. `email` is required; the rest are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ColumnMapping {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub student_number: Option<String>,
    #[serde(default)]
    pub section: Option<String>,
}

/// One data row of the file, as read (trimmed; not validated yet).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RosterRow {
    /// The line in the file (the header is line 1).
    pub line: usize,
    pub email: String,
    pub name: String,
    pub student_number: String,
    pub section: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRoster {
    pub format: RosterFormat,
    pub encoding: TextEncoding,
    pub headers: Vec<String>,
    pub rows: Vec<RosterRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("the roster file is empty")]
    Empty,
    #[error("the roster file is not CSV: {0}")]
    NotCsv(String),
    #[error("this file is neither a Canvas nor a Moodle export; choose which column holds the e-mail address (columns: {})", .headers.join(", "))]
    NeedsMapping { headers: Vec<String> },
    #[error("the mapping names the column `{column}`, which the file does not have (columns: {})", .headers.join(", "))]
    UnknownColumn { column: String, headers: Vec<String> },
}

impl RosterError {
    pub fn code(&self) -> &'static str {
        match self {
            RosterError::Empty => "roster_empty",
            RosterError::NotCsv(_) => "roster_not_csv",
            RosterError::NeedsMapping { .. } => "roster_needs_mapping",
            RosterError::UnknownColumn { .. } => "roster_unknown_column",
        }
    }
}

fn normalise_header(header: &str) -> String {
    header.trim().trim_start_matches('\u{feff}').trim().to_lowercase()
}

fn find(headers: &[String], wanted: &[&str]) -> Option<usize> {
    headers.iter().position(|h| wanted.contains(&normalise_header(h).as_str()))
}

/// Column positions: e-mail, name (or first + last), student number, section.
struct Columns {
    email: Option<usize>,
    name: NameColumns,
    student_number: Option<usize>,
    section: Option<usize>,
}

enum NameColumns {
    One(Option<usize>),
    FirstLast(Option<usize>, Option<usize>),
}

fn detect(headers: &[String]) -> Option<(RosterFormat, Columns)> {
    let canvas = ["student", "id", "sis user id", "sis login id"].iter().all(|h| find(headers, &[h]).is_some());
    if canvas {
        return Some((
            RosterFormat::Canvas,
            Columns {
                email: find(headers, &["sis login id"]),
                name: NameColumns::One(find(headers, &["student"])),
                student_number: find(headers, &["sis user id"]),
                section: find(headers, &["section"]),
            },
        ));
    }
    let email = find(headers, &["email address", "email"]);
    let first = find(headers, &["first name", "firstname"]);
    let last = find(headers, &["surname", "last name", "lastname"]);
    if email.is_some() && (first.is_some() || last.is_some()) {
        return Some((
            RosterFormat::Moodle,
            Columns {
                email,
                name: NameColumns::FirstLast(first, last),
                student_number: find(headers, &["id number", "idnumber"]),
                section: find(headers, &["groups", "group", "department"]),
            },
        ));
    }
    None
}

fn mapped(headers: &[String], mapping: &ColumnMapping) -> Result<Columns, RosterError> {
    let position = |column: &str| {
        let wanted = normalise_header(column);
        headers
            .iter()
            .position(|h| normalise_header(h) == wanted)
            .ok_or_else(|| RosterError::UnknownColumn { column: column.trim().to_owned(), headers: headers.to_vec() })
    };
    let optional = |column: &Option<String>| match column.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(column) => position(column).map(Some),
    };
    Ok(Columns {
        email: Some(position(&mapping.email)?),
        name: NameColumns::One(optional(&mapping.name)?),
        student_number: optional(&mapping.student_number)?,
        section: optional(&mapping.section)?,
    })
}

/// Reads the file. A mapping, when given, is used even if the file looks like Canvas or Moodle.
pub fn parse(bytes: &[u8], mapping: Option<&ColumnMapping>) -> Result<ParsedRoster, RosterError> {
    let (text, encoding) = decode(bytes);
    if text.trim().is_empty() {
        return Err(RosterError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match records.next() {
        None => return Err(RosterError::Empty),
        Some(Err(e)) => return Err(RosterError::NotCsv(e.to_string())),
        Some(Ok(record)) => record.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_owned()).collect(),
    };
    let (format, columns) = match mapping {
        Some(mapping) => (RosterFormat::Mapped, mapped(&headers, mapping)?),
        None => detect(&headers).ok_or_else(|| RosterError::NeedsMapping { headers: headers.clone() })?,
    };
    let mut rows = Vec::new();
    for (index, record) in records.enumerate() {
        let record = record.map_err(|e| RosterError::NotCsv(e.to_string()))?;
        let cell = |column: Option<usize>| column.and_then(|i| record.get(i)).unwrap_or("").trim().to_owned();
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let name = match columns.name {
            NameColumns::One(column) => cell(column),
            NameColumns::FirstLast(first, last) => {
                [cell(first), cell(last)].into_iter().filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
            }
        };
        if format == RosterFormat::Canvas && name.starts_with("Points Possible") {
            continue;
        }
        let mut email = cell(columns.email);
        if format == RosterFormat::Canvas && !email.contains('@') {
            // A Canvas login that is a user name, not an address.
            email.clear();
        }
        rows.push(RosterRow { line: index + 2, email, name, student_number: cell(columns.student_number), section: cell(columns.section) });
    }
    Ok(ParsedRoster { format, encoding, headers, rows })
}

/// An account that a row may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAccount {
    pub user_id: i64,
    pub email: String,
    pub student_number: Option<String>,
}

/// What confirming the import will do with a row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Enrol this account.
    Matched { user_id: i64, email: String },
    /// Enrol the address when it signs up (an invitation is mailed).
    Invite { email: String },
    /// Skipped; `code` is stable, `reason` says why in words.
    Invalid { code: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClassifiedRow {
    #[serde(flatten)]
    pub row: RosterRow,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Classifies every row against `accounts` (see the module doc). Only the first of two rows with
/// the same e-mail or student number counts; the later one is invalid as a duplicate.
pub fn classify(rows: &[RosterRow], accounts: &[KnownAccount], domains: &DomainPolicy) -> Vec<ClassifiedRow> {
    let mut seen_emails: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut seen_numbers: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = classify_one(row, accounts, domains, &mut seen_emails, &mut seen_numbers);
        out.push(ClassifiedRow { row: row.clone(), outcome });
    }
    out
}

fn classify_one(
    row: &RosterRow,
    accounts: &[KnownAccount],
    domains: &DomainPolicy,
    seen_emails: &mut std::collections::HashMap<String, usize>,
    seen_numbers: &mut std::collections::HashMap<String, usize>,
) -> Outcome {
    let invalid = |code: &'static str, reason: String| Outcome::Invalid { code, reason };
    let email = match row.email.as_str() {
        "" => None,
        raw => match EmailAddress::parse(raw) {
            Ok(email) => Some(email),
            Err(_) => return invalid("invalid_email", format!("`{raw}` is not an e-mail address")),
        },
    };
    let number = match StudentNumber::parse_optional(&row.student_number) {
        Ok(number) => number,
        Err(e) => return invalid("invalid_student_number", e.detail),
    };
    if email.is_none() && number.is_none() {
        return invalid("missing_field", "the row has neither an e-mail address nor a student number".to_owned());
    }
    if let Some(first) = email.as_ref().and_then(|e| seen_emails.get(e.as_str())) {
        return invalid("duplicate", format!("the same e-mail address as line {first}"));
    }
    if let Some(first) = number.as_ref().and_then(|n| seen_numbers.get(n.as_str())) {
        return invalid("duplicate", format!("the same student number as line {first}"));
    }
    if let Some(email) = &email {
        seen_emails.insert(email.as_str().to_owned(), row.line);
    }
    if let Some(number) = &number {
        seen_numbers.insert(number.as_str().to_owned(), row.line);
    }
    let by_email = email.as_ref().and_then(|e| accounts.iter().find(|a| a.email == e.as_str()));
    let by_number = number.as_ref().and_then(|n| accounts.iter().find(|a| a.student_number.as_deref() == Some(n.as_str())));
    if let Some(account) = by_email.or(by_number) {
        return Outcome::Matched { user_id: account.user_id, email: account.email.clone() };
    }
    match email {
        None => invalid(
            "missing_field",
            format!("no account has the student number {}, and the row has no e-mail address to invite", row.student_number),
        ),
        Some(email) => match domains.check(&email) {
            Ok(()) => Outcome::Invite { email: email.as_str().to_owned() },
            Err(e) => invalid("email_domain_not_allowed", e.detail),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(bytes: &[u8], mapping: Option<&ColumnMapping>) -> Vec<(String, String, String, String)> {
        let parsed = parse(bytes, mapping).expect("parses");
        parsed.rows.into_iter().map(|r| (r.email, r.name, r.student_number, r.section)).collect()
    }

    fn row(email: &str, name: &str, number: &str, section: &str) -> (String, String, String, String) {
        (email.to_owned(), name.to_owned(), number.to_owned(), section.to_owned())
    }

    const CANVAS: &str = "Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (101),Current Score\n    Points Possible,,,,,10,\n\"Kim, Minji\",4411,202412345,minji@pusan.ac.kr,CS101-01,9,90\n\"Lee, Jun\",4412,202412346,jlee,CS101-02,,\n";

    #[test]
    fn reads_a_canvas_gradebook_and_skips_points_possible() {
        let parsed = parse(CANVAS.as_bytes(), None).expect("parses");
        assert_eq!((parsed.format, parsed.encoding), (RosterFormat::Canvas, TextEncoding::Utf8));
        assert_eq!(
            rows(CANVAS.as_bytes(), None),
            vec![row("minji@pusan.ac.kr", "Kim, Minji", "202412345", "CS101-01"), row("", "Lee, Jun", "202412346", "CS101-02")]
        );
        assert_eq!(parsed.rows[0].line, 3);
    }

    #[test]
    fn a_canvas_file_missing_a_column_is_not_taken_for_canvas() {
        let without_login = "Student,ID,SIS User ID,Section\n\"Kim, Minji\",1,202412345,01\n";
        assert_eq!(parse(without_login.as_bytes(), None).map_err(|e| e.code()), Err("roster_needs_mapping"));
        let moodle_without_email = "First name,Surname,ID number\nMinji,Kim,202412345\n";
        assert_eq!(parse(moodle_without_email.as_bytes(), None).map_err(|e| e.code()), Err("roster_needs_mapping"));
    }

    #[test]
    fn reads_a_moodle_export_with_a_bom() {
        let file =
            "\u{feff}First name,Surname,ID number,Institution,Department,Email address\n민지,김,202412345,PNU,CSE,Minji@Pusan.ac.kr\n";
        assert_eq!(parse(file.as_bytes(), None).map(|p| p.format), Ok(RosterFormat::Moodle));
        assert_eq!(rows(file.as_bytes(), None), vec![row("Minji@Pusan.ac.kr", "민지 김", "202412345", "CSE")]);
    }

    #[test]
    fn an_unknown_file_needs_a_mapping_and_then_reads() {
        let file = "이름,학번,이메일,분반\n김민지,202412345,minji@pusan.ac.kr,01\n";
        assert_eq!(
            parse(file.as_bytes(), None),
            Err(RosterError::NeedsMapping { headers: vec!["이름".into(), "학번".into(), "이메일".into(), "분반".into()] })
        );
        let mapping = ColumnMapping {
            email: "이메일".into(),
            name: Some("이름".into()),
            student_number: Some("학번".into()),
            section: Some("분반".into()),
        };
        assert_eq!(rows(file.as_bytes(), Some(&mapping)), vec![row("minji@pusan.ac.kr", "김민지", "202412345", "01")]);
        let wrong = ColumnMapping { email: "mail".into(), ..ColumnMapping::default() };
        assert_eq!(parse(file.as_bytes(), Some(&wrong)).map_err(|e| e.code()), Err("roster_unknown_column"));
    }

    #[test]
    fn reads_cp949_from_korean_excel() {
        let text = "이름,학번,이메일\n김민지,202412345,minji@pusan.ac.kr\n";
        let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "the fixture must not be UTF-8");
        let mapping = ColumnMapping { email: "이메일".into(), name: Some("이름".into()), ..ColumnMapping::default() };
        let parsed = parse(&bytes, Some(&mapping)).expect("parses");
        assert_eq!(parsed.encoding, TextEncoding::Cp949);
        assert_eq!(parsed.rows[0].name, "김민지");
    }

    #[test]
    fn broken_files_are_refused_with_a_reason() {
        assert_eq!(parse(b"", None), Err(RosterError::Empty));
        assert_eq!(parse(b"\xEF\xBB\xBF \n", None), Err(RosterError::Empty));
        let unterminated = "First name,Surname,Email address\n\"Kim,Minji,a@b.kr\n";
        // An unterminated quote runs to the end of the file: one short row, no e-mail.
        let parsed = parse(unterminated.as_bytes(), None).expect("csv reads to the end");
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].email, "");
    }

    fn check(rows: &[RosterRow], expected: &[&str]) {
        let accounts = [
            KnownAccount { user_id: 1, email: "minji@pusan.ac.kr".into(), student_number: Some("202412345".into()) },
            KnownAccount { user_id: 2, email: "jun@pusan.ac.kr".into(), student_number: Some("202412346".into()) },
        ];
        let domains = DomainPolicy::new(&["pusan.ac.kr".to_owned()]);
        let got: Vec<String> = classify(rows, &accounts, &domains)
            .into_iter()
            .map(|c| match c.outcome {
                Outcome::Matched { user_id, .. } => format!("matched {user_id}"),
                Outcome::Invite { email } => format!("invite {email}"),
                Outcome::Invalid { code, .. } => code.to_owned(),
            })
            .collect();
        assert_eq!(got, expected);
    }

    fn r(line: usize, email: &str, number: &str) -> RosterRow {
        RosterRow { line, email: email.into(), name: String::new(), student_number: number.into(), section: String::new() }
    }

    #[test]
    fn rows_match_by_email_then_student_number_or_are_invited() {
        check(
            &[r(2, "MINJI@pusan.ac.kr", ""), r(3, "", "202412346"), r(4, "new@pusan.ac.kr", "202499999")],
            &["matched 1", "matched 2", "invite new@pusan.ac.kr"],
        );
    }

    #[test]
    fn bad_rows_are_invalid_with_a_reason() {
        check(
            &[
                r(2, "not-an-address", ""),
                r(3, "", ""),
                r(4, "", "209900000"),
                r(5, "x@gmail.com", ""),
                r(6, "new@pusan.ac.kr", ""),
                r(7, "New@pusan.ac.kr", ""),
                r(8, "other@pusan.ac.kr", "2024 1"),
            ],
            &[
                "invalid_email",
                "missing_field",
                "missing_field",
                "email_domain_not_allowed",
                "invite new@pusan.ac.kr",
                "duplicate",
                "invalid_student_number",
            ],
        );
    }

    #[test]
    fn a_duplicate_student_number_is_caught_too() {
        check(&[r(2, "a@pusan.ac.kr", "1"), r(3, "b@pusan.ac.kr", "1")], &["invite a@pusan.ac.kr", "duplicate"]);
    }
}
