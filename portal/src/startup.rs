//! Building and running the portal: connect the adapters, run migrations, start the HTTP server
//! and the mail worker. `Application::build` binds the port (0 picks a free one, as the tests do)
//! before returning, so callers know the address at once.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::cache::Cache;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::db::Db;
use crate::domain::DomainPolicy;
use crate::mail::worker::{Transport, Worker};
use crate::mail::MailQueue;
use crate::routes;
use crate::state::AppState;

pub struct Application {
    port: u16,
    stopping: watch::Sender<bool>,
    server: actix_web::dev::Server,
    state: AppState,
    worker: Option<Worker>,
    gateway_listener: Option<tokio::net::TcpListener>,
    gateway_port: u16,
    metrics_listener: Option<tokio::net::TcpListener>,
    metrics_port: u16,
    https_listener: Option<tokio::net::TcpListener>,
    https_port: Option<u16>,
    metrics: Arc<orchestrator::metrics::Registry>,
    host: orchestrator::sandbox::HostSupport,
    redis_client: redis::Client,
}

impl Application {
    /// `database_url` and `redis_url` are the resolved URLs (the config's, or the private services').
    pub async fn build(mut config: Config, database_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        let db = Db::connect(database_url, 10)?;
        let n_applied = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.migrate()).await.context("migration task failed")??
        };
        if n_applied > 0 {
            tracing::info!("applied {n_applied} database migration(s)");
        }
        let cache = Cache::connect(redis_url, &config.redis_prefix, std::time::Duration::from_secs(10)).await?;
        let secrets = match &config.secret_key {
            Some(key) => SecretBox::from_base64(key.expose_secret())?,
            None => SecretBox::load_or_create(&config.data_dir.join("secret.key"))?,
        };
        let mail = MailQueue::new(db.clone(), secrets.clone());
        let transport = match &config.smtp {
            Some(smtp) => Transport::smtp(smtp)?,
            None => {
                let outbox = std::path::absolute(config.outbox_dir()).unwrap_or_else(|_| config.outbox_dir());
                tracing::info!("no SMTP server configured: mail is written to {}", outbox.display());
                Transport::outbox(outbox)?
            }
        };
        let worker = Worker::new(mail.clone(), db.clone(), transport, config.mail.clone())?;
        let secret_store: Arc<dyn crate::secrets::SecretStore> = match &config.vault {
            Some(vault) => Arc::new(
                crate::secrets::vault::VaultStore::login(vault)
                    .await
                    .with_context(|| format!("logging in to vault at {}", vault.address))?,
            ),
            None => Arc::new(crate::secrets::SealedStore::new(db.clone(), secrets.clone())),
        };
        let host = orchestrator::sandbox::probe();
        let missing = orchestrator::sandbox::missing_for_strong(&host);
        if !missing.is_empty() {
            if config.deploy.allow_weak_isolation {
                tracing::warn!(
                    "sandboxing on this host is weaker than it should be ({}); accepted because deploy.allow_weak_isolation is on",
                    missing.join("; ")
                );
            } else {
                anyhow::bail!("sandboxing on this host is incomplete: {}. Run `slipway doctor` for details, fix the host, or set deploy.allow_weak_isolation = true to accept weaker isolation", missing.join("; "));
            }
        }
        if let Some(warning) = crate::config::build_network_warning(&config.deploy.build_network) {
            tracing::warn!("{warning}");
        }
        let slipway_binary = match &config.slipway_binary {
            Some(path) => path.clone(),
            None => std::env::current_exe().context("cannot find this program's path (set slipway_binary)")?,
        };
        let data_dir = std::path::absolute(&config.data_dir).context("cannot resolve data_dir")?;
        let cluster = match config.runtime {
            crate::config::RuntimeKind::Nomad => {
                let cluster = crate::cluster::Cluster::new(&config, &data_dir)?;
                tracing::info!("runtime = nomad: apps run on the cluster; this process is the portal, the activator and the autoscaler");
                Some(Arc::new(cluster))
            }
            crate::config::RuntimeKind::Local => None,
        };
        let metrics = Arc::new(orchestrator::metrics::Registry::new());
        let runtime =
            orchestrator::runtime::LocalRuntime::new(host.clone(), local_config(&config, slipway_binary, &data_dir), metrics.clone());
        let gateway_listener = tokio::net::TcpListener::bind(config.gateway_addr)
            .await
            .with_context(|| format!("cannot listen on gateway_addr {}", config.gateway_addr))?;
        let gateway_port = gateway_listener.local_addr()?.port();
        let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("cannot listen on metrics_addr {}", config.metrics_addr))?;
        let metrics_port = metrics_listener.local_addr()?.port();
        let https_listener = match config.tls.https_addr {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on tls.https_addr {addr}"))?)
            }
            None => None,
        };
        let https_port = https_listener.as_ref().map(|l| l.local_addr().map(|a| a.port())).transpose()?;
        // With port 0 (tests) links and redirects must carry the port the system chose.
        if config.tls.public_https_port.is_none() {
            config.tls.public_https_port = https_port;
        }
        let certificates = orchestrator::gateway::tls::CertStore::new(config.apps_domain.clone());
        if let (Some(chain), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
            let certified = orchestrator::gateway::tls::load_pem_files(chain, key).context("loading tls.cert_file and tls.key_file")?;
            certificates.set_wildcard(certified);
        }
        let custom_domains = orchestrator::gateway::domains::Domains::new(certificates, secrets.certificate_key());
        let (stopping, stopping_receiver) = watch::channel(false);
        let artifacts = Arc::new(
            orchestrator::artifact::ArtifactStore::new(config.data_dir.join("artifacts"))
                .map_err(|e| anyhow::anyhow!("cannot open the artifact store: {e}"))?,
        );
        // Bound before the state is made: with port 0 (tests), the links in mail must carry the
        // port the system chose, so a default public_url follows it.
        let listener =
            TcpListener::bind(config.portal_addr).with_context(|| format!("cannot listen on portal_addr {}", config.portal_addr))?;
        let bound = listener.local_addr()?;
        if config.portal_addr.port() == 0 && config.public_url.port_or_known_default() == Some(0) {
            let _ = config.public_url.set_port(Some(bound.port()));
        }
        let access = orchestrator::gateway::access::Gate::new(orchestrator::gateway::access::AccessConfig {
            key: secrets.access_key(),
            portal_url: config.public_url.as_str().trim_end_matches('/').to_owned(),
            cookie_ttl_secs: crate::access::COOKIE_TTL_SECS,
            secure_cookies: config.secure_cookies,
            max_staleness_secs: 60,
        });
        let redis_client = redis::Client::open(redis_url).map_err(|e| anyhow::anyhow!("redis_url is not a Redis URL: {e}"))?;
        let state = AppState {
            access,
            domains: DomainPolicy::new(&config.accounts.allowed_email_domains),
            config: Arc::new(config),
            db,
            cache,
            secrets,
            mail,
            secret_store,
            artifacts,
            builds: Arc::new(tokio::sync::Notify::new()),
            runtime,
            cluster,
            monitor: Arc::new(crate::monitor::Live::default()),
            custom_domains,
            certificates: Arc::new(tokio::sync::Notify::new()),
            stopping: stopping_receiver,
        };
        // The gateways' view starts from the database, so a record lost from Redis comes back.
        let n_published = crate::access::publish_all(&state).await.context("publishing app access records to Redis")?;
        tracing::debug!(n_published, "app access records published");
        if state.cluster.is_some() {
            let n_policies = crate::cluster::publish_all_policies(&state).await.context("publishing scaling policies to Redis")?;
            tracing::debug!(n_policies, "scaling policies published");
        }
        let n_domains = crate::custom_domains::publish_all(&state).await.context("publishing custom domains to Redis")?;
        tracing::debug!(n_domains, "custom domains published");

        let port = listener.local_addr()?.port();
        let app_state = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")),
                )
                .wrap(actix_web::middleware::from_fn(crate::audit::context))
                .configure(routes::configure)
        })
        .workers(2)
        .disable_signals()
        // Followed log streams end when stopping begins; nothing else should hold a stop for long.
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            stopping,
            server,
            state,
            worker: Some(worker),
            gateway_listener: Some(gateway_listener),
            gateway_port,
            metrics_listener: Some(metrics_listener),
            metrics_port,
            https_listener,
            https_port,
            metrics,
            host,
            redis_client,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn gateway_port(&self) -> u16 {
        self.gateway_port
    }

    /// The port of the gateway's HTTPS listener, when `tls.https_addr` is set.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// The port of the gateway's `/metrics` listener.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` turns true, then stops the server gracefully and the worker.
    pub async fn run_until_stopped(mut self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let worker = self.worker.take().expect("run_until_stopped is called once");
        let worker_task = tokio::spawn(worker.run(shutdown.clone()));
        let runtime = self.state.runtime.clone();
        let mut gateway_config = orchestrator::gateway::GatewayConfig::new(self.state.config.apps_domain.clone());
        gateway_config.https_redirect = self.state.config.tls.redirect_http;
        gateway_config.https_port = self.state.config.tls.public_https_port.or(self.https_port).unwrap_or(443);
        gateway_config.terminal_assets = Some(self.state.config.terminal.assets_dir.clone());
        let gateway_listener = self.gateway_listener.take().expect("run_until_stopped is called once");
        let access = self.state.access.clone();
        tokio::spawn(orchestrator::gateway::access::feed::run(
            access.clone(),
            self.redis_client.clone(),
            self.state.config.redis_prefix.clone(),
            std::time::Duration::from_secs(1),
            shutdown.clone(),
        ));
        let wildcard = match (&self.state.config.tls.cert_file, &self.state.config.tls.key_file) {
            (Some(chain), Some(key)) => {
                Some(orchestrator::gateway::domains::feed::WildcardFiles { chain: chain.clone(), key: key.clone() })
            }
            _ => None,
        };
        tokio::spawn(orchestrator::gateway::domains::feed::run(
            self.state.custom_domains.clone(),
            self.redis_client.clone(),
            self.state.config.redis_prefix.clone(),
            wildcard,
            std::time::Duration::from_secs(1),
            shutdown.clone(),
        ));
        tokio::spawn(crate::custom_domains::certificate_worker(self.state.clone(), shutdown.clone()));
        let metrics_listener = self.metrics_listener.take().expect("run_until_stopped is called once");
        tokio::spawn(orchestrator::gateway::serve_metrics(metrics_listener, self.metrics.clone(), shutdown.clone()));
        let scaling = &self.state.config.scaling;
        let (gateway_task, https_task) = if let Some(cluster) = self.state.cluster.clone() {
            // The cluster shape: Traefik routes apps straight to their allocations and sends apps
            // at zero to this gateway (its catch-all), which is the activator: `NomadRuntime`
            // resolves, waking the app through Nomad. Traefik's forwardAuth has already checked
            // access (and removed the slipway_* cookies), so the gateway adds no check of its own.
            let activator = orchestrator::gateway::Gateway::with_metrics(
                gateway_config,
                cluster.runtime.clone(),
                orchestrator::gateway::TcpConnector,
                self.metrics.clone(),
            );
            let task = tokio::spawn(activator.serve(gateway_listener, shutdown.clone()));
            tokio::spawn(orchestrator::autoscaler::feed::run(
                cluster.runtime.clone(),
                self.redis_client.clone(),
                self.state.config.redis_prefix.clone(),
                std::time::Duration::from_secs(1),
                shutdown.clone(),
            ));
            let nomad = self.state.config.nomad.as_ref().expect("the cluster shape has [nomad] settings");
            let loop_config = orchestrator::autoscaler::run::LoopConfig {
                tick: scaling.tick,
                caps: orchestrator::autoscaler::GlobalCaps { max_instances_per_app: scaling.max_instances_per_app },
                max_connection_idle: scaling.max_connection_idle,
                // The memory that matters is the client nodes', which Nomad's scheduler manages.
                min_free_memory_bytes: 0,
                absent_series_mean_idle: true,
            };
            let source = orchestrator::autoscaler::run::ClusterSource {
                traefik: orchestrator::autoscaler::run::HttpSource {
                    addr: nomad.traefik_metrics_addr,
                    path: "/metrics".to_owned(),
                    timeout: std::time::Duration::from_secs(2),
                },
                activator: self.metrics.clone(),
            };
            tokio::spawn(orchestrator::autoscaler::run::run(
                cluster.runtime.clone(),
                source,
                loop_config,
                self.metrics.clone(),
                orchestrator::autoscaler::run::cluster_service_app,
                shutdown.clone(),
            ));
            (task, None)
        } else {
            let gateway = orchestrator::gateway::Gateway::with_domains(
                gateway_config,
                runtime.clone(),
                orchestrator::gateway::NetnsConnector::new(),
                self.metrics.clone(),
                access,
                self.state.custom_domains.clone(),
            );
            let task = tokio::spawn(gateway.clone().serve(gateway_listener, shutdown.clone()));
            let https_task = self.https_listener.take().map(|listener| {
                let tls = orchestrator::gateway::tls::server_config(self.state.custom_domains.certs().clone());
                tokio::spawn(gateway.clone().serve_tls(listener, tls, shutdown.clone()))
            });
            // The autoscaler reads the gateway's metrics (in-process, through the Prometheus parser)
            // and the runtime's held requests, and scales, freezes and stops apps.
            let loop_config = orchestrator::autoscaler::run::LoopConfig {
                tick: scaling.tick,
                caps: orchestrator::autoscaler::GlobalCaps { max_instances_per_app: scaling.max_instances_per_app },
                max_connection_idle: scaling.max_connection_idle,
                min_free_memory_bytes: scaling.min_free_memory_mb * 1024 * 1024,
                absent_series_mean_idle: false,
            };
            tokio::spawn(orchestrator::autoscaler::run::run(
                runtime.clone(),
                orchestrator::autoscaler::run::RegistrySource(self.metrics.clone()),
                loop_config,
                self.metrics.clone(),
                |_, _| None,
                shutdown.clone(),
            ));
            tokio::spawn(runtime.clone().liveness_loop(shutdown.clone()));
            (task, https_task)
        };
        if self.state.config.monitor.enabled {
            tokio::spawn(crate::monitor::run(self.state.clone(), self.metrics.clone(), shutdown.clone()));
        }
        let builder =
            Arc::new(crate::build_worker::BuildWorker { state: self.state.clone(), runtime: runtime.clone(), host: self.host.clone() });
        let builder_task = tokio::spawn(builder.run(shutdown.clone()));
        if self.state.cluster.is_none() {
            tokio::spawn(crate::build_worker::restore_live_apps(self.state.clone(), runtime.clone()));
            tokio::spawn(crate::courses::restore_snapshots(self.state.clone()));
        }
        // Pins submissions again and opens their access at each assignment's deadline.
        tokio::spawn(crate::courses::sweep_loop(self.state.clone(), std::time::Duration::from_secs(15), shutdown.clone()));
        tokio::spawn(crate::git_sources::poll_loop(self.state.clone(), self.state.config.deploy.git_poll_interval, shutdown.clone()));
        let handle = self.server.handle();
        let mut stop = shutdown.clone();
        let stopping = self.stopping.clone();
        let stopper = tokio::spawn(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            let _ = stopping.send(true);
            handle.stop(true).await;
        });
        self.server.await.context("portal server failed")?;
        stopper.abort();
        let _ = worker_task.await;
        let _ = builder_task.await;
        let _ = gateway_task.await;
        if let Some(task) = https_task {
            let _ = task.await;
        }
        for (app, _) in runtime.apps_status() {
            runtime.stop(&app).await;
        }
        Ok(())
    }
}

/// The local runtime's settings from the configuration.
fn local_config(config: &Config, slipway_binary: std::path::PathBuf, data_dir: &std::path::Path) -> orchestrator::runtime::LocalConfig {
    let mut local = orchestrator::runtime::LocalConfig::new(slipway_binary, data_dir.join("logs").join("apps"));
    local.wake_timeout = config.scaling.wake_timeout;
    local.browser_wait = config.scaling.browser_wait;
    local.max_held = config.scaling.max_held_requests;
    // The platform's own health checker never wakes an app, whatever the list says.
    local.no_wake_agents = config.scaling.no_wake_user_agents.iter().map(|agent| agent.to_lowercase()).collect();
    local.no_wake_agents.push("slipway-health".to_owned());
    local.liveness_interval = config.deploy.liveness_interval;
    local.liveness_failures = config.deploy.liveness_failures;
    local.terminal_limits =
        orchestrator::terminal::SessionLimits { time_limit: config.terminal.time_limit, max_sessions: config.terminal.max_sessions };
    local
}
