//! Migration planning: what moving a pod means for each of
//! its containers, and how it moves. Pure: the pod as Kubernetes describes it, the
//! access modes of its claims, and whether a checkpoint was staged go in; a plan
//! (or the reason there is nothing to move) comes out.
//!
//! - A running container is re-created, restored from its checkpoint when one was
//!   staged (else it starts cold, and the plan says so).
//! - A waiting (never started) container is re-created.
//! - A container that terminated with exit 0 is not re-run: its results stay on its
//!   volumes (`completed`, `should_migrate: false`).
//! - One that terminated non-zero is re-created only if the restart policy would
//!   restart it (`Always`, `OnFailure`); under `Never` it stays failed.
//! - Init containers that completed are not re-run.
//! - A ReadWriteOnce (or ReadWriteOncePod) claim cannot be mounted on two nodes at
//!   once: such a pod moves break-before-make (checkpoint, delete the source, wait
//!   for the volume to detach, create the target); any other pod make-before-break
//!   (checkpoint, freeze the source, start the target, delete the source once the
//!   target is Ready, thaw the source if the target fails).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What the pod's container was doing, as its status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Waiting,
    Running,
    Terminated { exit_code: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Kubernetes' default is `Always`.
    pub fn parse(policy: Option<&str>) -> Self {
        match policy {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// One container of the pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInput {
    pub name: String,
    pub init: bool,
    pub state: ContainerState,
    pub restart_count: u32,
}

/// The pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub restart_policy: RestartPolicy,
    /// Init containers first, in order, then the regular ones.
    pub containers: Vec<ContainerInput>,
    /// Claims the pod mounts that may be mounted by one node only (ReadWriteOnce,
    /// ReadWriteOncePod).
    pub single_node_claims: Vec<String>,
    /// A checkpoint of the pod's running containers was staged.
    pub checkpoint_staged: bool,
}

/// What happens to one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Re-created and restored from the staged checkpoint.
    Restore,
    /// Re-created from its image (never started, restarted after a failure, or
    /// running with no checkpoint staged).
    Recreate,
    /// Completed (exit 0): not re-run; its results stay on its volumes.
    Completed,
    /// Failed, and the restart policy would not run it again.
    Failed { exit_code: i32 },
}

impl Action {
    /// Whether the container runs in the target pod.
    pub fn should_migrate(self) -> bool {
        matches!(self, Self::Restore | Self::Recreate)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPlan {
    pub name: String,
    pub init: bool,
    pub state: ContainerState,
    pub restart_count: u32,
    pub action: Action,
    /// Why, in words a person reads in `describe migration`.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Nothing pins the pod's data to one node: the target starts before the
    /// source goes.
    MakeBeforeBreak,
    /// These claims can be mounted by one node at a time: the source goes first.
    BreakBeforeMake { claims: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub containers: Vec<ContainerPlan>,
    pub strategy: Strategy,
}

/// Why a pod is not moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No regular container would run in the target pod.
    NothingToRun { containers: Vec<String> },
    /// An init container failed and would not run again, so nothing after it can.
    InitFailed { container: String, exit_code: i32 },
    /// The pod has no containers at all.
    NoContainers,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NothingToRun { containers } => write!(
                f,
                "the pod has nothing left to run: {}",
                containers.join(", ")
            ),
            Self::InitFailed {
                container,
                exit_code,
            } => write!(
                f,
                "init container {container:?} failed (exit code {exit_code}) and the restart policy Never would not run it again"
            ),
            Self::NoContainers => write!(f, "the pod has no containers"),
        }
    }
}

impl std::error::Error for Refused {}

pub fn plan(input: &PlanInput) -> Result<Plan, Refused> {
    if !input.containers.iter().any(|c| !c.init) {
        return Err(Refused::NoContainers);
    }
    let containers: Vec<ContainerPlan> = input
        .containers
        .iter()
        .map(|c| container_plan(c, input))
        .collect();
    for c in containers.iter().filter(|c| c.init) {
        if let Action::Failed { exit_code } = c.action {
            return Err(Refused::InitFailed {
                container: c.name.clone(),
                exit_code,
            });
        }
    }
    if !containers
        .iter()
        .any(|c| !c.init && c.action.should_migrate())
    {
        return Err(Refused::NothingToRun {
            containers: containers
                .iter()
                .filter(|c| !c.init)
                .map(|c| format!("{}: {}", c.name, c.why))
                .collect(),
        });
    }
    let strategy = if input.single_node_claims.is_empty() {
        Strategy::MakeBeforeBreak
    } else {
        Strategy::BreakBeforeMake {
            claims: input.single_node_claims.clone(),
        }
    };
    Ok(Plan {
        containers,
        strategy,
    })
}

fn container_plan(c: &ContainerInput, input: &PlanInput) -> ContainerPlan {
    let (action, why) = match c.state {
        ContainerState::Running if input.checkpoint_staged => (
            Action::Restore,
            "running: restored from its checkpoint".to_owned(),
        ),
        ContainerState::Running => (
            Action::Recreate,
            "running, no checkpoint staged: starts cold".to_owned(),
        ),
        ContainerState::Waiting => (Action::Recreate, "never started: re-created".to_owned()),
        ContainerState::Terminated { exit_code: 0 } => (
            Action::Completed,
            "completed (exit 0): not re-run; its results stay on its volumes".to_owned(),
        ),
        ContainerState::Terminated { exit_code }
            if input.restart_policy.restarts_after(exit_code) =>
        {
            (
                Action::Recreate,
                format!("failed (exit {exit_code}): the restart policy runs it again"),
            )
        }
        ContainerState::Terminated { exit_code } => (
            Action::Failed { exit_code },
            format!("failed (exit {exit_code}): the restart policy Never does not run it again"),
        ),
    };
    ContainerPlan {
        name: c.name.clone(),
        init: c.init,
        state: c.state,
        restart_count: c.restart_count,
        action,
        why,
    }
}

/// The planner's view of a Kubernetes pod: its restart policy, its containers' states
/// from its status (a container without a status has not started: waiting), and its
/// claims that `access_modes` (claim name → the claim's access modes) says one node
/// at a time may mount.
pub fn input_from_pod(
    pod: &Pod,
    access_modes: &BTreeMap<String, Vec<String>>,
    checkpoint_staged: bool,
) -> PlanInput {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let state_of = |statuses: Option<&Vec<ContainerStatus>>, name: &str| {
        let found = statuses.and_then(|s| s.iter().find(|s| s.name == name));
        let state = found.and_then(|s| s.state.as_ref());
        let phase = match state {
            Some(s) if s.running.is_some() => ContainerState::Running,
            Some(s) => match &s.terminated {
                Some(t) => ContainerState::Terminated {
                    exit_code: t.exit_code,
                },
                None => ContainerState::Waiting,
            },
            None => ContainerState::Waiting,
        };
        let restarts = found.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0));
        (phase, restarts)
    };
    let mut containers = Vec::new();
    for (init, list, statuses) in [
        (
            true,
            spec.and_then(|s| s.init_containers.as_ref()),
            status.and_then(|s| s.init_container_statuses.as_ref()),
        ),
        (
            false,
            spec.map(|s| &s.containers),
            status.and_then(|s| s.container_statuses.as_ref()),
        ),
    ] {
        for c in list.into_iter().flatten() {
            let (state, restart_count) = state_of(statuses, &c.name);
            containers.push(ContainerInput {
                name: c.name.clone(),
                init,
                state,
                restart_count,
            });
        }
    }
    let single_node_claims = spec
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .filter(|claim| {
            access_modes.get(claim).is_some_and(|modes| {
                modes
                    .iter()
                    .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
            })
        })
        .collect();
    PlanInput {
        restart_policy: RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref())),
        containers,
        single_node_claims,
        checkpoint_staged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerState::{Running, Terminated, Waiting};

    fn container(name: &str, state: ContainerState) -> ContainerInput {
        ContainerInput {
            name: name.into(),
            init: false,
            state,
            restart_count: 0,
        }
    }

    fn input(policy: RestartPolicy, containers: Vec<ContainerInput>) -> PlanInput {
        PlanInput {
            restart_policy: policy,
            containers,
            single_node_claims: Vec::new(),
            checkpoint_staged: true,
        }
    }

    /// Every container state × restart policy, with and without a checkpoint.
    #[test]
    fn each_state_and_policy_gives_its_action() {
        use Action::*;
        use RestartPolicy::*;
        let table = [
            (Running, Always, true, Restore),
            (Running, Never, true, Restore),
            (Running, OnFailure, false, Recreate),
            (Waiting, Always, true, Recreate),
            (Waiting, Never, false, Recreate),
            (Terminated { exit_code: 0 }, Always, true, Completed),
            (Terminated { exit_code: 0 }, OnFailure, true, Completed),
            (Terminated { exit_code: 0 }, Never, true, Completed),
            (Terminated { exit_code: 1 }, Always, true, Recreate),
            (Terminated { exit_code: 137 }, OnFailure, true, Recreate),
            (
                Terminated { exit_code: 1 },
                Never,
                true,
                Failed { exit_code: 1 },
            ),
        ];
        for (state, policy, staged, expected) in table {
            // A running sidecar keeps the pod movable whatever the row's container does.
            let mut i = input(
                policy,
                vec![container("c", state), container("keep", Running)],
            );
            i.checkpoint_staged = staged;
            let plan = plan(&i).unwrap();
            let c = &plan.containers[0];
            assert_eq!(
                c.action, expected,
                "{state:?} under {policy:?} (staged {staged})"
            );
            assert_eq!(
                c.action.should_migrate(),
                matches!(expected, Restore | Recreate),
                "{state:?}"
            );
            assert!(!c.why.is_empty());
        }
    }

    #[test]
    fn seed_003s_pod_keeps_its_trainer_and_monitor_and_leaves_the_finished_processor() {
        let pod = input(
            RestartPolicy::Always,
            vec![
                container("tensorflow-trainer", Running),
                container("data-processor", Terminated { exit_code: 0 }),
                container("model-monitor", Running),
            ],
        );
        let plan = plan(&pod).unwrap();
        let actions: Vec<_> = plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("tensorflow-trainer", Action::Restore),
                ("data-processor", Action::Completed),
                ("model-monitor", Action::Restore),
            ]
        );
        assert_eq!(plan.strategy, Strategy::MakeBeforeBreak);
    }

    #[test]
    fn a_pod_with_nothing_left_to_run_is_refused_with_each_reason() {
        let done = input(
            RestartPolicy::Never,
            vec![
                container("a", Terminated { exit_code: 0 }),
                container("b", Terminated { exit_code: 2 }),
            ],
        );
        let refused = plan(&done).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.starts_with("the pod has nothing left to run"),
            "{text}"
        );
        assert!(text.contains("a: completed (exit 0)"), "{text}");
        assert!(text.contains("b: failed (exit 2)"), "{text}");
        assert_eq!(
            plan(&input(RestartPolicy::Always, vec![])),
            Err(Refused::NoContainers)
        );
    }

    #[test]
    fn completed_init_containers_are_not_rerun_and_a_failed_one_refuses_the_move() {
        let init = |state| ContainerInput {
            init: true,
            ..container("setup", state)
        };
        let ok = plan(&input(
            RestartPolicy::Always,
            vec![
                init(Terminated { exit_code: 0 }),
                container("main", Running),
            ],
        ))
        .unwrap();
        assert_eq!(ok.containers[0].action, Action::Completed);
        assert!(ok.containers[0].init);
        // An init container still running (or waiting) runs again in the target.
        let mid = plan(&input(
            RestartPolicy::Always,
            vec![init(Running), container("main", Waiting)],
        ))
        .unwrap();
        assert_eq!(mid.containers[0].action, Action::Restore);
        let failed = plan(&input(
            RestartPolicy::Never,
            vec![
                init(Terminated { exit_code: 3 }),
                container("main", Waiting),
            ],
        ))
        .unwrap_err();
        assert_eq!(
            failed,
            Refused::InitFailed {
                container: "setup".into(),
                exit_code: 3
            }
        );
        assert!(failed.to_string().contains("exit code 3"), "{failed}");
        // Under OnFailure the failed init container runs again.
        let retried = plan(&input(
            RestartPolicy::OnFailure,
            vec![
                init(Terminated { exit_code: 3 }),
                container("main", Waiting),
            ],
        ))
        .unwrap();
        assert_eq!(retried.containers[0].action, Action::Recreate);
    }

    #[test]
    fn single_node_claims_make_it_break_before_make() {
        let mut i = input(RestartPolicy::Always, vec![container("c", Running)]);
        assert_eq!(plan(&i).unwrap().strategy, Strategy::MakeBeforeBreak);
        i.single_node_claims = vec!["data".into()];
        assert_eq!(
            plan(&i).unwrap().strategy,
            Strategy::BreakBeforeMake {
                claims: vec!["data".into()]
            }
        );
    }

    #[test]
    fn a_kubernetes_pod_becomes_the_planners_input() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "restartPolicy": "OnFailure",
                "initContainers": [{"name": "setup"}],
                "containers": [{"name": "main"}, {"name": "side"}, {"name": "late"}],
                "volumes": [
                    {"name": "a", "persistentVolumeClaim": {"claimName": "rwo"}},
                    {"name": "b", "persistentVolumeClaim": {"claimName": "rwx"}},
                    {"name": "c", "persistentVolumeClaim": {"claimName": "unknown"}},
                    {"name": "d", "emptyDir": {}}
                ]
            },
            "status": {
                "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"terminated": {"exitCode": 0}}}],
                "containerStatuses": [
                    {"name": "main", "ready": true, "restartCount": 2, "image": "i", "imageID": "",
                        "state": {"running": {}}},
                    {"name": "side", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                        "state": {"terminated": {"exitCode": 1}}}
                ]
            }
        }))
        .unwrap();
        let modes = BTreeMap::from([
            ("rwo".to_owned(), vec!["ReadWriteOnce".to_owned()]),
            ("rwx".to_owned(), vec!["ReadWriteMany".to_owned()]),
        ]);
        let i = input_from_pod(&pod, &modes, false);
        assert_eq!(i.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(i.single_node_claims, ["rwo"]);
        assert!(!i.checkpoint_staged);
        let got: Vec<_> = i
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.init, c.state, c.restart_count))
            .collect();
        assert_eq!(
            got,
            [
                ("setup", true, Terminated { exit_code: 0 }, 0),
                ("main", false, Running, 2),
                ("side", false, Terminated { exit_code: 1 }, 0),
                ("late", false, Waiting, 0),
            ]
        );
        // No spec at all: nothing to move.
        let empty = input_from_pod(&Pod::default(), &modes, true);
        assert_eq!(empty.restart_policy, RestartPolicy::Always);
        assert!(empty.containers.is_empty());
        assert_eq!(RestartPolicy::parse(Some("Never")), RestartPolicy::Never);
    }
}
