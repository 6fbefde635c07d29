//! The agent's configuration as plain values: built by `args` from flags and
//! environment, or directly by tests.

use regex::Regex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to read and how, shared by `run` and `snapshot`.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where the host's `/` is mounted (`/host` in the DaemonSet).
    pub host_root: PathBuf,
    pub node_name: String,
    /// Block devices whose name matches are not reported.
    pub disk_exclude: Regex,
    pub pods: PodConfig,
}

/// Where pods and containers come from.
#[derive(Debug, Clone)]
pub struct PodConfig {
    /// containerd's socket, as seen by the agent (mounted at the same path in the
    /// DaemonSet, not under the host root). Absent socket: the kubelet's cgroup
    /// layout is scanned instead.
    pub containerd_socket: PathBuf,
    pub containerd_namespaces: Vec<String>,
    /// Cgroup path globs reported as workloads (machines without Kubernetes).
    pub workload_cgroups: Vec<String>,
    /// Full containerd re-list, on top of its events.
    pub reconcile_every: Duration,
}

impl Default for PodConfig {
    fn default() -> Self {
        Self {
            containerd_socket: PathBuf::from(DEFAULT_CONTAINERD_SOCKET),
            containerd_namespaces: vec!["k8s.io".into()],
            workload_cgroups: Vec::new(),
            reconcile_every: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub host: HostConfig,
    /// Coordinator gRPC URL, e.g. `http://aistor-coordinator.aistor-system.svc:50051`.
    pub coordinator: String,
    pub interval: Duration,
    pub admin_addr: SocketAddr,
    /// How long unacknowledged reports are kept for replay.
    pub replay_buffer: Duration,
    /// How long a drain may take after SIGTERM.
    pub shutdown_grace: Duration,
}

pub const DEFAULT_DISK_EXCLUDE: &str = r"^(loop|ram|zram|fd)\d+$";
pub const DEFAULT_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
