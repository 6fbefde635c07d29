//! Autoscaling targets on Kubernetes: the count is read from and written to the
//! workload's `scale` subresource (never the whole object), the write guarded by
//! the resourceVersion read; the pods come from the watch cache by the scale's
//! selector. A workload a HorizontalPodAutoscaler already targets is left alone.

use super::target::{ScaleTargets, TargetError, TargetRead};
use crate::actuate::{ActuateError, Actuator, WorkloadKind, WorkloadRef};
use crate::k8s::Cache;
use aistor_core::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use kube::{Api, Client};
use std::sync::Arc;

/// Writes retried after a conflict that did not change the count (someone else
/// touched another field of the workload in between).
const CONFLICT_RETRIES: usize = 3;

#[derive(Clone)]
pub struct KubernetesTargets {
    client: Client,
    cache: Cache,
    actuator: Arc<dyn Actuator>,
}

impl std::fmt::Debug for KubernetesTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesTargets").finish_non_exhaustive()
    }
}

fn api_error(what: &str, e: kube::Error) -> TargetError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => TargetError::NotFound(format!("{what} not found")),
        _ => TargetError::Failed(format!("{what}: {e}")),
    }
}

impl KubernetesTargets {
    pub fn new(client: Client, cache: Cache, actuator: Arc<dyn Actuator>) -> Self {
        Self {
            client,
            cache,
            actuator,
        }
    }

    async fn get_scale(&self, workload: &WorkloadRef) -> Result<Scale, TargetError> {
        let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
        let c = self.client.clone();
        let got = match workload.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns).get_scale(name).await,
            WorkloadKind::StatefulSet => {
                Api::<StatefulSet>::namespaced(c, ns).get_scale(name).await
            }
            WorkloadKind::ReplicaSet => Api::<ReplicaSet>::namespaced(c, ns).get_scale(name).await,
        };
        got.map_err(|e| {
            api_error(
                &format!(
                    "{} \"{ns}/{name}\"",
                    workload.kind.as_str().to_ascii_lowercase()
                ),
                e,
            )
        })
    }

    /// The HorizontalPodAutoscaler that already scales `workload`, if one does.
    async fn hpa_for(&self, workload: &WorkloadRef) -> Result<Option<String>, TargetError> {
        let list =
            Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), &workload.namespace)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    TargetError::Failed(format!(
                        "cannot list HorizontalPodAutoscalers in {}: {e}",
                        workload.namespace
                    ))
                })?;
        Ok(list
            .items
            .into_iter()
            .find(|h| {
                let target = &h.spec.scale_target_ref;
                target.kind == workload.kind.as_str() && target.name == workload.name
            })
            .map(|h| h.metadata.name.unwrap_or_default()))
    }
}

fn workload(namespace: &str, kind: &str, name: &str) -> Result<WorkloadRef, TargetError> {
    let kind = WorkloadKind::parse(kind).ok_or_else(|| {
        TargetError::Unsupported(format!(
            "{kind} cannot be scaled (Deployment, StatefulSet or ReplicaSet)"
        ))
    })?;
    Ok(WorkloadRef {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

impl ScaleTargets for KubernetesTargets {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<TargetRead, TargetError>> {
        Box::pin(async move {
            let w = workload(namespace, kind, name)?;
            if let Some(hpa) = self.hpa_for(&w).await? {
                return Err(TargetError::Conflict(format!(
                    "HorizontalPodAutoscaler {namespace}/{hpa} already scales {w}; \
                     aistor does not act on it while it does"
                )));
            }
            let scale = self.get_scale(&w).await?;
            let selector_text = scale
                .status
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            // An empty selector would match every pod of the namespace: none instead.
            let selector =
                if selector_text.is_empty() {
                    None
                } else {
                    Some(LabelSelector::parse(&selector_text).map_err(|e| {
                        TargetError::Failed(format!("{w}: its scale's selector: {e}"))
                    })?)
                };
            let pods = self
                .cache
                .pods()
                .state()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
                .filter(|p| {
                    selector.as_ref().is_some_and(|s| {
                        let labels = p.metadata.labels.as_ref();
                        s.matches(
                            labels
                                .into_iter()
                                .flatten()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        )
                    })
                })
                .map(|p| {
                    let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                    ((**p).clone(), node)
                })
                .collect();
            Ok(TargetRead {
                replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32,
                pods,
                version: scale.metadata.resource_version,
            })
        })
    }

    fn scale<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
        read: &'a TargetRead,
        replicas: u32,
        why: &'a str,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let w = workload(namespace, kind, name)?;
            let to = i32::try_from(replicas).unwrap_or(i32::MAX);
            let mut version = read.version.clone();
            for _ in 0..=CONFLICT_RETRIES {
                match self.actuator.scale(&w, to, version.as_deref(), why).await {
                    Ok(()) => return Ok(()),
                    Err(ActuateError::Conflict { .. }) => {
                        // Re-read: retry only while the count is what the decision was made from.
                        let now = self.get_scale(&w).await?;
                        let current = now.spec.and_then(|s| s.replicas).unwrap_or(0);
                        if current != read.replicas as i32 {
                            return Err(TargetError::Conflict(format!(
                                "{w} was scaled to {current} by someone else since it was read \
                                 at {}; deciding again next sync",
                                read.replicas
                            )));
                        }
                        version = now.metadata.resource_version;
                    }
                    Err(ActuateError::NotFound { what }) => {
                        return Err(TargetError::NotFound(format!("{what}: not found")));
                    }
                    Err(e) => return Err(TargetError::Failed(e.to_string())),
                }
            }
            Err(TargetError::Conflict(format!(
                "{w}: {} conflicting writes in a row; deciding again next sync",
                CONFLICT_RETRIES + 1
            )))
        })
    }
}
