//! Checkpoints of the local runtime's pods: which container directory is staged (the host
//! directory of the volume mounted at the pod's checkpoint path), the hook run against
//! the container (its pid for signals, containerd exec for commands), progress and
//! results for reports, and restoring a verified checkpoint into a new pod's volume
//! before its containers start. The copying itself is `crate::checkpoint`'s.

use super::manifest::PodManifest;
use super::pod::PodCtx;
use super::tasks::Tasks;
use crate::checkpoint::criu_image::{self, TaskImages};
use crate::checkpoint::{self, ContainerExec, ExecOutput, HookTarget, hook};
use aistor_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aistor_core::manifest::RESTORE_ANNOTATION;
/// Checkpoint statuses kept for reports.
pub const KEEP: usize = 64;
pub(super) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The node's checkpoint volume and what was staged on it.
#[derive(Debug)]
pub struct Checkpoints {
    pub dir: Option<PathBuf>,
    pub node: String,
    statuses: Arc<Mutex<VecDeque<pb::CheckpointStatus>>>,
    criu: Mutex<Option<pb::CriuStatus>>,
}

impl Checkpoints {
    pub fn new(dir: Option<PathBuf>, node: String) -> Self {
        Self {
            dir,
            node,
            statuses: Arc::new(Mutex::new(VecDeque::new())),
            criu: Mutex::new(None),
        }
    }

    pub fn set_criu(&self, c: &checkpoint::CriuCapability) {
        *self.criu.lock().unwrap_or_else(|p| p.into_inner()) = Some(pb::CriuStatus {
            available: c.available,
            version: c.version.clone().unwrap_or_default(),
            reason: c.reason.clone(),
        });
    }

    pub fn criu(&self) -> Option<pb::CriuStatus> {
        self.criu.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn statuses(&self) -> Vec<pb::CheckpointStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub(super) fn update(
        statuses: &Mutex<VecDeque<pb::CheckpointStatus>>,
        id: &str,
        container: &str,
        f: impl FnOnce(&mut pb::CheckpointStatus),
    ) {
        let mut s = statuses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = s
            .iter_mut()
            .rev()
            .find(|c| c.checkpoint_id == id && c.container == container)
        {
            f(entry);
        }
    }

    pub(super) fn begin(&self, status: pb::CheckpointStatus) {
        let mut s = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= KEEP {
            s.pop_front();
        }
        s.push_back(status);
    }
}

/// The pod's checkpoint path inside its containers.
pub fn checkpoint_path(pod: &PodManifest) -> &str {
    pod.annotations
        .get(hook::PATH_ANNOTATION)
        .map_or(hook::DEFAULT_CHECKPOINT_PATH, String::as_str)
}

/// (container, volume) pairs of the containers that mount a volume at the checkpoint
/// path.
pub fn checkpointed(pod: &PodManifest) -> Vec<(String, String)> {
    let path = checkpoint_path(pod).trim_end_matches('/');
    pod.containers
        .iter()
        .filter_map(|c| {
            c.mounts
                .iter()
                .find(|m| m.path.trim_end_matches('/') == path)
                .map(|m| (c.name.clone(), m.volume.clone()))
        })
        .collect()
}

/// containerd exec for exec hooks; the output is not captured (the exit status decides).
pub(super) struct TaskExec {
    pub tasks: Arc<Tasks>,
    pub id: String,
    /// The OCI process to run the command as (see `oci::exec_process`); `None`: root.
    pub process: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl ContainerExec for TaskExec {
    fn exec<'a>(
        &'a self,
        argv: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<ExecOutput, String>> + Send + 'a>> {
        Box::pin(async move {
            let exec_id = format!(
                "checkpoint-{}",
                super::pod::new_id().get(..12).unwrap_or("")
            );
            let process = match &self.process {
                Some(spec) => super::oci::exec_process(spec, argv),
                None => super::tasks::root_process(argv),
            };
            self.tasks
                .exec_process(&self.id, &exec_id, &process, self.timeout)
                .await
                .map(|code| ExecOutput {
                    exit_code: Some(code),
                    output: String::new(),
                })
                .map_err(|e| e.to_string())
        })
    }
}

/// Stages the pod's checkpoint; `Err` says what failed, naming the container or file.
pub(super) async fn stage(
    checkpoints: &Checkpoints,
    ctx: &PodCtx,
    volumes: &BTreeMap<String, String>,
    req: &pb::StageCheckpoint,
) -> Result<(), String> {
    let dir = checkpoints.dir.clone().ok_or_else(|| {
        "no checkpoint volume on this node (start the agent with --checkpoint-dir)".to_owned()
    })?;
    let pod = &ctx.pod;
    let mode = criu_image::parse_mode(
        pod.annotations
            .get(criu_image::MODE_ANNOTATION)
            .map(String::as_str),
    )?;
    let note = match criu_image::plan(mode, checkpoints.criu().as_ref())? {
        criu_image::Plan::Criu => return stage_criu(checkpoints, ctx, &dir, req).await,
        criu_image::Plan::Application { fallback } => fallback,
    };
    if let Some(note) = &note {
        tracing::info!(pod = %pod.name, namespace = %pod.namespace, "{note}");
    }
    let hook = hook::from_annotation(
        pod.annotations
            .get(hook::HOOK_ANNOTATION)
            .map(String::as_str),
    )
    .map_err(|e| e.to_string())?;
    let mut targets = checkpointed(pod);
    if !req.containers.is_empty() {
        for wanted in &req.containers {
            if !targets.iter().any(|(c, _)| c == wanted) {
                return Err(format!(
                    "container {wanted} of pod {}/{} mounts no volume at {}",
                    pod.namespace,
                    pod.name,
                    checkpoint_path(pod)
                ));
            }
        }
        targets.retain(|(c, _)| req.containers.contains(c));
    } else {
        // A volume mounted by several containers holds one checkpoint: staged (and its
        // hook sent) once, for the first container that mounts it.
        let mut seen = Vec::new();
        targets.retain(|(_, v)| {
            let first = !seen.contains(v);
            seen.push(v.clone());
            first
        });
    }
    if targets.is_empty() {
        return Err(format!(
            "no container of pod {}/{} mounts a volume at its checkpoint path {} (annotation {})",
            pod.namespace,
            pod.name,
            checkpoint_path(pod),
            hook::PATH_ANNOTATION
        ));
    }
    let timeout = match req.hook_timeout_nanos {
        0 => DEFAULT_HOOK_TIMEOUT,
        n => Duration::from_nanos(n),
    };
    let states = ctx.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut problems = Vec::new();
    for (container, volume) in targets {
        let Some(source) = volumes.get(&volume) else {
            problems.push(format!(
                "{container}: volume {volume} has no host directory"
            ));
            continue;
        };
        let container_id = states
            .containers
            .iter()
            .find(|c| c.name == container)
            .and_then(|c| c.container_id.clone());
        let pid = match &container_id {
            Some(id) => ctx
                .tasks
                .list_managed()
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|m| &m.id == id))
                .and_then(|m| m.running_pid()),
            None => None,
        };
        let exec = container_id.map(|id| TaskExec {
            tasks: ctx.tasks.clone(),
            id,
            process: None,
            timeout,
        });
        let target = HookTarget {
            pid,
            exec: exec.as_ref().map(|e| e as &dyn ContainerExec),
        };
        let ident = PodIdent {
            uid: &ctx.uid,
            namespace: &pod.namespace,
            name: &pod.name,
        };
        let staged = stage_container(
            checkpoints,
            &dir,
            &ident,
            req,
            &container,
            Take::Application {
                source: PathBuf::from(source),
                hook: hook.as_ref(),
                timeout,
                target,
            },
        )
        .await;
        if let Some(note) = &note {
            Checkpoints::update(&checkpoints.statuses, &req.checkpoint_id, &container, |c| {
                c.note.clone_from(note);
            });
        }
        if let Err(e) = staged {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A CRIU stage of the pod: containerd checkpoints each container's task (those the
/// request names, else all), each into `<container>/criu/`. A container without a
/// running task is refused by name before anything is checkpointed.
async fn stage_criu(
    checkpoints: &Checkpoints,
    ctx: &PodCtx,
    dir: &Path,
    req: &pb::StageCheckpoint,
) -> Result<(), String> {
    let pod = &ctx.pod;
    for wanted in &req.containers {
        if !pod.containers.iter().any(|c| &c.name == wanted) {
            return Err(format!(
                "pod {}/{} has no container {wanted}",
                pod.namespace, pod.name
            ));
        }
    }
    let states = ctx.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let running = ctx.tasks.list_managed().await.map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    for c in &pod.containers {
        if !req.containers.is_empty() && !req.containers.contains(&c.name) {
            continue;
        }
        let id = states
            .containers
            .iter()
            .find(|s| s.name == c.name)
            .and_then(|s| s.container_id.clone())
            .filter(|id| {
                running
                    .iter()
                    .any(|m| &m.id == id && m.running_pid().is_some())
            })
            .ok_or_else(|| {
                format!(
                    "{}: no running task to checkpoint with CRIU (container {} of pod {}/{})",
                    c.name, c.name, pod.namespace, pod.name
                )
            })?;
        targets.push((c.name.clone(), id));
    }
    let images = super::criu::ContainerdImages {
        conn: &ctx.tasks.conn,
        namespace: &ctx.tasks.namespace,
    };
    let ident = PodIdent {
        uid: &ctx.uid,
        namespace: &pod.namespace,
        name: &pod.name,
    };
    let mut problems = Vec::new();
    for (container, id) in &targets {
        let staged = stage_container(
            checkpoints,
            dir,
            &ident,
            req,
            container,
            Take::Criu {
                images: &images,
                container_id: id,
            },
        )
        .await;
        if let Err(e) = staged {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The pod a checkpoint belongs to, as statuses and the volume name it.
pub(super) struct PodIdent<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// How one container's checkpoint is taken.
pub(super) enum Take<'a> {
    /// The application's checkpoint directory `source` on the host, after the hook.
    Application {
        source: PathBuf,
        hook: Option<&'a checkpoint::Hook>,
        timeout: Duration,
        target: HookTarget<'a>,
    },
    /// containerd's task checkpoint of `container_id` (CRIU).
    Criu {
        images: &'a dyn TaskImages,
        container_id: &'a str,
    },
}

/// Stages one container's checkpoint (hook and copy, or containerd's CRIU image; then
/// manifest and rename), recording its progress and result in `checkpoints`' statuses.
/// `Err` is the failure, prefixed with the container's name.
pub(super) async fn stage_container(
    checkpoints: &Checkpoints,
    dir: &Path,
    pod: &PodIdent<'_>,
    req: &pb::StageCheckpoint,
    container: &str,
    take: Take<'_>,
) -> Result<(), String> {
    let mode = match &take {
        Take::Application { .. } => "application",
        Take::Criu { .. } => "criu",
    };
    let first_state = match &take {
        Take::Application { hook: Some(_), .. } => "hook",
        Take::Application { hook: None, .. } => "copying",
        Take::Criu { .. } => "checkpointing",
    };
    checkpoints.begin(pb::CheckpointStatus {
        checkpoint_id: req.checkpoint_id.clone(),
        pod_uid: pod.uid.to_owned(),
        namespace: pod.namespace.to_owned(),
        pod: pod.name.to_owned(),
        container: container.to_owned(),
        state: first_state.to_owned(),
        mode: mode.to_owned(),
        ..Default::default()
    });
    let statuses = checkpoints.statuses.clone();
    let (id, name) = (req.checkpoint_id.clone(), container.to_owned());
    let progress = move |p: checkpoint::Progress| {
        Checkpoints::update(&statuses, &id, &name, |s| {
            s.state = "copying".into();
            s.files = p.files;
            s.bytes = p.bytes;
        });
    };
    let request = |source: PathBuf, hook: Option<&checkpoint::Hook>, timeout: Duration| {
        checkpoint::StageRequest {
            checkpoint_dir: dir.to_path_buf(),
            node: checkpoints.node.clone(),
            namespace: pod.namespace.to_owned(),
            pod: pod.name.to_owned(),
            checkpoint_id: req.checkpoint_id.clone(),
            container: container.to_owned(),
            source,
            hook: hook.cloned(),
            hook_timeout: timeout,
            content: Default::default(),
        }
    };
    let staged = match take {
        Take::Application {
            source,
            hook,
            timeout,
            target,
        } => checkpoint::stage(request(source, hook, timeout), target, progress)
            .await
            .map_err(|e| e.to_string()),
        Take::Criu {
            images,
            container_id,
        } => {
            criu_image::stage(
                images,
                container_id,
                request(PathBuf::new(), None, Duration::ZERO),
                &std::env::temp_dir(),
                progress,
            )
            .await
        }
    };
    match staged {
        Ok(s) => {
            tracing::info!(pod = %pod.name, namespace = %pod.namespace, %container, checkpoint = req.checkpoint_id, bytes = s.bytes, files = s.files, "checkpoint staged");
            Checkpoints::update(&checkpoints.statuses, &req.checkpoint_id, container, |c| {
                c.state = "staged".into();
                c.files = s.files;
                c.bytes = s.bytes;
                c.duration_nanos = u64::try_from(s.duration.as_nanos()).unwrap_or(u64::MAX);
                c.bytes_per_second = s.bytes_per_second;
                c.hook = match &s.hook.spec {
                    Some(spec) => format!("{spec}: {} ({})", s.hook.outcome, s.hook.detail),
                    None => s.hook.outcome.clone(),
                };
                c.dir = s.dir.display().to_string();
            });
            Ok(())
        }
        Err(e) => {
            Checkpoints::update(&checkpoints.statuses, &req.checkpoint_id, container, |c| {
                c.state = "failed".into();
                c.error.clone_from(&e);
            });
            Err(format!("{container}: {e}"))
        }
    }
}

/// Restores the checkpoint a new pod names (`aistor.io/restore-from`) into the volumes
/// mounted at its checkpoint path, verifying every file; `Ok(None)` when it names none.
/// A container whose checkpoint is a CRIU image (`<container>/criu/`) has it verified and
/// imported into containerd's content store instead, for its first task
/// (`ctx.criu_images`).
pub(super) async fn restore(
    checkpoints: &Checkpoints,
    pod: &PodManifest,
    volumes: &BTreeMap<String, String>,
    ctx: &PodCtx,
) -> Result<Option<String>, String> {
    let Some(id) = pod.annotations.get(RESTORE_ANNOTATION) else {
        return Ok(None);
    };
    let dir = checkpoints.dir.clone().ok_or_else(|| {
        format!("{RESTORE_ANNOTATION}: no checkpoint volume on this node (--checkpoint-dir)")
    })?;
    checkpoint::names::checkpoint_id(id).map_err(|e| format!("{RESTORE_ANNOTATION}: {e}"))?;
    let source = checkpoint::find(&dir, &pod.namespace, id).ok_or_else(|| {
        format!(
            "{RESTORE_ANNOTATION}: no checkpoint {id} of namespace {} on the checkpoint volume {}",
            pod.namespace,
            dir.display()
        )
    })?;
    let mut restored_volumes: Vec<String> = Vec::new();
    let mut done = Vec::new();
    let images = super::criu::ContainerdImages {
        conn: &ctx.tasks.conn,
        namespace: &ctx.tasks.namespace,
    };
    let mut criu = Vec::new();
    for c in &pod.containers {
        let dir = source.join(&c.name);
        if !dir.join(checkpoint::CRIU).is_dir() {
            continue;
        }
        let blob = restore_criu(&images, dir)
            .await
            .map_err(|e| format!("restoring CRIU checkpoint {id} for {}: {e}", c.name))?;
        tracing::info!(pod = %pod.name, namespace = %pod.namespace, container = %c.name, checkpoint = %id, image = %blob.digest, "CRIU image imported for the container's first task");
        done.push(format!("{}: CRIU image {}", c.name, blob.digest));
        criu.push((c.name.clone(), blob));
    }
    for (container, volume) in checkpointed(pod) {
        if criu.iter().any(|(c, _)| *c == container) {
            continue;
        }
        // A volume shared by several containers is filled once.
        if restored_volumes.contains(&volume) {
            continue;
        }
        let from = source.join(&container);
        if !from.is_dir() {
            return Err(format!(
                "{RESTORE_ANNOTATION}: checkpoint {id} has no container {container} ({})",
                from.display()
            ));
        }
        let to = volumes
            .get(&volume)
            .ok_or_else(|| format!("volume {volume} has no host directory"))?;
        let restored = checkpoint::restore(from, PathBuf::from(to), |_| {})
            .await
            .map_err(|e| format!("restoring checkpoint {id} for {container}: {e}"))?;
        tracing::info!(pod = %pod.name, namespace = %pod.namespace, %container, checkpoint = %id, bytes = restored.bytes, files = restored.files, "checkpoint restored");
        done.push(format!(
            "{container}: {} files, {} bytes",
            restored.files, restored.bytes
        ));
        restored_volumes.push(volume);
    }
    ctx.criu_images
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(criu);
    Ok(Some(done.join("; ")))
}

/// Verifies a staged CRIU checkpoint (its manifest, every blob's sha256) and imports its
/// blobs into containerd; the CRIU image's blob.
pub async fn restore_criu(
    images: &dyn TaskImages,
    container_dir: PathBuf,
) -> Result<criu_image::Blob, String> {
    let verified = checkpoint::verify(container_dir.clone())
        .await
        .map_err(|e| e.to_string())?;
    if verified.manifest.content != checkpoint::manifest::Content::Criu {
        return Err(format!(
            "{}: the manifest does not say it holds a CRIU image",
            container_dir.display()
        ));
    }
    criu_image::import(images, &container_dir.join(checkpoint::CRIU)).await
}
