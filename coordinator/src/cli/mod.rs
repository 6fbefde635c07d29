//! `aistorctl`, the command line for people: node, pod and GPU tables (`nodes`,
//! `pods`, `gpus`, in `table`, `wide`, `json` or `yaml`) and live views (`top
//! nodes`, `top pods`, `top gpus`), read from the coordinator's `ClusterService`.
//!
//! The binary only parses arguments and calls [`run`]; everything else lives here
//! so tests drive it with a real gRPC server and an in-memory `out`. Rendering is
//! pure ([`render_nodes`] takes the clock as an argument, [`render_pods`] and
//! [`render_gpus`] need none).
//!
//! - `args`: the clap command line ([`Cli`]).
//! - `client`: dialling the coordinator (message limits set on purpose; the bearer
//!   token of `--token` / `--token-file`, if any, on every call of every service)
//!   and fetching lists page by page (`--chunk-size`).
//! - `summary`: the node, GPU and pod values a table shows, absent ones as `None`.
//! - `units`: humanising CPU, bytes, throughput and ages.
//! - `table`: kubectl-style aligned columns.
//! - `render`: `-o table|wide|json|yaml`.
//! - `workloads`: `apply`, `get`, `delete`, `checkpoint` and `logs` of the local
//!   runtime's Pods and Deployments (`WorkloadService`).
//! - `autoscalers`: `get`, `describe` and `delete` autoscalers, and the
//!   Autoscalers of `apply -f` (`AutoscalerService`).
//! - `top`: the live views (`WatchNodes` for nodes and GPUs, polled `ListPods`
//!   for pods).

mod args;
pub mod autoscalers;
mod client;
mod error;
pub mod migrations;
mod placement;
mod render;
mod summary;
mod table;
mod top;
mod units;
pub mod workloads;

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub use args::{
    Cli, Command, DEFAULT_CHUNK_SIZE, DEFAULT_SERVER, DescribeArgs, DescribeKind, Format, GpusArgs,
    NodesArgs, PodFilter, PodSort, PodsArgs, TopCommand, TopGpusArgs, TopNodesArgs, TopPodsArgs,
    WorkloadKind,
};
pub use client::Token;
pub use error::CliError;
pub use render::{NO_NODES, NO_PODS, UNKNOWN, render_gpus, render_nodes, render_pods};

/// Runs one `aistorctl` command, writing what a person reads to `out`.
pub async fn run(cli: Cli, out: &mut (impl Write + Send)) -> Result<(), CliError> {
    let bearer = client::Bearer::new(cli.token.as_ref(), cli.token_file.as_deref())?;
    // The one place the token joins the URL: every client below dials through it.
    let ca = match &cli.certificate_authority {
        Some(path) => Some(std::fs::read(path).map_err(|e| CliError::InvalidServer {
            url: client::normalise(&cli.server),
            cause: format!("--certificate-authority {}: {e}", path.display()),
        })?),
        None => None,
    };
    let server = &client::Server::new(client::normalise(&cli.server), bearer).with_ca(ca);
    match cli.command {
        Command::Nodes(args) => nodes(server, &args, out).await,
        Command::Pods(args) => pods(server, &args, out).await,
        Command::Gpus(args) => gpus(server, &args, out).await,
        Command::Top(TopCommand::Nodes(args)) => {
            top::nodes::run(server, &args, cli.terminal, out).await
        }
        Command::Top(TopCommand::Pods(args)) => {
            top::pods::run(server, &args, cli.terminal, out).await
        }
        Command::Top(TopCommand::Gpus(args)) => {
            top::gpus::run(server, &args, cli.terminal, out).await
        }
        Command::Top(TopCommand::Autoscalers(args)) => {
            top::autoscalers::run(server, &args, cli.terminal, out).await
        }
        Command::Apply(args) => workloads::apply(server, &args.file, out).await,
        Command::Get(args) => {
            let format = match args.output {
                Format::Table => workloads::GetFormat::Table,
                Format::Wide => workloads::GetFormat::Wide,
                Format::Json => workloads::GetFormat::Json,
                Format::Yaml => workloads::GetFormat::Yaml,
            };
            let namespace = if args.all_namespaces {
                ""
            } else {
                &args.namespace
            };
            let now = now_unix_nanos();
            if args.kind == WorkloadKind::Autoscalers {
                return autoscalers::get(server, namespace, format, now, out).await;
            }
            workloads::get(server, args.kind.name(), namespace, format, now, out).await
        }
        Command::Describe(args) => match args.kind {
            DescribeKind::Autoscaler => {
                autoscalers::describe(server, &args.name, now_unix_nanos(), out).await
            }
            DescribeKind::Migration => {
                migrations::describe(server, &args.name, now_unix_nanos(), out).await
            }
        },
        Command::Migrate(args) => {
            let (namespace, pod) = match args.pod.split_once('/') {
                Some((ns, pod)) => (ns.to_owned(), pod.to_owned()),
                None => (args.namespace.clone(), args.pod.clone()),
            };
            let req = migrations::MigrateRequest {
                namespace,
                pod,
                from: args.from.unwrap_or_default(),
                to: args.to,
                preserve_pv: !args.no_checkpoint,
                timeout_seconds: args.timeout,
                force_restart: args.force_restart,
                wait: args.wait,
            };
            migrations::migrate(server, req, now_unix_nanos, out).await
        }
        Command::Migrations(args) => {
            let format = match args.output {
                Format::Table => workloads::GetFormat::Table,
                Format::Wide => workloads::GetFormat::Wide,
                Format::Json => workloads::GetFormat::Json,
                Format::Yaml => workloads::GetFormat::Yaml,
            };
            let namespace = args.namespace.unwrap_or_default();
            migrations::list(server, &namespace, format, now_unix_nanos(), out).await
        }
        Command::Place(args) => {
            let subject = match (&args.file, &args.pod) {
                (Some(file), _) => {
                    let text = workloads::read_input(file)?;
                    let mut all = workloads::documents(file, &text)?;
                    if all.len() != 1 {
                        return Err(CliError::Input {
                            path: file.clone(),
                            cause: format!("{} objects; place takes one Pod", all.len()),
                        });
                    }
                    placement::Subject::Manifest(all.remove(0))
                }
                (None, Some(pod)) => {
                    let (namespace, name) = match pod.split_once('/') {
                        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
                        None => (args.namespace.clone(), pod.clone()),
                    };
                    placement::Subject::Pod { namespace, name }
                }
                (None, None) => unreachable!("clap requires a pod or a file"),
            };
            placement::place(server, subject, args.output, out).await
        }
        Command::Checkpoint(args) => {
            workloads::checkpoint(
                server,
                &args.name,
                &args.namespace,
                args.containers,
                !args.no_wait,
                out,
            )
            .await
        }
        Command::Logs(args) => {
            let (namespace, pod) = match args.pod.split_once('/') {
                Some((ns, pod)) => (ns.to_owned(), pod.to_owned()),
                None => (args.namespace.clone(), args.pod.clone()),
            };
            workloads::logs(
                server,
                &namespace,
                &pod,
                args.container.as_deref().unwrap_or(""),
                args.tail.unwrap_or(0),
                args.previous,
                out,
            )
            .await
        }
        Command::Delete(args) if args.kind == WorkloadKind::Autoscalers => {
            autoscalers::delete(server, &args.name, out).await
        }
        Command::Delete(args) => {
            workloads::delete(server, args.kind.name(), &args.name, &args.namespace, out).await
        }
    }
}

async fn gpus(
    url: &client::Server,
    args: &GpusArgs,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut client = client::connect(url).await?;
    let nodes = client::list_nodes(&mut client, url, args.paging.chunk_size).await?;
    let text = render_gpus(&nodes, args.output, args.node.as_deref())?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn pods(
    url: &client::Server,
    args: &PodsArgs,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut client = client::connect(url).await?;
    let pods = client::list_pods(&mut client, url, &args.filter, args.paging.chunk_size).await?;
    let text = render_pods(&pods, args.output, args.sort, &args.filter)?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn nodes(
    url: &client::Server,
    args: &NodesArgs,
    out: &mut (impl Write + Send),
) -> Result<(), CliError> {
    let mut client = client::connect(url).await?;
    let nodes = client::list_nodes(&mut client, url, args.paging.chunk_size).await?;
    let text = render_nodes(&nodes, args.output, now_unix_nanos())?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The local wall clock, for AGE.
pub(crate) fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
