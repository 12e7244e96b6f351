//! The orchestrator's one integration-test binary. `nomad`: `NomadRuntime` against the Nomad
//! simulator, with every request body checked against the recorded payloads. `traefik`: the
//! real Traefik binary with the project's `traefik/` config, discovering apps from the
//! simulator, routing, falling back to the activator, and exposing metrics the autoscaler reads.

mod helpers;
mod nomad;
mod traefik;
