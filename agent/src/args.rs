//! Command-line flags (every one also an `AISTOR_AGENT_*` environment variable),
//! validated into a [`crate::config`] value. A bad value fails here, naming the flag.

use crate::config::{
    DEFAULT_CONTAINERD_SOCKET, DEFAULT_DCGM_URL, DEFAULT_DISK_EXCLUDE,
    DEFAULT_POD_RESOURCES_SOCKET, GpuConfig, GpuSourceKind, HostConfig, PodConfig, RunConfig,
};
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use regex::Regex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "aistor-agent",
    version,
    about = "aistor node agent: measures this node and streams it to the coordinator"
)]
pub struct Cli {
    /// Log format: plain for people, json for log pipelines.
    #[arg(long, env = "AISTOR_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect every interval and stream to the coordinator until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Collect once (two readings an interval apart, so rates are real) and print.
    Snapshot(SnapshotArgs),
    /// Measure one pod, container or cgroup: N samples, summary statistics.
    Measure(MeasureArgs),
    /// Restore a staged checkpoint into a directory, verifying every file (the init
    /// container of a pod started from a checkpoint on Kubernetes). Exits 0 when
    /// restored, or when this checkpoint was restored there already.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The checkpoint volume, as mounted in this container.
    #[arg(long, env = "AISTOR_AGENT_CHECKPOINT_DIR")]
    pub checkpoint_dir: PathBuf,
    /// The namespace of the pod the checkpoint was staged from (and of the new pod).
    #[arg(long)]
    pub namespace: String,
    /// The checkpoint to restore (the pod's `aistor.io/restore-from`).
    #[arg(long)]
    pub checkpoint_id: String,
    /// The container whose checkpoint directory is restored.
    #[arg(long)]
    pub container: String,
    /// The directory to fill: absent or empty (the new pod's checkpoint volume).
    #[arg(long)]
    pub into: PathBuf,
}

impl RestoreArgs {
    pub fn request(self) -> crate::checkpoint::init::RestoreInto {
        crate::checkpoint::init::RestoreInto {
            checkpoint_dir: self.checkpoint_dir,
            namespace: self.namespace,
            checkpoint_id: self.checkpoint_id,
            container: self.container,
            into: self.into,
        }
    }
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Where the host's root filesystem is mounted.
    #[arg(long, env = "AISTOR_AGENT_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// This node's name (Kubernetes: spec.nodeName). Default: the host name.
    #[arg(long, env = "AISTOR_AGENT_NODE_NAME")]
    pub node_name: Option<String>,
    /// Regular expression of block device names to leave out.
    #[arg(long, env = "AISTOR_AGENT_DISK_EXCLUDE", default_value = DEFAULT_DISK_EXCLUDE, value_parser = parse_regex)]
    pub disk_exclude: Regex,
    /// containerd socket (its absence means: scan the kubelet's cgroup layout instead).
    #[arg(long, env = "AISTOR_AGENT_CONTAINERD_SOCKET", default_value = DEFAULT_CONTAINERD_SOCKET)]
    pub containerd_socket: PathBuf,
    /// containerd namespaces to list, comma-separated.
    #[arg(
        long,
        env = "AISTOR_AGENT_CONTAINERD_NAMESPACES",
        default_value = "k8s.io",
        value_delimiter = ','
    )]
    pub containerd_namespaces: Vec<String>,
    /// Cgroup path globs (relative to the cgroup root, `*` within a segment) reported as
    /// workloads, comma-separated; e.g. "system.slice/*.service".
    #[arg(long, env = "AISTOR_AGENT_WORKLOAD_CGROUPS", value_delimiter = ',')]
    pub workload_cgroups: Vec<String>,
    /// How often each pod and container cgroup's slow-cadence values are read: the memory
    /// breakdown, working set, peak and limit, OOM events, CPU throttling and limit, I/O and
    /// pressure (CPU usage, memory usage and pids are read every tick). Staggered across
    /// cgroups; every value says when it was read. 0s: everything every tick.
    #[arg(long, env = "AISTOR_AGENT_SLOW_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub slow_every: Duration,
    /// GPU source: auto (NVML, else the node-local DCGM exporter), nvml, dcgm or off.
    #[arg(long, env = "AISTOR_AGENT_GPU_SOURCE", value_enum, default_value_t = GpuSourceKind::Auto)]
    pub gpu_source: GpuSourceKind,
    /// Path of libnvidia-ml (default: the loader's search for libnvidia-ml.so.1).
    #[arg(long, env = "AISTOR_AGENT_NVML_LIBRARY")]
    pub nvml_library: Option<PathBuf>,
    /// The node-local dcgm-exporter's metrics URL (plain http).
    #[arg(long, env = "AISTOR_AGENT_DCGM_URL", default_value = DEFAULT_DCGM_URL)]
    pub dcgm_url: String,
    /// kubelet pod-resources socket (GPU allocations to pods).
    #[arg(long, env = "AISTOR_AGENT_POD_RESOURCES_SOCKET", default_value = DEFAULT_POD_RESOURCES_SOCKET)]
    pub pod_resources_socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Coordinator gRPC URL.
    #[arg(long, env = "AISTOR_AGENT_COORDINATOR", default_value = "http://127.0.0.1:50051", value_parser = parse_url)]
    pub coordinator: String,
    /// Collection interval (e.g. 1s, 500ms).
    #[arg(long, env = "AISTOR_AGENT_INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Address of /live, /ready and /metrics. Loopback by default (the pages list
    /// every pod); on Kubernetes give the pod's IP so probes and scrapers reach it.
    #[arg(
        long,
        env = "AISTOR_AGENT_ADMIN_ADDR",
        default_value = "127.0.0.1:9101"
    )]
    pub admin_addr: SocketAddr,
    /// The CA that signs the coordinator's certificate (PEM); with `--tls-cert` and
    /// `--tls-key`, the agent speaks mutual TLS (an `https://` coordinator URL).
    #[arg(long, env = "AISTOR_AGENT_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// A projected ServiceAccount token (audience `aistor`) that proves this node to a
    /// coordinator on Kubernetes (it asks the API server by TokenReview).
    #[arg(long, env = "AISTOR_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// This agent's client certificate (PEM): its common name is this node's name.
    #[arg(long, env = "AISTOR_AGENT_TLS_CERT", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "AISTOR_AGENT_TLS_KEY", requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
    /// Admin connections open at once; more are closed on accept (and counted).
    #[arg(long, env = "AISTOR_AGENT_ADMIN_MAX_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_max_connections: u32,
    /// Time a client has to send a request head before its admin connection is closed.
    #[arg(long, env = "AISTOR_AGENT_ADMIN_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub admin_header_read_timeout: Duration,
    /// How long unacknowledged reports are kept for replay after a coordinator outage.
    #[arg(long, env = "AISTOR_AGENT_REPLAY_BUFFER", default_value = "5m", value_parser = parse_duration)]
    pub replay_buffer: Duration,
    /// Size budget of the replay buffer in MiB (encoded reports); the oldest are dropped first.
    #[arg(long, env = "AISTOR_AGENT_REPLAY_BUFFER_MAX_MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub replay_buffer_max_mib: u64,
    /// Longest drain after SIGTERM.
    #[arg(long, env = "AISTOR_AGENT_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Run the pods the coordinator assigns to this node on containerd (the local
    /// runtime, for machines without Kubernetes). Needs root and --host-root /.
    #[arg(long, env = "AISTOR_AGENT_LOCAL_RUNTIME")]
    pub local_runtime: bool,
    /// Where the local runtime keeps pod logs, emptyDir volumes and host-rootfs views.
    #[arg(
        long,
        env = "AISTOR_AGENT_RUNTIME_DIR",
        default_value = "/var/lib/aistor/runtime"
    )]
    pub runtime_dir: PathBuf,
    /// Where claims (persistentVolumeClaim volumes) live, as <dir>/<namespace>/<claim>.
    #[arg(
        long,
        env = "AISTOR_AGENT_VOLUME_ROOT",
        default_value = "/var/lib/aistor/volumes"
    )]
    pub volume_root: PathBuf,
    /// containerd snapshotter that holds the images' layers.
    #[arg(long, env = "AISTOR_AGENT_SNAPSHOTTER", default_value = "overlayfs")]
    pub snapshotter: String,
    /// The shared checkpoint volume (on Kubernetes an NFS-backed ReadWriteMany claim
    /// mounted into the agent); checkpoints go to <dir>/<namespace>/<pod>/<id>/<container>/.
    #[arg(long, env = "AISTOR_AGENT_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Print the report as JSON (the only format for now; kept explicit for scripts).
    #[arg(long)]
    pub json: bool,
    /// Time between the two readings.
    #[arg(long, env = "AISTOR_AGENT_INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct TargetArgs {
    /// A pod, as NAMESPACE/NAME.
    #[arg(long, value_parser = parse_pod)]
    pub pod: Option<(String, String)>,
    #[arg(long)]
    pub pod_uid: Option<String>,
    /// A container id (a unique prefix is enough).
    #[arg(long)]
    pub container: Option<String>,
    /// A cgroup path relative to the cgroup root, e.g. "system.slice/foo.service".
    #[arg(long)]
    pub cgroup: Option<String>,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Samples to take (each a rate over its own measured interval).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Fraction of samples dropped at each end for the trimmed mean.
    #[arg(long, default_value_t = 0.1, value_parser = parse_trim)]
    pub trim: f64,
    /// Print the result as JSON (the only format; kept explicit for scripts).
    #[arg(long)]
    pub json: bool,
}

impl MeasureArgs {
    pub fn run(&self) -> aistor_proto::v1::MeasureRun {
        use aistor_proto::v1::{MeasureRun, MeasureTarget, PodName, measure_target::Target};
        let t = &self.target;
        let target = match (&t.pod, &t.pod_uid, &t.container, &t.cgroup) {
            (Some((namespace, name)), ..) => Target::Pod(PodName {
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            (_, Some(uid), ..) => Target::PodUid(uid.clone()),
            (_, _, Some(id), _) => Target::ContainerId(id.clone()),
            (.., Some(path)) => Target::CgroupPath(path.clone()),
            // clap's group makes exactly one present.
            _ => Target::CgroupPath(String::new()),
        };
        MeasureRun {
            id: format!("cli-{}", crate::clock::wall_unix_nanos()),
            target: Some(MeasureTarget {
                target: Some(target),
            }),
            samples: self.samples,
            interval_nanos: u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX),
            trim: self.trim,
        }
    }
}

fn parse_pod(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.into(), name.into()))
        }
        _ => Err("expected NAMESPACE/NAME".into()),
    }
}

fn parse_trim(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..0.5).contains(&v) {
        Ok(v)
    } else {
        Err("must be at least 0 and below 0.5".into())
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 1s, 500ms or 5m)"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

fn parse_url(s: &str) -> Result<String, String> {
    let uri: tonic::transport::Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.host().is_none() {
        return Err("expected http://HOST:PORT".into());
    }
    crate::config::coordinator_transport(s)?;
    Ok(s.to_owned())
}

impl HostArgs {
    pub fn into_config(self) -> HostConfig {
        let node_name = self.node_name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            let fs = crate::source::HostFs::new(&self.host_root);
            fs.read_trimmed("/proc/sys/kernel/hostname")
                .unwrap_or_else(|_| "unknown".into())
        });
        HostConfig {
            host_root: self.host_root,
            node_name,
            disk_exclude: self.disk_exclude,
            pods: PodConfig {
                containerd_socket: self.containerd_socket,
                containerd_namespaces: self.containerd_namespaces,
                workload_cgroups: self
                    .workload_cgroups
                    .into_iter()
                    .filter(|g| !g.is_empty())
                    .collect(),
                slow_every: self.slow_every,
                ..PodConfig::default()
            },
            gpu: GpuConfig {
                source: self.gpu_source,
                nvml_library: self.nvml_library,
                dcgm_url: self.dcgm_url,
                pod_resources_socket: self.pod_resources_socket,
            },
        }
    }
}

impl RunArgs {
    pub fn into_config(self) -> RunConfig {
        let mut host = self.host.into_config();
        host.pods.checkpoint_dir.clone_from(&self.checkpoint_dir);
        let local_runtime = self.local_runtime.then(|| crate::runtime::RuntimeConfig {
            containerd_socket: host.pods.containerd_socket.clone(),
            namespace: host
                .pods
                .containerd_namespaces
                .first()
                .cloned()
                .unwrap_or_else(|| "k8s.io".to_owned()),
            snapshotter: self.snapshotter,
            cgroup_root: host.host_root.join("sys/fs/cgroup"),
            paths: crate::runtime::pod::Paths {
                data_dir: self.runtime_dir,
                volume_root: self.volume_root,
                host_root: host.host_root.clone(),
            },
            node: host.node_name.clone(),
            checkpoint_dir: self.checkpoint_dir,
        });
        RunConfig {
            host,
            local_runtime,
            coordinator: self.coordinator,
            interval: self.interval,
            admin_addr: self.admin_addr,
            admin_limits: crate::listener::Limits {
                max_connections: usize::try_from(self.admin_max_connections).unwrap_or(usize::MAX),
                header_read_timeout: self.admin_header_read_timeout,
            },
            replay_buffer: self.replay_buffer,
            replay_buffer_max_bytes: usize::try_from(self.replay_buffer_max_mib << 20)
                .unwrap_or(usize::MAX),
            shutdown_grace: self.shutdown_grace,
            token_file: self.token_file,
            tls: match (self.tls_ca, self.tls_cert, self.tls_key) {
                (Some(ca), Some(cert), Some(key)) => {
                    Some(crate::config::ClientTls { ca, cert, key })
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aistor-agent").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let Command::Run(run) = parse(&["run", "--node-name", "n1"]).unwrap().command else {
            panic!("run")
        };
        let c = run.into_config();
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.replay_buffer, Duration::from_secs(300));
        assert_eq!(c.host.node_name, "n1");
        assert_eq!(c.admin_addr, "127.0.0.1:9101".parse().unwrap());
        assert_eq!(c.admin_limits, crate::listener::Limits::default());
        assert!(c.host.disk_exclude.is_match("loop3") && !c.host.disk_exclude.is_match("nvme0n1"));
    }

    #[test]
    fn measure_builds_a_run_for_exactly_one_target() {
        let Command::Measure(m) = parse(&[
            "measure",
            "--pod",
            "ml/trainer",
            "--samples",
            "5",
            "--interval",
            "200ms",
        ])
        .unwrap()
        .command
        else {
            panic!("measure")
        };
        let run = m.run();
        assert_eq!(run.samples, 5);
        assert_eq!(run.interval_nanos, 200_000_000);
        assert_eq!(run.trim, 0.1);
        let target = run.target.unwrap().target.unwrap();
        assert_eq!(
            target,
            aistor_proto::v1::measure_target::Target::Pod(aistor_proto::v1::PodName {
                namespace: "ml".into(),
                name: "trainer".into()
            })
        );
        assert!(
            parse(&["measure", "--samples", "3"]).is_err(),
            "a target is required"
        );
    }

    #[test]
    fn https_needs_the_tls_files_and_they_need_https() {
        let Command::Run(run) = parse(&[
            "run",
            "--coordinator",
            "https://c.example:50052",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "a.pem",
            "--tls-key",
            "a-key.pem",
        ])
        .unwrap()
        .command
        else {
            panic!("run")
        };
        let config = run.into_config();
        assert_eq!(
            config.tls.as_ref().unwrap().cert,
            std::path::Path::new("a.pem")
        );
        // An https:// URL without the files, or the files with http://: refused, never
        // spoken in cleartext.
        let err = crate::coordinator_endpoint("https://c:1", None).unwrap_err();
        assert!(err.to_string().contains("no --tls-ca"), "{err}");
        let err = crate::coordinator_endpoint("http://c:1", config.tls.as_ref()).unwrap_err();
        assert!(err.to_string().contains("not https://"), "{err}");
        // A part of the set is a flag error.
        let err = parse(&["run", "--tls-ca", "ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["run", "--interval", "abc"][..], "--interval"),
            (&["run", "--interval", "1ms"][..], "--interval"),
            (&["run", "--coordinator", "localhost"][..], "--coordinator"),
            (
                &["run", "--coordinator", "ftp://c.example:50051"][..],
                "--coordinator",
            ),
            (&["run", "--admin-addr", "nope"][..], "--admin-addr"),
            (&["run", "--disk-exclude", "(["][..], "--disk-exclude"),
            (&["run", "--log-format", "xml"][..], "--log-format"),
            (
                &["snapshot", "--replay-buffer", "1s"][..],
                "--replay-buffer",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
