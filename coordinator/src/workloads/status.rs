//! Kubernetes status objects for the local runtime's pods and Deployments, from what the
//! agents report: `kubectl`-shaped JSON, so `-o json`/`-o yaml` read as they would on a
//! cluster.

use super::{CheckpointEntry, DeploymentEntry, Observed, PodEntry, rfc3339};
use aistor_core::workload::{self, PodRecord};
use aistor_proto::v1 as pb;
use serde_json::{Value, json};

fn truth(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn terminated(t: &pb::ContainerTerminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "finishedAt": rfc3339(t.finished_unix_nanos),
    });
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    if let Some(started) = t.started_unix_nanos {
        v["startedAt"] = json!(rfc3339(started));
    }
    v
}

fn container_status(c: &pb::LocalContainer) -> Value {
    use pb::local_container::State;
    let state = match &c.state {
        Some(State::Waiting(w)) => {
            let mut v = json!({"reason": w.reason});
            if !w.message.is_empty() {
                v["message"] = json!(w.message);
            }
            json!({"waiting": v})
        }
        Some(State::Running(r)) => json!({"running": {"startedAt": rfc3339(r.started_unix_nanos)}}),
        Some(State::Terminated(t)) => json!({"terminated": terminated(t)}),
        None => json!({}),
    };
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": matches!(c.state, Some(State::Running(_))),
        "state": state,
    });
    if !c.container_id.is_empty() {
        v["containerID"] = json!(format!("containerd://{}", c.container_id));
    }
    if let Some(last) = &c.last_terminated {
        v["lastState"] = json!({"terminated": terminated(last)});
    }
    v
}

/// The pod's status: as its agent last reported it, or pending with the reason.
pub fn pod_status(pod: &PodEntry, observed: Option<&Observed>) -> Value {
    let Some(observed) = observed else {
        let (scheduled, reason, message) = match &pod.node {
            Some(node) => (
                true,
                "",
                format!("assigned to {node}; its agent has not reported the pod yet"),
            ),
            None => (false, "Unschedulable", "no node is ready for it".to_owned()),
        };
        let mut condition = json!({"type": "PodScheduled", "status": truth(scheduled)});
        if !reason.is_empty() {
            condition["reason"] = json!(reason);
        }
        return json!({"phase": "Pending", "conditions": [condition], "message": message});
    };
    let p = &observed.pod;
    let mut status = json!({
        "phase": p.phase,
        "qosClass": p.qos_class,
        // The kubelet's startTime is when it took the pod on; here, when it was made.
        "startTime": rfc3339(pod.created_unix_nanos),
        "conditions": p.conditions.iter().enumerate().map(|(i, c)| {
            let mut v = json!({"type": c.r#type, "status": truth(c.status)});
            if let Some(&at) = observed.transitions_unix_nanos.get(i) {
                v["lastTransitionTime"] = json!(rfc3339(at));
            }
            if !c.reason.is_empty() {
                v["reason"] = json!(c.reason);
            }
            v
        }).collect::<Vec<_>>(),
        "containerStatuses": p.containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if !p.message.is_empty() {
        status["message"] = json!(p.message);
    }
    if p.terminating {
        status["reason"] = json!("Terminating");
    }
    status
}

/// The Deployment's status, as its controller reports it.
pub fn deployment_status(d: &DeploymentEntry, pods: &[PodRecord]) -> Value {
    let s = workload::status(&d.parsed, pods);
    let reason = if s.available {
        "MinimumReplicasAvailable"
    } else {
        "MinimumReplicasUnavailable"
    };
    json!({
        "observedGeneration": d.generation,
        "replicas": s.replicas,
        "updatedReplicas": s.updated_replicas,
        "readyReplicas": s.ready_replicas,
        "availableReplicas": s.available_replicas,
        "unavailableReplicas": s.unavailable_replicas,
        "conditions": [{"type": "Available", "status": truth(s.available), "reason": reason}],
    })
}

/// A checkpoint as an object: its pod, and each container's state, size and speed.
/// Its state: `failed` when the directive or any container failed, `staged` when every
/// container is, else `staging`.
pub fn checkpoint_object(id: &str, c: &CheckpointEntry) -> Value {
    let failed = !c.error.is_empty() || c.containers.iter().any(|s| s.state == "failed");
    let staged = !c.containers.is_empty() && c.containers.iter().all(|s| s.state == "staged");
    let state = if failed {
        "failed"
    } else if staged {
        "staged"
    } else {
        "staging"
    };
    let containers: Vec<Value> = c
        .containers
        .iter()
        .map(|s| {
            let mut v = json!({
                "name": s.container, "state": s.state, "files": s.files, "bytes": s.bytes,
                "durationSeconds": s.duration_nanos as f64 / 1e9,
                "bytesPerSecond": s.bytes_per_second, "hook": s.hook,
            });
            if !s.error.is_empty() {
                v["error"] = json!(s.error);
            }
            if !s.dir.is_empty() {
                v["dir"] = json!(s.dir);
            }
            v
        })
        .collect();
    let mut status = json!({"state": state, "containers": containers});
    if !c.error.is_empty() {
        status["error"] = json!(c.error);
    }
    json!({
        "apiVersion": "aistor.io/v1alpha1",
        "kind": "Checkpoint",
        "metadata": {"name": id, "namespace": c.about.namespace,
                     "creationTimestamp": rfc3339(c.about.requested_unix_nanos)},
        "spec": {"pod": c.about.pod, "podUID": c.about.pod_uid, "node": c.about.node},
        "status": status,
    })
}
