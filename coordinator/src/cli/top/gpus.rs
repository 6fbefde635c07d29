//! `aistorctl top gpus`: a live GPU table fed by `ClusterService.WatchNodes`,
//! exactly like `top nodes` (same throttling, settling, reconnection and
//! backoff; see `nodes`), drawn as `aistorctl gpus` draws its table: one row per
//! GPU, or each node's reason when no node reports a GPU. `--node` keeps one
//! node's GPUs. Ctrl-C exits 0; `--frames N` exits 0 after N frames.

use std::io::Write;

use aistor_proto::v1::NodeStatus;

use super::Screen;
use super::nodes::watch;
use crate::cli::args::TopGpusArgs;
use crate::cli::client::Server;
use crate::cli::error::CliError;
use crate::cli::render;

pub(crate) async fn run(
    url: &Server,
    args: &TopGpusArgs,
    terminal: bool,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let node = args.node.as_deref();
    let draw = |nodes: &[&NodeStatus], _now| render::gpu_text(nodes, false, node);
    let screen = Screen::new(terminal, args.frames);
    watch(url, args.interval, screen, out, draw).await
}
