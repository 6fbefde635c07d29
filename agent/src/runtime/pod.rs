//! One pod's life: its cgroup and volumes, a loop per container that starts it, waits for
//! it, applies the restart policy with the kubelet's back-off and probes its readiness,
//! and the stop (SIGTERM, grace period, SIGKILL) and cleanup when the pod is deleted.
//! Containers keep running when the agent stops; a restarted agent adopts them.

use super::cgroup::PodCgroups;
use super::freezer::{FREEZE_TIMEOUT, FreezeError};
use super::image::{self, ImageConfig};
use super::manifest::{ContainerManifest, PodManifest, Rootfs, VolumeSource};
use super::plan::{self, HostPaths, QosClass};
use super::probe::{self, Readiness};
use super::status::{self, ContainerState, ContainerStatus, PodPhase, Terminated};
use super::tasks::{Exit, Managed, Tasks};
use crate::clock::wall_unix_nanos;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;
/// A container that ran this long has its back-off reset, as the kubelet does.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How long a cleanup call is retried before the pod reports it as failed.
const CLEANUP_RETRY: Duration = Duration::from_secs(2);

/// Written next to a pod's volumes once its checkpoint is restored.
const RESTORED_MARKER: &str = ".aistor-restored";

/// Where the local runtime keeps things on the host.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Logs (`pods/…`, the kubelet's `/var/log/pods` layout), emptyDirs (`volumes/…`) and
    /// host-rootfs skeletons (`rootfs/…`).
    pub data_dir: PathBuf,
    /// Claims: `<volume_root>/<namespace>/<claim>`.
    pub volume_root: PathBuf,
    /// The host's root as the agent sees it (`/`, or where it is mounted).
    pub host_root: PathBuf,
}

impl Paths {
    pub fn pod_logs(&self, pod: &PodManifest, uid: &str) -> PathBuf {
        self.data_dir
            .join("pods")
            .join(format!("{}_{}_{uid}", pod.namespace, pod.name))
    }

    pub fn container_log(&self, pod: &PodManifest, uid: &str, container: &str, n: u32) -> PathBuf {
        self.pod_logs(pod, uid)
            .join(container)
            .join(format!("{n}.log"))
    }

    fn pod_volumes(&self, uid: &str) -> PathBuf {
        self.data_dir.join("volumes").join(uid)
    }

    fn skeleton(&self, uid: &str, container: &str) -> PathBuf {
        self.data_dir.join("rootfs").join(uid).join(container)
    }
}

/// What the runtime knows about one pod, for reports and `get pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub qos: QosClass,
    pub cgroup_path: String,
    pub phase: PodPhase,
    pub conditions: Vec<status::Condition>,
    pub containers: Vec<ContainerStatus>,
    /// Set while the pod is being deleted.
    pub terminating: bool,
    /// A pod-level problem (a volume or cgroup that could not be made).
    pub message: String,
    /// The pod cgroup is frozen (FreezePod), as the kernel said when this state was taken
    /// ([`super::LocalRuntime::states`]); never remembered.
    pub frozen: bool,
}

/// Why a FreezePod failed.
#[derive(Debug, thiserror::Error)]
pub enum FreezePodError {
    #[error("pod {0} is being deleted; it is not frozen")]
    Deleting(String),
    #[error("pod {uid}: {source}")]
    Cgroup {
        uid: String,
        #[source]
        source: FreezeError,
    },
    #[error("pod {uid}: the freezer call did not finish: {message}")]
    Aborted { uid: String, message: String },
}

/// Everything a pod's tasks share.
pub(super) struct PodCtx {
    pub tasks: Arc<Tasks>,
    pub checkpoints: Arc<super::checkpoints::Checkpoints>,
    /// Host directories of the pod's volumes, once made.
    pub volumes: Mutex<BTreeMap<String, String>>,
    pub cgroups: PodCgroups,
    pub paths: Paths,
    pub pod: Arc<PodManifest>,
    pub uid: String,
    pub cgroup: String,
    pub state: Arc<Mutex<PodState>>,
    /// Held shared while a container is created and started and while a probe runs,
    /// exclusively while the pod is frozen or thawed: nothing is started or exec'd into a
    /// frozen cgroup (runc's init would hang there, and on cgroup v1 a killed exec would
    /// stay, keeping the cgroup FREEZING), and a freeze waits for what is under way.
    pub gate: tokio::sync::RwLock<()>,
    /// Whether this agent froze the pod (at adoption: what the kernel says). While it is
    /// set no container is (re)started and no probe runs.
    pub frozen: watch::Sender<bool>,
    /// Turns true when the pod is to stop (its deletion).
    pub stopping: watch::Receiver<bool>,
    /// CRIU images of a restore (`aistor.io/restore-from` of a CRIU checkpoint), imported
    /// into containerd's content store, by container: each one's first task is created
    /// from it, and it is then dropped.
    pub criu_images: Mutex<BTreeMap<String, crate::checkpoint::criu_image::Blob>>,
}

impl PodCtx {
    fn update(&self, index: usize, f: impl FnOnce(&mut ContainerStatus)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = state.containers.get_mut(index) {
            f(c);
        }
        state.phase = status::pod_phase(self.pod.restart_policy, &state.containers);
        state.conditions = status::conditions(state.phase, &state.containers);
    }

    fn set_message(&self, message: String) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).message = message;
    }

    /// Freezes (`frozen`) or thaws the pod's cgroup (FreezePod) and returns once the
    /// kernel says it is done. Idempotent. A freeze is refused once the pod is being
    /// deleted (its deletion thaws it).
    pub(super) async fn set_frozen(&self, frozen: bool) -> Result<(), FreezePodError> {
        let _gate = self.gate.write().await;
        if frozen && *self.stopping.borrow() {
            return Err(FreezePodError::Deleting(self.uid.clone()));
        }
        self.apply_freeze(frozen).await
    }

    /// The freeze or thaw itself; the caller holds the gate.
    async fn apply_freeze(&self, frozen: bool) -> Result<(), FreezePodError> {
        let cgroups = self.cgroups.clone();
        let relative = self.cgroup.clone();
        // Blocking: short sleeps between looks at the state file, at most FREEZE_TIMEOUT.
        let done = tokio::task::spawn_blocking(move || {
            cgroups.set_frozen(&relative, frozen, FREEZE_TIMEOUT)
        })
        .await;
        let outcome = match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(FreezePodError::Cgroup {
                uid: self.uid.clone(),
                source,
            }),
            Err(e) => Err(FreezePodError::Aborted {
                uid: self.uid.clone(),
                message: e.to_string(),
            }),
        };
        // A failed freeze was thawed again, unless that failed too: then, as a failed
        // thaw, it leaves the pod (partly) frozen, so a stop thaws it again.
        self.frozen.send_replace(if outcome.is_ok() {
            frozen
        } else {
            !self.cgroups.thawed(&self.cgroup)
        });
        match &outcome {
            Ok(()) => {
                tracing::info!(pod = %self.pod.name, namespace = %self.pod.namespace, frozen, "pod cgroup {}", if frozen { "frozen" } else { "thawed" });
            }
            Err(e) => {
                tracing::warn!(pod = %self.pod.name, namespace = %self.pod.namespace, frozen, error = %e, "freezer");
            }
        }
        outcome
    }

    /// Thaws the pod if it is frozen, before it is stopped: a frozen task handles no
    /// SIGTERM, and on cgroup v1 does not even die of SIGKILL, until it is thawed.
    async fn thaw_for_stop(&self) {
        let _gate = self.gate.write().await;
        if self.cgroups.thawed(&self.cgroup) && !*self.frozen.borrow() {
            return;
        }
        // Already logged; cleanup reports what it then cannot remove.
        let _ = self.apply_freeze(false).await;
    }
}

pub(super) fn initial_state(pod: &PodManifest, uid: &str) -> PodState {
    let qos = plan::qos_class(pod);
    let containers: Vec<ContainerStatus> = pod
        .containers
        .iter()
        .map(|c| ContainerStatus::waiting(&c.name, &c.image, "ContainerCreating", ""))
        .collect();
    let phase = status::pod_phase(pod.restart_policy, &containers);
    PodState {
        uid: uid.to_owned(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        qos,
        cgroup_path: plan::pod_cgroup(qos, uid),
        phase,
        conditions: status::conditions(phase, &containers),
        containers,
        terminating: false,
        message: String::new(),
        frozen: false,
    }
}

/// Runs the pod until `stop` turns true, then stops and removes everything it made.
/// `adopt` holds the containers of this pod found in containerd (an agent restart).
pub(super) async fn run(ctx: Arc<PodCtx>, adopt: Vec<Managed>, stop: watch::Receiver<bool>) {
    let volumes = match prepare(&ctx).await {
        Ok(v) => v,
        Err(message) => {
            tracing::warn!(pod = %ctx.pod.name, namespace = %ctx.pod.namespace, %message, "pod not started");
            ctx.set_message(message.clone());
            for i in 0..ctx.pod.containers.len() {
                ctx.update(i, |c| {
                    c.state = ContainerState::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: message.clone(),
                    }
                });
            }
            let mut stop = stop;
            stop_requested(&mut stop).await;
            cleanup(&ctx).await;
            return;
        }
    };
    let volumes = Arc::new(volumes);
    let mut loops = tokio::task::JoinSet::new();
    for (index, _) in ctx.pod.containers.iter().enumerate() {
        let name = &ctx.pod.containers[index].name;
        let mine: Vec<Managed> = adopt
            .iter()
            .filter(|m| m.label(plan::labels::CONTAINER_NAME) == name)
            .cloned()
            .collect();
        loops.spawn(container_loop(
            ctx.clone(),
            index,
            volumes.clone(),
            mine,
            stop.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    // Containers that finished for good leave the pod in place until it is deleted.
    let mut stop = stop;
    stop_requested(&mut stop).await;
    cleanup(&ctx).await;
}

/// Pod cgroup and volume directories, and (for a new pod) the checkpoint it starts from;
/// `Err` is the message the pod shows.
async fn prepare(ctx: &PodCtx) -> Result<BTreeMap<String, String>, String> {
    ctx.cgroups
        .create(&ctx.cgroup, &plan::pod_limits(&ctx.pod))
        .map_err(|e| e.to_string())?;
    let mut volumes = BTreeMap::new();
    for v in &ctx.pod.volumes {
        let dir = match &v.source {
            VolumeSource::EmptyDir => ctx.paths.pod_volumes(&ctx.uid).join(&v.name),
            VolumeSource::HostPath(p) => PathBuf::from(p),
            VolumeSource::Claim { name, .. } => {
                ctx.paths.volume_root.join(&ctx.pod.namespace).join(name)
            }
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("volume {}: cannot create {}: {e}", v.name, dir.display()))?;
        volumes.insert(v.name.clone(), dir.display().to_string());
    }
    *ctx.volumes.lock().unwrap_or_else(|p| p.into_inner()) = volumes.clone();
    // A pod starts from its checkpoint once in its life: a restarted agent, or a pod
    // started again after a reboot, keeps what its volumes hold since.
    let marker = ctx.paths.pod_volumes(&ctx.uid).join(RESTORED_MARKER);
    if !marker.exists()
        && let Some(done) =
            super::checkpoints::restore(&ctx.checkpoints, &ctx.pod, &volumes, ctx).await?
    {
        std::fs::create_dir_all(ctx.paths.pod_volumes(&ctx.uid))
            .and_then(|()| std::fs::write(&marker, &done))
            .map_err(|e| format!("{}: {e}", marker.display()))?;
        ctx.set_message(format!("restored from its checkpoint: {done}"));
    }
    Ok(volumes)
}

/// A fresh containerd id: 64 hex digits, as the CRI plugin makes them (discovery relies
/// on the form to find the container cgroup on cgroupfs).
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // No urandom: time and a counter still make ids unique within this host.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&wall_unix_nanos().to_le_bytes());
        bytes[8..16].copy_from_slice(&n.to_le_bytes());
        bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn container_loop(
    ctx: Arc<PodCtx>,
    index: usize,
    volumes: Arc<BTreeMap<String, String>>,
    mut adopt: Vec<Managed>,
    mut stop: watch::Receiver<bool>,
) {
    let spec = ctx.pod.containers[index].clone();
    // The newest instance first; any older one is a leftover from a crash.
    adopt.sort_by_key(|m| std::cmp::Reverse(m.created_unix_nanos));
    let mut restarts: u32 = adopt
        .first()
        .and_then(|m| m.label(plan::labels::RESTART_COUNT).parse().ok())
        .unwrap_or(0);
    for stale in adopt.iter().skip(1) {
        let _ = ctx.tasks.kill(&stale.id, SIGKILL).await;
        let _ = ctx.tasks.remove(&stale.id).await;
    }
    let mut current = adopt.into_iter().next();
    // The back-off step: restarts since the container last ran for BACKOFF_RESET.
    let mut level = restarts;
    loop {
        if *stop.borrow() {
            return;
        }
        let (id, started_at) = match current.take() {
            Some(m) if m.running_pid().is_some() => {
                ctx.update(index, |c| {
                    c.container_id = Some(m.id.clone());
                    c.restart_count = restarts;
                    c.state = ContainerState::Running {
                        started_at: m.created_unix_nanos,
                    };
                    c.ready = spec.readiness.is_none();
                });
                (m.id, Some(m.created_unix_nanos))
            }
            Some(m) => {
                // It ended while the agent was away, or ended for good and was kept:
                // its exit from its labels, else from containerd's task.
                ctx.update(index, |c| {
                    c.container_id = Some(m.id.clone());
                    c.restart_count = restarts;
                });
                let exit = match m.recorded_exit() {
                    Some(exit) => exit,
                    None => ctx
                        .tasks
                        .delete_task(&m.id)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(Exit {
                            code: -1,
                            at_unix_nanos: wall_unix_nanos(),
                        }),
                };
                if !finished(
                    &ctx,
                    index,
                    &spec,
                    &m.id,
                    Some(m.created_unix_nanos),
                    exit,
                    &mut restarts,
                    &mut level,
                    &mut stop,
                )
                .await
                {
                    let stopping = *stop.borrow();
                    keep(&ctx, &spec, &m.id, exit, stopping).await;
                    return;
                }
                let _ = ctx.tasks.remove(&m.id).await;
                continue;
            }
            None => match started_thawed(&ctx, index, &spec, &volumes, restarts, &mut stop).await {
                None => return,
                Some(Ok(started)) => started,
                Some(Err((reason, message))) => {
                    ctx.update(index, |c| {
                        c.state = ContainerState::Waiting {
                            reason: reason.clone(),
                            message: message.clone(),
                        }
                    });
                    tracing::warn!(pod = %ctx.pod.name, container = %spec.name, %reason, %message, "container not started");
                    // An image may be imported later; try again after the back-off.
                    let wait = status::restart_backoff(level.max(1));
                    level = level.saturating_add(1);
                    if sleep_or_stop(wait, &mut stop).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let prober = spec.readiness.clone().map(|p| {
            let ctx = ctx.clone();
            let id = id.clone();
            AbortOnDrop(tokio::spawn(
                async move { probe_loop(ctx, index, p, id).await },
            ))
        });
        let waited = tokio::select! {
            exit = ctx.tasks.wait(&id) => Some(exit),
            () = stop_requested(&mut stop) => None,
        };
        let exit = match waited {
            Some(exit) => exit,
            None => Ok(terminate(&ctx, &id).await),
        };
        drop(prober);
        let exit = match exit {
            Ok(exit) => exit,
            Err(e) => {
                // containerd went away mid-wait: the container may still run; look again.
                tracing::warn!(pod = %ctx.pod.name, container = %spec.name, error = %e, "lost the container's task; looking again");
                if sleep_or_stop(CLEANUP_RETRY, &mut stop).await {
                    return;
                }
                current = ctx
                    .tasks
                    .list_managed()
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|m| m.id == id));
                if current.is_none() {
                    restarts = restarts.saturating_add(1);
                }
                continue;
            }
        };
        if !finished(
            &ctx,
            index,
            &spec,
            &id,
            started_at,
            exit,
            &mut restarts,
            &mut level,
            &mut stop,
        )
        .await
        {
            let stopping = *stop.borrow();
            keep(&ctx, &spec, &id, exit, stopping).await;
            return;
        }
        // Restarted: the ended instance goes before the next one starts.
        let _ = ctx.tasks.remove(&id).await;
    }
}

/// A container that will not run again stays, with its exit recorded, until its
/// pod is deleted (whose cleanup removes it); a pod being deleted removes it now.
async fn keep(ctx: &PodCtx, spec: &ContainerManifest, id: &str, exit: Exit, stopping: bool) {
    let kept = if stopping {
        ctx.tasks.remove(id).await.map(drop)
    } else {
        ctx.tasks.keep_finished(id, exit).await
    };
    if let Err(e) = kept {
        tracing::warn!(pod = %ctx.pod.name, container = %spec.name, id, error = %e, "cannot record the container's end; the pod's cleanup removes it");
    }
}

/// Records an exit and waits out the back-off; `false` when the container is done
/// (restart policy, or the pod is stopping).
#[allow(clippy::too_many_arguments)]
async fn finished(
    ctx: &PodCtx,
    index: usize,
    spec: &ContainerManifest,
    id: &str,
    started_at: Option<u64>,
    exit: Exit,
    restarts: &mut u32,
    level: &mut u32,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let terminated = Terminated {
        exit_code: exit.code,
        reason: Terminated::reason_for(exit.code, false).to_owned(),
        message: String::new(),
        started_at,
        finished_at: if exit.at_unix_nanos == 0 {
            wall_unix_nanos()
        } else {
            exit.at_unix_nanos
        },
    };
    tracing::info!(pod = %ctx.pod.name, container = %spec.name, id, exit_code = exit.code, "container exited");
    let stopping = *stop.borrow();
    if stopping || !ctx.pod.restart_policy.restarts(exit.code) {
        ctx.update(index, |c| {
            c.state = ContainerState::Terminated(terminated);
            c.ready = false;
        });
        return false;
    }
    let ran = started_at
        .map(|s| Duration::from_nanos(terminated.finished_at.saturating_sub(s)))
        .unwrap_or_default();
    if ran >= BACKOFF_RESET {
        *level = 0;
    }
    let backoff = status::restart_backoff(*level);
    *level = level.saturating_add(1);
    // The next instance's number; the count shown changes when it starts.
    *restarts = restarts.saturating_add(1);
    ctx.update(index, |c| {
        c.last_terminated = Some(terminated.clone());
        c.ready = false;
        c.state = if backoff.is_zero() {
            ContainerState::Terminated(terminated)
        } else {
            ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container {} of pod {}/{}",
                    backoff.as_secs(),
                    spec.name,
                    ctx.pod.namespace,
                    ctx.pod.name
                ),
            }
        };
    });
    !sleep_or_stop(backoff, stop).await
}

/// Ends a helper task with the task that owns it (also when that one is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves once the pod is to stop. A closed channel is the agent going away (its
/// runtime dropped, the pod tasks being aborted): pods outlive the agent, so that is
/// never a stop, and nothing is terminated or thawed on the way out.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `true` when stop came first.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        () = stop_requested(stop) => true,
    };
    stopped || *stop.borrow()
}

/// Creates and starts one instance; `Err` is (reason, message) for a waiting state.
async fn start(
    ctx: &PodCtx,
    index: usize,
    spec: &ContainerManifest,
    volumes: &BTreeMap<String, String>,
    restarts: u32,
) -> Result<(String, Option<u64>), (String, String)> {
    let config = match ctx.pod.rootfs {
        Rootfs::Host => ImageConfig::default(),
        Rootfs::Image => image::resolve(
            &ctx.tasks.conn,
            &ctx.tasks.namespace,
            &ctx.tasks.snapshotter,
            &spec.image,
        )
        .await
        .map_err(|e| {
            let reason = match e {
                image::ImageError::NotFound { .. } | image::ImageError::NotUnpacked { .. } => {
                    "ErrImageNeverPull"
                }
                _ => "InvalidImage",
            };
            (reason.to_owned(), e.to_string())
        })?,
    };
    let id = new_id();
    let skeleton = ctx.paths.skeleton(&ctx.uid, &spec.name);
    let host_entries: Vec<&str> = plan::HOST_ROOT_DIRS
        .iter()
        .copied()
        .filter(|d| ctx.paths.host_root.join(d).exists())
        .collect();
    if ctx.pod.rootfs == Rootfs::Host {
        std::fs::create_dir_all(&skeleton).map_err(|e| {
            (
                "CreateContainerError".to_owned(),
                format!("{}: {e}", skeleton.display()),
            )
        })?;
    }
    let skeleton_str = skeleton.display().to_string();
    let cgroups_path = format!("{}/{id}", ctx.cgroup);
    let oci = plan::container_spec(
        &ctx.pod,
        spec,
        &config,
        &cgroups_path,
        &HostPaths {
            host_root_skeleton: &skeleton_str,
            volumes,
        },
        &host_entries,
    )
    .map_err(|e| ("CreateContainerConfigError".to_owned(), e.to_string()))?;
    let labels = plan::container_labels(&ctx.pod, &ctx.uid, &spec.name, restarts);
    let log = ctx
        .paths
        .container_log(&ctx.pod, &ctx.uid, &spec.name, restarts);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            (
                "CreateContainerError".to_owned(),
                format!("log directory {}: {e}", dir.display()),
            )
        })?;
    }
    let created = async {
        let rootfs = ctx
            .tasks
            .create(&id, &spec.image, config.chain_id.as_deref(), &oci, &labels)
            .await?;
        // A restored CRIU image is used by the container's first task only.
        let checkpoint = if restarts == 0 {
            ctx.criu_images
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&spec.name)
        } else {
            None
        };
        let checkpoint = checkpoint.as_ref().map(super::criu::checkpoint_descriptor);
        ctx.tasks.start(&id, rootfs, &log, checkpoint).await
    }
    .await;
    if let Err(e) = created {
        // Nothing half-created stays behind.
        let _ = ctx.tasks.remove(&id).await;
        return Err(("CreateContainerError".to_owned(), e.to_string()));
    }
    let started_at = wall_unix_nanos();
    tracing::info!(pod = %ctx.pod.name, namespace = %ctx.pod.namespace, container = %spec.name, id, "container started");
    ctx.update(index, |c| {
        c.container_id = Some(id.clone());
        c.restart_count = restarts;
        c.state = ContainerState::Running { started_at };
        c.ready = spec.readiness.is_none();
    });
    Ok((id, Some(started_at)))
}

/// Starts the container once the pod is not frozen (a container that exited while its
/// pod was frozen, killed by the OOM killer say, is restarted after the thaw), holding the
/// gate so no freeze overlaps the start; `None` when the pod stops meanwhile.
async fn started_thawed(
    ctx: &PodCtx,
    index: usize,
    spec: &ContainerManifest,
    volumes: &BTreeMap<String, String>,
    restarts: u32,
    stop: &mut watch::Receiver<bool>,
) -> Option<Result<(String, Option<u64>), (String, String)>> {
    let mut frozen = ctx.frozen.subscribe();
    loop {
        tokio::select! {
            _ = frozen.wait_for(|f| !*f) => {}
            () = stop_requested(stop) => return None,
        }
        let gate = tokio::select! {
            gate = ctx.gate.read() => gate,
            () = stop_requested(stop) => return None,
        };
        if *stop.borrow() {
            return None;
        }
        // A freeze may have come first while this waited for the gate.
        if !*ctx.frozen.borrow() {
            let started = start(ctx, index, spec, volumes, restarts).await;
            drop(gate);
            return Some(started);
        }
    }
}

/// SIGTERM, the grace period, then SIGKILL; returns the exit. A frozen pod is thawed
/// first.
async fn terminate(ctx: &PodCtx, id: &str) -> Exit {
    ctx.thaw_for_stop().await;
    let _ = ctx.tasks.kill(id, SIGTERM).await;
    match tokio::time::timeout(ctx.pod.grace_period, ctx.tasks.wait(id)).await {
        Ok(Ok(exit)) => exit,
        _ => {
            let _ = ctx.tasks.kill(id, SIGKILL).await;
            match tokio::time::timeout(Duration::from_secs(10), ctx.tasks.wait(id)).await {
                Ok(Ok(exit)) => exit,
                _ => Exit {
                    code: 137,
                    at_unix_nanos: wall_unix_nanos(),
                },
            }
        }
    }
}

async fn probe_loop(ctx: Arc<PodCtx>, index: usize, p: super::manifest::Probe, id: String) {
    tokio::time::sleep(p.initial_delay).await;
    let mut readiness = Readiness::default();
    let mut seq = 0u64;
    let mut frozen = ctx.frozen.subscribe();
    loop {
        // A frozen container is not probed: an exec would join the frozen cgroup and hang
        // until the thaw. Its readiness stays as it was; the pod reports `frozen`.
        let _ = frozen.wait_for(|f| !*f).await;
        let gate = ctx.gate.read().await;
        if *ctx.frozen.borrow() {
            continue;
        }
        seq += 1;
        let outcome = probe::run_once(&p, &ctx.tasks, &id, seq).await;
        drop(gate);
        let ready = readiness.record(&p, outcome.is_ok());
        ctx.update(index, |c| c.ready = ready);
        tokio::time::sleep(p.period).await;
    }
}

/// Removes what the pod made: any container instances left, the cgroup, emptyDirs,
/// skeletons and logs. Repeated until it succeeds or the retries run out (and then
/// reported), so nothing is left behind silently.
async fn cleanup(ctx: &PodCtx) {
    {
        let mut state = ctx.state.lock().unwrap_or_else(|p| p.into_inner());
        state.terminating = true;
    }
    // What is left running must be able to die.
    ctx.thaw_for_stop().await;
    for attempt in 0..5 {
        let mut problems = Vec::new();
        match ctx.tasks.list_managed().await {
            Ok(all) => {
                for m in all
                    .into_iter()
                    .filter(|m| m.label(plan::labels::POD_UID) == ctx.uid)
                {
                    if m.running_pid().is_some() {
                        let _ = ctx.tasks.kill(&m.id, SIGKILL).await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), ctx.tasks.wait(&m.id))
                            .await;
                    }
                    if let Err(e) = ctx.tasks.remove(&m.id).await {
                        problems.push(e.to_string());
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        if let Err(e) = ctx.cgroups.remove(&ctx.cgroup) {
            problems.push(e.to_string());
        }
        for dir in [
            ctx.paths.pod_volumes(&ctx.uid),
            ctx.paths.data_dir.join("rootfs").join(&ctx.uid),
            ctx.paths.pod_logs(&ctx.pod, &ctx.uid),
        ] {
            if let Err(e) = remove_tree(&dir) {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            return;
        }
        if attempt == 4 {
            let message = format!("cleanup incomplete: {}", problems.join("; "));
            tracing::warn!(pod = %ctx.pod.name, namespace = %ctx.pod.namespace, %message);
            ctx.set_message(message);
            return;
        }
        tokio::time::sleep(CLEANUP_RETRY).await;
    }
}

fn remove_tree(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
