//! Pods and their containers as measured on a node.

use super::{Figure, GpuUse, PodWindow, Usage};

/// Kubernetes' quality-of-service class, read from the kubepods cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
    /// Outside the kubepods layout (a workload cgroup, or not reported).
    Unknown,
}

impl QosClass {
    pub fn parse(s: &str) -> Self {
        match s {
            "guaranteed" | "Guaranteed" => Self::Guaranteed,
            "burstable" | "Burstable" => Self::Burstable,
            "besteffort" | "BestEffort" => Self::BestEffort,
            _ => Self::Unknown,
        }
    }

    /// The agent's spelling (the kubepods cgroup names); empty when unknown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "guaranteed",
            Self::Burstable => "burstable",
            Self::BestEffort => "besteffort",
            Self::Unknown => "",
        }
    }
}

/// How the agent found the pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiscoveredBy {
    Containerd,
    Cgroupfs,
    WorkloadCgroup,
    Other(Box<str>),
}

impl DiscoveredBy {
    pub fn parse(s: &str) -> Self {
        match s {
            "containerd" => Self::Containerd,
            "cgroupfs" => Self::Cgroupfs,
            "workload-cgroup" => Self::WorkloadCgroup,
            other => Self::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Containerd => "containerd",
            Self::Cgroupfs => "cgroupfs",
            Self::WorkloadCgroup => "workload-cgroup",
            Self::Other(s) => s,
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not started yet (pulling its image, waiting for an init container).
    Waiting {
        reason: Box<str>,
    },
    Running,
    /// Frozen (cgroup freezer, containerd pause).
    Paused,
    /// Ended. The exit code is absent when whoever saw the end did not say it.
    Terminated {
        exit_code: Option<i32>,
        reason: Box<str>,
    },
    Unknown,
}

/// What a container asked the scheduler for (from its pod spec).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Requests {
    pub cpu_millicores: Option<f64>,
    pub memory_bytes: Option<u64>,
}

/// Why a pod's requests are unknown when no spec was joined to it.
pub const SPEC_UNKNOWN: &str = "requests come from the pod's spec (Kubernetes API or local runtime); this pod is known only from its node's report";
const NO_CPU_REQUEST: &str = "a container of this pod has no CPU request";
const NO_MEMORY_REQUEST: &str = "a container of this pod has no memory request";

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: Box<str>,
    pub name: Box<str>,
    pub image: Box<str>,
    pub state: ContainerState,
    /// Absent when no source of it (kubelet status, local runtime) is known.
    pub restart_count: Option<u32>,
    /// Absent until the pod's spec is joined to the measurement.
    pub requests: Option<Requests>,
    pub usage: Usage,
    pub gpus: Box<[GpuUse]>,
}

/// Pods sort by namespace, then name, then uid (two pods of one name can coexist
/// briefly while one is replaced).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub key: PodKey,
    pub qos_class: QosClass,
    /// Relative to the cgroup root; names a workload cgroup that has no pod name.
    pub cgroup_path: Box<str>,
    pub discovered_by: DiscoveredBy,
    /// Read from the pod's own cgroup, never summed from its containers.
    pub usage: Usage,
    pub containers: Box<[Container]>,
    pub gpus: Box<[GpuUse]>,
    /// The pod's recent samples (as long as the longest window a decision asks for).
    pub window: PodWindow,
    /// The pod's labels, once joined with its spec (none are in an agent's report).
    pub labels: Box<[(Box<str>, Box<str>)]>,
}

impl Pod {
    pub fn uid(&self) -> &str {
        &self.key.uid
    }

    pub fn name(&self) -> &str {
        &self.key.name
    }

    pub fn namespace(&self) -> &str {
        &self.key.namespace
    }

    /// The sum of the containers' CPU requests; absent (as the HPA treats it) when
    /// any container has none.
    pub fn cpu_request_millicores(&self) -> Figure<'static, f64> {
        self.sum_requests(|r| r.cpu_millicores, NO_CPU_REQUEST)
    }

    /// The sum of the containers' memory requests; absent when any has none.
    pub fn memory_request_bytes(&self) -> Figure<'static, f64> {
        self.sum_requests(|r| r.memory_bytes.map(|b| b as f64), NO_MEMORY_REQUEST)
    }

    fn sum_requests(
        &self,
        of: impl Fn(&Requests) -> Option<f64>,
        lacking: &'static str,
    ) -> Figure<'static, f64> {
        if self.containers.is_empty() {
            return Figure::Absent(SPEC_UNKNOWN);
        }
        let mut total = 0.0;
        for c in &self.containers {
            let Some(requests) = &c.requests else {
                return Figure::Absent(SPEC_UNKNOWN);
            };
            match of(requests) {
                Some(v) => total += v,
                None => return Figure::Absent(lacking),
            }
        }
        Figure::Measured(total)
    }

    /// Containers that still have work to do: not terminated with exit code 0.
    pub fn unfinished_containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(|c| {
            !matches!(
                c.state,
                ContainerState::Terminated {
                    exit_code: Some(0),
                    ..
                }
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::fixtures::{container, pod};

    const BOTH: Requests = Requests {
        cpu_millicores: Some(250.0),
        memory_bytes: Some(1 << 20),
    };

    #[test]
    fn requests_sum_over_containers_and_any_gap_makes_them_absent() {
        let p = pod(vec![
            container("a", Some(BOTH), ContainerState::Running),
            container("b", Some(BOTH), ContainerState::Running),
        ]);
        assert_eq!(p.cpu_request_millicores(), Figure::Measured(500.0));
        assert_eq!(p.memory_request_bytes(), Figure::Measured(2.0 * 1048576.0));
        assert_eq!((p.uid(), p.name(), p.namespace()), ("u1", "trainer", "ml"));

        let no_cpu = Requests {
            cpu_millicores: None,
            ..BOTH
        };
        let p = pod(vec![
            container("a", Some(BOTH), ContainerState::Running),
            container("b", Some(no_cpu), ContainerState::Running),
        ]);
        assert_eq!(p.cpu_request_millicores(), Figure::Absent(NO_CPU_REQUEST));
        assert_eq!(p.memory_request_bytes(), Figure::Measured(2.0 * 1048576.0));
        let no_memory = Requests {
            memory_bytes: None,
            ..BOTH
        };
        let p = pod(vec![container(
            "a",
            Some(no_memory),
            ContainerState::Running,
        )]);
        assert_eq!(p.memory_request_bytes(), Figure::Absent(NO_MEMORY_REQUEST));

        let p = pod(vec![
            container("a", Some(BOTH), ContainerState::Running),
            container("b", None, ContainerState::Running),
        ]);
        assert_eq!(p.cpu_request_millicores(), Figure::Absent(SPEC_UNKNOWN));
        assert_eq!(
            pod(vec![]).cpu_request_millicores(),
            Figure::Absent(SPEC_UNKNOWN)
        );
    }

    #[test]
    fn only_containers_that_exited_zero_are_finished() {
        let done = |code| ContainerState::Terminated {
            exit_code: code,
            reason: "Completed".into(),
        };
        let p = pod(vec![
            container("trainer", None, ContainerState::Running),
            container("prep", None, done(Some(0))),
            container("crashed", None, done(Some(1))),
            container("unknown-exit", None, done(None)),
            container(
                "init",
                None,
                ContainerState::Waiting {
                    reason: "PodInitializing".into(),
                },
            ),
        ]);
        let names: Vec<&str> = p.unfinished_containers().map(|c| &*c.name).collect();
        assert_eq!(names, ["trainer", "crashed", "unknown-exit", "init"]);
    }

    #[test]
    fn enums_read_the_agents_spelling_back() {
        for q in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
            QosClass::Unknown,
        ] {
            assert_eq!(QosClass::parse(q.as_str()), q);
        }
        assert_eq!(QosClass::parse("BestEffort"), QosClass::BestEffort);
        assert_eq!(QosClass::parse("Guaranteed"), QosClass::Guaranteed);
        assert_eq!(QosClass::parse("Burstable"), QosClass::Burstable);
        assert_eq!(QosClass::parse("weird"), QosClass::Unknown);
        for d in ["containerd", "cgroupfs", "workload-cgroup", "something-new"] {
            assert_eq!(DiscoveredBy::parse(d).as_str(), d);
        }
        // Known spellings become their variant, not an `Other` that merely reads the same.
        assert_eq!(DiscoveredBy::parse("containerd"), DiscoveredBy::Containerd);
        assert_eq!(DiscoveredBy::parse("cgroupfs"), DiscoveredBy::Cgroupfs);
        assert_eq!(
            DiscoveredBy::parse("workload-cgroup"),
            DiscoveredBy::WorkloadCgroup
        );
        assert_eq!(
            DiscoveredBy::parse("crio"),
            DiscoveredBy::Other("crio".into())
        );
    }
}
