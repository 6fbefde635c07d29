//! The tick loop: read the node and its pods, build the report, attach finished
//! measurement runs, hand it to the uplink's outbox and publish it for `/metrics`.

use crate::discovery::Discovered;
use crate::exposition::Published;
use crate::gpu::podresources::{self, Allocations};
use crate::gpu::{GpuSource, attribution, pids::PidResolver};
use crate::model::{DiskCatalog, NodeReading};
use crate::pods::sampler::{DeviceNames, PodSampler};
use crate::pods::targets::{self, PodTarget};
use crate::report::ReportBuilder;
use crate::shutdown::Shutdown;
use crate::source::{CgroupReader, NodeSource};
use crate::uplink::Outbox;
use aistor_proto::v1 as pb;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Where the pods to measure come from.
pub enum PodDiscovery {
    /// containerd's containers, kept current by `discovery::run_containerd`.
    Containerd(watch::Receiver<Discovered>),
    /// The kubelet's cgroup layout (no runtime to ask), scanned every `--slow-every`: a pod
    /// started since shows up by the next scan, one that ended drops out at its next read.
    Cgroupfs,
}

/// Everything needed to measure pods; absent when no cgroup filesystem was found.
pub struct PodCollection {
    pub reader: Arc<CgroupReader>,
    pub discovery: PodDiscovery,
    pub workload_cgroups: Vec<String>,
    /// The pods of the latest tick, for measurement runs.
    pub targets: watch::Sender<Arc<Vec<PodTarget>>>,
    sampler: PodSampler,
    /// How often the kubelet's cgroup layout is scanned, and the latest scan.
    rescan_every: Duration,
    scanned: std::sync::Mutex<Option<(Instant, Arc<Vec<PodTarget>>)>>,
    /// containerd's pods as of the latest discovery seen by a tick, and its error: made again
    /// only when discovery changes, not every tick.
    from_containerd: Option<(Arc<Vec<PodTarget>>, Option<String>)>,
}

impl PodCollection {
    pub fn new(
        reader: Arc<CgroupReader>,
        discovery: PodDiscovery,
        workload_cgroups: Vec<String>,
        targets: watch::Sender<Arc<Vec<PodTarget>>>,
    ) -> Self {
        Self {
            reader,
            discovery,
            workload_cgroups,
            targets,
            sampler: PodSampler::default(),
            rescan_every: crate::pods::sampler::DEFAULT_SLOW_EVERY,
            scanned: std::sync::Mutex::new(None),
            from_containerd: None,
        }
    }

    /// Reads each cgroup's slow-cadence values every `slow_every` (see [`PodSampler::new`]),
    /// and scans the kubelet's cgroup layout as often.
    pub fn with_slow_every(mut self, slow_every: Duration) -> Self {
        self.sampler = PodSampler::new(slow_every);
        self.rescan_every = slow_every;
        self
    }

    /// The pods of the kubelet's cgroup layout, scanned again when the latest scan is older
    /// than `rescan_every`.
    fn kubepods(&self) -> Arc<Vec<PodTarget>> {
        let mut scanned = self.scanned.lock().unwrap_or_else(|e| e.into_inner());
        match scanned.as_ref() {
            Some((at, pods)) if at.elapsed() < self.rescan_every => Arc::clone(pods),
            _ => {
                let pods = Arc::new(targets::scan_kubepods(&self.reader));
                *scanned = Some((Instant::now(), Arc::clone(&pods)));
                pods
            }
        }
    }

    /// The pods to measure now, and why discovery is degraded if it is.
    pub fn current_targets(&self) -> (Arc<Vec<PodTarget>>, Option<String>) {
        let (found, error) = match &self.discovery {
            PodDiscovery::Containerd(rx) => {
                let d = rx.borrow();
                (
                    Arc::new(targets::from_containers(&d.containers)),
                    d.error.clone(),
                )
            }
            PodDiscovery::Cgroupfs => (self.kubepods(), None),
        };
        (self.with_workloads(found), error)
    }

    /// `found` and the configured workload cgroups (the same `Arc` when there are none).
    fn with_workloads(&self, found: Arc<Vec<PodTarget>>) -> Arc<Vec<PodTarget>> {
        if self.workload_cgroups.is_empty() {
            return found;
        }
        let mut all = Vec::clone(&found);
        all.extend(targets::scan_workloads(
            &self.reader,
            &self.workload_cgroups,
        ));
        Arc::new(all)
    }

    /// [`Self::current_targets`] for a tick: containerd's pods are grouped again only when
    /// discovery changed since the previous tick.
    fn tick_targets(&mut self) -> (Arc<Vec<PodTarget>>, Option<String>) {
        let PodDiscovery::Containerd(rx) = &mut self.discovery else {
            return self.current_targets();
        };
        // An error: discovery has ended (its sender is gone); its latest stays.
        let changed = rx.has_changed().unwrap_or(false);
        if changed || self.from_containerd.is_none() {
            let d = rx.borrow_and_update();
            self.from_containerd = Some((
                Arc::new(targets::from_containers(&d.containers)),
                d.error.clone(),
            ));
        }
        let (found, error) = self.from_containerd.clone().unwrap_or_default();
        (self.with_workloads(found), error)
    }

    fn collect(&mut self, report: &mut pb::NodeReport) {
        let (found, error) = self.tick_targets();
        if let Some(error) = error {
            report.missing.push(pb::Missing {
                field: "pods".into(),
                reason: error,
            });
        }
        let devices: DeviceNames = report
            .disks
            .iter()
            .map(|d| ((d.major, d.minor), d.name.clone()))
            .collect();
        report.pods = self.sampler.sample(&self.reader, &found, &devices);
        self.targets.send_replace(found);
    }
}

/// GPU measurement: a source, the pid → container mapping for attribution, and the
/// kubelet's allocations when its pod-resources socket is there.
pub struct GpuCollection {
    source: Box<dyn GpuSource>,
    pids: PidResolver,
    allocations: Option<watch::Receiver<Allocations>>,
    /// Why allocations are not known (no pod-resources socket), for `missing`.
    allocations_unavailable: Option<String>,
}

impl GpuCollection {
    pub fn new(
        source: Box<dyn GpuSource>,
        pids: PidResolver,
        allocations: Result<watch::Receiver<Allocations>, String>,
    ) -> Self {
        let (allocations, allocations_unavailable) = match allocations {
            Ok(rx) => (Some(rx), None),
            Err(reason) => (None, Some(reason)),
        };
        Self {
            source,
            pids,
            allocations,
            allocations_unavailable,
        }
    }

    /// Reads the GPUs and attributes their processes to this tick's pods.
    fn collect(&mut self, report: &mut pb::NodeReport) {
        let mut section = self.source.read();
        match (&self.allocations, &self.allocations_unavailable) {
            (Some(rx), _) => podresources::apply(&mut section, &rx.borrow()),
            (None, Some(reason)) if !section.gpus.is_empty() => {
                section.missing.push(pb::Missing {
                    field: "gpus.allocations".into(),
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        // Resolve every GPU process's pid once, then attribute from the map (the
        // resolver borrows the pods that attribution then updates).
        let owners: HashMap<u32, (String, String)> = {
            let container_of = self.pids.container_of(&report.pods);
            section
                .gpus
                .iter()
                .flat_map(|g| g.processes.iter().map(|p| p.pid))
                .filter_map(|pid| container_of(pid).map(|owner| (pid, owner)))
                .collect()
        };
        attribution::attribute(&mut section, &mut report.pods, &|pid| {
            owners.get(&pid).cloned()
        });
        report.gpu = Some(section);
    }
}

pub struct Collector {
    source: Box<dyn NodeSource>,
    disks: Box<dyn DiskCatalog + Send>,
    builder: ReportBuilder,
    ticks_per_second: u64,
    /// `Err` says why pods cannot be measured on this host.
    pods: Result<PodCollection, String>,
    /// `Err` is the GPU section to report instead (why GPUs are not measured).
    gpus: Result<GpuCollection, pb::GpuSection>,
    /// Finished measurement results not yet in a report (they did not fit the last).
    pending_measurements: VecDeque<pb::MeasurementResult>,
}

impl Collector {
    pub fn new(
        source: Box<dyn NodeSource>,
        disks: Box<dyn DiskCatalog + Send>,
        builder: ReportBuilder,
        ticks_per_second: u64,
        pods: Result<PodCollection, String>,
        gpus: Result<GpuCollection, pb::GpuSection>,
    ) -> Self {
        Self {
            source,
            disks,
            builder,
            ticks_per_second,
            pods,
            gpus,
            pending_measurements: VecDeque::new(),
        }
    }

    pub fn pods(&self) -> Option<&PodCollection> {
        self.pods.as_ref().ok()
    }

    /// One collection. Reading procfs, sysfs and cgroupfs does not block on storage,
    /// so this runs inline on the runtime. `along` rides with the report.
    pub fn collect(&mut self, along: Along) -> (Published, Duration) {
        let started = Instant::now();
        let reading: NodeReading = self.source.read();
        let monotonic = reading.monotonic;
        let (mut report, extras) = self.builder.build(&reading, self.disks.as_mut());
        match &mut self.pods {
            Ok(pods) => pods.collect(&mut report),
            Err(reason) => report.missing.push(pb::Missing {
                field: "pods".into(),
                reason: reason.clone(),
            }),
        }
        match &mut self.gpus {
            Ok(gpus) => gpus.collect(&mut report),
            Err(section) => report.gpu = Some(section.clone()),
        }
        report.directive_results = along.directive_results;
        report.local_runtime = along.local_runtime;
        report.checkpoints = along.checkpoints;
        // Last, so that they are fitted into what the rest of the report leaves.
        self.pending_measurements.extend(along.measurements);
        let shortened = crate::report_limit::fit_measurements(
            &mut report,
            &mut self.pending_measurements,
            aistor_proto::MAX_REPORT_BYTES,
        );
        if shortened > 0 {
            tracing::warn!(
                shortened,
                "measurement results shortened to fit the report limit (each says what was cut in `truncated`)"
            );
        }
        if !self.pending_measurements.is_empty() {
            tracing::info!(
                waiting = self.pending_measurements.len(),
                "measurement results wait for the next report (this one is full)"
            );
        }
        let published = Published {
            // Shared with the outbox: a report with hundreds of pods is not copied per tick.
            report: Arc::new(report),
            extras,
            ticks_per_second: self.ticks_per_second,
            collect_seconds: started.elapsed().as_secs_f64(),
        };
        (published, monotonic)
    }
}

/// What rides with a report besides the readings.
#[derive(Debug, Default)]
pub struct Along {
    /// Measurement runs that finished since the previous collection.
    pub measurements: Vec<pb::MeasurementResult>,
    /// Directives carried out since the previous collection.
    pub directive_results: Vec<pb::DirectiveResult>,
    /// The local runtime's pods, when it is on.
    pub local_runtime: Option<pb::LocalRuntimeStatus>,
    /// Checkpoints of kubelet pods staged by this agent process.
    pub checkpoints: Vec<pb::CheckpointStatus>,
}

/// Where the collector finds what rides along.
pub struct Sources {
    pub measurements: mpsc::Receiver<pb::MeasurementResult>,
    pub directive_results: mpsc::Receiver<pb::DirectiveResult>,
    pub local_runtime: Option<Arc<crate::runtime::LocalRuntime>>,
    /// Kubelet pods' checkpoints and freezing, when containerd is configured.
    pub kubelet: Option<Arc<crate::runtime::kubelet::KubeletPods>>,
}

/// Collects every `interval` until shutdown. A tick that runs late is not made up
/// with a burst: the next one waits a full interval (rates use measured time anyway).
/// Results that finished meanwhile ride along with the next report.
pub async fn run(
    mut collector: Collector,
    interval: Duration,
    outbox: Outbox,
    publish: watch::Sender<Option<Arc<Published>>>,
    mut sources: Sources,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        let mut along = Along::default();
        while let Ok(result) = sources.measurements.try_recv() {
            along.measurements.push(result);
        }
        while let Ok(result) = sources.directive_results.try_recv() {
            along.directive_results.push(result);
        }
        along.local_runtime = sources
            .local_runtime
            .as_deref()
            .map(crate::runtime::directives::status);
        along.checkpoints = sources
            .kubelet
            .as_deref()
            .map(|k| k.checkpoints().statuses())
            .unwrap_or_default();
        let (published, monotonic) = collector.collect(along);
        // One step for readers of both (a scrape sees the buffer and the report it holds).
        let report = published.report.clone();
        outbox.push_then(monotonic, report, || {
            publish.send_replace(Some(Arc::new(published)));
        });
    }
}
