//! The actuation seam: everything the decision loops do to workloads and pods goes through
//! [`Actuator`], so the loops are tested against [`Recording`] and run against Kubernetes
//! (`k8s::actuate::Kubernetes`) or the local runtime without knowing which.
//!
//! Errors are this module's own: no kube or HTTP type crosses the seam, so a loop decides on
//! "conflict, re-read and retry" or "the budget says no, try later" without parsing messages.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// The controllers whose replica count the actuator changes (all through the `scale` subresource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    ReplicaSet,
}

impl WorkloadKind {
    /// The kind as Kubernetes spells it (`Deployment`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
        }
    }

    /// The kind from its Kubernetes name, case-insensitively (the original REST API took
    /// `deployment` as well as `Deployment`).
    pub fn parse(kind: &str) -> Option<Self> {
        [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::ReplicaSet,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(kind))
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scalable workload: `Deployment ns/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {}/{}", self.namespace, self.name)
    }
}

/// Conditions a delete must meet, so a pod that was replaced under the same name (new uid) or
/// changed since it was read is not deleted by mistake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Why an action was not done. `what` names the object acted on in every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActuateError {
    #[error("{what}: not found")]
    NotFound { what: String },
    /// A stale resourceVersion or a failed precondition: re-read and decide again.
    #[error("{what}: conflict: {message}")]
    Conflict { what: String, message: String },
    /// An eviction the pod's disruption budget does not allow now (HTTP 429); retry later.
    #[error("{what}: refused by disruption budget {}: {message}", pdb.as_deref().unwrap_or("(unnamed)"))]
    DisruptionBudget {
        what: String,
        pdb: Option<String>,
        message: String,
    },
    /// The coordinator lacks the permission (RBAC out of date with `k8s::API_CALLS`).
    #[error("{what}: forbidden: {message}")]
    Forbidden { what: String, message: String },
    #[error("{what}: {message}")]
    Other { what: String, message: String },
}

/// A boxed future, so that [`Actuator`] is object-safe (`Arc<dyn Actuator>`).
pub type ActuateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ActuateError>> + Send + 'a>>;

/// The actions decisions lead to. Every action is idempotent or guarded (resourceVersion,
/// preconditions), so a loop that resumes after a crash or a leader change may repeat it safely.
pub trait Actuator: Send + Sync {
    /// Sets the replica count through the `scale` subresource; with `expected_resource_version`
    /// the write is refused ([`ActuateError::Conflict`]) when the workload changed since it was read.
    /// `why` goes into the Event that records the change (empty: none given).
    fn scale<'a>(
        &'a self,
        workload: &'a WorkloadRef,
        replicas: i32,
        expected_resource_version: Option<&'a str>,
        why: &'a str,
    ) -> ActuateFuture<'a, ()>;

    /// Binds an unscheduled pod to a node (what a scheduler does).
    fn bind<'a>(&'a self, pod: &'a PodRef, node: &'a str) -> ActuateFuture<'a, ()>;

    /// Evicts a pod through the eviction API, which honours PodDisruptionBudgets; `grace`
    /// overrides the pod's termination grace period.
    fn evict<'a>(&'a self, pod: &'a PodRef, grace: Option<Duration>) -> ActuateFuture<'a, ()>;

    /// Creates a pod; returns it as stored (uid, resourceVersion).
    fn create_pod<'a>(&'a self, namespace: &'a str, pod: Pod) -> ActuateFuture<'a, Pod>;

    /// Deletes a pod if it still meets `preconditions`.
    fn delete_pod<'a>(
        &'a self,
        pod: &'a PodRef,
        preconditions: Preconditions,
    ) -> ActuateFuture<'a, ()>;

    /// Says that no node can take a pending pod, and why (what kube-scheduler does: the
    /// pod's `PodScheduled` condition is `False`, reason `Unschedulable`, and a
    /// `FailedScheduling` Warning event carries `message`).
    fn unschedulable<'a>(&'a self, pod: &'a PodRef, message: &'a str) -> ActuateFuture<'a, ()>;
}

/// One call made to an [`Actuator`], as [`Recording`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Scale {
        workload: WorkloadRef,
        replicas: i32,
        expected_resource_version: Option<String>,
        why: String,
    },
    Bind {
        pod: PodRef,
        node: String,
    },
    Evict {
        pod: PodRef,
        grace: Option<Duration>,
    },
    CreatePod {
        namespace: String,
        pod: Box<Pod>,
    },
    DeletePod {
        pod: PodRef,
        preconditions: Preconditions,
    },
    Unschedulable {
        pod: PodRef,
        message: String,
    },
}

/// Which action a scripted failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Scale,
    Bind,
    Evict,
    CreatePod,
    DeletePod,
    Unschedulable,
}

impl Call {
    pub fn kind(&self) -> CallKind {
        match self {
            Call::Scale { .. } => CallKind::Scale,
            Call::Bind { .. } => CallKind::Bind,
            Call::Evict { .. } => CallKind::Evict,
            Call::CreatePod { .. } => CallKind::CreatePod,
            Call::DeletePod { .. } => CallKind::DeletePod,
            Call::Unschedulable { .. } => CallKind::Unschedulable,
        }
    }
}

#[derive(Debug, Default)]
struct Recorded {
    calls: Vec<Call>,
    failures: VecDeque<(CallKind, ActuateError)>,
}

/// An [`Actuator`] that does nothing but keep every call, in order, for tests of decision loops.
/// Calls succeed unless a failure was scripted with [`Recording::fail_next`]; a failed call is
/// recorded too (the loop did attempt it).
#[derive(Debug, Clone, Default)]
pub struct Recording {
    inner: Arc<Mutex<Recorded>>,
}

impl Recording {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets the calls so far (scripted failures stay).
    pub fn clear(&self) {
        self.lock().calls.clear();
    }

    /// The next call of `kind` fails with `error`; several scripted failures apply in order.
    pub fn fail_next(&self, kind: CallKind, error: ActuateError) {
        self.lock().failures.push_back((kind, error));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A test that panicked while holding the lock leaves plain data behind; keep using it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: Call) -> Result<(), ActuateError> {
        let mut recorded = self.lock();
        let kind = call.kind();
        recorded.calls.push(call);
        match recorded.failures.iter().position(|(k, _)| *k == kind) {
            Some(i) => Err(recorded
                .failures
                .remove(i)
                .map(|(_, error)| error)
                .expect("the position was just found")),
            None => Ok(()),
        }
    }
}

impl Actuator for Recording {
    fn scale<'a>(
        &'a self,
        workload: &'a WorkloadRef,
        replicas: i32,
        expected_resource_version: Option<&'a str>,
        why: &'a str,
    ) -> ActuateFuture<'a, ()> {
        let result = self.record(Call::Scale {
            workload: workload.clone(),
            replicas,
            expected_resource_version: expected_resource_version.map(str::to_owned),
            why: why.to_owned(),
        });
        Box::pin(std::future::ready(result))
    }

    fn bind<'a>(&'a self, pod: &'a PodRef, node: &'a str) -> ActuateFuture<'a, ()> {
        let result = self.record(Call::Bind {
            pod: pod.clone(),
            node: node.to_owned(),
        });
        Box::pin(std::future::ready(result))
    }

    fn evict<'a>(&'a self, pod: &'a PodRef, grace: Option<Duration>) -> ActuateFuture<'a, ()> {
        let result = self.record(Call::Evict {
            pod: pod.clone(),
            grace,
        });
        Box::pin(std::future::ready(result))
    }

    fn create_pod<'a>(&'a self, namespace: &'a str, pod: Pod) -> ActuateFuture<'a, Pod> {
        let result = self
            .record(Call::CreatePod {
                namespace: namespace.to_owned(),
                pod: Box::new(pod.clone()),
            })
            .map(|()| pod);
        Box::pin(std::future::ready(result))
    }

    fn delete_pod<'a>(
        &'a self,
        pod: &'a PodRef,
        preconditions: Preconditions,
    ) -> ActuateFuture<'a, ()> {
        let result = self.record(Call::DeletePod {
            pod: pod.clone(),
            preconditions,
        });
        Box::pin(std::future::ready(result))
    }

    fn unschedulable<'a>(&'a self, pod: &'a PodRef, message: &'a str) -> ActuateFuture<'a, ()> {
        let result = self.record(Call::Unschedulable {
            pod: pod.clone(),
            message: message.to_owned(),
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "ml".into(),
            name: "web".into(),
        }
    }

    #[tokio::test]
    async fn recording_keeps_calls_in_order_and_fails_the_scripted_kind_once() {
        let recording = Recording::new();
        let actuator: Arc<dyn Actuator> = Arc::new(recording.clone());
        let pod = PodRef::new("ml", "trainer-0");
        let busy = ActuateError::DisruptionBudget {
            what: pod.to_string(),
            pdb: Some("trainers".into()),
            message: "needs 1 healthy pod".into(),
        };
        recording.fail_next(CallKind::Evict, busy.clone());

        actuator
            .scale(&web(), 3, Some("41"), "cpu above target")
            .await
            .unwrap();
        assert_eq!(actuator.evict(&pod, None).await, Err(busy));
        actuator
            .evict(&pod, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        actuator.bind(&pod, "gpu-1").await.unwrap();

        assert_eq!(
            recording.calls(),
            vec![
                Call::Scale {
                    workload: web(),
                    replicas: 3,
                    expected_resource_version: Some("41".into()),
                    why: "cpu above target".into(),
                },
                Call::Evict {
                    pod: pod.clone(),
                    grace: None
                },
                Call::Evict {
                    pod: pod.clone(),
                    grace: Some(Duration::from_secs(5))
                },
                Call::Bind {
                    pod,
                    node: "gpu-1".into()
                },
            ]
        );
    }

    #[test]
    fn workload_kinds_parse_case_insensitively() {
        assert_eq!(
            WorkloadKind::parse("statefulset"),
            Some(WorkloadKind::StatefulSet)
        );
        assert_eq!(
            WorkloadKind::parse("Deployment"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::parse("DaemonSet"), None);
    }
}
