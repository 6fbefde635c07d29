//! What an autoscaler scales: read a workload's replicas and pods, write its
//! replicas. One seam, two shells: the local runtime's Deployments here, the
//! `scale` subresource on Kubernetes.

use crate::workloads::{WorkloadError, Workloads};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

/// A workload as read before a decision.
#[derive(Debug, Clone)]
pub struct TargetRead {
    /// `spec.replicas`.
    pub replicas: u32,
    /// The pods its selector matches, with the node each is assigned to.
    pub pods: Vec<(Pod, Option<String>)>,
    /// The resourceVersion the count was read at: a write names it, so a change
    /// made in between is not overwritten.
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The workload does not exist (yet): the autoscaler waits for it.
    #[error("{0}")]
    NotFound(String),
    /// This shell cannot scale that kind of workload.
    #[error("{0}")]
    Unsupported(String),
    /// Someone else (a HorizontalPodAutoscaler) scales it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Failed(String),
}

pub trait ScaleTargets: Send + Sync + std::fmt::Debug {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<TargetRead, TargetError>>;

    /// Sets the count decided from `read` (which the write is guarded by); `why`
    /// is the decision's reason, for the event that records it.
    fn scale<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
        read: &'a TargetRead,
        replicas: u32,
        why: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>>;
}

/// The local runtime: Deployments only (it has no StatefulSets or ReplicaSets).
#[derive(Debug, Clone)]
pub struct LocalTargets(pub Workloads);

fn deployment_only(kind: &str) -> Result<(), TargetError> {
    if kind == "Deployment" {
        Ok(())
    } else {
        Err(TargetError::Unsupported(format!(
            "the local runtime runs Deployments only; a {kind} can be scaled on Kubernetes"
        )))
    }
}

fn target_error(e: WorkloadError) -> TargetError {
    match e {
        e @ WorkloadError::NotFound { .. } => TargetError::NotFound(e.to_string()),
        e => TargetError::Failed(e.to_string()),
    }
}

impl ScaleTargets for LocalTargets {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<TargetRead, TargetError>> {
        Box::pin(async move {
            deployment_only(kind)?;
            let read = self.0.read_scale(namespace, name).map_err(target_error)?;
            let pods = read
                .pods
                .into_iter()
                .map(|(object, node)| {
                    serde_json::from_value::<Pod>(object)
                        .map(|p| (p, node))
                        .map_err(|e| TargetError::Failed(format!("a stored pod is not a Pod: {e}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(TargetRead {
                replicas: read.replicas,
                pods,
                // One process owns the local runtime's Deployments: no concurrent writer.
                version: None,
            })
        })
    }

    fn scale<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
        _read: &'a TargetRead,
        replicas: u32,
        _why: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            deployment_only(kind)?;
            self.0
                .scale(namespace, name, replicas)
                .await
                .map(|_| ())
                .map_err(target_error)
        })
    }
}
