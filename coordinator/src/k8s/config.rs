//! Where the coordinator finds Kubernetes (a kubeconfig, the in-cluster service account, or
//! nowhere: standalone) and how it holds the leader Lease. [`Args`] are the flags, flattened into
//! the coordinator's `run` command; [`ClusterConfig`] is the plain value they resolve to.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Kubernetes flags of `aistor-coordinator run` (every one also an `AISTOR_COORDINATOR_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kubeconfig to reach the API server with. Without it, and outside a cluster, the coordinator
    /// runs standalone (no Kubernetes).
    #[arg(long, env = "AISTOR_COORDINATOR_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the leader Lease (default: the kubeconfig context's, or the pod's own in a cluster).
    #[arg(long, env = "AISTOR_COORDINATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Identity in the leader Lease: the pod name (set from the downward API); default hostname-pid.
    #[arg(long, env = "AISTOR_COORDINATOR_POD_NAME")]
    pub pod_name: Option<String>,
    /// Name of the Lease coordinators elect their leader with.
    #[arg(
        long,
        env = "AISTOR_COORDINATOR_LEASE_NAME",
        default_value = "aistor-coordinator"
    )]
    pub lease_name: String,
    /// How long a leader's Lease stays valid after its last renewal (whole seconds).
    #[arg(long, env = "AISTOR_COORDINATOR_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader renews once this much time has passed since its last renewal; shorter than
    /// the lease duration, the rest being the margin for slow API calls and clock skew.
    #[arg(long, env = "AISTOR_COORDINATOR_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected a duration such as 15s)"))
}

/// How the coordinator reaches the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSource {
    Kubeconfig(PathBuf),
    /// The pod's service account (KUBERNETES_SERVICE_HOST/PORT and the mounted token).
    InCluster,
}

/// The leader Lease's name and timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            name: "aistor-coordinator".into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

impl LeaseConfig {
    /// The Lease's whole seconds `(duration, renew margin)`: kube-lease-manager counts seconds and
    /// needs `0 < margin < duration`.
    pub(crate) fn seconds(&self) -> Result<(u64, u64), ConfigError> {
        let duration = self.duration.as_secs();
        let renew = self.renew_deadline.as_secs();
        if self.duration.subsec_nanos() != 0 || self.renew_deadline.subsec_nanos() != 0 {
            return Err(ConfigError::Lease(format!(
                "lease duration {:?} and renew deadline {:?} must be whole seconds",
                self.duration, self.renew_deadline
            )));
        }
        if renew == 0 || renew >= duration {
            return Err(ConfigError::Lease(format!(
                "lease renew deadline {renew}s must be at least 1s and shorter than the lease duration {duration}s"
            )));
        }
        Ok((duration, duration - renew))
    }
}

/// Kubernetes settings once a client source was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    pub source: ClientSource,
    /// `None`: the kubeconfig context's namespace, or the pod's own in a cluster.
    pub namespace: Option<String>,
    pub identity: String,
    pub lease: LeaseConfig,
}

/// The plain configuration [`Args`] resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterConfig {
    /// No kubeconfig and not in a cluster: no Kubernetes at all.
    Standalone,
    Kubernetes(KubernetesConfig),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Lease(String),
    /// Another flag's value is wrong (the message names the flag).
    #[error("{0}")]
    Flag(String),
}

/// What the process learns from its environment, passed in so resolution stays a pure function.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `KUBERNETES_SERVICE_HOST` is set (the kubelet sets it in every pod).
    pub in_cluster: bool,
    pub hostname: Option<String>,
    pub pid: u32,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Self {
        Self {
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty()),
            pid: std::process::id(),
        }
    }
}

impl Args {
    /// Resolves the flags against this process's environment.
    pub fn into_config(self) -> Result<ClusterConfig, ConfigError> {
        self.resolve(&Environment::current())
    }

    /// A kubeconfig wins over the in-cluster account; neither means standalone.
    pub fn resolve(self, env: &Environment) -> Result<ClusterConfig, ConfigError> {
        let source = match (self.kubeconfig, env.in_cluster) {
            (Some(path), _) => ClientSource::Kubeconfig(path),
            (None, true) => ClientSource::InCluster,
            (None, false) => return Ok(ClusterConfig::Standalone),
        };
        let lease = LeaseConfig {
            name: self.lease_name,
            duration: self.lease_duration,
            renew_deadline: self.lease_renew_deadline,
        };
        lease.seconds()?;
        let identity = self.pod_name.filter(|p| !p.is_empty()).unwrap_or_else(|| {
            format!(
                "{}-{}",
                env.hostname.as_deref().unwrap_or("coordinator"),
                env.pid
            )
        });
        Ok(ClusterConfig::Kubernetes(KubernetesConfig {
            source,
            namespace: self.namespace.filter(|n| !n.is_empty()),
            identity,
            lease,
        }))
    }
}

/// What the coordinator runs as, for `/health`, the log and `aistorctl nodes -o wide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterMode {
    Standalone,
    Kubernetes {
        source: ClientSource,
        namespace: String,
        identity: String,
    },
}

impl ClusterMode {
    /// `standalone` or `kubernetes`: the one-word form for tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterMode::Standalone => "standalone",
            ClusterMode::Kubernetes { .. } => "kubernetes",
        }
    }
}

impl fmt::Display for ClusterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterMode::Standalone => f.write_str("standalone (no Kubernetes)"),
            ClusterMode::Kubernetes {
                source,
                namespace,
                identity,
            } => {
                let source = match source {
                    ClientSource::Kubeconfig(path) => format!("kubeconfig {}", path.display()),
                    ClientSource::InCluster => "in-cluster".to_owned(),
                };
                write!(
                    f,
                    "kubernetes ({source}, namespace {namespace}, identity {identity})"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        k8s: Args,
    }

    fn args(flags: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("coordinator").chain(flags.iter().copied()))
            .expect("flags parse")
            .k8s
    }

    fn env(in_cluster: bool) -> Environment {
        Environment {
            in_cluster,
            hostname: Some("box".into()),
            pid: 42,
        }
    }

    #[test]
    fn neither_kubeconfig_nor_cluster_is_standalone() {
        assert_eq!(
            args(&[]).resolve(&env(false)),
            Ok(ClusterConfig::Standalone)
        );
    }

    #[test]
    fn a_kubeconfig_wins_over_the_in_cluster_account() {
        let ClusterConfig::Kubernetes(config) = args(&["--kubeconfig", "/k/config"])
            .resolve(&env(true))
            .unwrap()
        else {
            panic!("expected Kubernetes");
        };
        assert_eq!(config.source, ClientSource::Kubeconfig("/k/config".into()));
        assert_eq!(config.identity, "box-42");
        assert_eq!(config.namespace, None);
        assert_eq!(config.lease, LeaseConfig::default());
    }

    #[test]
    fn in_a_cluster_the_pod_name_is_the_identity() {
        let config = args(&[
            "--pod-name",
            "aistor-coordinator-7d9f-x2",
            "--namespace",
            "ops",
        ])
        .resolve(&env(true))
        .unwrap();
        assert_eq!(
            config,
            ClusterConfig::Kubernetes(KubernetesConfig {
                source: ClientSource::InCluster,
                namespace: Some("ops".into()),
                identity: "aistor-coordinator-7d9f-x2".into(),
                lease: LeaseConfig::default(),
            })
        );
    }

    #[test]
    fn lease_timing_is_validated() {
        let bad = args(&[
            "--kubeconfig",
            "k",
            "--lease-duration",
            "10s",
            "--lease-renew-deadline",
            "10s",
        ])
        .resolve(&env(false));
        assert!(
            matches!(&bad, Err(ConfigError::Lease(m)) if m.contains("shorter than the lease duration")),
            "{bad:?}"
        );
        let fractional =
            args(&["--kubeconfig", "k", "--lease-duration", "1500ms"]).resolve(&env(false));
        assert!(
            matches!(fractional, Err(ConfigError::Lease(_))),
            "{fractional:?}"
        );
        assert_eq!(LeaseConfig::default().seconds(), Ok((15, 5)));
    }

    #[test]
    fn the_mode_says_where_it_runs() {
        assert_eq!(
            ClusterMode::Standalone.to_string(),
            "standalone (no Kubernetes)"
        );
        let mode = ClusterMode::Kubernetes {
            source: ClientSource::InCluster,
            namespace: "aistor-system".into(),
            identity: "c-1".into(),
        };
        assert_eq!(mode.name(), "kubernetes");
        assert_eq!(
            mode.to_string(),
            "kubernetes (in-cluster, namespace aistor-system, identity c-1)"
        );
    }
}
