//! The command line: what a person types, parsed by clap. Every flag is also an
//! environment variable, so scripts and shells can set defaults once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The coordinator address used when neither `--server` nor `AISTOR_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Items per page `nodes`, `pods`, `gpus` and `top pods` ask for (as kubectl's
/// `--chunk-size`).
pub const DEFAULT_CHUNK_SIZE: u32 = 500;

/// `aistorctl`: what aistor measures on every node, read from the coordinator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "aistorctl",
    version,
    propagate_version = true,
    after_help = "Examples:
  aistorctl nodes                          every node, usage humanised
  aistorctl nodes -o wide                  plus kernel, cgroup mode, pods, GPUs, pressure
  aistorctl --server 10.0.0.5:50051 nodes -o json
  aistorctl --token-file ~/.aistor-token nodes
  aistorctl top nodes --interval 1s        live view until Ctrl-C
  aistorctl pods -n ml --sort cpu          pods of one namespace, busiest first
  aistorctl pods --node gpu-node-1 -o wide plus QoS, uid, how found, RSS, node state
  aistorctl top pods --sort memory         live pod view (polled) until Ctrl-C
  aistorctl gpus                           every GPU with its pods (or why a node has none)
  aistorctl gpus --node gpu-node-1 -o wide plus UUID, source, power limit, clocks, activity
  aistorctl top gpus                       live GPU view until Ctrl-C
  aistorctl apply -f examples/seed-003-training-pod.yaml   run a pod on the local runtime
  aistorctl get pods -n ml -o wide         its containers' states and measured usage
  aistorctl delete pod train -n ml         stop it (SIGTERM, grace period, SIGKILL)
  aistorctl apply -f examples/cpu-burner-autoscaler.yaml   scale a Deployment
  aistorctl get autoscalers -A             every autoscaler, its targets and replicas
  aistorctl describe autoscaler NAME       its metrics, conditions and decisions
  aistorctl migrate ml/tensorflow-ai-workload --to node-2 --wait   move a pod from its checkpoint
  aistorctl migrations                     every migration, its stage and new pod
  aistorctl describe migration ID          its containers, steps, figures and conditions"
)]
pub struct Cli {
    /// Coordinator gRPC address; `http://` is assumed when no scheme is given.
    /// `https://` speaks TLS and needs `--certificate-authority`.
    #[arg(
        long,
        global = true,
        env = "AISTOR_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "URL",
        value_parser = super::client::parse_server
    )]
    pub server: String,

    /// Bearer token for a coordinator run with `--api-tokens` (sent as
    /// `authorization: Bearer TOKEN` on every call; never printed). Visible to
    /// other users in the process list: prefer `--token-file` or `AISTOR_TOKEN`.
    #[arg(
        long,
        global = true,
        env = "AISTOR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = super::client::Token::parse,
        conflicts_with = "token_file"
    )]
    pub token: Option<super::client::Token>,

    /// The CA (PEM) that signs an `https://` coordinator's certificate.
    #[arg(
        long,
        global = true,
        env = "AISTOR_CERTIFICATE_AUTHORITY",
        value_name = "PATH"
    )]
    pub certificate_authority: Option<PathBuf>,

    /// A file holding the bearer token (surrounding whitespace, such as a final
    /// newline, is ignored).
    #[arg(long, global = true, env = "AISTOR_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Whether stdout is a terminal: `top` then clears the screen between frames
    /// and refreshes the AGE column even when nothing changed. Not a flag: the
    /// binary sets it from `std::io::stdout().is_terminal()`; tests leave it false.
    #[arg(skip)]
    pub terminal: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// List every node that has reported, with its latest usage.
    Nodes(NodesArgs),
    /// List the pods (and workload cgroups) every node reported, with their usage.
    Pods(PodsArgs),
    /// List every GPU the nodes reported, with the pods using or holding it; when
    /// no node reported one, say why for each node.
    Gpus(GpusArgs),
    /// Live views, redrawn until Ctrl-C.
    #[command(subcommand)]
    Top(TopCommand),
    /// Create or update Pods and Deployments on the local runtime from a YAML file
    /// (standalone mode; on Kubernetes use kubectl), and create the Autoscalers in it.
    Apply(ApplyArgs),
    /// List the local runtime's pods, deployments or checkpoints, or the autoscalers.
    Get(GetArgs),
    /// Show one object in detail (an autoscaler: its metrics, conditions and
    /// recent decisions).
    Describe(DescribeArgs),
    /// Delete a pod, a deployment and its pods, or an autoscaler.
    Delete(DeleteArgs),
    /// Stage an application checkpoint of a pod to the shared checkpoint volume and
    /// wait until it is staged (a new pod annotated aistor.io/restore-from: ID starts
    /// from it).
    Checkpoint(CheckpointArgs),
    /// Print a container's log (local runtime), as `kubectl logs`.
    Logs(LogsArgs),
    /// Move a pod to a node (or restart it in place) from its checkpoint, without
    /// re-running its completed containers.
    Migrate(MigrateArgs),
    /// List the migrations.
    Migrations(MigrationsArgs),
    /// Show where aistor would place a pod and why (every node's score per plugin and
    /// the reasons it was filtered out); nothing is bound.
    Place(PlaceArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PlaceArgs {
    /// POD, or NAMESPACE/POD: a pod the coordinator knows.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub pod: Option<String>,
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// A Pod manifest (YAML or JSON; `-` reads stdin) instead of a known pod.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<String>,
    /// table, json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = PlaceOutput::Table)]
    pub output: PlaceOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlaceOutput {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// POD, or NAMESPACE/POD.
    pub pod: String,
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The node to move it to (may be its own: it restarts in place).
    #[arg(long, value_name = "NODE")]
    pub to: String,
    /// The node it is on (default: where it is now).
    #[arg(long, value_name = "NODE")]
    pub from: Option<String>,
    /// Do not stage a checkpoint: the containers start cold.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Give up and roll back after this long.
    #[arg(long, default_value = "10m", value_parser = parse_seconds)]
    pub timeout: u32,
    /// Go on without a checkpoint when staging it fails.
    #[arg(long)]
    pub force_restart: bool,
    /// Follow it stage by stage until it ends (exit status 1 unless it completed).
    #[arg(short = 'w', long)]
    pub wait: bool,
}

fn parse_seconds(s: &str) -> Result<u32, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 90s or 10m)"))?;
    match u32::try_from(d.as_secs()) {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err(format!("{s}: between 1s and 24h")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrationsArgs {
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// table, wide (downtime, strategy, message), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// POD, or NAMESPACE/POD.
    pub pod: String,
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The container (needed when the pod has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// The previous instance's log (after a restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckpointArgs {
    /// The pod.
    pub name: String,
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Only these containers (default: every container mounting the checkpoint path).
    #[arg(short = 'c', long = "container")]
    pub containers: Vec<String>,
    /// Return once the agent has the request, without waiting for the copy.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// The file: one or more YAML (or JSON) documents; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: String,
}

/// What `get` and `delete` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    #[value(alias = "pod", alias = "po")]
    Pods,
    #[value(alias = "deployment", alias = "deploy")]
    Deployments,
    #[value(alias = "checkpoint", alias = "ckpt")]
    Checkpoints,
    /// Autoscalers are named by the coordinator and unique across namespaces.
    #[value(alias = "autoscaler", alias = "asc")]
    Autoscalers,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Pods => "pods",
            WorkloadKind::Deployments => "deployments",
            WorkloadKind::Checkpoints => "checkpoints",
            WorkloadKind::Autoscalers => "autoscalers",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    #[arg(value_enum)]
    pub kind: WorkloadKind,
    /// Namespace (default: "default").
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// table, wide (pods: CPU, memory, node and each container's state;
    /// autoscalers: desired replicas, scale counts, last scale, message), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// What `describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeKind {
    #[value(alias = "autoscalers", alias = "asc")]
    Autoscaler,
    #[value(alias = "migrations", alias = "mig")]
    Migration,
}

#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    #[arg(value_enum)]
    pub kind: DescribeKind,
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[arg(value_enum)]
    pub kind: WorkloadKind,
    pub name: String,
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

/// How lists are fetched: page by page, as kubectl's `--chunk-size`.
#[derive(Debug, Clone, Copy, Args)]
pub struct Paging {
    /// Ask the coordinator for this many items per page (it caps pages at 5000
    /// and keeps each under 16 MiB); every page is fetched and rendered as one
    /// list. 0 leaves the page size to the coordinator (500 nodes, 1000 pods).
    #[arg(
        long,
        env = "AISTOR_CHUNK_SIZE",
        default_value_t = DEFAULT_CHUNK_SIZE,
        value_name = "N"
    )]
    pub chunk_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub paging: Paging,

    /// Output format.
    #[arg(
        short,
        long,
        env = "AISTOR_OUTPUT",
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT"
    )]
    pub output: Format,
}

#[derive(Debug, Clone, Args)]
pub struct PodsArgs {
    #[command(flatten)]
    pub filter: PodFilter,

    /// Sort by this figure, largest first (pods without it last); by default
    /// pods are sorted by namespace, then name.
    #[arg(long, env = "AISTOR_SORT", value_enum, value_name = "FIGURE")]
    pub sort: Option<PodSort>,

    #[command(flatten)]
    pub paging: Paging,

    /// Output format.
    #[arg(
        short,
        long,
        env = "AISTOR_OUTPUT",
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT"
    )]
    pub output: Format,
}

#[derive(Debug, Clone, Args)]
pub struct GpusArgs {
    /// Only GPUs of this node.
    #[arg(long, env = "AISTOR_NODE", value_name = "NODE")]
    pub node: Option<String>,

    #[command(flatten)]
    pub paging: Paging,

    /// Output format.
    #[arg(
        short,
        long,
        env = "AISTOR_OUTPUT",
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT"
    )]
    pub output: Format,
}

/// Which pods to ask the coordinator for; it does the filtering.
#[derive(Debug, Clone, Default, Args)]
pub struct PodFilter {
    /// Only pods on this node.
    #[arg(long, env = "AISTOR_NODE", value_name = "NODE")]
    pub node: Option<String>,

    /// Only pods in this namespace.
    #[arg(short, long, env = "AISTOR_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Only pods whose labels (from the Kubernetes API) match this selector, as
    /// kubectl's `-l` (`app=web,tier!=db`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// The figure `--sort` orders pods by, largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodSort {
    /// CPU usage.
    Cpu,
    /// Memory working set.
    Memory,
    /// I/O throughput, read plus write bytes per second.
    Io,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TopCommand {
    /// Node usage, redrawn live until Ctrl-C.
    Nodes(TopNodesArgs),
    /// Pod usage, polled and redrawn until Ctrl-C.
    Pods(TopPodsArgs),
    /// GPU usage and the pods on each GPU, redrawn live until Ctrl-C.
    Gpus(TopGpusArgs),
    /// Autoscalers: replicas, targets and each one's latest decision, polled and
    /// redrawn until Ctrl-C.
    #[command(alias = "asc")]
    Autoscalers(TopAutoscalersArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TopAutoscalersArgs {
    /// Namespace (default: "default").
    #[arg(short = 'n', long, env = "AISTOR_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Ask the coordinator once per this long (e.g. `500ms`, `2s`, `1m`).
    #[arg(
        long,
        env = "AISTOR_TOP_INTERVAL",
        default_value = "2s",
        value_parser = humantime::parse_duration,
        value_name = "DURATION"
    )]
    pub interval: Duration,
    /// Exit (status 0) after drawing this many frames instead of running until Ctrl-C.
    #[arg(
        long,
        env = "AISTOR_TOP_FRAMES",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub frames: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct TopNodesArgs {
    /// Redraw at most once per this long (e.g. `500ms`, `2s`, `1m`).
    #[arg(
        long,
        env = "AISTOR_TOP_INTERVAL",
        default_value = "2s",
        value_parser = humantime::parse_duration,
        value_name = "DURATION"
    )]
    pub interval: Duration,

    /// Exit (status 0) after drawing this many frames instead of running until
    /// Ctrl-C; for scripts, e.g. `aistorctl top nodes --frames 1 > snapshot.txt`.
    /// Error frames (coordinator unreachable, stream ended) count too.
    #[arg(
        long,
        env = "AISTOR_TOP_FRAMES",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub frames: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct TopPodsArgs {
    #[command(flatten)]
    pub filter: PodFilter,

    /// Sort by this figure, largest first (pods without it last); by default
    /// pods are sorted by namespace, then name.
    #[arg(long, env = "AISTOR_SORT", value_enum, value_name = "FIGURE")]
    pub sort: Option<PodSort>,

    #[command(flatten)]
    pub paging: Paging,

    /// Ask the coordinator for the pods once per this long (e.g. `500ms`, `2s`,
    /// `1m`); every answer is drawn.
    #[arg(
        long,
        env = "AISTOR_TOP_INTERVAL",
        default_value = "2s",
        value_parser = humantime::parse_duration,
        value_name = "DURATION"
    )]
    pub interval: Duration,

    /// Exit (status 0) after drawing this many frames instead of running until
    /// Ctrl-C; for scripts, e.g. `aistorctl top pods --frames 1 > snapshot.txt`.
    /// Error frames (coordinator unreachable, call failed) count too.
    #[arg(
        long,
        env = "AISTOR_TOP_FRAMES",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub frames: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct TopGpusArgs {
    /// Only GPUs of this node.
    #[arg(long, env = "AISTOR_NODE", value_name = "NODE")]
    pub node: Option<String>,

    /// Redraw at most once per this long (e.g. `500ms`, `2s`, `1m`).
    #[arg(
        long,
        env = "AISTOR_TOP_INTERVAL",
        default_value = "2s",
        value_parser = humantime::parse_duration,
        value_name = "DURATION"
    )]
    pub interval: Duration,

    /// Exit (status 0) after drawing this many frames instead of running until
    /// Ctrl-C; for scripts, e.g. `aistorctl top gpus --frames 1 > snapshot.txt`.
    /// Error frames (coordinator unreachable, stream ended) count too.
    #[arg(
        long,
        env = "AISTOR_TOP_FRAMES",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub frames: Option<u64>,
}

/// How `nodes`, `pods` and `gpus` print their result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns of the essentials, units humanised.
    Table,
    /// `table` plus more columns: for nodes kernel, cgroup mode, CPUs, pods, GPUs,
    /// CPU pressure and agent version; for pods QoS, uid, how the pod was found,
    /// RSS and the node's state; for GPUs UUID, source, power limit, SM clock, SM
    /// and tensor activity and the process count.
    Wide,
    /// `{"nodes": [NodeStatus...], "count": N}` (or `"pods": [PodStatus...]`;
    /// for GPUs `"gpus": [{node, source, pods, gpu: Gpu}...]` plus
    /// `"nodes_without_gpus": [{node, reasons}...]`), every field, pretty-printed.
    Json,
    /// The same document as `json`, as YAML.
    Yaml,
}
