//! The autoscaler: how many instances each app should have, between 0 and its policy's maximum.
//!
//! Each tick the loop (still to come, beside this file) builds a `Snapshot` for every app from the
//! gateway's in-flight counts and the runtime's ready instances, calls `decide` with the time as
//! seconds, keeps `Decision::next_state`, and asks `Runtime` for `Decision::desired` instances in
//! the decision's `Mode`. An app moves through these states:
//!
//! ```text
//!          request            ready
//!   Zero ──────────▶ Wake ──────────▶ Stable ⇄ Panic
//!    ▲                                 ▲  │
//!    │                         request │  │ no request, no concurrency for freeze_after_s (60 s)
//!    │                                 │  ▼
//!    └──── idle_to_zero_s (300 s) ──── Freeze (instances kept, frozen)
//!
//!   Hold (any state): metrics missing or stale, keep the current count.
//! ```
//!
//! `decide.rs` lists each transition and its exact condition.
//!
//! - `window`: sliding windows of samples (seconds as `f64`); averages that treat gaps as unknown.
//! - `decide`: `Policy`, `Snapshot`, `ScalerState`, `Decision`, and the rules, Knative-KPA style.
//! - `replay`: runs `decide` over a JSON-lines trace, for `slipway autoscaler replay` and tests.
//!
//! Everything here is pure: no I/O, no clock, no tokio. It deliberately does not start, stop or
//! freeze instances, scrape metrics, or read policies from Redis; the loop and `runtime` do.

pub mod decide;
pub mod replay;
pub mod window;

pub use decide::{decide, Decision, GlobalCaps, Mode, Panic, Policy, PolicyError, ScalerState, Snapshot};
pub use replay::{replay, replay_to_string, ReplayError, ReplayLine};
pub use window::{Sample, Window};
