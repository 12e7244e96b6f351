//! What every request handler and worker shares: configuration and the adapters.

use std::sync::Arc;

use crate::cache::Cache;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::db::Db;
use crate::domain::DomainPolicy;
use crate::mail::MailQueue;
use crate::secrets::SecretStore;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub cache: Cache,
    pub secrets: SecretBox,
    pub mail: MailQueue,
    pub domains: DomainPolicy,
    pub secret_store: Arc<dyn SecretStore>,
    pub artifacts: Arc<orchestrator::artifact::ArtifactStore>,
    /// Wakes the build worker when a revision is queued.
    pub builds: Arc<tokio::sync::Notify>,
    /// Where apps run (sandboxes on this machine in the embedded shape).
    pub runtime: Arc<orchestrator::runtime::LocalRuntime>,
    /// The cluster shape (`runtime = "nomad"`): apps run as Nomad jobs instead, and `runtime`
    /// stays empty.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Who may see which app: the table the gateway and the forwardAuth endpoint check, fed from
    /// Redis by `orchestrator::gateway::access::feed`.
    pub access: Arc<orchestrator::gateway::access::Gate>,
    /// What the monitor saw last (component health, open incidents), for the pages.
    pub monitor: Arc<crate::monitor::Live>,
    /// Custom domains as the gateway sees them (table + certificates), fed from Redis by
    /// `orchestrator::gateway::domains::feed`; poked after every publish.
    pub custom_domains: Arc<orchestrator::gateway::domains::Domains>,
    /// Wakes the certificate worker when a domain is verified.
    pub certificates: Arc<tokio::sync::Notify>,
    /// Turns true when the server begins to stop; long-lived streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}
