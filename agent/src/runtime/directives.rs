//! Carries out the coordinator's local-runtime directives (`RunPod`, `DeletePod`,
//! `SyncPods`, `StageCheckpoint`, `ReadLogs`, `FreezePod`) and turns the runtime's pod
//! states into the report's section. Each action ends in a `DirectiveResult` under the
//! directive's id, sent with the next report.

use super::LocalRuntime;
use super::kubelet::KubeletPods;
use super::manifest;
use super::pod::PodState;
use super::status::{ContainerState, Terminated};
use crate::clock::wall_unix_nanos;
use aistor_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One local-runtime action to carry out.
#[derive(Debug, Clone)]
pub enum Action {
    Run(pb::RunPod),
    Delete(pb::DeletePod),
    Sync(pb::SyncPods),
    Stage(pb::StageCheckpoint),
    Logs(pb::ReadLogs),
    Freeze(pb::FreezePod),
}

/// The action of a directive, if it is one of the local runtime's.
pub fn action(kind: &pb::directive::Kind) -> Option<Action> {
    match kind {
        pb::directive::Kind::RunPod(r) => Some(Action::Run(r.clone())),
        pb::directive::Kind::DeletePod(d) => Some(Action::Delete(d.clone())),
        pb::directive::Kind::SyncPods(s) => Some(Action::Sync(s.clone())),
        pb::directive::Kind::StageCheckpoint(s) => Some(Action::Stage(s.clone())),
        pb::directive::Kind::ReadLogs(r) => Some(Action::Logs(r.clone())),
        pb::directive::Kind::FreezePod(f) => Some(Action::Freeze(f.clone())),
        _ => None,
    }
}

pub fn result(id: String, outcome: Result<(), String>) -> pb::DirectiveResult {
    pb::DirectiveResult {
        id,
        error: outcome.err().unwrap_or_default(),
        finished_unix_nanos: wall_unix_nanos(),
    }
}

/// Carries out actions in arrival order; deletes run alongside (a grace period must not
/// hold up other pods), which is safe because a uid is never reused.
pub async fn serve(
    runtime: Arc<LocalRuntime>,
    actions: mpsc::Receiver<(String, Action)>,
    results: mpsc::Sender<pb::DirectiveResult>,
) {
    serve_with(runtime, None, actions, results).await;
}

/// [`serve`], with StageCheckpoint and FreezePod for a pod uid the local runtime does not
/// run handed to `kubelet` (pods the kubelet runs, found through containerd), in the
/// same arrival order.
pub async fn serve_with(
    runtime: Arc<LocalRuntime>,
    kubelet: Option<Arc<KubeletPods>>,
    mut actions: mpsc::Receiver<(String, Action)>,
    results: mpsc::Sender<pb::DirectiveResult>,
) {
    while let Some((id, action)) = actions.recv().await {
        let foreign = match &action {
            Action::Freeze(f) => Some(f.uid.as_str()),
            Action::Stage(s) => Some(s.pod_uid.as_str()),
            _ => None,
        }
        .is_some_and(|uid| !runtime.runs(uid));
        if let (true, Some(kubelet)) = (foreign, &kubelet) {
            super::kubelet::handle(kubelet, id, action, &results).await;
            continue;
        }
        match action {
            Action::Run(run) => {
                let outcome = run_pod(&runtime, &run).await;
                let _ = results.send(result(id, outcome)).await;
            }
            Action::Delete(delete) => {
                let runtime = runtime.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    // Deleting what is not here is done already: the call is idempotent.
                    let outcome = match runtime.delete(&delete.uid).await {
                        Ok(()) | Err(super::RunError::UnknownPod(_)) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = results.send(result(id, outcome)).await;
                });
            }
            Action::Sync(sync) => {
                let outcome = sync_pods(&runtime, &sync).await;
                let _ = results.send(result(id, outcome)).await;
            }
            // In arrival order, so a thaw never overtakes the freeze before it; bounded by
            // the freezer's wait (milliseconds when the kernel is quick).
            Action::Freeze(freeze) => {
                let outcome = runtime
                    .freeze(&freeze.uid, freeze.frozen)
                    .await
                    .map_err(|e| e.to_string());
                let _ = results.send(result(id, outcome)).await;
            }
            Action::Logs(req) => {
                let runtime = runtime.clone();
                // File reads off the async threads; the answer rides with a report.
                let _ = tokio::task::spawn_blocking(move || {
                    let chunk = runtime.read_logs(&req);
                    runtime.answer_logs(chunk);
                })
                .await;
            }
            // A copy can take long: alongside, its progress in every report meanwhile.
            Action::Stage(stage) => {
                let runtime = runtime.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    let outcome = runtime.stage_checkpoint(&stage).await;
                    let _ = results.send(result(id, outcome)).await;
                });
            }
        }
    }
}

async fn run_pod(runtime: &LocalRuntime, run: &pb::RunPod) -> Result<(), String> {
    let pod = manifest::parse(&run.pod_json).map_err(|e| format!("pod manifest: {e}"))?;
    runtime.run(pod).await.map(drop).map_err(|e| e.to_string())
}

/// Starts every listed pod and removes everything else. Problems with single pods are
/// collected, so one bad manifest does not keep the others from running.
async fn sync_pods(runtime: &LocalRuntime, sync: &pb::SyncPods) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut desired = Vec::new();
    for (n, run) in sync.pods.iter().enumerate() {
        match manifest::parse(&run.pod_json) {
            Ok(pod) => {
                let name = format!("{}/{}", pod.namespace, pod.name);
                if let Some(uid) = &pod.uid {
                    desired.push(uid.clone());
                }
                if let Err(e) = runtime.run(pod).await {
                    problems.push(format!("{name}: {e}"));
                }
            }
            Err(e) => problems.push(format!("pods[{n}]: {e}")),
        }
    }
    if let Err(e) = runtime.reconcile(&desired).await {
        problems.push(format!("reconcile: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The report's local-runtime section.
pub fn status(runtime: &LocalRuntime) -> pb::LocalRuntimeStatus {
    pb::LocalRuntimeStatus {
        pods: runtime.states().iter().map(to_proto).collect(),
        checkpoints: runtime.checkpoints().statuses(),
        criu: runtime.checkpoints().criu(),
        logs: runtime.take_logs(),
    }
}

fn terminated(t: &Terminated) -> pb::ContainerTerminated {
    pb::ContainerTerminated {
        exit_code: t.exit_code,
        reason: t.reason.clone(),
        message: t.message.clone(),
        started_unix_nanos: t.started_at,
        finished_unix_nanos: t.finished_at,
    }
}

pub fn to_proto(state: &PodState) -> pb::LocalPod {
    use pb::local_container::State;
    pb::LocalPod {
        uid: state.uid.clone(),
        namespace: state.namespace.clone(),
        name: state.name.clone(),
        phase: state.phase.as_str().to_owned(),
        conditions: state
            .conditions
            .iter()
            .map(|c| pb::PodCondition {
                r#type: c.kind.to_owned(),
                status: c.status,
                reason: c.reason.clone(),
            })
            .collect(),
        containers: state
            .containers
            .iter()
            .map(|c| pb::LocalContainer {
                name: c.name.clone(),
                image: c.image.clone(),
                container_id: c.container_id.clone().unwrap_or_default(),
                state: Some(match &c.state {
                    ContainerState::Waiting { reason, message } => {
                        State::Waiting(pb::ContainerWaiting {
                            reason: reason.clone(),
                            message: message.clone(),
                        })
                    }
                    ContainerState::Running { started_at } => {
                        State::Running(pb::ContainerRunning {
                            started_unix_nanos: *started_at,
                        })
                    }
                    ContainerState::Terminated(t) => State::Terminated(terminated(t)),
                }),
                last_terminated: c.last_terminated.as_ref().map(terminated),
                restart_count: c.restart_count,
                ready: c.ready,
            })
            .collect(),
        qos_class: state.qos.as_str().to_owned(),
        cgroup_path: state.cgroup_path.clone(),
        terminating: state.terminating,
        message: state.message.clone(),
        frozen: state.frozen,
    }
}
