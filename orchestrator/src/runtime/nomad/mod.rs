//! The Nomad driver: `render` (pure: revision → job JSON), `client` (the HTTP API), and
//! `NomadRuntime` (deploy, scale, stop, status, signal, logs for apps on a Nomad cluster).
//!
//! Only this module knows Nomad's vocabulary (Job, TaskGroup, Allocation, Deployment in Nomad's
//! sense of a rollout); the rest of Slipway speaks of apps, revisions and instances.

pub mod render;

pub use render::{register_body, render_job, scale_body, Artifact, Deployment, Discovery, JobSettings, RenderError, SecretRef};
