//! The Deployment controller of the local runtime: on every change (and once a second)
//! it compares each Deployment with its pods and carries out the steps
//! `aistor_core::workload::reconcile` gives, storing each pod before it is started.

use super::{State, WorkloadError, Workloads, split};
use aistor_core::workload::{self, Phase, PodRecord, Step};
use std::time::Duration;

/// How often the controller looks even when nothing told it to.
pub const RESYNC: Duration = Duration::from_secs(1);

/// The pods of Deployment `key`, as the pure controller sees them.
pub(super) fn records(state: &State, key: &str) -> Vec<PodRecord> {
    state
        .pods
        .values()
        .filter(|p| p.owner.as_deref() == Some(key))
        .map(|p| {
            let observed = state.observed.get(&p.uid);
            PodRecord {
                name: p.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                uid: p.uid.clone(),
                template_hash: p.object["metadata"]["labels"][workload::TEMPLATE_HASH_LABEL]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                phase: observed.and_then(|o| Phase::parse(&o.pod.phase)),
                ready: observed.is_some_and(|o| {
                    o.pod
                        .conditions
                        .iter()
                        .any(|c| c.r#type == "Ready" && c.status)
                }),
                restarts: observed.map_or(0, |o| {
                    o.pod.containers.iter().map(|c| c.restart_count).sum()
                }),
                created_unix_nanos: p.created_unix_nanos,
                deleting: observed.is_some_and(|o| o.pod.terminating),
            }
        })
        .collect()
}

/// One pass over every Deployment.
pub async fn sync(w: &Workloads) -> Result<(), WorkloadError> {
    w.place_pending().await?;
    let deployments: Vec<(String, super::DeploymentEntry)> = w
        .state()
        .deployments
        .iter()
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    for (key, d) in deployments {
        let steps = {
            let state = w.state();
            workload::reconcile(&d.parsed, &records(&state, &key), &mut super::random_u64)
        };
        for step in steps {
            match step {
                Step::Create { name } => {
                    let uid_placeholder = "";
                    let object = workload::pod_for(&d.parsed, &name, uid_placeholder, &d.uid);
                    let (namespace, _) = split(&key);
                    tracing::info!(deployment = key, pod = name, "creating pod");
                    w.create_pod(&format!("{namespace}/{name}"), object).await?;
                }
                Step::Delete { name, reason, .. } => {
                    let (namespace, _) = split(&key);
                    tracing::info!(deployment = key, pod = name, reason, "deleting pod");
                    match w.delete_pod(&format!("{namespace}/{name}")).await {
                        Ok(()) | Err(WorkloadError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs the controller until the process drains.
pub async fn run(w: Workloads, mut drain: crate::process::Drain) {
    loop {
        if let Err(e) = sync(&w).await {
            tracing::warn!(error = %e, "workload controller pass failed; retrying");
        }
        tokio::select! {
            () = w.changed().notified() => {}
            () = tokio::time::sleep(RESYNC) => {}
            () = drain.signaled() => return,
        }
    }
}
