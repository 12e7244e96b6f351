//! A project's scaling settings: what a student may ask for (`slipway scale`, the project page,
//! `PATCH /api/v1/projects/{name}/scaling`), checked against the admin's caps, and the autoscaler
//! `Policy` they make together with the installation's defaults.
//!
//! Pure: defaults and caps are passed in. It deliberately does not store anything or tell the
//! runtime (`projects::set_scaling` does both).

use std::time::Duration;

use orchestrator::autoscaler::Policy;

use super::ValidationError;
use crate::db::models::ScalingSettings;

/// The installation's defaults and the admin's caps (`[scaling]` in slipway.toml).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub target_concurrency: u32,
    /// Default freeze period; zero means never frozen.
    pub freeze_after: Duration,
    /// Default idle period before the stop; zero means never stopped.
    pub idle: Duration,
    pub max_instances_per_app: u32,
    pub max_min_instances: u32,
    pub max_idle: Duration,
}

/// What a request asks to change; absent fields stay as they are. `reset` first returns every
/// field to the installation's default.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingChange {
    pub min_instances: Option<u32>,
    pub max_instances: Option<u32>,
    /// Idle this long (`5m`, `1h`) and the app is stopped.
    pub idle: Option<String>,
    /// Idle this long and the app is frozen; `0` never freezes.
    pub freeze_after: Option<String>,
    pub target_concurrency: Option<u32>,
    #[serde(default)]
    pub reset: bool,
}

/// The settings in effect, defaults filled in, as pages and the API show them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    pub min_instances: u32,
    pub max_instances: u32,
    /// Seconds; 0 means never stopped.
    pub idle_secs: u64,
    /// Seconds; 0 means never frozen.
    pub freeze_after_secs: u64,
    pub target_concurrency: u32,
    /// Which fields the project set itself (the rest are the installation's defaults).
    pub custom: Vec<&'static str>,
}

fn invalid(field: &'static str, value: impl ToString, rule: impl Into<String>) -> ValidationError {
    let value = value.to_string();
    let rule = rule.into();
    ValidationError::new("invalid_scaling", field, format!("{field} = {value}: {rule}"))
        .with("field", field)
        .with("value", value)
        .with("rule", rule)
}

fn seconds(field: &'static str, text: &str) -> Result<u64, ValidationError> {
    orchestrator::duration::parse(text.trim()).map(|d| d.as_secs()).map_err(|e| invalid(field, text.trim(), e.to_string()))
}

fn to_i32(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Applies `change` to `current` and checks the result against `limits`. Errors name the field,
/// the value and the cap: `max_instances = 9: at most 5 (the administrator's cap)`.
pub fn apply(current: &ScalingSettings, change: &ScalingChange, limits: &Limits) -> Result<ScalingSettings, ValidationError> {
    let mut next = if change.reset { ScalingSettings::default() } else { *current };
    if let Some(n) = change.min_instances {
        if n > limits.max_min_instances {
            return Err(invalid("min_instances", n, format!("at most {} (the administrator's cap)", limits.max_min_instances)));
        }
        next.min_instances = Some(to_i32(n.into()));
    }
    if let Some(n) = change.max_instances {
        if n == 0 {
            return Err(invalid("max_instances", n, "at least 1"));
        }
        if n > limits.max_instances_per_app {
            return Err(invalid("max_instances", n, format!("at most {} (the administrator's cap)", limits.max_instances_per_app)));
        }
        next.max_instances = Some(to_i32(n.into()));
    }
    if let Some(text) = &change.idle {
        let secs = seconds("idle", text)?;
        if secs == 0 {
            return Err(invalid("idle", text.trim(), "at least 1s (every project scales to zero when idle)"));
        }
        if secs > limits.max_idle.as_secs() {
            return Err(invalid(
                "idle",
                text.trim(),
                format!("at most {} (the administrator's cap)", orchestrator::duration::format(limits.max_idle)),
            ));
        }
        next.idle_secs = Some(to_i32(secs));
    }
    if let Some(text) = &change.freeze_after {
        next.freeze_after_secs = Some(to_i32(seconds("freeze_after", text)?));
    }
    if let Some(n) = change.target_concurrency {
        if n == 0 || n > 10_000 {
            return Err(invalid("target_concurrency", n, "between 1 and 10000"));
        }
        next.target_concurrency = Some(to_i32(n.into()));
    }
    let effective = effective(&next, limits);
    if effective.min_instances > effective.max_instances {
        return Err(invalid("min_instances", effective.min_instances, format!("at most max_instances = {}", effective.max_instances)));
    }
    if effective.freeze_after_secs > 0 && effective.idle_secs > 0 && effective.freeze_after_secs > effective.idle_secs {
        return Err(invalid(
            "freeze_after",
            orchestrator::duration::format(Duration::from_secs(effective.freeze_after_secs)),
            format!("at most the idle period, {}", orchestrator::duration::format(Duration::from_secs(effective.idle_secs))),
        ));
    }
    Ok(next)
}

/// The settings in effect: the project's own where it has them, else the defaults, always within
/// the caps (a cap lowered after a project chose more applies at once).
pub fn effective(settings: &ScalingSettings, limits: &Limits) -> Effective {
    let count = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok());
    let secs = |value: Option<i32>| value.and_then(|v| u64::try_from(v).ok());
    let max_instances = count(settings.max_instances).unwrap_or(limits.max_instances_per_app.min(3)).clamp(1, limits.max_instances_per_app);
    let min_instances = count(settings.min_instances).unwrap_or(0).min(limits.max_min_instances).min(max_instances);
    let mut idle_secs = secs(settings.idle_secs).unwrap_or(limits.idle.as_secs());
    if settings.idle_secs.is_some() {
        idle_secs = idle_secs.min(limits.max_idle.as_secs());
    }
    let custom = [
        ("min_instances", settings.min_instances.is_some()),
        ("max_instances", settings.max_instances.is_some()),
        ("idle", settings.idle_secs.is_some()),
        ("freeze_after", settings.freeze_after_secs.is_some()),
        ("target_concurrency", settings.target_concurrency.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    Effective {
        min_instances,
        max_instances,
        idle_secs,
        freeze_after_secs: secs(settings.freeze_after_secs).unwrap_or(limits.freeze_after.as_secs()),
        target_concurrency: count(settings.target_concurrency).unwrap_or(limits.target_concurrency).max(1),
        custom,
    }
}

/// The autoscaler policy for these settings: Knative's windows and rates as defaults, the
/// project's counts, target and tiers.
pub fn policy(settings: &ScalingSettings, limits: &Limits) -> Policy {
    let effective = effective(settings, limits);
    let tier = |secs: u64| (secs > 0).then_some(secs as f64);
    let idle_to_zero_s = tier(effective.idle_secs);
    let freeze_after_s = tier(effective.freeze_after_secs).map(|freeze| idle_to_zero_s.map_or(freeze, |idle| freeze.min(idle)));
    Policy {
        target_concurrency: f64::from(effective.target_concurrency),
        min_instances: effective.min_instances,
        max_instances: effective.max_instances,
        freeze_after_s,
        idle_to_zero_s,
        ..Policy::default()
    }
}

/// Cold starts and thaws of one app, summarised for the project page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WakeSummary {
    /// Wakes from the stopped tier: how many, and the p50 and p99 of their total time (ms).
    pub cold: (usize, Option<f64>, Option<f64>),
    /// Thaws from the frozen tier, likewise.
    pub thaw: (usize, Option<f64>, Option<f64>),
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method: the smallest value with at
/// least `q` of the values at or below it. p50 of [1, 2, 3, 4] is 2; p99 of ten values is the tenth.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Splits wake records (tier, total ms) into cold starts and thaws with their p50 and p99.
pub fn wake_summary<'a>(wakes: impl IntoIterator<Item = (&'a str, f64)>) -> WakeSummary {
    let (mut cold, mut thaw) = (Vec::new(), Vec::new());
    for (tier, total_ms) in wakes {
        if tier == "frozen" {
            thaw.push(total_ms)
        } else {
            cold.push(total_ms)
        }
    }
    let summary = |values: &[f64]| (values.len(), percentile(values, 0.5), percentile(values, 0.99));
    WakeSummary { cold: summary(&cold), thaw: summary(&thaw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            target_concurrency: 10,
            freeze_after: Duration::from_secs(60),
            idle: Duration::from_secs(300),
            max_instances_per_app: 5,
            max_min_instances: 1,
            max_idle: Duration::from_secs(3600),
        }
    }

    fn change(json: &str) -> ScalingChange {
        serde_json::from_str(json).expect("test changes are valid JSON")
    }

    fn check(json: &str, expected: Result<(u32, u32, u64, u64, u32), &str>) {
        let got = apply(&ScalingSettings::default(), &change(json), &limits()).map(|s| effective(&s, &limits()));
        match (got, expected) {
            (Ok(e), Ok(want)) => {
                assert_eq!((e.min_instances, e.max_instances, e.idle_secs, e.freeze_after_secs, e.target_concurrency), want, "{json}")
            }
            (Err(e), Err(detail)) => assert_eq!(e.detail, detail, "{json}"),
            (got, want) => panic!("{json}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(2.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 0.99), Some(10.0));
        assert_eq!(percentile(&ten, 0.9), Some(9.0));
        assert_eq!(percentile(&[], 0.5), None);
        let summary = wake_summary([("stopped", 300.0), ("frozen", 2.0), ("stopped", 100.0), ("frozen", 4.0), ("stopped", 200.0)]);
        assert_eq!(summary.cold, (3, Some(200.0), Some(300.0)));
        assert_eq!(summary.thaw, (2, Some(2.0), Some(4.0)));
    }

    #[test]
    fn changes_are_checked_against_the_caps() {
        check("{}", Ok((0, 3, 300, 60, 10)));
        check(
            r#"{"min_instances": 1, "max_instances": 5, "idle": "30m", "freeze_after": "2m", "target_concurrency": 4}"#,
            Ok((1, 5, 1800, 120, 4)),
        );
        check(r#"{"freeze_after": "0"}"#, Ok((0, 3, 300, 0, 10)));
        check(r#"{"max_instances": 9}"#, Err("max_instances = 9: at most 5 (the administrator's cap)"));
        check(r#"{"max_instances": 0}"#, Err("max_instances = 0: at least 1"));
        check(r#"{"min_instances": 2}"#, Err("min_instances = 2: at most 1 (the administrator's cap)"));
        check(r#"{"idle": "2h"}"#, Err("idle = 2h: at most 1h (the administrator's cap)"));
        check(r#"{"idle": "0"}"#, Err("idle = 0: at least 1s (every project scales to zero when idle)"));
        check(r#"{"idle": "soon"}"#, Err("idle = soon: `soon` is not a duration (use a number with a unit: 500ms, 30s, 5m, 24h, 7d)"));
        check(r#"{"idle": "1m", "freeze_after": "5m"}"#, Err("freeze_after = 5m: at most the idle period, 1m"));
        check(r#"{"target_concurrency": 0}"#, Err("target_concurrency = 0: between 1 and 10000"));
    }

    #[test]
    fn reset_returns_to_the_defaults_and_unknown_fields_are_refused() {
        let custom = apply(&ScalingSettings::default(), &change(r#"{"max_instances": 4}"#), &limits()).expect("valid");
        let reset = apply(&custom, &change(r#"{"reset": true}"#), &limits()).expect("valid");
        assert_eq!(reset, ScalingSettings::default());
        assert!(serde_json::from_str::<ScalingChange>(r#"{"max": 3}"#).is_err());
    }

    #[test]
    fn a_lowered_cap_applies_to_settings_chosen_before() {
        let settings = ScalingSettings { max_instances: Some(5), min_instances: Some(1), idle_secs: Some(3600), ..Default::default() };
        let lowered = Limits { max_instances_per_app: 2, max_min_instances: 0, max_idle: Duration::from_secs(600), ..limits() };
        let e = effective(&settings, &lowered);
        assert_eq!((e.min_instances, e.max_instances, e.idle_secs), (0, 2, 600));
    }

    #[test]
    fn the_policy_carries_the_counts_the_target_and_the_tiers() {
        let settings = ScalingSettings {
            max_instances: Some(4),
            freeze_after_secs: Some(0),
            idle_secs: Some(120),
            target_concurrency: Some(2),
            ..Default::default()
        };
        let policy = policy(&settings, &limits());
        assert_eq!((policy.min_instances, policy.max_instances, policy.target_concurrency), (0, 4, 2.0));
        assert_eq!((policy.freeze_after_s, policy.idle_to_zero_s), (None, Some(120.0)));
        assert_eq!(policy.validate(), Ok(()));
        let defaults = super::policy(&ScalingSettings::default(), &limits());
        assert_eq!((defaults.freeze_after_s, defaults.idle_to_zero_s), (Some(60.0), Some(300.0)));
    }
}
