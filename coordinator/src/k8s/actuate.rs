//! [`Actuator`] on a Kubernetes API server through kube-rs: the `scale` subresource, pods/binding,
//! the policy/v1 eviction API and pod create/delete with preconditions. Each action done is also
//! recorded as an events.k8s.io/v1 Event on the object, so `kubectl describe` shows what aistor did;
//! an Event that cannot be written is logged and never fails the action.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams, PostParams};

use crate::actuate::{
    ActuateError, ActuateFuture, Actuator, PodRef, Preconditions, WorkloadKind, WorkloadRef,
};

/// Names the coordinator in managedFields and in the Events it writes.
pub const FIELD_MANAGER: &str = "aistor-coordinator";
const REPORTING_CONTROLLER: &str = "aistor.io/coordinator";

/// The Kubernetes [`Actuator`].
#[derive(Clone)]
pub struct Kubernetes {
    client: Client,
    /// `reportingInstance` of the Events (the leader identity).
    instance: String,
}

impl Kubernetes {
    pub fn new(client: Client, instance: impl Into<String>) -> Self {
        Self {
            client,
            instance: instance.into(),
        }
    }

    async fn scale_now(
        &self,
        workload: &WorkloadRef,
        replicas: i32,
        expected: Option<&str>,
        why: &str,
    ) -> Result<(), ActuateError> {
        let what = format!("{workload} scale");
        let ns = workload.namespace.as_str();
        let client = self.client.clone();
        // A PUT with the resourceVersion read is refused with 409 when the workload changed since;
        // without one, a merge patch sets only spec.replicas.
        let result = match expected {
            Some(rv) => {
                let scale = Scale {
                    metadata: ObjectMeta {
                        name: Some(workload.name.clone()),
                        namespace: Some(workload.namespace.clone()),
                        resource_version: Some(rv.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(ScaleSpec {
                        replicas: Some(replicas),
                    }),
                    status: None,
                };
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                match workload.kind {
                    WorkloadKind::Deployment => {
                        Api::<Deployment>::namespaced(client, ns)
                            .replace_scale(&workload.name, &pp, &scale)
                            .await
                    }
                    WorkloadKind::StatefulSet => {
                        Api::<StatefulSet>::namespaced(client, ns)
                            .replace_scale(&workload.name, &pp, &scale)
                            .await
                    }
                    WorkloadKind::ReplicaSet => {
                        Api::<ReplicaSet>::namespaced(client, ns)
                            .replace_scale(&workload.name, &pp, &scale)
                            .await
                    }
                }
            }
            None => {
                let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                };
                match workload.kind {
                    WorkloadKind::Deployment => {
                        Api::<Deployment>::namespaced(client, ns)
                            .patch_scale(&workload.name, &pp, &patch)
                            .await
                    }
                    WorkloadKind::StatefulSet => {
                        Api::<StatefulSet>::namespaced(client, ns)
                            .patch_scale(&workload.name, &pp, &patch)
                            .await
                    }
                    WorkloadKind::ReplicaSet => {
                        Api::<ReplicaSet>::namespaced(client, ns)
                            .patch_scale(&workload.name, &pp, &patch)
                            .await
                    }
                }
            }
        };
        result.map_err(|e| map_error(&what, e))?;
        self.record(
            regarding_workload(workload),
            "Scale",
            "Scaled",
            if why.is_empty() {
                format!("set replicas to {replicas}")
            } else {
                format!("set replicas to {replicas}: {why}")
            },
        )
        .await;
        Ok(())
    }

    async fn bind_now(&self, pod: &PodRef, node: &str) -> Result<(), ActuateError> {
        let what = format!("{pod} binding to node {node}");
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_owned()),
                ..ObjectReference::default()
            },
        };
        // The API server answers a binding with a Status, which is not worth a type here.
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace)
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                &pod.name,
                &PostParams::default(),
                &binding,
            )
            .await
            .map_err(|e| map_error(&what, e))?;
        self.record(
            regarding_pod(pod),
            "Bind",
            "Scheduled",
            format!("bound to node {node}"),
        )
        .await;
        Ok(())
    }

    async fn evict_now(&self, pod: &PodRef, grace: Option<Duration>) -> Result<(), ActuateError> {
        let what = format!("{pod} eviction");
        let params = EvictParams {
            delete_options: grace.map(|g| DeleteParams {
                grace_period_seconds: Some(u32::try_from(g.as_secs()).unwrap_or(u32::MAX)),
                ..DeleteParams::default()
            }),
            post_options: PostParams::default(),
        };
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace)
            .evict(&pod.name, &params)
            .await
            .map_err(|e| map_error(&what, e))?;
        self.record(regarding_pod(pod), "Evict", "Evicted", "evicted".into())
            .await;
        Ok(())
    }

    async fn create_pod_now(&self, namespace: &str, pod: Pod) -> Result<Pod, ActuateError> {
        let name = pod
            .metadata
            .name
            .clone()
            .or_else(|| pod.metadata.generate_name.clone())
            .unwrap_or_default();
        let what = format!("pod {namespace}/{name} create");
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .create(&pp, &pod)
            .await
            .map_err(|e| map_error(&what, e))?;
        if let Some(name) = created.metadata.name.as_deref() {
            self.record(
                regarding_pod(&PodRef::new(namespace, name)),
                "Create",
                "Created",
                "created".into(),
            )
            .await;
        }
        Ok(created)
    }

    async fn delete_pod_now(
        &self,
        pod: &PodRef,
        preconditions: Preconditions,
    ) -> Result<(), ActuateError> {
        let what = format!("{pod} delete");
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: preconditions.uid,
                resource_version: preconditions.resource_version,
            }),
            ..DeleteParams::default()
        };
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace)
            .delete(&pod.name, &params)
            .await
            .map_err(|e| map_error(&what, e))?;
        self.record(regarding_pod(pod), "Delete", "Deleted", "deleted".into())
            .await;
        Ok(())
    }

    async fn unschedulable_now(&self, pod: &PodRef, message: &str) -> Result<(), ActuateError> {
        let what = format!("{pod} status");
        let now = k8s_openapi::jiff::Timestamp::now();
        // A strategic merge patch merges conditions by type, as kube-scheduler's update does.
        let patch = serde_json::json!({
            "status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": now.to_string(),
            }]}
        });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        Api::<Pod>::namespaced(self.client.clone(), &pod.namespace)
            .patch_status(&pod.name, &pp, &Patch::Strategic(&patch))
            .await
            .map_err(|e| map_error(&what, e))?;
        self.write_event(
            regarding_pod(pod),
            "Scheduling",
            "FailedScheduling",
            message.to_owned(),
            "Warning",
        )
        .await;
        Ok(())
    }

    /// Writes an Event about an action done; failures are logged only (the action stands).
    async fn record(&self, regarding: ObjectReference, action: &str, reason: &str, note: String) {
        self.write_event(regarding, action, reason, note, "Normal")
            .await;
    }

    async fn write_event(
        &self,
        regarding: ObjectReference,
        action: &str,
        reason: &str,
        note: String,
        type_: &str,
    ) {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let name = regarding.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            regarding: Some(regarding),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(type_.into()),
            ..Event::default()
        };
        if let Err(e) = Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
        {
            tracing::warn!(namespace, name, action, error = %e, "could not record the Event of an action");
        }
    }
}

fn regarding_pod(pod: &PodRef) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace.clone()),
        name: Some(pod.name.clone()),
        ..ObjectReference::default()
    }
}

fn regarding_workload(workload: &WorkloadRef) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some(workload.kind.as_str().into()),
        namespace: Some(workload.namespace.clone()),
        name: Some(workload.name.clone()),
        ..ObjectReference::default()
    }
}

/// kube's error as the seam's: by HTTP status, keeping the server's message.
fn map_error(what: &str, error: kube::Error) -> ActuateError {
    let what = what.to_owned();
    let kube::Error::Api(status) = error else {
        return ActuateError::Other {
            what,
            message: error.to_string(),
        };
    };
    let message = status.message.clone();
    match status.code {
        404 => ActuateError::NotFound { what },
        409 => ActuateError::Conflict { what, message },
        403 => ActuateError::Forbidden { what, message },
        429 => ActuateError::DisruptionBudget {
            what,
            pdb: disruption_budget_name(&status),
            message,
        },
        code => ActuateError::Other {
            what,
            message: format!("HTTP {code} {}: {message}", status.reason),
        },
    }
}

/// The PodDisruptionBudget named by a 429 from the eviction API: the API server puts it in a
/// `DisruptionBudget` cause ("The disruption budget NAME needs ..."); the message is the fallback.
fn disruption_budget_name(status: &kube::core::Status) -> Option<String> {
    let causes = status.details.iter().flat_map(|d| d.causes.iter());
    let texts = causes
        .filter(|c| c.reason == "DisruptionBudget")
        .map(|c| c.message.as_str())
        .chain(std::iter::once(status.message.as_str()));
    texts.into_iter().find_map(|text| {
        let (_, rest) = text.split_once("disruption budget ")?;
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            .collect();
        let name = name.trim_end_matches('.');
        (!name.is_empty()).then(|| name.to_owned())
    })
}

impl Actuator for Kubernetes {
    fn scale<'a>(
        &'a self,
        workload: &'a WorkloadRef,
        replicas: i32,
        expected_resource_version: Option<&'a str>,
        why: &'a str,
    ) -> ActuateFuture<'a, ()> {
        Box::pin(self.scale_now(workload, replicas, expected_resource_version, why))
    }

    fn bind<'a>(&'a self, pod: &'a PodRef, node: &'a str) -> ActuateFuture<'a, ()> {
        Box::pin(self.bind_now(pod, node))
    }

    fn evict<'a>(&'a self, pod: &'a PodRef, grace: Option<Duration>) -> ActuateFuture<'a, ()> {
        Box::pin(self.evict_now(pod, grace))
    }

    fn create_pod<'a>(&'a self, namespace: &'a str, pod: Pod) -> ActuateFuture<'a, Pod> {
        Box::pin(self.create_pod_now(namespace, pod))
    }

    fn delete_pod<'a>(
        &'a self,
        pod: &'a PodRef,
        preconditions: Preconditions,
    ) -> ActuateFuture<'a, ()> {
        Box::pin(self.delete_pod_now(pod, preconditions))
    }

    fn unschedulable<'a>(&'a self, pod: &'a PodRef, message: &'a str) -> ActuateFuture<'a, ()> {
        Box::pin(self.unschedulable_now(pod, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    /// A 429 as the API server sends it (parsed from its wire form).
    fn too_many(message: &str, causes: serde_json::Value) -> kube::Error {
        let status: Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "TooManyRequests", "code": 429,
            "details": {"causes": causes},
        }))
        .expect("a Status");
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_429_names_the_budget_from_the_cause_or_the_message() {
        let from_cause = map_error(
            "pod a/b eviction",
            too_many(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                serde_json::json!([{
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently",
                }]),
            ),
        );
        assert!(
            matches!(&from_cause, ActuateError::DisruptionBudget { pdb: Some(p), .. } if p == "web-pdb"),
            "{from_cause:?}"
        );
        let from_message = map_error(
            "pod a/b eviction",
            too_many("refused by disruption budget db.v2.", serde_json::json!([])),
        );
        assert!(
            matches!(&from_message, ActuateError::DisruptionBudget { pdb: Some(p), .. } if p == "db.v2"),
            "{from_message:?}"
        );
    }

    #[test]
    fn statuses_map_to_the_seams_errors() {
        let status = |code: u16, reason: &str| {
            let mut s = Status::failure("msg", reason);
            s.code = code;
            kube::Error::Api(s.boxed())
        };
        assert_eq!(
            map_error("x", status(404, "NotFound")),
            ActuateError::NotFound { what: "x".into() }
        );
        assert!(matches!(
            map_error("x", status(409, "Conflict")),
            ActuateError::Conflict { .. }
        ));
        assert!(matches!(
            map_error("x", status(403, "Forbidden")),
            ActuateError::Forbidden { .. }
        ));
        assert!(
            matches!(map_error("x", status(500, "InternalError")), ActuateError::Other { message, .. } if message.contains("500"))
        );
    }
}
