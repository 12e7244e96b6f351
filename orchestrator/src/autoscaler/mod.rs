//! The autoscaler: how many instances each app should have, between 0 and its policy's maximum.
//!
//! Each tick the loop (`run`) builds a `Snapshot` for every app from a metrics scrape (the
//! gateway's, or Traefik's) and the runtime's ready instances and held requests, calls `decide`
//! with the time as seconds, keeps `Decision::next_state`, and sends the runtime the one order
//! (`observe::order`) that carries the decision out. An app moves through these states:
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
//! - `observe`: measurements → `Snapshot`, and `Decision` + tier → `Order`.
//! - `evict`: which frozen apps to stop under memory pressure.
//! - `run`: the loop, the only module here with I/O (scraping, the clock, the `Runtime` calls).
//! - `feed`: the policies the portal publishes to Redis, for runtimes that cannot ask the portal
//!   (the cluster's `NomadRuntime`).
//!
//! Everything but `run` and `feed` is pure: no I/O, no clock, no tokio.

pub mod decide;
pub mod evict;
pub mod feed;
pub mod observe;
pub mod replay;
pub mod run;
pub mod window;

pub use decide::{decide, Decision, GlobalCaps, Mode, Panic, Policy, PolicyError, ScalerState, Snapshot};
pub use replay::{replay, replay_to_string, ReplayError, ReplayLine};
pub use window::{Sample, Window};
