//! What a pod's spec and status say of its containers (from the Kubernetes API, or
//! the local runtime), joined into the measured model by pod uid and container name.

use super::{Container, ContainerState, Missing, Pod, Requests, Usage};

/// One container as its pod's spec and status describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub requests: Requests,
    pub restart_count: Option<u32>,
    /// The state the pod's status reports; absent when it reports none.
    pub state: Option<ContainerState>,
}

/// The containers of one pod's spec, in spec order (init containers are not here).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodSpec {
    pub containers: Vec<ContainerSpec>,
    /// The pod's labels (what label selectors match).
    pub labels: Vec<(String, String)>,
}

/// Where ingest finds a pod's spec by uid (the Kubernetes shell's index, the local
/// runtime's pods). Joining in place (with [`join_spec`]) keeps the spec where it is:
/// no copy per pod per report.
pub trait PodSpecs: Send + Sync + std::fmt::Debug {
    /// Joins `pod` with its spec, when there is one for its uid.
    fn join(&self, pod: &mut Pod);
}

/// Why a container the spec names has no figures.
pub const NOT_RUNNING: &str = "the container has no cgroup on its node (not started, or ended)";

/// Joins `spec` into `pod`: every measured container gains its requests and restart
/// count, and the status's state where it says more than the agent (an exit code, a
/// waiting reason); a container the spec names but the agent did not find (waiting,
/// or completed and gone) is added without figures, so a pod's containers are all
/// there for decisions that read their states.
pub fn join_spec(pod: &mut Pod, spec: &PodSpec) {
    pod.labels = spec
        .labels
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
        .collect();
    let mut containers: Vec<Container> = std::mem::take(&mut pod.containers).into_vec();
    for s in &spec.containers {
        match containers.iter_mut().find(|c| *c.name == *s.name) {
            Some(c) => {
                c.requests = Some(s.requests);
                c.restart_count = s.restart_count;
                if let Some(state) = s.state.as_ref().filter(|st| says_more(&c.state, st)) {
                    c.state = state.clone();
                }
            }
            None => containers.push(Container {
                id: "".into(),
                name: s.name.as_str().into(),
                image: "".into(),
                state: s.state.clone().unwrap_or(ContainerState::Unknown),
                restart_count: s.restart_count,
                requests: Some(s.requests),
                usage: Usage::new(
                    Default::default(),
                    ["cpu", "memory", "io", "pids_current"]
                        .into_iter()
                        .map(|f| Missing::new(f, NOT_RUNNING))
                        .collect(),
                ),
                gpus: Box::new([]),
            }),
        }
    }
    pod.containers = containers.into_boxed_slice();
}

/// Whether the API's `state` tells more than what the agent saw (`seen`): the agent
/// sees a running or paused task exactly, but not an exit code or a waiting reason.
fn says_more(seen: &ContainerState, state: &ContainerState) -> bool {
    matches!(
        (seen, state),
        (ContainerState::Unknown, _)
            | (
                ContainerState::Terminated {
                    exit_code: None,
                    ..
                },
                ContainerState::Terminated {
                    exit_code: Some(_),
                    ..
                },
            )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Figure;

    use crate::model::fixtures::{container, pod};

    fn measured(name: &str, state: ContainerState) -> Container {
        container(name, None, state)
    }

    fn spec(name: &str, cpu: f64, restarts: u32, state: Option<ContainerState>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            requests: Requests {
                cpu_millicores: Some(cpu),
                memory_bytes: Some(1 << 20),
            },
            restart_count: Some(restarts),
            state,
        }
    }

    #[test]
    fn measured_containers_gain_requests_restarts_and_exit_codes() {
        let stopped = ContainerState::Terminated {
            exit_code: None,
            reason: "stopped".into(),
        };
        let mut p = pod(vec![
            measured("trainer", ContainerState::Running),
            measured("prep", stopped),
            measured("odd", ContainerState::Unknown),
        ]);
        let exited = ContainerState::Terminated {
            exit_code: Some(0),
            reason: "Completed".into(),
        };
        join_spec(
            &mut p,
            &PodSpec {
                containers: vec![
                    // The API may lag the agent: a running task stays running.
                    spec(
                        "trainer",
                        1500.0,
                        2,
                        Some(ContainerState::Waiting { reason: "x".into() }),
                    ),
                    spec("prep", 200.0, 0, Some(exited.clone())),
                    spec("odd", 100.0, 1, Some(ContainerState::Running)),
                ],
                labels: Vec::new(),
            },
        );
        let c = &p.containers;
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].state, ContainerState::Running);
        assert_eq!(c[0].restart_count, Some(2));
        assert_eq!(c[0].requests.unwrap().cpu_millicores, Some(1500.0));
        assert_eq!(c[1].state, exited);
        assert_eq!(c[2].state, ContainerState::Running);
        assert_eq!(p.cpu_request_millicores(), Figure::Measured(1800.0));
    }

    #[test]
    fn containers_the_agent_did_not_find_are_added_without_figures() {
        let mut p = pod(vec![measured("trainer", ContainerState::Running)]);
        join_spec(
            &mut p,
            &PodSpec {
                containers: vec![
                    spec("trainer", 1000.0, 0, None),
                    spec(
                        "loader",
                        500.0,
                        0,
                        Some(ContainerState::Waiting {
                            reason: "ContainerCreating".into(),
                        }),
                    ),
                    spec("done", 100.0, 0, None),
                ],
                labels: vec![("app".into(), "train".into())],
            },
        );
        let names: Vec<&str> = p.containers.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["trainer", "loader", "done"]);
        let loader = &p.containers[1];
        assert_eq!(
            loader.state,
            ContainerState::Waiting {
                reason: "ContainerCreating".into()
            }
        );
        assert_eq!(loader.usage.cpu_millicores(), Figure::Absent(NOT_RUNNING));
        assert_eq!(
            loader.usage.memory_working_set_bytes(),
            Figure::Absent(NOT_RUNNING)
        );
        assert_eq!(p.containers[2].state, ContainerState::Unknown);
        assert_eq!(p.cpu_request_millicores(), Figure::Measured(1600.0));
        assert_eq!(&*p.labels, [("app".into(), "train".into())]);
        // A measured container the spec does not name keeps no requests: the pod's
        // total is then absent, as the HPA treats it.
        let mut p = pod(vec![measured("sidecar", ContainerState::Running)]);
        join_spec(&mut p, &PodSpec::default());
        assert_eq!(p.containers[0].requests, None);
        assert!(p.cpu_request_millicores().measured().is_none());
    }
}
