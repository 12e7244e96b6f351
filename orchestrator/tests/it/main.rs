//! The orchestrator's one integration-test binary. `nomad`: `NomadRuntime` against the Nomad
//! simulator, with every request body checked against the recorded payloads. `traefik`: the
//! real Traefik binary with the project's `traefik/` config, discovering apps from the
//! simulator, routing, falling back to the activator, and exposing metrics the autoscaler reads.
//! `cycle`: the whole cluster cycle (deploy, zero, wake through Traefik and the activator, secrets
//! from OpenBao, zero again). `exec`: the allocation exec WebSocket client against the simulator.

mod build;
mod cycle;
mod exec;
mod helpers;
mod nomad;
mod redis_feed;
mod traefik;
