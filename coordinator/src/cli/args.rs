//! The command line: what a person types, parsed by clap. Every flag is also an
//! environment variable, so scripts and shells can set defaults once.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The coordinator address used when neither `--server` nor `AISTOR_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

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
  aistorctl top nodes --interval 1s        live view until Ctrl-C"
)]
pub struct Cli {
    /// Coordinator gRPC address; `http://` is assumed when no scheme is given.
    #[arg(
        long,
        global = true,
        env = "AISTOR_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,

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
    /// Live views, redrawn as the coordinator sees changes (until Ctrl-C).
    #[command(subcommand)]
    Top(TopCommand),
}

#[derive(Debug, Clone, Args)]
pub struct NodesArgs {
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

#[derive(Debug, Clone, Subcommand)]
pub enum TopCommand {
    /// Node usage, redrawn live until Ctrl-C.
    Nodes(TopNodesArgs),
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

/// How `nodes` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns of the essentials, units humanised.
    Table,
    /// `table` plus kernel, cgroup mode, CPUs, pods, GPUs, CPU pressure and agent version.
    Wide,
    /// `{"nodes": [NodeStatus...], "count": N}`, every field, pretty-printed.
    Json,
    /// The same document as `json`, as YAML.
    Yaml,
}
