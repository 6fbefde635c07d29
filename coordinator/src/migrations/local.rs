//! Migrations on the local runtime: pods are the coordinator's stored Pods, what they
//! do is what their agents report, and every action is a directive to an agent
//! (stage a checkpoint, freeze, run, delete). Claims are directories on the volume
//! root every local node shares, so nothing has to be detached.

use super::PodRuntime;
use crate::workloads::{WorkloadError, Workloads};
use aistor_core::migration::input_from_pod;
use aistor_core::migration::machine::{CheckpointSeen, Effect, Migration, PodSeen, Staged};
use aistor_core::migration::target::checkpointed_containers;
use aistor_proto::v1 as pb;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use std::collections::BTreeMap;

/// The annotation naming a pod's checkpoint path, and its default (as the agent reads
/// them).
pub const CHECKPOINT_PATH_ANNOTATION: &str = "aistor.io/checkpoint-path";
pub const DEFAULT_CHECKPOINT_PATH: &str = "/checkpoint";

/// Waiting reasons after which a container will not start without someone's help.
pub(crate) const STUCK: [&str; 8] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "RunContainerError",
];

#[derive(Debug, Clone)]
pub struct LocalPods(pub Workloads);

/// The directive id of the freeze (or thaw) of `m`'s source.
pub(crate) fn freeze_id(m: &Migration, frozen: bool) -> String {
    format!("{}-{}", if frozen { "freeze" } else { "thaw" }, m.id)
}

/// Why a reported pod cannot become Ready; `None` while it still may.
pub fn failure(pod: &pb::LocalPod) -> Option<String> {
    use pb::local_container::State;
    for c in &pod.containers {
        match &c.state {
            Some(State::Waiting(w)) if STUCK.contains(&w.reason.as_str()) => {
                let message = if w.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", w.message)
                };
                return Some(format!("container {}: {}{message}", c.name, w.reason));
            }
            _ => {}
        }
    }
    match pod.phase.as_str() {
        "Failed" | "Succeeded" => {
            let ended: Vec<String> = pod
                .containers
                .iter()
                .filter_map(|c| match &c.state {
                    Some(State::Terminated(t)) => {
                        Some(format!("{} exited {} ({})", c.name, t.exit_code, t.reason))
                    }
                    _ => None,
                })
                .collect();
            Some(format!("the pod is {}: {}", pod.phase, ended.join(", ")))
        }
        _ => None,
    }
}

fn seen(
    object: Value,
    uid: String,
    node: Option<String>,
    reported: Option<pb::LocalPod>,
) -> PodSeen {
    let claims = BTreeMap::new();
    let plan_input = match serde_json::from_value::<Pod>(object.clone()) {
        Ok(pod) => input_from_pod(&pod, &claims, false),
        // Stored pods were checked when applied; one that no longer parses has no
        // containers the planner could keep, and says so.
        Err(_) => input_from_pod(&Pod::default(), &claims, false),
    };
    PodSeen {
        ready: reported
            .as_ref()
            .is_some_and(|p| p.conditions.iter().any(|c| c.r#type == "Ready" && c.status)),
        frozen: reported.as_ref().is_some_and(|p| p.frozen),
        terminating: reported.as_ref().is_some_and(|p| p.terminating),
        failed: reported.as_ref().and_then(failure),
        uid,
        node,
        object,
        plan_input,
        // Its Deployment's pods are moved by the migration itself, as bare pods are.
        controller: None,
    }
}

/// The checkpoint path of `pod` (a Pod as JSON): its annotation, or the default.
pub(crate) fn checkpoint_path(pod: &Value) -> &str {
    pod["metadata"]["annotations"][CHECKPOINT_PATH_ANNOTATION]
        .as_str()
        .unwrap_or(DEFAULT_CHECKPOINT_PATH)
}

/// The staging of `m`'s checkpoint from what its agent reported of it: `error` (the
/// directive failed), and each container's status.
pub(crate) fn staging_seen(
    m: &Migration,
    error: &str,
    reported: &[pb::CheckpointStatus],
) -> CheckpointSeen {
    if !error.is_empty() {
        return CheckpointSeen::Failed(error.to_owned());
    }
    let wanted = m
        .checkpoint
        .as_ref()
        .map(|c| c.containers.clone())
        .unwrap_or_default();
    if !wanted
        .iter()
        .any(|w| reported.iter().any(|c| &c.container == w))
    {
        // Asked for (or followed) but not reported by the agent yet.
        return CheckpointSeen::Unknown;
    }
    let mut staged = Staged::default();
    let mut in_progress = 0;
    for container in &wanted {
        match reported.iter().find(|c| &c.container == container) {
            None => return CheckpointSeen::InProgress { bytes: in_progress },
            Some(c) if c.state == "failed" => {
                return CheckpointSeen::Failed(format!("container {container}: {}", c.error));
            }
            Some(c) if c.state == "staged" => {
                staged.bytes += c.bytes;
                staged.files += c.files;
                staged.copy_nanos += c.duration_nanos;
                staged.dirs.push(c.dir.clone());
                in_progress += c.bytes;
            }
            Some(c) => in_progress += c.bytes,
        }
    }
    if staged.dirs.len() == wanted.len() {
        CheckpointSeen::Staged(staged)
    } else {
        CheckpointSeen::InProgress { bytes: in_progress }
    }
}

impl PodRuntime for LocalPods {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodSeen> {
        let (object, entry, reported) = self.0.pod_with_status(namespace, name)?;
        Some(seen(object, entry.uid, entry.node, reported))
    }

    fn checkpoint(&self, m: &Migration, id: &str) -> CheckpointSeen {
        let Some(entry) = self.0.checkpoint_entry(id) else {
            // Asked for before this coordinator started: follow it in the reports.
            if let Some(source) = &m.source {
                self.0.watch_checkpoint(
                    id,
                    &m.request.namespace,
                    &m.request.pod,
                    &source.uid,
                    &m.request.source_node,
                );
            }
            return CheckpointSeen::Unknown;
        };
        staging_seen(m, &entry.error, &entry.containers)
    }

    fn freeze_error(&self, m: &Migration) -> Option<String> {
        self.0.directive_error(&freeze_id(m, true))
    }

    fn claims_detached(&self, _m: &Migration) -> bool {
        true
    }

    fn checkpointed(&self, pod: &PodSeen) -> Vec<String> {
        checkpointed_containers(&pod.object, checkpoint_path(&pod.object))
    }

    fn controlled(&self, _namespace: &str, _controller_uid: &str) -> Vec<PodSeen> {
        Vec::new()
    }

    fn eviction_refused(&self, _m: &Migration) -> Option<String> {
        None
    }

    fn act<'a>(
        &'a self,
        m: &'a Migration,
        effect: &'a Effect,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let w = &self.0;
            let r = &m.request;
            match effect {
                Effect::StageCheckpoint {
                    checkpoint_id,
                    containers,
                    ..
                } => w
                    .stage_checkpoint(&r.namespace, &r.pod, checkpoint_id, containers.clone())
                    .map(drop),
                Effect::Freeze {
                    pod_uid,
                    node,
                    frozen,
                } => w.freeze(pod_uid, node, *frozen, &freeze_id(m, *frozen)),
                Effect::CreatePod { namespace, pod, .. } => {
                    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                    match w
                        .create_pod(&format!("{namespace}/{name}"), pod.clone())
                        .await
                    {
                        Err(WorkloadError::Store(crate::store::StoreError::AlreadyExists {
                            ..
                        })) => Ok(()),
                        other => other,
                    }
                }
                Effect::DeletePod {
                    namespace,
                    name,
                    uid,
                } => w.delete_pod_if(namespace, name, uid).await,
                Effect::Measure { .. } => Ok(()),
                Effect::Evict { .. } => {
                    return Err(
                        "the local runtime evicts nothing (no pod of it has a controller)".into(),
                    );
                }
            }
            .map_err(|e| e.to_string())
        })
    }
}
