//! Migrations on Kubernetes: pods are the reflector cache's, what they do is what the API
//! server says of them (their status) and, for checkpoints and freezes, what the agent
//! of their node reports ([`KubeletPods`]). Pods are created and deleted through the
//! [`Actuator`]: the target is created bound to its node (`spec.nodeName`, so no
//! scheduler is involved), a delete names the uid it means, so a pod made again under
//! the same name is never deleted by mistake. A pod started from a checkpoint gets one
//! init container per restored container, running `aistor-agent restore` from the
//! checkpoint claim into the volume the container mounts at its checkpoint path.

use super::PodRuntime;
use super::local::{STUCK, checkpoint_path, freeze_id, staging_seen};
use crate::actuate::{ActuateError, Actuator, PodRef, Preconditions};
use crate::config::RestoreConfig;
use crate::k8s::Cache;
use crate::kubelet_pods::KubeletPods;
use aistor_core::manifest::RESTORE_ANNOTATION;
use aistor_core::migration::Strategy;
use aistor_core::migration::input_from_pod;
use aistor_core::migration::machine::{CheckpointSeen, Effect, Migration, PodSeen};
use aistor_core::migration::target::{checkpointed_containers, controller_of};
use aistor_proto::v1 as pb;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The annotation naming a pod's checkpoint hook (as the agent reads it).
pub const HOOK_ANNOTATION: &str = "aistor.io/checkpoint-hook";
/// Where the restore init containers mount the checkpoint claim, and the volume there.
pub const CHECKPOINT_MOUNT: &str = "/var/lib/aistor/checkpoints";
pub const CHECKPOINT_VOLUME: &str = "aistor-checkpoints";
/// Where they mount the volume they fill.
pub const RESTORE_INTO: &str = "/aistor/restore-into";
/// Refused evictions remembered (one per migration evicting, forgotten when it ends).
const KEEP_REFUSALS: usize = 1024;

#[derive(Clone)]
pub struct KubePods {
    cache: Cache,
    actuator: Arc<dyn Actuator>,
    agents: KubeletPods,
    restore: RestoreConfig,
    /// Migration id → why its last eviction was refused.
    refusals: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for KubePods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePods")
            .field("restore", &self.restore)
            .finish_non_exhaustive()
    }
}

/// Why a pod cannot become Ready; `None` while it still may.
pub fn failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in all.clone() {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or("");
        if STUCK.contains(&reason) {
            let message = match w.message.as_deref() {
                Some(m) if !m.is_empty() => format!(": {m}"),
                _ => String::new(),
            };
            return Some(format!("container {}: {reason}{message}", c.name));
        }
    }
    match status.phase.as_deref() {
        Some(phase @ ("Failed" | "Succeeded")) => {
            let ended: Vec<String> = all
                .filter_map(|c| {
                    let t = c.state.as_ref()?.terminated.as_ref()?;
                    Some(format!(
                        "{} exited {} ({})",
                        c.name,
                        t.exit_code,
                        t.reason.as_deref().unwrap_or("")
                    ))
                })
                .collect();
            Some(format!("the pod is {phase}: {}", ended.join(", ")))
        }
        _ => None,
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The claims `pod` mounts.
fn claims(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

/// `pod` (a Pod as JSON, `aistor.io/restore-from` naming the checkpoint) with an init
/// container per container of `staged` it runs that mounts a volume at its checkpoint
/// path: `aistor-agent restore` fills that volume from the checkpoint claim before the
/// container starts (and, with the marker it leaves, does nothing when run again). It
/// runs with the container's securityContext (so the files it writes are the
/// application's user's, and a namespace's Pod Security level admits it as it admits
/// the container) and resources (an init container's do not add to the pod's). A pod
/// naming no checkpoint is returned as it is.
pub fn with_restore(mut pod: Value, staged: &[String], restore: &RestoreConfig) -> Value {
    let Some(id) = pod["metadata"]["annotations"][RESTORE_ANNOTATION]
        .as_str()
        .map(str::to_owned)
    else {
        return pod;
    };
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let path = checkpoint_path(&pod).trim_end_matches('/').to_owned();
    let mut inits = Vec::new();
    for (i, c) in pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = c["name"].as_str().unwrap_or_default();
        if !staged.iter().any(|s| s == name) {
            continue;
        }
        let Some(mount) = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|p| p.trim_end_matches('/') == path)
            })
        else {
            continue;
        };
        let mut into = json!({"name": mount["name"], "mountPath": RESTORE_INTO});
        if let Some(sub) = mount.get("subPath") {
            into["subPath"] = sub.clone();
        }
        let init_name = format!("aistor-restore-{name}");
        let init_name = if init_name.len() <= 63 {
            init_name
        } else {
            format!("aistor-restore-{i}")
        };
        let mut init = json!({
            "name": init_name,
            "image": restore.image,
            "imagePullPolicy": "IfNotPresent",
            "args": [
                "restore",
                "--checkpoint-dir", CHECKPOINT_MOUNT,
                "--namespace", namespace,
                "--checkpoint-id", id,
                "--container", name,
                "--into", RESTORE_INTO,
            ],
            "volumeMounts": [
                {"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT, "readOnly": true},
                into,
            ],
        });
        for field in ["securityContext", "resources"] {
            if let Some(value) = c.get(field) {
                init[field] = value.clone();
            }
        }
        inits.push(init);
    }
    if inits.is_empty() {
        return pod;
    }
    let spec = &mut pod["spec"];
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    if !volumes.iter().any(|v| v["name"] == CHECKPOINT_VOLUME) {
        let mut volumes = volumes;
        volumes.push(json!({
            "name": CHECKPOINT_VOLUME,
            "persistentVolumeClaim": {"claimName": restore.checkpoint_claim, "readOnly": true},
        }));
        spec["volumes"] = Value::Array(volumes);
    }
    // The restores run first: the pod's own init containers may read the checkpoint.
    inits.extend(
        spec["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    spec["initContainers"] = Value::Array(inits);
    pod
}

impl KubePods {
    pub fn new(
        cache: Cache,
        actuator: Arc<dyn Actuator>,
        agents: KubeletPods,
        restore: RestoreConfig,
    ) -> Self {
        Self {
            cache,
            actuator,
            agents,
            restore,
            refusals: Arc::default(),
        }
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Evicts the source if the pod under its name still has its uid: the Actuator's
    /// eviction takes no uid precondition, and a StatefulSet's replacement takes the
    /// same name, so the cache is asked first (a replacement made since is left alone).
    async fn evict(
        &self,
        m: &Migration,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), String> {
        let current = self
            .cache
            .pods()
            .get(&ObjectRef::new(name).within(namespace));
        if current.is_none_or(|p| p.metadata.uid.as_deref() != Some(uid)) {
            self.refusals().remove(&m.id);
            return Ok(());
        }
        match self
            .actuator
            .evict(&PodRef::new(namespace, name), None)
            .await
        {
            Ok(()) | Err(ActuateError::NotFound { .. }) => {
                self.refusals().remove(&m.id);
                Ok(())
            }
            Err(e @ ActuateError::DisruptionBudget { .. }) => {
                let mut refusals = self.refusals();
                if refusals.len() >= KEEP_REFUSALS && !refusals.contains_key(&m.id) {
                    refusals.pop_first();
                }
                refusals.insert(m.id.clone(), e.to_string());
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The access modes of the claims `pod` mounts (claims not in the cache are left
    /// out: the planner then treats them as shareable, and the target waits for them).
    fn access_modes(&self, namespace: &str, pod: &Pod) -> BTreeMap<String, Vec<String>> {
        claims(pod)
            .filter_map(|claim| {
                let pvc: Arc<PersistentVolumeClaim> = self
                    .cache
                    .persistent_volume_claims()
                    .get(&ObjectRef::new(claim).within(namespace))?;
                let modes = pvc.spec.as_ref()?.access_modes.clone().unwrap_or_default();
                Some((claim.to_owned(), modes))
            })
            .collect()
    }

    fn seen(&self, namespace: &str, pod: &Pod) -> PodSeen {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let object = serde_json::to_value(pod).unwrap_or_default();
        PodSeen {
            // A controller's pod is evicted through it, never re-created beside it.
            controller: controller_of(&object),
            frozen: node
                .as_deref()
                .is_some_and(|n| self.agents.is_frozen(n, &uid)),
            ready: is_ready(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            failed: failure(pod),
            object,
            plan_input: input_from_pod(pod, &self.access_modes(namespace, pod), false),
            uid,
            node,
        }
    }

    async fn create(&self, m: &Migration, namespace: &str, pod: &Value) -> Result<(), String> {
        let staged = m
            .checkpoint
            .as_ref()
            .map(|c| c.containers.clone())
            .unwrap_or_default();
        let pod = with_restore(pod.clone(), &staged, &self.restore);
        let pod: Pod = serde_json::from_value(pod)
            .map_err(|e| format!("the pod to create is not a Pod: {e}"))?;
        match self.actuator.create_pod(namespace, pod).await {
            // 409 on a create: it exists (made by an earlier attempt); the next look sees it.
            Ok(_) | Err(ActuateError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl PodRuntime for KubePods {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodSeen> {
        let pod = self
            .cache
            .pods()
            .get(&ObjectRef::new(name).within(namespace))?;
        Some(self.seen(namespace, &pod))
    }

    fn controlled(&self, namespace: &str, controller_uid: &str) -> Vec<PodSeen> {
        self.cache
            .pods()
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter(|p| crate::placement::input::controller_uid(p) == Some(controller_uid))
            .map(|p| self.seen(namespace, p))
            .collect()
    }

    fn eviction_refused(&self, m: &Migration) -> Option<String> {
        self.refusals().get(&m.id).cloned()
    }

    fn ended(&self, m: &Migration) {
        self.refusals().remove(&m.id);
    }

    fn checkpoint(&self, m: &Migration, id: &str) -> CheckpointSeen {
        match self.agents.staging(id) {
            Some(staging) => staging_seen(m, &staging.error, &staging.containers),
            None => {
                // Asked for before this coordinator started: follow it in the reports.
                self.agents.follow(id, &m.request.source_node);
                CheckpointSeen::Unknown
            }
        }
    }

    fn freeze_error(&self, m: &Migration) -> Option<String> {
        self.agents.directive_error(&freeze_id(m, true))
    }

    fn claims_detached(&self, m: &Migration) -> bool {
        let Some(Strategy::BreakBeforeMake { claims: single }) = m.strategy() else {
            return true;
        };
        // Mounted by no pod that may still run (the attach/detach controller then
        // detaches the volume; a target started before that waits in ContainerCreating).
        !self.cache.pods().state().iter().any(|pod| {
            pod.metadata.namespace.as_deref() == Some(m.request.namespace.as_str())
                && !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
                && claims(pod).any(|c| single.iter().any(|s| s == c))
        })
    }

    fn checkpointed(&self, pod: &PodSeen) -> Vec<String> {
        checkpointed_containers(&pod.object, checkpoint_path(&pod.object))
    }

    fn act<'a>(
        &'a self,
        m: &'a Migration,
        effect: &'a Effect,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match effect {
                Effect::StageCheckpoint {
                    checkpoint_id,
                    pod_uid,
                    node,
                    containers,
                } => {
                    let source = m.source.as_ref().map(|s| &s.pod).unwrap_or(&Value::Null);
                    let request = pb::StageCheckpoint {
                        pod_uid: pod_uid.clone(),
                        checkpoint_id: checkpoint_id.clone(),
                        containers: containers.clone(),
                        hook_timeout_nanos: 0,
                        checkpoint_path: checkpoint_path(source).to_owned(),
                        hook: source["metadata"]["annotations"][HOOK_ANNOTATION]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    };
                    self.agents.stage(node, request).map_err(|e| e.to_string())
                }
                Effect::Freeze {
                    pod_uid,
                    node,
                    frozen,
                } => self
                    .agents
                    .freeze(node, pod_uid, *frozen, &freeze_id(m, *frozen))
                    .map_err(|e| e.to_string()),
                Effect::CreatePod { namespace, pod, .. } => self.create(m, namespace, pod).await,
                Effect::DeletePod {
                    namespace,
                    name,
                    uid,
                } => {
                    let guard = Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    };
                    match self
                        .actuator
                        .delete_pod(&PodRef::new(namespace, name), guard)
                        .await
                    {
                        // Gone, or another pod under that name now: nothing of ours to delete.
                        Ok(())
                        | Err(ActuateError::NotFound { .. } | ActuateError::Conflict { .. }) => {
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Effect::Evict {
                    namespace,
                    name,
                    uid,
                } => self.evict(m, namespace, name, uid).await,
                Effect::Measure { .. } => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore() -> RestoreConfig {
        RestoreConfig {
            checkpoint_claim: "ckpt-claim".into(),
            image: "aistor/agent:test".into(),
        }
    }

    fn target(restore_from: Option<&str>) -> Value {
        let mut annotations = json!({"aistor.io/checkpoint-path": "/state/"});
        if let Some(id) = restore_from {
            annotations[RESTORE_ANNOTATION] = json!(id);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "tf-1a2b3c4d", "namespace": "ai", "annotations": annotations},
            "spec": {
                "nodeName": "node-2",
                "initContainers": [{"name": "fetch", "image": "busybox"}],
                "containers": [
                    {"name": "trainer", "image": "tf", "volumeMounts": [
                        {"name": "state", "mountPath": "/state", "subPath": "trainer"}],
                     "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false},
                     "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
                    {"name": "monitor", "image": "m", "volumeMounts": [
                        {"name": "state", "mountPath": "/state"}]},
                    {"name": "sidecar", "image": "s"}
                ],
                "volumes": [{"name": "state", "emptyDir": {}}]
            }
        })
    }

    #[test]
    fn a_restored_pod_gets_a_restore_per_staged_container_before_its_own_init_containers() {
        let pod = with_restore(
            target(Some("migration-1a2b3c4d-1")),
            &["trainer".into(), "gone".into()],
            &restore(),
        );
        let inits = pod["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(inits.len(), 2, "{pod}");
        assert_eq!(
            inits[0],
            json!({
                "name": "aistor-restore-trainer",
                "image": "aistor/agent:test",
                "imagePullPolicy": "IfNotPresent",
                "args": ["restore", "--checkpoint-dir", CHECKPOINT_MOUNT, "--namespace", "ai",
                         "--checkpoint-id", "migration-1a2b3c4d-1", "--container", "trainer",
                         "--into", RESTORE_INTO],
                "volumeMounts": [
                    {"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT, "readOnly": true},
                    {"name": "state", "mountPath": RESTORE_INTO, "subPath": "trainer"}
                ],
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false},
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}
            })
        );
        assert_eq!(inits[1]["name"], "fetch");
        assert_eq!(
            pod["spec"]["volumes"][1],
            json!({"name": CHECKPOINT_VOLUME,
                   "persistentVolumeClaim": {"claimName": "ckpt-claim", "readOnly": true}})
        );
        // It parses as a Pod (what the actuator sends).
        serde_json::from_value::<Pod>(pod).unwrap();
    }

    #[test]
    fn a_cold_pod_or_one_with_nothing_to_restore_is_left_as_it_is() {
        assert_eq!(
            with_restore(target(None), &["trainer".into()], &restore()),
            target(None)
        );
        let nothing = with_restore(target(Some("m-1")), &["sidecar".into()], &restore());
        assert_eq!(nothing, target(Some("m-1")));
    }

    #[test]
    fn failures_name_the_container_or_the_pod_phase() {
        let pod = |status: Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
        };
        assert_eq!(failure(&pod(json!({"phase": "Pending"}))), None);
        assert_eq!(
            failure(&pod(json!({"phase": "Pending", "initContainerStatuses": [{
                "name": "aistor-restore-trainer", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
            }]}))),
            Some("container aistor-restore-trainer: CrashLoopBackOff: back-off 40s".into())
        );
        assert_eq!(
            failure(&pod(json!({"phase": "Failed", "containerStatuses": [{
                "name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}}
            }]}))),
            Some("the pod is Failed: main exited 2 (Error)".into())
        );
        // Waiting for an ordinary reason is not a failure.
        assert_eq!(
            failure(&pod(json!({"phase": "Pending", "containerStatuses": [{
                "name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "ContainerCreating"}}
            }]}))),
            None
        );
    }
}
