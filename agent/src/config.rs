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
