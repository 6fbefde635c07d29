//! The composition root of `aistor-coordinator`: builds the owners (view, directives,
//! measurements, ingest), serves gRPC and REST, and supervises the essential tasks.

use crate::config::Config;
use crate::directives::Directives;
use crate::grpc;
use crate::ingest::Ingest;
use crate::k8s::ClusterConfig;
use crate::measurements::Measurements;
use crate::metrics::CoordinatorMetrics;
use crate::process::{Drain, Supervisor, TaskEnded};
use crate::rest;
use crate::role::Role;
use crate::view::LiveView;
use aistor_core::{Clock, Now};
use aistor_proto::v1::cluster_service_server::ClusterServiceServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("APOLLO client: {0}")]
    Apollo(String),
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Exposed(String),
    #[error("the API tokens: {0}")]
    Tokens(#[from] crate::auth::TokensError),
    #[error("the API's TLS: {0}")]
    ApiTls(#[from] crate::tls::TlsError),
    #[error("the API's TLS: {0}")]
    ApiTlsSetup(tonic::transport::Error),
    #[error("the agents' TLS: {0}")]
    AgentTls(#[from] crate::identity::IdentityError),
    #[error("the agents' TLS: {0}")]
    AgentTlsSetup(tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    TaskEnded(#[from] TaskEnded),
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] crate::k8s::Error),
    #[error("the store in {dir}: {source}")]
    Store {
        dir: std::path::PathBuf,
        source: crate::store::StoreError,
    },
}

/// The addresses actually bound (port 0 in tests becomes a real port).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// Where agents connect: `grpc`, or the agents' own listener.
    pub agents: SocketAddr,
    /// The scheduler extender's listener, when it has one.
    pub extender: Option<SocketAddr>,
}

/// The system's clocks: monotonic from the process start, wall from the OS.
#[derive(Debug)]
pub struct SystemClock {
    started: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now {
            monotonic: self.started.elapsed(),
            wall_unix_nanos: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}

/// Who may call the APIs, and the warnings `/health` shows. A listener reachable
/// from other machines with nobody authenticated is refused unless the operator
/// said `--allow-unauthenticated` (then logged and shown).
/// On a cluster the static tokens are joined by the cluster's own (see
/// [`with_cluster`]), so the APIs are never open there.
fn api_auth(config: &Config) -> Result<(crate::auth::ApiAuth, Vec<String>), Error> {
    use crate::auth::{ApiAuth, StaticTokens, check_exposure};
    let auth = match &config.api_tokens {
        Some(path) => ApiAuth::Tokens(StaticTokens::read(path)?),
        None => ApiAuth::Open,
    };
    let on_cluster = matches!(config.cluster, crate::k8s::ClusterConfig::Kubernetes(_));
    let allow = config.allow_unauthenticated || on_cluster;
    check_exposure("gRPC", config.grpc_addr, &auth, allow).map_err(Error::Exposed)?;
    check_exposure("REST", config.http_addr, &auth, allow).map_err(Error::Exposed)?;
    // Agents are proven by mutual TLS on their own listener, or on a cluster by
    // their ServiceAccount tokens; never by API tokens.
    let unproven_agents = match &config.agents {
        _ if on_cluster => None,
        None => Some(config.grpc_addr),
        Some(l) if l.tls.is_none() => Some(l.addr),
        Some(_) => None,
    };
    let mut warnings = Vec::new();
    if let Some(addr) = unproven_agents.filter(|a| !a.ip().is_loopback()) {
        if !allow {
            return Err(Error::Exposed(format!(
                "agents would report over {addr} with nothing proving their node: give --agent-addr \
                 with --agent-tls-cert, --agent-tls-key and --agent-tls-client-ca, listen on \
                 loopback, or pass --allow-unauthenticated"
            )));
        }
        warnings.push(format!(
            "agents report over {addr} unauthenticated: any client there may report for any node"
        ));
    }
    if config.allow_unauthenticated && !on_cluster && matches!(auth, ApiAuth::Open) {
        for (what, addr) in [("gRPC", config.grpc_addr), ("REST", config.http_addr)] {
            if !addr.ip().is_loopback() {
                warnings.push(format!(
                    "the {what} API on {addr} is unauthenticated (--allow-unauthenticated): anyone who reaches it may read"
                ));
            }
        }
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok((auth, warnings))
}

/// The API's protection on a cluster: the static tokens if any, and every other
/// bearer token reviewed by the API server (TokenReview, SubjectAccessReview).
fn with_cluster(auth: crate::auth::ApiAuth, client: kube::Client) -> crate::auth::ApiAuth {
    use crate::auth::ApiAuth;
    let tokens = match auth {
        ApiAuth::Tokens(tokens) => Some(tokens),
        ApiAuth::Open | ApiAuth::Cluster { .. } => None,
    };
    ApiAuth::Cluster {
        tokens,
        reviewer: Arc::new(crate::k8s::token_review::KubeApiReviewer::new(client)),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { what, addr, source })?;
    Ok((listener, local))
}

/// Serves until `shutdown` resolves, then drains for at most the grace period; or
/// until an essential task ends, which is an error naming it.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), Error> {
    let (drain, trigger) = Drain::on(shutdown);
    let (api_auth, warnings) = api_auth(&config)?;
    // The API ports' TLS, read now: a bad file stops the start naming it.
    let api_tls = match &config.api_tls {
        Some(tls) => Some((tls.acceptor()?, tls.grpc()?)),
        None => None,
    };
    let store_error = |source| Error::Store {
        dir: config.data_dir.clone(),
        source,
    };
    // The Kubernetes shell's client first: in a cluster it is where the store is.
    let started = match &config.cluster {
        ClusterConfig::Standalone => None,
        ClusterConfig::Kubernetes(k8s) => {
            let mut stop = drain.clone();
            Some(crate::k8s::start(k8s, async move { stop.signaled().await }).await?)
        }
    };
    // Standalone: the SQLite database under the data dir. In a cluster: the aistor.io
    // custom resources (a new coordinator or leader reads what the last one wrote).
    let store: Arc<dyn crate::store::Store> = match (&started, &config.cluster) {
        (Some((shell, _)), _) => Arc::new(
            crate::store::custom_resources::CustomResourceStore::new(shell.cluster.client.clone()),
        ),
        _ => {
            let dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || crate::store::open_standalone(&dir))
                .await
                .map_err(|e| {
                    store_error(crate::store::StoreError::Backend {
                        context: "opening the store".into(),
                        source: Box::new(e),
                    })
                })?
                .map_err(store_error)?;
            tracing::info!(data_dir = %config.data_dir.display(), "standalone store open");
            store
        }
    };
    let runs = match (&started, &config.cluster) {
        (Some((shell, _)), ClusterConfig::Kubernetes(k8s)) => {
            // An instance tag no other coordinator process has: ids need no counter.
            let seed = format!(
                "{}/{}/{}",
                k8s.identity,
                std::process::id(),
                SystemClock::default().now().wall_unix_nanos
            );
            crate::store::measurements::Measurements::open_in_cluster(
                store.clone(),
                crate::store::measurements::Layout::resources(&shell.cluster.namespace, &seed),
                crate::store::measurements::DEFAULT_KEEP_FINISHED,
                shell.leadership.watch(),
            )
            .await
        }
        _ => crate::store::measurements::Measurements::open(
            store.clone(),
            crate::store::measurements::DEFAULT_KEEP_FINISHED,
        )
        .await
        .map_err(store_error)?,
    };
    let (grpc_listener, grpc_addr) = bind("gRPC", config.grpc_addr).await?;
    let (http_listener, http_addr) = bind("HTTP", config.http_addr).await?;
    // The agents' own listener, with its TLS files read now: a bad file stops the
    // start with its path named.
    let agent_listener = match &config.agents {
        Some(l) => Some((
            bind("agents", l.addr).await?,
            l.tls.as_ref().map(|t| t.server_config()).transpose()?,
        )),
        None => None,
    };

    let metrics = CoordinatorMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let connections = crate::listener::ConnectionMetrics::default();
    connections.register(&mut registry);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let view = LiveView::new(config.view, clock.clone(), metrics.clone());
    let directives = Directives::default();
    let measurements = Measurements::new(view.clone(), directives.clone(), Arc::new(runs));
    let mut ingest = Ingest::new(
        view.clone(),
        measurements.clone(),
        directives.clone(),
        config.limits,
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<grpc::agent::AgentServer>().await;
    health
        .set_serving::<ClusterServiceServer<grpc::cluster::Cluster>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(aistor_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let mut tasks = Supervisor::new();
    // Kubernetes: kubelet pods' checkpoints and freezes, asked of agents, seen in reports.
    let kubelet_pods = crate::kubelet_pods::KubeletPods::new(directives.clone());
    // Standalone, or the Kubernetes shell: reflectors and the leader election are
    // essential tasks like the servers.
    let (role, shell) = match started {
        None => (Role::standalone(), None),
        Some((shell, shell_tasks)) => {
            for task in shell_tasks {
                let future = task.future;
                tasks.spawn(task.name, async move {
                    future.await;
                    Ok::<(), std::convert::Infallible>(())
                });
            }
            // Pods in reports are joined with their specs in the API by uid.
            ingest = ingest
                .with_specs(Arc::new(shell.cache.specs().clone()))
                .with_kubelet_pods(kubelet_pods.clone());
            (
                Role::kubernetes(shell.cluster.mode.clone(), &shell.leadership),
                Some(shell),
            )
        }
    };
    tracing::info!(mode = %role.mode(), "aistor-coordinator role");
    // Standalone: the local runtime's Pods and Deployments, kept in the store.
    let workloads = if shell.is_none() {
        let w = crate::workloads::Workloads::open(store.clone(), directives.clone(), view.clone())
            .await
            .map_err(store_error)?;
        ingest = ingest.with_workloads(w.clone());
        tasks.spawn("workload-controller", {
            let w = w.clone();
            let drain = drain.clone();
            async move {
                crate::workloads::controller::run(w, drain).await;
                Ok::<(), std::convert::Infallible>(())
            }
        });
        Some(w)
    } else {
        None
    };
    // Placement: pods applied without a node (standalone), pending pods of aistor's
    // scheduler names and the extender (Kubernetes), and the explain API.
    let placement = if shell.is_some() {
        crate::placement::Placement::new(view.clone())
    } else {
        crate::placement::Placement::standalone(view.clone())
    };
    let (candidates, lookup): (
        Arc<dyn crate::placement::Candidates>,
        crate::placement::service::PodLookup,
    ) = match (&workloads, &shell) {
        (Some(w), _) => {
            w.set_placement(placement.clone());
            let lookup = w.clone();
            (
                Arc::new(w.clone()),
                Arc::new(move |ns: &str, name: &str| {
                    lookup
                        .pod_with_status(ns, name)
                        .and_then(|(object, _, _)| serde_json::from_value(object).ok())
                }),
            )
        }
        (None, Some(shell)) => {
            let pods = shell.cache.pods().clone();
            (
                Arc::new(crate::placement::scheduler::KubeCandidates::new(
                    shell.cache.clone(),
                )),
                Arc::new(move |ns: &str, name: &str| {
                    pods.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
                        .map(|p| (*p).clone())
                }),
            )
        }
        (None, None) => unreachable!("standalone always has workloads"),
    };
    let placement_service = crate::placement::service::PlacementService::open(
        placement.clone(),
        candidates.clone(),
        lookup,
        shell.is_none().then(|| store.clone()),
    )
    .await
    .map_err(store_error)?;
    if let Some(shell) = &shell {
        tasks.spawn("placement-config", {
            let client = shell.cluster.client.clone();
            let reference = config.placement.config_ref.clone();
            let placement = placement.clone();
            let mut drain = drain.clone();
            async move {
                tokio::select! {
                    () = crate::placement::scheduler::watch_config(client, reference, placement) => {}
                    () = drain.signaled() => {}
                }
                Ok::<(), std::convert::Infallible>(())
            }
        });
        if config.placement.scheduler {
            let mut scheduler = crate::placement::scheduler::Scheduler::new(
                shell.cache.clone(),
                shell.actuator.clone(),
                placement.clone(),
            );
            if let Some(apollo) = &config.placement.apollo {
                let apollo = crate::placement::apollo::Apollo::new(apollo.clone(), clock.clone())
                    .map_err(|e| Error::Apollo(e.to_string()))?;
                apollo.register_metrics(&mut registry);
                tracing::info!(
                    endpoint = apollo.endpoint(),
                    "placement asks APOLLO for policies"
                );
                scheduler = scheduler.with_apollo(apollo);
            }
            tasks.spawn("scheduler", {
                let leadership = role.leadership();
                let mut drain = drain.clone();
                async move {
                    crate::placement::scheduler::run(scheduler, leadership, async move {
                        drain.signaled().await
                    })
                    .await;
                    Ok::<(), std::convert::Infallible>(())
                }
            });
        }
    }
    let extender_listener = match config.placement.extender_addr {
        Some(addr) => Some(bind("extender", addr).await?),
        None => None,
    };
    // Autoscalers act through the local runtime's Deployments (standalone) or the
    // `scale` subresource (Kubernetes, while this coordinator leads).
    let targets: Arc<dyn crate::autoscalers::target::ScaleTargets> = match (&workloads, &shell) {
        (Some(w), _) => Arc::new(crate::autoscalers::target::LocalTargets(w.clone())),
        (None, Some(shell)) => Arc::new(crate::autoscalers::kubernetes::KubernetesTargets::new(
            shell.cluster.client.clone(),
            shell.cache.clone(),
            shell.actuator.clone(),
        )),
        (None, None) => unreachable!("standalone always has workloads"),
    };
    // On a cluster the autoscalers are Autoscaler resources (kubectl sees them; a new
    // leader reads them); standalone they are in the coordinator's database.
    let autoscaler_store: Arc<dyn crate::store::Store> = match &shell {
        Some(shell) => Arc::new(crate::store::custom_resources::CustomResourceStore::new(
            shell.cluster.client.clone(),
        )),
        None => store.clone(),
    };
    let autoscalers = crate::autoscalers::Autoscalers::open(
        autoscaler_store.clone(),
        view.clone(),
        targets,
        aistor_core::autoscale::Config::default(),
        role.leadership(),
    )
    .await;
    tasks.spawn("autoscalers", {
        let a = autoscalers.clone();
        let drain = drain.clone();
        async move {
            crate::autoscalers::controller::run(a, drain).await;
            Ok::<(), std::convert::Infallible>(())
        }
    });
    // Migrations act through the local runtime, or on Kubernetes through the API
    // server (pods) and the agents (checkpoints, freezes).
    let migration_runtime: Arc<dyn crate::migrations::PodRuntime> = match (&workloads, &shell) {
        (Some(w), _) => Arc::new(crate::migrations::local::LocalPods(w.clone())),
        (None, Some(shell)) => Arc::new(crate::migrations::kube::KubePods::new(
            shell.cache.clone(),
            shell.actuator.clone(),
            kubelet_pods.clone(),
            config.migrations.restore.clone(),
        )),
        (None, None) => unreachable!("standalone always has workloads"),
    };
    // Records: Migration resources on a cluster (a new leader resumes them).
    let (migration_store, records) = match &shell {
        Some(_) => (
            autoscaler_store.clone(),
            crate::migrations::Records::CustomResources,
        ),
        None => (store.clone(), crate::migrations::Records::Plain),
    };
    let migrations = {
        let m = crate::migrations::Migrations::open(
            migration_store,
            records,
            view.clone(),
            measurements.clone(),
            migration_runtime,
            config.migrations.clone(),
            role.leadership(),
            metrics.clone(),
        )
        .await
        .map_err(store_error)?;
        tasks.spawn("migrations", {
            let m = m.clone();
            let drain = drain.clone();
            async move {
                crate::migrations::controller::run(m, drain).await;
                Ok::<(), std::convert::Infallible>(())
            }
        });
        // The scheduler (and the extender) keep a migrated controller's new pod on the
        // node its migration reserved.
        placement.set_reservations({
            let m = m.clone();
            Arc::new(move || m.reservations())
        });
        Some(m)
    };
    // Readiness follows leadership: the Service sends agents to the leader only.
    tasks.spawn("readiness", {
        let health = health.clone();
        let mut leadership = role.leadership();
        let mut drain = drain.clone();
        async move {
            loop {
                let leader = *leadership.borrow_and_update();
                let status = if leader {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                health.set_service_status("", status).await;
                if leader {
                    health.set_serving::<grpc::agent::AgentServer>().await;
                } else {
                    health.set_not_serving::<grpc::agent::AgentServer>().await;
                }
                tokio::select! {
                    changed = leadership.changed() => if changed.is_err() {
                        // The election ended (shutdown): nothing changes any more.
                        drain.signaled().await;
                        return Ok::<(), std::convert::Infallible>(());
                    },
                    () = drain.signaled() => return Ok(()),
                }
            }
        }
    });
    // Kept for the decision loops (issues to come): cache, leadership, actuator.
    let mut agents =
        grpc::agent::Agents::new(ingest, directives.clone(), role.clone(), drain.clone());
    // On a cluster agents prove their node with their ServiceAccount token.
    if let Some(shell) = &shell {
        agents =
            agents.with_token_reviewer(Arc::new(crate::k8s::token_review::KubeTokenReviewer::new(
                shell.cluster.client.clone(),
                config.agent_token_audience.clone(),
                config.agent_service_accounts.clone(),
            )));
    }
    let api_auth = Arc::new(match &shell {
        Some(shell) => with_cluster(api_auth, shell.cluster.client.clone()),
        None => api_auth,
    });
    let _shell = shell;
    // Agents share the API's port unless they have a listener of their own.
    let (shared_agents, agents_addr) = match agent_listener {
        None => (Some(grpc::agent::AgentServer::new(agents)), grpc_addr),
        Some(((listener, addr), tls)) => {
            // The same bounds as the API's gRPC listener, counted apart.
            let mut server = config.grpc_limits.server();
            let agents = match tls {
                Some(tls) => {
                    server = server.tls_config(tls).map_err(Error::AgentTlsSetup)?;
                    agents.identity_required()
                }
                None => agents,
            };
            tasks.spawn(
                "agent-grpc-server",
                server
                    .add_service(health_service.clone())
                    .add_service(grpc::agent::AgentServer::new(agents))
                    .serve_with_incoming_shutdown(
                        crate::listener::grpc_incoming(
                            "agents",
                            listener,
                            &config.grpc_limits,
                            &connections,
                        ),
                        {
                            let mut drain = drain.clone();
                            async move { drain.signaled().await }
                        },
                    ),
            );
            (None, addr)
        }
    };
    let (rest_tls, grpc_tls) = match api_tls {
        Some((rest, grpc)) => (Some(rest), Some(grpc)),
        None => (None, None),
    };
    let mut api_server = config.grpc_limits.server();
    if let Some(tls) = grpc_tls {
        api_server = api_server.tls_config(tls).map_err(Error::ApiTlsSetup)?;
    }
    tasks.spawn(
        "grpc-server",
        api_server
            .layer(crate::auth::AuthLayer::new(
                api_auth.clone(),
                grpc::GrpcProtocol,
            ))
            .add_service(health_service)
            .add_service(reflection)
            .add_optional_service(shared_agents)
            .add_service(grpc::cluster::cluster_server(
                view.clone(),
                measurements.clone(),
                role.mode().name(),
                drain.clone(),
            ))
            .add_service(grpc::workloads::workload_server(workloads))
            .add_service(grpc::autoscalers::autoscaler_server(
                autoscalers.clone(),
                drain.clone(),
            ))
            .add_service(grpc::migrations::migration_server(
                migrations.clone(),
                drain.clone(),
            ))
            .add_service(grpc::placement::placement_server(placement_service.clone()))
            .serve_with_incoming_shutdown(
                crate::listener::grpc_incoming(
                    "grpc",
                    grpc_listener,
                    &config.grpc_limits,
                    &connections,
                ),
                {
                    let mut drain = drain.clone();
                    let health = health.clone();
                    async move {
                        drain.signaled().await;
                        health.set_not_serving::<grpc::agent::AgentServer>().await;
                        health
                            .set_not_serving::<ClusterServiceServer<grpc::cluster::Cluster>>()
                            .await;
                    }
                },
            ),
    );
    let api = rest::bounded(
        rest::router(
            view.clone(),
            measurements.clone(),
            role.clone(),
            Arc::new(registry),
            rest::Deciders {
                autoscalers: autoscalers.clone(),
                migrations: migrations.clone(),
                placement: Some(placement_service.clone()),
            },
            warnings.into(),
        ),
        &config.http_limits,
        &config.cors_allow_origins,
        api_auth.clone(),
    );
    tasks.spawn(
        "http-server",
        crate::listener::serve_http(
            http_listener,
            api,
            config.http_limits.clone(),
            connections.clone(),
            rest_tls,
            {
                let mut drain = drain.clone();
                async move { drain.signaled().await }
            },
        ),
    );
    let extender_addr = match extender_listener {
        Some((listener, addr)) => {
            tasks.spawn(
                "extender-server",
                crate::listener::serve_http(
                    listener,
                    crate::placement::extender::router(placement.clone(), candidates.clone()),
                    config.http_limits.clone(),
                    connections.clone(),
                    None,
                    {
                        let mut drain = drain.clone();
                        async move { drain.signaled().await }
                    },
                ),
            );
            Some(addr)
        }
        None => None,
    };
    tasks.spawn("staleness-refresher", {
        let view = view.clone();
        let mut drain = drain.clone();
        let every = config.refresh_every;
        async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = ticker.tick() => view.refresh(),
                    () = drain.signaled() => return Ok::<(), std::convert::Infallible>(()),
                }
            }
        }
    });

    tracing::info!(grpc = %grpc_addr, http = %http_addr, agents = %agents_addr, "aistor-coordinator serving");
    if let Some(tx) = bound {
        let _ = tx.send(Bound {
            grpc: grpc_addr,
            http: http_addr,
            agents: agents_addr,
            extender: extender_addr,
        });
    }
    let ended = tasks.run(drain, trigger, config.shutdown_grace).await;
    // Whatever ended the run, leave the database file complete.
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "the store did not close cleanly");
    }
    ended?;
    tracing::info!("aistor-coordinator stopped");
    Ok(())
}
