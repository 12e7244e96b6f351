//! The autoscaler's decision: how many instances an app should have right now, and why.
//!
//! `decide(&Policy, &Snapshot, &ScalerState, now) -> Decision` is a calculation. The caller
//! measures (the gateway counts in-flight requests; the runtime counts ready instances), passes
//! the time in as seconds, and keeps `Decision::next_state` for the next tick. Nothing here reads
//! a clock, a metric or the runtime, so every test is a table of ticks.
//!
//! The rules follow Knative's KPA: the stable window (60 s) sizes the app, the panic window (6 s)
//! reacts to bursts, and rate limits stop one noisy tick from moving everything. Slipway adds a
//! freeze tier before zero and treats missing metrics as unknown.
//!
//! ```text
//!                request                  ready            6 s load ≥ 2× ready capacity
//!   ScaleToZero ─────────▶ Wake ─────────────────▶ Stable ─────────────────────────────▶ Panic
//!        ▲                                        ▲    │ ◀───────────────────────────────
//!        │                                request │    │ idle 60 s    no tick over the threshold
//!        │                                        │    ▼              for a stable window (60 s)
//!        └──────────────── idle 300 s ────────── Freeze
//!
//!   ScaleToZero → Wake     the activator holds a request, or load is seen with 0 ready: desired ≥ 1
//!                          at once, without waiting for the windows
//!   Wake → Stable          an instance is ready; from here the windows size the app
//!   Stable → Panic         the panic-window load reaches panic_threshold × the ready capacity
//!   Panic → Stable         a stable window passes with no tick over the threshold
//!   Stable → Freeze        known-zero traffic for freeze_after_s: keep the instances, frozen
//!   Freeze → Stable        any request (the runtime thaws the instances; if it reports frozen
//!                          instances as not ready, the same request is a Wake instead)
//!   Freeze → ScaleToZero   known-zero traffic for idle_to_zero_s and min_instances = 0
//!   any → Hold             concurrency missing or stale: keep the count and the state; unknown
//!                          load never scales down and never counts as idle
//! ```
//!
//! "Idle" means known-zero traffic: concurrency 0, no requests and no activator demand, measured
//! from the first such tick. Any unknown tick restarts the idle clock. Being slow to reach zero
//! costs some memory; stopping a busy app by mistake costs every visitor a cold start.
//!
//! Units: time and durations are seconds as `f64`; concurrency is requests in flight, averaged
//! over the tick; counts of instances are `u32`.
//!
//! Pure: no I/O, no clock, no async. It deliberately does not talk to the runtime, retry, know
//! what freezing is implemented with (cgroup freezer, SIGSTOP) or enforce cluster-wide capacity
//! beyond `GlobalCaps`; those belong to the loop in `autoscaler/mod.rs` and to `runtime`.

use super::window::Window;

/// An app's scaling policy. The portal publishes it; operators and students see these fields,
/// so each `///` is the documentation. Durations are seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Requests in flight one instance should handle. 10 means 25 concurrent requests want
    /// 3 instances. Must be greater than 0.
    pub target_concurrency: f64,
    /// Instances kept even when idle. 0 lets the app scale to zero.
    pub min_instances: u32,
    /// Instances never exceeded, whatever the load. At least 1, and at least `min_instances`.
    pub max_instances: u32,
    /// Seconds of concurrency averaged for normal sizing. Longer is calmer but slower.
    pub stable_window_s: f64,
    /// Seconds of concurrency averaged to detect bursts. At most `stable_window_s`.
    pub panic_window_s: f64,
    /// Enter panic when the panic-window load reaches this multiple of the ready instances'
    /// capacity. 2.0 means 200%. Must be greater than 1.
    pub panic_threshold: f64,
    /// Per tick, grow to at most this multiple of the ready instances. Must be greater than 1.
    pub max_scale_up_rate: f64,
    /// Per tick, shrink to no less than the current count divided by this. Must be greater than 1.
    pub max_scale_down_rate: f64,
    /// Seconds a higher count is remembered before scaling down to a lower one. 0 turns it off.
    pub scale_down_delay_s: f64,
    /// Seconds of known-zero traffic after which instances are frozen (memory kept, thawed by the
    /// next request). `null` (`None`) never freezes.
    pub freeze_after_s: Option<f64>,
    /// Seconds of known-zero traffic after which every instance is stopped (unless
    /// `min_instances` keeps some). At least `freeze_after_s`. `null` (`None`) never stops.
    pub idle_to_zero_s: Option<f64>,
    /// Metrics older than this many seconds are unknown and never scale down. Two scrape
    /// intervals of 2 s by default.
    pub max_metrics_age_s: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            target_concurrency: 10.0,
            min_instances: 0,
            max_instances: 3,
            stable_window_s: 60.0,
            panic_window_s: 6.0,
            panic_threshold: 2.0,
            max_scale_up_rate: 10.0,
            max_scale_down_rate: 2.0,
            scale_down_delay_s: 0.0,
            freeze_after_s: Some(60.0),
            idle_to_zero_s: Some(300.0),
            max_metrics_age_s: 4.0,
        }
    }
}

/// Limits the operator sets for every app, whatever its own policy says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalCaps {
    /// No app runs more instances than this.
    pub max_instances_per_app: u32,
}

/// Why a policy was refused. Messages name the field and its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field} = {value}, must be {rule}")]
    Invalid { field: &'static str, value: String, rule: &'static str },
    #[error("{field} = {value} is greater than {other_field} = {other_value}")]
    GreaterThan { field: &'static str, value: String, other_field: &'static str, other_value: String },
}

impl Policy {
    /// Checks every field and returns the first problem found.
    pub fn validate(&self) -> Result<(), PolicyError> {
        fn invalid(field: &'static str, value: impl ToString, rule: &'static str) -> Result<(), PolicyError> {
            Err(PolicyError::Invalid { field, value: value.to_string(), rule })
        }
        let positive = [
            ("target_concurrency", self.target_concurrency),
            ("stable_window_s", self.stable_window_s),
            ("panic_window_s", self.panic_window_s),
            ("max_metrics_age_s", self.max_metrics_age_s),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return invalid(field, value, "a number greater than 0");
            }
        }
        let above_one = [
            ("panic_threshold", self.panic_threshold),
            ("max_scale_up_rate", self.max_scale_up_rate),
            ("max_scale_down_rate", self.max_scale_down_rate),
        ];
        for (field, value) in above_one {
            if !(value.is_finite() && value > 1.0) {
                return invalid(field, value, "a number greater than 1");
            }
        }
        let not_negative = [
            ("scale_down_delay_s", Some(self.scale_down_delay_s)),
            ("freeze_after_s", self.freeze_after_s),
            ("idle_to_zero_s", self.idle_to_zero_s),
        ];
        for (field, value) in not_negative {
            let Some(value) = value else { continue };
            if !(value.is_finite() && value >= 0.0) {
                return invalid(field, value, "a number of seconds, 0 or more");
            }
        }
        if self.max_instances == 0 {
            return invalid("max_instances", 0, "at least 1");
        }
        let greater = |field, value: &dyn ToString, other_field, other_value: &dyn ToString| {
            Err(PolicyError::GreaterThan { field, value: value.to_string(), other_field, other_value: other_value.to_string() })
        };
        if self.min_instances > self.max_instances {
            return greater("min_instances", &self.min_instances, "max_instances", &self.max_instances);
        }
        if self.panic_window_s > self.stable_window_s {
            return greater("panic_window_s", &self.panic_window_s, "stable_window_s", &self.stable_window_s);
        }
        if let (Some(freeze_after_s), Some(idle_to_zero_s)) = (self.freeze_after_s, self.idle_to_zero_s) {
            if freeze_after_s > idle_to_zero_s {
                return greater("freeze_after_s", &freeze_after_s, "idle_to_zero_s", &idle_to_zero_s);
            }
        }
        Ok(())
    }

    /// The policy with the operator's caps applied: `max_instances` and `min_instances` are lowered
    /// to `caps.max_instances_per_app` (but `max_instances` stays at least 1).
    pub fn clamp(&self, caps: &GlobalCaps) -> Policy {
        let cap = caps.max_instances_per_app.max(1);
        Policy { max_instances: self.max_instances.min(cap), min_instances: self.min_instances.min(cap), ..self.clone() }
    }
}

/// What was measured for one app during one tick.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Instances that passed their readiness check and receive traffic.
    pub ready_instances: u32,
    /// Requests in flight, averaged over the tick, including requests the activator holds.
    /// `None` when the scrape failed: unknown, never zero.
    pub concurrency: Option<f64>,
    /// Requests that arrived during the tick. `None` when not counted. Catches requests so short
    /// that they barely move the concurrency average.
    pub requests: Option<f64>,
    /// Requests the activator is holding because the app has no ready instance.
    pub activator_demand: u32,
    /// Seconds since the metrics above were scraped. `None` when the caller measured them this tick.
    pub metrics_age_s: Option<f64>,
}

/// A panic episode, remembered between ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Panic {
    /// When the panic began.
    pub since: f64,
    /// The last tick whose panic-window load was over the threshold; the panic ends a stable
    /// window after it.
    pub last_over_at: f64,
    /// The highest count asked for during this panic; panic never asks for less.
    pub max_desired: u32,
}

/// What the autoscaler remembers about one app between ticks. Plain data: the caller keeps it
/// (in memory, or serialized) and passes it back in.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScalerState {
    /// Known concurrency samples, kept for the longer of the two windows.
    pub concurrency: Window,
    /// Recent desired counts, kept for `scale_down_delay_s`.
    pub recent_desired: Window,
    /// The count the last decision asked for; `None` before the first tick.
    pub desired: Option<u32>,
    /// The time of the last tick decided.
    pub last_tick_at: Option<f64>,
    /// The last tick with any request, concurrency or activator demand.
    pub last_active_at: Option<f64>,
    /// The first tick of the current run of known-zero traffic; `None` while busy or unknown.
    pub idle_since: Option<f64>,
    /// The current panic, if any.
    pub panic: Option<Panic>,
    /// When `desired` last changed.
    pub last_scale_at: Option<f64>,
}

/// The state an app should be in, named for what the runtime should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Start instances now: requests are waiting and nothing is ready.
    Wake,
    /// Sized by the stable window.
    Stable,
    /// Sized by the panic window; never scales down.
    Panic,
    /// Load is unknown (missing or stale metrics, or time went backwards): keep the current count
    /// and change nothing else (frozen instances stay frozen).
    Hold,
    /// Idle: keep `desired` instances but freeze them until a request arrives.
    Freeze,
    /// Idle long enough: stop every instance (or stay stopped).
    ScaleToZero,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Wake => "wake",
            Mode::Stable => "stable",
            Mode::Panic => "panic",
            Mode::Hold => "hold",
            Mode::Freeze => "freeze",
            Mode::ScaleToZero => "scale_to_zero",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Instances the app should have. The runtime starts or stops instances to match.
    pub desired: u32,
    pub mode: Mode,
    /// One human sentence: the numbers that led here. Shown in logs and `slipway autoscaler replay`.
    pub reason: String,
    /// The state to pass to the next tick.
    pub next_state: ScalerState,
}

/// The load a snapshot tells us about, once staleness and nonsense are filtered out.
enum Load {
    Known { concurrency: f64 },
    Unknown { why: String },
}

/// Decides how many instances the app should have at `now` (seconds).
///
/// The policy should have passed `Policy::validate`; an invalid one does not panic, but its
/// decisions are whatever the arithmetic gives. The order of the rules is the order of the
/// state machine in the module docs: wake, hold, zero, then stable or panic, then freeze.
pub fn decide(policy: &Policy, snapshot: &Snapshot, state: &ScalerState, now: f64) -> Decision {
    let ready = snapshot.ready_instances;
    let current = state.desired.unwrap_or(ready);
    let mut next = state.clone();

    if !now.is_finite() || state.last_tick_at.is_some_and(|last| now < last) {
        let last = state.last_tick_at.map_or_else(|| "never".to_owned(), num);
        let desired = within_policy(policy, current);
        return finish(
            next,
            now,
            desired,
            Mode::Hold,
            format!("time went backwards (now = {}, last tick at {last}): holding {desired}", num(now)),
        );
    }
    next.last_tick_at = Some(now);

    let load = observe(policy, snapshot);
    let requests = snapshot.requests.filter(|requests| requests.is_finite() && *requests > 0.0).unwrap_or(0.0);
    let known_concurrency = match load {
        Load::Known { concurrency } => Some(concurrency),
        Load::Unknown { .. } => None,
    };
    let busy = snapshot.activator_demand > 0 || requests > 0.0 || known_concurrency.is_some_and(|concurrency| concurrency > 0.0);

    // The idle clock runs only through known-zero ticks: see the module docs.
    if busy {
        next.last_active_at = Some(now);
        next.idle_since = None;
    } else if ready == 0 {
        // Nothing runs, so nothing is idle: the clock starts again at the first tick an instance
        // is ready, however the app was woken (the activator may wake it between two ticks, and
        // its first request then shows in no counter yet). Test:
        // `an_app_woken_between_ticks_gets_a_fresh_idle_clock`.
        next.idle_since = None;
    } else if known_concurrency.is_some() {
        next.idle_since.get_or_insert(now);
    } else {
        next.idle_since = None;
    }
    if let Some(concurrency) = known_concurrency {
        next.concurrency.record(now, concurrency);
    }
    next.concurrency.prune(now, policy.stable_window_s.max(policy.panic_window_s));

    // Wake does not wait for the windows: a visitor is waiting on a cold start already.
    // Test: `activator_demand_at_zero_wakes_one_instance_at_once`.
    if ready == 0 && busy {
        let desired = within_policy(policy, current.max(1));
        let why = if snapshot.activator_demand > 0 {
            format!("{} requests held by the activator", snapshot.activator_demand)
        } else {
            format!("load seen (concurrency {}, {} requests)", num(known_concurrency.unwrap_or(0.0)), num(requests))
        };
        return finish(next, now, desired, Mode::Wake, format!("{why} and no instance ready: wake {desired} now"));
    }

    if let Load::Unknown { why } = load {
        let desired = within_policy(policy, current);
        return finish(next, now, desired, Mode::Hold, format!("{why}: holding {desired}, because unknown load never scales down"));
    }

    if ready == 0 && current == 0 {
        if policy.min_instances == 0 {
            return finish(next, now, 0, Mode::ScaleToZero, "at zero and no demand".to_owned());
        }
        let desired = within_policy(policy, 0);
        return finish(next, now, desired, Mode::Stable, format!("min_instances = {desired} keeps {desired} running"));
    }

    let idle_for = next.idle_since.map(|since| now - since);
    if let (Some(idle_for), Some(idle_to_zero_s), 0) = (idle_for, policy.idle_to_zero_s, policy.min_instances) {
        if idle_for >= idle_to_zero_s {
            next.panic = None;
            let reason = format!("idle for {} s (idle_to_zero_s = {}): stop every instance", num(idle_for), num(idle_to_zero_s));
            return finish(next, now, 0, Mode::ScaleToZero, reason);
        }
    }

    let (Some(stable_average), Some(panic_average)) =
        (next.concurrency.average(now, policy.stable_window_s), next.concurrency.average(now, policy.panic_window_s))
    else {
        // Unreachable while this tick's sample was recorded, but a hold is the safe answer anyway.
        let desired = within_policy(policy, current);
        return finish(next, now, desired, Mode::Hold, format!("no concurrency sample in the windows: holding {desired}"));
    };

    let mut notes: Vec<String> = Vec::new();
    let want_stable = instances_for(stable_average, policy.target_concurrency);
    let want_panic = instances_for(panic_average, policy.target_concurrency);

    // Panic compares the burst with what the ready instances can take. Worked example (test
    // `a_spike_enters_panic_scales_up_on_the_panic_window_and_never_scales_down_while_panicking`):
    // one ready instance at target 10 has capacity 10; panic-window samples 10, 10 and 60 average
    // 26.7, which is 2.67x capacity, over the 2.0x threshold, so the app panics. With no ready
    // instance the capacity of one is assumed, as Knative does, so the ratio stays finite.
    let capacity = policy.target_concurrency * f64::from(ready.max(1));
    let load_ratio = panic_average / capacity;
    let over_threshold = load_ratio >= policy.panic_threshold;
    let mut left_panic = false;
    match (&mut next.panic, over_threshold) {
        (Some(panic), true) => panic.last_over_at = now,
        (None, true) => next.panic = Some(Panic { since: now, last_over_at: now, max_desired: 0 }),
        (Some(panic), false) if now - panic.last_over_at >= policy.stable_window_s => {
            next.panic = None;
            left_panic = true;
        }
        _ => {}
    }

    // Rate limits, per tick. Worked example (test `a_ramp_scales_up_step_by_step_within_the_rate_limit`):
    // with max_scale_up_rate 2 and 4 ready instances the app may grow to ceil(2 * 4) = 8 this tick,
    // even if the load wants 40. The limit is measured on ready instances, not on what was asked
    // for, so instances that cannot start do not compound; it is never below 1, so an app at zero
    // can wake, and never below the current count, so the up limit never scales anything down.
    // Scaling down, with max_scale_down_rate 2 and 5 instances, goes no lower than ceil(5 / 2) = 3
    // (test `panic_ends_after_a_calm_stable_window`). The down limit is measured on the larger of
    // ready and current, so a runtime that is slow to stop instances slows the next step too.
    let up_limit = ceil_count(policy.max_scale_up_rate * f64::from(ready)).max(1).max(current);
    let down_reference = ready.max(current);
    let down_limit = ceil_count(f64::from(down_reference) / policy.max_scale_down_rate);
    let limit = |want: u32| want.max(down_limit).min(up_limit);

    // Outside panic the stable window sizes the app, but a scale-down never goes below what the
    // last panic window of load needs. Knative lacks this guard, and it matters after a ramp:
    // when the panic ends, the 60 s average still remembers the climb. Worked example (test
    // `leaving_panic_at_a_steady_peak_does_not_scale_down`): 41 instances carry a steady 410, but
    // the 60 s average is 296 because of the ramp, so stable alone would drop to 30 and climb back;
    // the panic window's 410 wants 41, so the app stays at 41.
    let want = match &next.panic {
        Some(_) => want_stable.max(want_panic),
        None if want_stable < current => want_stable.max(want_panic.min(current)),
        None => want_stable,
    };
    let mut desired = limit(want);
    if let Some(panic) = &next.panic {
        desired = desired.max(panic.max_desired).max(current);
    } else if want > want_stable {
        notes.push(format!("scale-down held at {want} by the {} s average concurrency {}", num(policy.panic_window_s), num(panic_average)));
    }
    if want > up_limit {
        notes.push(format!("scale-up limited to {up_limit} ({}x of {ready} ready)", num(policy.max_scale_up_rate)));
    } else if want < down_limit && desired == down_limit && down_limit > policy.min_instances.max(1) {
        notes.push(format!("scale-down limited to {down_limit} ({down_reference} / {})", num(policy.max_scale_down_rate)));
    }

    if policy.scale_down_delay_s > 0.0 {
        next.recent_desired.record(now, f64::from(desired));
        next.recent_desired.prune(now, policy.scale_down_delay_s);
        let remembered = next.recent_desired.max(now, policy.scale_down_delay_s).map_or(desired, |max| max as u32);
        if remembered > desired {
            notes.push(format!("kept at {remembered} by scale_down_delay_s = {}", num(policy.scale_down_delay_s)));
            desired = remembered;
        }
    }

    // Only the idle rule above reaches zero; until then a running app keeps one instance.
    let floor = policy.min_instances.max(1);
    if desired < floor {
        notes.push(if policy.min_instances > 0 {
            format!("raised to min_instances = {floor}")
        } else {
            match policy.idle_to_zero_s {
                Some(idle_to_zero_s) => format!("kept at 1 until idle for {} s", num(idle_to_zero_s)),
                None => "kept at 1 (idle_to_zero_s is off)".to_owned(),
            }
        });
        desired = floor;
    }
    if desired > policy.max_instances {
        notes.push(format!("capped at max_instances = {}", policy.max_instances));
        desired = policy.max_instances;
    }

    let (mode, mut reason) = if let Some(panic) = &mut next.panic {
        panic.max_desired = desired;
        let reason = if over_threshold {
            format!(
                "panic: {} s average concurrency {} is {}x the capacity of {} ready (threshold {}x): {desired} instances, no scale-down during panic",
                num(policy.panic_window_s),
                num(panic_average),
                num(load_ratio),
                ready,
                num(policy.panic_threshold)
            )
        } else {
            format!(
                "panic since t = {}; load last over {}x capacity at t = {}, panic ends {} s after that: {desired} instances, no scale-down during panic",
                num(panic.since),
                num(policy.panic_threshold),
                num(panic.last_over_at),
                num(policy.stable_window_s)
            )
        };
        (Mode::Panic, reason)
    } else {
        let sized = format!(
            "{} s average concurrency {} / target {} = {want_stable}",
            num(policy.stable_window_s),
            num(stable_average),
            num(policy.target_concurrency)
        );
        let frozen_for = match (idle_for, policy.freeze_after_s) {
            (Some(idle_for), Some(freeze_after_s)) if idle_for >= freeze_after_s => Some((idle_for, freeze_after_s)),
            _ => None,
        };
        match frozen_for {
            Some((idle_for, freeze_after_s)) => {
                let then = match policy.idle_to_zero_s {
                    _ if policy.min_instances > 0 => format!("min_instances = {} keeps them", policy.min_instances),
                    Some(idle_to_zero_s) => format!("stop in {} s", num(idle_to_zero_s - idle_for)),
                    None => "never stopped (idle_to_zero_s is off)".to_owned(),
                };
                let reason =
                    format!("idle for {} s (freeze_after_s = {}): keep {desired} frozen; {then}", num(idle_for), num(freeze_after_s));
                (Mode::Freeze, reason)
            }
            None if left_panic => {
                (Mode::Stable, format!("panic over (no tick over the threshold for {} s); {sized}", num(policy.stable_window_s)))
            }
            None => (Mode::Stable, sized),
        }
    };
    for note in notes {
        reason.push_str("; ");
        reason.push_str(&note);
    }
    finish(next, now, desired, mode, reason)
}

/// Records the decision in the state that goes to the next tick.
fn finish(mut next: ScalerState, now: f64, desired: u32, mode: Mode, reason: String) -> Decision {
    if next.desired != Some(desired) {
        if next.desired.is_some() && now.is_finite() {
            next.last_scale_at = Some(now);
        }
        next.desired = Some(desired);
    }
    Decision { desired, mode, reason, next_state: next }
}

fn observe(policy: &Policy, snapshot: &Snapshot) -> Load {
    if let Some(age) = snapshot.metrics_age_s {
        if age.is_nan() || age > policy.max_metrics_age_s {
            return Load::Unknown {
                why: format!("metrics are {} s old (max_metrics_age_s = {})", num(age), num(policy.max_metrics_age_s)),
            };
        }
    }
    match snapshot.concurrency {
        None => Load::Unknown { why: "no concurrency sample this tick".to_owned() },
        Some(concurrency) if !(concurrency.is_finite() && concurrency >= 0.0) => {
            Load::Unknown { why: format!("concurrency {concurrency} is not a count of requests") }
        }
        Some(concurrency) => Load::Known { concurrency },
    }
}

/// `count` brought inside `[min_instances, max_instances]`; `max_instances` wins if they cross.
fn within_policy(policy: &Policy, count: u32) -> u32 {
    count.max(policy.min_instances).min(policy.max_instances)
}

/// Instances needed to carry `concurrency` at `target` each: 25 at 10 needs ceil(2.5) = 3
/// (test `steady_load_holds_at_ceil_of_concurrency_over_target`).
fn instances_for(concurrency: f64, target: f64) -> u32 {
    ceil_count(concurrency / target)
}

/// Rounds up to a count. A tiny epsilon keeps floating-point noise from adding an instance:
/// three samples of 20 average to 20.000000000000004, which must still need 2 at target 10.
fn ceil_count(value: f64) -> u32 {
    // `as` saturates: NaN and negatives give 0, huge values give u32::MAX.
    (value - 1e-9).ceil() as u32
}

/// Formats a number for a reason: whole numbers without decimals, others with up to two.
fn num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tick of a scenario. `ready: None` means the runtime did what the previous decision
    /// asked, instantly; `Some(n)` pins what the runtime had.
    #[derive(Clone)]
    struct Tick {
        ready: Option<u32>,
        snapshot: Snapshot,
    }

    /// A tick with `concurrency` in flight and as many requests arriving.
    fn load(concurrency: f64) -> Tick {
        Tick { ready: None, snapshot: Snapshot { concurrency: Some(concurrency), requests: Some(concurrency), ..Snapshot::default() } }
    }

    fn silent() -> Tick {
        load(0.0)
    }

    /// A tick whose scrape failed.
    fn unknown() -> Tick {
        Tick { ready: None, snapshot: Snapshot::default() }
    }

    impl Tick {
        fn ready(mut self, n_instances: u32) -> Self {
            self.ready = Some(n_instances);
            self
        }

        fn metrics_age(mut self, age_s: f64) -> Self {
            self.snapshot.metrics_age_s = Some(age_s);
            self
        }

        fn activator_demand(mut self, n_requests: u32) -> Self {
            self.snapshot.activator_demand = n_requests;
            self
        }
    }

    /// `tick` repeated every 2 s from `from` to `to`, both included.
    fn every_2s(from: u32, to: u32, tick: Tick) -> Vec<(f64, Tick)> {
        (from..=to).step_by(2).map(|t| (f64::from(t), tick.clone())).collect()
    }

    /// Runs the ticks in order through `decide`, carrying the state, and compares the decisions,
    /// written as runs: `0..58: 3 stable` means every tick from t = 0 to t = 58 decided 3 instances
    /// in stable mode. Hold runs also show their reason, since saying why is the point of a hold.
    /// Before the first tick the runtime has `start_ready` instances.
    fn check(policy: &Policy, start_ready: u32, ticks: &[Vec<(f64, Tick)>], expected: &str) {
        let mut state = ScalerState::default();
        let mut ready = start_ready;
        let mut runs: Vec<(f64, f64, String)> = Vec::new();
        for (t, tick) in ticks.iter().flatten() {
            ready = tick.ready.unwrap_or(ready);
            let snapshot = Snapshot { ready_instances: ready, ..tick.snapshot.clone() };
            let decision = decide(policy, &snapshot, &state, *t);
            let shown = match decision.mode {
                Mode::Hold => format!("{} hold: {}", decision.desired, decision.reason),
                mode => format!("{} {mode}", decision.desired),
            };
            match runs.last_mut() {
                Some((_, last_t, last_shown)) if *last_shown == shown => *last_t = *t,
                _ => runs.push((*t, *t, shown)),
            }
            ready = decision.desired;
            state = decision.next_state;
        }
        let actual: Vec<String> = runs
            .into_iter()
            .map(|(from, to, shown)| if from == to { format!("{from}: {shown}") } else { format!("{from}..{to}: {shown}") })
            .collect();
        let expected: Vec<&str> = expected.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
        assert_eq!(actual, expected, "\nactual:\n{}\n", actual.join("\n"));
    }

    fn policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn steady_load_holds_at_ceil_of_concurrency_over_target() {
        check(&policy(), 3, &[every_2s(0, 120, load(25.0))], "0..120: 3 stable");
        check(&policy(), 2, &[every_2s(0, 120, load(20.0))], "0..120: 2 stable");
        check(&policy(), 2, &[every_2s(0, 120, load(20.5))], "0..120: 3 stable");
        check(&policy(), 1, &[every_2s(0, 120, load(0.5))], "0..120: 1 stable");
    }

    #[test]
    fn a_ramp_scales_up_step_by_step_within_the_rate_limit() {
        let policy = Policy { max_instances: 100, max_scale_up_rate: 2.0, ..policy() };
        // The load climbs from 10 to 400 in 10 s, far faster than doubling every tick.
        let ramp: Vec<(f64, Tick)> = (0..=5u32).map(|step| (f64::from(step * 2), load(10.0 + 78.0 * f64::from(step)))).collect();
        check(
            &policy,
            1,
            &[ramp, every_2s(12, 40, load(400.0))],
            "
            0: 1 stable
            2: 2 panic
            4: 4 panic
            6: 8 panic
            8: 16 panic
            10: 32 panic
            12: 38 panic
            14..40: 40 panic
        ",
        );
    }

    #[test]
    fn leaving_panic_at_a_steady_peak_does_not_scale_down() {
        let policy = Policy { max_instances: 100, max_scale_up_rate: 2.0, ..policy() };
        // The load climbs by 20 every tick for 40 s, then stays at 410.
        let ramp: Vec<(f64, Tick)> = (0..=20u32).map(|step| (f64::from(step * 2), load(10.0 + 20.0 * f64::from(step)))).collect();
        check(
            &policy,
            1,
            &[ramp, every_2s(42, 180, load(410.0))],
            "
            0: 1 stable
            2: 2 panic
            4: 3 panic
            6: 5 panic
            8: 7 panic
            10: 9 panic
            12: 11 panic
            14: 13 panic
            16: 15 panic
            18: 17 panic
            20: 19 panic
            22: 21 panic
            24: 23 panic
            26: 25 panic
            28: 27 panic
            30: 29 panic
            32: 31 panic
            34: 33 panic
            36: 35 panic
            38: 37 panic
            40: 39 panic
            42..60: 41 panic
            62..180: 41 stable
        ",
        );
    }

    #[test]
    fn scale_up_is_limited_by_ready_instances_not_by_what_was_asked_for() {
        let policy = Policy { max_instances: 100, ..policy() };
        check(&policy, 1, &[every_2s(0, 20, load(500.0).ready(1))], "0..20: 10 panic");
    }

    #[test]
    fn a_spike_enters_panic_scales_up_on_the_panic_window_and_never_scales_down_while_panicking() {
        let policy = Policy { max_instances: 10, ..policy() };
        check(
            &policy,
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 70, load(60.0)), every_2s(72, 200, load(5.0))],
            "
            0..58: 1 stable
            60: 3 panic
            62: 5 panic
            64..118: 6 panic
            120: 3 stable
            122..124: 2 stable
            126..200: 1 stable
        ",
        );
    }

    #[test]
    fn panic_ends_after_a_calm_stable_window() {
        let policy = Policy { max_instances: 10, ..policy() };
        check(
            &policy,
            1,
            &[every_2s(0, 20, load(50.0).ready(1)), every_2s(22, 140, load(5.0))],
            "
            0..78: 5 panic
            80: 3 stable
            82: 2 stable
            84..140: 1 stable
        ",
        );
    }

    #[test]
    fn silence_freezes_after_a_minute_and_stops_after_five_minutes() {
        check(
            &policy(),
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 420, silent())],
            "
            0..118: 1 stable
            120..358: 1 freeze
            360..420: 0 scale_to_zero
        ",
        );
    }

    #[test]
    fn a_request_while_frozen_returns_to_stable_and_restarts_the_idle_clock() {
        check(
            &policy(),
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 200, silent()), every_2s(202, 202, load(5.0)), every_2s(204, 400, silent())],
            "
            0..118: 1 stable
            120..200: 1 freeze
            202..262: 1 stable
            264..400: 1 freeze
        ",
        );
    }

    #[test]
    fn an_app_woken_between_ticks_gets_a_fresh_idle_clock() {
        // Stopped at 360 after 300 s of silence; the activator wakes it between the ticks at 498
        // and 500, and no counter shows the request yet. The stop period counts from 500, not 60.
        check(
            &policy(),
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 498, silent()), vec![(500.0, silent().ready(1))], every_2s(502, 900, silent())],
            "
            0..118: 1 stable
            120..358: 1 freeze
            360..498: 0 scale_to_zero
            500..558: 1 stable
            560..798: 1 freeze
            800..900: 0 scale_to_zero
        ",
        );
    }

    #[test]
    fn freezing_and_stopping_can_each_be_turned_off() {
        let never_frozen = Policy { freeze_after_s: None, ..policy() };
        check(
            &never_frozen,
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 420, silent())],
            "
            0..358: 1 stable
            360..420: 0 scale_to_zero
        ",
        );
        let never_stopped = Policy { idle_to_zero_s: None, ..policy() };
        check(
            &never_stopped,
            1,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 420, silent())],
            "
            0..118: 1 stable
            120..420: 1 freeze
        ",
        );
    }

    #[test]
    fn silence_never_goes_below_min_instances() {
        let policy = Policy { min_instances: 2, ..policy() };
        check(
            &policy,
            2,
            &[every_2s(0, 58, load(10.0)), every_2s(60, 420, silent())],
            "
            0..118: 2 stable
            120..420: 2 freeze
        ",
        );
    }

    #[test]
    fn missing_metrics_hold_the_count_and_say_why() {
        check(
            &policy(),
            3,
            &[every_2s(0, 20, load(30.0)), every_2s(22, 400, unknown()), every_2s(402, 800, silent())],
            "
            0..20: 3 stable
            22..400: 3 hold: no concurrency sample this tick: holding 3, because unknown load never scales down
            402: 2 stable
            404..460: 1 stable
            462..700: 1 freeze
            702..800: 0 scale_to_zero
        ",
        );
    }

    #[test]
    fn stale_metrics_hold_the_count_and_say_why() {
        check(
            &policy(),
            3,
            &[every_2s(0, 20, load(30.0)), every_2s(22, 400, silent().metrics_age(10.0)), every_2s(402, 420, silent().metrics_age(4.0))],
            "
            0..20: 3 stable
            22..400: 3 hold: metrics are 10 s old (max_metrics_age_s = 4): holding 3, because unknown load never scales down
            402: 2 stable
            404..420: 1 stable
        ",
        );
    }

    #[test]
    fn activator_demand_at_zero_wakes_one_instance_at_once() {
        check(
            &policy(),
            0,
            &[
                every_2s(0, 8, silent().ready(0)),
                every_2s(10, 12, unknown().ready(0).activator_demand(3)),
                every_2s(14, 20, load(3.0).ready(1)),
            ],
            "
            0..8: 0 scale_to_zero
            10..12: 1 wake
            14..20: 1 stable
        ",
        );
        check(
            &policy(),
            0,
            &[every_2s(0, 8, silent().ready(0)), every_2s(10, 12, load(3.0).ready(0)), every_2s(14, 20, load(3.0).ready(1))],
            "
            0..8: 0 scale_to_zero
            10..12: 1 wake
            14..20: 1 stable
        ",
        );
    }

    #[test]
    fn max_instances_caps_even_a_panic() {
        check(&policy(), 1, &[every_2s(0, 60, load(1000.0))], "0..60: 3 panic");
        let capped = Policy { max_instances: 10, ..policy() }.clamp(&GlobalCaps { max_instances_per_app: 2 });
        check(&capped, 1, &[every_2s(0, 60, load(1000.0))], "0..60: 2 panic");
    }

    #[test]
    fn min_instances_is_a_floor_under_light_load() {
        let policy = Policy { min_instances: 2, ..policy() };
        check(&policy, 2, &[every_2s(0, 40, load(5.0))], "0..40: 2 stable");
        check(&policy, 0, &[every_2s(0, 40, silent())], "0..40: 2 stable");
    }

    #[test]
    fn time_going_backwards_holds() {
        check(
            &policy(),
            2,
            &[every_2s(0, 10, load(20.0)), every_2s(4, 4, silent())],
            "
            0..10: 2 stable
            4: 2 hold: time went backwards (now = 4, last tick at 10): holding 2
        ",
        );
    }

    #[test]
    fn scale_down_delay_remembers_a_higher_count() {
        let policy = Policy { stable_window_s: 6.0, scale_down_delay_s: 20.0, ..policy() };
        check(
            &policy,
            3,
            &[every_2s(0, 20, load(30.0)), every_2s(22, 80, load(10.0))],
            "
            0..40: 3 stable
            42..60: 2 stable
            62..80: 1 stable
        ",
        );
        let no_delay = Policy { scale_down_delay_s: 0.0, ..policy };
        check(
            &no_delay,
            3,
            &[every_2s(0, 20, load(30.0)), every_2s(22, 80, load(10.0))],
            "
            0..22: 3 stable
            24: 2 stable
            26..80: 1 stable
        ",
        );
    }

    mod validation {
        use super::super::*;

        fn check(policy: Policy, expected: Result<(), &str>) {
            let actual = policy.validate().map_err(|error| error.to_string());
            assert_eq!(actual, expected.map_err(str::to_owned), "{policy:?}");
        }

        #[test]
        fn the_defaults_are_valid() {
            check(Policy::default(), Ok(()));
            check(Policy { min_instances: 3, max_instances: 3, freeze_after_s: Some(300.0), ..Policy::default() }, Ok(()));
            check(Policy { freeze_after_s: None, idle_to_zero_s: None, ..Policy::default() }, Ok(()));
            check(Policy { freeze_after_s: Some(600.0), idle_to_zero_s: None, ..Policy::default() }, Ok(()));
        }

        #[test]
        fn a_zero_or_missing_target_is_refused() {
            check(Policy { target_concurrency: 0.0, ..Policy::default() }, Err("target_concurrency = 0, must be a number greater than 0"));
            check(
                Policy { target_concurrency: -5.0, ..Policy::default() },
                Err("target_concurrency = -5, must be a number greater than 0"),
            );
            check(
                Policy { target_concurrency: f64::NAN, ..Policy::default() },
                Err("target_concurrency = NaN, must be a number greater than 0"),
            );
        }

        #[test]
        fn min_above_max_is_refused() {
            check(
                Policy { min_instances: 4, max_instances: 3, ..Policy::default() },
                Err("min_instances = 4 is greater than max_instances = 3"),
            );
            check(Policy { max_instances: 0, ..Policy::default() }, Err("max_instances = 0, must be at least 1"));
        }

        #[test]
        fn windows_rates_and_idle_periods_are_checked() {
            check(Policy { panic_window_s: 90.0, ..Policy::default() }, Err("panic_window_s = 90 is greater than stable_window_s = 60"));
            check(Policy { panic_threshold: 1.0, ..Policy::default() }, Err("panic_threshold = 1, must be a number greater than 1"));
            check(Policy { max_scale_up_rate: 0.5, ..Policy::default() }, Err("max_scale_up_rate = 0.5, must be a number greater than 1"));
            check(
                Policy { max_scale_down_rate: f64::INFINITY, ..Policy::default() },
                Err("max_scale_down_rate = inf, must be a number greater than 1"),
            );
            check(
                Policy { scale_down_delay_s: -1.0, ..Policy::default() },
                Err("scale_down_delay_s = -1, must be a number of seconds, 0 or more"),
            );
            check(
                Policy { freeze_after_s: Some(600.0), ..Policy::default() },
                Err("freeze_after_s = 600 is greater than idle_to_zero_s = 300"),
            );
            check(
                Policy { idle_to_zero_s: Some(-1.0), ..Policy::default() },
                Err("idle_to_zero_s = -1, must be a number of seconds, 0 or more"),
            );
            check(Policy { max_metrics_age_s: 0.0, ..Policy::default() }, Err("max_metrics_age_s = 0, must be a number greater than 0"));
        }

        #[test]
        fn global_caps_lower_both_bounds() {
            let policy = Policy { min_instances: 4, max_instances: 10, ..Policy::default() };
            let capped = policy.clamp(&GlobalCaps { max_instances_per_app: 2 });
            assert_eq!((capped.min_instances, capped.max_instances), (2, 2));
            check(capped, Ok(()));
            let zero_cap = Policy::default().clamp(&GlobalCaps { max_instances_per_app: 0 });
            assert_eq!(zero_cap.max_instances, 1, "a cap of 0 would make every policy invalid");
        }

        #[test]
        fn a_policy_parses_from_json_with_defaults_and_refuses_unknown_fields() {
            let parsed: Policy = serde_json::from_str(r#"{"max_instances": 5}"#).expect("valid policy JSON");
            assert_eq!(parsed, Policy { max_instances: 5, ..Policy::default() });
            let never_frozen: Policy = serde_json::from_str(r#"{"freeze_after_s": null}"#).expect("valid policy JSON");
            assert_eq!(never_frozen, Policy { freeze_after_s: None, ..Policy::default() });
            let typo = serde_json::from_str::<Policy>(r#"{"max_instance": 5}"#).expect_err("unknown field");
            assert!(typo.to_string().starts_with("unknown field `max_instance`"), "{typo}");
        }
    }
}
