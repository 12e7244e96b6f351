//! Alert incidents, pure: each check (a component, the disk, memory) moves through
//!
//! ```text
//!            problem                    problem for alert_after
//!   Fine ───────────────▶ Pending ─────────────────────────────▶ Open    ── edge: Opened (one mail)
//!     ▲   fine (no mail)     │                                    │  ▲
//!     └──────────────────────┘                              fine  │  │ problem (no mail)
//!     ▲                                                           ▼  │
//!     └──────────────── fine for clear_after ─────────────────  Clearing ── edge: Cleared (one mail)
//! ```
//!
//! so a flapping check sends nothing new while its incident is open, and exactly one mail when it
//! opens and one when it clears. A check that reports nothing this time (its reading failed)
//! keeps its state. Time is passed in (Unix seconds); `step` returns the edges to persist and
//! mail. Only open incidents are persisted (`alert_incidents`); `restore` rebuilds the state from
//! them, so a restart neither re-sends an open incident nor forgets to send its clearing.

use std::collections::BTreeMap;

/// One check's result this round: `problem` is `None` when all is well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub key: String,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending { since: i64 },
    Open { opened_at: i64, reason: String, fine_since: Option<i64> },
}

/// An incident that opened or cleared this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    Opened { key: String, reason: String, at: i64 },
    Cleared { key: String, reason: String, opened_at: i64, at: i64 },
}

/// How long a problem must last, and be gone, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub alert_after: i64,
    pub clear_after: i64,
}

/// The state of every check with a problem, or an incident not cleared yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incidents {
    states: BTreeMap<String, State>,
}

/// An incident as persisted: key, when it opened, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub key: String,
    pub opened_at: i64,
    pub reason: String,
}

impl Incidents {
    /// The state after a restart: the persisted open incidents, nothing pending.
    pub fn restore(open: Vec<OpenIncident>) -> Self {
        let states = open
            .into_iter()
            .map(|incident| (incident.key, State::Open { opened_at: incident.opened_at, reason: incident.reason, fine_since: None }))
            .collect();
        Self { states }
    }

    /// The incidents open now (a clearing one included: it has not cleared yet).
    pub fn open(&self) -> Vec<OpenIncident> {
        self.states
            .iter()
            .filter_map(|(key, state)| match state {
                State::Open { opened_at, reason, .. } => {
                    Some(OpenIncident { key: key.clone(), opened_at: *opened_at, reason: reason.clone() })
                }
                State::Pending { .. } => None,
            })
            .collect()
    }

    /// Takes one round of checks at `now` and returns the edges, in key order.
    pub fn step(&mut self, checks: &[Check], now: i64, timing: Timing) -> Vec<Edge> {
        let mut edges = Vec::new();
        for check in checks {
            let state = self.states.get(&check.key).cloned();
            let next = match (state, &check.problem) {
                (None, None) => None,
                (None, Some(reason)) if timing.alert_after <= 0 => {
                    edges.push(Edge::Opened { key: check.key.clone(), reason: reason.clone(), at: now });
                    Some(State::Open { opened_at: now, reason: reason.clone(), fine_since: None })
                }
                (None, Some(_)) => Some(State::Pending { since: now }),
                (Some(State::Pending { .. }), None) => None,
                (Some(State::Pending { since }), Some(reason)) if now - since >= timing.alert_after => {
                    edges.push(Edge::Opened { key: check.key.clone(), reason: reason.clone(), at: now });
                    Some(State::Open { opened_at: now, reason: reason.clone(), fine_since: None })
                }
                (Some(pending @ State::Pending { .. }), Some(_)) => Some(pending),
                (Some(State::Open { opened_at, reason, .. }), Some(_)) => Some(State::Open { opened_at, reason, fine_since: None }),
                (Some(State::Open { opened_at, reason, fine_since }), None) => {
                    let since = fine_since.unwrap_or(now);
                    if now - since >= timing.clear_after {
                        edges.push(Edge::Cleared { key: check.key.clone(), reason, opened_at, at: now });
                        None
                    } else {
                        Some(State::Open { opened_at, reason, fine_since: Some(since) })
                    }
                }
            };
            match next {
                Some(state) => self.states.insert(check.key.clone(), state),
                None => self.states.remove(&check.key),
            };
        }
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing { alert_after: 60, clear_after: 300 };

    /// Runs rounds of (time, problem of the `disk` check) and returns the edges as short strings.
    fn check(start: Incidents, rounds: &[(i64, Option<&str>)], expected: &[&str]) -> Incidents {
        let mut incidents = start;
        let mut seen = Vec::new();
        for (now, problem) in rounds {
            let checks = [Check { key: "disk".into(), problem: problem.map(str::to_owned) }];
            for edge in incidents.step(&checks, *now, TIMING) {
                seen.push(match edge {
                    Edge::Opened { reason, at, .. } => format!("opened {at} {reason}"),
                    Edge::Cleared { opened_at, at, .. } => format!("cleared {at} (opened {opened_at})"),
                });
            }
        }
        assert_eq!(seen, expected, "rounds {rounds:?}");
        incidents
    }

    #[test]
    fn one_mail_when_an_incident_opens_and_one_when_it_clears() {
        let full = Some("93% full");
        // A blip shorter than alert_after sends nothing.
        check(Incidents::default(), &[(0, full), (30, full), (40, None), (100, None)], &[]);
        // A lasting problem opens once, however long it lasts, and clears once.
        check(
            Incidents::default(),
            &[(0, full), (59, full), (60, full), (70, full), (1000, full), (1010, None), (1300, None), (1310, None), (1320, None)],
            &["opened 60 93% full", "cleared 1310 (opened 60)"],
        );
    }

    #[test]
    fn flapping_while_open_sends_nothing_more() {
        let full = Some("93% full");
        let rounds = [(0, full), (60, full), (100, None), (200, full), (300, None), (400, full), (500, None), (700, None), (800, None)];
        check(Incidents::default(), &rounds, &["opened 60 93% full", "cleared 800 (opened 60)"]);
    }

    #[test]
    fn a_restart_keeps_open_incidents_without_mailing_again() {
        let restored = Incidents::restore(vec![OpenIncident { key: "disk".into(), opened_at: 60, reason: "93% full".into() }]);
        assert_eq!(restored.open().len(), 1);
        let after = check(restored.clone(), &[(2000, Some("95% full")), (2010, Some("95% full"))], &[]);
        assert_eq!(after.open(), restored.open(), "the incident keeps its first reason and time");
        check(restored, &[(2000, None), (2300, None)], &["cleared 2300 (opened 60)"]);
    }

    #[test]
    fn checks_that_report_nothing_keep_their_state_and_others_are_independent() {
        let mut incidents = Incidents::default();
        let round = |disk: Option<&str>, memory: Option<&str>| {
            vec![
                Check { key: "disk".into(), problem: disk.map(str::to_owned) },
                Check { key: "memory".into(), problem: memory.map(str::to_owned) },
            ]
        };
        assert_eq!(incidents.step(&round(Some("full"), None), 0, TIMING), vec![]);
        let edges = incidents.step(&round(Some("full"), Some("97%")), 60, TIMING);
        assert_eq!(edges, vec![Edge::Opened { key: "disk".into(), reason: "full".into(), at: 60 }]);
        // Only memory reports this round: disk stays open.
        assert_eq!(incidents.step(&[Check { key: "memory".into(), problem: None }], 70, TIMING), vec![]);
        assert_eq!(incidents.open().iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), vec!["disk"]);
        let instant = Timing { alert_after: 0, clear_after: 0 };
        let mut quick = Incidents::default();
        assert_eq!(quick.step(&round(Some("x"), None), 5, instant).len(), 1, "alert_after = 0 opens at once");
        assert_eq!(quick.step(&round(None, None), 6, instant).len(), 1, "clear_after = 0 clears at once");
    }
}
