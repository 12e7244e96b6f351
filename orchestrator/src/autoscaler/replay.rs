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
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceLine {
    t: f64,
    #[serde(default)]
    concurrency: Option<f64>,
    #[serde(default)]
    requests: Option<f64>,
    ready: u32,
    #[serde(default)]
    activator_demand: u32,
    #[serde(default)]
    metrics_age: Option<f64>,
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
        let line: TraceLine = serde_json::from_str(text).map_err(|error| bad(describe_json_error(&error)))?;
        for (field, value) in [("concurrency", line.concurrency), ("requests", line.requests), ("metrics_age", line.metrics_age)] {
            if let Some(value) = value.filter(|value| *value < 0.0) {
                return Err(bad(format!("{field} = {value}, must be 0 or more")));
            }
        }
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

/// serde_json's message without its "at line 1 column 7" suffix, which counts within the line
/// and would contradict our line number; the column stays, said plainly.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(bare) => format!("{bare} (column {})", error.column()),
        None => message,
    }
}
