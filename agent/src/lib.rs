//! aistor node agent: reads what a node, its pods and its GPUs use, and streams it to
//! the coordinator.
//!
//! Pure parts (`parse`, `rate`, `report`) turn kernel text into typed values, rates
//! and reports; the I/O shell (`source`, `collector`, `uplink`, `admin`) reads files
//! under the configured host root and talks to the network. [`run`] is the one
//! composition root.

pub mod admin;
pub mod args;
pub mod cgroup_usage;
pub mod clock;
pub mod collector;
pub mod config;
pub mod discovery;
pub mod exposition;
pub mod measure;
pub mod parse;
pub mod pods;
pub mod rate;
pub mod report;
pub mod shutdown;
pub mod source;
pub mod telemetry;
pub mod uplink;

use config::{HostConfig, RunConfig};
use exposition::{AgentCollector, Published};
use report::{ReportBuilder, ReportConfig};
use source::{HostFs, HostNode, SysfsDisks};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on admin address {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid coordinator URL {url}: {source}")]
    Coordinator {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("writing the snapshot failed: {0}")]
    Output(#[from] std::io::Error),
    #[error("encoding the snapshot failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Identifies this agent process in reports (pid and start time), so the
/// coordinator tells a restart from a replay.
fn agent_instance() -> String {
    format!("{}-{}", std::process::id(), clock::wall_unix_nanos())
}

fn collector(host: &HostConfig, interval: Duration) -> collector::Collector {
    let fs = HostFs::new(&host.host_root);
    let node = HostNode::new(fs.clone());
    let identity = node.identity(host.node_name.clone());
    let ticks_per_second = rustix::param::clock_ticks_per_second();
    let builder = ReportBuilder::new(
        ReportConfig {
            agent_instance: agent_instance(),
            collect_interval: interval,
            disk_exclude: host.disk_exclude.clone(),
            ticks_per_second,
        },
        identity,
    );
    let disks = SysfsDisks::new(fs, Duration::from_secs(60));
    collector::Collector::new(Box::new(node), Box::new(disks), builder, ticks_per_second)
}

/// Runs the agent until `shutdown` resolves, then drains for at most the grace period.
/// Returns the admin address actually bound (useful with port 0 in tests) through
/// `bound` as soon as it is known.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> Result<(), Error> {
    let shutdown = shutdown::from_future(shutdown);
    let endpoint = tonic::transport::Endpoint::from_shared(config.coordinator.clone())
        .map_err(|source| Error::Coordinator {
            url: config.coordinator.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));

    let outbox = uplink::Outbox::new(config.replay_buffer);
    let stats = Arc::new(uplink::UplinkStats::default());
    let (publish, latest) = watch::channel::<Option<Arc<Published>>>(None);

    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(AgentCollector::new(
        latest.clone(),
        stats.clone(),
        outbox.clone(),
    )));
    let listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .map_err(|source| Error::AdminBind {
            addr: config.admin_addr,
            source,
        })?;
    let admin_addr = listener.local_addr().map_err(|source| Error::AdminBind {
        addr: config.admin_addr,
        source,
    })?;
    if let Some(tx) = bound {
        let _ = tx.send(admin_addr);
    }
    tracing::info!(
        node = %config.host.node_name,
        coordinator = %config.coordinator,
        interval = ?config.interval,
        admin = %admin_addr,
        host_root = %config.host.host_root.display(),
        "aistor-agent starting"
    );

    let mut admin_shutdown = shutdown.clone();
    let admin = tokio::spawn(async move {
        let app = admin::router(Arc::new(registry), latest);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { admin_shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    let collecting = tokio::spawn(collector::run(
        collector(&config.host, config.interval),
        config.interval,
        outbox.clone(),
        publish,
        shutdown.clone(),
    ));
    let streaming = tokio::spawn(
        uplink::Uplink::new(endpoint, outbox, stats).run(shutdown, config.shutdown_grace),
    );

    let _ = collecting.await;
    let _ = streaming.await;
    let _ = admin.await;
    tracing::info!("aistor-agent stopped");
    Ok(())
}

/// Takes two readings `interval` apart and writes the second report as JSON.
pub async fn snapshot(
    host: HostConfig,
    interval: Duration,
    out: &mut impl std::io::Write,
) -> Result<(), Error> {
    let mut collector = collector(&host, interval);
    collector.collect();
    tokio::time::sleep(interval).await;
    let (published, _) = collector.collect();
    serde_json::to_writer_pretty(&mut *out, &published.report)?;
    writeln!(out)?;
    Ok(())
}
