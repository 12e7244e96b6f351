//! The orchestrator: where student apps run and how they scale. Today it holds the shared,
//! pure vocabulary (durations as operators write them); the runtime drivers, gateway/activator,
//! autoscaler and Nomad job rendering arrive with the deploy and scale-to-zero issues.
//!
//! It never depends on the portal and never opens the portal's database.

pub mod artifact;
pub mod autoscaler;
pub mod build;
pub mod duration;
pub mod egress;
pub mod gateway;
pub mod metrics;
pub mod model;
pub mod redis_feed;
pub mod runtime;
pub mod sandbox;
pub mod static_site;
pub mod template;
pub mod terminal;
