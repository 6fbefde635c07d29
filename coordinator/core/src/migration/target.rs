//! The pod a migration creates, built from the source pod as it was when the migration
//! started: only the containers the plan keeps, pinned to the target node, restored from
//! the staged checkpoint, and free of everything that tied the source to its controller
//! (owner references, controller-managed labels) — the original copied the controller's
//! labels, so the ReplicaSet adopted or fought the new pod.

use super::plan::{Action, Plan};
use crate::manifest::RESTORE_ANNOTATION;
use serde_json::{Map, Value, json};

/// The annotation naming the migration that made a pod.
pub const MIGRATION_ANNOTATION: &str = "aistor.io/migration";
/// The annotation naming the pod a migrated pod replaces (`namespace/name`).
pub const MIGRATED_FROM_ANNOTATION: &str = "aistor.io/migrated-from";

/// Labels a controller sets on the pods it owns; a pod that keeps them after leaving its
/// controller would be counted, adopted or deleted by it.
pub const CONTROLLER_LABELS: [&str; 5] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// The controller of a pod: its ownerReference with `controller: true`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Controller {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// The controller of `pod` (a Pod as JSON), if one controls it.
pub fn controller_of(pod: &Value) -> Option<Controller> {
    let owner = pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    let field = |f: &str| {
        owner[f]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(Controller {
        kind: field("kind")?,
        name: field("name")?,
        uid: field("uid")?,
    })
}

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct TargetSpec<'a> {
    pub migration_id: &'a str,
    /// The new pod's name.
    pub name: &'a str,
    pub node: &'a str,
    /// The staged checkpoint the kept containers start from; `None`: they start cold.
    pub restore_from: Option<&'a str>,
}

/// The name of the pod a migration creates: `<pod>-<short id>` (the id's last 8
/// characters), cut so that it stays a valid name of at most 63 characters.
pub fn target_name(pod: &str, migration_id: &str) -> String {
    let short: String = {
        let chars: Vec<char> = migration_id.chars().collect();
        chars[chars.len().saturating_sub(8)..].iter().collect()
    };
    let room = 63usize.saturating_sub(short.len() + 1);
    let stem: String = pod.chars().take(room).collect();
    format!("{}-{short}", stem.trim_end_matches(['-', '.']))
}

/// The target pod: `source` (a Kubernetes Pod as JSON) with its status, identity and
/// controller ties removed, the containers the plan does not keep left out (init
/// containers that completed included), `spec.nodeName` set to the target and the
/// checkpoint named in `aistor.io/restore-from`.
pub fn target_pod(source: &Value, plan: &Plan, spec: TargetSpec<'_>) -> Value {
    let keeps = |name: &str, init: bool| {
        plan.containers
            .iter()
            .find(|c| c.name == name && c.init == init)
            .is_none_or(|c| c.action.should_migrate())
    };
    let mut pod = source.clone();
    if let Some(object) = pod.as_object_mut() {
        object.remove("status");
    }
    let namespace = source["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let source_name = source["metadata"]["name"].as_str().unwrap_or("");

    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(spec.name));
    metadata.insert("namespace".into(), json!(namespace));
    let mut labels = source["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for label in CONTROLLER_LABELS {
        labels.remove(label);
    }
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    let mut annotations = source["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.remove(RESTORE_ANNOTATION);
    if let Some(id) = spec.restore_from {
        annotations.insert(RESTORE_ANNOTATION.into(), json!(id));
    }
    annotations.insert(MIGRATION_ANNOTATION.into(), json!(spec.migration_id));
    annotations.insert(
        MIGRATED_FROM_ANNOTATION.into(),
        json!(format!("{namespace}/{source_name}")),
    );
    metadata.insert("annotations".into(), Value::Object(annotations));
    pod["metadata"] = Value::Object(metadata);

    let pod_spec = &mut pod["spec"];
    for (field, init) in [("initContainers", true), ("containers", false)] {
        if let Some(list) = pod_spec.get_mut(field).and_then(Value::as_array_mut) {
            list.retain(|c| keeps(c["name"].as_str().unwrap_or(""), init));
            if list.is_empty()
                && init
                && let Some(spec) = pod_spec.as_object_mut()
            {
                spec.remove(field);
            }
        }
    }
    // The service account admission injects its own token volume into the new pod.
    drop_generated_token_volume(pod_spec);
    pod_spec["nodeName"] = json!(spec.node);
    pod
}

/// Removes `kube-api-access-*` (the projected token volume the API server added to the
/// source) and its mounts.
fn drop_generated_token_volume(spec: &mut Value) {
    let generated = |name: &str| name.starts_with("kube-api-access-");
    // `get_mut`, not indexing: indexing a missing key would insert a null.
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(|v| !generated(v["name"].as_str().unwrap_or("")));
    }
    for field in ["initContainers", "containers"] {
        let list = spec.get_mut(field).and_then(Value::as_array_mut);
        for c in list.into_iter().flatten() {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.retain(|m| !generated(m["name"].as_str().unwrap_or("")));
            }
        }
    }
}

/// The pod put back on its source node when a break-before-make migration fails after
/// the source was deleted: the source as it was (same name, all its containers but those
/// the plan leaves out), restored from the checkpoint.
pub fn rollback_pod(
    source: &Value,
    plan: &Plan,
    migration_id: &str,
    node: &str,
    restore_from: Option<&str>,
) -> Value {
    let name = source["metadata"]["name"].as_str().unwrap_or("");
    let mut pod = target_pod(
        source,
        plan,
        TargetSpec {
            migration_id,
            name,
            node,
            restore_from,
        },
    );
    // Back where it was: not "migrated from" anywhere.
    if let Some(annotations) = pod["metadata"]["annotations"].as_object_mut() {
        annotations.remove(MIGRATED_FROM_ANNOTATION);
    }
    pod
}

/// The containers of `pod` that mount a volume at `checkpoint_path` (the ones a
/// checkpoint stages and a restore fills).
pub fn checkpointed_containers(pod: &Value, checkpoint_path: &str) -> Vec<String> {
    let want = checkpoint_path.trim_end_matches('/');
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["volumeMounts"].as_array().into_iter().flatten().any(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|p| p.trim_end_matches('/') == want)
            })
        })
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// Whether the plan runs `container` again (a regular container it keeps).
pub fn kept(plan: &Plan, container: &str) -> bool {
    plan.containers
        .iter()
        .any(|c| !c.init && c.name == container && c.action.should_migrate())
}

/// Whether any kept container is restored from the checkpoint.
pub fn restores(plan: &Plan) -> bool {
    plan.containers.iter().any(|c| c.action == Action::Restore)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::plan::{ContainerPlan, ContainerState, Strategy};

    fn plan(containers: &[(&str, bool, Action)]) -> Plan {
        Plan {
            containers: containers
                .iter()
                .map(|(name, init, action)| ContainerPlan {
                    name: (*name).into(),
                    init: *init,
                    state: ContainerState::Running,
                    restart_count: 0,
                    action: *action,
                    why: String::new(),
                })
                .collect(),
            strategy: Strategy::MakeBeforeBreak,
        }
    }

    fn seed_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "tensorflow-ai-workload", "namespace": "ai-test",
                "uid": "1111", "resourceVersion": "7", "creationTimestamp": "2026-11-30T00:00:00Z",
                "labels": {"app": "tf", "pod-template-hash": "abc", "controller-revision-hash": "r1"},
                "annotations": {
                    "aistor.io/rootfs": "host",
                    "aistor.io/restore-from": "old-checkpoint",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"
                },
                "ownerReferences": [{"kind": "ReplicaSet", "name": "tf-abc", "uid": "9"}],
                "finalizers": ["x"]
            },
            "spec": {
                "nodeName": "worker-1",
                "restartPolicy": "Never",
                "initContainers": [{"name": "fetch", "command": ["true"]}],
                "containers": [
                    {"name": "tensorflow-trainer", "volumeMounts": [
                        {"name": "ckpt", "mountPath": "/checkpoint/"},
                        {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets"}]},
                    {"name": "data-processor"},
                    {"name": "model-monitor"}
                ],
                "volumes": [{"name": "ckpt", "emptyDir": {}}, {"name": "kube-api-access-x1", "projected": {}}]
            },
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn the_target_keeps_what_the_plan_keeps_and_nothing_that_tied_the_source() {
        let plan = plan(&[
            ("fetch", true, Action::Completed),
            ("tensorflow-trainer", false, Action::Restore),
            ("data-processor", false, Action::Completed),
            ("model-monitor", false, Action::Recreate),
        ]);
        let pod = target_pod(
            &seed_pod(),
            &plan,
            TargetSpec {
                migration_id: "migration-1a2b3c4d",
                name: "tensorflow-ai-workload-1a2b3c4d",
                node: "worker-2",
                restore_from: Some("migration-1a2b3c4d-1"),
            },
        );
        assert_eq!(
            pod["metadata"],
            json!({
                "name": "tensorflow-ai-workload-1a2b3c4d",
                "namespace": "ai-test",
                "labels": {"app": "tf"},
                "annotations": {
                    "aistor.io/rootfs": "host",
                    "aistor.io/restore-from": "migration-1a2b3c4d-1",
                    "aistor.io/migration": "migration-1a2b3c4d",
                    "aistor.io/migrated-from": "ai-test/tensorflow-ai-workload"
                }
            })
        );
        assert!(pod.get("status").is_none());
        assert_eq!(pod["spec"]["nodeName"], "worker-2");
        assert!(pod["spec"].get("initContainers").is_none());
        let names: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["tensorflow-trainer", "model-monitor"]);
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "ckpt", "emptyDir": {}}])
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "ckpt", "mountPath": "/checkpoint/"}])
        );
    }

    #[test]
    fn a_cold_target_names_no_checkpoint_and_an_init_container_to_rerun_stays() {
        let plan = plan(&[
            ("fetch", true, Action::Recreate),
            ("tensorflow-trainer", false, Action::Recreate),
        ]);
        let pod = target_pod(
            &seed_pod(),
            &plan,
            TargetSpec {
                migration_id: "m",
                name: "t",
                node: "n",
                restore_from: None,
            },
        );
        assert!(
            pod["metadata"]["annotations"]
                .get(RESTORE_ANNOTATION)
                .is_none()
        );
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "fetch");
        // Containers the plan does not name (a spec the status did not list) are kept.
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_rolled_back_pod_returns_under_its_own_name_to_its_node() {
        let plan = plan(&[("tensorflow-trainer", false, Action::Restore)]);
        let pod = rollback_pod(&seed_pod(), &plan, "m-1", "worker-1", Some("m-1-1"));
        assert_eq!(pod["metadata"]["name"], "tensorflow-ai-workload");
        assert_eq!(pod["spec"]["nodeName"], "worker-1");
        assert_eq!(pod["metadata"]["annotations"][RESTORE_ANNOTATION], "m-1-1");
        assert!(
            pod["metadata"]["annotations"]
                .get(MIGRATED_FROM_ANNOTATION)
                .is_none()
        );
    }

    #[test]
    fn the_controller_is_the_owner_marked_controller() {
        let with = |refs: Value| json!({"metadata": {"ownerReferences": refs}});
        assert_eq!(
            controller_of(&with(json!([
                {"kind": "Node", "name": "n", "uid": "1"},
                {"kind": "ReplicaSet", "name": "web-abc", "uid": "9", "controller": true}
            ]))),
            Some(Controller {
                kind: "ReplicaSet".into(),
                name: "web-abc".into(),
                uid: "9".into()
            })
        );
        // Owners that do not control it, or a controller without a uid, are none.
        assert_eq!(
            controller_of(&with(
                json!([{"kind": "ReplicaSet", "name": "a", "uid": "9"}])
            )),
            None
        );
        assert_eq!(
            controller_of(&with(json!([
                {"kind": "ReplicaSet", "name": "a", "uid": "", "controller": true}
            ]))),
            None
        );
        assert_eq!(controller_of(&seed_pod()), None);
        assert_eq!(controller_of(&json!({})), None);
    }

    #[test]
    fn target_names_stay_valid() {
        assert_eq!(
            target_name("tensorflow-ai-workload", "migration-1a2b3c4d"),
            "tensorflow-ai-workload-1a2b3c4d"
        );
        let long = target_name(&"p".repeat(70), "migration-1a2b3c4d");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-1a2b3c4d"));
        assert_eq!(target_name("a-", "x"), "a-x");
        assert_eq!(
            target_name(&format!("{}-x", "a".repeat(53)), "migration-1a2b3c4d"),
            format!("{}-1a2b3c4d", "a".repeat(53))
        );
    }

    #[test]
    fn checkpointed_containers_are_those_mounting_the_path() {
        assert_eq!(
            checkpointed_containers(&seed_pod(), "/checkpoint"),
            ["tensorflow-trainer"]
        );
        assert!(checkpointed_containers(&seed_pod(), "/data").is_empty());
        let plan = plan(&[
            ("fetch", true, Action::Restore),
            ("tensorflow-trainer", false, Action::Recreate),
            ("data-processor", false, Action::Completed),
        ]);
        assert!(kept(&plan, "tensorflow-trainer"));
        assert!(!kept(&plan, "data-processor"));
        assert!(!kept(&plan, "fetch"));
        assert!(restores(&plan));
        let cold = super::super::plan::Plan {
            containers: plan.containers[1..].to_vec(),
            strategy: Strategy::MakeBeforeBreak,
        };
        assert!(!restores(&cold));
    }
}
