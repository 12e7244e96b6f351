//! A reader for the Prometheus text format 0.0.4, enough for real Traefik output and ours: `# HELP`
//! and `# TYPE` lines (the type is checked), other comments, blank lines, metric names, label sets
//! (`{}` included, a trailing comma allowed, `\\`, `\"` and `\n` escapes, commas and braces inside
//! quoted values), values (`+Inf`, `-Inf`, `NaN`, `1.5e+06`) and optional millisecond timestamps.
//! Errors give the 1-based line number and the offending text.
//!
//! The result is flat: one `Sample` per line, `_bucket`/`_sum`/`_count` lines included under
//! those names, with `le` as an ordinary label. It deliberately does not group samples into
//! families, check that a family's samples are consistent, or read OpenMetrics extensions
//! (exemplars, `# EOF`, quoted UTF-8 metric names).

use std::collections::BTreeMap;

/// One line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub problem: ParseProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProblem {
    #[error("`{0}` is not a metric name")]
    MetricName(String),
    #[error("`{0}` is not a label name")]
    LabelName(String),
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: &'static str, found: String },
    #[error("the value of label `{0}` has no closing quote")]
    UnterminatedLabelValue(String),
    #[error("`\\{0}` is not an escape sequence (only `\\\\`, `\\\"` and `\\n` are)")]
    Escape(char),
    #[error("label `{0}` appears twice")]
    DuplicateLabel(String),
    #[error("`{0}` is not a sample value")]
    Value(String),
    #[error("`{0}` is not a timestamp in milliseconds")]
    Timestamp(String),
    #[error("`{0}` is not a metric type (counter, gauge, histogram, summary, untyped)")]
    MetricType(String),
    #[error("unexpected `{0}` at the end of the line")]
    TrailingText(String),
}

/// Parses a whole exposition. Lines may end in `\n` or `\r\n`.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (line_idx, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let at_line = |problem| ParseError { line: line_idx + 1, problem };
        let line = line.trim_matches(is_blank);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            check_comment(comment).map_err(at_line)?;
            continue;
        }
        samples.push(parse_sample(line).map_err(at_line)?);
    }
    Ok(samples)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `# HELP name text` needs a valid name; `# TYPE name type` a valid name and a known type, as
/// `client_golang`'s parser (case-insensitive); any other comment is ignored.
fn check_comment(comment: &str) -> Result<(), ParseProblem> {
    let mut words = comment.split(is_blank).filter(|word| !word.is_empty());
    let keyword = words.next();
    if keyword != Some("HELP") && keyword != Some("TYPE") {
        return Ok(());
    }
    let name = words.next().unwrap_or("");
    if !is_metric_name(name) {
        return Err(ParseProblem::MetricName(name.to_owned()));
    }
    if keyword == Some("TYPE") {
        let kind = words.next().unwrap_or("");
        if !["counter", "gauge", "histogram", "summary", "untyped"].iter().any(|known| known.eq_ignore_ascii_case(kind)) {
            return Err(ParseProblem::MetricType(kind.to_owned()));
        }
        if let Some(extra) = words.next() {
            return Err(ParseProblem::TrailingText(extra.to_owned()));
        }
    }
    Ok(())
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sample line, already trimmed: `name[{labels}] value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, ParseProblem> {
    let name_end = line.find(|c: char| is_blank(c) || c == '{').unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(ParseProblem::MetricName(name.to_owned()));
    }
    let mut rest = line[name_end..].trim_start_matches(is_blank);
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?.trim_start_matches(is_blank);
    }
    let mut tokens = rest.split(is_blank).filter(|token| !token.is_empty());
    let value_text =
        tokens.next().ok_or_else(|| ParseProblem::Unexpected { expected: "a value", found: "the end of the line".to_owned() })?;
    let value = parse_value(value_text).ok_or_else(|| ParseProblem::Value(value_text.to_owned()))?;
    let timestamp_ms = match tokens.next() {
        Some(text) => Some(text.parse::<i64>().map_err(|_| ParseProblem::Timestamp(text.to_owned()))?),
        None => None,
    };
    if let Some(extra) = tokens.next() {
        return Err(ParseProblem::TrailingText(extra.to_owned()));
    }
    Ok(Sample { name: name.to_owned(), labels, value, timestamp_ms })
}

/// Reads `a="1", b="2"}` (the `{` already consumed) into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut BTreeMap<String, String>) -> Result<&'a str, ParseProblem> {
    loop {
        rest = rest.trim_start_matches(is_blank);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest.find(|c: char| is_blank(c) || c == '=' || c == ',' || c == '}' || c == '"').unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_label_name(name) {
            return Err(if name.is_empty() { unexpected("a label name or `}`", rest) } else { ParseProblem::LabelName(name.to_owned()) });
        }
        rest = rest[name_end..].trim_start_matches(is_blank);
        rest = rest.strip_prefix('=').ok_or_else(|| unexpected("`=`", rest))?.trim_start_matches(is_blank);
        rest = rest.strip_prefix('"').ok_or_else(|| unexpected("`\"`", rest))?;
        let (value, after_value) = parse_label_value(rest).map_err(|problem| match problem {
            ParseProblem::UnterminatedLabelValue(_) => ParseProblem::UnterminatedLabelValue(name.to_owned()),
            other => other,
        })?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(ParseProblem::DuplicateLabel(name.to_owned()));
        }
        rest = after_value.trim_start_matches(is_blank);
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err(unexpected("`,` or `}`", rest));
        }
    }
}

/// Reads a label value up to its closing quote (the opening one already consumed), undoing escapes.
fn parse_label_value(text: &str) -> Result<(String, &str), ParseProblem> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[idx + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => return Err(ParseProblem::Escape(other)),
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err(ParseProblem::UnterminatedLabelValue(String::new()))
}

/// Go's `strconv.ParseFloat` as the format uses it: decimals, exponents, `+Inf`, `-Inf`, `NaN`
/// (any case, as Go and Rust both accept).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn unexpected(expected: &'static str, rest: &str) -> ParseProblem {
    let found = match rest.chars().next() {
        Some(c) => format!("`{c}`"),
        None => "the end of the line".to_owned(),
    };
    ParseProblem::Unexpected { expected, found }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sample as `name{a=1,b=2} value [@timestamp]`, one per line; or the error message.
    fn check(input: &str, expected: &str) {
        let actual = match parse(input) {
            Ok(samples) => samples
                .iter()
                .map(|sample| {
                    let labels: Vec<String> = sample.labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
                    let timestamp = sample.timestamp_ms.map(|ms| format!(" @{ms}")).unwrap_or_default();
                    format!("{}{{{}}} {:?}{timestamp}\n", sample.name, labels.join(","), sample.value)
                })
                .collect::<String>(),
            Err(error) => format!("error: {error}\n"),
        };
        assert_eq!(actual, expected, "input:\n{input}\nactual:\n{actual}");
    }

    /// hashistack.md §13.5, verbatim (the `…` in the first HELP line included).
    const TRAEFIK_SAMPLE: &str = r#"# HELP traefik_service_requests_total HTTP requests per service…
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-web@consulcatalog"} 1843
traefik_service_requests_total{code="502",method="POST",protocol="http",service="p42-web@consulcatalog"} 3
traefik_service_requests_total{code="200",method="GET",protocol="websocket",service="p7-chat@nomad"} 12
traefik_service_requests_total{code="200",method="GET",protocol="http",service="activator@file"} 27
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42-web@consulcatalog",le="0.1"} 1702
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42-web@consulcatalog",le="0.3"} 1801
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42-web@consulcatalog",le="1.2"} 1840
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42-web@consulcatalog",le="5"} 1843
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42-web@consulcatalog",le="+Inf"} 1843
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42-web@consulcatalog"} 96.41
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="p42-web@consulcatalog"} 1843
# TYPE traefik_open_connections gauge
traefik_open_connections{entrypoint="websecure",protocol="TCP"} 57
"#;

    #[test]
    fn reads_the_traefik_sample_exposition() {
        let rest = r#"method="GET",protocol="http",service="p42-web@consulcatalog""#;
        let common = format!(r#"code="200",{rest}"#);
        check(
            TRAEFIK_SAMPLE,
            &format!(
                r#"traefik_service_requests_total{{{common}}} 1843.0
traefik_service_requests_total{{code="502",method="POST",protocol="http",service="p42-web@consulcatalog"}} 3.0
traefik_service_requests_total{{code="200",method="GET",protocol="websocket",service="p7-chat@nomad"}} 12.0
traefik_service_requests_total{{code="200",method="GET",protocol="http",service="activator@file"}} 27.0
traefik_service_request_duration_seconds_bucket{{code="200",le="0.1",{rest}}} 1702.0
traefik_service_request_duration_seconds_bucket{{code="200",le="0.3",{rest}}} 1801.0
traefik_service_request_duration_seconds_bucket{{code="200",le="1.2",{rest}}} 1840.0
traefik_service_request_duration_seconds_bucket{{code="200",le="5",{rest}}} 1843.0
traefik_service_request_duration_seconds_bucket{{code="200",le="+Inf",{rest}}} 1843.0
traefik_service_request_duration_seconds_sum{{{common}}} 96.41
traefik_service_request_duration_seconds_count{{{common}}} 1843.0
traefik_open_connections{{entrypoint="websecure",protocol="TCP"}} 57.0
"#
            ),
        );
    }

    #[test]
    fn reads_a_whole_real_traefik_scrape() {
        let recording = include_str!("testdata/traefik-3.7.15.prom");
        let samples = parse(recording).expect("the recording parses");
        let n_sample_lines = recording.lines().filter(|line| !line.is_empty() && !line.starts_with('#')).count();
        assert_eq!(samples.len(), n_sample_lines);
        let find = |name: &str, label: (&str, &str)| {
            samples
                .iter()
                .find(|sample| sample.name == name && sample.labels.get(label.0).map(String::as_str) == Some(label.1))
                .map(|s| s.value)
        };
        assert_eq!(find("go_gc_duration_seconds", ("quantile", "0.25")), Some(0.000254795));
        assert_eq!(find("traefik_service_responses_bytes_total", ("service", "p42@file")), Some(1_234_607.0));
        assert_eq!(find("traefik_service_requests_total", ("method", "EXTENSION_METHOD")), Some(1.0));
    }

    #[test]
    fn reads_escapes_special_values_timestamps_and_odd_spacing() {
        for (input, expected) in [
            // Escapes, and commas, braces and `=` inside quoted values.
            (
                r#"a{path="C:\\dir",say="\"hi\", she said",two="x\ny",odd="}{=,"} 1"#,
                "a{odd=\"}{=,\",path=\"C:\\\\dir\",say=\"\\\"hi\\\", she said\",two=\"x\\ny\"} 1.0\n",
            ),
            ("a{s=\"naïve ☃\"} 2", "a{s=\"naïve ☃\"} 2.0\n"),
            ("a{} 1", "a{} 1.0\n"),
            ("a{b=\"\"} 1", "a{b=\"\"} 1.0\n"),
            ("a{b=\"1\",} 1", "a{b=\"1\"} 1.0\n"),
            ("a { b = \"1\" , c=\"2\" } 1", "a{b=\"1\",c=\"2\"} 1.0\n"),
            ("a{b=\"1\"}1", "a{b=\"1\"} 1.0\n"),
            ("a +Inf\nb -Inf\nc NaN\nd Inf", "a{} inf\nb{} -inf\nc{} NaN\nd{} inf\n"),
            ("a 1.5e+06\nb 1e-05\nc -0.25\nd 7E3\ne .5", "a{} 1500000.0\nb{} 1e-5\nc{} -0.25\nd{} 7000.0\ne{} 0.5\n"),
            ("a 1 1712345678901\nb{c=\"d\"} 2 -5", "a{} 1.0 @1712345678901\nb{c=\"d\"} 2.0 @-5\n"),
            ("\t a  3 \t 4 \r\n\r\n", "a{} 3.0 @4\n"),
            ("# a comment\n#\n# HELP a \\ anything \"goes\" here\n# TYPE a GAUGE\n#TYPE b summary\na 1", "a{} 1.0\n"),
            ("ns:sub_metric_total 1", "ns:sub_metric_total{} 1.0\n"),
            ("", ""),
        ] {
            check(input, expected);
        }
    }

    #[test]
    fn reports_bad_lines_with_their_numbers() {
        for (input, expected) in [
            ("ok 1\n1abc 2", "error: line 2: `1abc` is not a metric name\n"),
            ("a-b 1", "error: line 1: `a-b` is not a metric name\n"),
            ("a", "error: line 1: expected a value, found the end of the line\n"),
            ("a{b=\"c\"}", "error: line 1: expected a value, found the end of the line\n"),
            ("ok 1\n\nok 2\na abc", "error: line 4: `abc` is not a sample value\n"),
            ("a 1 1.5", "error: line 1: `1.5` is not a timestamp in milliseconds\n"),
            ("a 1 2 3", "error: line 1: unexpected `3` at the end of the line\n"),
            ("a{b=\"c} 1", "error: line 1: the value of label `b` has no closing quote\n"),
            ("a{b=\"c\\\"} 1", "error: line 1: the value of label `b` has no closing quote\n"),
            ("a{b=\"c\\td\"} 1", "error: line 1: `\\t` is not an escape sequence (only `\\\\`, `\\\"` and `\\n` are)\n"),
            ("a{b=\"1\",b=\"2\"} 1", "error: line 1: label `b` appears twice\n"),
            ("a{b} 1", "error: line 1: expected `=`, found `}`\n"),
            ("a{b=c} 1", "error: line 1: expected `\"`, found `c`\n"),
            ("a{1b=\"c\"} 1", "error: line 1: `1b` is not a label name\n"),
            ("a{,} 1", "error: line 1: expected a label name or `}`, found `,`\n"),
            ("a{b=\"c\" d=\"e\"} 1", "error: line 1: expected `,` or `}`, found `d`\n"),
            ("a{b=\"c\"", "error: line 1: expected `,` or `}`, found the end of the line\n"),
            ("# TYPE a gaugey", "error: line 1: `gaugey` is not a metric type (counter, gauge, histogram, summary, untyped)\n"),
            ("# TYPE a", "error: line 1: `` is not a metric type (counter, gauge, histogram, summary, untyped)\n"),
            ("# TYPE a counter extra", "error: line 1: unexpected `extra` at the end of the line\n"),
            ("# HELP 9a help", "error: line 1: `9a` is not a metric name\n"),
        ] {
            check(input, expected);
        }
    }
}
