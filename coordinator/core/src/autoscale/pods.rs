//! The facts about the target's pods that decide whose figures count: being
//! deleted, phase, readiness and (for CPU) how long ago the pod started.

use super::condition::ConditionStatus;
use super::metric::{MetricKind, Sample};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// The pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCondition {
    pub status: ConditionStatus,
    pub last_transition_unix_nanos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub name: Box<str>,
    pub phase: PodPhase,
    /// Absent when the pod has no `Ready` condition yet.
    pub ready: Option<ReadyCondition>,
    pub start_unix_nanos: Option<u64>,
    /// The pod has a deletion timestamp.
    pub deleting: bool,
    /// Sum over the pod's containers, in millicores; absent when any container has none.
    pub cpu_request_milli: Option<i64>,
    /// Sum over the pod's containers, in thousandths of a byte; absent as above.
    pub memory_request_milli: Option<i64>,
}

impl PodFacts {
    /// The pod's request for `kind` (CPU and memory only).
    pub fn request_milli(&self, kind: MetricKind) -> Option<i64> {
        match kind {
            MetricKind::Cpu => self.cpu_request_milli,
            MetricKind::Memory => self.memory_request_milli,
            _ => None,
        }
    }
}

/// How long CPU figures of a starting pod are distrusted (start-up bursts would
/// otherwise read as load). Defaults are the controller's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// Where a pod's figure goes in one metric's calculation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Its sample counts as measured.
    Ready,
    /// Pending, or (CPU) not trusted yet: left out, assumed idle on a scale-up.
    Unready,
    /// Running but not measured: assumed at the target on a scale-down, idle on a scale-up.
    Missing,
    /// Being deleted or failed: counts nowhere.
    Ignored,
}

pub(crate) fn later(t: u64, by: Duration) -> u64 {
    t.saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX))
}

/// The HPA's `groupPods` rule for one pod.
pub fn group(
    pod: &PodFacts,
    sample: Option<&Sample>,
    kind: MetricKind,
    readiness: Readiness,
    now_unix_nanos: u64,
) -> Group {
    if pod.deleting || pod.phase == PodPhase::Failed {
        return Group::Ignored;
    }
    if pod.phase == PodPhase::Pending {
        return Group::Unready;
    }
    let Some(sample) = sample else {
        return Group::Missing;
    };
    if kind != MetricKind::Cpu {
        return Group::Ready;
    }
    let (Some(ready), Some(start)) = (pod.ready, pod.start_unix_nanos) else {
        return Group::Unready;
    };
    let not_ready = ready.status == ConditionStatus::False;
    let unready = if later(start, readiness.cpu_initialization_period) > now_unix_nanos {
        // Starting: distrust a sample that does not cover a whole window of readiness.
        not_ready || sample.at_unix_nanos < later(ready.last_transition_unix_nanos, sample.window)
    } else {
        // Started: distrust only a pod that has never been ready.
        not_ready
            && later(start, readiness.initial_readiness_delay) > ready.last_transition_unix_nanos
    };
    if unready {
        Group::Unready
    } else {
        Group::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 1_000_000 * SEC;
    // The upstream test's periods (TestGroupPods uses 2 min and 10 s).
    const TESTING: Readiness = Readiness {
        cpu_initialization_period: Duration::from_secs(120),
        initial_readiness_delay: Duration::from_secs(10),
    };

    fn pod(phase: PodPhase) -> PodFacts {
        PodFacts {
            name: "p".into(),
            phase,
            ready: None,
            start_unix_nanos: None,
            deleting: false,
            cpu_request_milli: None,
            memory_request_milli: None,
        }
    }

    fn started(ago_secs: u64, status: ConditionStatus, transition_ago_secs: u64) -> PodFacts {
        PodFacts {
            ready: Some(ReadyCondition {
                status,
                last_transition_unix_nanos: NOW - transition_ago_secs * SEC,
            }),
            start_unix_nanos: Some(NOW - ago_secs * SEC),
            ..pod(PodPhase::Succeeded)
        }
    }

    fn sample(ago_secs: u64, window_secs: u64) -> Sample {
        Sample {
            milli: 1,
            at_unix_nanos: NOW - ago_secs * SEC,
            window: Duration::from_secs(window_secs),
        }
    }

    fn cpu(p: &PodFacts, s: Option<&Sample>) -> Group {
        group(p, s, MetricKind::Cpu, TESTING, NOW)
    }

    // TestGroupPods (replica_calculator_test.go), case by case.
    #[test]
    fn groups_pods_as_the_hpa_does() {
        use ConditionStatus::{False, True};
        let s = sample(0, 60);
        // "count in a ready pod - memory"
        assert_eq!(
            group(
                &pod(PodPhase::Succeeded),
                Some(&s),
                MetricKind::Memory,
                TESTING,
                NOW
            ),
            Group::Ready
        );
        // "unready a pod without ready condition - CPU"
        let mut no_ready = pod(PodPhase::Succeeded);
        no_ready.start_unix_nanos = Some(NOW);
        assert_eq!(cpu(&no_ready, Some(&s)), Group::Unready);
        // "count in a ready pod with fresh metrics during initialization period - CPU"
        assert_eq!(
            cpu(&started(60, True, 30), Some(&sample(0, 30))),
            Group::Ready
        );
        // "unready a ready pod without fresh metrics during initialization period - CPU"
        assert_eq!(
            cpu(&started(60, True, 30), Some(&sample(0, 60))),
            Group::Unready
        );
        // "unready an unready pod during initialization period - CPU" (it started
        // 10 min ago and turned unready 6 s after its start: never ready)
        assert_eq!(cpu(&started(600, False, 594), Some(&s)), Group::Unready);
        // A starting pod that is not ready (our own case).
        assert_eq!(
            cpu(&started(60, False, 60), Some(&sample(0, 30))),
            Group::Unready
        );
        // "count in a ready pod without fresh metrics after initialization period - CPU"
        assert_eq!(
            cpu(&started(180, True, 180), Some(&sample(120, 60))),
            Group::Ready
        );
        // "count in an unready pod that was ready after initialization period - CPU"
        assert_eq!(cpu(&started(600, False, 540), Some(&s)), Group::Ready);
        // "unready pod that has never been ready after initialization period - CPU":
        // its transition is exactly `delay` after start, which upstream counts in.
        assert_eq!(cpu(&started(600, False, 590), Some(&s)), Group::Ready);
        // "a missing pod"
        assert_eq!(cpu(&started(180, True, 180), None), Group::Missing);
        // "pending pods are unreadied"
        assert_eq!(cpu(&pod(PodPhase::Pending), None), Group::Unready);
        // "ignore pods with deletion timestamps"
        let mut deleted = pod(PodPhase::Pending);
        deleted.deleting = true;
        assert_eq!(cpu(&deleted, Some(&s)), Group::Ignored);
        // "ignore pods in a failed state"
        assert_eq!(cpu(&pod(PodPhase::Failed), Some(&s)), Group::Ignored);
    }

    #[test]
    fn readiness_edges_are_strict_where_upstream_is() {
        use ConditionStatus::{False, True, Unknown};
        // Exactly at the end of the initialization period the pod counts as started.
        let p = started(120, True, 120);
        assert_eq!(cpu(&p, Some(&sample(0, 600))), Group::Ready);
        // One second before, the sample must cover a window since readiness.
        let p = started(119, True, 119);
        assert_eq!(
            cpu(&p, Some(&sample(0, 119))),
            Group::Ready,
            "covers exactly"
        );
        assert_eq!(cpu(&p, Some(&sample(0, 120))), Group::Unready);
        // Unknown readiness is not False.
        assert_eq!(
            cpu(&started(60, Unknown, 60), Some(&sample(0, 30))),
            Group::Ready
        );
        // Never ready: one second closer to the start than `delay` is unready.
        assert_eq!(
            cpu(&started(600, False, 591), Some(&sample(0, 1))),
            Group::Unready
        );
        // No start time: unready, whatever the readiness.
        let mut p = started(600, True, 600);
        p.start_unix_nanos = None;
        assert_eq!(cpu(&p, Some(&sample(0, 1))), Group::Unready);
        // Other kinds ignore readiness entirely.
        assert_eq!(
            group(
                &started(1, False, 1),
                Some(&sample(0, 1)),
                MetricKind::Gpu,
                TESTING,
                NOW
            ),
            Group::Ready
        );
    }

    #[test]
    fn requests_are_per_kind_and_absent_elsewhere() {
        let mut p = pod(PodPhase::Running);
        p.cpu_request_milli = Some(5);
        p.memory_request_milli = Some(7);
        assert_eq!(p.request_milli(MetricKind::Cpu), Some(5));
        assert_eq!(p.request_milli(MetricKind::Memory), Some(7));
        assert_eq!(p.request_milli(MetricKind::Gpu), None);
        assert_eq!(
            Readiness::default(),
            Readiness {
                cpu_initialization_period: Duration::from_secs(300),
                initial_readiness_delay: Duration::from_secs(30)
            }
        );
        assert_eq!(later(u64::MAX - 1, Duration::from_secs(1)), u64::MAX);
    }
}
