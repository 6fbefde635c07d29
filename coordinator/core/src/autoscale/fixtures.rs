//! Fixtures shared by the autoscaler's tests, shaped like the upstream tests so
//! their cases read across: pods `test-pod-<i>`, Running and Ready unless told
//! otherwise, started long ago ("cool") unless "hot", sampled now over a minute.

use super::{
    ConditionStatus, MetricKind, Observation, Observed, PodFacts, PodPhase, Readiness,
    ReadyCondition, Sample,
};
use crate::clock::Now;
use std::time::Duration;

pub(crate) const SEC: u64 = 1_000_000_000;
pub(crate) const NOW: u64 = 1_000_000 * SEC;

pub(crate) fn now() -> Now {
    Now {
        monotonic: Duration::from_secs(5),
        wall_unix_nanos: NOW,
    }
}

/// The upstream tests' CPU periods: initialization 2 min, readiness delay 10 s.
pub(crate) const TESTING: Readiness = Readiness {
    cpu_initialization_period: Duration::from_secs(120),
    initial_readiness_delay: Duration::from_secs(10),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Three minutes ago: past the testing initialization period.
    Cool,
    /// Now: inside it, and no sample covers a window of readiness yet.
    Hot,
}

pub(crate) use ConditionStatus::{False as F, True as T};
pub(crate) use PodPhase::{Failed as FAILED, Pending as PENDING, Running as RUNNING};

/// A target's pods and one metric's per-pod values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pods {
    count: usize,
    requests: Vec<i64>,
    levels: Vec<i64>,
    ready: Vec<ConditionStatus>,
    start: Vec<Start>,
    phase: Vec<PodPhase>,
    deleting: Vec<bool>,
}

pub(crate) fn pods(count: usize) -> Pods {
    Pods {
        count,
        ..Pods::default()
    }
}

/// Upstream's pods have two containers with the same request and use: a pod's
/// figure is twice the per-container one.
pub(crate) fn two(per_container: &[i64]) -> Vec<i64> {
    per_container.iter().map(|v| v * 2).collect()
}

impl Pods {
    /// CPU and memory requests of the first pods (the rest have none).
    pub(crate) fn requests(mut self, r: &[i64]) -> Self {
        self.requests = r.to_vec();
        self
    }

    /// The values of the first pods; pods beyond have no observation, values
    /// beyond the pod count are observations of pods that do not exist.
    pub(crate) fn levels(mut self, l: &[i64]) -> Self {
        self.levels = l.to_vec();
        self
    }

    pub(crate) fn ready(mut self, r: &[ConditionStatus]) -> Self {
        self.ready = r.to_vec();
        self
    }

    pub(crate) fn start(mut self, s: &[Start]) -> Self {
        self.start = s.to_vec();
        self
    }

    pub(crate) fn phase(mut self, p: &[PodPhase]) -> Self {
        self.phase = p.to_vec();
        self
    }

    pub(crate) fn deleting(mut self, d: &[bool]) -> Self {
        self.deleting = d.to_vec();
        self
    }

    pub(crate) fn facts(&self) -> Vec<PodFacts> {
        (0..self.count)
            .map(|i| {
                let start = match self.start.get(i) {
                    Some(Start::Hot) => NOW,
                    _ => NOW - 180 * SEC,
                };
                PodFacts {
                    name: name(i),
                    phase: self.phase.get(i).copied().unwrap_or(RUNNING),
                    ready: Some(ReadyCondition {
                        status: self.ready.get(i).copied().unwrap_or(T),
                        last_transition_unix_nanos: start,
                    }),
                    start_unix_nanos: Some(start),
                    deleting: self.deleting.get(i).copied().unwrap_or(false),
                    cpu_request_milli: self.requests.get(i).copied(),
                    memory_request_milli: self.requests.get(i).copied(),
                }
            })
            .collect()
    }

    pub(crate) fn observations(&self) -> Vec<Observation> {
        self.levels
            .iter()
            .enumerate()
            .map(|(i, &v)| Observation {
                pod: name(i),
                observed: Observed::Sample(sample(v)),
            })
            .collect()
    }
}

pub(crate) fn name(i: usize) -> Box<str> {
    format!("test-pod-{i}").into()
}

pub(crate) fn sample(milli: i64) -> Sample {
    Sample {
        milli,
        at_unix_nanos: NOW,
        window: Duration::from_secs(60),
    }
}

/// A per-pod metric like upstream's "qps" custom metric.
pub(crate) const QPS: MetricKind = MetricKind::StorageIops;
