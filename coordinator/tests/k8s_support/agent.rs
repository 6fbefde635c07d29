//! An agent simulated over the real gRPC stream, for tests on Kubernetes where no kubelet
//! runs the pods: it reports the pods it is told its node runs, stages the checkpoints it
//! is asked for (reported in `NodeReport.checkpoints` as a real agent reports kubelet pods'
//! checkpoints: copying, then staged), freezes and thaws pods (`Pod.frozen`) and answers
//! measurement runs at once with the figures it is given (they are the test's, not
//! measured). It keeps every directive it received, so a test can check what the
//! coordinator asked.

use aistor_proto::v1 as pb;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where staged checkpoints are said to be (the agent's `--checkpoint-dir`).
pub const CHECKPOINT_DIR: &str = "/var/lib/aistor/checkpoints";

/// A pod the agent reports: namespace, name, uid.
pub type Reported = (String, String, String);

#[derive(Debug, Default)]
pub struct State {
    pub pods: Vec<Reported>,
    pub frozen: BTreeSet<String>,
    pub checkpoints: Vec<pb::CheckpointStatus>,
    pub results: Vec<pb::DirectiveResult>,
    /// Every directive but acks, in order.
    pub directives: Vec<pb::Directive>,
    /// Refuse FreezePod with this error (a node whose freezer is not writable).
    pub refuse_freeze: Option<String>,
    /// What a measurement run of any pod here gives: CPU millicores, working set bytes.
    pub usage: Option<(f64, u64)>,
    /// Results for the next report.
    pub measurements: Vec<pb::MeasurementResult>,
    /// Keep measurement results in `held` instead of reporting them (a run a test sees
    /// running; it moves them to `measurements` to let them go).
    pub hold_results: bool,
    pub held: Vec<pb::MeasurementResult>,
}

pub struct SimulatedAgent {
    pub node: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

impl SimulatedAgent {
    /// Connects to the coordinator at `grpc` as `node` with `token` and reports every 200 ms
    /// (reconnecting when the stream ends, as after a coordinator restart).
    pub fn start(grpc: SocketAddr, node: &str, token: String) -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let task = tokio::spawn(run(grpc, node.to_owned(), token, state.clone()));
        Self {
            node: node.to_owned(),
            state,
            task,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports `pods` from now on.
    pub fn set_pods(&self, pods: Vec<Reported>) {
        self.state().pods = pods;
    }

    pub fn directives(&self) -> Vec<pb::Directive> {
        self.state().directives.clone()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for SimulatedAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn report(node: &str, seq: u64, state: &mut State) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: node.to_owned(),
            boot_id: format!("boot-{node}"),
            cgroup_mode: pb::CgroupMode::V2 as i32,
            logical_cpus: 8,
            cpu_capacity_millicores: Some(8000),
            memory_total_bytes: Some(32 << 30),
            agent_version: "0.1.0".into(),
            ..Default::default()
        }),
        agent_instance: format!("simulated-{node}"),
        seq,
        wall_time_unix_nanos: now_nanos(),
        monotonic_nanos: seq,
        collect_interval_nanos: 200_000_000,
        pods: state
            .pods
            .iter()
            .map(|(namespace, name, uid)| pb::Pod {
                uid: uid.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                qos_class: "burstable".into(),
                cgroup_path: format!("kubepods/burstable/pod{uid}"),
                discovered_by: "containerd".into(),
                frozen: state.frozen.contains(uid),
                ..Default::default()
            })
            .collect(),
        checkpoints: state.checkpoints.clone(),
        measurements: std::mem::take(&mut state.measurements),
        directive_results: std::mem::take(&mut state.results),
        ..Default::default()
    }
}

/// Carries out one directive as an agent would for kubelet pods.
fn carry_out(state: &mut State, d: pb::Directive) {
    let error = match &d.kind {
        Some(pb::directive::Kind::StageCheckpoint(s)) => {
            let pod = state
                .pods
                .iter()
                .find(|(_, _, uid)| *uid == s.pod_uid)
                .cloned();
            match pod {
                None => format!("no pod with uid {} on this node", s.pod_uid),
                Some((namespace, name, uid)) => {
                    for container in &s.containers {
                        state.checkpoints.push(pb::CheckpointStatus {
                            checkpoint_id: s.checkpoint_id.clone(),
                            pod_uid: uid.clone(),
                            namespace: namespace.clone(),
                            pod: name.clone(),
                            container: container.clone(),
                            state: "staged".into(),
                            files: 2,
                            bytes: 4096,
                            duration_nanos: 1_000_000,
                            dir: format!(
                                "{CHECKPOINT_DIR}/{namespace}/{name}/{}/{container}",
                                s.checkpoint_id
                            ),
                            hook: "none".into(),
                            ..Default::default()
                        });
                    }
                    // A real agent keeps the last 64.
                    let excess = state.checkpoints.len().saturating_sub(64);
                    state.checkpoints.drain(..excess);
                    String::new()
                }
            }
        }
        Some(pb::directive::Kind::Measure(run)) => {
            let pod = match run.target.as_ref().and_then(|t| t.target.as_ref()) {
                Some(pb::measure_target::Target::Pod(p)) => p.clone(),
                _ => pb::PodName::default(),
            };
            let figure = |value: f64| pb::FigureSummary {
                count: run.samples,
                trimmed_mean: value,
                median: value,
                min: value,
                max: value,
                ..Default::default()
            };
            let now = now_nanos();
            let (error, targets) = match state.usage {
                None => ("no usage to report".to_owned(), Vec::new()),
                Some((millicores, bytes)) => (
                    String::new(),
                    vec![pb::MeasuredCgroup {
                        kind: "pod".into(),
                        name: pod.name.clone(),
                        namespace: pod.namespace.clone(),
                        summary: Some(pb::MeasureSummary {
                            cpu_millicores: Some(figure(millicores)),
                            memory_working_set_bytes: Some(figure(bytes as f64)),
                            ..Default::default()
                        }),
                        samples_taken: run.samples,
                        ..Default::default()
                    }],
                ),
            };
            let queue = if state.hold_results {
                &mut state.held
            } else {
                &mut state.measurements
            };
            queue.push(pb::MeasurementResult {
                id: run.id.clone(),
                run: Some(run.clone()),
                started_unix_nanos: now,
                finished_unix_nanos: now,
                targets,
                error,
                ..Default::default()
            });
            String::new()
        }
        Some(pb::directive::Kind::FreezePod(f)) => match &state.refuse_freeze {
            Some(why) => why.clone(),
            None => {
                if f.frozen {
                    state.frozen.insert(f.uid.clone());
                } else {
                    state.frozen.remove(&f.uid);
                }
                String::new()
            }
        },
        _ => String::new(),
    };
    if !d.id.is_empty() {
        state.results.push(pb::DirectiveResult {
            id: d.id.clone(),
            error,
            finished_unix_nanos: now_nanos(),
        });
    }
    state.directives.push(d);
}

async fn run(grpc: SocketAddr, node: String, token: String, state: Arc<Mutex<State>>) {
    let mut seq = 0u64;
    loop {
        let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::NodeReport>(16);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        seq += 1;
        let first = report(
            &node,
            seq,
            &mut state.lock().unwrap_or_else(|e| e.into_inner()),
        );
        if tx.send(first).await.is_err() {
            continue;
        }
        let Ok(response) = client.connect(request).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut directives = response.into_inner();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    seq += 1;
                    let next = report(&node, seq, &mut state.lock().unwrap_or_else(|e| e.into_inner()));
                    if tx.send(next).await.is_err() {
                        break;
                    }
                }
                message = directives.message() => match message {
                    Ok(Some(d)) if matches!(d.kind, Some(pb::directive::Kind::Ack(_))) => {}
                    Ok(Some(d)) => carry_out(&mut state.lock().unwrap_or_else(|e| e.into_inner()), d),
                    // The stream ended (a restart, a lost leadership): connect again.
                    _ => break,
                },
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
