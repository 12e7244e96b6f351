//! The two translations around `decide`: what was measured → `Snapshot`, and `Decision` + where
//! the app is now → the one `Order` to ask of the runtime.
//!
//! Pure: times are passed in as seconds, nothing reads a clock, a metric or the runtime. It
//! deliberately does not call the runtime: the loop in `run.rs` does, with what `order` returns.

use super::decide::{Decision, Mode, Snapshot};
use crate::metrics::snapshot::AppTraffic;
use crate::runtime::Tier;

/// What the loop knows about one app this tick, besides its policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The app's traffic between the last two scrapes; `None` when the scrape failed or did not
    /// list the app (unknown, never zero).
    pub traffic: Option<AppTraffic>,
    /// Seconds since the scrape `traffic` comes from was taken.
    pub metrics_age_s: Option<f64>,
    /// Ready instances (frozen ones count: they are kept and thaw on the next request).
    pub ready: u32,
    /// Requests the activator holds right now (the runtime's own count, not a scrape).
    pub held: u32,
    /// Seconds since the runtime last handed the app a request.
    pub since_last_request_s: f64,
    /// An open connection with no new request counts as activity only this long.
    pub max_connection_idle_s: f64,
}

/// The `Snapshot` for `decide`. Held requests come from the runtime directly (a request waiting on
/// a wake must not wait for a scrape as well). Open connections (WebSockets, event streams) keep
/// the app busy through the in-flight gauge, but only until `max_connection_idle_s` has passed
/// without a new request: then concurrency counts as a known zero, so an idle open tab does not
/// keep an app awake forever (test `an_idle_open_connection_stops_counting_after_the_cap`).
pub fn snapshot(measured: &Measured) -> Snapshot {
    let traffic = measured.traffic.as_ref();
    let requests = traffic.and_then(|traffic| traffic.requests);
    let mut concurrency = traffic.and_then(AppTraffic::concurrency);
    let quiet = requests.is_some_and(|requests| requests == 0.0) && measured.held == 0;
    if quiet && measured.since_last_request_s >= measured.max_connection_idle_s {
        concurrency = concurrency.map(|_| 0.0);
    }
    Snapshot {
        ready_instances: measured.ready,
        concurrency,
        requests,
        activator_demand: measured.held,
        metrics_age_s: measured.metrics_age_s,
    }
}

/// What the loop asks the runtime to do for one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Nothing,
    /// Run this many instances (starting a stopped app).
    Scale(u32),
    Freeze,
    Stop,
}

/// The order that carries `decision` out for an app in `tier` with `ready` + `starting`
/// instances. Orders the runtime would ignore are not sent, and two rules keep the autoscaler from
/// fighting an operator: a stopped app is started only by `min_instances`, never by a count an
/// earlier decision remembers nor by requests counted in the last interval (those were served
/// before it stopped), so `slipway sleep` holds; the activator wakes a stopped app itself the
/// moment a request arrives. And a frozen app is thawed only by a request, never by a count.
pub fn order(decision: &Decision, tier: Tier, ready: u32, starting: u32, min_instances: u32) -> Order {
    let desired = decision.desired;
    match (decision.mode, tier) {
        (Mode::Hold, _) => Order::Nothing,
        (Mode::ScaleToZero, Tier::Running | Tier::Frozen) => Order::Stop,
        (Mode::ScaleToZero, _) => Order::Nothing,
        (Mode::Freeze, Tier::Running) => Order::Freeze,
        (Mode::Freeze, _) => Order::Nothing,
        (_, Tier::Frozen | Tier::Starting | Tier::Crashed) => Order::Nothing,
        (Mode::Stable | Mode::Panic, Tier::Stopped) if min_instances > 0 && desired > 0 => Order::Scale(desired),
        (_, Tier::Stopped) => Order::Nothing,
        (_, Tier::Running) if desired > 0 && desired != ready + starting => Order::Scale(desired),
        (_, Tier::Running) => Order::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscaler::decide::ScalerState;

    fn measured(traffic: Option<AppTraffic>, held: u32, since_last_request_s: f64) -> Measured {
        Measured { traffic, metrics_age_s: Some(0.0), ready: 1, held, since_last_request_s, max_connection_idle_s: 600.0 }
    }

    fn traffic(requests: f64, in_flight: f64) -> AppTraffic {
        AppTraffic { requests: Some(requests), average_concurrency: Some(in_flight), in_flight: Some(in_flight), held: Some(0.0) }
    }

    #[test]
    fn an_idle_open_connection_stops_counting_after_the_cap() {
        let cases = [
            // (requests this tick, in flight, held, seconds since a request) -> concurrency
            ((0.0, 1.0, 0, 10.0), Some(1.0)),
            ((0.0, 1.0, 0, 600.0), Some(0.0)),
            ((3.0, 1.0, 0, 700.0), Some(1.0)),
            ((0.0, 1.0, 2, 700.0), Some(3.0)),
        ];
        for ((requests, in_flight, held, since), expected) in cases {
            let mut traffic = traffic(requests, in_flight);
            traffic.held = Some(f64::from(held));
            let got = snapshot(&measured(Some(traffic), held, since)).concurrency;
            assert_eq!(got, expected, "requests {requests}, in flight {in_flight}, held {held}, {since} s since a request");
        }
    }

    #[test]
    fn unknown_traffic_stays_unknown_and_held_requests_come_from_the_runtime() {
        let got = snapshot(&measured(None, 4, 700.0));
        assert_eq!(got.concurrency, None);
        assert_eq!(got.requests, None);
        assert_eq!(got.activator_demand, 4);
        assert_eq!(got.ready_instances, 1);
    }

    fn decision(mode: Mode, desired: u32) -> Decision {
        Decision { desired, mode, reason: String::new(), next_state: ScalerState::default() }
    }

    #[test]
    fn orders_follow_the_decision_and_the_tier() {
        use Order::*;
        use Tier::*;
        let cases = [
            // (mode, desired, tier, ready, starting, min_instances) -> action
            ((Mode::Hold, 3, Running, 1, 0, 0), Nothing),
            ((Mode::Stable, 3, Running, 1, 0, 0), Scale(3)),
            ((Mode::Stable, 3, Running, 1, 2, 0), Nothing),
            ((Mode::Stable, 1, Running, 3, 0, 0), Scale(1)),
            ((Mode::Panic, 5, Running, 2, 0, 0), Scale(5)),
            ((Mode::Wake, 1, Stopped, 0, 0, 0), Nothing),
            ((Mode::Wake, 1, Stopped, 0, 0, 1), Nothing),
            ((Mode::Stable, 1, Stopped, 0, 0, 0), Nothing),
            ((Mode::Stable, 1, Stopped, 0, 0, 1), Scale(1)),
            ((Mode::Stable, 2, Frozen, 1, 0, 0), Nothing),
            ((Mode::Freeze, 1, Running, 1, 0, 0), Freeze),
            ((Mode::Freeze, 1, Frozen, 1, 0, 0), Nothing),
            ((Mode::ScaleToZero, 0, Frozen, 1, 0, 0), Stop),
            ((Mode::ScaleToZero, 0, Running, 2, 0, 0), Stop),
            ((Mode::ScaleToZero, 0, Stopped, 0, 0, 0), Nothing),
            ((Mode::Wake, 1, Starting, 0, 1, 0), Nothing),
            ((Mode::Stable, 2, Crashed, 0, 0, 0), Nothing),
        ];
        for ((mode, desired, tier, ready, starting, min_instances), expected) in cases {
            let got = order(&decision(mode, desired), tier, ready, starting, min_instances);
            assert_eq!(got, expected, "{mode} {desired} with {tier:?}, {ready} ready, {starting} starting, min {min_instances}");
        }
    }
}
