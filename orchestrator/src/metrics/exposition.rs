//! The Prometheus text format 0.0.4, written byte for byte as Traefik writes it (Traefik serves
//! `client_golang`'s `promhttp`, which writes with `expfmt.MetricFamilyToText`):
//!
//! - `# HELP name text` (backslash and newline escaped), then `# TYPE name kind`, then the samples;
//! - labels in name order (`code,method,protocol,service`), `le` appended last on `_bucket` lines;
//! - cumulative buckets, then `le="+Inf"` (the count), then `_sum`, then `_count`;
//! - label values with backslash, double quote and newline escaped;
//! - numbers as Go's `strconv.FormatFloat(f, 'g', -1, 64)`: `1843`, `96.41`, `1.234567e+06`,
//!   `1e-05`, `+Inf`, `-Inf`, `NaN`. Counters are floats in Go, so a million requests really is
//!   `1e+06` in Traefik's output, and is here too.
//!
//! The order is the one `Registry::collect` gives (sorted like `client_golang`), so the output is
//! deterministic. `samples` gives the same data as `parse` would read it back, for in-process use
//! without text. It deliberately does not write timestamps, OpenMetrics or protobuf.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::parse::Sample;
use super::registry::{MetricFamily, Value};

/// The `Content-Type` of `render`'s output, as `promhttp` sends it for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders families in the text format, in the order given.
pub fn render(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(4096);
    for family in families {
        out.push_str("# HELP ");
        out.push_str(family.name);
        out.push(' ');
        push_escaped(&mut out, family.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(family.name);
        out.push(' ');
        out.push_str(family.kind.as_str());
        out.push('\n');
        for_each_sample(family, |name, labels, le, value| {
            out.push_str(name);
            if !labels.is_empty() || le.is_some() {
                let mut separator = '{';
                for (label, label_value) in labels {
                    out.push(separator);
                    out.push_str(label);
                    out.push_str("=\"");
                    push_escaped(&mut out, label_value, true);
                    out.push('"');
                    separator = ',';
                }
                if let Some(bound) = le {
                    out.push(separator);
                    out.push_str("le=\"");
                    push_float(&mut out, bound);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            push_float(&mut out, value);
            out.push('\n');
        });
    }
    out
}

/// The samples `parse(&render(families))` reads back, without going through text.
pub fn samples(families: &[MetricFamily]) -> Vec<Sample> {
    let mut samples = Vec::new();
    for family in families {
        for_each_sample(family, |name, labels, le, value| {
            let mut labels: BTreeMap<String, String> = labels.iter().map(|(label, value)| (label.to_string(), value.clone())).collect();
            if let Some(bound) = le {
                let mut text = String::new();
                push_float(&mut text, bound);
                labels.insert("le".to_owned(), text);
            }
            samples.push(Sample { name: name.to_owned(), labels, value, timestamp_ms: None });
        });
    }
    samples
}

/// Calls `emit(name, labels, le, value)` for each line of `family`, in exposition order.
fn for_each_sample(family: &MetricFamily, mut emit: impl FnMut(&str, &[(&'static str, String)], Option<f64>, f64)) {
    for series in &family.series {
        match &series.value {
            Value::Scalar(value) => emit(family.name, &series.labels, None, *value),
            Value::Histogram(histogram) => {
                let bucket = format!("{}_bucket", family.name);
                for (bound, cumulative) in histogram.bounds.iter().zip(&histogram.cumulative_counts) {
                    emit(&bucket, &series.labels, Some(*bound), *cumulative as f64);
                }
                emit(&bucket, &series.labels, Some(f64::INFINITY), histogram.count as f64);
                emit(&format!("{}_sum", family.name), &series.labels, None, histogram.sum);
                emit(&format!("{}_count", family.name), &series.labels, None, histogram.count as f64);
            }
        }
    }
}

/// `client_golang`'s `writeEscapedString`: `\` → `\\`, newline → `\n`, and in label values `"` → `\"`.
fn push_escaped(out: &mut String, text: &str, escape_quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if escape_quote => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
}

/// `client_golang`'s `writeFloat`: special cases for 0, ±1, NaN and ±Inf, otherwise Go's
/// `strconv.AppendFloat(f, 'g', -1, 64)`. That is the shortest digits that read back to the same
/// float (Rust's `{:e}` gives the same digits), written as `%e` when the decimal exponent is below
/// -4 or at least 6 (`eprec` is 6 for the shortest form) and as `%f` otherwise; Go's `%e` writes at
/// least two exponent digits with a sign (`1e+06`, `1e-05`). Negative zero prints `0` because
/// `writeFloat`'s `f == 0` catches it first.
fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if value == 0.0 {
        out.push('0');
        return;
    }
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a decimal exponent");
    let digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    if value < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        out.push(digits[0] as char);
        if digits.len() > 1 {
            out.push('.');
            digits[1..].iter().for_each(|digit| out.push(*digit as char));
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
        return;
    }
    // Plain decimal: the point goes after `n_integer_digits` digits (≤ 0 means `0.000ddd`).
    let n_integer_digits = exponent + 1;
    if n_integer_digits <= 0 {
        out.push_str("0.");
        (0..-n_integer_digits).for_each(|_| out.push('0'));
        digits.iter().for_each(|digit| out.push(*digit as char));
        return;
    }
    let n_integer_digits = n_integer_digits as usize;
    for digit_idx in 0..n_integer_digits {
        out.push(digits.get(digit_idx).map_or('0', |digit| *digit as char));
    }
    if digits.len() > n_integer_digits {
        out.push('.');
        digits[n_integer_digits..].iter().for_each(|digit| out.push(*digit as char));
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::super::registry::{sort_series, HistogramValue, MetricKind, Protocol, Registry, Series, WakePhase, WakeTier};
    use super::*;

    /// A real scrape of Traefik v3.7.15 (see `testdata/README.md`).
    const REAL_TRAEFIK: &str = include_str!("testdata/traefik-3.7.15.prom");

    fn check(families: &[MetricFamily], expected: &str) {
        let actual = render(families);
        assert_eq!(actual, expected, "\nactual:\n{actual}");
    }

    /// The traffic behind the exposition snapshot: two apps, an error, a WebSocket, an event
    /// stream, a wake, and some requests still open.
    fn recorded_traffic() -> Registry {
        let registry = Registry::new();
        let p42 = registry.service("p42@slipway");
        for secs in [0.05, 0.08, 0.25, 0.9, 3.0] {
            p42.observe(200, "GET", Protocol::Http, secs, 120, 5_000);
        }
        registry.observe("p42@slipway", 502, "POST", Protocol::Http, 0.012, 2_048, 150);
        registry.observe("p7-chat@slipway", 101, "GET", Protocol::Websocket, 61.5, 300, 9_000);
        registry.observe("p7-chat@slipway", 200, "GET", Protocol::Sse, 12.25, 90, 1_500_000);
        registry.count_wake("p7-chat@slipway", WakeTier::Stopped);
        registry.observe_wake_phase("p7-chat@slipway", WakePhase::Spawn, 0.04);
        registry.observe_wake_phase("p7-chat@slipway", WakePhase::Total, 1.3);
        // Guards leak on purpose here so the gauges show in the snapshot.
        std::mem::forget(registry.open_connection());
        std::mem::forget(registry.open_connection());
        std::mem::forget(p42.enter());
        std::mem::forget(registry.hold("p7-chat@slipway"));
        registry
    }

    #[test]
    fn renders_recorded_traffic_like_traefik() {
        check(
            &recorded_traffic().collect(),
            r#"# HELP slipway_app_held_requests Requests the activator is holding while their app wakes.
# TYPE slipway_app_held_requests gauge
slipway_app_held_requests{service="p42@slipway"} 0
slipway_app_held_requests{service="p7-chat@slipway"} 1
# HELP slipway_app_in_flight Requests an app is serving right now, open WebSockets and event streams included.
# TYPE slipway_app_in_flight gauge
slipway_app_in_flight{service="p42@slipway"} 1
slipway_app_in_flight{service="p7-chat@slipway"} 0
# HELP slipway_wake_duration_seconds How long each phase of waking an app took: spawn, listening, first_byte, and the total.
# TYPE slipway_wake_duration_seconds histogram
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.005"} 0
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.01"} 0
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.025"} 0
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.05"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.1"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.25"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="0.5"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="1"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="2.5"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="5"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="10"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="30"} 1
slipway_wake_duration_seconds_bucket{phase="spawn",service="p7-chat@slipway",le="+Inf"} 1
slipway_wake_duration_seconds_sum{phase="spawn",service="p7-chat@slipway"} 0.04
slipway_wake_duration_seconds_count{phase="spawn",service="p7-chat@slipway"} 1
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.005"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.01"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.025"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.05"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.1"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.25"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="0.5"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="1"} 0
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="2.5"} 1
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="5"} 1
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="10"} 1
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="30"} 1
slipway_wake_duration_seconds_bucket{phase="total",service="p7-chat@slipway",le="+Inf"} 1
slipway_wake_duration_seconds_sum{phase="total",service="p7-chat@slipway"} 1.3
slipway_wake_duration_seconds_count{phase="total",service="p7-chat@slipway"} 1
# HELP slipway_wakes_total How many times an app was woken, partitioned by the tier it was woken from.
# TYPE slipway_wakes_total counter
slipway_wakes_total{service="p7-chat@slipway",tier="stopped"} 1
# HELP traefik_open_connections How many open connections exist, by entryPoint and protocol
# TYPE traefik_open_connections gauge
traefik_open_connections{entrypoint="web",protocol="TCP"} 2
# HELP traefik_service_request_duration_seconds How long it took to process the request on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="101",method="GET",protocol="websocket",service="p7-chat@slipway",le="0.1"} 0
traefik_service_request_duration_seconds_bucket{code="101",method="GET",protocol="websocket",service="p7-chat@slipway",le="0.3"} 0
traefik_service_request_duration_seconds_bucket{code="101",method="GET",protocol="websocket",service="p7-chat@slipway",le="1.2"} 0
traefik_service_request_duration_seconds_bucket{code="101",method="GET",protocol="websocket",service="p7-chat@slipway",le="5"} 0
traefik_service_request_duration_seconds_bucket{code="101",method="GET",protocol="websocket",service="p7-chat@slipway",le="+Inf"} 1
traefik_service_request_duration_seconds_sum{code="101",method="GET",protocol="websocket",service="p7-chat@slipway"} 61.5
traefik_service_request_duration_seconds_count{code="101",method="GET",protocol="websocket",service="p7-chat@slipway"} 1
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42@slipway",le="0.1"} 2
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42@slipway",le="0.3"} 3
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42@slipway",le="1.2"} 4
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42@slipway",le="5"} 5
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="p42@slipway",le="+Inf"} 5
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42@slipway"} 4.28
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="p42@slipway"} 5
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="sse",service="p7-chat@slipway",le="0.1"} 0
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="sse",service="p7-chat@slipway",le="0.3"} 0
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="sse",service="p7-chat@slipway",le="1.2"} 0
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="sse",service="p7-chat@slipway",le="5"} 0
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="sse",service="p7-chat@slipway",le="+Inf"} 1
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="sse",service="p7-chat@slipway"} 12.25
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="sse",service="p7-chat@slipway"} 1
traefik_service_request_duration_seconds_bucket{code="502",method="POST",protocol="http",service="p42@slipway",le="0.1"} 1
traefik_service_request_duration_seconds_bucket{code="502",method="POST",protocol="http",service="p42@slipway",le="0.3"} 1
traefik_service_request_duration_seconds_bucket{code="502",method="POST",protocol="http",service="p42@slipway",le="1.2"} 1
traefik_service_request_duration_seconds_bucket{code="502",method="POST",protocol="http",service="p42@slipway",le="5"} 1
traefik_service_request_duration_seconds_bucket{code="502",method="POST",protocol="http",service="p42@slipway",le="+Inf"} 1
traefik_service_request_duration_seconds_sum{code="502",method="POST",protocol="http",service="p42@slipway"} 0.012
traefik_service_request_duration_seconds_count{code="502",method="POST",protocol="http",service="p42@slipway"} 1
# HELP traefik_service_requests_bytes_total The total size of requests in bytes received by a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_bytes_total counter
traefik_service_requests_bytes_total{code="101",method="GET",protocol="websocket",service="p7-chat@slipway"} 300
traefik_service_requests_bytes_total{code="200",method="GET",protocol="http",service="p42@slipway"} 600
traefik_service_requests_bytes_total{code="200",method="GET",protocol="sse",service="p7-chat@slipway"} 90
traefik_service_requests_bytes_total{code="502",method="POST",protocol="http",service="p42@slipway"} 2048
# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="101",method="GET",protocol="websocket",service="p7-chat@slipway"} 1
traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 5
traefik_service_requests_total{code="200",method="GET",protocol="sse",service="p7-chat@slipway"} 1
traefik_service_requests_total{code="502",method="POST",protocol="http",service="p42@slipway"} 1
# HELP traefik_service_responses_bytes_total The total size of responses in bytes returned by a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_responses_bytes_total counter
traefik_service_responses_bytes_total{code="101",method="GET",protocol="websocket",service="p7-chat@slipway"} 9000
traefik_service_responses_bytes_total{code="200",method="GET",protocol="http",service="p42@slipway"} 25000
traefik_service_responses_bytes_total{code="200",method="GET",protocol="sse",service="p7-chat@slipway"} 1.5e+06
traefik_service_responses_bytes_total{code="502",method="POST",protocol="http",service="p42@slipway"} 150
"#,
        );
    }

    #[test]
    fn renders_only_open_connections_for_a_fresh_registry() {
        check(
            &Registry::new().collect(),
            "# HELP traefik_open_connections How many open connections exist, by entryPoint and protocol\n\
             # TYPE traefik_open_connections gauge\n\
             traefik_open_connections{entrypoint=\"web\",protocol=\"TCP\"} 0\n",
        );
    }

    #[test]
    fn escapes_label_values_and_help_text() {
        let family = |labels: Vec<(&'static str, String)>| MetricFamily {
            name: "x_total",
            help: "a \\ backslash,\na newline and \"quotes\"",
            kind: MetricKind::Counter,
            series: vec![Series { labels, value: Value::Scalar(1.0) }],
        };
        check(
            &[family(vec![("service", "a\\b\"c\nd,e=f}".to_owned())])],
            "# HELP x_total a \\\\ backslash,\\na newline and \"quotes\"\n\
             # TYPE x_total counter\n\
             x_total{service=\"a\\\\b\\\"c\\nd,e=f}\"} 1\n",
        );
        check(&[family(vec![])], "# HELP x_total a \\\\ backslash,\\na newline and \"quotes\"\n# TYPE x_total counter\nx_total 1\n");
    }

    #[test]
    fn formats_numbers_like_go() {
        for (value, expected) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (5.0, "5"),
            (0.1, "0.1"),
            (0.3, "0.3"),
            (1.2, "1.2"),
            (96.41, "96.41"),
            (1843.0, "1843"),
            (-2.5, "-2.5"),
            (100_000.5, "100000.5"),
            (999_999.0, "999999"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (1_500_000.0, "1.5e+06"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (0.0001, "0.0001"),
            (0.000_123_4, "0.0001234"),
            (0.000_01, "1e-05"),
            (-1.5e-7, "-1.5e-07"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            let mut actual = String::new();
            push_float(&mut actual, value);
            assert_eq!(actual, expected, "value {value:?}");
        }
    }

    /// The lines of `text` from `# HELP name` up to the next `# HELP`.
    fn family_block<'a>(text: &'a str, name: &str) -> &'a str {
        let start = text.find(&format!("# HELP {name} ")).expect("the family is in the recording");
        let end = text[start + 1..].find("# HELP ").map_or(text.len(), |offset| start + 1 + offset);
        &text[start..end]
    }

    /// `template`'s family (name, help, kind, buckets) filled with the series found in `samples`,
    /// sorted as `Registry::collect` sorts them.
    fn rebuild(template: &MetricFamily, samples: &[Sample]) -> MetricFamily {
        let static_label = |name: &str| -> &'static str {
            ["code", "entrypoint", "method", "protocol", "service"].into_iter().find(|known| *known == name).expect("a label Traefik uses")
        };
        let labels_of = |sample: &Sample| -> Vec<(&'static str, String)> {
            sample
                .labels
                .iter()
                .filter(|(name, _)| name.as_str() != "le")
                .map(|(name, value)| (static_label(name), value.clone()))
                .collect()
        };
        let named = |suffix: &str| -> Vec<&Sample> {
            let name = format!("{}{suffix}", template.name);
            samples.iter().filter(|sample| sample.name == name).collect()
        };
        let mut series = Vec::new();
        match &template.series[0].value {
            Value::Scalar(_) => {
                series.extend(named("").into_iter().map(|sample| Series { labels: labels_of(sample), value: Value::Scalar(sample.value) }))
            }
            Value::Histogram(HistogramValue { bounds, .. }) => {
                for count in named("_count") {
                    let labels = labels_of(count);
                    let find = |suffix: &str, le: Option<&str>| {
                        let mine = |sample: &&Sample| labels_of(sample) == labels && sample.labels.get("le").map(String::as_str) == le;
                        named(suffix).into_iter().find(mine).expect("every line of the histogram is there").value
                    };
                    let cumulative_counts = bounds.iter().map(|bound| find("_bucket", Some(&bound.to_string())) as u64).collect();
                    let sum = find("_sum", None);
                    let value = HistogramValue { bounds, cumulative_counts, count: count.value as u64, sum };
                    series.push(Series { labels, value: Value::Histogram(value) });
                }
            }
        }
        sort_series(&mut series);
        MetricFamily { series, ..template.clone() }
    }

    #[test]
    fn renders_real_traefik_output_byte_for_byte() {
        let parsed = parse(REAL_TRAEFIK).expect("the recording parses");
        let registry = Registry::new();
        registry.observe("a@slipway", 200, "GET", Protocol::Http, 0.1, 1, 1);
        let templates: Vec<MetricFamily> = registry.collect().into_iter().filter(|family| family.name.starts_with("traefik_")).collect();
        assert_eq!(templates.len(), 5);
        for template in &templates {
            check(&[rebuild(template, &parsed)], family_block(REAL_TRAEFIK, template.name));
        }
    }

    #[test]
    fn parsing_the_rendered_text_gives_back_the_samples() {
        let families = recorded_traffic().collect();
        let parsed = parse(&render(&families)).expect("our own exposition parses");
        assert_eq!(parsed, samples(&families));
        assert_eq!(parsed.len(), 2 + 2 + 2 * 15 + 1 + 1 + 4 * 7 + 3 * 4);
    }
}
