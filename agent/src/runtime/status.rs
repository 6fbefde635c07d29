//! Pod and container status as the kubelet reports it: container states, restart counts,
//! readiness, and the pod phase and conditions derived from them. Pure.

use super::manifest::RestartPolicy;

/// Unix time, nanoseconds.
pub type UnixNanos = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: not started yet, or waiting to be restarted (`CrashLoopBackOff`), or
    /// unable to start (`ErrImageNeverPull`, `CreateContainerError`).
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: UnixNanos,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed` (exit 0), `Error`, `OOMKilled`, or why it could not run.
    pub reason: String,
    pub message: String,
    pub started_at: Option<UnixNanos>,
    pub finished_at: UnixNanos,
}

impl Terminated {
    /// The kubelet's reason for an exit: `Completed` for 0, else `Error`.
    pub fn reason_for(exit_code: i32, oom_killed: bool) -> &'static str {
        if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    /// containerd's id of the current (or last) instance.
    pub container_id: Option<String>,
    pub state: ContainerState,
    /// The previous instance's end, once it restarted.
    pub last_terminated: Option<Terminated>,
    pub restart_count: u32,
    pub ready: bool,
}

impl ContainerStatus {
    pub fn waiting(name: &str, image: &str, reason: &str, message: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            container_id: None,
            state: ContainerState::Waiting {
                reason: reason.to_owned(),
                message: message.to_owned(),
            },
            last_terminated: None,
            restart_count: 0,
            ready: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }
}

/// The kubelet's `getPhase`: a container waiting for its first start keeps the pod
/// pending; one running makes it running; when all have stopped the restart policy and the
/// exit codes decide.
pub fn pod_phase(policy: RestartPolicy, containers: &[ContainerStatus]) -> PodPhase {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // Waiting to restart counts as stopped, as upstream.
            ContainerState::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || containers.is_empty() {
        PodPhase::Pending
    } else if running > 0 || policy == RestartPolicy::Always {
        // Always: stopped containers will be started again.
        PodPhase::Running
    } else if stopped == succeeded {
        PodPhase::Succeeded
    } else if policy == RestartPolicy::Never {
        PodPhase::Failed
    } else {
        PodPhase::Running
    }
}

/// One pod condition (`PodScheduled`, `Initialized`, `ContainersReady`, `Ready`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
}

/// The conditions the kubelet sets; `Ready` follows the containers' readiness, and a pod
/// that has finished is not ready (reason `PodCompleted`).
pub fn conditions(phase: PodPhase, containers: &[ContainerStatus]) -> Vec<Condition> {
    let finished = matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let ready = !finished && unready.is_empty() && !containers.is_empty();
    let reason = if finished {
        "PodCompleted".to_owned()
    } else if ready {
        String::new()
    } else {
        format!("ContainersNotReady: {}", unready.join(", "))
    };
    vec![
        Condition {
            kind: "PodScheduled",
            status: true,
            reason: String::new(),
        },
        Condition {
            kind: "Initialized",
            status: true,
            reason: String::new(),
        },
        Condition {
            kind: "ContainersReady",
            status: ready,
            reason: reason.clone(),
        },
        Condition {
            kind: "Ready",
            status: ready,
            reason,
        },
    ]
}

/// The kubelet's crash-loop back-off at step `level` (restarts since the container last
/// ran long enough): the first restart is immediate, then 10 s doubling to 5 minutes.
pub fn restart_backoff(level: u32) -> std::time::Duration {
    if level == 0 {
        return std::time::Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (level - 1).min(5));
    std::time::Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            state: ContainerState::Running { started_at: 1 },
            ready: true,
            ..ContainerStatus::waiting(name, "i", "", "")
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            state: ContainerState::Terminated(Terminated {
                exit_code: code,
                reason: Terminated::reason_for(code, false).to_owned(),
                message: String::new(),
                started_at: Some(1),
                finished_at: 2,
            }),
            ..ContainerStatus::waiting(name, "i", "", "")
        }
    }

    fn backing_off(name: &str) -> ContainerStatus {
        let last = match exited(name, 1).state {
            ContainerState::Terminated(t) => t,
            _ => unreachable!(),
        };
        ContainerStatus {
            last_terminated: Some(last),
            restart_count: 1,
            ..ContainerStatus::waiting(name, "i", "CrashLoopBackOff", "")
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        use PodPhase::*;
        use RestartPolicy::*;
        let new = ContainerStatus::waiting("a", "i", "ContainerCreating", "");
        assert_eq!(pod_phase(Always, &[]), Pending);
        assert_eq!(pod_phase(Always, &[new.clone(), running("b")]), Pending);
        assert_eq!(pod_phase(Never, &[running("a"), exited("b", 0)]), Running);
        assert_eq!(pod_phase(Always, &[exited("a", 0)]), Running);
        assert_eq!(
            pod_phase(OnFailure, &[exited("a", 0), exited("b", 0)]),
            Succeeded
        );
        assert_eq!(
            pod_phase(Never, &[exited("a", 0), exited("b", 0)]),
            Succeeded
        );
        assert_eq!(pod_phase(Never, &[exited("a", 0), exited("b", 2)]), Failed);
        assert_eq!(
            pod_phase(OnFailure, &[exited("a", 0), exited("b", 2)]),
            Running
        );
        assert_eq!(pod_phase(OnFailure, &[backing_off("a")]), Running);
        // A restart pending after a failure counts as stopped, not as never started.
        assert_eq!(
            pod_phase(Never, &[backing_off("a"), exited("b", 0)]),
            Failed
        );
    }

    #[test]
    fn conditions_follow_readiness() {
        let c = conditions(PodPhase::Running, &[running("a"), running("b")]);
        let ready = |c: &[Condition]| c.iter().find(|c| c.kind == "Ready").unwrap().clone();
        assert_eq!(c.len(), 4);
        assert!(ready(&c).status);
        assert!(c.iter().all(|c| c.status));
        let mut b = running("b");
        b.ready = false;
        let c = conditions(PodPhase::Running, &[running("a"), b]);
        assert!(!ready(&c).status);
        assert_eq!(ready(&c).reason, "ContainersNotReady: b");
        let c = conditions(PodPhase::Succeeded, &[running("a")]);
        assert!(!ready(&c).status);
        assert_eq!(ready(&c).reason, "PodCompleted");
        assert!(!ready(&conditions(PodPhase::Pending, &[])).status);
    }

    #[test]
    fn backoff_is_immediate_then_doubles_to_five_minutes() {
        let s = |n| restart_backoff(n).as_secs();
        assert_eq!(
            [s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(40)],
            [0, 10, 20, 40, 80, 160, 300, 300]
        );
    }

    #[test]
    fn exit_reasons() {
        assert_eq!(Terminated::reason_for(0, false), "Completed");
        assert_eq!(Terminated::reason_for(3, false), "Error");
        assert_eq!(Terminated::reason_for(137, true), "OOMKilled");
    }
}
