//! aistor node agent: reads what a node, its pods and its GPUs use, and streams it to
//! the coordinator.
//!
//! Pure parts (`parse`, `rate`, `report`) turn kernel text into typed values, rates
//! and reports, over the sample types in `model`; the I/O shell (`source`, `collector`, `uplink`, `admin`) reads files
//! under the configured host root and talks to the network. [`run`] is the one
//! composition root.

pub mod admin;
pub mod args;
pub mod backoff;
pub mod cgroup_usage;
pub mod checkpoint;
pub mod clock;
pub mod collector;
pub mod config;
pub mod discovery;
pub mod exposition;
pub mod gpu;
pub mod listener;
pub mod measure;
pub mod model;
pub mod parse;
pub mod pods;
pub mod rate;
pub mod report;
pub mod report_delta;
pub mod report_limit;
pub mod runtime;
pub mod shutdown;
pub mod source;
pub mod telemetry;
pub mod uplink;

use collector::{GpuCollection, PodCollection, PodDiscovery};
use config::{HostConfig, RunConfig};
use exposition::{AgentCollector, Published};
use pods::targets::PodTarget;
use report::{ReportBuilder, ReportConfig};
use source::{CgroupReader, Containerd};
use source::{HostFs, HostNode, SysfsDisks};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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
    #[error("encoding the output failed: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("measurement failed: {0}")]
    Measure(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("restore failed: {0}")]
    Restore(String),
}

/// Identifies this agent process in reports (pid and start time), so the
/// coordinator tells a restart from a replay.
fn agent_instance() -> String {
    format!("{}-{}", std::process::id(), clock::wall_unix_nanos())
}

fn collector(
    host: &HostConfig,
    interval: Duration,
    pods: Result<PodCollection, String>,
    gpus: Result<GpuCollection, aistor_proto::v1::GpuSection>,
) -> collector::Collector {
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
    collector::Collector::new(
        Box::new(node),
        Box::new(disks),
        builder,
        ticks_per_second,
        pods,
        gpus,
    )
}

/// Sets up pod measurement: the cgroup filesystem and where pods come from. With
/// `live`, containerd is watched until shutdown; without, it is listed once (for the
/// one-shot commands). `Err` says why pods cannot be measured on this host.
async fn pod_collection(
    host: &HostConfig,
    live: Option<shutdown::Shutdown>,
) -> Result<PodCollection, String> {
    let fs = HostFs::new(&host.host_root);
    let reader = CgroupReader::detect(fs.clone())
        .map_err(|e| format!("no cgroup filesystem to measure pods: {e}"))?;
    let socket = &host.pods.containerd_socket;
    let discovery = if socket.exists() {
        let runtime = Containerd::new(socket.clone(), host.pods.containerd_namespaces.clone(), fs);
        match live {
            Some(shutdown) => {
                let (tx, rx) = watch::channel(discovery::Discovered::default());
                tokio::spawn(discovery::run_containerd(
                    runtime,
                    host.pods.reconcile_every,
                    tx,
                    shutdown,
                ));
                PodDiscovery::Containerd(rx)
            }
            None => {
                let listed = match runtime.list().await {
                    Ok(containers) => discovery::Discovered {
                        containers: Arc::new(containers),
                        error: None,
                        source: "containerd",
                    },
                    Err(e) => discovery::Discovered {
                        error: Some(e.to_string()),
                        source: "containerd",
                        ..Default::default()
                    },
                };
                PodDiscovery::Containerd(watch::channel(listed).1)
            }
        }
    } else {
        tracing::info!(socket = %socket.display(), "no containerd socket; finding pods from the kubelet's cgroup layout");
        PodDiscovery::Cgroupfs
    };
    let (targets, _) = watch::channel(Arc::new(Vec::new()));
    Ok(PodCollection::new(
        Arc::new(reader),
        discovery,
        host.pods.workload_cgroups.clone(),
        targets,
    )
    .with_slow_every(host.pods.slow_every))
}

/// What a measurement run reads: the cgroup filesystem and the latest tick's pods.
type MeasureInputs = (Arc<CgroupReader>, watch::Receiver<Arc<Vec<PodTarget>>>);

/// Sets up GPU measurement per `--gpu-source`. `Err` is the section to report instead,
/// saying why GPUs are not measured; with `auto`, the NVML reason stays visible when the
/// DCGM exporter is used instead.
fn gpu_collection(
    host: &HostConfig,
    interval: Duration,
    shutdown: shutdown::Shutdown,
) -> Result<GpuCollection, aistor_proto::v1::GpuSection> {
    use aistor_proto::v1::GpuSource as Kind;
    use config::GpuSourceKind;
    let g = &host.gpu;
    let dcgm = |shutdown| gpu::dcgm::DcgmSource::spawn(g.dcgm_url.clone(), interval, shutdown);
    let source: Box<dyn gpu::GpuSource> = match g.source {
        GpuSourceKind::Off => {
            return Err(gpu::unavailable(
                Kind::None,
                "GPU measurement is turned off (--gpu-source off)",
            ));
        }
        GpuSourceKind::Nvml => match gpu::nvml::NvmlSource::open(g.nvml_library.as_deref()) {
            Ok(nvml) => Box::new(nvml),
            Err(reason) => return Err(gpu::unavailable(Kind::Nvml, format!("no NVML: {reason}"))),
        },
        GpuSourceKind::Dcgm => match dcgm(shutdown.clone()) {
            Ok(source) => Box::new(source),
            Err(reason) => return Err(gpu::unavailable(Kind::DcgmExporter, reason)),
        },
        GpuSourceKind::Auto => match gpu::nvml::NvmlSource::open(g.nvml_library.as_deref()) {
            Ok(nvml) => Box::new(nvml),
            Err(nvml_reason) => match dcgm(shutdown.clone()) {
                Ok(source) => Box::new(gpu::WithNote::new(
                    source,
                    "nvml",
                    format!("no NVML: {nvml_reason}; reading the DCGM exporter instead"),
                )),
                Err(reason) => {
                    return Err(gpu::unavailable(
                        Kind::None,
                        format!("no NVML: {nvml_reason}; no DCGM exporter: {reason}"),
                    ));
                }
            },
        },
    };
    let socket = &g.pod_resources_socket;
    let allocations = if socket.exists() {
        let (tx, rx) = watch::channel(gpu::podresources::Allocations::default());
        let lister = gpu::podresources::PodResources::new(
            socket.clone(),
            Arc::new(tokio::sync::Notify::new()),
        );
        tokio::spawn(lister.run(Duration::from_secs(60), tx, shutdown));
        Ok(rx)
    } else {
        Err(format!(
            "kubelet pod-resources socket {} not found: GPU allocations to pods are unknown",
            socket.display()
        ))
    };
    Ok(GpuCollection::new(
        source,
        gpu::pids::PidResolver::new(HostFs::new(&host.host_root)),
        allocations,
    ))
}

/// Runs measurement runs the coordinator asks for, each in its own task, and hands
/// their results to the collector, which sends them with the next report.
fn spawn_measurer(
    node: String,
    pods: Option<MeasureInputs>,
    unavailable: Option<String>,
    mut runs: mpsc::Receiver<aistor_proto::v1::MeasureRun>,
    results: mpsc::Sender<aistor_proto::v1::MeasurementResult>,
) {
    tokio::spawn(async move {
        while let Some(run) = runs.recv().await {
            let results = results.clone();
            let node = node.clone();
            match &pods {
                Some((reader, targets)) => {
                    let reader = reader.clone();
                    let targets = targets.borrow().clone();
                    tokio::spawn(async move {
                        let result = measure::run(run, &node, &targets, &reader).await;
                        let _ = results.send(result).await;
                    });
                }
                None => {
                    let now = clock::wall_unix_nanos();
                    let result = aistor_proto::v1::MeasurementResult {
                        id: run.id.clone(),
                        node,
                        run: Some(run),
                        started_unix_nanos: now,
                        finished_unix_nanos: now,
                        error: unavailable.clone().unwrap_or_default(),
                        ..Default::default()
                    };
                    let _ = results.send(result).await;
                }
            }
        }
    });
}

/// Routes the coordinator's directives: measurement runs to the measurer, pod actions to
/// the local runtime (or an error result saying it is off). Only routes, so it never
/// holds up the stream; a full queue is answered with an error result, not dropped.
fn spawn_dispatcher(
    mut directives: mpsc::Receiver<aistor_proto::v1::Directive>,
    runs: mpsc::Sender<aistor_proto::v1::MeasureRun>,
    actions: Option<mpsc::Sender<(String, runtime::directives::Action)>>,
    results: mpsc::Sender<aistor_proto::v1::DirectiveResult>,
) {
    // Without the local runtime, `actions` goes to the kubelet pods' handler, which
    // carries out StageCheckpoint and FreezePod and refuses the rest.
    use aistor_proto::v1::directive::Kind;
    tokio::spawn(async move {
        while let Some(directive) = directives.recv().await {
            let Some(kind) = directive.kind else { continue };
            if let Kind::Measure(run) = kind {
                let id = run.id.clone();
                if runs.try_send(run).is_err() {
                    tracing::warn!(id, "measurement run refused: too many runs queued");
                }
                continue;
            }
            let Some(action) = runtime::directives::action(&kind) else {
                continue;
            };
            let refused = match &actions {
                None => Some(
                    "the local runtime is off on this node (start the agent with --local-runtime)"
                        .to_owned(),
                ),
                Some(tx) => tx
                    .try_send((directive.id.clone(), action))
                    .err()
                    .map(|_| "the agent is busy: too many directives queued".to_owned()),
            };
            if let Some(why) = refused {
                let _ = results
                    .send(runtime::directives::result(directive.id, Err(why)))
                    .await;
            }
        }
    });
}

/// Runs the agent until `shutdown` resolves, then drains for at most the grace period.
/// Returns the admin address actually bound (useful with port 0 in tests) through
/// The coordinator's endpoint: `https://` with mutual TLS, `http://` without. TLS
/// files with an `http://` URL, or an `https://` URL without them, are errors:
/// never a silent downgrade to cleartext.
pub fn coordinator_endpoint(
    url: &str,
    tls: Option<&config::ClientTls>,
) -> Result<tonic::transport::Endpoint, Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).map_err(|source| {
        Error::Coordinator {
            url: url.to_owned(),
            source,
        }
    })?;
    let https = endpoint.uri().scheme_str() == Some("https");
    match (https, tls) {
        (false, None) => Ok(endpoint),
        (false, Some(_)) => Err(Error::Config(format!(
            "--tls-* files are given but --coordinator {url} is not https://; use https:// to speak TLS"
        ))),
        (true, None) => Err(Error::Config(format!(
            "--coordinator {url} is https:// but no --tls-ca, --tls-cert and --tls-key are given"
        ))),
        (true, Some(tls)) => {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
            };
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
                .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
            endpoint
                .tls_config(config)
                .map_err(|source| Error::Coordinator {
                    url: url.to_owned(),
                    source,
                })
        }
    }
}

/// `bound` as soon as it is known.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> Result<(), Error> {
    let shutdown = shutdown::from_future(shutdown);
    if config.local_runtime.is_some() && config.host.host_root != std::path::Path::new("/") {
        return Err(Error::Config(format!(
            "--local-runtime runs pods on this host, so it needs --host-root / (got {})",
            config.host.host_root.display()
        )));
    }
    let endpoint = coordinator_endpoint(&config.coordinator, config.tls.as_ref())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));

    let outbox = uplink::Outbox::new(config.replay_buffer, config.replay_buffer_max_bytes);
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
    let refused = crate::listener::refused_counter(&mut registry);
    let admin_limits = config.admin_limits.clone();
    let admin = tokio::spawn(async move {
        let app = admin::router(Arc::new(registry), latest);
        let served = crate::listener::serve(listener, app, admin_limits, refused, async move {
            admin_shutdown.wait().await
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    let pods = pod_collection(&config.host, Some(shutdown.clone())).await;
    if let Err(reason) = &pods {
        tracing::warn!(reason, "pods will not be measured");
    }
    let gpus = gpu_collection(&config.host, config.interval, shutdown.clone());
    let collector = collector(&config.host, config.interval, pods, gpus);
    let (runs_tx, runs_rx) = mpsc::channel(8);
    let (results_tx, results_rx) = mpsc::channel(64);
    let (directives_tx, directives_rx) = mpsc::channel(256);
    let (directive_results_tx, directive_results_rx) = mpsc::channel(1024);
    let local_runtime = config.local_runtime.clone().map(|c| {
        tracing::info!(socket = %c.containerd_socket.display(), namespace = %c.namespace, dir = %c.paths.data_dir.display(), "local runtime on");
        let rt = Arc::new(runtime::LocalRuntime::new(c));
        // Before any stage: copies a killed agent left are removed; CRIU is probed once.
        let probe = rt.clone();
        tokio::spawn(async move {
            let cp = probe.checkpoints();
            if let Some(dir) = cp.dir.clone() {
                match checkpoint::sweep(dir, cp.node.clone()).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "removed checkpoint copies a stopped agent left")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not sweep the checkpoint volume"),
                }
            }
            let criu = checkpoint::criu::probe(std::path::Path::new("criu"), Duration::from_secs(10)).await;
            tracing::info!(available = criu.available, reason = %criu.reason, "CRIU");
            cp.set_criu(&criu);
        });
        rt
    });
    // Pods the local runtime does not run (the kubelet's): checkpoints and freezing.
    let kubelet = Arc::new(runtime::kubelet::KubeletPods::new(
        runtime::kubelet::KubeletConfig {
            containerd_socket: config.host.pods.containerd_socket.clone(),
            namespaces: config.host.pods.containerd_namespaces.clone(),
            host_root: config.host.host_root.clone(),
            node: config.host.node_name.clone(),
            checkpoint_dir: config.host.pods.checkpoint_dir.clone(),
        },
    ));
    if local_runtime.is_none()
        && let Some(dir) = config.host.pods.checkpoint_dir.clone()
    {
        // The local runtime sweeps when it is on (same volume); before any stage.
        let node = config.host.node_name.clone();
        tokio::spawn(async move { runtime::kubelet::sweep(&dir, &node).await });
    }
    let (tx, rx) = mpsc::channel(1024);
    match local_runtime.clone() {
        Some(rt) => tokio::spawn(runtime::directives::serve_with(
            rt,
            Some(kubelet.clone()),
            rx,
            directive_results_tx.clone(),
        )),
        None => tokio::spawn(runtime::kubelet::serve(
            kubelet.clone(),
            rx,
            directive_results_tx.clone(),
        )),
    };
    let actions = Some(tx);
    spawn_dispatcher(directives_rx, runs_tx, actions, directive_results_tx);
    spawn_measurer(
        config.host.node_name.clone(),
        collector
            .pods()
            .map(|p| (p.reader.clone(), p.targets.subscribe())),
        collector
            .pods()
            .is_none()
            .then(|| "pods cannot be measured on this node (no cgroup filesystem)".to_owned()),
        runs_rx,
        results_tx,
    );
    let collecting = tokio::spawn(collector::run(
        collector,
        config.interval,
        outbox.clone(),
        publish,
        collector::Sources {
            measurements: results_rx,
            directive_results: directive_results_rx,
            local_runtime,
            kubelet: Some(kubelet),
        },
        shutdown.clone(),
    ));
    let streaming = tokio::spawn(
        uplink::Uplink::new(endpoint, outbox, stats, directives_tx)
            .with_token_file(config.token_file.clone())
            .run(shutdown, config.shutdown_grace),
    );

    let _ = collecting.await;
    let _ = streaming.await;
    let _ = admin.await;
    tracing::info!("aistor-agent stopped");
    Ok(())
}

/// Restores a staged checkpoint into a directory (`aistor-agent restore`) and says what
/// was done on `out`; an error names what was wrong (the file, for a mismatch).
pub async fn restore(
    req: checkpoint::init::RestoreInto,
    out: &mut impl std::io::Write,
) -> Result<(), Error> {
    use checkpoint::init::Outcome;
    match checkpoint::init::restore_into(&req).await {
        Ok(Outcome::Restored(r)) => writeln!(
            out,
            "restored checkpoint {} of container {} into {}: {} files, {} bytes, every file verified",
            req.checkpoint_id,
            req.container,
            req.into.display(),
            r.files,
            r.bytes
        )?,
        Ok(Outcome::AlreadyRestored { marker }) => writeln!(
            out,
            "checkpoint {} of container {} was restored into {} already ({}); nothing to do",
            req.checkpoint_id,
            req.container,
            req.into.display(),
            marker.display()
        )?,
        Err(e) => return Err(Error::Restore(e)),
    }
    Ok(())
}

/// Takes two readings `interval` apart and writes the second report as JSON.
pub async fn snapshot(
    host: HostConfig,
    interval: Duration,
    out: &mut impl std::io::Write,
) -> Result<(), Error> {
    let pods = pod_collection(&host, None).await;
    // One-shot: the DCGM poller (if any) lives until the process exits.
    let gpus = gpu_collection(
        &host,
        interval,
        shutdown::from_future(std::future::pending()),
    );
    let mut collector = collector(&host, interval, pods, gpus);
    collector.collect(collector::Along::default());
    tokio::time::sleep(interval).await;
    let (published, _) = collector.collect(collector::Along::default());
    serde_json::to_writer_pretty(&mut *out, &*published.report)?;
    writeln!(out)?;
    Ok(())
}

/// Runs one measurement (`aistor-agent measure`) and writes its result as JSON. A run
/// that could not start is written too, and returned as an error.
pub async fn measure_once(
    host: HostConfig,
    run: aistor_proto::v1::MeasureRun,
    out: &mut impl std::io::Write,
) -> Result<(), Error> {
    let pods = pod_collection(&host, None).await.map_err(Error::Measure)?;
    let (targets, _) = pods.current_targets();
    let result = measure::run(run, &host.node_name, &targets, &pods.reader).await;
    serde_json::to_writer_pretty(&mut *out, &result)?;
    writeln!(out)?;
    if result.error.is_empty() {
        Ok(())
    } else {
        Err(Error::Measure(result.error))
    }
}
