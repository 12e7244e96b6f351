//! Replays a recorded trace through `decide`, one tick per line, so a policy can be tried against
//! real traffic before an app runs it (`slipway autoscaler replay TRACE.jsonl`) and so tests can
//! pin whole episodes such as a lecture burst.
//!
//! A trace is JSON lines, one object per tick; blank lines are skipped:
//!
//! ```text
//! {"t": 30, "concurrency": 2.5, "requests": 4, "ready": 0}
//! {"t": 32, "concurrency": null, "requests": null, "ready": 1, "activator_demand": 3, "metrics_age": 9}
//! ```
//!
//! - `t`: seconds on any clock, not going backwards (required).
//! - `concurrency`: average requests in flight during the tick; `null` or absent when unknown.
//! - `requests`: requests that arrived during the tick; `null` or absent when not counted.
//! - `ready`: ready instances, an integer (required).
//! - `activator_demand`: requests held by the activator (optional, default 0).
//! - `metrics_age`: seconds since the metrics were scraped (optional, default fresh).
//!
//! Each tick yields a `ReplayLine` `{"t", "desired", "mode", "reason"}`. The trace's `ready`
//! column is what the runtime had; the replay does not pretend the runtime obeyed its decisions.
//!
//! Pure: it takes the trace as a string and returns values; reading the file and printing belong
//! to the command. It deliberately stops at the first bad line rather than guessing.

use super::decide::{decide, Mode, Policy, PolicyError, ScalerState, Snapshot};

/// One decision, as printed by `slipway autoscaler replay`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplayLine {
    pub t: f64,
    pub desired: u32,
    pub mode: Mode,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// `line_number` counts from 1, blank lines included, as editors do.
    #[error("line {line_number}: {problem}")]
    Line { line_number: usize, problem: String },
}

/// A line of the trace as written.
#[derive(Debug)]
struct TraceLine {
    t: f64,
    concurrency: Option<f64>,
    requests: Option<f64>,
    ready: u32,
    activator_demand: u32,
    metrics_age: Option<f64>,
}

const FIELDS: &[&str] = &["t", "concurrency", "requests", "ready", "activator_demand", "metrics_age"];

impl TraceLine {
    /// Reads the fields by hand rather than with a derive, so each message names the field and
    /// its value (`ready = -1, ...`); serde's derived messages name only the expected type.
    fn parse(value: &serde_json::Value) -> Result<TraceLine, String> {
        let Some(object) = value.as_object() else {
            return Err(format!("expected a JSON object such as {{\"t\": 0, \"ready\": 1}}, found {}", json_kind(value)));
        };
        if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(format!("unknown field `{unknown}` (known: {})", FIELDS.join(", ")));
        }
        let number = |field: &str| -> Result<Option<f64>, String> {
            match object.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => match value.as_f64() {
                    Some(number) if number >= 0.0 => Ok(Some(number)),
                    _ => Err(format!("{field} = {value}, must be a number 0 or more, or null")),
                },
            }
        };
        let count = |field: &str| -> Result<Option<u32>, String> {
            match object.get(field) {
                None => Ok(None),
                Some(value) => match value.as_u64().and_then(|count| u32::try_from(count).ok()) {
                    Some(count) => Ok(Some(count)),
                    None => Err(format!("{field} = {value}, must be a whole number 0 or more")),
                },
            }
        };
        let t = match object.get("t") {
            None => return Err("missing field `t` (seconds)".to_owned()),
            Some(value) => value.as_f64().ok_or_else(|| format!("t = {value}, must be a number of seconds"))?,
        };
        Ok(TraceLine {
            t,
            concurrency: number("concurrency")?,
            requests: number("requests")?,
            ready: count("ready")?.ok_or("missing field `ready` (ready instances)")?,
            activator_demand: count("activator_demand")?.unwrap_or(0),
            metrics_age: number("metrics_age")?,
        })
    }
}

/// Runs `decide` over every line of `trace_jsonl`, carrying the `ScalerState` from tick to tick.
pub fn replay(policy: &Policy, trace_jsonl: &str) -> Result<Vec<ReplayLine>, ReplayError> {
    policy.validate()?;
    let mut state = ScalerState::default();
    let mut previous_t: Option<f64> = None;
    let mut out = Vec::new();
    for (line_idx, text) in trace_jsonl.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let line_number = line_idx + 1;
        let bad = |problem: String| ReplayError::Line { line_number, problem };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|error| bad(describe_json_error(&error)))?;
        let line = TraceLine::parse(&value).map_err(bad)?;
        if let Some(previous_t) = previous_t.filter(|previous_t| line.t < *previous_t) {
            return Err(bad(format!("t = {} is before the previous line's t = {previous_t}", line.t)));
        }
        previous_t = Some(line.t);
        let snapshot = Snapshot {
            ready_instances: line.ready,
            concurrency: line.concurrency,
            requests: line.requests,
            activator_demand: line.activator_demand,
            metrics_age_s: line.metrics_age,
        };
        let decision = decide(policy, &snapshot, &state, line.t);
        out.push(ReplayLine { t: line.t, desired: decision.desired, mode: decision.mode, reason: decision.reason });
        state = decision.next_state;
    }
    Ok(out)
}

/// `replay`, printed as JSON lines, one per tick, each ending in a newline.
pub fn replay_to_string(policy: &Policy, trace_jsonl: &str) -> Result<String, ReplayError> {
    let mut out = String::new();
    for line in replay(policy, trace_jsonl)? {
        out.push_str(&serde_json::to_string(&line).expect("a ReplayLine has only strings, numbers and a unit enum"));
        out.push('\n');
    }
    Ok(out)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde_json's syntax error without its "at line 1 column 7" suffix, which counts within the
/// line and would contradict our line number; the column stays, said plainly.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(bare) => format!("not valid JSON: {bare} (column {})", error.column()),
        None => format!("not valid JSON: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `trace` under the default policy and compares the printed JSON lines, or the error.
    fn check(trace: &str, expected: Result<&str, &str>) {
        let actual = replay_to_string(&Policy::default(), trace).map_err(|error| error.to_string());
        let expected = expected
            .map(|lines| lines.lines().map(str::trim).filter(|line| !line.is_empty()).map(|line| format!("{line}\n")).collect::<String>());
        assert_eq!(actual, expected.map_err(str::to_owned), "trace:\n{trace}");
    }

    #[test]
    fn a_hand_written_trace_gives_one_json_line_per_tick() {
        let trace = r#"
            {"t": 0, "concurrency": null, "requests": null, "ready": 0}
            {"t": 2, "concurrency": null, "requests": null, "ready": 0, "activator_demand": 5}
            {"t": 4, "concurrency": 30, "requests": 80, "ready": 1}
            {"t": 6, "concurrency": null, "requests": null, "ready": 1}
            {"t": 8, "concurrency": 12, "requests": 40, "ready": 3, "metrics_age": 1}
            {"t": 70, "concurrency": 12, "ready": 3}
        "#;
        check(
            trace,
            Ok(r#"
                {"t":0.0,"desired":0,"mode":"hold","reason":"no concurrency sample this tick: holding 0, because unknown load never scales down"}
                {"t":2.0,"desired":1,"mode":"wake","reason":"5 requests held by the activator and no instance ready: wake 1 now"}
                {"t":4.0,"desired":3,"mode":"panic","reason":"panic: 6 s average concurrency 30 is 3x the capacity of 1 ready (threshold 2x): 3 instances, no scale-down during panic"}
                {"t":6.0,"desired":3,"mode":"hold","reason":"no concurrency sample this tick: holding 3, because unknown load never scales down"}
                {"t":8.0,"desired":3,"mode":"panic","reason":"panic since t = 4; load last over 2x capacity at t = 4, panic ends 60 s after that: 3 instances, no scale-down during panic"}
                {"t":70.0,"desired":2,"mode":"stable","reason":"panic over (no tick over the threshold for 60 s); 60 s average concurrency 12 / target 10 = 2"}
            "#),
        );
    }

    #[test]
    fn bad_lines_give_errors_naming_the_line() {
        check("{\"t\": 0, \"ready\": 0}\nnot json", Err("line 2: not valid JSON: expected ident (column 2)"));
        check("{\"t\": 0}", Err("line 1: missing field `ready` (ready instances)"));
        check("{\"t\": 0, \"ready\": -1}", Err("line 1: ready = -1, must be a whole number 0 or more"));
        check("{\"t\": 0, \"ready\": 1.5}", Err("line 1: ready = 1.5, must be a whole number 0 or more"));
        check(
            "{\"t\": 0, \"ready\": 0, \"readdy\": 1}",
            Err("line 1: unknown field `readdy` (known: t, concurrency, requests, ready, activator_demand, metrics_age)"),
        );
        check("{\"t\": 0, \"ready\": 0, \"concurrency\": -3}", Err("line 1: concurrency = -3, must be a number 0 or more, or null"));
        check("{\"t\": 2, \"ready\": 0}\n\n{\"t\": 1, \"ready\": 0}", Err("line 3: t = 1 is before the previous line's t = 2"));
        check("{\"t\": 0, \"ready\": 0", Err("line 1: not valid JSON: EOF while parsing an object (column 19)"));
        check("[1, 2]", Err("line 1: expected a JSON object such as {\"t\": 0, \"ready\": 1}, found an array"));
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        check(
            "\n   \n{\"t\": 0, \"concurrency\": 0, \"ready\": 0}\n\n",
            Ok(r#"{"t":0.0,"desired":0,"mode":"scale_to_zero","reason":"at zero and no demand"}"#),
        );
        check("\n\n{\"t\": \"soon\", \"ready\": 0}", Err("line 3: t = \"soon\", must be a number of seconds"));
    }

    #[test]
    fn an_invalid_policy_is_refused_before_any_line() {
        let policy = Policy { target_concurrency: 0.0, ..Policy::default() };
        let error = replay(&policy, "{\"t\": 0, \"ready\": 0}").expect_err("target 0 is invalid");
        assert_eq!(error.to_string(), "policy: target_concurrency = 0, must be a number greater than 0");
    }

    /// The shape of a lab session (see testdata/README.md): nothing runs, 40 students arrive at
    /// t = 30, one instance wakes at once, the burst panics up to the maximum of 3, the lab settles
    /// to stable (with one missed scrape held through), the last request is at t = 486, and the app
    /// freezes 60 s after the first silent tick (t = 488) and stops 300 s after it.
    #[test]
    fn a_lecture_burst_wakes_panics_settles_freezes_and_stops() {
        let trace = include_str!("testdata/lecture-burst.jsonl");
        let lines = replay(&Policy::default(), trace).expect("the recorded trace is valid");
        let mut shape: Vec<(f64, Mode)> = Vec::new();
        for line in &lines {
            if shape.last().is_none_or(|(_, mode)| *mode != line.mode) {
                shape.push((line.t, line.mode));
            }
        }
        let expected = [
            (0.0, Mode::ScaleToZero),
            (30.0, Mode::Wake),
            (34.0, Mode::Stable),
            (38.0, Mode::Panic),
            (100.0, Mode::Stable),
            (250.0, Mode::Hold),
            (252.0, Mode::Stable),
            (548.0, Mode::Freeze),
            (788.0, Mode::ScaleToZero),
        ];
        assert_eq!(shape, expected);
        let at = |t: f64| lines.iter().find(|line| line.t == t).expect("tick in trace");
        assert_eq!(at(30.0).desired, 1, "the first demand wakes one instance");
        let panic_peak = lines.iter().filter(|line| line.mode == Mode::Panic).map(|line| line.desired).max();
        assert_eq!(panic_peak, Some(3), "the burst reaches max_instances");
        assert!(lines.iter().all(|line| line.desired <= 3), "max_instances is never exceeded");
        assert_eq!(at(548.0).desired, 1, "one instance is kept, frozen");
        assert_eq!(lines.last().map(|line| line.desired), Some(0));
    }
}
