//! The coordinator's Kubernetes shell (kube-rs): how it connects ([`config`], [`connect`]), what
//! it watches ([`Cache`]), how it elects a leader ([`Leadership`]), how it acts
//! ([`actuate::Kubernetes`], behind `crate::actuate::Actuator`), its custom resources ([`crd`]) and
//! every API call it makes ([`API_CALLS`], which the RBAC in `deploy/base` must match).
//!
//! Without a kubeconfig and outside a cluster none of this runs: the coordinator is standalone.

pub mod actuate;
pub mod cache;
pub mod calls;
pub mod config;
pub mod crd;
pub mod join;
pub mod leader;
pub mod specs;
pub mod token_review;

pub use cache::Cache;
pub use calls::{API_CALLS, ApiCall, Scope};
pub use config::{Args, ClientSource, ClusterConfig, ClusterMode, KubernetesConfig, LeaseConfig};
pub use leader::Leadership;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::actuate::Actuator;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use the in-cluster service account: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("leader election: {0}")]
    Lease(#[from] config::ConfigError),
    #[error("cannot build a Kubernetes client ({source_desc}): {source}")]
    Client {
        source_desc: String,
        source: kube::Error,
    },
}

/// A connected client and where it points.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The coordinator's namespace (the leader Lease's).
    pub namespace: String,
    pub mode: ClusterMode,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Builds the client; makes no request (the reflectors and the election make the first ones,
/// and retry while the API server is unreachable).
pub async fn connect(config: &KubernetesConfig) -> Result<Cluster, Error> {
    let kube_config = match &config.source {
        ClientSource::Kubeconfig(path) => {
            let file = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        ClientSource::InCluster => kube::Config::incluster().map_err(Error::InCluster)?,
    };
    // No blanket retry of 429/503/504 inside the client: a 429 from the eviction API is an
    // answer (the disruption budget says no) that the caller must see at once, and every caller
    // has its own retry policy (the reflectors' backoff, the election's, the decision loops').
    let mut kube_config = kube_config;
    kube_config.default_retry = false;
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let client = Client::try_from(kube_config).map_err(|source| Error::Client {
        source_desc: match &config.source {
            ClientSource::Kubeconfig(path) => format!("kubeconfig {}", path.display()),
            ClientSource::InCluster => "in-cluster".into(),
        },
        source,
    })?;
    Ok(Cluster {
        client,
        mode: ClusterMode::Kubernetes {
            source: config.source.clone(),
            namespace: namespace.clone(),
            identity: config.identity.clone(),
        },
        namespace,
    })
}

/// A task of the shell for the caller to spawn and supervise: it runs until dropped (reflectors)
/// or until the shutdown future given to [`start`] resolves (leader election); any other end is
/// a failure worth exiting for.
pub struct Task {
    /// For the supervisor's log: `reflector/pods`, `leader-election`.
    pub name: String,
    pub future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The running shell's owners: what the composition root hands to the API (`mode`, readiness),
/// to the decision loops (`cache`, `leadership`, `actuator`) and to the CRD store (`cluster`).
#[derive(Clone)]
pub struct Shell {
    pub cluster: Cluster,
    pub cache: Cache,
    pub leadership: Leadership,
    pub actuator: Arc<dyn Actuator>,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("mode", &self.cluster.mode)
            .field("leader", &self.leadership.is_leader())
            .field("cache_ready", &self.cache.is_ready())
            .finish_non_exhaustive()
    }
}

/// Connects and builds the shell: the reflector cache, the leader election (which releases the
/// Lease when `shutdown` resolves) and the Kubernetes actuator. Makes no request itself; the
/// returned tasks do, once spawned.
pub async fn start(
    config: &KubernetesConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Shell, Vec<Task>), Error> {
    let cluster = connect(config).await?;
    let (cache, mut tasks) = Cache::new(&cluster.client);
    let (leadership, election) = Leadership::new(
        cluster.client.clone(),
        &cluster.namespace,
        &config.identity,
        &config.lease,
        shutdown,
    )?;
    tasks.push(Task {
        name: "leader-election".into(),
        future: election,
    });
    let actuator = Arc::new(actuate::Kubernetes::new(
        cluster.client.clone(),
        config.identity.clone(),
    ));
    Ok((
        Shell {
            cluster,
            cache,
            leadership,
            actuator,
        },
        tasks,
    ))
}
