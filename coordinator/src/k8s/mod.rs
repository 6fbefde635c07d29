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

pub use cache::{Cache, Reflector};
pub use calls::{API_CALLS, ApiCall, Scope};
pub use config::{Args, ClientSource, ClusterConfig, ClusterMode, KubernetesConfig, LeaseConfig};
pub use leader::Leadership;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use the in-cluster service account: {0}")]
    InCluster(#[source] kube::config::InClusterError),
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
