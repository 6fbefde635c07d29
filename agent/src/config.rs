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
    pub gpu: GpuConfig,
}

/// Which GPU source the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GpuSourceKind {
    /// NVML if the library loads, else the node-local DCGM exporter.
    #[default]
    Auto,
    Nvml,
    Dcgm,
    /// Do not measure GPUs.
    Off,
}

#[derive(Debug, Clone)]
pub struct GpuConfig {
    pub source: GpuSourceKind,
    /// libnvidia-ml; `None` searches the loader path for `libnvidia-ml.so.1`.
    pub nvml_library: Option<PathBuf>,
    /// The node-local dcgm-exporter (never a cluster Service: any node's exporter would answer).
    pub dcgm_url: String,
    /// kubelet pod-resources socket: which GPUs are allocated to which pods.
    pub pod_resources_socket: PathBuf,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            source: GpuSourceKind::Auto,
            nvml_library: None,
            dcgm_url: DEFAULT_DCGM_URL.into(),
            pod_resources_socket: PathBuf::from(DEFAULT_POD_RESOURCES_SOCKET),
        }
    }
}

pub const DEFAULT_DCGM_URL: &str = "http://127.0.0.1:9400/metrics";
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

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
    /// How often each cgroup's slow-cadence values are read (`--slow-every`).
    pub slow_every: Duration,
    /// The shared checkpoint volume (`--checkpoint-dir`) for checkpoints of kubelet pods
    /// (the local runtime's config carries it for its own pods); `None`: refused.
    pub checkpoint_dir: Option<PathBuf>,
}

impl Default for PodConfig {
    fn default() -> Self {
        Self {
            containerd_socket: PathBuf::from(DEFAULT_CONTAINERD_SOCKET),
            containerd_namespaces: vec!["k8s.io".into()],
            workload_cgroups: Vec::new(),
            reconcile_every: Duration::from_secs(30),
            slow_every: crate::pods::sampler::DEFAULT_SLOW_EVERY,
            checkpoint_dir: None,
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
    /// Bounds of the admin listener (connections, header-read timeout).
    pub admin_limits: crate::listener::Limits,
    /// How long unacknowledged reports are kept for replay.
    pub replay_buffer: Duration,
    /// Size budget for those reports (encoded size; the newest is always kept).
    pub replay_buffer_max_bytes: usize,
    /// How long a drain may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// The local runtime (pods run by the agent on containerd); `None` when off.
    pub local_runtime: Option<crate::runtime::RuntimeConfig>,
    /// Mutual TLS to the coordinator (an `https://` URL needs it).
    pub tls: Option<ClientTls>,
    /// A projected ServiceAccount token (audience `aistor`) proving this node to a
    /// coordinator on Kubernetes.
    pub token_file: Option<std::path::PathBuf>,
}

/// The agent's side of mutual TLS: the CA it trusts for the coordinator, and the
/// certificate (naming this node) and key it proves itself with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Whether `url` names a transport the agent speaks: `http://` (cleartext) or
/// `https://` (mutual TLS, which also needs the `--tls-*` files; see
/// `crate::coordinator_endpoint`, which never downgrades one to the other).
pub fn coordinator_transport(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => Ok(()),
        _ => Err(format!(
            "{url}: expected http://HOST:PORT or https://HOST:PORT"
        )),
    }
}

pub const DEFAULT_DISK_EXCLUDE: &str = r"^(loop|ram|zram|fd)\d+$";
pub const DEFAULT_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
